"""MAMQL on mpe2's particle games, through the PettingZoo adapter.

For each game (default: ``mpe2-simple-spread`` and ``mpe2-simple-tag``): times
the env (random-action steps/s through ``envs.pettingzoo.from_pettingzoo``
and of mpe2's own ``parallel_env``), measures the scripted expert against
uniformly random actions (all agents, and one agent at a time), records
demonstrations with the expert (``mairl.data.collect``), trains
``mamql-offline``, ``iq-joint`` and ``bc`` on them (several seeds each, one
``mairl.cli.train.run`` per algorithm, MLP critics on the raw observations,
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

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mairl.metrics.returns import mean_half_width

ALGOS = ("mamql-offline", "iq-joint", "bc")
GAMES = ("mpe2-simple-spread", "mpe2-simple-tag", "mpe2-simple-adversary", "mpe2-simple")


def steps_per_second(env, num_steps: int) -> tuple[float, float]:
    """Random-action steps/s: through mairl's adapter (auto-reset included) and raw mpe2."""
    import importlib

    import jax

    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.num_actions, (num_steps, env.num_agents)).astype(np.int32)
    keys = list(jax.random.split(jax.random.key(1), num_steps))
    obs, state = env.reset(jax.random.key(0))
    t0 = time.perf_counter()
    for t in range(num_steps):
        obs, state, *_ = env.step(keys[t], state, actions[t])
    adapter = num_steps / (time.perf_counter() - t0)

    raw = importlib.import_module(f"mpe2.{env.scenario}").parallel_env(**env.game_kwargs)
    raw.reset(seed=0)
    t0 = time.perf_counter()
    for t in range(num_steps):
        if not raw.agents:
            raw.reset(seed=t)
        raw.step({a: int(actions[t, i]) for i, a in enumerate(raw.possible_agents)})
    return adapter, num_steps / (time.perf_counter() - t0)


def one_random_agent(env, expert, episodes: int) -> np.ndarray:
    """Mean return per agent ``(row, agent)``: row ``i`` has agent ``i`` play uniformly at
    random and the others follow ``expert``; the last row is everyone scripted."""
    import jax

    from mairl import metrics

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


def print_table(game: str, rows: dict[str, dict], agents) -> None:
    head = f"{'':<15}" + "".join(f"{a:>17}" for a in agents) + "  over"
    print(f"\n{game}: per-agent return")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        cells = "".join(f"{m:>9.2f} ± {h:<5.2f}" for m, h in r["return_per_agent"])
        print(f"{name:<15}{cells}  {r['over']}")


def run_game(game: str, args, out: Path) -> dict:
    import jax

    import envs
    from mairl import data, metrics
    from mairl.cli.train import RunConfig, run
    from mairl.data import episode_returns

    env = envs.make(game)
    print(f"\n=== {game}: {env.num_agents} agents {env.agents}, obs {env.obs_shape} "
          f"(true sizes {env.obs_sizes}), {env.num_actions} actions, {env.max_steps} steps")
    adapter, raw = steps_per_second(env, args.speed_steps)
    print(f"steps/s ({args.speed_steps} random steps): from_pettingzoo adapter {adapter:.0f}, "
          f"raw mpe2 parallel_env {raw:.0f} ({adapter / raw:.2f}x)")

    rows: dict[str, dict] = {}
    expert = env.scripted_policy()

    def uniform(key, obs):
        return env.sample_actions(key)

    uniform.host = True
    for i, (name, policy) in enumerate([("expert", expert), ("random", uniform)]):
        returns = np.asarray(metrics.evaluate_returns(jax.random.key(10_000 + i), env, policy,
                                                      args.baseline_episodes))
        rows[name] = {"return_per_agent": [mean_half_width(r) for r in returns.T],
                      "over": f"{args.baseline_episodes} episodes"}
    roles = one_random_agent(env, expert, args.role_episodes) if args.role_episodes else None
    if roles is not None:
        print(f"one agent random, the others scripted ({args.role_episodes} episodes each); "
              "mean return per agent:")
        for i, name in enumerate([*env.agents, "(none)"]):
            print(f"   random {name:<12} " + "  ".join(f"{r:8.2f}" for r in roles[i]))
    if not args.algos:
        env.close()
        print_table(game, rows, env.agents)
        return {"steps_per_s": {"adapter": adapter, "raw_mpe2": raw}, "rows": rows,
                "one_random_agent": roles.tolist() if roles is not None else None}

    demos_path = out / f"{game}_expert_demos.npz"
    t0 = time.perf_counter()
    demos = data.collect(jax.random.key(0), env, expert, args.demo_episodes, num_envs=8)
    demos.save(demos_path)
    print(f"demonstrations: {demos.num_episodes} episodes, {demos.num_transitions} transitions "
          f"in {time.perf_counter() - t0:.0f} s, mean return per agent "
          f"{np.round(episode_returns(demos).mean(0), 2).tolist()} -> {demos_path}")

    summaries = {}
    for algo in args.algos:
        online = algo == "iq-joint"
        updates = args.online_updates if online else args.updates
        cfg = RunConfig(algo=algo, env=game, demos=str(demos_path), seeds=args.seeds,
                        updates=updates, eval_every=updates, learning_rate=args.learning_rate,
                        hidden=(128, 128), critic="mlp", view="global", gamma=args.gamma,
                        num_envs=1, eval_episodes=1, final_episodes=args.final_episodes)
        print(f"== {algo}: {args.seeds} seeds x {updates} updates"
              + (", one game step per seed per update" if online else ""))
        summary = run(cfg, out / game / algo, quiet=True)
        summaries[algo] = summary
        per_seed = np.asarray(summary["return_per_agent"]["per_seed"])  # (seed, agent)
        rows[algo] = {"return_per_agent": [mean_half_width(r) for r in per_seed.T],
                      "over": f"{args.seeds} seeds x {args.final_episodes} episodes"}
        acc = summary.get("action_accuracy", {}).get("mean")
        print(f"   wall {summary['wall_time_s']:.0f} s; held-out action accuracy per agent "
              f"{np.round(acc, 3).tolist() if acc is not None else 'n/a'}")
    env.close()
    print_table(game, rows, env.agents)
    return {"steps_per_s": {"adapter": adapter, "raw_mpe2": raw}, "rows": rows,
            "one_random_agent": roles.tolist() if roles is not None else None,
            "runs": summaries}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/mpe2"))
    parser.add_argument("--games", nargs="+", default=list(GAMES[:2]), choices=GAMES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--online-updates", type=int, default=200,
                        help="updates of iq-joint, which learns online on the host")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--gamma", type=float, default=0.95)
    parser.add_argument("--demo-episodes", type=int, default=200,
                        help="expert episodes recorded for training")
    parser.add_argument("--baseline-episodes", type=int, default=100,
                        help="episodes for the expert and random rows")
    parser.add_argument("--final-episodes", type=int, default=50,
                        help="episodes per seed for each learned policy")
    parser.add_argument("--role-episodes", type=int, default=50,
                        help="episodes per row of the one-random-agent comparison (0: skip)")
    parser.add_argument("--speed-steps", type=int, default=2000)
    parser.add_argument("--algos", nargs="*", default=list(ALGOS), choices=ALGOS,
                        help="algorithms to train (none: only the expert measurements)")
    args = parser.parse_args(argv)

    from mairl.utils import machine

    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {game: run_game(game, args, args.out) for game in args.games}
    print("\nreturn: undiscounted per-agent episode return (25 steps), mean ± 95% t-interval "
          "over seeds for learned policies (Boltzmann sampling), over episodes otherwise.")
    (args.out / "summary.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "games": results},
        indent=2, default=float))
    print(f"runs in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
