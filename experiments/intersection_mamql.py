"""MAMQL on highway-env's multi-agent intersection (the paper's driving domain).

By default the game is ``intersection-jax`` (:mod:`envs.intersection_jax`, the
same game in pure JAX, checked against highway-env step by step in
``experiments/intersection_fidelity.py``), so online learners train jitted;
``--env intersection`` (or ``intersection-speed``) plays highway-env itself
through the host adapter, for checking.

Records demonstrations with the scripted expert, trains ``mamql-offline``,
``iq-joint`` and ``bc`` on them (several seeds each, one ``mairl.runs.run`` per
learner; online learners (``iq-joint``, ``mamql`` with ``--algos``) step the
game while they learn: jitted on ``intersection-jax``, on the host between jitted
updates on highway-env, where ``--online-updates`` keeps their budget small), then plays the
expert, random and always-IDLE drivers and every seed of every learned policy
through the same host loop (:func:`rollout`), which counts collisions and
arrivals next to the returns, and prints one table. Learned policies sample
from their Boltzmann policies (``--greedy`` for argmax); the runs' own final
evaluation is kept to its minimum (2 episodes per seed) since this loop
replaces it. It also times the env: steps/s through mairl's adapter and of raw
highway-env with the same configuration (highway-env's own pandas
observations).

Usage::

    .venv/bin/python experiments/intersection_mamql.py --out runs/intersection
    # the 5-seed comparison on intersection-jax (about 16 minutes on two cores):
    .venv/bin/python experiments/intersection_mamql.py --seeds 5 \
        --algos mamql mamql-offline iq-joint bc --online-updates 2000 --online-envs 8

Defaults take about 10-15 minutes on two idle CPU cores (iq-joint, stepping the game
online, takes most of it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

from mairl import report, runs
from mairl.metrics import mean_half_width
from mairl.utils import machine


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """MAMQL, IQ-Learn (joint) and BC on highway-env's intersection.

    Attributes:
        env: ``intersection-jax`` (the paper's speed normalization, pure JAX),
            ``intersection-jax-speed`` (informative velocity features), or the
            highway-env originals ``intersection`` / ``intersection-speed``.
        speed_steps: random steps timed for the steps/s figures.
        greedy: play learned policies greedily instead of sampling from them.
    """

    out: Path = Path("runs/intersection")
    online_updates: int | None = 500
    final_episodes: int = 30
    env: Literal["intersection-jax", "intersection-jax-speed", "intersection",
                 "intersection-speed"] = "intersection-jax"
    speed_steps: int = 300
    greedy: bool = False


def rollout(key: jax.Array, env, policy_fn, episodes: int) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes of ``policy_fn`` through the mairl protocol.

    Returns per-episode ``returns (episode, agent)``, ``crashed (episode,)``
    (any vehicle crashed) and ``arrived (episode, agent)`` (the vehicle had
    arrived when the episode ended).
    """
    policy = policy_fn if getattr(policy_fn, "host", False) else jax.jit(policy_fn)
    step = jax.jit(env.step) if env.jittable else env.step
    key_reset, key_run = jax.random.split(key)
    obs, state = env.reset(key_reset)
    returns = np.zeros((episodes, env.num_agents))
    crashed = np.zeros(episodes, bool)
    arrived = np.zeros((episodes, env.num_agents), bool)
    episode, steps = 0, 0
    while episode < episodes:
        key_act, key_step = jax.random.split(jax.random.fold_in(key_run, steps))
        actions = np.asarray(policy(key_act, obs), np.int32)
        obs, state, reward, terminated, truncated, info = step(key_step, state, actions)
        returns[episode] += np.asarray(reward)
        steps += 1
        if terminated or truncated:
            crashed[episode] = np.asarray(info["crashed"]).any()
            arrived[episode] = np.asarray(info["arrived"])
            episode += 1
    return {"returns": returns, "crashed": crashed, "arrived": arrived}


def speed(env, num_steps: int) -> tuple[float, float]:
    """Steps/s with uniformly random actions: mairl's adapter, raw highway-env (for
    ``intersection-jax`` envs, of the highway-env game with the same velocity scaling;
    ``experiments/intersection_fidelity.py`` times the JAX env)."""
    from highway_env.envs.intersection_env import MultiAgentIntersectionEnv

    if env.jittable:
        env = runs.make_env("intersection-speed" if env.speed_range[0] < 0 else "intersection")

    actions = report.random_actions(env, num_steps)
    raw = MultiAgentIntersectionEnv(config=env.config)
    raw.reset(seed=0)

    def raw_step(_, t):
        _, _, terminated, truncated, _ = raw.step(tuple(int(a) for a in actions[t]))
        if terminated or truncated:
            raw.reset(seed=t)

    return (report.env_steps_per_second(env, actions),
            report.steps_per_second(raw_step, calls=num_steps))


def main(args: Args) -> None:
    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = runs.make_env(args.env)
    adapter, raw = speed(env, args.speed_steps)
    print(f"steps/s ({args.speed_steps} random steps): mairl adapter {adapter:.1f}, raw "
          f"highway-env (pandas observations) {raw:.1f} ({adapter / raw:.2f}x)")

    expert = env.scripted_policy()  # NumPy on the host, or JAX for intersection-jax
    demos_path = args.out / "intersection_expert_demos.npz"
    report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, demos_path,
                        num_envs=args.demo_episodes)
    learners = report.train_learners(args, env, demos_path, evaluations=4, final_episodes=2)

    def idle(key, obs):
        return np.ones(env.num_agents, np.int32)

    idle.host = not env.jittable
    print()
    measured = report.compare(
        lambda key, policy_fn, episodes: rollout(key, env, policy_fn, episodes),
        report.baselines(env, expert, idle=idle), learners,
        episodes=args.baseline_episodes, seed_episodes=args.final_episodes, greedy=args.greedy)
    rows = {name: {"return_per_agent": report.per_agent(m.stats["returns"]),
                   "collision": mean_half_width(m.stats["crashed"]),
                   "arrival": mean_half_width(m.stats["arrived"]),  # share of vehicles
                   "over": m.over}
            for name, m in measured.items()}
    columns = [*report.agent_columns("return", env.agents), "collision", "arrival"]
    print("\n" + report.format_table(
        {name: [*r["return_per_agent"], r["collision"], r["arrival"]] for name, r in rows.items()},
        columns, over={name: r["over"] for name, r in rows.items()}))
    print("return: undiscounted per-agent episode return, mean ± 95% t-interval (over seeds for "
          "learned policies, over episodes otherwise); collision: fraction of episodes with a "
          "crash; arrival: fraction of vehicles arrived when the episode ended.")
    report.write_summary(args.out / "summary.json", args, env=args.env,
                         steps_per_s={"adapter": adapter, "raw_highway_env": raw}, rows=rows,
                         runs={name: run.metrics for name, run in learners.items()})
    print(f"\nruns in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
