"""Batches of demonstration transitions, agent axis first, and episode splits.

:class:`~mairl.data.Demonstrations` store time first, ``(T, N, ...)``. The
algorithms vmap over agents, so batches put the agent axis first::

    Transition.obs         (agent, batch, *obs_shape)
    Transition.actions     (agent, batch) int32 | (agent, batch, action_dim) float32
    Transition.next_obs    (agent, batch, *obs_shape)
    Transition.terminated  (batch,) bool      shared by all agents
    Transition.truncated   (batch,) bool
    Transition.rewards     (agent, batch) float32 or None (evaluation only)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mairl.data.demonstrations import Demonstrations


class Transition(NamedTuple):
    """An agent-major batch of transitions (axes in the module docstring).

    ``rewards`` is ``None`` unless asked for: true rewards serve evaluation
    only, and no IRL algorithm may learn from them.
    """

    obs: jax.Array  # (agent, batch, *obs_shape)
    actions: jax.Array  # (agent, batch) | (agent, batch, action_dim)
    next_obs: jax.Array  # (agent, batch, *obs_shape)
    terminated: jax.Array  # (batch,)
    truncated: jax.Array  # (batch,)
    rewards: jax.Array | None = None  # (agent, batch)


def _agent_first(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, 1, 0)


def gather_transitions(
    demos: Demonstrations, index: jax.Array, *, with_rewards: bool = False
) -> Transition:
    """Transitions ``index`` (``(batch,)`` ints into the time axis), agent-major.

    Jittable; ``with_rewards`` is static and needs ``demos.rewards``.
    """
    if with_rewards and demos.rewards is None:
        raise ValueError("with_rewards=True, but these demonstrations carry no rewards")

    def take(x):
        return jnp.take(x, index, axis=0)

    return Transition(
        obs=_agent_first(take(demos.obs)),
        actions=_agent_first(take(demos.actions)),
        next_obs=_agent_first(take(demos.next_obs)),
        terminated=take(demos.terminated),
        truncated=take(demos.truncated),
        rewards=_agent_first(take(demos.rewards)) if with_rewards else None,
    )


def to_agent_major(demos: Demonstrations, *, with_rewards: bool = False) -> Transition:
    """All ``T`` transitions as one agent-major batch, ``(N, T, ...)``, in stored order."""
    if with_rewards and demos.rewards is None:
        raise ValueError("with_rewards=True, but these demonstrations carry no rewards")
    return Transition(
        obs=_agent_first(demos.obs),
        actions=_agent_first(demos.actions),
        next_obs=_agent_first(demos.next_obs),
        terminated=demos.terminated,
        truncated=demos.truncated,
        rewards=_agent_first(demos.rewards) if with_rewards else None,
    )


@partial(jax.jit, static_argnames=("batch_size", "with_rewards"))
def sample_transitions(
    key: jax.Array, demos: Demonstrations, batch_size: int, *, with_rewards: bool = False
) -> Transition:
    """``batch_size`` transitions drawn uniformly with replacement, agent-major.

    Jitted, with ``demos`` a pytree argument: new data of the same shapes and
    metadata reuses the compiled function, and it inlines into a caller's jit.
    Returns ``Transition`` with ``obs (N, batch_size, *obs_shape)`` etc.
    """
    index = jax.random.randint(key, (batch_size,), 0, demos.obs.shape[0])
    return gather_transitions(demos, index, with_rewards=with_rewards)


def split_by_episode(
    demos: Demonstrations, holdout_fraction: float, key: jax.Array | None = None
) -> tuple[Demonstrations, Demonstrations]:
    """Split whole episodes into ``(train, heldout)``.

    ``round(holdout_fraction * E)`` episodes are held out, clipped so that each
    part keeps at least one. Without ``key`` the last episodes are held out;
    with ``key`` a uniformly random subset. Both parts keep the stored episode
    order and are renumbered ``0 .. E_part - 1``. Host-side.
    """
    fraction = float(holdout_fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split_by_episode: holdout_fraction must be in (0, 1), got {fraction}")
    num = demos.num_episodes
    if num < 2:
        raise ValueError(
            f"split_by_episode: need at least 2 episodes to split whole episodes into two "
            f"non-empty parts, got {num}"
        )
    num_held = int(min(max(round(fraction * num), 1), num - 1))
    if key is None:
        held = np.arange(num - num_held, num)
    else:
        held = np.sort(np.asarray(jax.random.permutation(key, num))[:num_held])
    train = np.setdiff1d(np.arange(num), held)
    return demos.select_episodes(train), demos.select_episodes(held)
