"""Continuous-action MAMQL and BC against an expert: the point-masses game, Brax games.

Records demonstrations of the expert (by default the game's scripted expert,
e.g. point-masses' tanh-Gaussian policy heading for its own target,
``envs.point_masses``; with ``--expert-run DIR`` the policy of a finished run,
e.g. the SAC expert of ``experiments/train_brax_expert.py`` on ``ant-4x2``;
with ``--demos FILE`` that expert's demonstrations already recorded), trains
``mamql-continuous-offline`` (value term on expert states),
``mamql-continuous`` (online: expert and own replayed transitions) and
``bc-continuous`` on them (several seeds each, one ``mairl.runs.run`` per
learner), and prints per-agent undiscounted returns of the expert, uniformly
random actions and every learner: mean ± 95% t-interval over seeds for the
learners (each seed's mean over ``--final-episodes`` episodes, actions drawn
from the actors) and over episodes for the expert and random rows; then the same
with greedy actions on both sides (the tanh of the actors' means, and the
expert's greedy policy): evaluations of continuous-control learners
conventionally act by the mean, and the expert's row follows the same rule.
``--reuse-runs`` measures the runs already finished in ``--out`` instead of
training them again, and trains only the learners that have none (so learners
can be trained in several calls and measured together).

Usage::

    .venv/bin/python experiments/continuous_mamql.py --out runs/continuous
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import tyro

from mairl import report, runs
from mairl.utils import machine

Learner = Literal["mamql-continuous-offline", "mamql-continuous", "bc-continuous"]


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """Continuous MAMQL (offline and online) and BC against the scripted expert.

    Attributes:
        env: the game.
        alpha: temperature of MAMQL (recorded with BC).
        chi2_coef: MAMQL's chi-squared regularizer weight ``c``
            (``mairl.algos.mamql_continuous``); 0: none.
        chi2_on: the transitions online MAMQL takes its regularizer over:
            ``expert``, or ``mixture`` (half expert, half its own); the offline
            learners always take the expert's.
        batch_size: expert transitions per update.
        algos: learners to train.
        expert_run: a finished run (``mairl.runs``) whose policy is the expert;
            ``None``: the game's scripted expert.
        demos: the expert's demonstrations, already recorded; ``None``: record
            ``demo_episodes`` episodes to ``out/expert_demos.npz``.
        reuse_runs: measure the finished runs in ``out/<learner>`` (from an
            earlier call) instead of training them; train only the learners of
            ``algos`` with no finished run there. A reused run must have been
            trained with these flags (``mairl.report.reuse_learners``).
    """

    env: str = "point-masses"
    alpha: float = 0.1
    chi2_coef: float = 1.0
    chi2_on: Literal["expert", "mixture"] = "expert"
    batch_size: int = 256
    algos: tuple[Learner, ...] = ("mamql-continuous-offline", "mamql-continuous",
                                  "bc-continuous")
    expert_run: Path | None = None
    demos: Path | None = None
    reuse_runs: bool = False


#: The script's defaults (``--help`` shows them): small MLPs, a larger step.
DEFAULTS = Args(out=Path("runs/continuous"), updates=3000, learning_rate=1e-3, hidden=(64, 64),
                online_envs=8, baseline_episodes=500, final_episodes=200)


def heldout_table(env, expert, learners: dict) -> dict:
    """Print and return the held-out behaviour measures of the learners (mean ±
    95% t-interval over seeds) beside their ceiling (the expert's own actors) and
    floor (uniform actions; the box's centre for ``action_mse``),
    ``mairl.report.heldout_calibration``, all on the same held-out transitions."""
    fixed = report.heldout_calibration(next(iter(learners.values())), expert)
    rows = {}
    for measure in ("heldout_log_likelihood", "action_mse"):
        table = {name: list(map(float, row[measure])) for name, row in fixed.items()}
        table |= {name: report.per_agent(run.metrics[measure]["per_seed"])
                  for name, run in learners.items()}
        print("\n" + report.format_table(table, report.agent_columns("", env.agents),
                                         title=f"{env.name}: {measure} on held-out "
                                               "demonstrations"))
        rows[measure] = table
    print("expert: the expert's own actors (log-likelihood ceiling: minus its entropy); "
          "uniform: uniform actions (action_mse: the box's centre). Learners: over seeds.")
    return rows


def scaled_table(rows: dict) -> dict:
    """Print and return the rows' means on the scale zero actions = 0, expert = 1
    (``mairl.report.normalized_returns``), beside the plain fraction of the
    expert's return."""
    scaled = report.normalized_returns(rows, floor="zero")
    print("\nthe same means on the scale zero actions = 0, expert = 1 "
          "(nan: the expert does not beat zero actions), and as a fraction of the expert's:")
    for name, values in scaled.items():
        plain = [f"{m / e:5.0%}" if e > 0 else "  n/a"  # a fraction of a negative return
                 for (m, _), (e, _) in zip(rows[name]["return_per_agent"],
                                           rows["expert"]["return_per_agent"], strict=True)]
        print(f"  {name:28s} " + "  ".join(f"{v:6.2f}" for v in values)
              + "   | of the expert: " + "  ".join(plain))
    return scaled


def settings(args: Args, name: str) -> dict:
    """The algorithm and evaluation values of learner ``name`` beyond the networks,
    steps and discount that all learners share: the env's own view, the flags'
    temperature, regularizer and batch; ``chi2_on`` for the online learner only."""
    values = dict(eval_episodes=16, view="agent", alpha=args.alpha, chi2_coef=args.chi2_coef,
                  batch_size=args.batch_size)
    if name == "mamql-continuous":
        values["chi2_on"] = args.chi2_on
    return values


def main(args: Args) -> None:
    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = runs.make_env(args.env)
    print(f"{env.name}: {env.num_agents} agents, obs {env.obs_shape}, actions "
          f"{env.action_spaces[0]}, {env.max_steps} steps")
    expert_run = None if args.expert_run is None else runs.load_run(args.expert_run)
    if expert_run is None:
        if not hasattr(env, "scripted_policy"):
            raise SystemExit(f"expert_run: {env.name} has no scripted expert; pass the run of "
                             "a trained one (experiments/train_brax_expert.py)")
        expert, expert_greedy = env.scripted_policy(), env.scripted_policy(greedy=True)
    else:
        expert, expert_greedy = expert_run.policy_fn(), expert_run.policy_fn(greedy=True)
    demos = args.out / "expert_demos.npz" if args.demos is None else args.demos
    learners = {}
    if args.reuse_runs:
        for name in args.algos:
            learners |= report.reuse_learners(replace(args, algos=(name,)), env, demos,
                                              **settings(args, name))
    if learners:
        print(f"reused the finished runs of {', '.join(learners)} in {args.out}/")
    missing = [name for name in args.algos if name not in learners]
    if missing:
        if args.demos is None:
            report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, demos,
                                num_envs=50)
        for name in missing:
            learners |= report.train_learners(replace(args, algos=(name,)), env, demos,
                                              progress=False, **settings(args, name))
        learners = {name: learners[name] for name in args.algos}  # in the order asked
    zero = jnp.zeros((env.num_agents, *env.action_spaces[0].shape), jnp.float32)
    more = {"zero": lambda key, obs: zero}
    rows = report.compare_returns(env, expert, learners, args,
                                  title=f"{env.name}: per-agent return", more=more)
    print("\nreturn: undiscounted per-agent episode return, mean ± 95% t-interval over seeds "
          "for learned policies (actions drawn from the actors), over episodes otherwise.")
    scaled = scaled_table(rows)
    greedy_rows = report.compare_returns(env, expert_greedy, learners, args, more=more,
                                         title=f"{env.name}: per-agent return, greedy actions",
                                         greedy=True)
    print("\ngreedy: every policy plays the tanh of its actors' means (the expert's too).")
    greedy_scaled = scaled_table(greedy_rows)
    behaviour = {}
    if expert_run is not None and learners:
        behaviour = heldout_table(env, expert_run, learners)
    report.write_summary(args.out / "summary.json", args,
                         rows={name: {"return_per_agent": r["return_per_agent"],
                                      "return_zero_to_expert": scaled[name]}
                               for name, r in rows.items()},
                         greedy_rows={name: {"return_per_agent": r["return_per_agent"],
                                             "return_zero_to_expert": greedy_scaled[name]}
                                      for name, r in greedy_rows.items()},
                         behaviour=behaviour,
                         wall_time_s={name: run.metrics["wall_time_s"]
                                      for name, run in learners.items()})
    print(f"runs in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args, default=DEFAULTS))
