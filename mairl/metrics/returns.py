"""Return metrics: true returns of learned policies, and the MAMQL "imitation loss".

:func:`evaluate_returns` runs ``num_episodes`` environments side by side
(``jax.vmap`` over envs, ``lax.scan`` over steps) and sums each agent's true
reward until the first end of each episode. It works on any object following
mairl's environment protocol (``reset``, ``step`` with auto-reset,
``max_steps``); this module does not import ``envs``.

Axes: agent first where values are per agent; episodes ``E`` first in the
per-episode returns ``(E, N)``, the layout of a batch of runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "ReturnSummary",
    "episode_info_sums",
    "evaluate_returns",
    "imitation_mse",
    "make_evaluate_returns",
    "mean_confidence_interval",
    "mean_half_width",
    "student_t_quantile",
]

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]


def evaluate_returns(
    key: jax.Array,
    env: Any,
    policy_fn: PolicyFn,
    num_episodes: int,
    *,
    max_steps: int | None = None,
) -> jax.Array:
    """Undiscounted true return of each agent in ``num_episodes`` independent episodes.

    Every environment is reset, then all step together for ``max_steps`` steps
    (``env.max_steps`` by default, after which every episode has ended by
    truncation). An environment adds ``reward`` only up to and including the
    step where its first episode ends (``terminated`` or ``truncated``); what
    it does after its auto-reset is ignored. With ``max_steps`` below
    ``env.max_steps`` the unfinished episodes are cut there.

    Compiled once per ``(env, policy_fn, num_episodes, max_steps)``, which are
    static (hashable; an unhashable ``env`` or ``policy_fn`` runs uncompiled),
    and callable inside ``jax.jit`` with them closed over
    (:func:`make_evaluate_returns`). Host-side environments (``env.jittable``
    false: PettingZoo, highway-env) run the same measurement in a Python loop,
    one episode after another; that path cannot be called inside ``jit``.

    Args:
        key: a typed key, ``jax.random.key(seed)``.
        env: a mairl environment (``env.reset(key)``,
            ``env.step(key, state, actions)``, ``env.max_steps``).
        policy_fn: ``policy_fn(key, obs) -> actions`` for one environment:
            ``obs (N, *obs_shape)`` to ``actions (N,)`` (or ``(N, action_dim)``);
            vmapped over the environments here.
        num_episodes: number of environments, one episode each.
        max_steps: number of steps to run.

    Returns:
        ``(num_episodes, N)`` float32 returns; average over axis 0 for the mean
        return per agent (:func:`mean_confidence_interval`).
    """
    num_steps = int(env.max_steps if max_steps is None else max_steps)
    if num_steps < 1 or num_episodes < 1:
        raise ValueError(
            f"need max_steps >= 1 and num_episodes >= 1, got {num_steps} and {num_episodes}"
        )
    if not getattr(env, "jittable", True):
        return _evaluate_returns_host(key, env, policy_fn, num_episodes, num_steps)
    args = (env, policy_fn, num_episodes, num_steps)
    try:
        hash(args)
    except TypeError:
        return _evaluate_returns(key, *args)
    return _evaluate_returns_jit(key, *args)


def _evaluate_returns(
    key: jax.Array, env: Any, policy_fn: PolicyFn, num_episodes: int, num_steps: int
) -> jax.Array:
    key_reset, key_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_episodes))
    returns = jnp.zeros((num_episodes, env.num_agents), jnp.float32)
    done = jnp.zeros((num_episodes,), jnp.bool_)

    def step(carry, key_t):
        obs, state, done, returns = carry
        key_act, key_step = jax.random.split(key_t)
        actions = jax.vmap(policy_fn)(jax.random.split(key_act, num_episodes), obs)
        obs, state, reward, terminated, truncated, _ = jax.vmap(env.step)(
            jax.random.split(key_step, num_episodes), state, actions
        )
        returns = returns + jnp.where(done[:, None], 0.0, reward.astype(jnp.float32))
        done = done | terminated | truncated
        return (obs, state, done, returns), None

    (_, _, _, returns), _ = jax.lax.scan(
        step, (obs, state, done, returns), jax.random.split(key_run, num_steps)
    )
    return returns


def _evaluate_returns_host(
    key: jax.Array, env: Any, policy_fn: PolicyFn, num_episodes: int, num_steps: int
) -> jax.Array:
    """The same measurement on a host-side env: episodes one after another, each
    step's action from the jitted ``policy_fn`` (plain Python where
    ``policy_fn.host`` is true). Keys are split exactly as in the jitted path, so a
    game gives the same returns through both."""
    import numpy as np

    policy = policy_fn if getattr(policy_fn, "host", False) else jax.jit(policy_fn)
    key_reset, key_run = jax.random.split(key)
    reset_keys = jax.random.split(key_reset, num_episodes)

    @jax.jit
    def keys_of(key_t):  # (episode, [act, env]), as the jitted path splits them
        key_act, key_step = jax.random.split(key_t)
        return jnp.stack([jax.random.split(key_act, num_episodes),
                          jax.random.split(key_step, num_episodes)], axis=1)

    step_keys = jax.vmap(keys_of)(jax.random.split(key_run, num_steps))  # (step, episode, 2)
    returns = np.zeros((num_episodes, env.num_agents), np.float32)
    for e in range(num_episodes):
        obs, state = env.reset(reset_keys[e])
        keys = step_keys[:, e]
        for t in range(num_steps):
            actions = np.asarray(policy(keys[t, 0], jnp.asarray(obs)))
            obs, state, reward, terminated, truncated, _ = env.step(keys[t, 1], state, actions)
            returns[e] += np.asarray(reward, np.float32)
            if terminated or truncated:
                break
    return jnp.asarray(returns)


_evaluate_returns_jit = jax.jit(_evaluate_returns, static_argnums=(1, 2, 3, 4))


def episode_info_sums(
    key: jax.Array,
    env: Any,
    policy_fn: PolicyFn,
    num_episodes: int,
    fields: Sequence[str],
) -> dict[str, jax.Array]:
    """Sum of ``info[field]`` over one fixed-length episode in each of ``num_episodes`` envs.

    Every environment is reset, then all step together for exactly
    ``env.max_steps`` steps, and each named entry of the step's ``info`` is
    summed over those steps. This is the measure for games whose episodes all
    last ``env.max_steps`` steps and end by truncation (Overcooked: fields
    ``delivery``, ``sparse_reward``, ``shaped_reward``); an environment whose
    episode ends earlier goes on summing after its auto-reset. Keys are split
    as in :func:`evaluate_returns`.

    Pure and jittable: close over ``env``, ``policy_fn``, ``num_episodes`` and
    ``fields`` and ``jax.jit`` it, or ``jax.vmap`` it over policy parameters.

    Args:
        key: a typed key, ``jax.random.key(seed)``.
        env: a jittable mairl environment.
        policy_fn: ``policy_fn(key, obs (N, *obs_shape)) -> actions (N,)`` for one
            environment; vmapped over the environments here.
        num_episodes: number of environments, one episode each.
        fields: keys of ``info`` to sum.

    Returns:
        ``{field: (num_episodes, ...)}``, the trailing axes those of ``info[field]``
        for one environment (``()`` for a shared value, ``(N,)`` per agent).
    """
    fields = tuple(fields)
    key_reset, key_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_episodes))

    def step(carry, key_t):
        obs, state = carry
        key_act, key_step = jax.random.split(key_t)
        actions = jax.vmap(policy_fn)(jax.random.split(key_act, num_episodes), obs)
        obs, state, _, _, _, info = jax.vmap(env.step)(
            jax.random.split(key_step, num_episodes), state, actions
        )
        return (obs, state), {field: info[field] for field in fields}

    _, per_step = jax.lax.scan(
        step, (obs, state), jax.random.split(key_run, int(env.max_steps))
    )
    return {field: value.sum(axis=0) for field, value in per_step.items()}


def make_evaluate_returns(
    env: Any, policy_fn: PolicyFn, num_episodes: int, *, max_steps: int | None = None
) -> Callable[[jax.Array], jax.Array]:
    """``evaluate(key) -> (num_episodes, N)`` returns; see :func:`evaluate_returns`.

    Compiled on the first call and reused for every key; ``jax.vmap(evaluate)``
    over a batch of keys runs several seeds at once, and ``evaluate`` can sit
    inside a larger ``jax.jit``.
    """

    def evaluate(key: jax.Array) -> jax.Array:
        return evaluate_returns(key, env, policy_fn, num_episodes, max_steps=max_steps)

    return evaluate


class ReturnSummary(NamedTuple):
    """Mean and confidence interval per agent, each ``(N,)``."""

    mean: jax.Array
    lower: jax.Array
    upper: jax.Array
    stderr: jax.Array


def mean_half_width(x: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``x`` and the half-width of its Student-t interval, over the first axis.

    Plain floats for tables: the mean over all entries, and
    ``t_{(1+c)/2, n-1} * std(x, ddof=1) / sqrt(n)`` with ``n = len(x)`` (other axes
    averaged first); ``nan`` half-width for fewer than two samples.
    """
    import numpy as np

    x = np.asarray(x, np.float64)
    x = x.reshape(x.shape[0], -1).mean(axis=1) if x.ndim > 1 else x
    if x.shape[0] < 2:
        return float(x.mean()), float("nan")
    t = float(student_t_quantile(0.5 + confidence / 2, x.shape[0] - 1))
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(x.shape[0]))


@jax.jit
def student_t_quantile(q: float | jax.Array, dof: float | jax.Array) -> jax.Array:
    """Quantile ``t_q`` of Student's t with ``dof`` degrees of freedom, ``q`` in ``(0, 1)``.

    For ``t > 0``, ``P(T > t) = I_x(dof / 2, 1 / 2) / 2`` with
    ``x = dof / (dof + t^2)`` (``I`` the regularized incomplete beta), so ``x``
    is found by bisection (60 halvings) and ``t = sqrt(dof (1 - x) / x)``; the
    lower tail by symmetry. ``nan`` for ``dof <= 0``. Jittable.
    """
    q = jnp.asarray(q, jnp.float32)
    dof = jnp.asarray(dof, jnp.float32)
    tail = jnp.minimum(q, 1.0 - q)  # P(T > |t_q|)
    safe_dof = jnp.where(dof > 0, dof, 1.0)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        upper_tail = 0.5 * jax.scipy.special.betainc(0.5 * safe_dof, 0.5, mid)
        # upper_tail increases with x; keep the root in [lo, hi].
        too_big = upper_tail > tail
        return jnp.where(too_big, lo, mid), jnp.where(too_big, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 60, body, (jnp.zeros_like(tail), jnp.ones_like(tail)))
    x = 0.5 * (lo + hi)
    t = jnp.sqrt(safe_dof * (1.0 - x) / x)
    t = jnp.where(q >= 0.5, t, -t)
    return jnp.where(dof > 0, t, jnp.nan)


@jax.jit
def mean_confidence_interval(returns: jax.Array, confidence: float = 0.95) -> ReturnSummary:
    """Mean per agent and a Student-t confidence interval over episodes.

    ``mean +- t_{(1 + confidence) / 2, E - 1} * s / sqrt(E)`` with ``s`` the
    sample standard deviation (``ddof=1``) of the ``E`` per-episode returns:
    exact for normally distributed returns, and close to the normal-theory
    interval (``1.96 s / sqrt(E)`` at 95 %) for many episodes. With one
    episode the bounds are ``nan``.

    Args:
        returns: ``(E, N)``, as given by :func:`evaluate_returns`.
        confidence: coverage of the interval, in ``(0, 1)``.

    Returns:
        :class:`ReturnSummary` of ``(N,)`` arrays.
    """
    returns = jnp.asarray(returns, jnp.float32)
    if returns.ndim != 2:
        raise ValueError(f"returns: expected (E, N), got shape {returns.shape}")
    e = returns.shape[0]
    mean = jnp.mean(returns, axis=0)
    if e < 2:
        nan = jnp.full_like(mean, jnp.nan)
        return ReturnSummary(mean, nan, nan, nan)
    stderr = jnp.std(returns, axis=0, ddof=1) / jnp.sqrt(e)
    half = student_t_quantile(0.5 * (1.0 + confidence), e - 1) * stderr
    return ReturnSummary(mean, mean - half, mean + half, stderr)


@jax.jit
def imitation_mse(
    r_true: jax.Array,
    v: jax.Array,
    v_next: jax.Array,
    terminated: jax.Array,
    gamma: float | jax.Array,
) -> jax.Array:
    """The MAMQL reference code's "imitation loss", per agent.

    ``mean_t (r_i(s_t, a_t) - (V_i(s_t) - gamma (1 - term_t) V_i(s_{t+1})))^2``:
    the squared error between the true reward and the reward the learned soft
    values imply on the sampled transitions. It is reported for comparison with
    that code's plots; unlike the shaping-aware metrics of
    :mod:`mairl.metrics.reward` it is not invariant to potential shaping or
    scale, so a perfectly recovered but shaped reward can score badly.

    Args:
        r_true: ``(N, B)`` true rewards of the samples.
        v: ``(N, B)`` learned ``V_i(s)``.
        v_next: ``(N, B)`` learned ``V_i(s')``.
        terminated: ``(B,)`` bool; truncation keeps the bootstrap.
        gamma: discount.

    Returns:
        ``(N,)``.
    """
    r_true = jnp.asarray(r_true)
    r_true = r_true.astype(jnp.result_type(jnp.float32, r_true))
    if r_true.ndim != 2 or jnp.shape(v) != r_true.shape or jnp.shape(v_next) != r_true.shape:
        raise ValueError(
            "r_true, v, v_next: expected equal shapes (N, B), got "
            f"{r_true.shape}, {jnp.shape(v)}, {jnp.shape(v_next)}"
        )
    cont = 1.0 - jnp.asarray(terminated, r_true.dtype)
    implied = v - gamma * cont[None, :] * v_next
    return jnp.mean((r_true - implied) ** 2, axis=-1)
