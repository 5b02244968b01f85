"""``mairl bench``: throughput figures, printed with the machine they ran on."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{dev.platform} ({dev.device_kind})"
    )


def make_rollout(env, num_envs: int, num_steps: int):
    """A jitted rollout of ``num_steps`` vmapped steps under uniform random actions.

    Observations and rewards are summed into the carry so that none of the work
    can be removed by the compiler.
    """
    step = jax.vmap(env.step)
    if env.discrete:  # one draw for every env and agent
        shape = (num_envs, env.num_agents)
        sample = lambda key: jax.random.randint(key, shape, 0, env.num_actions)  # noqa: E731
    else:
        sample = lambda key: jax.vmap(env.sample_actions)(jax.random.split(key, num_envs))  # noqa: E731

    @jax.jit
    def rollout(key):
        key_reset, key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))

        def body(carry, key):
            state, acc = carry
            key_act, key_step = jax.random.split(key)
            actions = sample(key_act)
            obs, state, reward, _, _, _ = step(
                jax.random.split(key_step, num_envs), state, actions
            )
            return (state, acc + obs.sum() + reward.sum()), None

        (_, acc), _ = jax.lax.scan(body, (state, jnp.float32(0)), jax.random.split(key, num_steps))
        return acc

    return rollout


def env_steps_per_second(env, num_envs: int, num_steps: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed rollouts (compile excluded), in env steps per second."""
    rollout = make_rollout(env, num_envs, num_steps)
    rollout(jax.random.key(0)).block_until_ready()
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        rollout(jax.random.key(i + 1)).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return num_envs * num_steps / best


def bench_envs(quick: bool = False) -> dict[str, float]:
    import envs
    from envs.tabular import random_game
    from mairl.solvers import soft_value_iteration

    print(f"machine: {machine()}")
    results: dict[str, float] = {}
    gems = envs.make("gems")
    budget = 2e5 if quick else 2e6  # env steps per timed rollout
    for num_envs in (1, 64, 4096):
        num_steps = max(min(int(budget // num_envs), 100_000), 20)
        sps = env_steps_per_second(gems, num_envs, num_steps, repeats=1 if quick else 5)
        results[f"gems_steps_per_s_{num_envs}"] = sps
        print(f"gems, {num_envs:>5} envs x {num_steps:>6} steps: {sps:>14,.0f} steps/s")

    game = random_game(jax.random.key(0), num_states=100, num_actions=3, num_agents=3)
    t0 = time.perf_counter()
    sol = soft_value_iteration(game)
    jax.block_until_ready(sol.q)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = soft_value_iteration(game)
    jax.block_until_ready(sol.q)
    second = time.perf_counter() - t0
    results["soft_vi_first_call_s"] = first
    results["soft_vi_s"] = second
    print(
        f"soft value iteration, 100 states x 3 agents x 3 actions: {second:.3f} s "
        f"({first:.3f} s first call with compilation), {int(sol.iterations)} iterations, "
        f"residual {float(sol.residual):.1e}"
    )
    return results


# -- mamql ---------------------------------------------------------------------------------


def timed_calls(fn, *args, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn(*args)``, each waited for."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def make_matmul_peak(n: int = 2048, repeats: int = 3):
    """``sample()``: time ``repeats`` float32 ``a @ b`` of two ``(n, n)`` matrices
    (``2 n^3`` FLOPs) and return the best FLOP/s seen so far. Sampled between the
    timings it is compared with, so that both see the same load on the machine."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), jnp.float32)
    b = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = [0.0]

    def sample() -> float:
        best[0] = max(best[0], 2 * n**3 / min(timed_calls(matmul, a, b, repeats=repeats)))
        return best[0]

    return sample


def flops_of(fn, *args) -> float:
    """FLOPs of one call of ``fn`` by XLA's cost analysis of the compiled program
    (loop bodies count once, whatever their trip count)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list | tuple):  # older JAX: one dict per computation
        cost = cost[0]
    return float(cost["flops"])


def critic_layer_flops(critic: str, view: tuple[int, ...], num_actions: int,
                       hidden: tuple[int, ...] = (256, 256)) -> list[float]:
    """Hand count of the FLOPs (2 per multiply-add) of every layer of one critic
    forward pass on one sample; biases and activations left out."""
    if critic == "mlp":
        widths = [int(np.prod(view)), *hidden, num_actions]
        return [2.0 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    if critic == "gems-paper":  # conv 64 kernel 5, conv 64 kernel 3 (valid), dense 1024, 1024
        channels, x, y = view
        x1, y1, x2, y2 = x - 4, y - 4, x - 6, y - 6
        macs = [x1 * y1 * 64 * channels * 25, x2 * y2 * 64 * 64 * 9, x2 * y2 * 64 * 1024,
                1024 * 1024, 1024 * num_actions]
        return [2.0 * m for m in macs]
    raise ValueError(f"no hand count for critic {critic!r}")


def training_flops(layers: list[float]) -> float:
    """Forward, weight gradients (as much again) and input gradients (as much again,
    but none for the first layer: its input is data) of one sample."""
    return 3 * sum(layers) - layers[0]


def random_demos(env, num_episodes: int, key: jax.Array):
    """Demonstrations of uniformly random actions (their content does not change the
    cost of an update)."""
    from mairl.data import collect
    from mairl.train import train_data

    num_agents, num_actions = env.num_agents, env.num_actions

    def policy_fn(key, obs):
        return jax.random.randint(key, (num_agents,), 0, num_actions)

    return train_data(collect(key, env, policy_fn, num_episodes, num_envs=num_episodes))


def make_update_loop(algo, data):
    """``one_update(state, key)`` (one sampled batch, one update) and the jitted
    ``loop(state, key, num_updates)`` running it ``num_updates`` times in one
    ``lax.fori_loop``, so that dispatch costs nothing and one compiled program
    serves every count. ``loop`` consumes (donates) ``state``."""
    from mairl.train import sample_batch

    batch_size = algo.config.batch_size
    with_init = algo.config.mode == "v0"

    def one_update(state, key):
        key_batch, key_update = jax.random.split(key)
        batch = sample_batch(key_batch, data, batch_size, with_init)
        return algo.update(state, batch, key_update)[0]

    def loop(state, key, num_updates):
        body = lambda i, state: one_update(state, jax.random.fold_in(key, i))  # noqa: E731
        return jax.lax.fori_loop(0, num_updates, body, state)

    return one_update, jax.jit(loop, donate_argnums=0)


def time_updates(algo, data, key: jax.Array, *, target_s: float, repeats: int,
                 between=None) -> dict:
    """Seconds per update of ``algo``: best and median of ``repeats`` timed loops of
    about ``target_s`` seconds each, compile and the first run excluded, each loop
    going on from the state the last one left. ``between()`` runs before every
    timed loop. Also the FLOPs of one update by XLA's cost analysis."""
    from mairl.train import sample_batch

    key_init, key_batch, key_run = jax.random.split(key, 3)
    example = sample_batch(key_batch, data, algo.config.batch_size, algo.config.mode == "v0")
    # distinct buffers: the loop donates its state, where params may be target_params
    state = jax.tree.map(jnp.copy, algo.init(key_init, example))
    one_update, loop = make_update_loop(algo, data)
    flops = flops_of(one_update, state, key_run)
    t0 = time.perf_counter()
    compiled = loop.lower(state, key_run, 1).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = jax.block_until_ready(compiled(state, key_run, 1))
    first_s = time.perf_counter() - t0
    num_updates = max(1, round(target_s / first_s))
    repeats = max(1, min(repeats, round(8 * target_s / (num_updates * first_s))))
    times = []
    for i in range(repeats):
        if between is not None:
            between()
        t0 = time.perf_counter()
        state = jax.block_until_ready(compiled(state, jax.random.fold_in(key_run, i), num_updates))
        times.append((time.perf_counter() - t0) / num_updates)
    return {"flops": flops, "best_s": min(times), "median_s": float(np.median(times)),
            "compile_s": compile_s, "num_updates": num_updates, "repeats": repeats}


def seed_updates_per_second(algo, data, key: jax.Array, num_seeds: int, num_updates: int,
                            repeats: int) -> float:
    """Seed-updates per second of ``make_train`` vmapped over ``num_seeds`` keys (best
    of ``repeats``, compile excluded)."""
    from mairl.train import TrainConfig, make_train

    train = make_train(algo, TrainConfig(num_updates=num_updates, eval_every=num_updates))
    keys = jax.random.split(key, num_seeds)
    compiled = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, data).compile()
    jax.block_until_ready(compiled(keys, data))
    return num_seeds * num_updates / min(timed_calls(compiled, keys, data, repeats=repeats))


def bench_mamql(quick: bool = False) -> dict[str, float]:
    import envs
    from mairl.algos import MAMQLConfig, make_mamql
    from mairl.algos.common import view_shape

    print(f"machine: {machine()}")
    results: dict[str, float] = {}
    peak = make_matmul_peak()
    print(f"float32 matmul peak, 2048 x 2048 a @ b: {peak() / 1e9:.1f} GFLOP/s (sampled again "
          f"before every timed loop below; fractions are of the best so far)")

    gems = envs.make("gems")
    num_agents, num_actions = gems.num_agents, gems.num_actions
    data = random_demos(gems, 4 if quick else 16, jax.random.key(0))
    target_s, repeats = (0.2, 2) if quick else (3.0, 5)
    cases = [  # (critic, observation view, modes)
        ("gems-paper", None, ("value_expert",) if quick else ("value_expert", "online")),
        ("mlp", gems.agent_view, ("value_expert",) if quick else ("value_expert", "online")),
    ]
    for critic, transform, modes in cases:
        # the paper critic at batch 256 takes seconds per update: --quick is a smoke test
        batch = 16 if quick and critic == "gems-paper" else 256
        view = view_shape(gems.obs_shape, transform)
        layers = critic_layer_flops(critic, view, num_actions)
        obs = f"({num_agents}, {', '.join(map(str, view))})"
        for mode in modes:
            config = MAMQLConfig(mode=mode, critic=critic, batch_size=batch)
            algo = make_mamql(config, num_agents=num_agents, obs_shape=gems.obs_shape,
                              num_actions=num_actions, env=gems, obs_transform=transform)
            r = time_updates(algo, data, jax.random.key(1), target_s=target_s, repeats=repeats,
                             between=peak)
            # s and s' of every agent; online adds as many policy samples, and one
            # forward pass to act in num_envs environments
            samples = num_agents * 2 * batch * (2 if mode == "online" else 1)
            hand = samples * training_flops(layers)
            if mode == "online":
                hand += num_agents * config.num_envs * sum(layers)
            rate = r["flops"] / r["best_s"]
            name = f"mamql_{mode}_{critic}"
            results[f"{name}_s_per_update"] = r["best_s"]
            results[f"{name}_flops_per_s"] = rate
            print(f"mamql {mode}, critic {critic}, batch {batch}, obs {obs}: "
                  f"{r['best_s'] * 1e3:,.1f} ms/update (best; median {r['median_s'] * 1e3:,.1f})"
                  f" of {r['repeats']} x {r['num_updates']} updates in one loop, compile "
                  f"{r['compile_s']:.1f} s")
            print(f"  {r['flops'] / 1e9:.2f} GFLOP/update by XLA cost analysis (hand count "
                  f"{hand / 1e9:.2f}): {rate / 1e9:.1f} GFLOP/s = {rate / peak():.0%} of the "
                  f"matmul peak ({peak() / 1e9:.1f} GFLOP/s)")
    results["matmul_flops_per_s"] = peak()

    config = MAMQLConfig(mode="value_expert", critic="mlp", batch_size=256)
    algo = make_mamql(config, num_agents=num_agents, obs_shape=gems.obs_shape,
                      num_actions=num_actions, obs_transform=gems.agent_view)
    per_update = results["mamql_value_expert_mlp_s_per_update"]
    num_updates = max(2, round((0.3 if quick else 2.0) / per_update))
    rates = {}
    for num_seeds in (1, 8):
        rates[num_seeds] = seed_updates_per_second(
            algo, data, jax.random.key(2), num_seeds, num_updates, repeats=1 if quick else 3
        )
        results[f"seed_updates_per_s_{num_seeds}"] = rates[num_seeds]
    results["seed_scaling_8_over_1"] = rates[8] / rates[1]
    print(f"seed scaling, mamql value_expert, critic mlp, batch 256, make_train of "
          f"{num_updates} updates vmapped over seeds: 1 seed {rates[1]:,.1f}, 8 seeds "
          f"{rates[8]:,.1f} seed-updates/s: {rates[8] / rates[1]:.2f}x")
    return results


def run(what: str, quick: bool = False) -> dict[str, float]:
    if what == "envs":
        return bench_envs(quick=quick)
    if what == "mamql":
        return bench_mamql(quick=quick)
    raise SystemExit(f"error: unknown benchmark {what!r}")
