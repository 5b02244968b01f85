"""Behaviour cloning for continuous actions: maximum likelihood of tanh-Gaussian actors.

Each agent ``i`` has an actor ``pi_i(a_i|s)``: ``a_i = tanh(u)``,
``u ~ N(mu_i(s), diag sigma_i(s)^2)`` (``mairl.networks.MLPGaussianActor``). The
loss is the mean negative log-likelihood of the demonstrated actions,

    L_i = -E_expert[log pi_i(a^E|s)],
    log pi(a|s) = log N(atanh(a); mu, sigma) - sum_d log(1 - a_d^2),

with ``a`` clipped to ``[-1 + eps, 1 - eps]``, ``eps = ACTION_EPS = 1e-4``
(``mairl.algos.common``), before the ``atanh``: a demonstrated action on the
bound of the box would have density 0 or infinity. The log-det term does not
depend on the parameters, so it changes the reported likelihood, not the
gradient: the fit is Gaussian maximum likelihood on ``u = atanh(a)``, whose
optimum is ``mu(s) = E[atanh(a)|s]`` and ``sigma(s)^2`` its variance.

Behaviour cloning learns no critic and no reward (``algo.critic`` is ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs, no_q_table
from mairl.algos.common import (
    ObsTransform,
    actor_checks,
    check_config,
    l2_penalty,
    make_optimizer,
    stacked_optimizer_step,
    stacked_views,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
    view_shape,
)
from mairl.networks import MLPGaussianActor


@dataclass(frozen=True)
class BCContinuousConfig:
    """Configuration of continuous behaviour cloning.

    Attributes:
        alpha: unused by the loss; the temperature recorded with the learner
            (``algo.alpha``), kept for a like-for-like record beside MAMQL.
        gamma: unused by the loss; recorded as ``algo.gamma``.
        learning_rate: Adam step size.
        batch_size: expert transitions per update.
        l2: weight of the squared-parameter penalty.
        hidden: hidden widths of the actors (MLPs).
        log_std_min, log_std_max: bounds of the actors' pre-squash log-std.
        max_grad_norm: per-agent gradient clipping; ``None`` for none.
    """

    name: ClassVar[str] = "bc-continuous"

    alpha: float = 0.1
    gamma: float = 0.99
    learning_rate: float = 3e-4
    batch_size: int = 256
    l2: float = 0.0
    hidden: tuple[int, ...] = (256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    max_grad_norm: float | None = 10.0

    def __post_init__(self):
        check_config(self, actor_checks(self))


@struct.dataclass
class BCContinuousState:
    """``params = {"actor": ...}`` and its optimizer state, agent axis first."""

    params: Any
    opt_state: Any
    step: jax.Array


def bc_continuous_loss(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """Mean negative log-likelihood of ``actions (B, dim)`` under the tanh Gaussians
    ``(mean, log_std) (B, dim)`` (module docstring)."""
    return -jnp.mean(tanh_gaussian_log_prob(actions, mean, log_std))


def make_bc_continuous(config: BCContinuousConfig, *, num_agents: int,
                       obs_shape: tuple[int, ...], action_dim: int, env: Any = None,
                       obs_transform: ObsTransform | None = None, **_: Any) -> Algo:
    """Build the learner; ``obs_transform(obs, agent)``: each agent's view."""
    if action_dim < 1:
        raise ValueError(f"bc-continuous: action_dim: expected >= 1, got {action_dim}")
    shape = view_shape(obs_shape, obs_transform)
    ndim = len(obs_shape)
    net = MLPGaussianActor(action_dim, hidden=tuple(config.hidden), obs_ndim=len(shape),
                           log_std_min=config.log_std_min, log_std_max=config.log_std_max)
    tx = make_optimizer(config.learning_rate, config.max_grad_norm)

    def head(params, obs):
        if obs_transform is not None:
            obs = stacked_views(obs, obs_transform, ndim)
        return jax.vmap(net.apply)(params["actor"], obs)

    def log_prob(params, obs, actions):
        return tanh_gaussian_log_prob(actions, *head(params, obs))

    def policy(params, obs, key, greedy=False):
        return tanh_gaussian_sample(key, *head(params, obs), greedy)[0]

    def loss_fn(params, batch: Batch):
        mean, log_std = head(params, batch.expert.obs)
        losses = jax.vmap(bc_continuous_loss)(mean, log_std, batch.expert.actions)
        total = jnp.sum(losses)
        if config.l2 > 0:
            total = total + config.l2 * l2_penalty(params)
        return total, {"loss": losses}

    def init(key: jax.Array, example: Batch) -> BCContinuousState:
        obs = jnp.zeros(shape, jnp.float32)
        params = {"actor": jax.vmap(net.init, in_axes=(0, None))(
            jax.random.split(key, num_agents), obs)}
        return BCContinuousState(params, jax.vmap(tx.init)(params), jnp.int32(0))

    def update(state: BCContinuousState, batch: Batch, key: jax.Array):
        grads, aux = jax.grad(loss_fn, has_aux=True)(state.params, batch)
        params, opt_state = stacked_optimizer_step(tx, grads, state.opt_state, state.params)
        return BCContinuousState(params, opt_state, state.step + 1), aux

    return Algo(name=config.name, init=init, update=update, q_values=no_q_table(config.name),
                alpha=config.alpha, gamma=config.gamma, config=config,
                needs=Needs(expert_batch=config.batch_size), policy=policy, log_prob=log_prob)


__all__ = ["BCContinuousConfig", "BCContinuousState", "bc_continuous_loss", "make_bc_continuous"]
