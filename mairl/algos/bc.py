"""Behaviour cloning: per-agent cross-entropy on Boltzmann logits ``Q_i(s, .) / alpha``.

The network output plays the role of a soft-Q, so the policy and the "recovered
reward" ``Q_i(s, a_i) - gamma V_i(s')`` are read exactly as for MAMQL; behaviour
cloning identifies ``Q`` only up to a state-dependent offset, which is why its
reward is a weak baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs
from mairl.algos.common import (
    check_config,
    l2_penalty,
    log_policy,
    make_optimizer,
    make_stacked_critic,
    stacked_optimizer_step,
)


@dataclass(frozen=True)
class BCConfig:
    """Configuration of behaviour cloning.

    Attributes:
        alpha: temperature: the network's outputs divided by ``alpha`` are the
            policy's logits, so they read as a soft-Q at that temperature.
        gamma: discount of the recovered reward read from the outputs.
        learning_rate: Adam step size.
        batch_size: expert transitions per update.
        l2: weight of the squared-parameter penalty.
        critic: network preset (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` network.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
        dropout: training-time dropout rate of the network (the presets of
            ``mairl.networks.DROPOUT_CRITICS``); 0 for none. The policy read
            out (``q_values``) is deterministic.
    """

    name: ClassVar[str] = "bc"

    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    batch_size: int = 256
    l2: float = 0.0
    critic: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    max_grad_norm: float | None = 10.0
    dropout: float = 0.0

    def __post_init__(self):
        check_config(self)


@struct.dataclass
class BCState:
    params: object
    opt_state: object
    step: jax.Array


def bc_loss(q: jax.Array, actions: jax.Array, alpha: float) -> jax.Array:
    """Mean negative log-likelihood of ``actions (B,)`` under ``softmax(q (B, A) / alpha)``."""
    logp = log_policy(q, alpha)
    return -jnp.mean(jnp.take_along_axis(logp, actions[:, None], axis=-1))


def make_bc(config: BCConfig, *, num_agents: int, obs_shape: tuple[int, ...],
            num_actions: int, env=None, obs_transform=None) -> Algo:
    """Behaviour cloning: each agent's critic is trained as the logits of its policy.

    The loss is the per-agent cross-entropy of the expert's action, so the Boltzmann
    policy of the returned ``Algo`` is the maximum-likelihood fit to the demonstrations.
    """
    critic = make_stacked_critic(config, num_actions, obs_shape, obs_transform)
    q_values = critic.apply
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)

    def loss_fn(params, batch: Batch, key=None):
        q = q_values(params, batch.expert.obs, key)
        losses = jax.vmap(bc_loss, in_axes=(0, 0, None))(q, batch.expert.actions, config.alpha)
        total = jnp.sum(losses)
        if config.l2 > 0:
            total = total + config.l2 * l2_penalty(params)
        return total, {"loss": losses}

    def init(key, example: Batch) -> BCState:
        params = critic.init(key, num_agents)
        return BCState(params, jax.vmap(tx.init)(params), jnp.int32(0))

    def update(state: BCState, batch: Batch, key):
        key_dropout = key if config.dropout > 0 else None
        grads, aux = jax.grad(loss_fn, has_aux=True)(state.params, batch, key_dropout)
        params, opt_state = stacked_optimizer_step(tx, grads, state.opt_state, state.params)
        return BCState(params, opt_state, state.step + 1), aux

    return Algo(name="bc", init=init, update=update, q_values=q_values, alpha=config.alpha,
                gamma=config.gamma, config=config, needs=Needs(expert_batch=config.batch_size))
