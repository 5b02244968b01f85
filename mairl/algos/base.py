"""What every algorithm exposes, and the batch layout it consumes.

An algorithm is a pair of pure functions plus read-outs of what it learned::

    state = algo.init(key, example_batch)
    state, metrics = algo.update(state, batch, key)     # jit-able, no host sync
    q = algo.q_values(state.params, obs)                # (agent, ..., action)

``q_values`` returns each agent's marginal soft-Q ``Q_i(s, a_i)`` (for behaviour
cloning: its logits times ``alpha``), so that every algorithm has the same
Boltzmann policy ``pi_i(a_i|s) ∝ exp(Q_i(s, a_i) / alpha)`` and the same
recovered reward ``r_i(s, a_i) = Q_i(s, a_i) - gamma * E[V_i(s')]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from mairl.data import Transition


class Batch(NamedTuple):
    """What one update consumes: expert transitions (``mairl.data.Transition``, agent
    axis first, true rewards left out) and, for ``v0``, initial observations.

    ``init_obs (agent, batch, *obs_shape)`` are first observations of
    demonstrated episodes (``None`` where unused).
    """

    expert: Transition
    init_obs: jax.Array | None = None


class Algo(NamedTuple):
    name: str
    init: Callable[[jax.Array, Batch], Any]
    update: Callable[[Any, Batch, jax.Array], tuple[Any, dict]]
    q_values: Callable[[Any, jax.Array], jax.Array]
    alpha: float
    gamma: float
    config: Any
    #: online learners on host-side envs: ``act(state, obs, key) -> actions (env,
    #: agent)`` and ``store(state, transitions) -> state``, called by the host loop
    #: of ``mairl.train.train_host``; ``None`` otherwise
    act: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None
    store: Callable[[Any, Any], Any] | None = None
