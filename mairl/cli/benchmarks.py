"""``mairl bench``: throughput figures, printed with the machine they ran on."""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp


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


def run(what: str, quick: bool = False) -> dict[str, float]:
    if what == "envs":
        return bench_envs(quick=quick)
    raise SystemExit(f"error: unknown benchmark {what!r}")
