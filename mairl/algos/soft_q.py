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
Boltzmann policies (``mairl.algos.common.step_envs``), appends the transitions,
true rewards included, to a replay buffer (``mairl.buffers``), samples
``batch_size`` of them and takes one Adam step on every critic. ``init`` fills
the buffer with ``warmup_steps`` steps of the initial policies. The critics,
optimizer and per-agent views are those of the IQ learners
(``mairl.algos.iq``)::

    algo = make_soft_q(SoftQConfig(alpha=0.1), num_agents=env.num_agents,
                       obs_shape=env.obs_shape, num_actions=env.num_actions, env=env)
    train = make_train(algo, TrainConfig(num_updates=10_000), eval_fn)
    result = jax.jit(train)(jax.random.key(0), TrainData(None, None))

With an ``obs_transform(obs, agent)`` (agent ``i``'s view of its observation,
e.g. the exact Gems features of ``mairl.experts``) the buffer holds the views
themselves, in the dtype the transform returns, wherever one view takes fewer
bytes than one raw observation (35 float32 features against a 5 x 15 x 15
map), and the raw observations otherwise; the critics see the same values
either way.

Axes: agent first, ``(agent, batch, ...)``, wherever values differ per agent;
environments first, ``(env, agent, ...)``, in the env states and buffer items.

**A learned reward instead of the env's.** Adversarial and likelihood IRL
(``mairl.algos.adversarial``) run this same learner as their policy optimiser,
on a reward they learn. ``make_soft_q(..., reward_fn=fn)`` replaces the stored
``r_i`` of the Bellman target by ``fn(state.reward_params, obs, actions,
next_obs, terminated)``, evaluated when the batch is sampled with the reward
parameters the state holds at that moment (not when the transition was
stored), so that an old transition is always scored by the current reward.
With a hook the buffer holds no true rewards at all, and the learner also runs
on host-side games (``algo.act`` / ``algo.store`` for ``mairl.train.train_host``;
no warm-up there: the host loop fills the buffer). Without one it is exactly
the learner above.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs
from mairl.algos.common import (
    ObsTransform,
    check_config,
    check_jittable_env,
    make_optimizer,
    make_stacked_apply,
    make_stacked_critic,
    polyak,
    sample_actions,
    soft_value,
    stacked_optimizer_step,
    step_envs,
)
from mairl.buffers import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mairl.data import Transition
from mairl.params import save_params

__all__ = [
    "RewardFn",
    "SoftQConfig",
    "SoftQState",
    "make_soft_q",
    "save_soft_q_expert",
    "soft_bellman_target",
    "soft_q_loss",
]


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
        warmup_steps: vectorized env steps with the initial policies that fill
            the buffer in ``init`` (``warmup_steps * num_envs`` transitions).
    """

    name: ClassVar[str] = "soft-q"

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
    warmup_steps: int = 64

    def __post_init__(self):
        check_config(self, [
            ("buffer_size", self.buffer_size >= self.num_envs, f">= num_envs ({self.num_envs})"),
        ])


@struct.dataclass
class SoftQState:
    """Learner state; parameters and optimizer states stacked on the agent axis.

    ``env_obs (env, agent, *obs_shape)`` and ``env_state`` are the running
    environments (``None`` on host-side games); ``buffer`` holds ``Transition``
    items, environments first, with ``rewards`` unless a ``reward_fn`` scores
    them; ``step`` counts updates; ``reward_params``: what the ``reward_fn`` of
    :func:`make_soft_q` reads (``None`` without one).
    """

    params: Any
    target_params: Any
    opt_state: Any
    env_state: Any
    env_obs: jax.Array
    buffer: ReplayBuffer
    step: jax.Array
    reward_params: Any = None


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
def _nbytes(x: jax.ShapeDtypeStruct) -> int:
    return math.prod(x.shape) * jnp.dtype(x.dtype).itemsize


#: ``reward_fn(reward_params, obs, actions, next_obs, terminated) -> rewards (agent, batch)``:
#: ``obs``, ``next_obs (agent, batch, *obs_shape)`` (raw observations), ``actions
#: (agent, batch)``, ``terminated (batch,)``.
RewardFn = Callable[[Any, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def make_soft_q(
    config: SoftQConfig,
    *,
    num_agents: int,
    obs_shape: tuple[int, ...],
    num_actions: int,
    env: Any = None,
    obs_transform: ObsTransform | None = None,
    reward_fn: RewardFn | None = None,
) -> Algo:
    """Multi-agent soft Q-learning (module docstring) on a jittable discrete ``env``.

    ``obs_transform(obs, agent)``: agent ``agent``'s view of one observation,
    read by its critic when acting and learning.

    ``reward_fn``: the learned reward of an IRL algorithm (module docstring),
    read in every Bellman target from ``state.reward_params``; the buffer then
    keeps no true rewards, holds raw observations (the hook reads them), and
    ``env`` may also be a host-side game (``algo.act`` / ``algo.store``).

    The returned ``init(key, batch, params=None)`` also takes stacked critic
    parameters to start from instead of fresh ones (a curriculum stage, a
    fine-tuning): ``algo._replace(init=functools.partial(algo.init, params=p))``.
    """
    host = reward_fn is not None and env is not None and not getattr(env, "jittable", True)
    if not host:
        check_jittable_env("soft-q", env)
    obs_shape = tuple(obs_shape)
    critic = make_stacked_critic(config, num_actions, obs_shape, obs_transform)
    on_obs = critic.apply
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    alpha, gamma = config.alpha, config.gamma
    agent_ids = jnp.arange(num_agents)

    # What the buffer holds: each agent's view where it is the smaller, else the
    # raw observation; ``stored_apply`` reads it. A reward hook reads raw ones.
    store_views = False
    if obs_transform is not None and reward_fn is None:
        raw = jax.eval_shape(env.reset, jax.random.key(0))[0]  # (agent, *obs_shape)
        one = jax.ShapeDtypeStruct(obs_shape, raw.dtype)
        view = jax.eval_shape(obs_transform, one, jax.ShapeDtypeStruct((), jnp.int32))
        store_views = _nbytes(view) < _nbytes(one)
    stored_apply = make_stacked_apply(critic.net, critic.shape, None) if store_views else on_obs

    def to_stored(obs: jax.Array) -> jax.Array:
        """``(env, agent, *obs_shape)`` to what the buffer holds, ``(env, agent, ...)``."""
        if not store_views:
            return obs
        return jax.vmap(jax.vmap(obs_transform), in_axes=(0, None))(obs, agent_ids)

    def q_values(params: Any, obs: jax.Array) -> jax.Array:
        return on_obs(params, obs)

    def collect(state: SoftQState, key: jax.Array) -> SoftQState:
        """One step of every environment with the Boltzmann policies, stored."""
        key_act, key_step = jax.random.split(key)
        obs = to_stored(state.env_obs)  # (env, agent, ...)
        q = stored_apply(state.params, jnp.swapaxes(obs, 0, 1))  # (agent, env, action)
        actions = sample_actions(key_act, q, alpha).T  # (env, agent)
        env_obs, env_state, items, rewards = step_envs(
            env, state.env_state, state.env_obs, actions, key_step
        )
        items = items._replace(obs=obs, next_obs=to_stored(items.next_obs))
        if reward_fn is None:
            items = items._replace(rewards=rewards.astype(jnp.float32))
        return state.replace(env_state=env_state, env_obs=env_obs,
                             buffer=buffer_add(state.buffer, items))

    def init(key: jax.Array, batch: Batch | None = None, params: Any = None) -> SoftQState:
        key_init, key_warmup = jax.random.split(key)
        key_net, key_env = jax.random.split(key_init)
        if host:
            env_obs = env_state = None
            stored = jnp.zeros((num_agents, *obs_shape), jnp.float32)
        else:
            env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
            stored = to_stored(env_obs)[0]  # (agent, ...)
        if params is None:
            params = critic.init(key_net, num_agents)
        item = Transition(
            obs=stored,
            actions=jnp.zeros((num_agents,), jnp.int32),
            next_obs=stored,
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            rewards=jnp.zeros((num_agents,), jnp.float32) if reward_fn is None else None,
        )
        state = SoftQState(
            params=params,
            target_params=params,
            opt_state=jax.vmap(tx.init)(params),
            env_state=env_state,
            env_obs=env_obs,
            buffer=buffer_init(item, config.buffer_size),
            step=jnp.int32(0),
        )
        if config.warmup_steps and not host:
            state, _ = jax.lax.scan(lambda s, k: (collect(s, k), None), state,
                                    jax.random.split(key_warmup, config.warmup_steps))
        return state

    def loss_fn(params: Any, target_params: Any, sample: Transition, rewards: jax.Array):
        obs = jnp.swapaxes(sample.obs, 0, 1)  # (agent, batch, ...)
        next_obs = jnp.swapaxes(sample.next_obs, 0, 1)
        q = stored_apply(params, obs)  # (agent, batch, action)
        q_next = stored_apply(target_params, next_obs)
        target = soft_bellman_target(
            rewards, sample.terminated, q_next, alpha=alpha, gamma=gamma
        )  # (agent, batch)
        losses, q_taken = jax.vmap(soft_q_loss, in_axes=(0, 0, 0, None))(
            q, sample.actions.T, target, config.huber_delta
        )
        return jnp.sum(losses), {"loss": losses, "q_mean": jnp.mean(q_taken, axis=-1)}

    def sample_rewards(state: SoftQState, sample: Transition) -> jax.Array:
        """``(agent, batch)``: the stored rewards, or the hook's under the current
        reward parameters (never differentiated through)."""
        if reward_fn is None:
            return sample.rewards.T
        r = reward_fn(state.reward_params, jnp.swapaxes(sample.obs, 0, 1), sample.actions.T,
                      jnp.swapaxes(sample.next_obs, 0, 1), sample.terminated)
        return jax.lax.stop_gradient(r)

    def update(state: SoftQState, batch: Batch, key: jax.Array) -> tuple[SoftQState, dict]:
        key_env, key_sample = jax.random.split(key)
        if not host:
            state = collect(state, key_env)
        sample = buffer_sample(state.buffer, key_sample, config.batch_size)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            state.params, state.target_params, sample, sample_rewards(state, sample)
        )
        params, opt_state = stacked_optimizer_step(tx, grads, state.opt_state, state.params)
        target = polyak(state.target_params, params, config.tau)
        state = state.replace(
            params=params, target_params=target, opt_state=opt_state, step=state.step + 1
        )
        return state, metrics

    def act(state: SoftQState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Boltzmann actions ``(env, agent)`` for observations ``(env, agent, *obs_shape)``."""
        q = q_values(state.params, jnp.swapaxes(obs, 0, 1))  # (agent, env, action)
        return sample_actions(key, q, alpha).T

    def store(state: SoftQState, items: Transition) -> SoftQState:
        """Add transitions (env first, no rewards) to the replay."""
        items = items._replace(rewards=None, obs=jnp.asarray(items.obs, jnp.float32),
                               next_obs=jnp.asarray(items.next_obs, jnp.float32))
        return state.replace(buffer=buffer_add(state.buffer, items))

    needs = Needs(expert_batch=0, num_envs=config.num_envs, rewards=reward_fn is None)
    return Algo(name=SoftQConfig.name, init=init, update=update, q_values=q_values,
                alpha=alpha, gamma=gamma, config=config, needs=needs,
                act=act if host else None, store=store if host else None)


def save_soft_q_expert(
    path: str | os.PathLike, params: Any, config: Any, env: Any, *, env_id: str, features: str,
    **entries: str | int | float | bool,
) -> Path:
    """Write a soft-Q expert file, the one ``mairl.experts.load_soft_q_expert`` reads.

    Args:
        params: the critics, stacked on the agent axis.
        config: their configuration: ``critic``, ``hidden``, ``alpha`` (the
            expert's temperature) and ``gamma`` (a :class:`SoftQConfig`, or any
            config with these fields).
        env: the game, for its agent and action counts; ``env_id`` names it.
        features: each agent's view of its observation, a key of
            ``mairl.experts.FEATURES``.
        entries: further scalar metadata, recorded as given (seed, evaluation, ...).

    Returns:
        ``path``.
    """
    from mairl.experts import SOFT_Q_FORMAT

    metadata = {
        "format": SOFT_Q_FORMAT,
        "env_id": env_id,
        "features": features,
        "critic": config.critic,
        "hidden": ",".join(str(h) for h in config.hidden),
        "alpha": float(config.alpha),
        "gamma": float(config.gamma),
        "num_agents": int(env.num_agents),
        "num_actions": int(env.num_actions),
    }
    return save_params(path, jax.device_get(params), {**metadata, **entries})
