"""Calibration tables of the reward-recovery metrics (``mairl.metrics.calibration``).

For a random tabular game, a terminating one and Gems, prints what each metric
gives the true reward, the true reward plus potential shapings (the expert's
value, 10 times it, random potentials of 1, 10 and 100 times the reward's
scale), ``alpha log pi_E``, random rewards and a random critic's reward; then
its ceiling, floor and whether it counts as reward recovery (ceiling >= 0.95,
floor <= 0.1). Gems uses the shipped expert's demonstrations and the
simulator-based measure of ``mairl.metrics.simulated``.

    python experiments/calibration.py [--gems-states 512] [--skip-gems]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import tyro


@dataclass(frozen=True)
class Args:
    """Calibration tables.

    Attributes:
        gamma: discount of the tabular experts (alpha 1).
        gems_states: demonstrated Gems states sampled for the simulated measure.
        gems_episodes: expert episodes recorded for those states.
        draws: draws of each random candidate.
        skip_gems: only the tabular games.
        runs: optional directory of ``make demo`` runs (one subdirectory per
            learner) whose learned rewards are scored on Gems beside the
            calibration, one row per learner (mean over its seeds).
    """

    gamma: float = 0.95
    gems_states: int = 512
    gems_episodes: int = 100
    draws: int = 3
    skip_gems: bool = False
    runs: Path | None = None


def main(args: Args) -> None:
    import jax

    import envs
    from mairl import data
    from mairl.evaluation import calibrate_game
    from mairl.experts import GEMS_SOFT_Q_PARAMS, make_expert
    from mairl.metrics import format_calibration
    from mairl.utils import machine

    print(f"machine: {machine()}")
    for name in ("random-game", "random-goal-game"):
        t = time.perf_counter()
        table = calibrate_game(envs.make(name), alpha=1.0, gamma=args.gamma, draws=args.draws)
        print(f"\n== {name} (alpha 1, gamma {args.gamma}; {time.perf_counter() - t:.0f} s)")
        print(format_calibration(table))
    if args.skip_gems:
        return
    env = envs.make("gems")
    demos = data.collect(jax.random.key(0), env, make_expert(env, "soft-q"),
                         args.gems_episodes, num_envs=min(args.gems_episodes, 100))
    t = time.perf_counter()
    learned = {}
    if args.runs is not None:
        from mairl import runs

        for sub in sorted(p for p in args.runs.iterdir() if (p / "config.json").is_file()):
            run = runs.load_run(sub)
            learned[sub.name] = [(partial(run.algo.q_values, run.seed_params(s)), run.algo.alpha)
                                 for s in range(run.config.schedule.seeds)]
    table = calibrate_game(env, demos=demos, expert=GEMS_SOFT_Q_PARAMS, states=args.gems_states,
                           draws=args.draws, learned=learned)
    print(f"\n== gems, shipped expert (alpha 0.05, gamma 0.95), {args.gems_states} demonstrated "
          f"states, potential cross-fitted on halves ({time.perf_counter() - t:.0f} s)")
    print(format_calibration(table))


if __name__ == "__main__":
    main(tyro.cli(Args))
