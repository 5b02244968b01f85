"""Multi-agent soft actor-critic on the true rewards: a forward learner for continuous experts.

The continuous counterpart of ``mairl.algos.soft_q``. Every agent ``i`` has a
marginal critic ``Q_i(s, a_i)`` (the other agents are part of its environment)
and a tanh-Gaussian actor ``pi_i(a_i|s)`` (``mairl.networks.MLPGaussianActor``),
as in continuous MAMQL (``mairl.algos.mamql_continuous``), so that an expert
trained here and a learner trained from its demonstrations have the same form.

Each critic regresses on the soft Bellman target of its own reward (Haarnoja
et al. 2018, soft actor-critic),

    y_i = r_i + gamma (1 - terminated) V_i^target(s'),
    V_i^target(s') = Q_i^target(s', a') - alpha log pi_i(a'|s'),  a' ~ pi_i(.|s'),
    L_i = E_buffer[(Q_i(s, a_i) - y_i)^2],

with ``Q^target`` a Polyak-averaged copy of the critic (``tau``): the target
of a regression that bootstraps on the learner's own estimates moves less
with a slow copy. Only ``terminated`` zeroes the bootstrap. One actor is then
moved by the actor loss ``E_s E_{a ~ pi_i}[alpha log pi_i(a|s) - Q_i(s, a)]``
(``mairl.algos.mamql_continuous.actor_loss``). One critic, not two: the
clipped double-Q of later SAC versions is left out for simplicity; its absence
can over-estimate ``Q`` on long horizons.

One ``update`` steps ``num_envs`` vmapped environments once with draws of the
actors (``mairl.algos.common.step_envs``), appends the transitions with their
true rewards to the replay, samples ``batch_size`` of them, and takes one Adam
step on every critic and then on every actor, all stacked on the agent axis.
``init`` fills the replay with ``warmup_steps`` steps of uniformly random actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs, Transition, no_q_table
from mairl.algos.common import (
    actor_checks,
    check_config,
    check_jittable_env,
    make_optimizer,
    polyak,
    stacked_optimizer_step,
    step_envs,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from mairl.algos.mamql_continuous import actor_loss
from mairl.buffers import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mairl.networks import MLPGaussianActor, MLPStateActionCritic


@dataclass(frozen=True)
class SACConfig:
    """Multi-agent soft actor-critic (module docstring).

    Attributes:
        alpha: temperature of the entropy bonus (fixed).
        gamma: discount.
        learning_rate: Adam step size of the critics.
        actor_learning_rate: Adam step size of the actors.
        batch_size: replayed transitions per update.
        tau: Polyak rate of the target critics.
        hidden: hidden widths of the critics and actors (MLPs).
        log_std_min, log_std_max: bounds of the actors' pre-squash log-std.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
        num_envs: environments stepped once per update.
        buffer_size: replay capacity (transitions).
        warmup_steps: steps of every environment with uniformly random actions
            before the first update.
    """

    name: ClassVar[str] = "sac"

    alpha: float = 0.05
    gamma: float = 0.99
    learning_rate: float = 3e-4
    actor_learning_rate: float = 3e-4
    batch_size: int = 256
    tau: float = 0.005
    hidden: tuple[int, ...] = (256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    max_grad_norm: float | None = 10.0
    num_envs: int = 8
    buffer_size: int = 100_000
    warmup_steps: int = 64

    def __post_init__(self):
        check_config(self, actor_checks(self))


@struct.dataclass
class SACState:
    """Learner state, agent axis first in every parameter leaf; the environments and
    the replay (with true rewards ``(agent,)`` per item)."""

    params: Any
    target_critic: Any
    critic_opt: Any
    actor_opt: Any
    step: jax.Array
    env_state: Any
    env_obs: Any
    buffer: ReplayBuffer


def sac_critic_loss(q: jax.Array, rewards: jax.Array, terminated: jax.Array,
                    v_next: jax.Array, gamma: float) -> jax.Array:
    """``mean (Q - (r + gamma (1 - terminated) V(s')))^2`` for one agent, ``(B,)`` each;
    the target carries no gradient."""
    y = jax.lax.stop_gradient(rewards + gamma * (1.0 - terminated) * v_next)
    return jnp.mean((q - y) ** 2)


def make_sac(config: SACConfig, *, num_agents: int, obs_shape: tuple[int, ...],
             action_dim: int, env: Any = None, obs_transform: Any = None, **_: Any) -> Algo:
    """Build the learner on ``env`` (jittable, ``Box`` actions of shape ``(action_dim,)``)."""
    check_jittable_env(config.name, env)
    if obs_transform is not None:
        raise ValueError(f"{config.name}: per-agent views are not supported; use view='global'")
    alpha, gamma = config.alpha, config.gamma
    critic_net = MLPStateActionCritic(hidden=tuple(config.hidden), obs_ndim=len(obs_shape))
    actor_net = MLPGaussianActor(action_dim, hidden=tuple(config.hidden),
                                 obs_ndim=len(obs_shape), log_std_min=config.log_std_min,
                                 log_std_max=config.log_std_max)
    critic_tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    actor_tx = make_optimizer(config.actor_learning_rate, config.max_grad_norm)

    def critic(params, obs, actions):
        return jax.vmap(critic_net.apply)(params["critic"], obs, actions)

    def log_prob(params, obs, actions):
        return tanh_gaussian_log_prob(actions, *jax.vmap(actor_net.apply)(params["actor"], obs))

    def policy(params, obs, key, greedy=False):
        mean, log_std = jax.vmap(actor_net.apply)(params["actor"], obs)
        return tanh_gaussian_sample(key, mean, log_std, greedy)[0]

    def critic_loss_fn(critic_p, target_p, actor_p, sample: Transition, key):
        def one(critic_p, target_p, actor_p, obs, actions, next_obs, rewards, key):
            mean, log_std = actor_net.apply(actor_p, next_obs)
            a_next, logp = tanh_gaussian_sample(key, mean, log_std)
            v_next = critic_net.apply(target_p, next_obs, a_next) - alpha * logp
            q = critic_net.apply(critic_p, obs, actions)
            return sac_critic_loss(q, rewards, sample.terminated.astype(jnp.float32), v_next,
                                   gamma)

        losses = jax.vmap(one)(critic_p, target_p, jax.lax.stop_gradient(actor_p), sample.obs,
                               sample.actions, sample.next_obs, sample.rewards,
                               jax.random.split(key, num_agents))
        return jnp.sum(losses), losses

    def actor_loss_fn(actor_params, critic_params, obs, key):
        def one(actor_p, critic_p, obs, key):
            return actor_loss(lambda o: actor_net.apply(actor_p, o),
                              lambda o, a: critic_net.apply(critic_p, o, a), obs, key, alpha)

        losses = jax.vmap(one)(actor_params, jax.lax.stop_gradient(critic_params), obs,
                               jax.random.split(key, num_agents))
        return jnp.sum(losses), losses

    def rollout(state: SACState, key: jax.Array, random: bool = False) -> SACState:
        key_act, key_step = jax.random.split(key)
        if random:
            actions = jax.random.uniform(key_act, (config.num_envs, num_agents, action_dim),
                                         jnp.float32, -1.0, 1.0)
        else:
            actions = jnp.swapaxes(
                policy(state.params, jnp.swapaxes(state.env_obs, 0, 1), key_act), 0, 1)
        env_obs, env_state, items, rewards = step_envs(env, state.env_state, state.env_obs,
                                                       actions, key_step)
        items = items._replace(rewards=rewards.astype(jnp.float32))
        return state.replace(env_state=env_state, env_obs=env_obs,
                             buffer=buffer_add(state.buffer, items))

    def init(key: jax.Array, example: Batch) -> SACState:
        key_critic, key_actor, key_env, key_warm = jax.random.split(key, 4)
        obs = jnp.zeros(tuple(obs_shape), jnp.float32)
        act = jnp.zeros((action_dim,), jnp.float32)
        critic_p = jax.vmap(critic_net.init, in_axes=(0, None, None))(
            jax.random.split(key_critic, num_agents), obs, act)
        actor_p = jax.vmap(actor_net.init, in_axes=(0, None))(
            jax.random.split(key_actor, num_agents), obs)
        env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
        item = Transition(obs=env_obs[0], actions=jnp.zeros((num_agents, action_dim)),
                          next_obs=env_obs[0], terminated=jnp.bool_(False),
                          truncated=jnp.bool_(False),
                          rewards=jnp.zeros((num_agents,), jnp.float32))
        state = SACState(params={"critic": critic_p, "actor": actor_p}, target_critic=critic_p,
                         critic_opt=jax.vmap(critic_tx.init)(critic_p),
                         actor_opt=jax.vmap(actor_tx.init)(actor_p), step=jnp.int32(0),
                         env_state=env_state, env_obs=env_obs,
                         buffer=buffer_init(item, config.buffer_size))
        if config.warmup_steps:
            state = jax.lax.fori_loop(
                0, config.warmup_steps,
                lambda t, s: rollout(s, jax.random.fold_in(key_warm, t), random=True), state)
        return state

    def update(state: SACState, batch: Batch, key: jax.Array):
        key_env, key_sample, key_critic, key_actor = jax.random.split(key, 4)
        state = rollout(state, key_env)
        sample = buffer_sample(state.buffer, key_sample, config.batch_size)
        sample = Transition(obs=jnp.swapaxes(sample.obs, 0, 1),
                            actions=jnp.swapaxes(sample.actions, 0, 1),
                            next_obs=jnp.swapaxes(sample.next_obs, 0, 1),
                            terminated=sample.terminated, truncated=sample.truncated,
                            rewards=sample.rewards.T)
        grads, critic_losses = jax.grad(critic_loss_fn, has_aux=True)(
            state.params["critic"], state.target_critic, state.params["actor"], sample,
            key_critic)
        critic_p, critic_opt = stacked_optimizer_step(critic_tx, grads, state.critic_opt,
                                                      state.params["critic"])
        grads, actor_losses = jax.grad(actor_loss_fn, has_aux=True)(
            state.params["actor"], critic_p, sample.obs, key_actor)
        actor_p, actor_opt = stacked_optimizer_step(actor_tx, grads, state.actor_opt,
                                                    state.params["actor"])
        state = state.replace(params={"critic": critic_p, "actor": actor_p},
                              target_critic=polyak(state.target_critic, critic_p, config.tau),
                              critic_opt=critic_opt, actor_opt=actor_opt, step=state.step + 1)
        return state, {"loss": critic_losses, "actor_loss": actor_losses,
                       "reward": jnp.mean(sample.rewards, axis=1)}

    return Algo(name=config.name, init=init, update=update, q_values=no_q_table(config.name),
                alpha=alpha, gamma=gamma, config=config,
                needs=Needs(num_envs=config.num_envs, rewards=True), policy=policy,
                log_prob=log_prob, critic=critic)


__all__ = ["SACConfig", "SACState", "make_sac", "sac_critic_loss"]
