"""Train the Gems soft-Q expert and write ``mairl/assets/gems_soft_q.npz``.

Multi-agent soft Q-learning (``mairl.algos.soft_q``, trained by
``mairl.train.make_train``) on Gems' true rewards, acting on the map
observations through each agent's exact features
``mairl.experts.gems_agent_features``, over a curriculum of grid sizes: first a
small grid, where both agents often stand on purple gems by chance and so learn
to meet there for the +6 bonus, then the 15 x 15 game, starting from the
critics of the previous stage (the features are offsets in cells, the same on
every grid size). A single run on the 15 x 15 grid settles on collecting its own
gems (about 3.6 per agent): meeting on purple almost never happens by chance there.

The expert's policy is Boltzmann in its critics at the training temperature
``alpha`` (0.05 by default), the soft-optimal policy of that temperature; the
shipped file scores about 33.5 per agent at that temperature (the MAMQL
authors' experts: 13.2), and about 10.3 when the same critics are sampled at
``alpha = 1``. At the end the script measures the mean per-agent return over
``--final-episodes`` episodes of ``envs.make("gems")`` with
``mairl.metrics.evaluate_returns``, and saves the parameters with that figure
in the file's metadata. A run is deterministic for a given seed on one machine.

    python experiments/train_gems_expert.py                 # 3.5 to 5.5 minutes on 2 CPU cores
    python experiments/train_gems_expert.py --out /tmp/expert.npz --seed 1
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from mairl.algos import SoftQConfig, make_soft_q
from mairl.algos.soft_q import save_soft_q_expert
from mairl.evaluation import make_eval_fn, policy_fn_of
from mairl.experts import GEMS_SOFT_Q_PARAMS, gems_agent_features
from mairl.metrics import evaluate_returns, mean_confidence_interval
from mairl.train import TrainConfig, TrainData, make_train


@dataclass(frozen=True)
class Args:
    """Training of the Gems soft-Q expert.

    Attributes:
        sizes: grid side of each curriculum stage; the last one should be 15.
        updates: updates of each stage (one env step of every env and one
            gradient step each).
        algo: the soft-Q learner (its ``alpha`` is also the saved expert's).
        eval_every: updates between progress evaluations.
        eval_episodes: episodes per progress evaluation.
        final_episodes: episodes of the final evaluation on the 15 x 15 game.
        seed: random seed.
        out: where to write the parameters.
    """

    sizes: tuple[int, ...] = (5, 15)
    updates: tuple[int, ...] = (20_000, 30_000)
    algo: SoftQConfig = SoftQConfig(alpha=0.05, gamma=0.95, learning_rate=3e-4, batch_size=256,
                                    num_envs=32, buffer_size=100_000, tau=0.005, critic="mlp",
                                    hidden=(128, 128))
    eval_every: int = 5_000
    eval_episodes: int = 256
    final_episodes: int = 2_000
    seed: int = 0
    out: Path = GEMS_SOFT_Q_PARAMS


def make_algo(config: SoftQConfig, env):
    """The soft-Q learner on ``env``, each agent reading its Gems features."""
    return make_soft_q(config, num_agents=env.num_agents, obs_shape=env.obs_shape,
                       num_actions=env.num_actions, env=env, obs_transform=gems_agent_features)


def train_stage(args: Args, env, updates: int, key: jax.Array, params, t0: float):
    """One curriculum stage, from ``params`` (fresh critics where ``None``); progress
    printed after every chunk of ``eval_every`` updates. Returns the critics."""
    algo = make_algo(args.algo, env)
    if params is not None:
        algo = algo._replace(init=functools.partial(algo.init, params=params))
    schedule = TrainConfig(num_updates=updates, eval_every=min(args.eval_every, updates))
    train = make_train(algo, schedule, make_eval_fn(algo, env, episodes=args.eval_episodes))
    data = TrainData(None, None)
    state, chunk_keys = jax.jit(train.init)(key, data)
    chunks = jax.jit(train.chunks)
    for c in range(schedule.num_chunks):
        state, curves = chunks(state, chunk_keys[c:c + 1], jnp.int32(c), data)
        returns = np.asarray(curves["return"][0])
        loss = np.asarray(curves["train/loss"][0])
        print(f"  {time.perf_counter() - t0:7.1f} s  update {(c + 1) * schedule.eval_every:6d}  "
              f"return per agent {np.array2string(returns, precision=2)}  "
              f"loss {np.array2string(loss, precision=3)}", flush=True)
    return state.params


def main(args: Args) -> None:
    if len(args.sizes) != len(args.updates) or not args.sizes:
        raise SystemExit(
            f"error: --sizes and --updates need one entry per stage, got {args.sizes} "
            f"and {args.updates}"
        )
    t0 = time.perf_counter()
    key = jax.random.key(args.seed)
    params = None
    for stage, (size, updates) in enumerate(zip(args.sizes, args.updates, strict=True)):
        print(f"stage {stage}: gems {size}x{size}, {updates} updates", flush=True)
        key, key_stage = jax.random.split(key)
        params = train_stage(args, envs.make("gems", size=size), updates, key_stage, params, t0)
    params = jax.block_until_ready(params)
    train_time = time.perf_counter() - t0

    env = envs.make("gems")
    policy_fn = policy_fn_of(make_algo(args.algo, env), params)
    key, key_eval = jax.random.split(key)
    returns = evaluate_returns(key_eval, env, policy_fn, args.final_episodes)
    summary = mean_confidence_interval(returns)
    mean = np.asarray(summary.mean)
    lower, upper = np.asarray(summary.lower), np.asarray(summary.upper)
    print(f"trained in {train_time:.1f} s")
    for i, name in enumerate(env.agents):
        print(f"{name}: mean return {mean[i]:.3f} (95% CI {lower[i]:.3f} .. {upper[i]:.3f}) "
              f"over {args.final_episodes} episodes, alpha {args.algo.alpha}")
    path = save_soft_q_expert(
        args.out, params, args.algo, env, env_id="gems", features="gems",
        seed=int(args.seed),
        curriculum_sizes=",".join(str(s) for s in args.sizes),
        curriculum_updates=",".join(str(u) for u in args.updates),
        eval_episodes=int(args.final_episodes),
        **{f"eval_return_{name}": float(mean[i]) for i, name in enumerate(env.agents)},
    )
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB); "
          f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
