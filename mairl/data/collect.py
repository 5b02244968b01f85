"""Record demonstrations from any policy, on vmapped jitted envs or host-side envs.

``collect`` runs ``num_envs`` independent streams of episodes. Stream ``e``
plays a fixed quota of episodes (``num_episodes`` spread as evenly as
possible) and keeps its first episodes in the order played, whatever their
length, so short episodes are not favoured. Each stream draws its randomness
from its own key: step ``t`` of stream ``e`` uses
``split(fold_in(key_steps_e, t))`` for the policy and the env, where
``key_reset_e, key_steps_e = split(split(key, num_envs)[e])``. Jittable envs run
all streams at once (``lax.scan`` over ``vmap(env.step)``, in chunks of
``chunk_steps`` steps); host-side envs (``env.jittable`` false) run them one
after the other in a Python loop. Both give the same demonstrations.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mairl.data.demonstrations import Demonstrations

#: ``policy_fn(key, obs) -> actions`` for one env: ``obs (N, *obs_shape)`` ->
#: ``actions (N,)`` int32 or ``(N, action_dim)`` float32.
PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]
#: ``progress(episodes_done, num_episodes)``, called from the host.
ProgressFn = Callable[[int, int], None]

_FIELDS = ("obs", "actions", "next_obs", "rewards", "terminated", "truncated")


def _stream_keys(key: jax.Array, num_envs: int) -> tuple[jax.Array, jax.Array]:
    """``(key_reset, key_steps)``, each ``(num_envs,)``."""
    keys = jax.vmap(jax.random.split)(jax.random.split(key, num_envs))
    return keys[:, 0], keys[:, 1]


def _step_keys(key_steps: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(key_act, key_step)`` of one stream at step ``t``."""
    key_act, key_step = jax.random.split(jax.random.fold_in(key_steps, t))
    return key_act, key_step


def _quotas(num_episodes: int, num_envs: int) -> np.ndarray:
    base, extra = divmod(num_episodes, num_envs)
    return base + (np.arange(num_envs) < extra).astype(np.int64)


def _num_actions(env: Any) -> int | None:
    """Largest discrete action count over agents (for range checks); ``None`` if continuous."""
    ns = [getattr(space, "n", None) for space in env.action_spaces]
    if any(n is None for n in ns):
        return None
    return int(max(ns))


def collect(
    key: jax.Array,
    env: Any,
    policy_fn: PolicyFn,
    num_episodes: int,
    *,
    num_envs: int = 16,
    chunk_steps: int | None = None,
    progress: ProgressFn | None = None,
    expert_alpha: float | None = None,
    expert_gamma: float | None = None,
) -> Demonstrations:
    """Play ``num_episodes`` complete episodes of ``policy_fn`` in ``env``.

    Returns :class:`Demonstrations` (time first) ordered episode by episode,
    ``episode_id`` ``0 .. num_episodes - 1``, with the true rewards. ``next_obs``
    is the env's ``info["next_obs"]``: the true successor, also at the last step
    of an episode where ``step`` has already reset. ``num_envs`` streams run in
    parallel (at most ``num_episodes``); ``chunk_steps`` (default
    ``env.max_steps``) bounds how many steps are held on the device at once.
    ``progress(episodes_done, num_episodes)`` is called between chunks
    (jittable envs) or after each episode (host envs). The result depends on
    ``key`` and ``num_envs`` only. The compiled chunk is cached per
    ``(env, policy_fn, chunk_steps)`` when both objects are hashable (the cache
    keeps them alive): pass the same objects again to skip compilation.

    Metadata recorded: ``env_id`` and the action count from ``env``;
    ``episode_rule``, the env's own ``episode_rule`` (the keyword arguments
    that decide where its episodes end, e.g. ``envs.gems.Gems.episode_rule``)
    where it has one; ``expert_alpha`` and ``expert_gamma``, the temperature
    and discount of the soft-optimal policy ``policy_fn`` samples, as given
    (``None``: unknown).
    """
    if int(num_episodes) < 1:
        raise ValueError(f"collect: num_episodes must be >= 1, got {num_episodes}")
    if int(num_envs) < 1:
        raise ValueError(f"collect: num_envs must be >= 1, got {num_envs}")
    num_episodes = int(num_episodes)
    num_envs = min(int(num_envs), num_episodes)
    quotas = _quotas(num_episodes, num_envs)
    max_steps = int(env.max_steps)
    step_limit = int(quotas.max()) * max_steps
    if getattr(env, "jittable", True):
        chunk = int(chunk_steps) if chunk_steps is not None else max_steps
        if chunk < 1:
            raise ValueError(f"collect: chunk_steps must be >= 1, got {chunk_steps}")
        streams = _collect_jit(key, env, policy_fn, quotas, chunk, step_limit, progress)
    else:
        streams = _collect_host(key, env, policy_fn, quotas, step_limit, progress)
    fields = {name: np.concatenate([s[name] for s in streams]) for name in _FIELDS}
    done = fields["terminated"] | fields["truncated"]
    if int(done.sum()) != num_episodes:
        raise RuntimeError(f"collect: expected {num_episodes} episodes, recorded {int(done.sum())}")
    return Demonstrations.create(
        obs=fields["obs"],
        actions=fields["actions"],
        next_obs=fields["next_obs"],
        terminated=fields["terminated"],
        truncated=fields["truncated"],
        rewards=fields["rewards"],
        env_id=getattr(env, "env_id", None),
        num_actions=_num_actions(env),
        episode_rule=getattr(env, "episode_rule", None),
        expert_alpha=expert_alpha,
        expert_gamma=expert_gamma,
    )


def _too_long(env: Any, stream: int, limit: int) -> RuntimeError:
    name = getattr(env, "name", type(env).__name__)
    return RuntimeError(
        f"collect: env {name!r} stream {stream} did not finish its episodes within {limit} "
        f"steps; every episode must end within max_steps={env.max_steps} steps"
    )


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


@partial(jax.jit, static_argnames=("env",))
def _reset_streams(key_reset: jax.Array, *, env: Any):
    """``vmap(env.reset)`` over streams: ``obs (E, N, *obs_shape)``, batched state."""
    return jax.vmap(env.reset)(key_reset)


@partial(jax.jit, static_argnames=("env", "policy_fn", "length"))
def _run_chunk(carry, key_steps: jax.Array, *, env: Any, policy_fn: PolicyFn, length: int):
    """``length`` steps of all streams; records are ``(length, E, ...)``.

    ``carry = (obs (E, N, *obs_shape), state, t (), episode (E,))`` where ``t``
    is the step index shared by all streams and ``episode`` counts each
    stream's finished episodes. Compiled once per ``(env, policy_fn, length)``.
    """

    def body(carry, _):
        obs, state, t, episode = carry
        key_act, key_step = jax.vmap(_step_keys, (0, None))(key_steps, t)
        actions = jax.vmap(policy_fn)(key_act, obs)
        obs_out, state, reward, terminated, truncated, info = jax.vmap(env.step)(
            key_step, state, actions
        )
        record = {
            "obs": obs,
            "actions": actions,
            "next_obs": info["next_obs"],
            "rewards": reward,
            "terminated": terminated,
            "truncated": truncated,
            "episode": episode,
        }
        episode = episode + (terminated | truncated).astype(jnp.int32)
        return (obs_out, state, t + 1, episode), record

    return jax.lax.scan(body, carry, None, length=length)


def _collect_jit(
    key: jax.Array,
    env: Any,
    policy_fn: PolicyFn,
    quotas: np.ndarray,
    chunk: int,
    step_limit: int,
    progress: ProgressFn | None,
) -> list[dict[str, np.ndarray]]:
    num_envs = len(quotas)
    key_reset, key_steps = _stream_keys(key, num_envs)
    if _hashable(env) and _hashable(policy_fn):
        reset = partial(_reset_streams, env=env)
        run_chunk = partial(_run_chunk, env=env, policy_fn=policy_fn, length=chunk)
    else:
        reset = jax.jit(partial(_reset_streams.__wrapped__, env=env))
        run_chunk = jax.jit(
            partial(_run_chunk.__wrapped__, env=env, policy_fn=policy_fn, length=chunk)
        )

    obs, state = reset(key_reset)
    carry = (obs, state, jnp.asarray(0, jnp.int32), jnp.zeros(num_envs, jnp.int32))
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in range(num_envs)]
    steps = 0
    while True:
        carry, record = run_chunk(carry, key_steps)
        record = jax.device_get(record)  # each (chunk, E, ...)
        steps += chunk
        for e in range(num_envs):
            keep = record["episode"][:, e] < quotas[e]
            if keep.any():
                parts[e].append({name: record[name][keep, e] for name in _FIELDS})
        finished = np.minimum(np.asarray(carry[3]), quotas)
        if progress is not None:
            progress(int(finished.sum()), int(quotas.sum()))
        if (finished >= quotas).all():
            break
        if steps >= step_limit:
            raise _too_long(env, int(np.flatnonzero(finished < quotas)[0]), step_limit)
    return [
        {name: np.concatenate([p[name] for p in stream_parts]) for name in _FIELDS}
        for stream_parts in parts
    ]


def _collect_host(
    key: jax.Array,
    env: Any,
    policy_fn: PolicyFn,
    quotas: np.ndarray,
    step_limit: int,
    progress: ProgressFn | None,
) -> list[dict[str, np.ndarray]]:
    key_reset, key_steps = _stream_keys(key, len(quotas))
    # host policies (``policy_fn.host = True``) run as plain Python, e.g. scripted
    # experts written in NumPy; all others are jitted
    policy = policy_fn if getattr(policy_fn, "host", False) else jax.jit(policy_fn)
    step_keys = jax.jit(_step_keys)
    streams = []
    finished_before = 0
    for e, quota in enumerate(quotas):
        records: dict[str, list] = {name: [] for name in _FIELDS}
        obs, state = env.reset(key_reset[e])
        finished, t = 0, 0
        while finished < quota:
            if t >= step_limit:
                raise _too_long(env, e, step_limit)
            key_act, key_step = step_keys(key_steps[e], t)
            actions = np.asarray(policy(key_act, jnp.asarray(obs)))
            obs_out, state, reward, terminated, truncated, info = env.step(key_step, state, actions)
            terminated, truncated = bool(terminated), bool(truncated)
            records["obs"].append(np.asarray(obs))
            records["actions"].append(actions)
            records["next_obs"].append(np.asarray(info["next_obs"]))
            records["rewards"].append(np.asarray(reward, np.float32))
            records["terminated"].append(terminated)
            records["truncated"].append(truncated)
            obs, t = obs_out, t + 1
            if terminated or truncated:
                finished += 1
                if progress is not None:
                    progress(finished_before + finished, int(quotas.sum()))
        finished_before += int(quota)
        streams.append({name: np.stack([np.asarray(x) for x in v]) for name, v in records.items()})
    return streams
