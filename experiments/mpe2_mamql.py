"""MAMQL on mpe2's particle games, through the PettingZoo adapter.

For each game (default: ``mpe2-simple-spread`` and ``mpe2-simple-tag``): times
the env (random-action steps/s through ``envs.pettingzoo.from_pettingzoo``
and of mpe2's own ``parallel_env``), measures the scripted expert against
uniformly random actions (all agents, and one agent at a time), records
demonstrations with the expert (``mairl.data.collect``), trains
``mamql-offline``, ``iq-joint`` and ``bc`` on them (several seeds each, one
``mairl.runs.run`` per learner, MLP critics on the raw observations,
``view="global"``; ``iq-joint`` learns online, stepping the game on the host
between jitted updates, so it gets fewer updates, ``--online-updates``), and
prints one table per game: per-agent undiscounted returns, mean ± 95%
t-interval over seeds for learned policies (each seed's mean over
``--final-episodes`` episodes, Boltzmann sampling) and over episodes for the
expert and random rows.

Usage::

    .venv/bin/python experiments/mpe2_mamql.py --out runs/mpe2

Defaults take 5 to 10 minutes per game on two busy CPU cores, most of it
``iq-joint``'s host loop; ``--algos`` with no names measures the expert only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

from mairl import metrics, report, runs

Game = Literal["mpe2-simple-spread", "mpe2-simple-tag", "mpe2-simple-adversary", "mpe2-simple"]


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """MAMQL, IQ-Learn (joint) and BC on mpe2's particle games.

    Attributes:
        games: games to run, one table each.
        role_episodes: episodes per row of the one-random-agent comparison (0: skip).
        speed_steps: random steps timed for the steps/s figures.
    """

    out: Path = Path("runs/mpe2")
    online_updates: int | None = 200
    gamma: float = 0.95
    games: tuple[Game, ...] = ("mpe2-simple-spread", "mpe2-simple-tag")
    role_episodes: int = 50
    speed_steps: int = 2000


def speed(env, num_steps: int) -> tuple[float, float]:
    """Random-action steps/s: through mairl's adapter (auto-reset included) and raw mpe2."""
    actions = report.random_actions(env, num_steps)
    raw = importlib.import_module(f"mpe2.{env.scenario}").parallel_env(**env.game_kwargs)
    raw.reset(seed=0)

    def raw_step(_, t):
        if not raw.agents:
            raw.reset(seed=t)
        raw.step({a: int(actions[t, i]) for i, a in enumerate(raw.possible_agents)})

    return (report.env_steps_per_second(env, actions),
            report.steps_per_second(raw_step, calls=num_steps))


def one_random_agent(env, expert, episodes: int) -> np.ndarray:
    """Mean return per agent ``(row, agent)``: row ``i`` has agent ``i`` play uniformly at
    random and the others follow ``expert``; the last row is everyone scripted."""
    rows = []
    for i in range(env.num_agents + 1):
        def policy_fn(key, obs, i=i):
            actions = np.asarray(expert(key, obs)).copy()
            if i < env.num_agents:
                actions[i] = np.random.default_rng(np.asarray(jax.random.key_data(key))
                                                   ).integers(env.num_actions)
            return actions

        policy_fn.host = True
        rows.append(np.asarray(metrics.evaluate_returns(jax.random.key(30_000), env, policy_fn,
                                                        episodes)).mean(0))
    return np.stack(rows)


def run_game(game: str, args: Args) -> dict:
    env = runs.make_env(game)
    print(f"\n=== {game}: {env.num_agents} agents {env.agents}, obs {env.obs_shape} "
          f"(true sizes {env.obs_sizes}), {env.num_actions} actions, {env.max_steps} steps")
    adapter, raw = speed(env, args.speed_steps)
    print(f"steps/s ({args.speed_steps} random steps): from_pettingzoo adapter {adapter:.0f}, "
          f"raw mpe2 parallel_env {raw:.0f} ({adapter / raw:.2f}x)")
    expert = env.scripted_policy()
    result = {"steps_per_s": {"adapter": adapter, "raw_mpe2": raw}}
    if args.role_episodes:
        roles = one_random_agent(env, expert, args.role_episodes)
        print(f"one agent random, the others scripted ({args.role_episodes} episodes each); "
              "mean return per agent:")
        for i, name in enumerate([*env.agents, "(none)"]):
            print(f"   random {name:<12} " + "  ".join(f"{r:8.2f}" for r in roles[i]))
        result["one_random_agent"] = roles

    learners = {}
    if args.algos:
        demos_path = args.out / f"{game}_expert_demos.npz"
        report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, demos_path,
                            num_envs=8)
        learners = report.train_learners(args, env, demos_path, out=args.out / game,
                                         final_episodes=2, progress=False)
        result["runs"] = {name: run.metrics for name, run in learners.items()}
    result["rows"] = report.compare_returns(env, expert, learners, args,
                                            title=f"{game}: per-agent return")
    env.close()
    return result


def main(args: Args) -> None:
    report.run_games(args, run_game, note=(
        "return: undiscounted per-agent episode return (25 steps), mean ± 95% t-interval "
        "over seeds for learned policies (Boltzmann sampling), over episodes otherwise."))


if __name__ == "__main__":
    main(tyro.cli(Args))
