"""Overcooked (cramped_room): MAMQL, IQ-Learn with joint critics and BC from the expert.

Records ``--demo-episodes`` demonstrations (400 steps each) of the shipped PPO
expert (``mairl/assets/overcooked_cramped_room.npz``, loaded as a ``soft-q``
expert; ``experiments/train_overcooked_expert.py``) on ``envs.make("overcooked")``,
whose reward is the sparse delivery reward (20 per soup, to both cooks). Then
trains ``mamql-offline``, ``iq-joint`` and ``bc`` on them through
``mairl.runs.run`` (``--seeds`` seeds vmapped in one jitted run per learner; MLP
critics on the raw observations, ``view="global"``), plays every learned policy
(Boltzmann at ``alpha``) for ``--final-episodes`` full episodes per seed, and
prints, per agent, the sparse return (20 per soup delivered by either cook) and
the shaping return (the agent's own onion, plate and soup pickups: 3, 3, 5,
unscaled), with soups per episode (``mairl.metrics.episode_info_sums``): for the
learners the mean over seeds with a 95% Student-t interval over seeds (each seed
averaged over its episodes); for the expert and uniformly random cooks the mean
over ``--baseline-episodes`` episodes with a 95% Student-t interval over
episodes. Last, the env's throughput: environment steps per second of the
wrapper, random actions, ``jax.vmap`` over 1 and 1024 environments in a
``lax.scan`` of one episode, next to JaxMARL's own ``step``.

    python experiments/overcooked_mamql.py        # about 15 minutes on 2 shared CPU cores
    python experiments/overcooked_mamql.py --seeds 5 --updates 10000
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import tyro

from mairl import metrics, report, runs
from mairl.experts import GEMS_SOFT_Q_PARAMS, make_expert
from mairl.metrics import mean_half_width

EXPERT = GEMS_SOFT_Q_PARAMS.with_name("overcooked_cramped_room.npz")
#: ``info`` fields summed over each episode: soups delivered, sparse and shaping returns.
FIELDS = ("delivery", "sparse_reward", "shaped_reward")


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """MAMQL, IQ-Learn (joint) and BC on Overcooked cramped_room.

    Attributes:
        expert: the soft-q expert file whose demonstrations the learners imitate.
        bench_envs: environment counts of the throughput figures.
    """

    out: Path = Path("runs/overcooked")
    updates: int = 3000
    online_envs: int = 8
    demo_episodes: int = 50
    final_episodes: int = 100
    expert: Path = EXPERT
    bench_envs: tuple[int, ...] = (1, 1024)


def main(args: Args) -> None:
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    env = runs.make_env("overcooked")
    expert = make_expert(env, "soft-q", params_path=args.expert)
    demos_path = args.out / "overcooked_expert_demos.npz"
    report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, demos_path,
                        num_envs=50)
    learners = report.train_learners(args, env, demos_path, evaluations=3, eval_episodes=16,
                                     final_episodes=2, progress=False)

    def measure(key, policy_fn, episodes):
        return jax.jit(lambda k: metrics.episode_info_sums(k, env, policy_fn, episodes,
                                                           FIELDS))(key)

    print()
    measured = report.compare(measure, report.baselines(env, expert), learners,
                              episodes=args.baseline_episodes, seed_episodes=args.final_episodes)
    rows = {}
    for name, m in measured.items():
        rows[name] = {"soups": mean_half_width(m.stats["delivery"]),
                      "sparse": report.per_agent(m.stats["sparse_reward"]),
                      "shaped": report.per_agent(m.stats["shaped_reward"]), "over": m.over}
        if name in learners:
            rows[name]["action_accuracy"] = float(np.mean(
                learners[name].metrics["action_accuracy"]["mean"]))
            rows[name]["wall_s"] = learners[name].metrics["wall_time_s"]
    speed = throughput(env, args.bench_envs)

    columns = [report.Column("soups/episode", 2),
               *report.agent_columns("sparse", env.agents, 1),
               *report.agent_columns("shaped", env.agents, 1),
               report.Column("action acc", 3), report.Column("wall s", 0)]
    print("\n" + report.format_table(
        {name: [r["soups"], *r["sparse"], *r["shaped"], r.get("action_accuracy"),
                r.get("wall_s")] for name, r in rows.items()},
        columns, over={name: r["over"] for name, r in rows.items()}))
    print(f"400-step episodes, mean ± 95% t-interval: learners over {args.seeds} seeds "
          f"({args.final_episodes} episodes each), Boltzmann policies at alpha 1; expert and "
          "random over their episodes. sparse: 20 per soup delivered by either cook; shaped: "
          "the agent's own shaping rewards (onion into pot 3, plate pickup 3, soup pickup 5). "
          "action acc: held-out demonstrations.")
    print("\nenv steps/s (random actions, lax.scan of 400 steps, vmapped; best of 2):")
    for label, value in speed.items():
        print(f"  {label:<28}{value:>14,.0f}")
    report.write_summary(args.out / "summary.json", args, rows=rows, steps_per_s=speed,
                         runs={name: run.metrics for name, run in learners.items()})
    print(f"\nruns in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


def throughput(env, counts) -> dict[str, float]:
    """Env steps per second (episodes of ``env.max_steps`` random steps), wrapper and JaxMARL."""

    def jaxmarl_step(key, state, actions):
        return env.inner.step(key, state, env.unbatchify_actions(actions))

    def episode(reset, step, n):  # one episode of random actions in n envs, jitted
        def play(key):
            _, state = jax.vmap(reset)(jax.random.split(key, n))

            def body(state, key):
                key_act, key_step = jax.random.split(key)
                actions = jax.vmap(env.sample_actions)(jax.random.split(key_act, n))
                _, state, reward, *_ = jax.vmap(step)(jax.random.split(key_step, n), state,
                                                      actions)
                return state, jax.tree.leaves(reward)[0].sum()

            return jax.lax.scan(body, state, jax.random.split(key, env.max_steps))[1].sum()

        return jax.jit(play)

    out = {}
    for n in counts:
        for label, reset, step in (("mairl wrapper", env.reset, env.step),
                                   ("jaxmarl step", env.inner.reset, jaxmarl_step)):
            play = episode(reset, step, n)
            out[f"{label}, {n} envs"] = report.steps_per_second(
                lambda _, i, play=play: play(jax.random.key(i)), calls=1,
                steps_per_call=n * env.max_steps, warmup=1, repeats=2)
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
