"""PPO on the true rewards: a forward learner for experts (Overcooked).

Proximal policy optimization (Schulman et al. 2017, arXiv 1707.06347), one
actor and one value network per agent, or one of each shared by all agents
(``shared``; the observation, or the agent's view of it, must then tell the
agents apart, as JaxMARL's Overcooked observations do). One ``update`` is one
rollout and its learning:

1. ``num_steps`` steps of ``num_envs`` vmapped environments with the current
   policies (``mairl.algos.common.step_envs``);
2. advantages by GAE (:func:`gae`), the bootstrap zeroed only at
   ``terminated``; at a truncation the value of the true last observation,
   ``info["next_obs"]``, is bootstrapped;
3. ``epochs`` passes over the rollout in ``minibatches`` minibatches, each an
   Adam step on the clipped surrogate, a clipped value loss and an entropy bonus
   (:func:`ppo_loss`).

The reward is the environment's, plus optionally a shaping reward read from
``info[shaping_key]`` with a weight that decays linearly from ``shaping_start``
to 0 over the first ``shaping_updates`` updates (read from the state's step),
so that the final policy is trained on the environment's reward alone.

``q_values`` returns the actor's logits times ``alpha``, so the Boltzmann
policy at ``alpha`` that every mairl algorithm exposes is the PPO policy
itself::

    algo = make_ppo(PPOConfig(), num_agents=2, obs_shape=env.obs_shape,
                    num_actions=env.num_actions, env=env)
    train = make_train(algo, TrainConfig(num_updates=400, eval_every=25), eval_fn)

Axes: agent first, ``(agent, ...)``, wherever values differ per agent; a rollout
is ``(time, agent, env, ...)`` (``terminated``/``done``: ``(time, env)``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from mairl.algos.base import Algo, Batch, Needs
from mairl.algos.common import (
    ObsTransform,
    check_config,
    check_jittable_env,
    init_stacked,
    make_config_critic,
    make_optimizer,
    make_stacked_apply,
    step_envs,
    view_shape,
)

__all__ = [
    "PPOConfig",
    "PPOState",
    "Rollout",
    "clipped_surrogate",
    "clipped_value_loss",
    "gae",
    "make_ppo",
    "ppo_loss",
]


@dataclass(frozen=True)
class PPOConfig:
    """Configuration of PPO.

    Attributes:
        alpha: temperature of the read-out: ``q_values`` is the actor's logits
            times ``alpha``, so the Boltzmann policy at ``alpha`` is the PPO
            policy; learning does not depend on it.
        gamma: discount.
        learning_rate: Adam step size (the initial one where it decays).
        lr_decay_updates: updates over which the step size decays linearly to 0;
            ``None`` keeps it constant.
        max_grad_norm: global-norm gradient clipping (per agent without shared
            networks); ``None`` for none.
        num_envs: environments stepped in parallel.
        num_steps: steps of every environment per update (one rollout).
        epochs: passes over each rollout.
        minibatches: minibatches per pass; divides ``num_envs * num_steps``.
        gae_lambda: GAE parameter.
        clip_eps: ratio clipping of the surrogate (and of the value update).
        ent_coef: weight of the entropy bonus.
        vf_coef: weight of the value loss.
        shared: one actor and one value network for all agents; ``False``: one
            of each per agent.
        critic: network preset of the actor and value networks
            (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` networks.
        actor_init_scale: factor on the actor's initial output layer (small
            logits: a near-uniform first policy).
        shaping_start: initial weight of the shaping reward ``info[shaping_key]``
            added to each agent's reward; 0 for none.
        shaping_key: the ``info`` entry with the per-agent shaping reward
            ``(agent,)``.
        shaping_updates: updates over which the shaping weight decays linearly
            from ``shaping_start`` to 0.
    """

    name: ClassVar[str] = "ppo"

    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    lr_decay_updates: int | None = None
    max_grad_norm: float | None = 0.5
    num_envs: int = 16
    num_steps: int = 128
    epochs: int = 4
    minibatches: int = 4
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    shared: bool = True
    critic: str = "mlp"
    hidden: tuple[int, ...] = (64, 64)
    actor_init_scale: float = 0.01
    shaping_start: float = 0.0
    shaping_key: str = "shaped_reward"
    shaping_updates: int = 1

    def __post_init__(self):
        check_config(self, [
            ("lr_decay_updates", self.lr_decay_updates is None or self.lr_decay_updates >= 1,
             ">= 1 or None"),
            ("num_steps", self.num_steps >= 1, ">= 1"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("minibatches", self.minibatches >= 1
             and (self.num_envs * self.num_steps) % max(self.minibatches, 1) == 0,
             f"a divisor of num_envs * num_steps = {self.num_envs * self.num_steps}"),
            ("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]"),
            ("clip_eps", self.clip_eps > 0, "> 0"),
            ("ent_coef", self.ent_coef >= 0, ">= 0"),
            ("vf_coef", self.vf_coef >= 0, ">= 0"),
            ("actor_init_scale", self.actor_init_scale > 0, "> 0"),
            ("shaping_start", self.shaping_start >= 0, ">= 0"),
            ("shaping_updates", self.shaping_updates >= 1, ">= 1"),
        ])


@struct.dataclass
class PPOState:
    """Learner state: ``params = {"actor", "value"}`` (stacked on the agent axis
    unless shared), the optimizer state, the running environments
    (``env_obs (env, agent, *obs_shape)``) and ``step``, the updates done."""

    params: Any
    opt_state: Any
    env_state: Any
    env_obs: jax.Array
    step: jax.Array


class Rollout(NamedTuple):
    """One rollout, ``(time, agent, env, ...)``; ``terminated``, ``done (time, env)``."""

    obs: jax.Array
    actions: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_value: jax.Array
    rewards: jax.Array
    terminated: jax.Array
    done: jax.Array


# -- losses -------------------------------------------------------------------------------------
def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    *,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438).

    ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)`` with ``s'_t`` the
    true successor, ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` and
    ``A_T = 0`` after the last step: the sum is cut at every episode end
    (``done``: terminated or truncated), the bootstrap only at a terminal state.

    Args:
        rewards, values, next_values: ``(time, ...)``.
        terminated, done: bool, broadcastable to ``rewards``.

    Returns:
        ``(advantages, returns = advantages + values)``, both ``(time, ...)``.
    """
    cont = 1.0 - jnp.broadcast_to(terminated, rewards.shape).astype(jnp.float32)
    not_done = 1.0 - jnp.broadcast_to(done, rewards.shape).astype(jnp.float32)
    delta = rewards + gamma * cont * next_values - values

    def back(adv_next, x):
        delta_t, not_done_t = x
        adv = delta_t + gamma * lam * not_done_t * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True)
    return adv, adv + values


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip_eps: float
) -> jax.Array:
    """PPO's clipped objective per sample, to be maximized:
    ``min(rho A, clip(rho, 1 - eps, 1 + eps) A)``, ``rho = exp(log_prob - old_log_prob)``."""
    ratio = jnp.exp(log_prob - old_log_prob)
    return jnp.minimum(ratio * advantages,
                       jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)


def clipped_value_loss(
    value: jax.Array, old_value: jax.Array, returns: jax.Array, clip_eps: float
) -> jax.Array:
    """Per sample ``max((V - R)^2, (V_clip - R)^2) / 2`` with the update of ``V``
    clipped to ``old_value +- clip_eps``."""
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum((value - returns) ** 2, (clipped - returns) ** 2)


def ppo_loss(
    logits: jax.Array,
    value: jax.Array,
    actions: jax.Array,
    old_log_prob: jax.Array,
    old_value: jax.Array,
    advantages: jax.Array,
    returns: jax.Array,
    *,
    clip_eps: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[jax.Array, dict]:
    """One agent's PPO loss on a minibatch: ``-mean(surrogate) + vf_coef
    mean(value loss) - ent_coef mean(entropy)``, advantages normalized to zero
    mean and unit variance over the minibatch.

    Args:
        logits: ``(batch, action)``; value, old_log_prob, old_value, advantages,
            returns: ``(batch,)``; actions: ``(batch,)`` int.
    """
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    surrogate = clipped_surrogate(log_prob, old_log_prob, adv, clip_eps).mean()
    value_loss = clipped_value_loss(value, old_value, returns, clip_eps).mean()
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1).mean()
    loss = -surrogate + vf_coef * value_loss - ent_coef * entropy
    return loss, {"value_loss": value_loss, "entropy": entropy}


# -- the learner --------------------------------------------------------------------------------
class _Shaped:
    """The rollout's view of ``env``: ``weight * info[key]`` added to every reward."""

    def __init__(self, env: Any, key: str, weight: jax.Array):
        self.env, self.key, self.weight = env, key, weight

    def step(self, key, state, actions):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, actions)
        if self.key not in info:
            raise ValueError(f"ppo: shaping_key {self.key!r} is not in the env's info "
                             f"(it has {sorted(info)})")
        return obs, state, reward + self.weight * info[self.key], terminated, truncated, info


def _scale_output_layer(params: Any, scale: float) -> Any:
    """``params`` with the last ``Dense_k`` layer (the output) multiplied by ``scale``."""
    layers = params["params"]
    last = max((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    scaled = jax.tree.map(lambda p: p * scale, layers[last])
    return {**params, "params": {**layers, last: scaled}}


def make_ppo(
    config: PPOConfig,
    *,
    num_agents: int,
    obs_shape: tuple[int, ...],
    num_actions: int,
    env: Any = None,
    obs_transform: ObsTransform | None = None,
) -> Algo:
    """PPO (module docstring) on a jittable discrete ``env``; ``obs_transform(obs,
    agent)``: agent ``agent``'s view of one observation, read by its networks."""
    check_jittable_env("ppo", env)
    obs_shape = tuple(obs_shape)
    net_shape = view_shape(obs_shape, obs_transform)
    actor = make_config_critic(config, num_actions, net_shape)
    critic = make_config_critic(config, 1, net_shape)
    shared = config.shared

    def make_apply(net):
        stacked = make_stacked_apply(net, obs_shape, obs_transform)
        if not shared:
            return stacked

        def apply(params, obs):  # one network for every agent
            return stacked(jax.tree.map(
                lambda p: jnp.broadcast_to(p, (obs.shape[0], *p.shape)), params), obs)

        return apply

    actor_apply, critic_apply = make_apply(actor), make_apply(critic)
    learning_rate = config.learning_rate
    if config.lr_decay_updates is not None:
        learning_rate = optax.linear_schedule(
            config.learning_rate, 0.0, config.lr_decay_updates * config.epochs * config.minibatches
        )
    tx = make_optimizer(learning_rate, config.max_grad_norm)
    opt_init = tx.init if shared else jax.vmap(tx.init)
    opt_update = tx.update if shared else jax.vmap(tx.update)
    num_samples = config.num_envs * config.num_steps  # per agent and rollout
    loss_one = functools.partial(ppo_loss, clip_eps=config.clip_eps, vf_coef=config.vf_coef,
                                 ent_coef=config.ent_coef)

    def q_values(params: Any, obs: jax.Array) -> jax.Array:
        return config.alpha * actor_apply(params["actor"], obs)

    def shaping_weight(step: jax.Array) -> jax.Array:
        frac = step.astype(jnp.float32) / config.shaping_updates
        return config.shaping_start * jnp.clip(1.0 - frac, 0.0, 1.0)

    def init(key: jax.Array, batch: Batch | None = None) -> PPOState:
        key_actor, key_critic, key_env = jax.random.split(key, 3)
        example = jnp.zeros(net_shape, jnp.float32)
        if shared:
            actor_params, critic_params = actor.init(key_actor, example), critic.init(
                key_critic, example)
        else:
            actor_params = init_stacked(actor, key_actor, num_agents, example)
            critic_params = init_stacked(critic, key_critic, num_agents, example)
        params = {"actor": _scale_output_layer(actor_params, config.actor_init_scale),
                  "value": critic_params}
        env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
        return PPOState(params=params, opt_state=opt_init(params), env_state=env_state,
                        env_obs=env_obs, step=jnp.int32(0))

    def rollout_step(params, stepped_env, carry, key):
        env_state, env_obs = carry
        key_act, key_step = jax.random.split(key)
        obs = jnp.swapaxes(env_obs, 0, 1)  # (agent, env, ...)
        logits = actor_apply(params["actor"], obs)  # (agent, env, action)
        actions = jax.random.categorical(key_act, logits).astype(jnp.int32)  # (agent, env)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None],
                                       axis=-1)[..., 0]
        value = critic_apply(params["value"], obs)[..., 0]
        env_obs, env_state, items, rewards = step_envs(stepped_env, env_state, env_obs,
                                                       actions.T, key_step)
        next_value = critic_apply(params["value"], jnp.swapaxes(items.next_obs, 0, 1))[..., 0]
        item = Rollout(obs, actions, log_prob, value, next_value,
                       rewards.T.astype(jnp.float32), items.terminated,
                       items.terminated | items.truncated)
        return (env_state, env_obs), item

    def loss_fn(params, minibatch):
        obs, actions, old_log_prob, old_value, adv, ret = minibatch  # (agent, batch, ...)
        logits = actor_apply(params["actor"], obs)
        value = critic_apply(params["value"], obs)[..., 0]
        losses, aux = jax.vmap(loss_one)(logits, value, actions, old_log_prob, old_value,
                                         adv, ret)
        total = jnp.mean(losses) if shared else jnp.sum(losses)
        return total, {"loss": losses, **aux}

    def gradient_step(carry, minibatch):
        params, opt_state = carry
        grads, aux = jax.grad(loss_fn, has_aux=True)(params, minibatch)
        updates, opt_state = opt_update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), aux

    def epoch(data, carry, key):
        perm = jax.random.permutation(key, num_samples)
        minibatches = jax.tree.map(
            lambda x: jnp.swapaxes(
                x[:, perm].reshape(num_agents, config.minibatches, -1, *x.shape[2:]), 0, 1),
            data,
        )  # (minibatch, agent, batch, ...)
        return jax.lax.scan(gradient_step, carry, minibatches)

    def update(state: PPOState, batch: Batch, key: jax.Array) -> tuple[PPOState, dict]:
        key_rollout, key_epochs = jax.random.split(key)
        weight = shaping_weight(state.step)
        stepped_env = env
        if config.shaping_start > 0:
            stepped_env = _Shaped(env, config.shaping_key, weight)
        (env_state, env_obs), rollout = jax.lax.scan(
            functools.partial(rollout_step, state.params, stepped_env),
            (state.env_state, state.env_obs),
            jax.random.split(key_rollout, config.num_steps),
        )
        adv, ret = gae(rollout.rewards, rollout.value, rollout.next_value,
                       rollout.terminated[:, None], rollout.done[:, None],
                       gamma=config.gamma, lam=config.gae_lambda)  # (time, agent, env)

        def per_agent(x):  # (time, agent, env, ...) -> (agent, time * env, ...)
            return jnp.swapaxes(x, 0, 1).reshape(num_agents, num_samples, *x.shape[3:])

        data = jax.tree.map(per_agent, (rollout.obs, rollout.actions, rollout.log_prob,
                                        rollout.value, adv, ret))
        (params, opt_state), aux = jax.lax.scan(
            functools.partial(epoch, data), (state.params, state.opt_state),
            jax.random.split(key_epochs, config.epochs),
        )
        metrics = {name: value.mean(axis=(0, 1)) for name, value in aux.items()}  # (agent,)
        metrics["reward"] = rollout.rewards.mean(axis=(0, 2))
        metrics["shaping_weight"] = weight
        state = state.replace(params=params, opt_state=opt_state, env_state=env_state,
                              env_obs=env_obs, step=state.step + 1)
        return state, metrics

    needs = Needs(expert_batch=0, num_envs=config.num_envs, rewards=True)
    return Algo(name=PPOConfig.name, init=init, update=update, q_values=q_values,
                alpha=config.alpha, gamma=config.gamma, config=config, needs=needs)
