"""``mairl bench``: throughput figures, printed with the machine they ran on."""

from __future__ import annotations

import time

import jax
import numpy as np

from mairl.bench import (  # noqa: F401  (re-exported: the library's pieces of each benchmark)
    cost_flops,
    critic_layer_flops,
    env_steps_per_second,
    flops_of,
    make_matmul_peak,
    make_rollout,
    make_update_loop,
    random_demos,
    seed_updates_per_second,
    time_updates,
    timed_calls,
    training_flops,
)
from mairl.utils import machine


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
    from mairl.bench import mamql_update_case

    target_s, repeats = (0.2, 2) if quick else (3.0, 5)
    r = mamql_update_case(env, data, peak, critic=critic, mode=mode, batch=batch,
                          target_s=target_s, repeats=repeats, paper=transform is None)
    obs = ", ".join(map(str, (env.num_agents, *r["view"])))
    print(f"mamql {mode}, critic {critic}, batch {batch}, obs ({obs}): "
          f"{r['s_per_update'] * 1e3:,.1f} ms/update (best; median {r['median_s'] * 1e3:,.1f}) "
          f"of {r['repeats']} x {r['num_updates']} updates in one loop, compile "
          f"{r['compile_s']:.1f} s")
    print(f"  {r['flops'] / 1e9:.2f} GFLOP/update by XLA cost analysis (hand count "
          f"{r['hand_flops'] / 1e9:.2f}): {r['flops_per_s'] / 1e9:.1f} GFLOP/s = "
          f"{r['peak_fraction']:.0%} of the matmul peak ({r['peak'] / 1e9:.1f} GFLOP/s)")
    name = f"mamql_{mode}_{critic}"
    return {f"{name}_s_per_update": r["s_per_update"], f"{name}_flops_per_update": r["flops"],
            f"{name}_flops_per_s": r["flops_per_s"], f"{name}_peak_fraction": r["peak_fraction"]}


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


def bench_all_cli(quick: bool = False, out=None, json_path=None) -> dict:
    """``mairl bench all``: :func:`mairl.bench.bench_all`, its progress printed, the
    markdown report written to ``out`` (else printed) and the figures to ``json_path``."""
    import shlex
    import sys

    from mairl.bench import AllConfig, bench_all, format_markdown, write_report

    config = AllConfig.quick() if quick else AllConfig()
    command = shlex.join(["mairl", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else \
        "mairl bench all" + (" --quick" if quick else "")
    t0 = time.perf_counter()
    report = bench_all(config, command=command, progress=lambda stage: print(
        f"[{time.perf_counter() - t0:6.0f} s] {stage}", flush=True))
    write_report(report, out, json_path)
    if out is None:
        print(format_markdown(report))
    else:
        print(f"wrote {out}" + (f" and {json_path}" if json_path else "")
              + f" in {report.seconds:.0f} s")
    return report.to_dict()


def run(what: str, quick: bool = False, out=None, json_path=None) -> dict:
    """Run the benchmark named ``what`` and return its figures by name."""
    if what == "envs":
        return bench_envs(quick=quick)
    if what == "mamql":
        return bench_mamql(quick=quick)
    if what == "scale":
        return bench_scale_cli(quick=quick)
    if what == "all":
        return bench_all_cli(quick=quick, out=out, json_path=json_path)
    raise SystemExit(f"error: unknown benchmark {what!r}")
