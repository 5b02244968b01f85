"""Train the Overcooked expert and write ``mairl/assets/overcooked_cramped_room.npz``.

PPO (``mairl.algos.ppo``) with parameter sharing (one actor and one value
network, both used by the two cooks on their own observations; JaxMARL's
observations list each cook's own channels first, so a shared network knows
which cook it is) on ``envs.make("overcooked")`` (cramped_room), run by
``mairl.runs.run`` (a run directory with curves and a checkpoint every
``--eval-every`` updates; ``--resume`` goes on from the last one after an
interruption). Each cook is trained on

    r_i = sparse + c(t) * shaped_i,

the delivery reward shared by both (20 per soup) plus its own shaping reward
(``envs.jaxmarl``: 3 onion into pot, 3 useful plate pickup, 5 soup pickup), with
the shaping weight ``c(t)`` annealed linearly from ``--algo.shaping-start`` to 0
over the first ``--algo.shaping-updates`` updates, so the final policy is
trained on the delivery reward alone; the step size decays linearly to 0 over
``--algo.lr-decay-updates`` updates (both set for the default ``--updates``).

The actor's logits, times ``alpha = 1``, are the soft-Q values of the Boltzmann
policy that is the PPO policy, so the file is written in the soft-Q expert
format (``mairl.params.save_params``, ``features = "identity"``, ``alpha =
1``), the shared actor copied onto both agents, and loads with

    mairl demos --env overcooked --expert soft-q \\
        --expert-params mairl/assets/overcooked_cramped_room.npz

to a policy that samples each cook's action from the softmax of its logits,
i.e. the trained PPO policy itself. At the end the script measures soups
delivered per 400-step episode (and sparse and shaped returns per agent,
``mairl.metrics.episode_info_sums``) of the expert and of uniformly random
cooks over ``--final-episodes`` episodes, and stores them in the file's
metadata. A run is deterministic for a given seed on one machine.

    python experiments/train_overcooked_expert.py     # about 11 minutes on 2 shared CPU cores
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from envs.jaxmarl import DELIVERY_REWARD
from mairl import report
from mairl.algos import PPOConfig
from mairl.algos.soft_q import save_soft_q_expert
from mairl.evaluation import policy_fn_of
from mairl.metrics import episode_info_sums

ASSET = Path(__file__).resolve().parent.parent / "mairl" / "assets" / "overcooked_cramped_room.npz"


@dataclass(frozen=True)
class Args(report.ExpertArgs):
    """PPO training of the Overcooked expert (and the fields of ``mairl.report.ExpertArgs``).

    Attributes:
        layout: Overcooked layout (``envs.jaxmarl.OVERCOOKED_LAYOUTS``).
        algo: the PPO learner, each update a rollout of ``num_steps`` x ``num_envs``
            environment steps and its epochs of minibatch steps; its
            ``lr_decay_updates`` and ``shaping_updates`` are set for the default
            ``updates`` (all of them, and the first half).
        out: where to write the expert file.
    """

    layout: str = "cramped_room"
    updates: int = 375
    algo: PPOConfig = PPOConfig(
        gamma=0.99, learning_rate=1e-3, lr_decay_updates=375, max_grad_norm=0.5, num_envs=64,
        num_steps=128, epochs=4, minibatches=4, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01,
        vf_coef=0.5, shared=True, hidden=(64, 64), shaping_start=1.0,
        shaping_key="shaped_reward", shaping_updates=188,
    )
    eval_every: int = 25
    eval_episodes: int = 64
    final_episodes: int = 1000
    run_dir: Path = Path("runs/overcooked_expert")
    out: Path = ASSET

    @property
    def env_name(self) -> str:
        return "overcooked" if self.layout == "cramped_room" else f"overcooked-{self.layout}"


#: ``info`` fields summed per episode, and the names this script reports them under.
OVERCOOKED_FIELDS = {"soups": "delivery", "sparse": "sparse_reward", "shaped": "shaped_reward"}


def rollout_stats(key, env, policy_fn, num_episodes: int) -> dict[str, jax.Array]:
    """Soups ``(episode,)`` and sparse and shaped returns ``(episode, agent)`` of
    ``num_episodes`` full Overcooked episodes (:func:`mairl.metrics.episode_info_sums`)."""
    sums = episode_info_sums(key, env, policy_fn, num_episodes, OVERCOOKED_FIELDS.values())
    return {name: sums[field] for name, field in OVERCOOKED_FIELDS.items()}


def episode_stats(key, env, policy_fn, num_episodes: int) -> dict[str, np.ndarray]:
    """:func:`rollout_stats`, compiled and brought to the host as NumPy arrays."""
    out = jax.jit(lambda k: rollout_stats(k, env, policy_fn, num_episodes))(key)
    return {name: np.asarray(value) for name, value in jax.device_get(out).items()}


def describe(name: str, stats: dict[str, np.ndarray]) -> str:
    soups = stats["soups"]
    half = 1.96 * soups.std(ddof=1) / np.sqrt(soups.size)
    sparse = np.array2string(stats["sparse"].mean(0), precision=1)
    shaped = np.array2string(stats["shaped"].mean(0), precision=1)
    return (f"{name:<8} soups/episode {soups.mean():6.2f} ± {half:.2f} (95%)  "
            f"sparse return per agent {sparse}  shaping return per agent {shaped}")


def main(args: Args) -> None:
    t0 = time.perf_counter()
    env = envs.make(args.env_name)
    steps = args.algo.num_envs * args.algo.num_steps
    print(f"PPO on {args.env_name}: {args.updates} updates x {steps} env steps "
          f"({args.updates * steps} steps)", flush=True)

    def line(m: dict[str, float]) -> str:
        return (f"soups/episode {m['return'] / DELIVERY_REWARD:6.2f}  "
                f"shaping {m['train/shaping_weight']:.2f}  entropy {m['train/entropy']:.3f}  "
                f"value loss {m['train/value_loss']:.2f}")

    run = report.train_forward(args.algo, args.env_name, args, [report.CurvePrinter(line, t0)])
    print(f"trained in {time.perf_counter() - t0:.1f} s (run in {args.run_dir})", flush=True)

    params = run.seed_params(0)
    key_eval, key_random = jax.random.split(jax.random.key(args.seed), 2)
    stats = episode_stats(key_eval, env, policy_fn_of(run.algo, params), args.final_episodes)
    random_stats = episode_stats(key_random, env, lambda k, o: env.sample_actions(k),
                                 args.final_episodes)
    print(describe("expert", stats))
    print(describe("random", random_stats))
    actor = params["actor"]
    if args.algo.shared:  # the soft-Q expert format: critics stacked on the agent axis
        actor = jax.tree.map(lambda p: jnp.stack([p] * env.num_agents), actor)
    path = save_soft_q_expert(
        args.out, actor, args.algo, env, env_id=args.env_name, features="identity",
        trainer="ppo-shared" if args.algo.shared else "ppo",
        seed=int(args.seed),
        total_steps=int(args.updates * steps),
        eval_episodes=int(args.final_episodes),
        eval_soups_per_episode=float(stats["soups"].mean()),
        random_soups_per_episode=float(random_stats["soups"].mean()),
    )
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB); "
          f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
