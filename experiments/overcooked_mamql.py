"""Overcooked (cramped_room): MAMQL, IQ-Learn with joint critics and BC from the expert.

Records ``--episodes`` demonstrations (400 steps each) of the shipped PPO expert
(``mairl/assets/overcooked_cramped_room.npz``, loaded as a ``soft-q`` expert;
``experiments/train_overcooked_expert.py``) on ``envs.make("overcooked")``, whose
reward is the sparse delivery reward (20 per soup, to both cooks). Then trains
``mamql-offline``, ``iq-joint`` and ``bc`` on them through
``mairl.cli.train.run`` (``--seeds`` seeds vmapped in one jitted run per
algorithm; MLP critics on the raw observations, ``view="global"``), plays every
learned policy (Boltzmann at ``alpha``) for ``--final-episodes`` full episodes
per seed, and prints, per agent, the sparse return (20 per soup delivered by
either cook) and the shaping return (the agent's own onion, plate and soup
pickups: 3, 3, 5, unscaled), with soups per episode: for the learners the mean
over seeds with a 95% Student-t interval over seeds (each seed averaged over
its episodes); for the expert and uniformly random cooks the mean over episodes
with a 95% normal interval. Last, the env's throughput: environment steps per
second of the wrapper, random actions, ``jax.vmap`` over 1 and 1024
environments in a ``lax.scan`` of one episode, next to JaxMARL's own ``step``.

    python experiments/overcooked_mamql.py        # about 15 minutes on 2 shared CPU cores
    python experiments/overcooked_mamql.py --seeds 5 --updates 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ALGOS = ("mamql-offline", "iq-joint", "bc")
EXPERT = Path(__file__).resolve().parent.parent / "mairl" / "assets" / "overcooked_cramped_room.npz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/overcooked"))
    parser.add_argument("--expert", type=Path, default=EXPERT, help="soft-q expert file")
    parser.add_argument("--episodes", type=int, default=50, help="demonstrated episodes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--final-episodes", type=int, default=100,
                        help="episodes per seed (and of the expert) in the final evaluation")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--bench-envs", type=int, nargs="+", default=[1, 1024])
    args = parser.parse_args(argv)

    import jax

    import envs
    from mairl import data
    from mairl.cli.train import RunConfig, run
    from mairl.experts import make_expert

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_overcooked_expert import episode_stats

    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    env = envs.make("overcooked")
    expert = make_expert(env, "soft-q", params_path=args.expert)
    demos_path = args.out / "overcooked_expert_demos.npz"
    demos = data.collect(jax.random.key(0), env, expert, args.episodes, num_envs=50)
    demos.save(demos_path)
    print(f"demonstrations: {args.episodes} episodes of {args.expert.name}, "
          f"{demos.num_transitions} transitions -> {demos_path}", flush=True)

    rows = {
        "expert": per_episode(episode_stats(jax.random.key(1), env, expert,
                                            args.final_episodes)),
        "random": per_episode(episode_stats(jax.random.key(2), env,
                                            lambda key, obs: env.sample_actions(key),
                                            args.final_episodes)),
    }
    summaries = {}
    for algo in args.algos:
        cfg = RunConfig(algo=algo, env="overcooked", demos=str(demos_path), seeds=args.seeds,
                        updates=args.updates, eval_every=max(args.updates // 3, 1),
                        learning_rate=args.learning_rate, hidden=tuple(args.hidden),
                        critic="mlp", view="global", eval_episodes=16,
                        final_episodes=max(args.final_episodes, 2))
        print(f"\n== {algo}: {args.seeds} seeds x {args.updates} updates", flush=True)
        summary = run(cfg, args.out / algo, quiet=True)
        stats = learned_stats(cfg, env, args.out / algo / "params.npz", args.final_episodes)
        rows[algo] = per_seed(stats)
        rows[algo]["wall_s"] = summary["wall_time_s"]
        rows[algo]["action_accuracy"] = float(np.mean(summary["action_accuracy"]["mean"]))
        summaries[algo] = summary

    speed = throughput(env, args.bench_envs)
    print_table(rows, args)
    print_speed(speed)
    (args.out / "summary.json").write_text(json.dumps(
        {"rows": rows, "steps_per_s": speed, "args": {k: str(v) for k, v in vars(args).items()}},
        indent=2))
    print(f"\nruns in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


# -- learned policies ------------------------------------------------------------------------------
def learned_stats(cfg, env, params_path: Path, num_episodes: int) -> dict[str, np.ndarray]:
    """Soups and returns of each seed's learned policy, ``(seed, episode, ...)``."""
    import jax
    from train_overcooked_expert import rollout_stats

    from mairl.cli.train import build_algo, load_demos
    from mairl.evaluation import policy_fn_of
    from mairl.train import sample_batch, train_data

    algo = build_algo(cfg, env)
    demos = load_demos(cfg.demos, env)
    example = sample_batch(jax.random.key(0), train_data(demos), 8, False)
    like = algo.init(jax.random.key(0), example).params
    params = read_seed_params(params_path, like)

    def one(params, key):
        return rollout_stats(key, env, policy_fn_of(algo, params), num_episodes)

    keys = jax.random.split(jax.random.key(cfg.seed + 11), cfg.seeds)
    out = jax.jit(jax.vmap(one))(params, keys)
    return {name: np.asarray(value) for name, value in jax.device_get(out).items()}


def read_seed_params(path: Path, like):
    """A run's ``params.npz`` (leaves ``(seed, *shape)`` under '/'-joined paths) as a tree."""
    import jax
    import jax.numpy as jnp

    with np.load(path, allow_pickle=False) as f:
        stored = {name: f[name] for name in f.files}
    leaves = []
    for p, leaf in jax.tree_util.tree_leaves_with_path(like):
        name = "/".join(str(getattr(k, "key", k)) for k in p)
        if name not in stored:
            raise ValueError(f"{path}: parameter {name!r} missing")
        value = stored[name]
        if value.shape[1:] != leaf.shape:
            raise ValueError(f"{path}: parameter {name!r} has shape {value.shape}, "
                             f"expected (seed, {', '.join(map(str, leaf.shape))})")
        leaves.append(jnp.asarray(value))
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


# -- summaries -----------------------------------------------------------------------------------
def _t_half(x: np.ndarray) -> float:
    from mairl.metrics import student_t_quantile

    x = np.asarray(x, np.float64)
    if x.size < 2:
        return float("nan")
    return float(student_t_quantile(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def per_episode(stats: dict[str, np.ndarray]) -> dict:
    """Mean and 95% normal half-width over episodes."""
    def mh(x):
        x = np.asarray(x, np.float64)
        return [float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(x.shape[0]))]

    return {
        "soups": mh(stats["soups"]),
        "sparse": [mh(stats["sparse"][:, i]) for i in range(stats["sparse"].shape[1])],
        "shaped": [mh(stats["shaped"][:, i]) for i in range(stats["shaped"].shape[1])],
        "n": int(stats["soups"].shape[0]),
    }


def per_seed(stats: dict[str, np.ndarray]) -> dict:
    """Seed means over episodes, then mean and 95% t half-width over seeds."""
    def mh(x):  # x: (seed, episode)
        seed_means = np.asarray(x, np.float64).mean(axis=1)
        return [float(seed_means.mean()), _t_half(seed_means)]

    return {
        "soups": mh(stats["soups"]),
        "sparse": [mh(stats["sparse"][..., i]) for i in range(stats["sparse"].shape[-1])],
        "shaped": [mh(stats["shaped"][..., i]) for i in range(stats["shaped"].shape[-1])],
        "per_seed_soups": np.asarray(stats["soups"], np.float64).mean(axis=1).tolist(),
        "n": int(stats["soups"].shape[0]),
    }


def print_table(rows: dict, args) -> None:
    def cell(mh):
        return f"{mh[0]:7.1f} ± {mh[1]:<5.1f}"

    head = (f"{'':<14}{'soups/episode':>16}{'sparse agent_0':>16}{'sparse agent_1':>16}"
            f"{'shaped agent_0':>16}{'shaped agent_1':>16}{'action acc':>12}{'wall s':>8}")
    print("\n" + head)
    print("-" * len(head))
    for name, r in rows.items():
        acc = f"{r['action_accuracy']:>12.3f}" if "action_accuracy" in r else f"{'':>12}"
        wall = f"{r['wall_s']:>8.0f}" if "wall_s" in r else f"{'':>8}"
        print(f"{name:<14}{r['soups'][0]:>9.2f} ± {r['soups'][1]:<4.2f}"
              f"{cell(r['sparse'][0]):>16}{cell(r['sparse'][1]):>16}"
              f"{cell(r['shaped'][0]):>16}{cell(r['shaped'][1]):>16}{acc}{wall}")
    print(f"400-step episodes. Learners: mean over {args.seeds} seeds ({args.final_episodes} "
          f"episodes each) ± 95% t-interval over seeds, Boltzmann policies at alpha 1. "
          f"Expert, random: over {args.final_episodes} episodes ± 95% normal interval. "
          "sparse: 20 per soup delivered by either cook; shaped: the agent's own shaping "
          "rewards (onion into pot 3, plate pickup 3, soup pickup 5). action acc: held-out "
          "demonstrations.")


# -- throughput ----------------------------------------------------------------------------------
def throughput(env, counts: list[int]) -> dict:
    """Env steps per second (episodes of ``env.max_steps`` random steps), wrapper and JaxMARL."""
    import jax

    jm = env.inner
    out = {}
    for n in counts:
        def wrapped(key, n=n):
            _, state = jax.vmap(env.reset)(jax.random.split(key, n))

            def body(state, key):
                key_act, key_step = jax.random.split(key)
                actions = jax.vmap(env.sample_actions)(jax.random.split(key_act, n))
                _, state, reward, *_ = jax.vmap(env.step)(jax.random.split(key_step, n), state,
                                                          actions)
                return state, reward.sum()

            return jax.lax.scan(body, state, jax.random.split(key, env.max_steps))[1].sum()

        def direct(key, n=n):
            _, state = jax.vmap(jm.reset)(jax.random.split(key, n))

            def body(state, key):
                key_act, key_step = jax.random.split(key)
                actions = jax.vmap(env.sample_actions)(jax.random.split(key_act, n))
                _, state, reward, *_ = jax.vmap(jm.step)(
                    jax.random.split(key_step, n), state, jax.vmap(env.unbatchify_actions)(actions))
                return state, reward["agent_0"].sum()

            return jax.lax.scan(body, state, jax.random.split(key, env.max_steps))[1].sum()

        for label, fn in (("mairl wrapper", wrapped), ("jaxmarl step", direct)):
            f = jax.jit(fn)
            jax.block_until_ready(f(jax.random.key(0)))
            best = np.inf
            for rep in range(2):
                t0 = time.perf_counter()
                jax.block_until_ready(f(jax.random.key(rep + 1)))
                best = min(best, time.perf_counter() - t0)
            out[f"{label}, {n} envs"] = n * env.max_steps / best
    return out


def print_speed(speed: dict) -> None:
    print("\nenv steps/s (random actions, lax.scan of 400 steps, vmapped; best of 2):")
    for label, value in speed.items():
        print(f"  {label:<28}{value:>14,.0f}")


if __name__ == "__main__":
    main()
