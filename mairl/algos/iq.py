"""Inverse soft-Q learning (IQ-Learn) for several agents: the shared core of MAMQL
and of the joint-action IQ-Learn baseline.

Garg et al. 2021, "IQ-Learn: Inverse soft-Q Learning for Imitation", with the
chi-squared regularizer; Haynam et al. 2025, "Multi-Agent Marginal Q-Learning
from Demonstrations" (MAMQL) for the marginal critics. For every agent ``i`` the
critic is trained on

    L_i = E_value[V_i(s) - gamma (1 - term) V_i(s')]
          - E_expert[phi(Q_i(s, a^E) - gamma (1 - term) V_i(s'))],
    phi(x) = x - c x^2 / (4 alpha),

with ``V_i(s) = alpha logsumexp(Q_i(s, .) / alpha)``. The value expectation is
over the agents' own rollouts and the expert data (``online``), the expert data
(``value_expert``), or ``(1 - gamma) E[V_i(s_0)]`` over initial states (``v0``).

Two heads share this code:

- ``marginal`` (MAMQL): ``Q_i(s, a_i)``, the other agents marginalized under
  their policies by the data itself;
- ``joint`` (the "IQL MA" baseline): ``Q_i(s, a_1, ..., a_N)`` over joint actions;
  its marginal ``Q~_i(s, a_i) = alpha log sum_{a_-i} exp(Q_i(s, a) / alpha)``
  gives agent ``i``'s Boltzmann policy (the marginal of its joint Boltzmann
  distribution) and has the same soft value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mairl.algos.base import Algo, Batch, Needs, Transition
from mairl.algos.common import (
    ObsTransform,
    act_and_store,
    check_config,
    chi2_phi,
    l2_penalty,
    make_optimizer,
    make_stacked_critic,
    online_init,
    polyak,
    sample_actions,
    sample_policy_batch,
    soft_value,
)
from mairl.buffers import ReplayBuffer, buffer_add
from mairl.sharding import mean_over

Mode = Literal["online", "value_expert", "v0"]
MODES = ("online", "value_expert", "v0")


@dataclass(frozen=True)
class IQConfig:
    """Configuration of MAMQL and of joint-action IQ-Learn.

    Attributes:
        mode: ``online`` (value term on the agents' own rollouts and expert data),
            ``value_expert`` or ``v0`` (offline).
        alpha: Boltzmann temperature.
        gamma: discount.
        learning_rate: Adam step size.
        batch_size: expert transitions per update (and policy transitions online).
        chi2_coef: ``c`` in ``phi(x) = x - c x^2 / (4 alpha)``; 0 gives the plain
            (unregularized) IQ objective.
        l2: weight of the squared-parameter penalty.
        target_tau: Polyak rate of a target critic used for ``V(s')``; ``None``
            uses the online critic.
        critic: network preset (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` critic.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
        num_envs: online only: environments stepped once per update.
        buffer_size: online only: replay capacity (transitions).
        dropout: training-time dropout rate of the critic (the presets of
            ``mairl.networks.DROPOUT_CRITICS``; ``gems-paper``: after each
            convolution); 0 for none. Only the online critic's forward passes
            in the loss are stochastic; acting, evaluation and the target
            critic are deterministic.
    """

    modes: ClassVar[tuple[str, ...]] = MODES

    mode: Mode = "online"
    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    batch_size: int = 256
    chi2_coef: float = 1.0
    l2: float = 0.0
    target_tau: float | None = None
    critic: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    max_grad_norm: float | None = 10.0
    num_envs: int = 8
    buffer_size: int = 100_000
    dropout: float = 0.0

    def __post_init__(self):
        check_config(self, [("mode", self.mode in self.modes, f"one of {self.modes}")])


@struct.dataclass
class IQState:
    """Learner state. Parameters and optimizer states are stacked on the agent axis.

    Online runs also carry the environments (``env_state``, ``env_obs (env, agent,
    *obs_shape)``) and the replay buffer of the agents' own transitions.
    """

    params: Any
    target_params: Any
    opt_state: Any
    step: jax.Array
    env_state: Any = None
    env_obs: Any = None
    buffer: ReplayBuffer | None = None


def apply_iq_updates(state: IQState, updates: Any, opt_state: Any,
                     target_tau: float | None) -> IQState:
    """``state`` after one optimizer step: ``params + updates``, the new optimizer
    state, the target critic moved toward the new parameters at Polyak rate
    ``target_tau`` (kept as it is when ``None``), the step count plus one."""
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    target = state.target_params
    if target_tau is not None:
        target = polyak(target, params, target_tau)
    return state.replace(params=params, target_params=target, opt_state=opt_state,
                         step=state.step + 1)


def iq_chi2_loss(
    q_expert: jax.Array,
    v_next_expert: jax.Array,
    terminated_expert: jax.Array,
    v_value: jax.Array,
    v_next_value: jax.Array,
    terminated_value: jax.Array,
    *,
    alpha: float,
    gamma: float,
    chi2_coef: float,
) -> tuple[jax.Array, dict]:
    """The IQ-Learn objective for one agent (module docstring), on precomputed values.

    ``q_expert (B,)``: ``Q(s, a^E)``; ``v_next_expert (B,)``: ``V(s')``;
    ``v_value, v_next_value (B',)``: ``V`` on the value samples and their
    successors (for ``v0`` pass ``(1 - gamma) V(s_0)`` and zeros).
    """
    y = q_expert - gamma * (1.0 - terminated_expert) * v_next_expert
    expert_term = jnp.mean(chi2_phi(y, alpha, chi2_coef))
    value_term = jnp.mean(v_value - gamma * (1.0 - terminated_value) * v_next_value)
    loss = value_term - expert_term
    return loss, {"expert_term": expert_term, "value_term": value_term,
                  "expert_reward": jnp.mean(y)}


def joint_index(actions: jax.Array, num_actions: int) -> jax.Array:
    """Index of the joint action ``(a_1, ..., a_N)`` in ``A^N``: ``actions (agent, ...)``."""
    n = actions.shape[0]
    weights = num_actions ** jnp.arange(n - 1, -1, -1)
    return jnp.tensordot(weights, actions.astype(jnp.int32), axes=1)


def joint_marginal_masks(num_agents: int, num_actions: int) -> np.ndarray:
    """``masks (agent, action, joint)``: whether joint action ``j`` has ``a_i = k``."""
    digits = np.stack(
        np.unravel_index(np.arange(num_actions**num_agents), (num_actions,) * num_agents)
    )  # (agent, joint)
    return digits[:, None, :] == np.arange(num_actions)[None, :, None]


def make_iq(
    config: IQConfig,
    *,
    num_agents: int,
    obs_shape: tuple[int, ...],
    num_actions: int,
    head: Literal["marginal", "joint"] = "marginal",
    env: Any = None,
    name: str = "mamql",
    obs_transform: ObsTransform | None = None,
    data_axis: str | None = None,
) -> Algo:
    """Build the learner. ``env`` (a jittable mairl env) is required for ``online``;
    ``obs_transform(obs, agent)`` gives each agent's view of its observation to
    its critic (e.g. ``Gems.agent_view``).

    ``data_axis``: a data-parallel update inside ``jax.shard_map`` over that mesh
    axis (``mairl.sharding``): the expert batch it receives is the device's slice
    (``make_train(..., data_axis=...)`` cuts it), the policy samples drawn from
    the replay are cut the same way, and the gradients and metrics are averaged
    over the axis with ``jax.lax.pmean`` before the optimizer step.

    ``alpha``, ``learning_rate``, ``chi2_coef`` and ``l2`` may be traced scalars
    (``mairl.sweep`` vmaps a run over a grid of them); every other field is static.
    """
    if config.mode == "online" and env is None:
        raise ValueError(f"{name}: mode 'online' needs an environment (env=...)")
    # host-side envs (PettingZoo, highway-env) are stepped by a host loop
    # (``mairl.train.train_host``) through ``algo.act`` and ``algo.store``
    host = config.mode == "online" and not getattr(env, "jittable", True)
    outputs = num_actions if head == "marginal" else num_actions**num_agents
    critic = make_stacked_critic(config, outputs, obs_shape, obs_transform)
    raw = critic.apply
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)
    alpha, gamma = config.alpha, config.gamma
    masks = jnp.asarray(joint_marginal_masks(num_agents, num_actions)) if head == "joint" else None
    agent_ids = jnp.arange(num_agents)

    def marginal_q(out, agent):  # one agent: (..., outputs) -> (..., num_actions)
        if head == "marginal":
            return out
        logits = jnp.where(masks[agent], out[..., None, :] / alpha, -jnp.inf)
        return alpha * jax.nn.logsumexp(logits, axis=-1)

    def q_values(params, obs):
        return jax.vmap(marginal_q)(raw(params, obs), agent_ids)

    def taken(out, actions, agent):  # one agent's critic output at the action taken
        if head == "marginal":
            idx = actions[agent]
        else:
            idx = joint_index(actions, num_actions)
        return jnp.take_along_axis(out, idx[:, None], axis=-1)[:, 0]

    def loss_fn(params, target_params, batch: Batch, policy: Transition | None, key=None):
        expert = batch.expert
        b = expert.actions.shape[1]
        obs_now, obs_next = expert.obs, expert.next_obs
        if config.mode == "online":
            obs_now = jnp.concatenate([expert.obs, policy.obs], axis=1)
            obs_next = jnp.concatenate([expert.next_obs, policy.next_obs], axis=1)
            term_value = jnp.concatenate([expert.terminated, policy.terminated])
        elif config.mode == "v0":
            obs_now = jnp.concatenate([expert.obs, batch.init_obs], axis=1)
        if config.target_tau is None:
            # One critic call on now and next together: a matmul twice as tall
            # runs closer to the machine's peak than two calls.
            out = raw(params, jnp.concatenate([obs_now, obs_next], axis=1), key)
            out_now, out_next = out[:, : obs_now.shape[1]], out[:, obs_now.shape[1]:]
        else:
            out_now = raw(params, obs_now, key)
            out_next = raw(target_params, obs_next)
        term_e = expert.terminated.astype(jnp.float32)

        def agent_loss(out_now, out_next, agent):
            v_now = soft_value(out_now, alpha)
            v_next = soft_value(out_next, alpha)
            q_e = taken(out_now[:b], expert.actions, agent)
            if config.mode == "online":
                v_value, v_next_value = v_now, v_next
                t_value = term_value.astype(jnp.float32)
            elif config.mode == "value_expert":
                v_value, v_next_value, t_value = v_now, v_next, term_e
            else:  # v0
                v_value = (1.0 - gamma) * v_now[b:]
                v_next_value, t_value = jnp.zeros_like(v_value), jnp.ones_like(v_value)
            return iq_chi2_loss(
                q_e, v_next[:b], term_e, v_value, v_next_value, t_value,
                alpha=alpha, gamma=gamma, chi2_coef=config.chi2_coef,
            )

        losses, aux = jax.vmap(agent_loss)(out_now, out_next, agent_ids)
        total = jnp.sum(losses)
        if isinstance(config.l2, jax.Array) or config.l2 > 0:  # traced in a grid
            total = total + config.l2 * l2_penalty(params)
        aux["loss"] = losses
        return total, aux

    def gradient_step(state: IQState, batch: Batch, policy: Transition | None, key=None):
        grads, aux = jax.grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch, policy, key
        )
        grads, aux = mean_over((grads, aux), data_axis)
        updates, opt_state = jax.vmap(tx.update)(grads, state.opt_state, state.params)
        return apply_iq_updates(state, updates, opt_state, config.target_tau), aux

    def init(key: jax.Array, example: Batch) -> IQState:
        key_net, key_env = jax.random.split(key)
        params = critic.init(key_net, num_agents)
        state = IQState(params=params, target_params=params,
                        opt_state=jax.vmap(tx.init)(params), step=jnp.int32(0))
        if config.mode == "online":
            state = state.replace(**online_init(
                env, key_env, num_agents=num_agents, obs_shape=obs_shape,
                num_envs=config.num_envs, buffer_size=config.buffer_size, host=host))
        return state

    def act(state: IQState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Boltzmann actions ``(env, agent)`` for observations ``(env, agent, *obs_shape)``."""
        q = q_values(state.params, jnp.swapaxes(obs, 0, 1))  # (agent, env, action)
        return sample_actions(key, q, alpha).T

    def store(state: IQState, items: Transition) -> IQState:
        """Add transitions (env first: ``obs (env, agent, *obs_shape)``) to the replay."""
        return state.replace(buffer=buffer_add(state.buffer, items))

    def update(state: IQState, batch: Batch, key: jax.Array):
        policy = key_dropout = None
        if config.dropout > 0:  # only then: without dropout the key streams stay as they were
            key, key_dropout = jax.random.split(key)
            if data_axis is not None:  # other masks on every device's slice of the batch
                key_dropout = jax.random.fold_in(key_dropout, jax.lax.axis_index(data_axis))
        if config.mode == "online":
            key_env, key_sample = jax.random.split(key)
            if not host:
                state = act_and_store(env, state, act, key_env)
            policy = sample_policy_batch(state.buffer, key_sample, config.batch_size, data_axis)
        return gradient_step(state, batch, policy, key_dropout)

    needs = Needs(expert_batch=config.batch_size, init_obs=config.mode == "v0",
                  num_envs=config.num_envs if config.mode == "online" else 0)
    return Algo(name=name, init=init, update=update, q_values=q_values, alpha=alpha,
                gamma=gamma, config=config, needs=needs, act=act if host else None,
                store=store if host else None)
