"""Factorized inverse soft-Q learning for cooperative games (``fiq``).

The IQ-Learn objective (Garg et al. 2021; ``mairl.algos.iq``) applied to one
joint team critic that is a monotone mixture of decentralised per-agent critics,
``Q_tot(s, a) = M_s(Q_1(s, a_1), ..., Q_N(s, a_N))`` (``mairl.mixers``): the
published forms are MIFQ (Bui et al., NeurIPS 2024, inverse factorized soft-Q
learning) and MAFIS (NeurIPS 2025). With the joint soft value ``V_tot`` of the
mixer (exact for ``vdn`` and ``linear``, the tangent-plane lower bound for
``qmix``; see ``mairl.mixers``), the team critic is trained on

    L = E_value[V_tot(s) - gamma (1 - term) V_tot(s')]
        - E_expert[phi(Q_tot(s, a^E) - gamma (1 - term) V_tot(s'))],
    phi(x) = x - c x^2 / (4 alpha),

the value expectation over the expert's transitions (``value_expert``),
``(1 - gamma) E[V_tot(s_0)]`` over initial states (``v0``), both from
demonstrations alone, or (``online``) over the expert's transitions and the
agents' own, stepped in ``num_envs`` environments by the decentralised
policies below and kept in a replay (the online form of IQ-Learn, as MAMQL's
``online`` mode in ``mairl.algos.iq``).
One loss for the team, one optimizer over all critics and the mixer. Both
``Q_tot(s, a^E)`` and ``V_tot`` are read off the mixer's affine model
(``Mixer.local_affine``): the mixer itself for ``vdn`` and ``linear``; for
``qmix`` its tangent plane at the agents' Boltzmann-mean utilities, whose
weights and offset depend on the state and on the critics' values. Reading
``Q_tot(s, a^E)`` off QMIX itself while ``V_tot`` is the tangent plane's lower
bound breaks ``V_tot(s) >= Q_tot(s, a)`` and the objective falls without bound:
on ``random-team-game`` (tabular critics, Adam 0.005, 2,000 updates, 2 seeds)
that variant's loss went to -14.5 and its policy KL to the expert ended at
0.13-0.14 per agent; with the tangent plane in both terms, 0.007-0.011.

**Decentralised policies.** The mixer's affine model ``Q_tot ≈ sum_i w_i(s)
Q_i + c(s)`` (exact for the affine mixers) makes the joint Boltzmann policy of
``Q_tot`` at ``alpha`` the product of ``pi_i(a_i|s) ∝ exp(w_i(s) Q_i(s, a_i) /
alpha)``: each agent acts on its own critic at temperature ``alpha / w_i(s)``.
``q_values`` therefore returns ``w_i(s) Q_i(s, .)``, so that the pipeline's
Boltzmann policy at ``alpha`` (``mairl.algos.base``) is the agent's policy and
its soft value ``alpha logsumexp(w_i Q_i / alpha)`` is agent ``i``'s term of
``V_tot``. The weights ``w(s)`` read the global state (all agents' observations,
``mairl.mixers.global_state``); acting needs it, as in centralised training
with the mixer's state. VDN has ``w = 1``: fully decentralised.

**Recovered rewards.** The team reward ``r(s, a) = Q_tot(s, a) - gamma E[V_tot(s')]``
(:meth:`FactorizedCritic.team_reward`). The per-agent read-outs of the pipeline,
``r_i(s, a_i) = w_i Q_i(s, a_i) - gamma E[V_i(s')]`` with ``V_i = alpha
logsumexp(w_i Q_i / alpha)``, are each agent's marginal reward implied by its
own Boltzmann policy (up to shaping, they are ``alpha log pi_i``: as good as
the policy); for affine mixers they sum to the team reward up to potential
shaping by ``c(s)``: ``sum_i r_i = r - (c(s) - gamma E[c(s')])``.

    algo = make_fiq(FIQConfig(mixer="qmix"), num_agents=3, obs_shape=(18,), num_actions=5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp

from mairl.algos.base import Algo, Batch, Needs, Transition
from mairl.algos.common import (
    ObsTransform,
    act_and_store,
    check_fields,
    init_stacked,
    l2_penalty,
    make_optimizer,
    make_stacked_critic,
    online_init,
    sample_actions,
    sample_policy_batch,
)
from mairl.algos.iq import IQConfig, IQState, apply_iq_updates, iq_chi2_loss
from mairl.buffers import buffer_add
from mairl.mixers import MIXERS, Mixer, affine_soft_value, global_state, make_mixer

FIQState = IQState


@dataclass(frozen=True)
class FIQConfig(IQConfig):
    """Factorized IQ-Learn from demonstrations: per-agent critics mixed into a team
    critic (``mairl.algos.factorized``).

    Attributes:
        mode: ``value_expert`` (value term on expert states) or ``v0`` (on
            initial states), from demonstrations alone; ``online`` (value term
            also on the agents' own rollouts, kept in a replay buffer).
        alpha: Boltzmann temperature of the joint policy (agent ``i`` acts at
            ``alpha / w_i(s)`` in its own critic).
        gamma: discount.
        learning_rate: Adam step size (critics and mixer).
        batch_size: expert transitions per update.
        chi2_coef: ``c`` in ``phi(x) = x - c x^2 / (4 alpha)``; 0 gives the plain
            IQ objective.
        l2: weight of the squared-parameter penalty (critics and mixer).
        target_tau: Polyak rate of target critics and mixer used for
            ``V_tot(s')``; ``None`` uses the online ones.
        critic: per-agent network preset (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` critic.
        max_grad_norm: gradient clipping over all parameters together; ``None``
            for none.
        num_envs: online only: environments stepped once per update.
        buffer_size: online only: replay capacity (transitions).
        mixer: ``vdn`` (sum), ``linear`` (state-weighted sum, ``w_i(s) > 0``) or
            ``qmix`` (hypernetwork mixer); the first two keep the joint soft
            value exact, ``qmix`` uses its tangent-plane lower bound.
        mixer_hidden: hidden widths of the mixer's state networks (``linear``:
            of ``w`` and ``b``; ``qmix``: the first is the hypernetworks' width).
        mixer_embed: QMIX's mixing width ``E``.
        dropout: must be 0 (the factorized learner trains its critics without
            dropout).
    """

    name: ClassVar[str] = "fiq"
    modes: ClassVar[tuple[str, ...]] = ("value_expert", "v0", "online")

    mode: Literal["value_expert", "v0", "online"] = "value_expert"
    mixer: Literal["vdn", "linear", "qmix"] = "linear"
    mixer_hidden: tuple[int, ...] = (64,)
    mixer_embed: int = 32

    def __post_init__(self):
        super().__post_init__()
        check_fields(self, [
            ("mixer", self.mixer in MIXERS, f"one of {MIXERS}"),
            ("mixer_hidden", all(h >= 1 for h in self.mixer_hidden), "positive widths"),
            ("mixer_embed", self.mixer_embed >= 1, ">= 1"),
            ("dropout", self.dropout == 0, "0 (fiq trains without dropout)"),
        ])


class FactorizedCritic(NamedTuple):
    """The team critic as pure functions of ``params = {"critics": stacked per-agent
    params, "mixer": mixer params}``. Observations are ``(agent, ..., *obs_shape)``;
    functions taking ``q`` accept the per-agent values ``agent_q(params, obs)``
    already computed (``None``: computed).

    Attributes:
        net: one agent's critic network, applied to views of ``view_shape``.
        view_shape: the shape of one agent's view of its observation.
        mixer: the :class:`mairl.mixers.Mixer`.
        agent_q: ``agent_q(params, obs) -> Q_i (agent, ..., action)``, each agent's own
            critic (before the mixer's weights).
        local: ``local(params, obs, q=None) -> (w (agent, ...), c (...))``: the affine
            model ``Q_tot ≈ sum_i w_i Q_i + c`` of the mixer (``Mixer.local_affine``).
        q_values: ``q_values(params, obs) -> w_i Q_i (agent, ..., action)``: the
            policy's utilities at ``alpha`` (module docstring).
        team_q: ``team_q(params, obs, actions (agent, ...), q=None) -> Q_tot (...)``,
            read through the affine model: the mixer itself for ``vdn`` and
            ``linear``, QMIX's tangent plane at the Boltzmann-mean point for ``qmix``.
        team_value: ``team_value(params, obs, q=None) -> V_tot (...)``.
        team_reward: ``team_reward(params, transition) -> (...)``: ``Q_tot(s, a) -
            gamma (1 - term) V_tot(s')`` on a ``Transition`` (agent axis first).
        alpha, gamma: the temperature and discount.
    """

    net: Any
    view_shape: tuple[int, ...]
    mixer: Mixer
    agent_q: Callable
    local: Callable
    q_values: Callable
    team_q: Callable
    team_value: Callable
    team_reward: Callable
    alpha: float
    gamma: float


def make_factorized_critic(config: FIQConfig, *, num_agents: int, obs_shape: tuple[int, ...],
                           num_actions: int,
                           obs_transform: ObsTransform | None = None) -> FactorizedCritic:
    """The team critic of ``config`` (:class:`FactorizedCritic`): per-agent critics of
    ``config.critic`` on each agent's view (``obs_transform(obs, agent)``), mixed by
    ``config.mixer`` conditioned on ``mairl.mixers.global_state`` of the raw
    observations."""
    stacked = make_stacked_critic(config, num_actions, obs_shape, obs_transform)
    net, critic_shape, raw = stacked
    mixer = make_mixer(config.mixer, num_agents, hidden=config.mixer_hidden,
                       embed=config.mixer_embed)
    alpha, gamma, ndim = config.alpha, config.gamma, len(obs_shape)

    def agent_q(params, obs):
        return raw(params["critics"], obs)

    def local(params, obs, q=None):
        q = agent_q(params, obs) if q is None else q
        w, c = mixer.local_affine(params["mixer"], jnp.moveaxis(q, 0, -2),
                                  global_state(obs, ndim), alpha)
        return jnp.moveaxis(w, -1, 0), c

    def q_values(params, obs):
        q = agent_q(params, obs)
        w, _ = local(params, obs, q)
        return w[..., None] * q

    def team_q(params, obs, actions, q=None):
        q = agent_q(params, obs) if q is None else q
        taken = jnp.take_along_axis(q, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
        w, c = local(params, obs, q)
        return c + jnp.sum(w * taken, axis=0)

    def team_value(params, obs, q=None):
        q = agent_q(params, obs) if q is None else q
        w, c = local(params, obs, q)
        return affine_soft_value(jnp.moveaxis(q, 0, -2), jnp.moveaxis(w, 0, -1), c, alpha)

    def team_reward(params, batch: Transition):
        not_term = 1.0 - jnp.asarray(batch.terminated, jnp.float32)
        return (team_q(params, batch.obs, batch.actions)
                - gamma * not_term * team_value(params, batch.next_obs))

    return FactorizedCritic(net=net, view_shape=critic_shape, mixer=mixer, agent_q=agent_q,
                            local=local, q_values=q_values, team_q=team_q,
                            team_value=team_value, team_reward=team_reward, alpha=alpha,
                            gamma=gamma)


def make_fiq(config: FIQConfig, *, num_agents: int, obs_shape: tuple[int, ...],
             num_actions: int, env: Any = None, obs_transform: ObsTransform | None = None) -> Algo:
    """Factorized IQ-Learn (module docstring); ``env`` (a mairl env) is stepped only
    in ``online`` mode: jitted inside the update, or, for a host-side game, by
    ``mairl.train.train_host`` through ``algo.act`` and ``algo.store``;
    ``obs_transform(obs, agent)`` gives each agent's critic its view (the mixer
    reads the raw observations)."""
    if not isinstance(config, FIQConfig):
        raise ValueError(f"make_fiq: expected a FIQConfig, got {type(config).__name__}")
    online = config.mode == "online"
    if online and env is None:
        raise ValueError("fiq: mode 'online' needs an environment (env=...)")
    host = online and not getattr(env, "jittable", True)
    critic = make_factorized_critic(config, num_agents=num_agents, obs_shape=tuple(obs_shape),
                                    num_actions=num_actions, obs_transform=obs_transform)
    state_dim = num_agents * math.prod(obs_shape)
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    alpha, gamma = config.alpha, config.gamma

    def loss_fn(params, target_params, batch: Batch, policy: Transition | None):
        expert = batch.expert
        b = expert.actions.shape[1]
        obs_now, obs_next = expert.obs, expert.next_obs
        if online:  # the value term also on the agents' own transitions
            obs_now = jnp.concatenate([expert.obs, policy.obs], axis=1)
            obs_next = jnp.concatenate([expert.next_obs, policy.next_obs], axis=1)
        elif config.mode == "v0":
            obs_now = jnp.concatenate([expert.obs, batch.init_obs], axis=1)
        if config.target_tau is None:
            # one critic call on now and next together (a taller matmul)
            both = jnp.concatenate([obs_now, obs_next], axis=1)
            q_both = critic.agent_q(params, both)
            v_both = critic.team_value(params, both, q_both)
            q_now, v_now, v_next = q_both[:, : obs_now.shape[1]], \
                v_both[: obs_now.shape[1]], v_both[obs_now.shape[1]:]
        else:
            q_now = critic.agent_q(params, obs_now)
            v_now = critic.team_value(params, obs_now, q_now)
            v_next = critic.team_value(target_params, obs_next)
        q_e = critic.team_q(params, expert.obs, expert.actions, q_now[:, :b])
        term_e = expert.terminated.astype(jnp.float32)
        if online:
            v_value, v_next_value = v_now, v_next
            t_value = jnp.concatenate([expert.terminated, policy.terminated]).astype(jnp.float32)
        elif config.mode == "value_expert":
            v_value, v_next_value, t_value = v_now, v_next, term_e
        else:  # v0
            v_value = (1.0 - gamma) * v_now[b:]
            v_next_value, t_value = jnp.zeros_like(v_value), jnp.ones_like(v_value)
        loss, aux = iq_chi2_loss(q_e, v_next[:b], term_e, v_value, v_next_value, t_value,
                                 alpha=alpha, gamma=gamma, chi2_coef=config.chi2_coef)
        total = loss + config.l2 * l2_penalty(params) if config.l2 > 0 else loss
        aux["loss"] = loss
        # the mixer's weight of each agent on expert states (its inverse temperature)
        aux["mixer_weight"] = jnp.mean(critic.local(params, expert.obs, q_now[:, :b])[0],
                                       axis=1)
        return total, aux

    def init(key: jax.Array, example: Batch) -> IQState:
        key_net, key_mix = jax.random.split(key)
        params = {
            "critics": init_stacked(critic.net, key_net, num_agents,
                                    jnp.zeros(critic.view_shape, jnp.float32)),
            "mixer": critic.mixer.init(key_mix, state_dim),
        }
        state = IQState(params=params, target_params=params, opt_state=tx.init(params),
                        step=jnp.int32(0))
        if online:  # the env key is folded from the init key: the offline streams stay
            state = state.replace(**online_init(
                env, jax.random.fold_in(key, 1), num_agents=num_agents,
                obs_shape=tuple(obs_shape), num_envs=config.num_envs,
                buffer_size=config.buffer_size, host=host))
        return state

    def act(state: IQState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Decentralised Boltzmann actions ``(env, agent)`` for observations ``(env, agent,
        *obs_shape)``: agent ``i`` at ``alpha`` on ``w_i(s) Q_i(s, .)``."""
        q = critic.q_values(state.params, jnp.swapaxes(obs, 0, 1))  # (agent, env, action)
        return sample_actions(key, q, alpha).T

    def store(state: IQState, items: Transition) -> IQState:
        """Add transitions (env first: ``obs (env, agent, *obs_shape)``) to the replay."""
        return state.replace(buffer=buffer_add(state.buffer, items))

    def update(state: IQState, batch: Batch, key: jax.Array):
        policy = None  # offline: deterministic given the batch
        if online:
            key_env, key_sample = jax.random.split(key)
            if not host:
                state = act_and_store(env, state, act, key_env)
            policy = sample_policy_batch(state.buffer, key_sample, config.batch_size)
        grads, aux = jax.grad(loss_fn, has_aux=True)(state.params, state.target_params, batch,
                                                     policy)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return apply_iq_updates(state, updates, opt_state, config.target_tau), aux

    needs = Needs(expert_batch=config.batch_size, init_obs=config.mode == "v0",
                  num_envs=config.num_envs if online else 0, raw_obs=True)
    return Algo(name="fiq", init=init, update=update, q_values=critic.q_values, alpha=alpha,
                gamma=gamma, config=config, needs=needs, act=act if host else None,
                store=store if host else None)


__all__ = ["FIQConfig", "FIQState", "FactorizedCritic", "make_factorized_critic", "make_fiq"]
