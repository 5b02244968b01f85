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

from mairl import report, runs
from mairl.utils import machine

Learner = Literal["mamql-continuous-offline", "mamql-continuous", "bc-continuous"]


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """Continuous MAMQL (offline and online) and BC against the scripted expert.

    Attributes:
        env: the game.
        alpha: temperature of MAMQL (recorded with BC).
        batch_size: expert transitions per update.
        algos: learners to train.
    """

    env: str = "point-masses"
    alpha: float = 0.1
    batch_size: int = 256
    algos: tuple[Learner, ...] = ("mamql-continuous-offline", "mamql-continuous",
                                  "bc-continuous")


#: The script's defaults (``--help`` shows them): small MLPs, a larger step.
DEFAULTS = Args(out=Path("runs/continuous"), updates=3000, learning_rate=1e-3, hidden=(64, 64),
                online_envs=8, baseline_episodes=500, final_episodes=200)


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
    # the same networks, steps and discount for all learners; the env's own view
    learners = report.train_learners(args, env, demos, progress=False, eval_episodes=16,
                                     view="agent", alpha=args.alpha,
                                     batch_size=args.batch_size)
    rows = report.compare_returns(env, expert, learners, args,
                                  title=f"{env.name}: per-agent return")
    print("\nreturn: undiscounted per-agent episode return, mean ± 95% t-interval over seeds "
          "for learned policies (actions drawn from the actors), over episodes otherwise.")
    report.write_summary(args.out / "summary.json", args,
                         rows={name: {"return_per_agent": r["return_per_agent"]}
                               for name, r in rows.items()},
                         wall_time_s={name: run.metrics["wall_time_s"]
                                      for name, run in learners.items()})
    print(f"runs in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args, default=DEFAULTS))
