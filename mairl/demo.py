"""``make demo``: the main job on an embedded default, on the CPU, in minutes.

Solves a general-sum grid game exactly (the logit equilibrium), records expert
demonstrations from it, saves and reloads them, reads the MAMQL authors' Gems
demonstrations when a path is given, and times the Gems environment.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mairl.demo", description=__doc__)
    parser.add_argument("--demos", type=Path, default=None,
                        help="the MAMQL authors' Gems file (gzip pickle) to summarize")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args(argv)

    import jax

    import envs
    from mairl import data as mdata
    from mairl.cli.benchmarks import env_steps_per_second, machine
    from mairl.cli.commands import episode_returns
    from mairl.cli.experts import tabular_policy_fn
    from mairl.solvers import soft_value_iteration

    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)

    game = envs.make("grid-crossing")
    t0 = time.perf_counter()
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.95)
    print(f"[1] grid-crossing: {game.num_states} joint states, logit equilibrium in "
          f"{time.perf_counter() - t0:.2f} s ({int(sol.iterations)} iterations, "
          f"residual {float(sol.residual):.1e})")
    for i, name in enumerate(game.agents):
        v0 = float(np.asarray(game.initial) @ np.asarray(sol.v[i]))
        print(f"    {name}: soft value at the start {v0:.3f}")

    demos = mdata.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 500,
                          num_envs=100)
    path = args.out / "grid_crossing_expert.npz"
    demos.save(path)
    loaded = mdata.load(path, env=game)
    returns = episode_returns(loaded)
    print(f"[2] recorded {loaded.num_episodes} expert episodes, {loaded.num_transitions} "
          f"transitions -> {path}")
    print("    mean return per agent: "
          + ", ".join(f"{n} {r:.3f}" for n, r in zip(game.agents, returns.mean(0), strict=True)))

    if args.demos is not None:
        t0 = time.perf_counter()
        gems_demos = mdata.from_mamql_gems(args.demos)
        ret = episode_returns(gems_demos)
        print(f"[3] authors' Gems demonstrations ({time.perf_counter() - t0:.1f} s to read): "
              f"{gems_demos.num_transitions} transitions, {gems_demos.num_episodes} episodes, "
              f"{int(np.asarray(gems_demos.terminated).sum())} terminated; mean return per "
              f"agent {ret.mean(0).round(2).tolist()}")

    gems = envs.make("gems")
    sps = env_steps_per_second(gems, 4096, 200, repeats=2)
    print(f"[4] Gems: {sps:,.0f} env steps/s with 4,096 vmapped environments "
          "(observations included)")


if __name__ == "__main__":
    main()
