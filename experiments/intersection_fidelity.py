"""intersection-jax against highway-env: lockstep agreement, the expert's rates, steps/s.

1. Lockstep (:func:`envs.intersection_jax.lockstep`): ``--episodes`` episodes
   split over scripted-expert, uniformly random, all-FASTER-straight (crashes)
   and stop-and-go actions; counts episodes whose collisions, arrivals,
   rewards or terminations differ at any step, and prints the largest
   position / heading / speed / observation differences (before any crash).
2. Distribution: the scripted expert in each env from its own resets
   (``--expert-episodes`` each): collision rate, arrival rate and per-agent
   return with 95% intervals and the two-sample z score of each difference.
3. Speed: environment steps per second with ``--num-envs`` vmapped envs under
   ``jit`` + ``lax.scan`` (uniform random actions, auto-reset), against the
   host adapter (``envs.make("intersection")``) in the same run.

Usage (take the CPU lock on the shared machine)::

    flock /tmp/mairl-cpu.lock .venv/bin/python experiments/intersection_fidelity.py
    flock /tmp/mairl-cpu.lock .venv/bin/python experiments/intersection_fidelity.py --parts speed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from envs.intersection import FASTER, SLOWER, Intersection
from envs.intersection_jax import IntersectionJax, lockstep
from mairl import bench, report
from mairl.utils import machine


@dataclass(frozen=True)
class Args:
    """Fidelity and speed of intersection-jax.

    Attributes:
        episodes: lockstep episodes (split over four action kinds).
        expert_episodes: scripted-expert episodes per env for the rates.
        num_envs: vmapped envs for the steps/s figure.
        scan_steps: steps per env timed under ``lax.scan``.
        host_steps: random steps timed through the host adapter.
        parts: which of the three parts to run.
    """

    episodes: int = 1000
    expert_episodes: int = 1000
    num_envs: int = 4096
    scan_steps: int = 100
    host_steps: int = 300
    parts: tuple[Literal["speed", "lockstep", "rates"], ...] = ("speed", "lockstep", "rates")


def lockstep_check(episodes: int) -> None:
    """Part 1: lockstep agreement of events and states."""
    kinds = ["scripted", "random", "crash", "stop-go"]
    worst = {k: 0.0 for k in ("position", "heading", "speed", "obs")}
    disagree, counts, obs_off = [], {k: 0 for k in kinds}, 0
    crashes = arrivals = steps = 0
    for turns in ("random", "straight"):
        host, env = Intersection(turns=turns), IntersectionJax(turns=turns)
        step = jax.jit(env.step_env)
        expert = host.scripted_policy()
        for e in range(episodes):
            kind = kinds[e % 4]
            if (kind == "crash") != (turns == "straight"):
                continue
            rng = np.random.default_rng(e)
            policy = {"scripted": lambda t, o, expert=expert: expert(None, o),
                      "random": lambda t, o, rng=rng: rng.integers(0, 3, 4),
                      "crash": lambda t, o: np.full(4, FASTER),
                      "stop-go": lambda t, o: np.full(4, SLOWER if t < 5 else FASTER)}[kind]
            r = lockstep(host, env, e, policy, step)
            counts[kind] += 1
            steps += len(r["obs"])
            if not all(np.array_equal(r[f"host_{k}"], r[f"jax_{k}"])
                       for k in ("crashed", "arrived", "reward", "terminated")):
                disagree.append((kind, e))
            moving = ~r["host_crashed"].any(1)
            for k in worst:
                if moving.any():
                    worst[k] = max(worst[k], float(r[k][moving].max()))
            obs_off += int((r["obs"][moving] > 2e-3).sum())
            crashes += bool(r["host_crashed"][-1].any())
            arrivals += int(r["host_arrived"][-1].sum())
    total = sum(counts.values())
    print(f"lockstep: {total} episodes ({counts}), {steps} steps; highway-env saw "
          f"{crashes} crash episodes and {arrivals} arrivals")
    print(f"  event disagreements (collision, arrival, reward, termination): {len(disagree)} "
          f"episodes {disagree[:10]}")
    print("  largest differences on steps without a crash: " + ", ".join(
        f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"  steps whose observation differs by more than 2e-3 (no crash): {obs_off}")


def expert_rates(episodes: int) -> None:
    """Part 2: the scripted expert's collision / arrival rates and returns in both envs."""
    host = envs.make("intersection")
    jax_env = envs.make("intersection-jax")
    stats = {}
    # highway-env, on the host
    expert = host.scripted_policy()
    returns, crashed, arrived = np.zeros((episodes, 4)), np.zeros(episodes), np.zeros(episodes)
    for e in range(episodes):
        obs = host.reset_host(10_000 + e)
        for _ in range(host.max_steps):
            obs, reward, terminated, truncated, info = host.step_host(expert(None, obs))
            returns[e] += reward
            if terminated or truncated:
                break
        crashed[e], arrived[e] = info["crashed"].any(), info["arrived"].mean()
    stats["highway-env"] = (returns, crashed, arrived)
    # JAX, vmapped episodes without auto-reset
    policy = jax_env.scripted_policy()

    @jax.jit
    def play(keys):
        def one(key):
            obs, state = jax_env.reset(key)

            def body(carry, _):
                obs, state, done, ret, crash, arr = carry
                obs2, state2, reward, terminated, info = jax_env.step_env(
                    key, state, policy(None, obs))
                live = ~done
                ret = ret + jnp.where(live, reward, 0.0)
                crash = jnp.where(live, info["crashed"].any(), crash)
                arr = jnp.where(live, info["arrived"].mean(), arr)
                return (obs2, state2, done | terminated, ret, crash, arr), None

            init = (obs, state, jnp.zeros((), bool), jnp.zeros(4), jnp.zeros((), bool),
                    jnp.zeros(()))
            (_, _, _, ret, crash, arr), _ = jax.lax.scan(body, init, None,
                                                          length=jax_env.max_steps)
            return ret, crash, arr

        return jax.vmap(one)(keys)

    ret, crash, arr = map(np.asarray, play(jax.random.split(jax.random.key(7), episodes)))
    stats["intersection-jax"] = (ret, crash.astype(float), arr)
    print(f"scripted expert, {episodes} episodes each (mean ± 95% half-width):")
    for name, (ret, crash, arr) in stats.items():
        cells = [f"{ret[:, i].mean():.3f}±{1.96 * ret[:, i].std(ddof=1) / np.sqrt(len(ret)):.3f}"
                 for i in range(4)]
        print(f"  {name:17s} returns {cells}  collision {crash.mean():.3f}±"
              f"{1.96 * crash.std(ddof=1) / np.sqrt(len(crash)):.3f}  arrival "
              f"{arr.mean():.3f}±{1.96 * arr.std(ddof=1) / np.sqrt(len(arr)):.3f}")
    a, b = stats["highway-env"], stats["intersection-jax"]
    for label, x, y in [*[(f"return agent_{i}", a[0][:, i], b[0][:, i]) for i in range(4)],
                        ("collision", a[1], b[1]), ("arrival", a[2], b[2])]:
        se = np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        z = (x.mean() - y.mean()) / se if se > 0 else 0.0
        print(f"  {label:15s} difference {x.mean() - y.mean():+.4f}, z = {z:+.2f}")


def speed(num_envs: int, scan_steps: int, host_steps: int) -> None:
    """Part 3: steps/s of the vmapped JAX env and of the host adapter."""
    env = envs.make("intersection-jax")
    run = bench.make_rollout(env, num_envs, scan_steps)

    t0 = time.perf_counter()
    run(jax.random.key(0)).block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(jax.random.key(1)).block_until_ready()
    jax_sps = num_envs * scan_steps / (time.perf_counter() - t0)
    host = envs.make("intersection")
    host_sps = report.env_steps_per_second(host, report.random_actions(host, host_steps))
    print(f"steps/s: intersection-jax {jax_sps:,.0f} ({num_envs} vmapped envs x {scan_steps} "
          f"steps under jit + scan; compile and first run {compile_s:.1f} s); host adapter "
          f"{host_sps:,.1f} ({host_steps} random steps); ratio {jax_sps / host_sps:,.0f}x")


def main(args: Args) -> None:
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    if "speed" in args.parts:
        speed(args.num_envs, args.scan_steps, args.host_steps)
    if "lockstep" in args.parts:
        lockstep_check(args.episodes)
    if "rates" in args.parts:
        expert_rates(args.expert_episodes)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
