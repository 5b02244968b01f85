"""MAMQL for continuous actions: marginal soft-Q critics with tanh-Gaussian actors.

The discrete MAMQL (``mairl.algos.iq``) reads each agent's policy and soft value
off its critic in closed form, ``pi_i ∝ exp(Q_i / alpha)`` and ``V_i = alpha
logsumexp(Q_i / alpha)``. With actions in ``[-1, 1]^d`` the normaliser is an
integral over the action box; as in soft actor-critic (Haarnoja et al. 2018)
and IQ-Learn's continuous form (Garg et al. 2021, section 5.1), each agent ``i``
carries an actor ``pi_i(a_i|s)`` that approximates the Boltzmann policy of its
own critic, and the soft value is estimated from the actor's samples.

Objects, per agent ``i`` (the others are marginalized by the data, as in MAMQL,
Haynam et al. 2025):

- critic ``Q_i(s, a_i)``: an MLP on the observation and the agent's own action;
- actor ``pi_i(a_i|s)``: ``a_i = tanh(u)``, ``u ~ N(mu_i(s), diag sigma_i(s)^2)``,
  with density (change of variables through the tanh)
  ``log pi_i(a|s) = log N(u; mu, sigma) - sum_d log(1 - tanh(u_d)^2)``;
- soft value under the actor,
  ``V_i(s) = E_{a ~ pi_i(.|s)}[Q_i(s, a) - alpha log pi_i(a|s)]``, estimated with
  ``value_samples`` reparameterized draws.

**Why this is the soft value.** For any policy ``pi``,
``E_pi[Q - alpha log pi] = alpha log Z(s) - alpha KL(pi || pi_Q)`` with
``pi_Q = exp(Q / alpha) / Z``, ``Z = ∫ exp(Q(s, a) / alpha) da``. So
``V^pi <= alpha log Z = V^*`` with equality iff ``pi = pi_Q``: maximizing the
estimate over the actor (the SAC actor loss below) is minimizing
``KL(pi || pi_Q)``, and at the optimum ``V^pi`` is the closed-form soft value
of the discrete algorithm.

**Critic objective** (IQ-Learn with the chi-squared regularizer, per agent, the
actor held fixed): with ``y = Q_i(s, a^E) - gamma (1 - term) V_i(s')``,

    L_i(Q) = E_value[V_i(s) - gamma (1 - term) V_i(s')] - E_expert[phi(y)],
    phi(x) = x - c x^2 / (4 alpha),

minimized over the critic (``mairl.algos.iq.iq_chi2_loss``, the same function
as the discrete learners). IQ-Learn's saddle point ``max_Q min_pi`` of the
inverse-RL objective becomes, for a fixed ``Q``, the soft-optimal ``pi_Q``;
writing its value through the telescoping identity
``(1 - gamma) E_{s0}[V(s0)] = E_{(s, s') ~ rho}[V(s) - gamma V(s')]`` for any
occupancy ``rho`` gives the value term, which is evaluated on the expert's
transitions (``value_expert``), on initial states (``v0``:
``(1 - gamma) E[V_i(s_0)]``), or on expert and replayed own transitions
(``online``). ``V_i`` enters through ``Q_i(s, a~pi_i)``: its gradient reaches the
critic, not the actor.

**The regularizer over the mixture** (online, ``chi2_on="mixture"``): with
``y`` also on the agents' own replayed transitions,
``y = Q_i(s, a_i) - gamma (1 - term) V_i(s')``,

    L_i(Q) = E_value[V_i(s) - gamma (1 - term) V_i(s')] - E_expert[y]
             + c / (4 alpha) (E_expert[y^2] + E_own[y^2]) / 2,

the chi-squared divergence from the even mixture of the two occupancies
rather than from the expert's alone (Garg et al. 2021 discuss regularizing
over both distributions; Al-Hafez et al. 2023, LS-IQ, analyse it). It bounds
the reward from both sides: pointwise in ``(s, a)`` the terms in ``y`` are
largest at ``y = (4 alpha / c) rho_E / (rho_E + rho_own)``, ``4 alpha / c``
where only the expert goes and 0 where only the agents go, where the expert's
regularizer alone leaves the reward of the agents' own actions free.

**Actor objective** (soft actor-critic's, per agent, the critic held fixed):

    J_i(pi) = E_s E_{a ~ pi_i(.|s)}[alpha log pi_i(a|s) - Q_i(s, a)] = -E_s[V_i(s)],

on the same states as the value term, with the reparameterization
``a = tanh(mu + sigma eps)`` so the gradient flows through the action into
``Q_i``. One critic step, then one actor step (on the updated critic), per update.

**Recovered reward**: ``r_i(s, a_i) = Q_i(s, a_i) - gamma (1 - term) V_i(s')``,
with ``V_i`` estimated from the actor (``mairl.evaluation.continuous_reward``).

Choices. The temperature ``alpha`` is fixed, not tuned toward a target entropy
as in SAC: in inverse RL it is the expert model's temperature, and the
recovered reward is in its units. No twin critics: their minimum counters the
over-estimation of a regression target built from a max over noisy critics;
the IQ-Learn objective regresses onto no target, and a minimum of two critics
would break the identity ``r = Q - gamma V`` that reads the reward out of one
critic. A target critic for ``V(s')`` is optional (``target_tau``), as in the
discrete learner; by default the online critic is used (the objective is a
single concave maximization in ``Q`` for a fixed actor, with no moving target).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs, Transition, no_q_table
from mairl.algos.common import (
    ObsTransform,
    actor_checks,
    check_config,
    check_jittable_env,
    l2_penalty,
    make_optimizer,
    polyak,
    stacked_optimizer_step,
    stacked_views,
    step_envs,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
    view_shape,
)
from mairl.algos.iq import iq_chi2_loss
from mairl.buffers import ReplayBuffer, buffer_add, buffer_init, buffer_sample
from mairl.networks import MLPGaussianActor, MLPStateActionCritic

MODES = ("online", "value_expert", "v0")


@dataclass(frozen=True)
class MAMQLContinuousConfig:
    """Continuous-action MAMQL, online by default (module docstring).

    Attributes:
        mode: ``online`` (value term on expert and own replayed transitions),
            ``value_expert`` or ``v0`` (offline).
        alpha: temperature of the soft value and of the actors' entropy bonus.
        gamma: discount.
        learning_rate: Adam step size of the critics.
        actor_learning_rate: Adam step size of the actors.
        batch_size: expert transitions per update (and own transitions online).
        chi2_coef: ``c`` in ``phi(x) = x - c x^2 / (4 alpha)``; 0: no regularizer.
        chi2_on: the transitions the regularizer is taken over: ``expert``, or
            (online only) ``mixture``: half expert, half own (module docstring).
        l2: weight of the squared-parameter penalty on the critics.
        target_tau: Polyak rate of a target critic for ``V(s')``; ``None``: the
            online critic.
        hidden: hidden widths of the critics and actors (MLPs).
        value_samples: actor draws per state in the estimate of ``V_i(s)``.
        log_std_min, log_std_max: bounds of the actors' pre-squash log-std.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
        num_envs: online only: environments stepped once per update.
        buffer_size: online only: replay capacity (transitions).
    """

    name: ClassVar[str] = "mamql-continuous"
    modes: ClassVar[tuple[str, ...]] = MODES

    mode: Literal["online", "value_expert", "v0"] = "online"
    alpha: float = 0.1
    gamma: float = 0.99
    learning_rate: float = 3e-4
    actor_learning_rate: float = 3e-4
    batch_size: int = 256
    chi2_coef: float = 1.0
    chi2_on: Literal["expert", "mixture"] = "expert"
    l2: float = 0.0
    target_tau: float | None = None
    hidden: tuple[int, ...] = (256, 256)
    value_samples: int = 1
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    max_grad_norm: float | None = 10.0
    num_envs: int = 8
    buffer_size: int = 100_000

    def __post_init__(self):
        check_config(self, [
            ("mode", self.mode in self.modes, f"one of {self.modes}"),
            ("chi2_on", self.chi2_on == "expert" or (self.chi2_on == "mixture"
                                                     and self.mode == "online"),
             "'expert', or 'mixture' with mode='online' (it needs the agents' own "
             "transitions)"),
            *actor_checks(self),
            ("value_samples", self.value_samples >= 1, ">= 1"),
        ])


@dataclass(frozen=True)
class MAMQLContinuousOfflineConfig(MAMQLContinuousConfig):
    """Continuous-action MAMQL from demonstrations alone: ``mode`` is
    ``value_expert`` or ``v0``; no environment is stepped."""

    name: ClassVar[str] = "mamql-continuous-offline"
    modes: ClassVar[tuple[str, ...]] = ("value_expert", "v0")

    mode: Literal["value_expert", "v0"] = "value_expert"


@struct.dataclass
class ContinuousIQState:
    """Learner state; every leaf of ``params`` (``{"critic", "actor"}``), the target
    critic and the optimizer states carries the agent axis first. Online runs also
    hold the environments and the replay of the agents' own transitions."""

    params: Any
    target_critic: Any
    critic_opt: Any
    actor_opt: Any
    step: jax.Array
    env_state: Any = None
    env_obs: Any = None
    buffer: ReplayBuffer | None = None


# -- losses of one agent (module level, vmapped over the agent axis by the learner) -------------
def soft_value_estimate(q_fn, actor_fn, obs: jax.Array, key: jax.Array, alpha: float,
                        samples: int) -> jax.Array:
    """``V(s) ≈ mean_k [Q(s, a_k) - alpha log pi(a_k|s)]``, ``a_k ~ pi(.|s)``, for
    ``obs (B, *obs_shape)``: ``(B,)``. ``q_fn(obs, actions) -> (B,)``,
    ``actor_fn(obs) -> (mean, log_std)``."""
    mean, log_std = actor_fn(obs)

    def one(key):
        a, logp = tanh_gaussian_sample(key, mean, log_std)
        return q_fn(obs, a) - alpha * logp

    return jnp.mean(jax.vmap(one)(jax.random.split(key, samples)), axis=0)


def iq_critic_loss(q_fn, q_next_fn, actor_fn, obs_now: jax.Array, obs_next: jax.Array,
                   actions_e: jax.Array, term_e: jax.Array, term_value: jax.Array,
                   key: jax.Array, *, b: int, mode: str, alpha: float, gamma: float,
                   chi2_coef: float, value_samples: int,
                   actions_own: jax.Array | None = None) -> tuple[jax.Array, dict]:
    """The critic objective of one agent (module docstring), on a batch.

    Args:
        q_fn, q_next_fn: ``Q(obs, actions) -> (B,)`` for the current states and for
            the successors (the target critic where there is one).
        actor_fn: ``obs -> (mean, log_std)`` of the (fixed) actor.
        obs_now: ``(B_v, *obs_shape)``: the ``b`` expert states first, then the
            other states of the value term (own transitions online, initial
            states for ``v0``).
        obs_next: successors ``(B_v', *obs_shape)`` of ``obs_now`` (expert ones
            first; for ``v0`` only the ``b`` expert ones are read).
        actions_e: demonstrated actions ``(b, dim)``; ``term_e (b,)`` their flags.
        term_value: termination flags of the value term's transitions ``(B_v,)``.
        mode: ``online``, ``value_expert`` or ``v0``.
        actions_own: online only: the own transitions' actions ``(B_v - b, dim)``
            to take the regularizer over the mixture of expert and own
            transitions (``chi2_on="mixture"``); ``None``: over the expert's.
    """
    key_now, key_next = jax.random.split(key)
    v_now = soft_value_estimate(q_fn, actor_fn, obs_now, key_now, alpha, value_samples)
    v_next = soft_value_estimate(q_next_fn, actor_fn, obs_next, key_next, alpha, value_samples)
    q_e = q_fn(obs_now[:b], actions_e)
    if mode == "v0":
        v_value = (1.0 - gamma) * v_now[b:]
        v_next_value, t_value = jnp.zeros_like(v_value), jnp.ones_like(v_value)
    else:
        v_value, v_next_value, t_value = v_now, v_next, term_value
    if actions_own is not None and mode != "online":
        raise ValueError(f"iq_critic_loss: actions_own: only with mode='online', not {mode!r}")
    # over the mixture: half the regularizer on the expert's transitions, half on the own ones
    expert_coef = chi2_coef if actions_own is None else chi2_coef / 2
    loss, aux = iq_chi2_loss(q_e, v_next[:b], term_e, v_value, v_next_value, t_value,
                             alpha=alpha, gamma=gamma, chi2_coef=expert_coef)
    if actions_own is None:
        return loss, aux
    y_own = q_fn(obs_now[b:], actions_own) - gamma * (1.0 - term_value[b:]) * v_next[b:]
    own_term = chi2_coef / (8.0 * alpha) * jnp.mean(y_own**2)
    return loss + own_term, aux | {"own_reward": jnp.mean(y_own)}


def actor_loss(actor_fn, q_fn, obs: jax.Array, key: jax.Array, alpha: float) -> jax.Array:
    """Soft actor-critic's actor loss ``E_s[alpha log pi(a|s) - Q(s, a)]`` with the
    reparameterized ``a = tanh(mean + std eps)``; ``q_fn`` should hold its
    parameters fixed (``stop_gradient``)."""
    mean, log_std = actor_fn(obs)
    a, logp = tanh_gaussian_sample(key, mean, log_std)
    return jnp.mean(alpha * logp - q_fn(obs, a))


def make_mamql_continuous(config: MAMQLContinuousConfig, *, num_agents: int,
                          obs_shape: tuple[int, ...], action_dim: int, env: Any = None,
                          obs_transform: ObsTransform | None = None, **_: Any) -> Algo:
    """Build the learner (module docstring). ``env`` (a jittable mairl env with
    ``Box`` actions of shape ``(action_dim,)``) is needed for ``online``;
    ``obs_transform(obs, agent)`` gives each agent's view of its observation to
    its critic and actor."""
    name = config.name
    online = config.mode == "online"
    if online:
        check_jittable_env(name, env)
    if action_dim < 1:
        raise ValueError(f"{name}: action_dim: expected >= 1, got {action_dim}")
    alpha, gamma = config.alpha, config.gamma
    shape = view_shape(obs_shape, obs_transform)
    ndim = len(obs_shape)
    critic_net = MLPStateActionCritic(hidden=tuple(config.hidden), obs_ndim=len(shape))
    actor_net = MLPGaussianActor(action_dim, hidden=tuple(config.hidden), obs_ndim=len(shape),
                                 log_std_min=config.log_std_min,
                                 log_std_max=config.log_std_max)
    critic_tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    actor_tx = make_optimizer(config.actor_learning_rate, config.max_grad_norm)

    def views(obs):  # (agent, ..., *obs_shape) -> each agent's view
        return obs if obs_transform is None else stacked_views(obs, obs_transform, ndim)

    def critic(params, obs, actions):
        return jax.vmap(critic_net.apply)(params["critic"], views(obs), actions)

    def log_prob(params, obs, actions):
        mean, log_std = jax.vmap(actor_net.apply)(params["actor"], views(obs))
        return tanh_gaussian_log_prob(actions, mean, log_std)

    def policy(params, obs, key, greedy=False):
        mean, log_std = jax.vmap(actor_net.apply)(params["actor"], views(obs))
        return tanh_gaussian_sample(key, mean, log_std, greedy)[0]

    def agent_critic_loss(critic_p, target_p, actor_p, obs_now, obs_next, actions_e, term_e,
                          term_value, key, actions_own, *, b):
        """One agent: ``obs_now (B_v, ...)`` starts with the ``b`` expert states."""
        next_p = critic_p if config.target_tau is None else target_p
        return iq_critic_loss(
            lambda o, a: critic_net.apply(critic_p, o, a),
            lambda o, a: critic_net.apply(next_p, o, a),
            lambda o: actor_net.apply(actor_p, o), obs_now, obs_next, actions_e, term_e,
            term_value, key, b=b, mode=config.mode, alpha=alpha, gamma=gamma,
            chi2_coef=config.chi2_coef, value_samples=config.value_samples,
            actions_own=actions_own)

    def value_data(batch: Batch, policy_data: Transition | None):
        """States of the value term: ``obs_now (agent, B_v, ...)``, ``obs_next`` and
        their termination flags, the ``b`` expert transitions first."""
        expert = batch.expert
        obs_now, obs_next, term = expert.obs, expert.next_obs, expert.terminated
        if online:
            obs_now = jnp.concatenate([obs_now, policy_data.obs], axis=1)
            obs_next = jnp.concatenate([obs_next, policy_data.next_obs], axis=1)
            term = jnp.concatenate([term, policy_data.terminated])
        elif config.mode == "v0":
            obs_now = jnp.concatenate([obs_now, batch.init_obs], axis=1)
        return views(obs_now), views(obs_next), term.astype(jnp.float32)

    def critic_loss_fn(critic_params, state, batch, policy_data, key):
        obs_now, obs_next, term_value = value_data(batch, policy_data)
        expert = batch.expert
        b = expert.actions.shape[1]
        actor_p = jax.lax.stop_gradient(state.params["actor"])
        actions_own = policy_data.actions if config.chi2_on == "mixture" else None
        losses, aux = jax.vmap(
            functools.partial(agent_critic_loss, b=b),
            in_axes=(0, 0, 0, 0, 0, 0, None, None, 0, None if actions_own is None else 0)
        )(critic_params, state.target_critic, actor_p, obs_now, obs_next, expert.actions,
          expert.terminated.astype(jnp.float32), term_value, jax.random.split(key, num_agents),
          actions_own)
        total = jnp.sum(losses)
        if isinstance(config.l2, jax.Array) or config.l2 > 0:
            total = total + config.l2 * l2_penalty(critic_params)
        aux["loss"] = losses
        return total, aux

    def actor_loss_fn(actor_params, critic_params, obs, key):
        def one(actor_p, critic_p, obs, key):
            q_fn = lambda o, a: critic_net.apply(critic_p, o, a)  # noqa: E731
            return actor_loss(lambda o: actor_net.apply(actor_p, o), q_fn, obs, key, alpha)

        losses = jax.vmap(one)(actor_params, jax.lax.stop_gradient(critic_params), obs,
                               jax.random.split(key, num_agents))
        return jnp.sum(losses), losses

    def gradient_step(state: ContinuousIQState, batch: Batch, policy_data, key):
        key_critic, key_actor = jax.random.split(key)
        grads, aux = jax.grad(critic_loss_fn, has_aux=True)(
            state.params["critic"], state, batch, policy_data, key_critic)
        critic_p, critic_opt = stacked_optimizer_step(critic_tx, grads, state.critic_opt,
                                                      state.params["critic"])
        obs_now = value_data(batch, policy_data)[0]
        grads, actor_losses = jax.grad(actor_loss_fn, has_aux=True)(
            state.params["actor"], critic_p, obs_now, key_actor)
        actor_p, actor_opt = stacked_optimizer_step(actor_tx, grads, state.actor_opt,
                                                    state.params["actor"])
        target = state.target_critic
        if config.target_tau is not None:
            target = polyak(target, critic_p, config.target_tau)
        aux["actor_loss"] = actor_losses
        return state.replace(params={"critic": critic_p, "actor": actor_p},
                             target_critic=target, critic_opt=critic_opt, actor_opt=actor_opt,
                             step=state.step + 1), aux

    def init(key: jax.Array, example: Batch) -> ContinuousIQState:
        key_critic, key_actor, key_env = jax.random.split(key, 3)
        obs = jnp.zeros(shape, jnp.float32)
        act = jnp.zeros((action_dim,), jnp.float32)
        critic_p = jax.vmap(critic_net.init, in_axes=(0, None, None))(
            jax.random.split(key_critic, num_agents), obs, act)
        actor_p = jax.vmap(actor_net.init, in_axes=(0, None))(
            jax.random.split(key_actor, num_agents), obs)
        state = ContinuousIQState(
            params={"critic": critic_p, "actor": actor_p}, target_critic=critic_p,
            critic_opt=jax.vmap(critic_tx.init)(critic_p),
            actor_opt=jax.vmap(actor_tx.init)(actor_p), step=jnp.int32(0))
        if online:
            env_obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, config.num_envs))
            item = Transition(obs=env_obs[0], actions=jnp.zeros((num_agents, action_dim),
                                                                jnp.float32),
                              next_obs=env_obs[0], terminated=jnp.bool_(False),
                              truncated=jnp.bool_(False))
            state = state.replace(env_state=env_state, env_obs=env_obs,
                                  buffer=buffer_init(item, config.buffer_size))
        return state

    def act_and_store(state: ContinuousIQState, key: jax.Array) -> ContinuousIQState:
        key_act, key_step = jax.random.split(key)
        actions = policy(state.params, jnp.swapaxes(state.env_obs, 0, 1), key_act)
        actions = jnp.swapaxes(actions, 0, 1)  # (env, agent, action_dim)
        env_obs, env_state, items, _ = step_envs(env, state.env_state, state.env_obs, actions,
                                                 key_step)
        return state.replace(env_state=env_state, env_obs=env_obs,
                             buffer=buffer_add(state.buffer, items))

    def update(state: ContinuousIQState, batch: Batch, key: jax.Array):
        policy_data = None
        if online:
            key_env, key_sample, key = jax.random.split(key, 3)
            state = act_and_store(state, key_env)
            sample = buffer_sample(state.buffer, key_sample, config.batch_size)
            policy_data = Transition(
                obs=jnp.swapaxes(sample.obs, 0, 1), actions=jnp.swapaxes(sample.actions, 0, 1),
                next_obs=jnp.swapaxes(sample.next_obs, 0, 1), terminated=sample.terminated,
                truncated=sample.truncated)
        return gradient_step(state, batch, policy_data, key)

    needs = Needs(expert_batch=config.batch_size, init_obs=config.mode == "v0",
                  num_envs=config.num_envs if online else 0)
    return Algo(name=name, init=init, update=update, q_values=no_q_table(name), alpha=alpha,
                gamma=gamma, config=config, needs=needs, policy=policy, log_prob=log_prob,
                critic=critic)


__all__ = ["ContinuousIQState", "MAMQLContinuousConfig", "MAMQLContinuousOfflineConfig",
           "actor_loss", "iq_critic_loss", "make_mamql_continuous", "soft_value_estimate"]
