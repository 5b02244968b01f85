"""Continuous-action MAMQL and BC on the point-masses game.

Records demonstrations of the game's scripted expert (a tanh-Gaussian policy
heading for its own target, ``envs.point_masses``), trains
``mamql-continuous-offline`` (value term on expert states),
``mamql-continuous`` (online: expert and own replayed transitions) and
``bc-continuous`` on them (several seeds each, one ``mairl.runs.run`` per
learner), and prints per-agent undiscounted returns of the expert, uniformly
random actions and every learner: mean ± 95% t-interval over seeds for the
learners (each seed's mean over ``--final-episodes`` episodes, actions drawn
from the actors) and over episodes for the expert and random rows.

Usage::

    .venv/bin/python experiments/continuous_mamql.py --out runs/continuous
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import tyro

from mairl import metrics, report, runs
from mairl.algos import ALGOS
from mairl.utils import machine

Learner = Literal["mamql-continuous-offline", "mamql-continuous", "bc-continuous"]


@dataclass(frozen=True)
class Args:
    """Continuous MAMQL (offline and online) and BC against the scripted expert.

    Attributes:
        out: directory of the runs, the demonstrations and ``summary.json``.
        env: the game.
        seeds: training seeds per learner, trained side by side in one run.
        updates: gradient updates per seed.
        learning_rate: Adam step size of the critics and actors.
        hidden: hidden widths of every MLP.
        alpha: temperature of MAMQL (recorded with BC).
        gamma: discount.
        batch_size: expert transitions per update.
        online_envs: games each online seed steps per update.
        demo_episodes: expert episodes recorded for training.
        baseline_episodes: episodes of the expert and random rows.
        final_episodes: episodes per seed played by each learned policy.
        algos: learners to train.
    """

    out: Path = Path("runs/continuous")
    env: str = "point-masses"
    seeds: int = 3
    updates: int = 3000
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    alpha: float = 0.1
    gamma: float = 0.99
    batch_size: int = 256
    online_envs: int = 8
    demo_episodes: int = 200
    baseline_episodes: int = 500
    final_episodes: int = 200
    algos: tuple[Learner, ...] = ("mamql-continuous-offline", "mamql-continuous",
                                  "bc-continuous")


def learner_config(args: Args, name: str, demos: Path) -> runs.RunConfig:
    """The run of learner ``name``: the same networks, steps and discount for all."""
    spec = ALGOS[name].config
    values = {"hidden": tuple(args.hidden), "learning_rate": args.learning_rate,
              "actor_learning_rate": args.learning_rate, "alpha": args.alpha,
              "gamma": args.gamma, "batch_size": args.batch_size, "num_envs": args.online_envs}
    fields = set(spec.__dataclass_fields__)
    return runs.RunConfig(
        algo=spec(**{k: v for k, v in values.items() if k in fields}),
        env=runs.EnvConfig(args.env),
        data=runs.DataConfig(demos=str(demos)),
        schedule=runs.ScheduleConfig(seeds=args.seeds, updates=args.updates,
                                     eval_every=args.updates),
        eval=runs.EvalConfig(eval_episodes=16, final_episodes=args.final_episodes),
    )


def main(args: Args) -> None:
    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = runs.make_env(args.env)
    print(f"{env.name}: {env.num_agents} agents, obs {env.obs_shape}, actions "
          f"{env.action_spaces[0]}, {env.max_steps} steps")
    expert = env.scripted_policy()
    demos = args.out / "expert_demos.npz"
    report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, demos, num_envs=50)
    learners, timing = {}, {}
    for name in args.algos:
        config = learner_config(args, name, demos)
        print(f"\n== {name}: {args.seeds} seeds x {args.updates} updates", flush=True)
        run = runs.run(config, args.out / name, overwrite=True)
        timing[name] = run.metrics["wall_time_s"]
        ll = run.metrics["heldout_log_likelihood"]["mean"]
        mse = run.metrics["action_mse"]["mean"]
        print(f"{name}: trained in {timing[name]:.0f} s (compile "
              f"{run.metrics['compile_time_s']:.0f} s); held-out log-likelihood per agent "
              f"{[round(x, 2) for x in ll]}, action MSE {[round(x, 4) for x in mse]}",
              flush=True)
        learners[name] = run
    print()
    measured = report.compare(
        lambda key, policy_fn, episodes: {
            "returns": metrics.evaluate_returns(key, env, policy_fn, episodes)},
        report.baselines(env, expert), learners,
        episodes=args.baseline_episodes, seed_episodes=args.final_episodes)
    rows = {name: report.per_agent(m.stats["returns"]) for name, m in measured.items()}
    print("\n" + report.format_table(
        rows, report.agent_columns("", env.agents),
        over={name: m.over for name, m in measured.items()},
        title=f"{env.name}: per-agent return"))
    print("\nreturn: undiscounted per-agent episode return, mean ± 95% t-interval over seeds "
          "for learned policies (actions drawn from the actors), over episodes otherwise.")
    report.write_summary(args.out / "summary.json", args,
                         rows={name: {"return_per_agent": r} for name, r in rows.items()},
                         wall_time_s=timing)
    print(f"runs in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
