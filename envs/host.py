"""Host-side environments: the mairl protocol over stateful Python games.

Third-party games (PettingZoo, highway-env) keep their state inside a Python
object and step on the host. :class:`HostEnvironment` gives them the same
``reset`` / ``step`` signature as the JAX games, on NumPy arrays::

    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions)

with the agent axis first, separate ``terminated`` / ``truncated``, truncation at
``max_steps``, and auto-reset (``info["next_obs"]`` keeps the last observation of
a finished episode). ``jittable`` is ``False``: nothing here runs under ``jit``;
mairl's collection, evaluation and online training use a host loop around
jitted policies and updates.

The ``state`` is a small :class:`HostState` handle, not the game's state: the
game lives in the object, so only the latest state can be stepped (stepping an
older one raises). Randomness comes from the JAX keys: ``reset`` seeds the game
from its key, and every auto-reset inside ``step`` from the step key, so equal
keys replay equal episodes for games that are deterministic given their seed.

Subclasses set the static facts (``num_agents``, ``agents``, ``obs_shape``,
``action_spaces``, ``max_steps``) and implement :meth:`reset_host` and
:meth:`step_host`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from envs.core import Environment
from envs.spaces import Box, Discrete


@dataclass(frozen=True)
class HostState:
    """Handle of a host game's current step: episode steps taken and a serial."""

    time: int
    serial: int


def seed_from_key(key: jax.Array) -> int:
    """A 31-bit integer seed drawn from a JAX key (typed or raw ``uint32[2]``)."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


class HostEnvironment(Environment):
    """Base class of host-side (NumPy, not jittable) mairl environments."""

    jittable = False

    # -- implemented by each adapter ----------------------------------------------------
    def reset_host(self, seed: int) -> np.ndarray:
        """Start an episode from ``seed``; return ``obs (N, *obs_shape)``."""
        raise NotImplementedError

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        """One step: ``obs, reward (N,), terminated, truncated, info``.

        ``truncated`` is the game's own time limit (mairl adds ``max_steps``).
        """
        raise NotImplementedError

    # -- the mairl protocol ---------------------------------------------------------------
    _serial: int = 0

    def _new_state(self, time: int) -> HostState:
        self._serial = self._serial + 1
        return HostState(time=time, serial=self._serial)

    def reset(self, key: jax.Array) -> tuple[np.ndarray, HostState]:
        obs = self._check_obs(self.reset_host(seed_from_key(key)), "reset")
        return obs, self._new_state(0)

    def step(self, key: jax.Array, state: HostState, actions: Any):
        if not isinstance(state, HostState):
            raise TypeError(f"{self.name}: state must be the HostState from reset/step, "
                            f"got {type(state).__name__}")
        if state.serial != self._serial:
            raise ValueError(
                f"{self.name}: this state is stale (a host game keeps one live state; step "
                "the state returned by the latest reset/step)"
            )
        actions = self.check_actions(actions)
        obs, reward, terminated, game_truncated, info = self.step_host(actions)
        obs = self._check_obs(obs, "step")
        reward = np.asarray(reward, np.float32)
        if reward.shape != (self.num_agents,):
            raise ValueError(f"{self.name}: step_host returned reward of shape {reward.shape}, "
                             f"expected ({self.num_agents},)")
        time = state.time + 1
        terminated = bool(terminated)
        truncated = (bool(game_truncated) or time >= self.max_steps) and not terminated
        info = dict(info)
        info["next_obs"] = obs
        if terminated or truncated:
            obs = self._check_obs(self.reset_host(seed_from_key(key)), "reset")
            time = 0
        return obs, self._new_state(time), reward, np.bool_(terminated), np.bool_(truncated), info

    # -- checks ---------------------------------------------------------------------------
    def check_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as a NumPy array of ``action_shape``, each agent's in its space."""
        actions = np.asarray(actions)
        if actions.shape != self.action_shape:
            raise ValueError(f"{self.name}: actions must have shape {self.action_shape} "
                             f"(agent axis first), got {actions.shape}")
        if self.discrete:
            if not np.issubdtype(actions.dtype, np.integer):
                raise ValueError(f"{self.name}: discrete actions must be integers, "
                                 f"got dtype {actions.dtype}")
            for i, space in enumerate(self.action_spaces):
                if not 0 <= int(actions[i]) < space.n:
                    raise ValueError(f"{self.name}: action of agent {self.agents[i]!r} is "
                                     f"{int(actions[i])}, expected 0..{space.n - 1}")
            return actions.astype(np.int32)
        return actions.astype(np.float32)

    def _check_obs(self, obs: Any, where: str) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        want = (self.num_agents, *self.obs_shape)
        if obs.shape != want:
            raise ValueError(f"{self.name}: {where} produced observations of shape {obs.shape}, "
                             f"expected {want}")
        return obs

    def sample_actions(self, key: jax.Array) -> np.ndarray:
        return np.asarray(super().sample_actions(key))

    def render(self) -> Any:
        """The game's own rendering, where it has one."""
        raise NotImplementedError(f"{self.name} has no rendering")

    def close(self) -> None:
        """Release the game's resources (windows, simulators)."""


__all__ = ["Box", "Discrete", "HostEnvironment", "HostState", "seed_from_key"]
