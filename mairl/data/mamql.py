"""Read the MAMQL authors' Gems demonstrations (a gzip-compressed pickle).

The reference code of Haynam et al. (2025) ships its Gems expert data as a
gzip-compressed pickle of a list of tuples ``(s, s_next, a, r, done)``:

- ``s``, ``s_next``: float arrays ``(5, 15, 15)`` of 0s and 1s, the Gems map
  (channels: agent 0, agent 1, agent 0's gems, agent 1's gems, shared gems),
  indexed ``[channel, x, y]``; converted to uint8, the dtype of Gems maps;
- ``a``: ``(10,)`` joint action, two concatenated one-hots of 5 (agent 0 first);
- ``r``: ``(2,)`` true per-agent rewards;
- ``done``: bool, the episode ended. Despite the reference ``env.py``'s gem
  rule, the published file's flags end an episode once the joint return of
  both agents exceeds 20 (``envs.make("gems-authors")``; see ``envs.gems``).

Pickle is untrusted input: it is read by :class:`RestrictedUnpickler`, which
admits only the globals that rebuild plain NumPy arrays and scalars, so a file
that names any other callable is refused before anything runs.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from mairl.data.demonstrations import Demonstrations

_MAP_SHAPE = (5, 15, 15)
_NUM_AGENTS = 2
_NUM_ACTIONS = 5
#: The joint return above which the authors' data ends an episode.
AUTHORS_RETURN_TO_END = 20.0


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle named a global outside the NumPy-array allow-list."""


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray
    return multiarray


def _checked_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError(f"refused object dtype {dtype} in pickle")
    return dtype


def _checked_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"refused scalar of dtype {dtype!r} in pickle")
    return _multiarray().scalar(dtype, *args)


def _checked_reconstruct(subtype: Any, *args: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused array subtype {subtype!r} in pickle")
    return _multiarray()._reconstruct(subtype, *args)


_SAFE_GLOBALS = {
    "_reconstruct": _checked_reconstruct,
    "scalar": _checked_scalar,
}
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _checked_dtype,
    **{
        (module, name): fn
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name, fn in _SAFE_GLOBALS.items()
    },
    **{
        ("numpy", name): getattr(np, name)
        for name in (
            "bool_",
            "float16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
        )
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only NumPy arrays/scalars and plain containers.

    ``find_class`` admits the array reconstruction globals (``_reconstruct``,
    ``ndarray``, ``dtype``, ``scalar``, numeric scalar types) and raises
    :class:`UnsafePickleError` naming any other global. Object dtypes and
    persistent ids are refused too.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global {module}.{name}: only NumPy array reconstruction is allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse every persistent id: the authors' files never use them."""
        raise UnsafePickleError(f"refused persistent id {pid!r}")


def load_pickle_restricted(path: str | os.PathLike) -> Any:
    """Unpickle a gzip-compressed file with :class:`RestrictedUnpickler`.

    Raises ``UnsafePickleError`` for a refused global and ``ValueError`` naming
    the path for a file that is not a readable gzip pickle.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise
    except (OSError, EOFError) as e:
        raise ValueError(
            f"{path}: not a readable gzip-compressed pickle ({type(e).__name__}: {e})"
        ) from e
    except Exception as e:
        raise ValueError(f"{path}: malformed pickle ({type(e).__name__}: {e})") from e


def _record_error(path: Path, index: int, field: str, message: str) -> ValueError:
    return ValueError(f"{path}: record {index}, field {field!r}: {message}")


def _array(path: Path, index: int, field: str, x: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise _record_error(path, index, field, f"expected a NumPy array, got {type(x).__name__}")
    if x.shape != shape:
        raise _record_error(path, index, field, f"expected shape {shape}, got {x.shape}")
    if not (
        np.issubdtype(x.dtype, np.floating)
        or np.issubdtype(x.dtype, np.integer)
        or x.dtype == np.bool_
    ):
        raise _record_error(path, index, field, f"expected a numeric dtype, got {x.dtype}")
    return x


def _flag(path: Path, index: int, x: Any) -> bool:
    if isinstance(x, np.ndarray) and x.shape == ():
        x = x[()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)) and x in (0, 1):
        return bool(x)
    raise _record_error(path, index, "done", f"expected a bool, got {x!r}")


def from_mamql_gems(path: str | os.PathLike, *, max_steps: int | None = 45) -> Demonstrations:
    """Convert the authors' Gems file into :class:`Demonstrations`.

    The file stores episodes back to back. An episode ends at a transition
    that is ``done`` (``terminated``), or otherwise (``truncated``) at its
    ``max_steps``-th transition, where the next record's ``s`` differs from
    this record's ``s_next``, or at the end of the file. ``max_steps=None``
    disables the step cap.

    Returns ``obs``/``next_obs`` ``(T, 2, 5, 15, 15)`` uint8 (both agents see
    the same map, of 0s and 1s as ``envs.make("gems")`` observes it),
    ``actions (T, 2)`` int32 decoded from the one-hots,
    ``rewards (T, 2)``, ``env_id="gems"``, ``num_actions=5``, and
    ``episode_rule`` the authors' data rule, ``{"end_rule": "joint-return",
    "return_to_end": 20.0, "max_steps": max_steps}`` (no ``max_steps`` when
    ``None``), when the file's flags follow it: every ``done`` transition, and
    only those, brings its episode's joint return above 20 for the first time
    (as in the published file). Otherwise ``episode_rule`` is ``None``
    (unknown). The expert's temperature and discount are unknown (``None``). Raises
    ``ValueError`` naming the record index and field for malformed content and
    :class:`UnsafePickleError` for a file that names a refused global.
    """
    path = Path(path)
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"from_mamql_gems: max_steps must be >= 1 or None, got {max_steps}")
    s, s_next, actions, rewards, done, continues = _read_records(path)
    num_t = len(done)

    terminated = done
    truncated = np.zeros(num_t, bool)
    step = 0
    for t in range(num_t):
        step += 1
        if done[t]:
            step = 0
        elif t == num_t - 1 or not continues[t] or (max_steps is not None and step >= max_steps):
            truncated[t] = True
            step = 0

    episode_rule = None
    if _follows_joint_return_rule(rewards, terminated, truncated):
        episode_rule = {"end_rule": "joint-return", "return_to_end": AUTHORS_RETURN_TO_END}
        if max_steps is not None:
            episode_rule["max_steps"] = int(max_steps)

    shape = (num_t, _NUM_AGENTS, *_MAP_SHAPE)
    s = jnp.broadcast_to(jnp.asarray(s)[:, None], shape)
    s_next = jnp.broadcast_to(jnp.asarray(s_next)[:, None], shape)
    return Demonstrations.create(
        obs=s,
        actions=actions,
        next_obs=s_next,
        terminated=terminated,
        truncated=truncated,
        rewards=rewards,
        env_id="gems",
        num_actions=_NUM_ACTIONS,
        episode_rule=episode_rule,
    )


def _follows_joint_return_rule(
    rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
) -> bool:
    """Whether exactly the terminated transitions take their episode's joint return
    above :data:`AUTHORS_RETURN_TO_END` for the first time."""
    joint = rewards.astype(np.float64).sum(axis=1)  # (T,)
    done = terminated | truncated
    starts = np.concatenate([[0], np.flatnonzero(done[:-1]) + 1])
    episode = np.cumsum(np.isin(np.arange(len(joint)), starts)) - 1
    total = np.cumsum(joint)
    before = total - joint
    so_far = total - before[starts][episode]  # the episode's joint return after each step
    return bool(np.array_equal(so_far > AUTHORS_RETURN_TO_END, terminated))


def _read_records(path: Path):
    """Validated arrays from the file; ``continues[t]``: ``s_next[t]`` equals ``s[t + 1]``."""
    records = load_pickle_restricted(path)
    if not isinstance(records, list):
        raise ValueError(
            f"{path}: expected a list of (s, s_next, a, r, done) tuples, "
            f"got {type(records).__name__}"
        )
    num_t = len(records)
    if num_t == 0:
        raise ValueError(f"{path}: the list of transitions is empty")
    s = np.empty((num_t, *_MAP_SHAPE), np.float32)
    s_next = np.empty((num_t, *_MAP_SHAPE), np.float32)
    joint = np.empty((num_t, 2 * _NUM_ACTIONS), np.float64)
    rewards = np.empty((num_t, _NUM_AGENTS), np.float64)
    done = np.empty(num_t, bool)
    continues = np.zeros(num_t, bool)
    previous_next = None
    for t, record in enumerate(records):
        if not isinstance(record, (tuple, list)) or len(record) != 5:
            got = (
                f"length {len(record)}"
                if isinstance(record, (tuple, list))
                else type(record).__name__
            )
            raise ValueError(
                f"{path}: record {t}: expected a 5-tuple (s, s_next, a, r, done), got {got}"
            )
        rs, rs_next, ra, rr, rdone = record
        rs = _array(path, t, "s", rs, _MAP_SHAPE)
        rs_next = _array(path, t, "s_next", rs_next, _MAP_SHAPE)
        s[t] = rs
        s_next[t] = rs_next
        joint[t] = _array(path, t, "a", ra, (2 * _NUM_ACTIONS,))
        rewards[t] = _array(path, t, "r", rr, (_NUM_AGENTS,))
        done[t] = _flag(path, t, rdone)
        if previous_next is not None:
            continues[t - 1] = rs is previous_next or np.array_equal(rs, previous_next)
        previous_next = rs_next
    del records, previous_next

    for field, x in (("s", s), ("s_next", s_next), ("a", joint), ("r", rewards)):
        bad = ~np.isfinite(x).reshape(num_t, -1).all(axis=1)
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise _record_error(path, t, field, "expected finite values, got NaN or inf")
    for field, x in (("s", s), ("s_next", s_next)):
        bad = ~((x == 0.0) | (x == 1.0)).reshape(num_t, -1).all(axis=1)
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise _record_error(path, t, field, "expected a Gems map of 0s and 1s, got "
                                f"{np.setdiff1d(x[t], (0.0, 1.0))[:3].tolist()}")
    one_hot = joint.reshape(num_t, _NUM_AGENTS, _NUM_ACTIONS)
    valid = (np.isin(one_hot, (0.0, 1.0)).all(axis=2) & (one_hot.sum(axis=2) == 1.0)).all(axis=1)
    if not valid.all():
        t = int(np.flatnonzero(~valid)[0])
        raise _record_error(
            path,
            t,
            "a",
            f"expected two concatenated one-hots of {_NUM_ACTIONS}, got {joint[t].tolist()}",
        )
    actions = one_hot.argmax(axis=2).astype(np.int32)
    return (s.astype(np.uint8), s_next.astype(np.uint8), actions, rewards.astype(np.float32),
            done, continues)
