"""Tabular general-sum Markov games built from explicit tensors.

A game with ``N`` agents, ``S`` states and ``A_i`` actions for agent ``i`` is
given by three tensors:

- ``transitions``  ``P[s, a_1, ..., a_N, s']``: next-state distribution,
- ``rewards``      ``R[i, s, a_1, ..., a_N]``: reward of agent ``i`` for the joint
  action taken in state ``s``,
- ``initial``      ``rho[s]``: distribution of the first state,

plus an optional boolean mask ``terminal[s]``: entering a terminal state ends the
episode with ``terminated=True``. Without terminal states an episode only ends by
truncation at ``max_steps``.

The tensors stay available on the game (``game.transitions`` and so on, float64
NumPy arrays, read-only), so exact solvers such as
``mairl.solvers.soft_value_iteration`` can serve as oracles.

Observations (every agent sees the whole state, so all rows are equal):

- ``obs_mode="onehot"``: float32 ``(N, S)``, the one-hot vector of the state;
- ``obs_mode="index"``: float32 ``(N, 1)``, the state index as a number (exact
  for ``S < 2**24``). The float dtype keeps the observation dtype the same in
  both modes; ``game.state_from_obs`` turns either form back into int32 indices.

Files: ``game.save(path)`` writes an ``.npz`` archive (schema version
``SCHEMA_VERSION``) and ``TabularGame.load(path)`` / ``load_game(path)`` read one
back, without pickle. ``envs.make("tabular:PATH.npz")`` goes through ``load_game``.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete

#: Version of the ``.npz`` layout written by ``TabularGame.save``.
SCHEMA_VERSION = 1
#: Tolerance on probability vectors summing to one.
PROB_ATOL = 1e-5
OBS_MODES = ("onehot", "index")

_FILE_KEYS = (
    "schema_version",
    "transitions",
    "rewards",
    "initial",
    "terminal",
    "max_steps",
    "obs_mode",
    "agents",
)


@struct.dataclass
class TabularState(EnvState):
    """``time``: steps taken in the episode; ``state``: int32 index of the current state."""

    state: jax.Array


class TabularGame(Environment):
    """A general-sum Markov game with ``N >= 1`` agents given by explicit tensors.

    Args:
        transitions: ``P[s, a_1, ..., a_N, s']``, shape ``(S, A_1, ..., A_N, S)``;
            every ``P[s, a, :]`` is a probability vector. ``N`` is
            ``transitions.ndim - 2``.
        rewards: ``R[i, s, a_1, ..., a_N]``, shape ``(N, S, A_1, ..., A_N)``.
        initial: ``rho[s]``, shape ``(S,)``, a probability vector.
        max_steps: episode length at which ``step`` truncates.
        obs_mode: ``"onehot"`` or ``"index"`` (see the module docstring).
        agents: agent names, ``("agent_0", ..., f"agent_{N-1}")`` by default.
        terminal: optional boolean mask ``(S,)``; entering a terminal state
            terminates the episode.

    Probability vectors must be non-negative and sum to one within ``PROB_ATOL``;
    those off by more than rounding are then rescaled to sum to one. Actions
    outside ``0 .. A_i - 1`` are clipped into range by ``step``.

    Raises:
        ValueError: naming the offending tensor or argument.
    """

    def __init__(
        self,
        transitions: Any,
        rewards: Any,
        initial: Any,
        max_steps: int = 100,
        obs_mode: str = "onehot",
        agents: Sequence[str] | None = None,
        terminal: Any = None,
    ):
        P, R, rho, term = _validate(transitions, rewards, initial, terminal)
        num_agents = P.ndim - 2
        num_states = P.shape[0]
        num_actions = tuple(int(n) for n in P.shape[1:-1])

        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)):
            raise ValueError(f"max_steps: expected a positive integer, got {max_steps!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps: expected a positive integer, got {max_steps!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode: expected one of {OBS_MODES}, got {obs_mode!r}")
        if agents is None:
            agents = tuple(f"agent_{i}" for i in range(num_agents))
        elif isinstance(agents, str):
            raise ValueError(f"agents: expected a sequence of {num_agents} names, got {agents!r}")
        agents = tuple(agents)
        if len(agents) != num_agents or not all(isinstance(a, str) and a for a in agents):
            raise ValueError(
                f"agents: expected {num_agents} non-empty names (one per agent, "
                f"from transitions.ndim - 2), got {agents!r}"
            )
        if len(set(agents)) != num_agents:
            raise ValueError(f"agents: names must be unique, got {agents!r}")

        for arr in (P, R, rho, term):
            arr.setflags(write=False)
        self.transitions = P
        self.rewards = R
        self.initial = rho
        self.terminal = term
        self.num_agents = num_agents
        self.num_states = num_states
        self.num_actions_per_agent = num_actions
        self.agents = agents
        self.action_spaces = tuple(Discrete(n) for n in num_actions)
        self.max_steps = int(max_steps)
        self.obs_mode = obs_mode
        self.obs_shape = (num_states,) if obs_mode == "onehot" else (1,)

        # Device-side tables, flattened over the joint action (row-major in a_1..a_N).
        joint = self.num_joint_actions
        self._cdf = jnp.asarray(_cdf_table(P.reshape(num_states, joint, num_states)))
        self._rewards_flat = jnp.asarray(R.reshape(num_agents, num_states, joint), jnp.float32)
        self._initial_cdf = jnp.asarray(_cdf_table(rho))  # (S,)
        self._terminal = jnp.asarray(term, jnp.bool_)  # (S,)
        self._strides = tuple(int(np.prod(num_actions[i + 1 :])) for i in range(num_agents))

    # -- derived tensors -----------------------------------------------------------------
    @property
    def num_joint_actions(self) -> int:
        """``A_1 * ... * A_N``."""
        return math.prod(self.num_actions_per_agent)

    @property
    def joint_transitions(self) -> np.ndarray:
        """``P`` with the joint action flattened: ``(S, A_1 * ... * A_N, S')``, row-major."""
        return self.transitions.reshape(self.num_states, self.num_joint_actions, self.num_states)

    @property
    def joint_rewards(self) -> np.ndarray:
        """``R`` with the joint action flattened: ``(N, S, A_1 * ... * A_N)``, row-major."""
        return self.rewards.reshape(self.num_agents, self.num_states, self.num_joint_actions)

    def joint_action_index(self, actions: jax.Array) -> jax.Array:
        """Row-major index into the flattened joint action; ``actions (..., N)`` int."""
        actions = jnp.asarray(actions, jnp.int32)
        high = jnp.asarray(self.num_actions_per_agent, jnp.int32) - 1
        actions = jnp.clip(actions, 0, high)
        strides = jnp.asarray(self._strides, jnp.int32)
        return jnp.sum(actions * strides, axis=-1)

    # -- observations --------------------------------------------------------------------
    def observe(self, state_index: jax.Array) -> jax.Array:
        """Observation ``(N, *obs_shape)`` float32 of the state with index ``state_index``."""
        if self.obs_mode == "onehot":
            row = jax.nn.one_hot(state_index, self.num_states, dtype=jnp.float32)
        else:
            row = jnp.asarray(state_index, jnp.float32)[None]
        return jnp.broadcast_to(row, (self.num_agents, *self.obs_shape))

    def state_from_obs(self, obs: jax.Array) -> jax.Array:
        """int32 state index from one agent's observation ``(..., *obs_shape)``."""
        obs = jnp.asarray(obs)
        if self.obs_mode == "onehot":
            return jnp.argmax(obs, axis=-1).astype(jnp.int32)
        return jnp.round(obs[..., 0]).astype(jnp.int32)

    # -- dynamics ------------------------------------------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, TabularState]:
        """Draw the initial state from the game's initial distribution and observe it."""
        s0 = _sample_cdf(key, self._initial_cdf)
        state = TabularState(time=jnp.zeros((), jnp.int32), state=s0)
        return self.observe(s0), state

    def step_env(
        self, key: jax.Array, state: TabularState, actions: jax.Array
    ) -> tuple[jax.Array, TabularState, jax.Array, jax.Array, dict]:
        """Sample ``s' ~ P[s, a, :]``; reward ``R[:, s, a]`` float32 ``(N,)``."""
        joint = self.joint_action_index(actions)
        s = state.state
        s_next = _sample_cdf(key, self._cdf[s, joint])
        reward = self._rewards_flat[:, s, joint]
        terminated = self._terminal[s_next]
        state_next = TabularState(time=state.time + 1, state=s_next)
        return self.observe(s_next), state_next, reward, terminated, {}

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the game to ``path`` (an ``.npz`` archive, written as named)."""
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(
                f,
                schema_version=np.asarray(SCHEMA_VERSION, np.int64),
                transitions=self.transitions,
                rewards=self.rewards,
                initial=self.initial,
                terminal=self.terminal,
                max_steps=np.asarray(self.max_steps, np.int64),
                obs_mode=np.asarray(self.obs_mode),
                agents=np.asarray(self.agents, dtype=np.str_),
            )
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        max_steps: int | None = None,
        obs_mode: str | None = None,
        agents: Sequence[str] | None = None,
    ) -> TabularGame:
        """Read a game written by ``save``; keyword arguments override the saved ones.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: naming ``path``, for an unreadable or truncated file, a
                missing entry, an unknown schema version or invalid tensors.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such tabular game file")
        data = _read_npz(path)
        version = _scalar(data["schema_version"], path, "schema_version", int)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: schema_version {version} is not supported "
                f"(this version of envs reads schema_version {SCHEMA_VERSION})"
            )
        saved_agents = data["agents"]
        if saved_agents.ndim != 1 or saved_agents.dtype.kind != "U":
            raise ValueError(f"{path}: 'agents' must be a 1-d array of strings")
        kwargs = dict(
            max_steps=(
                _scalar(data["max_steps"], path, "max_steps", int)
                if max_steps is None
                else max_steps
            ),
            obs_mode=(
                _scalar(data["obs_mode"], path, "obs_mode", str) if obs_mode is None else obs_mode
            ),
            agents=tuple(str(a) for a in saved_agents) if agents is None else agents,
        )
        try:
            return cls(
                data["transitions"],
                data["rewards"],
                data["initial"],
                terminal=data["terminal"],
                **kwargs,
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def load_game(path: str | os.PathLike, **kwargs: Any) -> TabularGame:
    """``TabularGame.load(path, **kwargs)``: the ``tabular:PATH`` prefix of ``envs.make``.

    ``max_steps``, ``obs_mode`` and ``agents`` override the saved values.
    """
    return TabularGame.load(path, **kwargs)


# -- helpers ---------------------------------------------------------------------------------
def _cdf_table(p: np.ndarray) -> np.ndarray:
    """float32 CDFs along the last axis, exactly 1 from the last positive entry on.

    Zero-probability entries repeat the previous CDF value, so ``_sample_cdf``
    never returns them, including trailing ones that float32 rounding could
    otherwise expose.
    """
    cdf = np.cumsum(p, axis=-1)
    size = p.shape[-1]
    last = size - 1 - np.argmax(p[..., ::-1] > 0, axis=-1)
    cdf = np.where(np.arange(size) >= last[..., None], 1.0, cdf)
    return cdf.astype(np.float32)


def _sample_cdf(key: jax.Array, cdf: jax.Array) -> jax.Array:
    """Inverse-CDF sample from the last axis of ``cdf`` (ends at 1); int32 index."""
    u = jax.random.uniform(key, (), jnp.float32)
    idx = jnp.sum(cdf <= u, axis=-1, dtype=jnp.int32)  # first index with cdf > u
    return jnp.minimum(idx, cdf.shape[-1] - 1)


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name}: expected a numeric array, got {type(x).__name__} ({err})"
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    return arr


def _check_distribution(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    if np.any(arr < 0):
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name}: probabilities must be non-negative, got {arr[idx]} at {idx}")
    sums = arr.sum(axis=-1, keepdims=True)
    err = np.abs(sums - 1.0)
    if np.any(err > PROB_ATOL):
        idx = tuple(int(i) for i in np.argwhere(err > PROB_ATOL)[0][:-1])
        raise ValueError(
            f"{name}: {what} must sum to 1 (tolerance {PROB_ATOL}), "
            f"got sum {float(sums[idx + (0,)])} at index {idx}"
        )
    # Rescale only rows that are off by more than rounding, so that a saved and
    # reloaded game keeps exactly the same tensors.
    return np.where(np.abs(sums - 1.0) > 1e-12, arr / sums, arr)


def _validate(transitions, rewards, initial, terminal):
    """Validated float64 copies ``P, R, rho`` and a bool ``terminal`` mask."""
    P = _as_float_array(transitions, "transitions")
    if P.ndim < 3:
        raise ValueError(
            "transitions: expected shape (S, A_1, ..., A_N, S) with N >= 1 agents, "
            f"got shape {P.shape}"
        )
    num_agents = P.ndim - 2
    num_states = P.shape[0]
    if num_states < 1 or P.shape[-1] != num_states:
        raise ValueError(
            "transitions: expected shape (S, A_1, ..., A_N, S) with the same S on the "
            f"first and last axes, got shape {P.shape}"
        )
    if any(n < 1 for n in P.shape[1:-1]):
        raise ValueError(f"transitions: every agent needs at least one action, got {P.shape}")
    P = _check_distribution(P, "transitions", "every P[s, a_1, ..., a_N, :]")

    R = _as_float_array(rewards, "rewards")
    expected = (num_agents, *P.shape[:-1])
    if R.shape != expected:
        raise ValueError(
            f"rewards: expected shape (N, S, A_1, ..., A_N) = {expected} "
            f"(N = {num_agents} agents from transitions), got {R.shape}"
        )

    rho = _as_float_array(initial, "initial")
    if rho.shape != (num_states,):
        raise ValueError(f"initial: expected shape (S,) = ({num_states},), got {rho.shape}")
    rho = _check_distribution(rho, "initial", "the initial distribution")

    if terminal is None:
        term = np.zeros(num_states, bool)
    else:
        term_in = np.asarray(terminal)
        if term_in.shape != (num_states,):
            raise ValueError(
                f"terminal: expected a boolean mask of shape (S,) = ({num_states},), "
                f"got {term_in.shape}"
            )
        if term_in.dtype != np.bool_:
            if term_in.dtype.kind not in "iuf" or not np.all((term_in == 0) | (term_in == 1)):
                raise ValueError(f"terminal: expected a boolean mask, got dtype {term_in.dtype}")
        term = term_in.astype(bool)
    return P, R, rho, term


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All entries of the archive, read eagerly; ``ValueError`` naming ``path`` on failure."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ValueError(f"{path}: not a readable tabular game file: not an .npz archive "
                         "(TabularGame.save writes one)")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with npz:
            missing = [k for k in _FILE_KEYS if k not in npz.files]
            if missing:
                raise KeyError(missing[0])
            return {k: npz[k] for k in _FILE_KEYS}
    except KeyError as err:
        raise ValueError(
            f"{path}: missing entry {err.args[0]!r} (a tabular game file holds {_FILE_KEYS})"
        ) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(
            f"{path}: not a readable tabular game file (corrupt or truncated?): {err}"
        ) from None


def _scalar(arr: np.ndarray, path: Path, name: str, kind: type):
    if arr.shape != ():
        raise ValueError(f"{path}: {name!r} must be a scalar, got shape {arr.shape}")
    if kind is int and arr.dtype.kind in "iu":
        return int(arr)
    if kind is str and arr.dtype.kind == "U":
        return str(arr)
    raise ValueError(f"{path}: {name!r} must be a {kind.__name__}, got dtype {arr.dtype}")
