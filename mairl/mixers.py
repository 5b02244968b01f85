"""Monotone mixers of per-agent soft-Q values for cooperative games, and the joint
soft value each one implies.

A mixer combines the agents' utilities ``Q_i(s, a_i)`` into a team value
``Q_tot(s, a) = M_s(Q_1(s, a_1), ..., Q_N(s, a_N))`` that is monotone in every
``Q_i`` (``dQ_tot / dQ_i >= 0``), conditioned on a global state ``s``:

- ``vdn`` (Sunehag et al. 2018): ``Q_tot = sum_i Q_i``; no parameters.
- ``linear``: ``Q_tot = sum_i w_i(s) Q_i + b(s)``, ``w_i(s) = softplus(f(s)_i +
  softplus^-1(1)) > 0`` and ``b(s)`` read off small networks of the state (``w``
  starts near 1, i.e. near VDN).
- ``qmix`` (Rashid et al. 2018): ``Q_tot = w_2(s) . elu(W_1(s)^T q + b_1(s)) +
  b_2(s)`` with ``W_1 (N, E)`` and ``w_2 (E,)`` the absolute values of
  hypernetwork outputs (so non-negative), ``b_1`` a linear function of the state
  and ``b_2`` a two-layer network of it.

**The global state.** Every mixer conditions on ``global_state(obs)``: the
concatenation of all agents' raw observations ``obs (agent, ..., *obs_shape)``,
flattened, ``(..., agent * prod(obs_shape))``. The environment protocol gives
each agent its observation and no separate state; the concatenation holds
everything any agent sees, and in fully observed games (every row the global
state) it is that state repeated ``N`` times, which a network reads as well as
one copy. The per-agent critics may read an agent view instead
(``obs_transform``); the mixer always reads the raw observations.

**The joint soft value.** With ``pi(a|s) ∝ exp(Q_tot(s, a) / alpha)`` over joint
actions, ``V_tot(s) = alpha log sum_a exp(Q_tot(s, a) / alpha)``. For an affine
mixer ``Q_tot = sum_i w_i Q_i(a_i) + b`` the exponential factorizes over agents,

    sum_a exp(Q_tot / alpha) = exp(b / alpha) prod_i sum_{a_i} exp(w_i Q_i(a_i) / alpha),

so ``V_tot = b + sum_i alpha logsumexp(w_i Q_i / alpha)`` exactly, and the joint
Boltzmann policy is the product of per-agent Boltzmann policies
``pi_i(a_i|s) ∝ exp(w_i Q_i(s, a_i) / alpha)``: agent ``i`` acts at temperature
``alpha / w_i(s)`` in its own ``Q_i``, i.e. at ``alpha`` in ``w_i(s) Q_i``. VDN
is the case ``w = 1, b = 0``. A nonlinear monotone mixer (QMIX) couples the
agents inside the sum, and the joint log-sum-exp no longer factorizes (its exact
value needs all ``prod_i A_i`` joint actions). :func:`local_affine` then uses
the mixer's tangent plane at a point ``q_bar``:

    Q_tot(a) ≈ M(q_bar) + sum_i w_i (Q_i(a_i) - q_bar_i),   w = grad_q M(q_bar) >= 0,

and the exact soft value of that affine model, ``V_lin = c + sum_i alpha
logsumexp(w_i Q_i / alpha)`` with ``c = M(q_bar) - w . q_bar``. ``q_bar_i`` is
agent ``i``'s expected utility under its Boltzmann policy at ``alpha``,
``sum_a softmax(Q_i / alpha)_a Q_i(a)``. The QMIX mixer is convex in ``q`` (non-negative
combinations of ``elu``, which is convex, of non-negative combinations of ``q``),
so it lies above its tangent plane everywhere and ``V_lin <= V_tot``: the
approximation is a lower bound, exact where ``M`` is affine over the region the
policies cover (for affine mixers :func:`local_affine` returns their own ``w, b``
at any point). ``tests/mairl/test_mixers.py`` measures the gap by enumerating
joint actions.

A learner that uses the tangent plane's value must read ``Q_tot(s, a)`` off the
same plane (``c + sum_i w_i Q_i(a_i)``), not off the mixer: with the mixer's own
``Q_tot`` beside the lower-bound value, ``V - Q_tot(a)`` is no longer ``-alpha
log pi(a|s) >= 0`` and an IQ-Learn objective can be driven down without bound
by the mixer's curvature (``mairl.algos.factorized`` does so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mairl.networks import network_input

MIXERS = ("vdn", "linear", "qmix")

#: ``softplus^-1(1)``: a linear mixer whose weight network outputs 0 has ``w_i = 1``.
_SOFTPLUS_INV_ONE = float(np.log(np.expm1(1.0)))


def global_state(obs: jax.Array, obs_ndim: int) -> jax.Array:
    """The state a mixer conditions on: ``obs (agent, ..., *obs_shape)`` (``obs_ndim``
    trailing observation axes) to ``(..., agent * prod(obs_shape))``, every agent's
    observation flattened and concatenated in agent order."""
    if obs.ndim < obs_ndim + 1:
        raise ValueError(f"global_state: obs needs an agent axis and {obs_ndim} observation "
                         f"axes, got shape {obs.shape}")
    lead = obs.shape[1: obs.ndim - obs_ndim]
    flat = network_input(obs.reshape(obs.shape[0], *lead, -1))
    return jnp.moveaxis(flat, 0, -2).reshape(*lead, -1)


class _StateNet(nn.Module):
    """``state (..., D) -> (..., outputs)``: ReLU layers of ``hidden`` widths, then linear."""

    hidden: Sequence[int]
    outputs: int

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        x = state
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.outputs)(x)


class VDNMixer(nn.Module):
    """``Q_tot = sum_i Q_i`` (value decomposition networks); no parameters."""

    num_agents: int

    def affine(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``w (..., N) = 1`` and ``b (...) = 0``."""
        lead = state.shape[:-1]
        return jnp.ones((*lead, self.num_agents)), jnp.zeros(lead)

    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        """``q (..., N)`` (one utility per agent), ``state (..., D)`` -> ``Q_tot (...)``."""
        return jnp.sum(q, axis=-1)


class LinearMixer(nn.Module):
    """``Q_tot = sum_i w_i(s) Q_i + b(s)`` with ``w_i(s) > 0`` (softplus).

    Attributes:
        num_agents: ``N``.
        hidden: hidden widths of the weight and bias networks of the state.
    """

    num_agents: int
    hidden: Sequence[int] = (64,)

    def setup(self):
        self.weight_net = _StateNet(tuple(self.hidden), self.num_agents)
        self.bias_net = _StateNet(tuple(self.hidden), 1)

    def affine(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``w (..., N) > 0`` and ``b (...)`` of the state."""
        w = jax.nn.softplus(self.weight_net(state) + _SOFTPLUS_INV_ONE)
        return w, self.bias_net(state)[..., 0]

    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        """``q (..., N)``, ``state (..., D)`` -> ``Q_tot (...)``."""
        w, b = self.affine(state)
        return jnp.sum(w * q, axis=-1) + b


class QMixMixer(nn.Module):
    """QMIX's monotone two-layer mixer with hypernetwork weights (Rashid et al. 2018).

    ``Q_tot = w_2(s) . elu(q W_1(s) + b_1(s)) + b_2(s)``; ``W_1 = |h_1(s)|`` ``(N, E)``
    and ``w_2 = |h_2(s)|`` ``(E,)`` come from hypernetworks of the state (one
    hidden ReLU layer of ``hyper_hidden`` each; none when 0), ``b_1`` is linear in
    the state and ``b_2`` a network with one hidden layer of ``embed`` units.

    Attributes:
        num_agents: ``N``.
        embed: ``E``, the width of the mixing layer.
        hyper_hidden: hidden width of the weight hypernetworks (0: linear ones).
    """

    num_agents: int
    embed: int = 32
    hyper_hidden: int = 64

    def setup(self):
        hidden = (self.hyper_hidden,) if self.hyper_hidden else ()
        self.hyper_w1 = _StateNet(hidden, self.num_agents * self.embed)
        self.hyper_b1 = nn.Dense(self.embed)
        self.hyper_w2 = _StateNet(hidden, self.embed)
        self.hyper_b2 = _StateNet((self.embed,), 1)

    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        """``q (..., N)``, ``state (..., D)`` -> ``Q_tot (...)``."""
        lead = state.shape[:-1]
        w1 = jnp.abs(self.hyper_w1(state)).reshape(*lead, self.num_agents, self.embed)
        hidden = jax.nn.elu(jnp.einsum("...n,...ne->...e", q, w1) + self.hyper_b1(state))
        w2 = jnp.abs(self.hyper_w2(state))
        return jnp.sum(w2 * hidden, axis=-1) + self.hyper_b2(state)[..., 0]


class Mixer(NamedTuple):
    """A mixer as pure functions of its parameters.

    Attributes:
        name: ``vdn``, ``linear`` or ``qmix``.
        exact: whether :attr:`local_affine` is the mixer itself (an affine mixer:
            the joint soft value it gives is exact) or a tangent-plane approximation.
        init: ``init(key, state_dim) -> params``.
        apply: ``apply(params, q (..., N), state (..., D)) -> Q_tot (...)``.
        local_affine: ``local_affine(params, q (..., N, A), state (..., D), alpha)
            -> (w (..., N), c (...))``: the affine model ``Q_tot ≈ sum_i w_i Q_i + c``
            whose joint soft value and product Boltzmann policy are used (module
            docstring).
    """

    name: str
    exact: bool
    init: Callable[[jax.Array, int], Any]
    apply: Callable[[Any, jax.Array, jax.Array], jax.Array]
    local_affine: Callable[[Any, jax.Array, jax.Array, float], tuple[jax.Array, jax.Array]]


def boltzmann_mean(q: jax.Array, alpha: float) -> jax.Array:
    """``sum_a softmax(q / alpha)_a q_a`` over the last axis: the expected utility under
    the Boltzmann policy at ``alpha``."""
    return jnp.sum(jax.nn.softmax(q / alpha, axis=-1) * q, axis=-1)


def make_mixer(name: str, num_agents: int, *, hidden: Sequence[int] = (64,),
               embed: int = 32) -> Mixer:
    """The mixer ``name`` (``vdn``, ``linear``, ``qmix``) over ``num_agents`` agents.

    ``hidden``: the state networks' hidden widths (``linear``: those of ``w`` and
    ``b``; ``qmix``: the first is the hypernetworks' hidden width, none if empty);
    ``embed``: QMIX's mixing width.
    """
    if num_agents < 1:
        raise ValueError(f"make_mixer: num_agents: expected >= 1, got {num_agents}")
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"make_mixer: hidden: expected positive widths, got {hidden}")
    if name == "vdn":
        module: nn.Module = VDNMixer(num_agents)
    elif name == "linear":
        module = LinearMixer(num_agents, hidden=hidden)
    elif name == "qmix":
        if embed < 1:
            raise ValueError(f"make_mixer: embed: expected >= 1, got {embed}")
        module = QMixMixer(num_agents, embed=embed, hyper_hidden=hidden[0] if hidden else 0)
    else:
        raise ValueError(f"unknown mixer {name!r}; expected one of {MIXERS}")
    exact = name != "qmix"

    def init(key: jax.Array, state_dim: int) -> Any:
        q = jnp.zeros((num_agents,), jnp.float32)
        return module.init(key, q, jnp.zeros((state_dim,), jnp.float32))

    def apply(params: Any, q: jax.Array, state: jax.Array) -> jax.Array:
        return module.apply(params, q, state)

    def local_affine(params: Any, q: jax.Array, state: jax.Array, alpha: float):
        if exact:
            return module.apply(params, state, method="affine")
        q_bar = boltzmann_mean(q, alpha)  # (..., N)
        m, vjp = jax.vjp(lambda x: apply(params, x, state), q_bar)
        (w,) = vjp(jnp.ones_like(m))  # each output reads its own row: per-row gradients
        return w, m - jnp.sum(w * q_bar, axis=-1)

    return Mixer(name=name, exact=exact, init=init, apply=apply, local_affine=local_affine)


def affine_soft_value(q: jax.Array, w: jax.Array, c: jax.Array, alpha: float) -> jax.Array:
    """``V_tot = c + sum_i alpha logsumexp(w_i Q_i / alpha)``: the joint soft value of
    ``Q_tot = sum_i w_i Q_i + c``; ``q (..., N, A)``, ``w (..., N)``, ``c (...)``."""
    v_i = alpha * jax.nn.logsumexp(w[..., None] * q / alpha, axis=-1)
    return c + jnp.sum(v_i, axis=-1)


def mixed_soft_value(mixer: Mixer, params: Any, q: jax.Array, state: jax.Array,
                     alpha: float) -> jax.Array:
    """The mixer's joint soft value ``V_tot (...)`` for ``q (..., N, A)``: exact for
    affine mixers, the tangent-plane lower bound for QMIX (module docstring)."""
    w, c = mixer.local_affine(params, q, state, alpha)
    return affine_soft_value(q, w, c, alpha)


def enumerated_soft_value(mixer: Mixer, params: Any, q: jax.Array, state: jax.Array,
                          alpha: float) -> jax.Array:
    """``alpha logsumexp_a Q_tot(s, a) / alpha`` over every joint action, enumerated:
    ``q (N, A)``, ``state (D,)`` for one state. For checks on small games (``A^N``
    mixer calls)."""
    n, a = q.shape
    joint = np.stack(np.unravel_index(np.arange(a**n), (a,) * n), axis=-1)  # (A^N, N)
    q_joint = q[jnp.arange(n)[None, :], joint]  # (A^N, N)
    q_tot = mixer.apply(params, q_joint, jnp.broadcast_to(state, (a**n, state.shape[-1])))
    return alpha * jax.nn.logsumexp(q_tot / alpha)


__all__ = ["MIXERS", "LinearMixer", "Mixer", "QMixMixer", "VDNMixer", "affine_soft_value",
           "boltzmann_mean", "enumerated_soft_value", "global_state", "make_mixer",
           "mixed_soft_value"]
