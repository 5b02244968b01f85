"""Reward transfer on Gems (``mairl.transfer``): recovered rewards re-optimised on a grid
size the demonstrations never showed.

For each finished run of the demo (``make demo`` writes them under ``runs/demo``;
``--runs`` points elsewhere) and each of its seeds: the learner's reward
``Q - gamma (1 - term) V(s')`` on the demonstrations is distilled into
``r_phi(s, a_i)`` over the egocentric view, then soft Q-learning is trained from
scratch on Gems of side ``--size`` with ``r_phi`` as its reward, and the true
return of its policies is reported, normalised between a uniformly random policy
(0) and the same learner trained on the true reward (1). A randomly initialised
critic's reward is the negative control.

    python experiments/gems_transfer.py --runs runs/demo [--size 11] [--updates 6000]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass(frozen=True)
class Args:
    """Reward transfer on Gems.

    Attributes:
        runs: directory holding the demo's run directories.
        algos: runs to transfer (subdirectories of ``runs``).
        size: grid side of the shifted game.
        updates: soft Q-learning updates per re-optimisation.
        seeds: seeds of each re-optimisation (per recovered reward).
        episodes: evaluation episodes per seed.
        distil_steps: regression steps of the distillation.
    """

    runs: Path = Path("runs/demo")
    algos: tuple[str, ...] = ("mamql-offline", "iq-joint", "bc")
    size: int = 11
    updates: int = 6000
    seeds: int = 2
    episodes: int = 300
    distil_steps: int = 3000


def main(args: Args) -> None:
    import jax
    import numpy as np

    import envs
    from mairl import runs, transfer
    from mairl.algos.soft_q import SoftQConfig
    from mairl.metrics import evaluate_returns, mean_half_width
    from mairl.utils import machine

    print(f"machine: {machine()}")
    first = runs.load_run(args.runs / args.algos[0])
    algo0 = first.algo
    config = SoftQConfig(alpha=algo0.alpha, gamma=algo0.gamma, hidden=(128, 128),
                         learning_rate=5e-4, num_envs=16)
    shifted = envs.make("gems", size=args.size)
    demos = runs.load_demos(first.config.data.demos, first.env)
    key = jax.random.key(0)
    t = time.perf_counter()
    random_ret = np.asarray(evaluate_returns(key, shifted, lambda k, o: shifted.sample_actions(k),
                                             args.episodes).mean(0))
    true_ret = np.asarray(transfer.reoptimise(key, shifted, config, seeds=args.seeds,
                                              updates=args.updates, episodes=args.episodes))
    print(f"shifted game: Gems {args.size} x {args.size}; soft Q-learning alpha {config.alpha}, "
          f"gamma {config.gamma}, {args.updates} updates, {args.seeds} seeds "
          f"({time.perf_counter() - t:.0f} s for the true-reward row)")
    rows = {"random policy": random_ret[None], "true reward": true_ret}
    top = true_ret.mean(0)

    def reoptimised(name, reward_fn, k):
        env = transfer.RewardReplaced(shifted, reward_fn)
        t0 = time.perf_counter()
        ret = np.asarray(transfer.reoptimise(k, env, config, seeds=args.seeds,
                                             updates=args.updates, episodes=args.episodes,
                                             true_env=shifted))
        rows.setdefault(name, []).append(ret)
        print(f"  {name}: {ret.mean(0)} ({time.perf_counter() - t0:.0f} s)")

    fresh = algo0.init(jax.random.key(99), runs.example_batch(algo0, first.env)).params
    reoptimised("random critic", transfer.transfer_reward_of(
        jax.random.key(7), algo0, fresh, demos, first.env, steps=args.distil_steps),
        jax.random.key(8))
    for name in args.algos:
        run = runs.load_run(args.runs / name)
        for seed in range(run.config.schedule.seeds):
            params = jax.tree.map(lambda x, s=seed: x[s], run.params)
            reward_fn = transfer.transfer_reward_of(jax.random.key(10 + seed), run.algo, params,
                                                    demos, run.env, steps=args.distil_steps)
            reoptimised(name, reward_fn, jax.random.key(20 + seed))

    print(f"\n{'reward optimised':<18}{'return (mean of agents)':>26}{'normalised':>16}")
    for name, vals in rows.items():
        per = np.concatenate([np.atleast_2d(v) for v in vals]).mean(axis=1)  # one per seed
        m, h = mean_half_width(per) if per.size > 1 else (float(per[0]), float("nan"))
        norm = (per - random_ret.mean()) / (top.mean() - random_ret.mean())
        nm, nh = mean_half_width(norm) if norm.size > 1 else (float(norm[0]), float("nan"))
        print(f"{name:<18}{m:>16.2f} ± {h:<7.2f}{nm:>10.2f} ± {nh:<5.2f}")
    print("mean over every (recovered reward seed x re-optimisation seed) ± 95% t-interval; "
          "normalised: 0 random policy, 1 soft Q-learning on the true reward.")


if __name__ == "__main__":
    main(tyro.cli(Args))
