"""MAMQL on highway-env's multi-agent intersection (the paper's driving domain).

Measures the scripted expert against random and always-IDLE drivers
(collision and arrival rates, per-agent returns), records demonstrations with
the expert, trains ``mamql-offline``, ``iq-joint`` and ``bc`` on them (several
seeds each, one run per algorithm through ``mairl.cli.train.run``; ``iq-joint``
learns online, stepping the game on the host between jitted updates, so it gets
fewer updates, ``--online-updates``),
evaluates every learned policy in the game, and prints one table. It also times
the env: steps/s through mairl's adapter and of raw highway-env with the same
configuration (highway-env's own pandas observations).

Every policy is evaluated by the same host loop (:func:`rollout`), which counts
collisions and arrivals next to the returns; learned policies sample from their
Boltzmann policies (``--greedy`` for argmax). The runs' own final evaluation is
kept to its minimum (2 episodes per seed) since this loop replaces it.

Usage::

    .venv/bin/python experiments/intersection_mamql.py --out runs/intersection

Defaults take about 10-15 minutes on two idle CPU cores (iq-joint, stepping the game
online, takes most of it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mairl.metrics.returns import mean_half_width

ALGOS = ("mamql-offline", "iq-joint", "bc")


def rollout(env, policy_fn, episodes: int, key) -> dict:
    """Play ``episodes`` episodes of ``policy_fn`` through the mairl protocol.

    Returns per-episode ``returns (episode, agent)``, ``crashed (episode,)``
    (any vehicle crashed) and ``arrived (episode, agent)`` (the vehicle had
    arrived when the episode ended), and the steps played.
    """
    import jax

    policy = policy_fn if getattr(policy_fn, "host", False) else jax.jit(policy_fn)
    key_reset, key_run = jax.random.split(key)
    obs, state = env.reset(key_reset)
    returns = np.zeros((episodes, env.num_agents))
    crashed = np.zeros(episodes, bool)
    arrived = np.zeros((episodes, env.num_agents), bool)
    episode, steps = 0, 0
    while episode < episodes:
        key_act, key_step = jax.random.split(jax.random.fold_in(key_run, steps))
        actions = np.asarray(policy(key_act, obs), np.int32)
        obs, state, reward, terminated, truncated, info = env.step(key_step, state, actions)
        returns[episode] += reward
        steps += 1
        if terminated or truncated:
            crashed[episode] = info["crashed"].any()
            arrived[episode] = info["arrived"]
            episode += 1
    return {"returns": returns, "crashed": crashed, "arrived": arrived, "steps": steps}


def steps_per_second(env, num_steps: int) -> tuple[float, float]:
    """Steps/s with uniformly random actions: mairl's adapter, raw highway-env."""
    import jax
    from highway_env.envs.intersection_env import MultiAgentIntersectionEnv

    actions = np.random.default_rng(0).integers(0, 3, (num_steps, env.num_agents))
    obs, state = env.reset(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), num_steps)
    keys = [keys[t] for t in range(num_steps)]
    t0 = time.perf_counter()
    for t in range(num_steps):
        obs, state, *_ = env.step(keys[t], state, actions[t])
    adapter = num_steps / (time.perf_counter() - t0)

    raw = MultiAgentIntersectionEnv(config=env.config)
    raw.reset(seed=0)
    t0 = time.perf_counter()
    for t in range(num_steps):
        _, _, terminated, truncated, _ = raw.step(tuple(int(a) for a in actions[t]))
        if terminated or truncated:
            raw.reset(seed=t)
    return adapter, num_steps / (time.perf_counter() - t0)


def learned_policies(cfg, run_dir: Path, env, greedy: bool) -> list:
    """One ``policy_fn`` per seed from a finished run directory."""
    import jax

    from mairl import data
    from mairl.cli.train import build_algo, load_demos
    from mairl.evaluation import policy_fn_of
    from mairl.train import sample_batch, train_data

    demos = load_demos(cfg.demos, env)
    train_demos, _ = data.split_by_episode(demos, cfg.heldout_fraction,
                                           key=jax.random.key(cfg.seed + 1_000_003))
    algo = build_algo(cfg, env)
    example = sample_batch(jax.random.key(0), train_data(train_demos), cfg.batch_size, False)
    like = algo.init(jax.random.key(0), example).params
    params = _load_stacked(run_dir / "params.npz", like)
    return [policy_fn_of(algo, jax.tree.map(lambda x, s=s: x[s], params), greedy=greedy)
            for s in range(cfg.seeds)]


def _load_stacked(path: Path, like):
    """A run's ``params.npz`` (leaves ``(seed, agent, ...)``, ``'/'``-joined tree paths)
    in the structure of the single-seed template ``like``."""
    import jax

    with np.load(path, allow_pickle=False) as f:
        stored = dict(f)
    leaves = []
    for p, v in jax.tree_util.tree_leaves_with_path(like):
        name = "/".join(str(getattr(k, "key", k)) for k in p)
        if name not in stored or stored[name].shape[1:] != v.shape:
            raise ValueError(f"{path}: parameter {name!r} missing or not of shape "
                             f"(seed, {', '.join(map(str, v.shape))})")
        leaves.append(stored[name])
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def summarize(stats: list[dict]) -> dict:
    """Per-agent returns, collision and arrival rates, over seeds (or episodes if one)."""
    if len(stats) == 1:  # one policy: intervals over episodes
        s = stats[0]
        per_agent = [mean_half_width(r) for r in s["returns"].T]
        return {"return_per_agent": per_agent, "collision": mean_half_width(s["crashed"]),
                "arrival": mean_half_width(s["arrived"].mean(1)),
                "over": f"{len(s['crashed'])} episodes"}
    returns = np.stack([s["returns"].mean(0) for s in stats])  # (seed, agent)
    return {
        "return_per_agent": [mean_half_width(returns[:, i]) for i in range(returns.shape[1])],
        "collision": mean_half_width([s["crashed"].mean() for s in stats]),
        "arrival": mean_half_width([s["arrived"].mean() for s in stats]),
        "over": f"{len(stats)} seeds x {len(stats[0]['crashed'])} episodes",
    }


def print_table(rows: dict[str, dict], agents) -> None:
    head = (f"{'':<15}" + "".join(f"{'return ' + a:>17}" for a in agents)
            + f"{'collision':>17}{'arrival':>17}  over")
    print("\n" + head)
    print("-" * len(head))
    for name, r in rows.items():
        cells = "".join(f"{m:>9.2f} ± {h:<5.2f}" for m, h in r["return_per_agent"])
        col, arr = r["collision"], r["arrival"]
        print(f"{name:<15}{cells}{col[0]:>9.2f} ± {col[1]:<5.2f}{arr[0]:>9.2f} ± {arr[1]:<5.2f}"
              f"  {r['over']}")
    print("return: undiscounted per-agent episode return, mean ± 95% t-interval (over seeds for "
          "learned policies, over episodes otherwise); collision: fraction of episodes with a "
          "crash; arrival: fraction of vehicles arrived when the episode ended.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/intersection"))
    parser.add_argument("--env", default="intersection",
                        choices=("intersection", "intersection-speed"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--online-updates", type=int, default=500,
                        help="updates of iq-joint, which learns online: each one steps "
                             "--online-envs games per seed on the host")
    parser.add_argument("--online-envs", type=int, default=1)
    parser.add_argument("--demo-episodes", type=int, default=200,
                        help="expert episodes recorded for training")
    parser.add_argument("--baseline-episodes", type=int, default=100,
                        help="episodes for the expert, random and idle rows")
    parser.add_argument("--policy-episodes", type=int, default=30,
                        help="episodes per seed for each learned policy")
    parser.add_argument("--speed-steps", type=int, default=300,
                        help="steps timed for the steps/s figures")
    parser.add_argument("--greedy", action="store_true",
                        help="evaluate learned policies greedily instead of sampling")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    args = parser.parse_args(argv)

    import jax

    import envs
    from mairl import data
    from mairl.cli.train import RunConfig, run
    from mairl.data import episode_returns
    from mairl.utils import machine

    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = envs.make(args.env)

    adapter, raw = steps_per_second(env, args.speed_steps)
    print(f"steps/s ({args.speed_steps} random steps): mairl adapter {adapter:.1f}, raw "
          f"highway-env (pandas observations) {raw:.1f} ({adapter / raw:.2f}x)")

    rows: dict[str, dict] = {}
    expert = env.scripted_policy()
    baselines = {
        "expert": expert,
        "random": lambda key, obs: env.sample_actions(key),
        "idle": lambda key, obs: np.ones(env.num_agents, np.int32),
    }
    for policy in baselines.values():
        policy.host = True  # NumPy on the host, not jitted
    for i, (name, policy) in enumerate(baselines.items()):
        t0 = time.perf_counter()
        rows[name] = summarize([rollout(env, policy, args.baseline_episodes,
                                        jax.random.key(10_000 + i))])
        print(f"{name}: {args.baseline_episodes} episodes in {time.perf_counter() - t0:.0f} s")

    demos_path = args.out / "intersection_expert_demos.npz"
    t0 = time.perf_counter()
    demos = data.collect(jax.random.key(0), env, expert, args.demo_episodes,
                         num_envs=args.demo_episodes)
    demos.save(demos_path)
    demo_returns = episode_returns(demos)
    print(f"demonstrations: {demos.num_episodes} episodes, {demos.num_transitions} transitions "
          f"in {time.perf_counter() - t0:.0f} s, mean return per agent "
          f"{np.round(demo_returns.mean(0), 2).tolist()} -> {demos_path}")

    summaries = {}
    for algo in args.algos:
        online = algo == "iq-joint"
        updates = args.online_updates if online else args.updates
        cfg = RunConfig(algo=algo, env=args.env, demos=str(demos_path), seeds=args.seeds,
                        updates=updates, eval_every=max(updates // 4, 1), learning_rate=5e-4,
                        hidden=(128, 128), critic="mlp", view="global",
                        num_envs=args.online_envs, eval_episodes=1, final_episodes=2)
        print(f"\n== {algo}: {args.seeds} seeds x {updates} updates"
              + (f", {args.online_envs} game(s) per seed stepped per update" if online else ""))
        summaries[algo] = run(cfg, args.out / algo)
        t0 = time.perf_counter()
        policies = learned_policies(cfg, args.out / algo, env, args.greedy)
        rows[algo] = summarize([rollout(env, p, args.policy_episodes, jax.random.key(20_000 + s))
                                for s, p in enumerate(policies)])
        acc = summaries[algo].get("action_accuracy", {}).get("mean")
        print(f"{algo}: trained in {summaries[algo]['wall_time_s']:.0f} s, evaluated in "
              f"{time.perf_counter() - t0:.0f} s; held-out action accuracy per agent "
              f"{np.round(acc, 3).tolist() if acc is not None else 'n/a'}")

    print_table(rows, env.agents)
    (args.out / "summary.json").write_text(json.dumps({
        "env": args.env, "args": {k: str(v) for k, v in vars(args).items()},
        "steps_per_s": {"adapter": adapter, "raw_highway_env": raw},
        "rows": rows, "runs": summaries,
    }, indent=2, default=float))
    print(f"\nruns in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
