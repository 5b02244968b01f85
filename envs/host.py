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

import functools
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
        """Start an episode seeded from ``key``; return ``obs (N, *obs_shape)`` and a host state."""
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


class AsHost(Environment):
    """A jittable env behind the host-side interface (NumPy out, ``jittable`` false).

    Steps are the game's own jitted ``reset`` / ``step`` with the same keys, so a
    run through the host paths (collection, evaluation, online training) can be
    compared number for number with the jitted paths. Build with :func:`as_host`.
    """

    jittable = False

    def __init__(self, env: Environment):
        if not getattr(env, "jittable", True):
            raise ValueError(f"as_host: {env.name} is already host-side")
        self.inner = env
        self.env_id = env.env_id
        for fact in ("num_agents", "agents", "obs_shape", "action_spaces", "max_steps"):
            setattr(self, fact, getattr(env, fact))

    def reset(self, key: jax.Array):
        """Reset the wrapped JAX game (jit-compiled once) and bring the result to the host."""
        return jax.device_get(_jit_reset(self.inner, key))

    def step(self, key: jax.Array, state: Any, actions: Any):
        return jax.device_get(_jit_step(self.inner, key, state, np.asarray(actions)))

    def __getattr__(self, name: str) -> Any:  # game-specific extras (agent_view, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


# compiled once per game instance (the env is a static argument), however many
# AsHost views share it
_jit_reset = jax.jit(lambda env, key: env.reset(key), static_argnums=0)
_jit_step = jax.jit(lambda env, key, state, actions: env.step(key, state, actions),
                    static_argnums=0)


def as_host(env: Environment) -> AsHost:
    """``env`` seen as a host-side environment (see :class:`AsHost`)."""
    return AsHost(env)


def make_host(name: str, **kwargs: Any) -> AsHost:
    """``envs.make("host:NAME")``: the registered jittable game ``NAME`` as a host env."""
    items = tuple(sorted(kwargs.items()))
    try:
        hash(items)
    except TypeError:  # unhashable arguments: a game of its own
        from envs.registry import make

        return as_host(make(name, **kwargs))
    return as_host(_shared_game(name, items))


@functools.lru_cache(maxsize=32)
def _shared_game(name: str, kwargs: tuple) -> Environment:
    """One instance per registered game and arguments: the games are stateless, and
    sharing one keeps its compiled steps shared by every host view of it."""
    from envs.registry import make

    return make(name, **dict(kwargs))


__all__ = ["AsHost", "Box", "Discrete", "HostEnvironment", "HostState", "as_host",
           "seed_from_key"]
