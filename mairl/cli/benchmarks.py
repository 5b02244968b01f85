"""``mairl bench``: throughput figures, printed with the machine they ran on."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mairl.bench import (  # noqa: F401  (re-exported: the pieces shared with bench scale)
    cost_flops,
    make_matmul_peak,
    make_update_loop,
    random_demos,
    timed_calls,
)
from mairl.utils import machine


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
            # summed in float32 whatever the obs dtype (uint8 Gems maps): the same
            # consumer for every dtype
            return (state, acc + obs.sum(dtype=jnp.float32) + reward.sum()), None

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
    """Gems environment steps per second (jitted, vmapped) and the exact solver's time.

    ``quick`` shrinks every measurement for a smoke test.
    """
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


def flops_of(fn, *args) -> float:
    """FLOPs of one call of ``fn(*args)`` by XLA's cost analysis."""
    return cost_flops(jax.jit(fn).lower(*args).compile())


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


def time_updates(algo, data, key: jax.Array, *, target_s: float, repeats: int,
                 peak: Callable[[], float]) -> dict:
    """Seconds per update of ``algo``: best and median of ``repeats`` timed loops of
    about ``target_s`` seconds each, compile and the first run excluded, each loop
    going on from the state the last one left; the FLOPs of one update by XLA's cost
    analysis; and the best of ``peak()`` sampled before every loop and after the last."""
    from mairl.train import demo_batches

    key_init, key_batch, key_run = jax.random.split(key, 3)
    example = demo_batches(algo.needs)(key_batch, data)
    # distinct buffers: the loop donates its state, where params may be target_params
    state = jax.tree.map(jnp.copy, jax.jit(algo.init)(key_init, example))
    _, loop = make_update_loop(algo)
    t0 = time.perf_counter()
    compiled = jax.jit(loop, donate_argnums=0).lower(state, data, key_run, 1).compile()
    compile_s = time.perf_counter() - t0
    flops = cost_flops(compiled)  # the trip count is an argument: the body counts once
    t0 = time.perf_counter()
    state = jax.block_until_ready(compiled(state, data, key_run, 1))
    first_s = time.perf_counter() - t0
    num_updates = max(1, round(target_s / first_s))
    repeats = max(1, min(repeats, round(8 * target_s / (num_updates * first_s))))
    times, peaks = [], []
    for i in range(repeats):
        peaks.append(peak())
        t0 = time.perf_counter()
        key_loop = jax.random.fold_in(key_run, i)
        state = jax.block_until_ready(compiled(state, data, key_loop, num_updates))
        times.append((time.perf_counter() - t0) / num_updates)
    peaks.append(peak())
    return {"flops": flops, "best_s": min(times), "median_s": float(np.median(times)),
            "compile_s": compile_s, "num_updates": num_updates, "repeats": repeats,
            "peak": max(peaks)}


def seed_updates_per_second(algo, data, key: jax.Array, seeds: tuple[int, ...],
                            num_updates: int, repeats: int,
                            peak: Callable[[], float]) -> tuple[dict[int, float], float]:
    """Seed-updates per second of the update loop (``make_update_loop``) vmapped over
    the states and keys of several seeds, for every seed count in ``seeds``: best of
    ``repeats`` loops of ``num_updates`` updates, compile and the first run excluded,
    the counts taking turns so that all see the same load; and the best of ``peak()``
    sampled before every loop and after the last."""
    from mairl.train import demo_batches

    key_init, key_batch, key_run = jax.random.split(key, 3)
    example = demo_batches(algo.needs)(key_batch, data)
    _, loop = make_update_loop(algo)
    init = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))
    states = init(jax.random.split(key_init, max(seeds)), example)
    runs = {}
    for num_seeds in seeds:
        state = jax.tree.map(lambda x, n=num_seeds: jnp.copy(x[:n]), states)
        keys = jax.random.split(key_run, num_seeds)
        compiled = jax.jit(jax.vmap(loop, in_axes=(0, None, 0, None)), donate_argnums=0).lower(
            state, data, keys, num_updates).compile()
        runs[num_seeds] = [compiled, jax.block_until_ready(compiled(state, data, keys, 1)), keys]
    best = dict.fromkeys(seeds, float("inf"))
    peaks = []
    for _ in range(repeats):
        for num_seeds, run in runs.items():
            compiled, state, keys = run
            peaks.append(peak())
            t0 = time.perf_counter()
            run[1] = jax.block_until_ready(compiled(state, data, keys, num_updates))
            best[num_seeds] = min(best[num_seeds], time.perf_counter() - t0)
    peaks.append(peak())
    return {n: n * num_updates / t for n, t in best.items()}, max(peaks)


def bench_mamql(quick: bool = False) -> dict[str, float]:
    """MAMQL updates on Gems (2 agents, map observations): time, FLOP/s and fraction
    of the matmul peak for the paper critic and for the default MLP critic on the
    egocentric view, then seeds trained at once.

    The machine may be shared: every fraction is of the best matmul peak sampled
    between that case's own timed loops."""
    import envs

    print(f"machine: {machine()}")
    sample = make_matmul_peak()
    samples = [sample()]

    def peak() -> float:
        samples.append(sample())
        return samples[-1]

    print(f"float32 matmul peak, 2048 x 2048 a @ b: {samples[0] / 1e9:.1f} GFLOP/s (sampled "
          f"again between the timed loops of every case below)")
    gems = envs.make("gems")
    data = random_demos(gems, 4 if quick else 16, jax.random.key(0))
    results: dict[str, float] = {}
    # the paper critic takes seconds per update at batch 256: --quick is a smoke test
    modes = ("value_expert",) if quick else ("value_expert", "online")
    for critic, transform, batch in (("gems-paper", None, 8 if quick else 256),
                                     ("mlp", gems.agent_view, 256)):
        for mode in modes:
            results.update(_bench_update(gems, data, peak, critic, transform, mode, batch, quick))
    results.update(_bench_seeds(gems, data, peak, results, quick))
    results["matmul_flops_per_s"] = max(samples)
    print(f"matmul peak over the run: best {max(samples) / 1e9:.1f}, median "
          f"{np.median(samples) / 1e9:.1f}, worst {min(samples) / 1e9:.1f} GFLOP/s "
          f"({len(samples)} samples)")
    return results


def _bench_update(env, data, peak, critic: str, transform, mode: str, batch: int,
                  quick: bool) -> dict[str, float]:
    from mairl.algos import MAMQLConfig, make_mamql
    from mairl.algos.common import view_shape

    config = MAMQLConfig(mode=mode, critic=critic, batch_size=batch)
    algo = make_mamql(config, num_agents=env.num_agents, obs_shape=env.obs_shape,
                      num_actions=env.num_actions, env=env, obs_transform=transform)
    target_s, repeats = (0.2, 2) if quick else (3.0, 5)
    r = time_updates(algo, data, jax.random.key(1), target_s=target_s, repeats=repeats,
                     peak=peak)
    view = view_shape(env.obs_shape, transform)
    layers = critic_layer_flops(critic, view, env.num_actions, config.hidden)
    # s and s' of every agent; online adds as many policy samples, and one forward
    # pass to act in num_envs environments
    samples = env.num_agents * 2 * batch * (2 if mode == "online" else 1)
    hand = samples * training_flops(layers)
    if mode == "online":
        hand += env.num_agents * config.num_envs * sum(layers)
    rate = r["flops"] / r["best_s"]
    obs = ", ".join(map(str, (env.num_agents, *view)))
    print(f"mamql {mode}, critic {critic}, batch {batch}, obs ({obs}): "
          f"{r['best_s'] * 1e3:,.1f} ms/update (best; median {r['median_s'] * 1e3:,.1f}) of "
          f"{r['repeats']} x {r['num_updates']} updates in one loop, compile "
          f"{r['compile_s']:.1f} s")
    print(f"  {r['flops'] / 1e9:.2f} GFLOP/update by XLA cost analysis (hand count "
          f"{hand / 1e9:.2f}): {rate / 1e9:.1f} GFLOP/s = {rate / r['peak']:.0%} of the matmul "
          f"peak ({r['peak'] / 1e9:.1f} GFLOP/s)")
    name = f"mamql_{mode}_{critic}"
    return {f"{name}_s_per_update": r["best_s"], f"{name}_flops_per_update": r["flops"],
            f"{name}_flops_per_s": rate, f"{name}_peak_fraction": rate / r["peak"]}


def _bench_seeds(env, data, peak, results: dict[str, float], quick: bool) -> dict[str, float]:
    from mairl.algos import MAMQLConfig, make_mamql

    config = MAMQLConfig(mode="value_expert", critic="mlp", batch_size=256)
    algo = make_mamql(config, num_agents=env.num_agents, obs_shape=env.obs_shape,
                      num_actions=env.num_actions, obs_transform=env.agent_view)
    per_update = results["mamql_value_expert_mlp_s_per_update"]
    flops = results["mamql_value_expert_mlp_flops_per_update"]
    num_updates = max(2, round((0.05 if quick else 1.0) / per_update))
    repeats = 1 if quick else 4
    rates, best = seed_updates_per_second(algo, data, jax.random.key(2), (1, 8), num_updates,
                                          repeats=repeats, peak=peak)
    print(f"seeds, mamql value_expert, critic mlp, batch 256: loops of {num_updates} updates "
          f"vmapped over seeds, best of {repeats} (taking turns)")
    for num_seeds, rate in rates.items():
        print(f"  {num_seeds} seed{'s' if num_seeds > 1 else ' '}: {rate:7,.1f} seed-updates/s, "
              f"{rate * flops / 1e9:.1f} GFLOP/s = {rate * flops / best:.0%} of the matmul peak")
    ceiling = best / (rates[1] * flops)
    print(f"  8 seeds / 1 seed: {rates[8] / rates[1]:.2f}x (at most {ceiling:.1f}x: the matmul "
          f"peak, {best / 1e9:.1f} GFLOP/s, over 1 seed's rate)")
    return {"seed_updates_per_s_1": rates[1], "seed_updates_per_s_8": rates[8],
            "seed_scaling_8_over_1": rates[8] / rates[1]}


def bench_scale_cli(quick: bool = False) -> dict:
    """``mairl bench scale``: :func:`mairl.bench.bench_scale` printed (``--quick``: a
    smoke test, small sizes)."""
    from mairl.bench import ScaleConfig, bench_scale, format_scale

    config = ScaleConfig()
    if quick:
        config = ScaleConfig(hidden=(32,), batch_size=16, seeds=(1, 2), devices=(1, 2),
                             seeds_per_device=1, grid=(1, 2), target_s=0.05, repeats=1,
                             demo_episodes=2)
    report = bench_scale(config, progress=lambda stage: print(f"[{stage}]", flush=True))
    for line in format_scale(report):
        print(line)
    return report.to_dict()


def run(what: str, quick: bool = False) -> dict:
    """Run the benchmark named ``what`` and return its figures by name."""
    if what == "envs":
        return bench_envs(quick=quick)
    if what == "mamql":
        return bench_mamql(quick=quick)
    if what == "scale":
        return bench_scale_cli(quick=quick)
    raise SystemExit(f"error: unknown benchmark {what!r}")
