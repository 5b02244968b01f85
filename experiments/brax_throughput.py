"""Throughput of the multi-agent Brax games beside single-agent ``brax.envs``.

For each game and each number of vmapped environments, three programs step the
same body with the same backend, each ``jax.jit`` of a ``lax.scan`` over
``--steps`` steps of ``jax.vmap``-ed envs with uniform random actions in
``[-1, 1]``:

- ``brax``: the single-agent ``brax.envs`` environment's ``step`` on the full
  action vector (no episode handling);
- ``game.step_env``: the multi-agent game's raw step (action split, local
  observations, per-agent rewards);
- ``game.step``: the public step, with truncation at the horizon and
  auto-reset (a reset is computed every step and selected where an episode
  ends, the jittable way).

Printed: environment steps per second (envs x steps / seconds of the fastest of
``--repeats`` compiled calls), the compile-and-first-call time, and the share of non-finite
states at the end (a stability check of the backend).

Usage (take the CPU lock on the shared machine)::

    flock /tmp/mairl-cpu.lock .venv/bin/python experiments/brax_throughput.py
    flock /tmp/mairl-cpu.lock .venv/bin/python experiments/brax_throughput.py \\
        --games ant-4x2 --backend spring --num-envs 64
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from envs.brax_games import GAMES
from mairl.utils import machine


@dataclass(frozen=True)
class Args:
    """Env steps/s of the multi-agent Brax games and of single-agent brax.

    Attributes:
        games: registered multi-agent Brax games to time.
        num_envs: numbers of vmapped environments.
        steps: steps per environment in each timed call.
        backend: brax physics backend of every program.
        repeats: compiled calls timed per program; the fastest is reported.
        seed: seed of the resets and random actions.
    """

    games: tuple[str, ...] = tuple(GAMES)
    num_envs: tuple[int, ...] = (64, 1024)
    steps: int = 100
    backend: str = "spring"
    repeats: int = 3
    seed: int = 0


def _time(run, key, repeats: int) -> tuple[float, float, float]:
    """``(compile and first call s, fastest of the compiled calls s, share of non-finite
    envs after the last call)``."""
    t0 = time.perf_counter()
    jax.block_until_ready(run(key))
    first = time.perf_counter() - t0
    best = np.inf
    for i in range(repeats):
        t0 = time.perf_counter()
        bad = jax.block_until_ready(run(jax.random.fold_in(key, i + 1)))
        best = min(best, time.perf_counter() - t0)
    return first, best, float(np.mean(np.asarray(bad)))


def brax_program(brax_env, num_envs: int, steps: int):
    """Jitted single-agent rollout: ``key -> (num_envs,)`` non-finite flags."""
    size = brax_env.action_size

    @jax.jit
    def run(key):
        key_reset, key = jax.random.split(key)
        state = jax.vmap(brax_env.reset)(jax.random.split(key_reset, num_envs))

        def body(state, key):
            actions = jax.random.uniform(key, (num_envs, size), minval=-1.0, maxval=1.0)
            return jax.vmap(brax_env.step)(state, actions), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, steps))
        return ~jnp.all(jnp.isfinite(state.pipeline_state.q), axis=-1)

    return run


def game_program(env, num_envs: int, steps: int, raw: bool):
    """Jitted multi-agent rollout through ``step_env`` (``raw``) or ``step``."""

    @jax.jit
    def run(key):
        key_reset, key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))

        def body(state, key):
            key_act, key_step = jax.random.split(key)
            actions = jax.random.uniform(key_act, (num_envs, *env.action_shape),
                                         minval=-1.0, maxval=1.0)
            keys = jax.random.split(key_step, num_envs)
            if raw:
                out = jax.vmap(env.step_env)(keys, state, actions)
            else:
                out = jax.vmap(env.step)(keys, state, actions)
            return out[1], None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, steps))
        return ~jnp.all(jnp.isfinite(state.brax.pipeline_state.q), axis=-1)

    return run


def main(args: Args) -> None:
    print(f"machine: {machine()}; backend {args.backend}, {args.steps} steps per env")
    for name in args.games:
        if name not in GAMES:
            raise SystemExit(f"--games: {name!r} is not a Brax game; expected one of "
                             f"{sorted(GAMES)}")
    key = jax.random.key(args.seed)
    print("| game | envs | program | steps/s | compile + first call s | non-finite |")
    print("|---|---:|---|---:|---:|---:|")
    for name in args.games:
        env = envs.make(name, backend=args.backend)
        body = GAMES[name].body
        for num_envs in args.num_envs:
            programs = {
                f"brax {body}": brax_program(env.brax_env, num_envs, args.steps),
                "game.step_env": game_program(env, num_envs, args.steps, raw=True),
                "game.step": game_program(env, num_envs, args.steps, raw=False),
            }
            for label, run in programs.items():
                first, second, bad = _time(run, key, args.repeats)
                rate = num_envs * args.steps / second
                print(f"| {name} | {num_envs} | {label} | {rate:,.0f} | {first:.1f} | "
                      f"{bad:.3f} |", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
