"""Multi-agent soft Q-learning on the true rewards: a forward learner for experts.

Where no exact solver reaches (Gems, large games), experts are trained by deep
soft Q-learning on the game's own rewards. Every agent ``i`` has a marginal
soft-Q critic ``Q_i(s, a_i)``, conditioned on the state and its own action only
(the other agents are part of its environment), and acts with the Boltzmann
policy

    pi_i(a_i | s) = exp((Q_i(s, a_i) - V_i(s)) / alpha),
    V_i(s)        = alpha * logsumexp_a Q_i(s, a) / alpha.

Each critic regresses on the soft Bellman target of its own reward,

    y_i  = r_i + gamma * (1 - terminated) * V_i^target(s'),
    L_i  = E_(s, a, r, s') ~ buffer [ (Q_i(s, a_i) - y_i)^2 ]     (or Huber),

with ``V^target`` the soft value of a Polyak-averaged copy of the critic
(``target <- (1 - tau) target + tau online``). Only ``terminated`` zeroes the
bootstrap; a truncated episode keeps it, and ``s'`` is the env's
``info["next_obs"]``, the true successor also where ``step`` auto-reset.

One ``update`` steps ``num_envs`` vmapped environments once with the current
Boltzmann policies, appends the ``num_envs`` transitions to a replay buffer
(``mairl.buffers``), samples ``batch_size`` transitions and takes one Adam step
on every critic. Parameters and optimizer states are stacked on the agent axis
and every per-agent computation is a ``jax.vmap`` over it::

    learner = make_soft_q(SoftQConfig(alpha=0.1), env)
    state = learner.init(key)
    state, metrics = learner.update(state, key)          # jittable
    train = make_train(SoftQConfig(alpha=0.1), env)
    result = jax.jit(train)(jax.random.key(0))           # whole run, lax.scan

An optional observation transform ``obs_transform(obs (agent, *obs_shape)) ->
features (agent, *feature_shape)`` is applied to one environment's joint
observation before the critics, both when acting and when learning, so an
expert can act on the observations demonstrations store (e.g. maps) through a
cheap exact feature map. The buffer holds the features, in the dtype the
transform returns (a binary map kept as ``uint8`` costs a quarter of float32);
the critics cast them to float32.

Parameters are saved as ``.npz`` (:func:`save_params`): the parameter tree
flattened to ``'/'``-joined keys, plus scalar metadata, read back with
``allow_pickle=False`` (:func:`load_params`) and checked against the shapes a
network expects (:func:`check_params`).

Axes: agent first, ``(agent, batch, ...)``, wherever values differ per agent;
environments first, ``(env, agent, ...)``, in the env states and buffer items.
This module does not import ``envs``: it sees only the environment protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mairl.algos.common import (
    apply_stacked,
    init_stacked,
    make_optimizer,
    polyak,
    sample_actions,
    soft_value,
)
from mairl.buffers import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mairl.metrics.returns import evaluate_returns
from mairl.networks import CRITICS, make_critic
from mairl.params import (  # noqa: F401  (re-exported: expert files are written here)
    check_params,
    flatten_params,
    load_params,
    save_params,
    unflatten_params,
)

__all__ = [
    "Experience",
    "SoftQ",
    "SoftQConfig",
    "SoftQResult",
    "SoftQState",
    "check_params",
    "flatten_params",
    "load_params",
    "make_soft_q",
    "make_train",
    "save_params",
    "soft_bellman_target",
    "soft_q_loss",
    "unflatten_params",
]

#: ``obs_transform(obs (agent, *obs_shape)) -> features (agent, *feature_shape)``.
ObsTransform = Callable[[jax.Array], jax.Array]
#: ``policy_fn(key, obs (agent, *obs_shape)) -> actions (agent,)`` int32.
PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]
#: ``progress(update, eval_return (agent,), loss (agent,))``, called on the host.
ProgressFn = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class SoftQConfig:
    """Configuration of multi-agent soft Q-learning.

    Attributes:
        alpha: Boltzmann temperature of the behaviour policy and of the soft value.
        gamma: discount.
        learning_rate: Adam step size.
        batch_size: transitions sampled per gradient step.
        num_envs: environments stepped once per update.
        buffer_size: replay capacity, in transitions.
        tau: Polyak rate of the target critic (1: the target is the online critic).
        critic: network preset (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` critic.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
        huber_delta: Huber loss threshold; ``None`` for the squared error.
        num_updates: updates in a ``make_train`` run; a multiple of ``eval_every``.
        warmup_steps: vectorized env steps with the initial policy that fill the
            buffer before the first update (``warmup_steps * num_envs`` transitions).
        eval_every: updates between evaluations in a ``make_train`` run.
        eval_episodes: episodes per evaluation (Boltzmann policy at ``alpha``).
    """

    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    batch_size: int = 256
    num_envs: int = 16
    buffer_size: int = 100_000
    tau: float = 0.005
    critic: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    max_grad_norm: float | None = 10.0
    huber_delta: float | None = None
    num_updates: int = 10_000
    warmup_steps: int = 64
    eval_every: int = 1_000
    eval_episodes: int = 64

    def __post_init__(self):
        checks = [
            ("alpha", self.alpha > 0, "> 0"),
            ("gamma", 0 <= self.gamma < 1, "in [0, 1)"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("buffer_size", self.buffer_size >= self.num_envs, f">= num_envs ({self.num_envs})"),
            ("tau", 0 < self.tau <= 1, "in (0, 1]"),
            ("critic", self.critic in CRITICS, f"one of {CRITICS}"),
            ("hidden", all(int(h) >= 1 for h in self.hidden), "positive widths"),
            ("num_updates", self.num_updates >= 1, ">= 1"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("eval_every", self.eval_every >= 1, ">= 1"),
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
        ]
        if self.max_grad_norm is not None:
            checks.append(("max_grad_norm", self.max_grad_norm > 0, "> 0 or None"))
        if self.huber_delta is not None:
            checks.append(("huber_delta", self.huber_delta > 0, "> 0 or None"))
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(
                    f"SoftQConfig.{name}: expected {expected}, got {getattr(self, name)!r}"
                )
        if self.num_updates % self.eval_every:
            raise ValueError(
                f"SoftQConfig.num_updates: expected a multiple of eval_every "
                f"({self.eval_every}), got {self.num_updates}"
            )

    @property
    def num_evals(self) -> int:
        """Evaluations in a ``make_train`` run (one after every ``eval_every`` updates)."""
        return self.num_updates // self.eval_every


class Experience(NamedTuple):
    """One replay item per environment (buffer leaves add a leading capacity axis).

    ``obs``/``next_obs (agent, *feature_shape)`` are transformed observations,
    ``actions (agent,)`` int32, ``rewards (agent,)`` float32, ``terminated ()`` bool.
    """

    obs: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


@struct.dataclass
class SoftQState:
    """Learner state; parameters and optimizer states stacked on the agent axis.

    ``env_obs (env, agent, *obs_shape)`` and ``env_state`` are the running
    environments; ``buffer`` holds :class:`Experience` items; ``step`` counts updates.
    """

    params: Any
    target_params: Any
    opt_state: Any
    env_state: Any
    env_obs: jax.Array
    buffer: ReplayBuffer
    step: jax.Array


class SoftQ(NamedTuple):
    """The learner: pure functions over :class:`SoftQState`.

    Attributes:
        init: ``init(key, params=None) -> state``: reset envs, empty buffer, fresh
            critics or the given stacked ``params`` (a curriculum, a fine-tuning).
        update: ``update(state, key) -> (state, metrics)``: one env step of every
            environment, one gradient step; jittable, no host sync.
        collect: ``collect(state, key) -> state``: one env step, stored, no learning.
        init_params: ``init_params(key) -> params``: fresh critics stacked on the
            agent axis (``jax.eval_shape`` of it is the template of a parameter file).
        q_values: ``q_values(params, obs) -> Q``: ``obs (agent, *obs_shape)`` or
            ``(agent, batch, *obs_shape)`` (raw observations) to ``(agent, [batch,]
            action)``.
        policy: ``policy(params, alpha=None, greedy=False) -> policy_fn`` for the
            env protocol, Boltzmann at ``alpha`` (default ``config.alpha``).
        net: the critic of one agent (a flax module).
        obs_transform: the observation transform (identity by default).
        feature_shape: shape of one agent's transformed observation.
        config: the :class:`SoftQConfig`.
    """

    init: Callable[..., SoftQState]
    update: Callable[[SoftQState, jax.Array], tuple[SoftQState, dict]]
    collect: Callable[[SoftQState, jax.Array], SoftQState]
    init_params: Callable[[jax.Array], Any]
    q_values: Callable[[Any, jax.Array], jax.Array]
    policy: Callable[..., PolicyFn]
    net: Any
    obs_transform: ObsTransform
    feature_shape: tuple[int, ...]
    config: SoftQConfig


class SoftQResult(NamedTuple):
    """What ``train(key)`` returns.

    ``metrics``: ``update (eval,)`` int32, updates done at each evaluation;
    ``eval_return (eval, agent)`` mean true return per agent over
    ``eval_episodes`` episodes; ``loss``, ``q_mean (eval, agent)`` averaged
    over the updates since the previous evaluation.
    """

    state: SoftQState
    metrics: dict


# -- losses -------------------------------------------------------------------------------------
def soft_bellman_target(
    rewards: jax.Array,
    terminated: jax.Array,
    q_next: jax.Array,
    *,
    alpha: float,
    gamma: float,
) -> jax.Array:
    """``y = r + gamma (1 - terminated) alpha logsumexp(Q(s', .) / alpha)``.

    Args:
        rewards: ``(..., batch)`` one agent's (or every agent's) rewards.
        terminated: ``(batch,)`` bool; truncation keeps the bootstrap.
        q_next: ``(..., batch, action)`` target-critic values at ``s'``.

    Returns:
        ``(..., batch)`` float32 targets.
    """
    cont = 1.0 - jnp.asarray(terminated, jnp.float32)
    return rewards + gamma * cont * soft_value(q_next, alpha)


def soft_q_loss(
    q: jax.Array, actions: jax.Array, target: jax.Array, huber_delta: float | None = None
) -> tuple[jax.Array, jax.Array]:
    """Regression of ``Q(s, a)`` on a fixed target, for one agent.

    ``mean_b l(Q(s_b, a_b) - y_b)`` with ``l(x) = x^2`` or the Huber function of
    threshold ``huber_delta`` (``x^2 / 2`` inside, linear outside). The target
    is held fixed (``stop_gradient``).

    Args:
        q: ``(batch, action)``; actions: ``(batch,)`` int; target: ``(batch,)``.

    Returns:
        ``(loss (), q_taken (batch,))``.
    """
    q_taken = jnp.take_along_axis(q, actions[:, None].astype(jnp.int32), axis=-1)[:, 0]
    err = q_taken - jax.lax.stop_gradient(target)
    if huber_delta is None:
        per = err**2
    else:
        abs_err = jnp.abs(err)
        quad = jnp.minimum(abs_err, huber_delta)
        per = 0.5 * quad**2 + huber_delta * (abs_err - quad)
    return jnp.mean(per), q_taken


# -- the learner --------------------------------------------------------------------------------
def _identity(obs: jax.Array) -> jax.Array:
    return obs


def make_soft_q(
    config: SoftQConfig, env: Any, obs_transform: ObsTransform | None = None
) -> SoftQ:
    """Multi-agent soft Q-learning (module docstring) on a jittable discrete ``env``."""
    if not getattr(env, "jittable", True):
        raise ValueError(f"make_soft_q: {env!r} is not jittable")
    num_agents = int(env.num_agents)
    num_actions = int(env.num_actions)
    transform = _identity if obs_transform is None else obs_transform
    obs_shape = tuple(env.obs_shape)
    example = jax.eval_shape(transform, jax.ShapeDtypeStruct((num_agents, *obs_shape), jnp.float32))
    if example.shape[:1] != (num_agents,):
        raise ValueError(
            f"make_soft_q: obs_transform must keep the agent axis first: "
            f"{(num_agents, *obs_shape)} -> {example.shape}"
        )
    feature_shape = tuple(example.shape[1:])
    kwargs = {"hidden": tuple(config.hidden)} if config.critic == "mlp" else {}
    net = make_critic(config.critic, num_actions, feature_shape, **kwargs)
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    alpha, gamma = config.alpha, config.gamma

    def features(obs: jax.Array) -> jax.Array:
        """``(env, agent, *obs_shape) -> (env, agent, *feature_shape)``."""
        return jax.vmap(transform)(obs)

    def q_values(params: Any, obs: jax.Array) -> jax.Array:
        obs = jnp.asarray(obs)
        if obs.ndim == len(obs_shape) + 1:
            return apply_stacked(net, params, transform(obs))
        feats = jax.vmap(transform, in_axes=1, out_axes=1)(obs)  # (agent, batch, *feature)
        return apply_stacked(net, params, feats)

    def policy(params: Any, alpha: float | None = None, greedy: bool = False) -> PolicyFn:
        temperature = config.alpha if alpha is None else alpha

        def policy_fn(key: jax.Array, obs: jax.Array) -> jax.Array:
            q = apply_stacked(net, params, transform(obs))  # (agent, action)
            return sample_actions(key, q, temperature, greedy)

        return policy_fn

    def init_params(key: jax.Array) -> Any:
        return init_stacked(net, key, num_agents, jnp.zeros(feature_shape, jnp.float32))

    def init(key: jax.Array, params: Any = None) -> SoftQState:
        key_net, key_env = jax.random.split(key)
        env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
        feats = features(env_obs)  # (env, agent, *feature)
        if params is None:
            params = init_params(key_net)
        item = Experience(
            obs=feats[0],
            actions=jnp.zeros((num_agents,), jnp.int32),
            rewards=jnp.zeros((num_agents,), jnp.float32),
            next_obs=feats[0],
            terminated=jnp.bool_(False),
        )
        return SoftQState(
            params=params,
            target_params=params,
            opt_state=jax.vmap(tx.init)(params),
            env_state=env_state,
            env_obs=env_obs,
            buffer=buffer_init(item, config.buffer_size),
            step=jnp.int32(0),
        )

    def collect(state: SoftQState, key: jax.Array) -> SoftQState:
        key_act, key_step = jax.random.split(key)
        feats = features(state.env_obs)  # (env, agent, *feature)
        q = apply_stacked(net, state.params, jnp.swapaxes(feats, 0, 1))  # (agent, env, action)
        actions = sample_actions(key_act, q, alpha).T  # (env, agent)
        env_obs, env_state, rewards, terminated, _, info = jax.vmap(env.step)(
            jax.random.split(key_step, config.num_envs), state.env_state, actions
        )
        items = Experience(
            obs=feats,
            actions=actions,
            rewards=rewards.astype(jnp.float32),
            next_obs=features(info["next_obs"]),
            terminated=terminated,
        )
        return state.replace(
            env_state=env_state, env_obs=env_obs, buffer=buffer_add(state.buffer, items)
        )

    def loss_fn(params: Any, target_params: Any, batch: Experience):
        obs = jnp.swapaxes(batch.obs, 0, 1)  # (agent, batch, *feature)
        next_obs = jnp.swapaxes(batch.next_obs, 0, 1)
        q = apply_stacked(net, params, obs)  # (agent, batch, action)
        q_next = apply_stacked(net, target_params, next_obs)
        target = soft_bellman_target(
            batch.rewards.T, batch.terminated, q_next, alpha=alpha, gamma=gamma
        )  # (agent, batch)
        losses, q_taken = jax.vmap(soft_q_loss, in_axes=(0, 0, 0, None))(
            q, batch.actions.T, target, config.huber_delta
        )
        return jnp.sum(losses), {"loss": losses, "q_mean": jnp.mean(q_taken, axis=-1)}

    def update(state: SoftQState, key: jax.Array) -> tuple[SoftQState, dict]:
        key_env, key_sample = jax.random.split(key)
        state = collect(state, key_env)
        batch = buffer_sample(state.buffer, key_sample, config.batch_size)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch
        )
        updates, opt_state = jax.vmap(tx.update)(grads, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: p + u, state.params, updates)
        target = polyak(state.target_params, params, config.tau)
        state = state.replace(
            params=params, target_params=target, opt_state=opt_state, step=state.step + 1
        )
        return state, metrics

    return SoftQ(
        init=init,
        update=update,
        collect=collect,
        init_params=init_params,
        q_values=q_values,
        policy=policy,
        net=net,
        obs_transform=transform,
        feature_shape=feature_shape,
        config=config,
    )


def make_train(
    config: SoftQConfig,
    env: Any,
    obs_transform: ObsTransform | None = None,
    progress: ProgressFn | None = None,
) -> Callable[..., SoftQResult]:
    """``train(key, params=None) -> SoftQResult``: a whole run as one pure, jittable function.

    ``params`` (stacked on the agent axis) start the critics instead of a fresh
    initialization, e.g. to go on from a run on an easier game.

    ``warmup_steps`` collection steps, then ``num_evals`` chunks, each a
    ``lax.scan`` of ``eval_every`` updates followed by an evaluation of the
    Boltzmann policies (``mairl.metrics.evaluate_returns``, ``eval_episodes``
    episodes). ``progress(update, eval_return, loss)`` is called from the host
    after each chunk through ``jax.debug.callback``. ``jax.jit(jax.vmap(train))``
    runs several seeds.
    """
    learner = make_soft_q(config, env, obs_transform)

    def chunk(state: SoftQState, key: jax.Array):
        key_updates, key_eval = jax.random.split(key)
        state, metrics = jax.lax.scan(
            learner.update, state, jax.random.split(key_updates, config.eval_every)
        )
        returns = evaluate_returns(
            key_eval, env, learner.policy(state.params), config.eval_episodes
        )  # (episode, agent)
        out = {
            "update": state.step,
            "eval_return": jnp.mean(returns, axis=0),
            "loss": jnp.mean(metrics["loss"], axis=0),
            "q_mean": jnp.mean(metrics["q_mean"], axis=0),
        }
        if progress is not None:
            jax.debug.callback(_report, progress, out["update"], out["eval_return"], out["loss"])
        return state, out

    def train(key: jax.Array, params: Any = None) -> SoftQResult:
        key_init, key_warmup, key_run = jax.random.split(key, 3)
        state = learner.init(key_init, params)
        if config.warmup_steps:
            state, _ = jax.lax.scan(
                lambda s, k: (learner.collect(s, k), None),
                state,
                jax.random.split(key_warmup, config.warmup_steps),
            )
        state, metrics = jax.lax.scan(chunk, state, jax.random.split(key_run, config.num_evals))
        return SoftQResult(state, metrics)

    return train


def _report(progress: ProgressFn, update, returns, loss) -> None:
    progress(int(update), np.asarray(returns), np.asarray(loss))


# -- parameter files ----------------------------------------------------------------------------
