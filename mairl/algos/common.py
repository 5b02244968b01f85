"""Soft-Q building blocks shared by the algorithms.

Axis conventions: per-agent values carry the agent axis first, ``(agent, batch,
...)``; functions written for one agent are lifted with ``jax.vmap``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mairl.buffers import buffer_add, buffer_init, buffer_sample
from mairl.networks import CRITICS, make_critic
from mairl.sharding import local_transitions

#: Set by :func:`deferred_checks`: configs built meanwhile skip :func:`check_fields`.
_DEFER_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("defer_checks",
                                                                     default=False)


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Build configs without running :func:`check_fields`, e.g. while a command line
    parser assembles them; the caller checks them afterwards with :func:`recheck`,
    so that a bad value becomes one message of the caller's, not the parser's."""
    token = _DEFER_CHECKS.set(True)
    try:
        yield
    finally:
        _DEFER_CHECKS.reset(token)


def recheck(config: Any) -> Any:
    """Run the checks of a frozen config dataclass built under :func:`deferred_checks`
    (rebuilding it field by field); returns the checked config or raises ``ValueError``."""
    import dataclasses

    return dataclasses.replace(config)


def check_fields(config: Any, checks: Iterable[tuple[str, bool, str]]) -> None:
    """Raise ``ValueError`` naming the first field whose check fails.

    ``checks``: ``(field, ok, expected)`` triples, e.g. ``("gamma", 0 <= gamma < 1,
    "in [0, 1)")``; the message reads ``Config.field: expected ..., got value``.
    Skipped inside :func:`deferred_checks`.
    """
    if _DEFER_CHECKS.get():
        return
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"{type(config).__name__}.{name}: expected {expected}, "
                             f"got {getattr(config, name)!r}")


def _positive_widths(hidden) -> bool:
    return all(int(h) >= 1 for h in hidden)


#: The check of every config field that means the same in each algorithm that has it:
#: ``field: (ok(value), expected)``; :func:`check_config` applies them.
FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "alpha": (lambda v: v > 0, "> 0"),
    "gamma": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "actor_learning_rate": (lambda v: v > 0, "> 0"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "chi2_coef": (lambda v: v >= 0, ">= 0"),
    "l2": (lambda v: v >= 0, ">= 0"),
    "num_envs": (lambda v: v >= 1, ">= 1"),
    "buffer_size": (lambda v: v >= 1, ">= 1"),
    "tau": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "target_tau": (lambda v: v is None or 0 < v <= 1, "in (0, 1] or None"),
    "critic": (lambda v: v in CRITICS, f"one of {CRITICS}"),
    "hidden": (_positive_widths, "positive widths"),
    "max_grad_norm": (lambda v: v is None or v > 0, "> 0 or None"),
    "huber_delta": (lambda v: v is None or v > 0, "> 0 or None"),
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "grad_penalty": (lambda v: v >= 0, ">= 0"),
}


def check_config(config: Any, checks: Iterable[tuple[str, bool, str]] = ()) -> None:
    """Check a frozen config dataclass: the check of :data:`FIELD_CHECKS` for each of
    its fields named there (in field order), then ``checks``, as :func:`check_fields`
    does; an entry of ``checks`` for a field replaces that field's standard check.
    Skipped inside :func:`deferred_checks`."""
    import dataclasses

    if _DEFER_CHECKS.get():
        return
    checks = list(checks)
    own = {name for name, _, _ in checks}
    standard = [(f.name, *FIELD_CHECKS[f.name]) for f in dataclasses.fields(config)
                if f.name in FIELD_CHECKS and f.name not in own]
    check_fields(config, [(name, ok(getattr(config, name)), expected)
                          for name, ok, expected in standard] + checks)


def actor_checks(config: Any) -> list[tuple[str, bool, str]]:
    """The checks of a tanh-Gaussian actor's fields, for :func:`check_config`:
    ``hidden``, one or more positive widths, and ``log_std_min < log_std_max``."""
    return [
        ("hidden", len(config.hidden) >= 1 and all(h >= 1 for h in config.hidden),
         "one or more positive widths"),
        ("log_std_max", config.log_std_min < config.log_std_max,
         f"> log_std_min={config.log_std_min}"),
    ]


def make_config_critic(config: Any, num_outputs: int, obs_shape: tuple[int, ...]):
    """The network preset ``config.critic`` (``mairl.networks.make_critic``), with
    ``config.hidden`` as its hidden widths where it is an ``mlp`` and
    ``config.dropout`` (where the config has one) as its training-time dropout."""
    kwargs = {"hidden": tuple(config.hidden)} if config.critic == "mlp" else {}
    dropout = float(getattr(config, "dropout", 0.0))
    try:
        return make_critic(config.critic, num_outputs, obs_shape, dropout=dropout, **kwargs)
    except ValueError as err:
        if str(err).startswith("dropout:"):
            raise ValueError(f"{type(config).__name__}.{err}") from None
        raise


def check_jittable_env(name: str, env: Any) -> None:
    """An online learner's environment: given, and jittable."""
    if env is None:
        raise ValueError(f"{name}: needs an environment (env=...)")
    if not getattr(env, "jittable", True):
        raise ValueError(f"{name}: {env!r} is not jittable")


def soft_value(q: jax.Array, alpha: float) -> jax.Array:
    """``V(s) = alpha * logsumexp(Q(s, .) / alpha)`` over the last axis."""
    return alpha * jax.nn.logsumexp(q / alpha, axis=-1)


def log_policy(q: jax.Array, alpha: float) -> jax.Array:
    """Boltzmann log-policy ``log pi(a|s) = (Q(s, a) - V(s)) / alpha`` over the last axis."""
    return jax.nn.log_softmax(q / alpha, axis=-1)


def chi2_phi(x: jax.Array, alpha: float, coef: float) -> jax.Array:
    """IQ-Learn's concave ``phi`` for the chi-squared divergence: ``x - coef x^2 / (4 alpha)``."""
    return x - coef * x**2 / (4.0 * alpha)


def init_stacked(net, key: jax.Array, num_agents: int, example_obs: jax.Array) -> Any:
    """Independent parameters for every agent, stacked on a leading agent axis."""
    return jax.vmap(net.init, in_axes=(0, None))(jax.random.split(key, num_agents), example_obs)


def apply_stacked(net, params: Any, obs: jax.Array) -> jax.Array:
    """``Q (agent, ..., action)`` from stacked params and ``obs (agent, ..., *obs_shape)``."""
    return jax.vmap(net.apply)(params, obs)


def sample_actions(key: jax.Array, q: jax.Array, alpha: float, greedy: bool = False) -> jax.Array:
    """Boltzmann (or greedy) actions from ``q (..., action)``, int32 ``(...)``."""
    if greedy:
        return jnp.argmax(q, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, q / alpha, axis=-1).astype(jnp.int32)


def make_policy_fn(
    net, params: Any, alpha: float, greedy: bool = False
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``policy_fn(key, obs (agent, *obs_shape)) -> actions (agent,)`` for the env protocol."""

    def policy_fn(key: jax.Array, obs: jax.Array) -> jax.Array:
        return sample_actions(key, apply_stacked(net, params, obs), alpha, greedy)

    return policy_fn


def make_optimizer(learning_rate: float, max_grad_norm: float | None = None):
    """Adam at ``learning_rate``, after global-norm clipping at ``max_grad_norm`` if set."""
    tx = optax.adam(learning_rate)
    if max_grad_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), tx)
    return tx


def stacked_optimizer_step(tx, grads: Any, opt_state: Any, params: Any) -> tuple[Any, Any]:
    """One step of every agent's optimizer, ``tx`` vmapped over the agent axis:
    ``(params, opt_state)`` after ``grads``."""
    updates, opt_state = jax.vmap(tx.update)(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p + u, params, updates), opt_state


def l2_penalty(params: Any) -> jax.Array:
    """Sum of squared parameters (weights and biases)."""
    return sum(jnp.sum(p**2) for p in jax.tree.leaves(params))


def polyak(target: Any, online: Any, tau: float) -> Any:
    """``target <- (1 - tau) target + tau online``."""
    return optax.incremental_update(online, target, tau)


#: ``obs_transform(obs (*obs_shape), agent) -> view``: one agent's view of its observation.
ObsTransform = Callable[[jax.Array, jax.Array], jax.Array]


def step_envs(env, env_state: Any, env_obs: jax.Array, actions: jax.Array, key: jax.Array):
    """One step of ``num_envs`` vmapped environments: the rollout-into-replay helper of
    every online learner.

    Args:
        env_state, env_obs: the running environments, ``env_obs (env, agent, *obs_shape)``.
        actions: ``(env, agent)``.

    Returns:
        ``(env_obs, env_state, items, rewards)``: the next observations (after
        auto-reset) and states, the transitions as replay items, environments
        first (``Transition`` with ``obs (env, agent, ...)``, ``next_obs`` the
        true successor ``info["next_obs"]``, ``terminated``/``truncated (env,)``,
        no rewards), and the true rewards ``(env, agent)``, kept apart so that
        only forward learners store them.
    """
    from mairl.data import Transition

    num_envs = actions.shape[0]
    next_obs, env_state, rewards, terminated, truncated, info = jax.vmap(env.step)(
        jax.random.split(key, num_envs), env_state, actions
    )
    items = Transition(env_obs, actions, info["next_obs"], terminated, truncated)
    return next_obs, env_state, items, rewards


def online_init(env: Any, key: jax.Array, *, num_agents: int, obs_shape: tuple[int, ...],
                num_envs: int, buffer_size: int, host: bool) -> dict[str, Any]:
    """The online fields of an imitation learner's state (``env_state``, ``env_obs``,
    ``buffer``): ``num_envs`` reset environments (none on a host-side game, whose
    loop steps the env itself) and an empty replay of the agents' own transitions
    (``Transition`` items, agent axis first inside each item, no rewards)."""
    from mairl.data import Transition

    fields: dict[str, Any] = {}
    example = jnp.zeros((num_agents, *obs_shape), jnp.float32)
    if not host:
        env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
        fields.update(env_state=env_state, env_obs=env_obs)
        example = env_obs[0]
    item = Transition(obs=example, actions=jnp.zeros((num_agents,), jnp.int32),
                      next_obs=example, terminated=jnp.bool_(False), truncated=jnp.bool_(False))
    fields["buffer"] = buffer_init(item, buffer_size)
    return fields


def act_and_store(env: Any, state: Any, act: Callable, key: jax.Array) -> Any:
    """One step of the state's environments under ``act(state, env_obs, key) -> actions
    (env, agent)``, its transitions added to the state's replay (``state`` has
    ``env_state``, ``env_obs`` and ``buffer``)."""
    key_act, key_step = jax.random.split(key)
    actions = act(state, state.env_obs, key_act)
    env_obs, env_state, items, _ = step_envs(env, state.env_state, state.env_obs, actions,
                                             key_step)
    return state.replace(env_state=env_state, env_obs=env_obs,
                         buffer=buffer_add(state.buffer, items))


def sample_policy_batch(buffer: Any, key: jax.Array, batch_size: int,
                        data_axis: str | None = None) -> Any:
    """``batch_size`` of the agents' own transitions drawn uniformly from the replay,
    agent axis first (``obs (agent, B, ...)``, ``actions (agent, B)``); inside
    ``shard_map`` over ``data_axis`` the device's slice of them."""
    from mairl.data import Transition

    sample = buffer_sample(buffer, key, batch_size)
    policy = Transition(obs=jnp.swapaxes(sample.obs, 0, 1), actions=sample.actions.T,
                        next_obs=jnp.swapaxes(sample.next_obs, 0, 1),
                        terminated=sample.terminated, truncated=sample.truncated)
    return policy if data_axis is None else local_transitions(policy, data_axis)


def view_shape(obs_shape: tuple[int, ...], obs_transform: ObsTransform | None) -> tuple:
    """Shape of one agent's observation after ``obs_transform(obs, agent)``."""
    if obs_transform is None:
        return tuple(obs_shape)
    out = jax.eval_shape(obs_transform, jax.ShapeDtypeStruct(tuple(obs_shape), jnp.float32),
                         jax.ShapeDtypeStruct((), jnp.int32))
    return tuple(out.shape)


def apply_view(obs: jax.Array, agent: jax.Array, obs_transform: ObsTransform,
               ndim: int) -> jax.Array:
    """Agent ``agent``'s view ``obs_transform(o, agent)`` of every observation ``o``
    in ``obs (..., *obs_shape)`` (``ndim = len(obs_shape)``)."""
    lead = obs.shape[: obs.ndim - ndim]
    flat = obs.reshape(-1, *obs.shape[obs.ndim - ndim:])
    flat = jax.vmap(obs_transform, in_axes=(0, None))(flat, agent)
    return flat.reshape(*lead, *flat.shape[1:])


def stacked_views(obs: jax.Array, obs_transform: ObsTransform, ndim: int) -> jax.Array:
    """``obs (agent, ..., *obs_shape)`` -> each agent's views ``(agent, ..., *view_shape)``."""
    return jax.vmap(lambda o, i: apply_view(o, i, obs_transform, ndim))(
        obs, jnp.arange(obs.shape[0]))


def make_stacked_apply(net, obs_shape: tuple[int, ...], obs_transform: ObsTransform | None):
    """``apply(params, obs (agent, ..., *obs_shape), key=None) -> (agent, ..., outputs)``.

    Agent ``i`` applies its own parameters to ``obs_transform(obs_i, i)`` (its
    view of the observation; identity when ``None``). Without ``key`` the
    network is deterministic (evaluation, acting); with one it runs in training
    mode, each agent's dropout masks drawn from its own part of ``key``
    (networks without dropout ignore it).
    """
    ndim = len(obs_shape)

    def one(params, obs, agent, key):
        if obs_transform is not None:
            obs = apply_view(obs, agent, obs_transform, ndim)
        if key is None:
            return net.apply(params, obs)
        return net.apply(params, obs, deterministic=False, rngs={"dropout": key})

    def apply(params, obs, key=None):
        num_agents = obs.shape[0]
        agents = jnp.arange(num_agents)
        if key is None:
            return jax.vmap(lambda p, o, i: one(p, o, i, None))(params, obs, agents)
        return jax.vmap(one)(params, obs, agents, jax.random.split(key, num_agents))

    return apply


# -- tanh-squashed Gaussian policies (continuous actions) ----------------------------------------
#: Actions are clipped to ``[-1 + ACTION_EPS, 1 - ACTION_EPS]`` before ``atanh`` when the
#: log-density of a given action is evaluated (demonstrated actions may sit on the bounds,
#: where the density of a tanh-squashed Gaussian is 0 or infinite).
ACTION_EPS = 1e-4

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_log_det(u: jax.Array) -> jax.Array:
    """``log(1 - tanh(u)^2)``, summed over the last axis, computed stably as
    ``2 (log 2 - u - softplus(-2 u))``."""
    return jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian at ``u``, summed over the last axis."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - _LOG_SQRT_2PI, axis=-1)


def tanh_gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array,
                         greedy: bool = False) -> tuple[jax.Array, jax.Array]:
    """A reparameterized draw ``a = tanh(mean + std * eps)`` and its log-density
    ``log pi(a) = log N(u; mean, std) - sum_d log(1 - tanh(u_d)^2)`` (change of
    variables through the tanh); ``greedy``: ``a = tanh(mean)`` (its log-density
    is still returned). Shapes ``(..., dim)`` and ``(...)``."""
    u = mean if greedy else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape,
                                                                         mean.dtype)
    return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)


def tanh_gaussian_log_prob(actions: jax.Array, mean: jax.Array, log_std: jax.Array,
                           eps: float = ACTION_EPS) -> jax.Array:
    """``log pi(a)`` of given actions in ``[-1, 1]^dim``: ``u = atanh(clip(a, -1 + eps,
    1 - eps))``, then the change of variables of :func:`tanh_gaussian_sample`."""
    u = jnp.arctanh(jnp.clip(actions, -1.0 + eps, 1.0 - eps))
    return gaussian_log_prob(u, mean, log_std) - tanh_log_det(u)


class StackedCritic(NamedTuple):
    """A config's network for every agent (:func:`make_stacked_critic`).

    Attributes:
        net: one agent's network (:func:`make_config_critic`).
        shape: one agent's input, its view of an observation (:func:`view_shape`).
        apply: ``apply(params, obs (agent, ..., *obs_shape), key=None)`` on raw
            observations (:func:`make_stacked_apply`).
    """

    net: Any
    shape: tuple[int, ...]
    apply: Callable

    def init(self, key: jax.Array, num_agents: int) -> Any:
        """Fresh parameters for every agent, stacked on the agent axis
        (:func:`init_stacked` on zeros of ``shape``)."""
        return init_stacked(self.net, key, num_agents, jnp.zeros(self.shape, jnp.float32))


def make_stacked_critic(config: Any, num_outputs: int, obs_shape: tuple[int, ...],
                        obs_transform: ObsTransform | None) -> StackedCritic:
    """The network of ``config`` (its ``critic`` preset and ``hidden`` widths) with
    ``num_outputs`` outputs, one per agent, each on its view ``obs_transform(obs,
    agent)`` of the raw observations (identity when ``None``)."""
    shape = view_shape(obs_shape, obs_transform)
    net = make_config_critic(config, num_outputs, shape)
    return StackedCritic(net, shape, make_stacked_apply(net, obs_shape, obs_transform))
