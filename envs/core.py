"""The environment protocol shared by every mairl game.

A functional, stateless environment in the style of gymnax and JaxMARL::

    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions)

Axes: ``obs (agent, *obs_shape)``, ``actions (agent,)`` int32 for discrete games
or ``(agent, action_dim)`` float32 for continuous ones, ``reward (agent,)``
float32, ``terminated`` / ``truncated`` scalar bool. Observations are float32
unless the game says otherwise in ``obs_dtype``: binary maps travel as uint8
(a quarter of the bytes in the environment, the replay buffer and
demonstration files), and the networks convert them to float32 at their input
(``mairl.networks.network_input``). Only ``terminated`` zeroes
the bootstrap. ``step`` auto-resets on episode end; the observation returned is
then the first one of the new episode and ``info["next_obs"]`` keeps the last
observation of the finished one (what a demonstration stores as ``next_obs``).
``reset_env`` / ``step_env`` hold the raw dynamics.

Subclasses set the static facts (``num_agents``, ``agents``, ``obs_shape``,
``obs_dtype``, ``action_spaces``, ``max_steps``) and implement ``reset_env`` and ``step_env``;
their state is a pytree with an int32 ``time`` field counting steps taken in
the episode, which the base class uses for truncation at ``max_steps``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.spaces import Box, Discrete, Space


@struct.dataclass
class EnvState:
    """Base state: steps taken in the current episode."""

    time: jax.Array


class Environment:
    """Base class of jittable mairl environments (see the module docstring)."""

    #: Registered name, set by ``envs.make``; ``None`` for envs built directly.
    env_id: str | None = None
    #: ``False`` for host-side adapters (NumPy in, NumPy out, no jit).
    jittable: bool = True

    num_agents: int
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    #: dtype of the observations ``reset`` and ``step`` return.
    obs_dtype: np.dtype = np.dtype(np.float32)
    action_spaces: tuple[Space, ...]
    max_steps: int

    # -- raw dynamics, implemented by each game -------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """The raw dynamics' reset: ``obs (N, *obs_shape)`` and the initial state, from ``key``."""
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: Any, actions: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict]:
        """One step without auto-reset: ``obs, state, reward, terminated, info``.

        Must increment ``state.time``.
        """
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------
    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Start an episode: ``obs (N, *obs_shape), state`` (the protocol's entry point)."""
        return self.reset_env(key)

    def step(self, key: jax.Array, state: Any, actions: jax.Array):
        """One step with truncation at ``max_steps`` and auto-reset."""
        key_step, key_reset = jax.random.split(key)
        obs_next, state_next, reward, terminated, info = self.step_env(
            key_step, state, actions
        )
        terminated = jnp.asarray(terminated, jnp.bool_)
        truncated = jnp.logical_and(state_next.time >= self.max_steps, ~terminated)
        done = terminated | truncated
        obs_reset, state_reset = self.reset_env(key_reset)
        state_out = jax.tree.map(
            lambda r, s: jnp.where(done, r, s), state_reset, state_next
        )
        obs_out = jnp.where(done, obs_reset, obs_next)
        info = dict(info)
        info["next_obs"] = obs_next
        return obs_out, state_out, reward.astype(jnp.float32), terminated, truncated, info

    # -- static facts ----------------------------------------------------------------
    @property
    def action_space(self) -> Space:
        """The common action space; raises where agents differ."""
        first = self.action_spaces[0]
        if any(sp != first for sp in self.action_spaces):
            raise ValueError(
                f"{self.name}: agents have different action spaces {self.action_spaces}"
            )
        return first

    @property
    def discrete(self) -> bool:
        """Whether every agent's action space is ``Discrete``."""
        return all(isinstance(sp, Discrete) for sp in self.action_spaces)

    @property
    def num_actions(self) -> int:
        """Number of actions per agent in a discrete game with a common action set."""
        space = self.action_space
        if not isinstance(space, Discrete):
            raise ValueError(f"{self.name}: num_actions needs discrete actions, got {space}")
        return space.n

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of ``actions``: ``(N,)`` for discrete games, ``(N, dim)`` else."""
        if self.discrete:
            return (self.num_agents,)
        space = self.action_space
        if isinstance(space, Box):
            return (self.num_agents, *space.shape)
        return (self.num_agents,)

    @property
    def action_dim(self) -> int:
        """Length of each agent's action vector in a continuous game with a common
        ``Box`` action space of shape ``(dim,)``."""
        space = self.action_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise ValueError(f"{self.name}: action_dim needs a common Box action space of one "
                             f"axis, got {space}")
        return int(space.shape[0])

    @property
    def name(self) -> str:
        """The registry id this game was made with, else its class name."""
        return self.env_id or type(self).__name__

    def sample_actions(self, key: jax.Array) -> jax.Array:
        """Uniformly random joint action, stacked on the agent axis."""
        keys = jax.random.split(key, self.num_agents)
        return jnp.stack([sp.sample(k) for sp, k in zip(self.action_spaces, keys, strict=True)])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, num_agents={self.num_agents}, "
            f"obs_shape={self.obs_shape}, obs_dtype={np.dtype(self.obs_dtype).name}, "
            f"action_spaces={self.action_spaces}, "
            f"max_steps={self.max_steps})"
        )
