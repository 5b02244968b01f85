"""Expert demonstrations: a validated pytree of transitions, saved as ``.npz``.

Axis order (time first, then agent)::

    obs         (T, N, *obs_shape)   what each agent saw, in the env's obs_dtype
                                     (float32, or uint8 for binary maps)
    actions     (T, N) int32         discrete games, each in [0, num_actions)
                (T, N, action_dim)   float32, continuous games
    next_obs    (T, N, *obs_shape)   the true successor, also at an episode's end
    terminated  (T,) bool            the episode ended by the game's rules
    truncated   (T,) bool            the episode was cut (time limit, end of data)
    episode_id  (T,) int32           non-decreasing, one id per episode
    rewards     (T, N) float32       optional true rewards, for evaluation only

``rewards`` are the game's true rewards, kept so that metrics can compare a
recovered reward with the truth. No IRL algorithm may learn from them.

Episodes are contiguous runs of transitions sharing one ``episode_id``. Every
episode is complete: its last transition, and only that one, is ``terminated``
or ``truncated`` (never both). A transition that is neither is followed by the
next transition of the same episode.

Static metadata, each ``None`` where unknown, so that a learner and its
evaluation can match the demonstrations like for like:

- ``env_id``, ``num_actions``: the game and its action count;
- ``episode_rule``: the keyword arguments of ``envs.make(env_id, ...)`` that
  decide where the demonstrated episodes end (the env's ``episode_rule``, e.g.
  ``{"end_rule": "joint-return", "return_to_end": 20.0, "max_steps": 45}`` for
  the MAMQL authors' Gems data), stored as sorted ``(name, value)`` pairs with
  JSON scalar values; ``dict(demos.episode_rule)`` gives them back;
- ``expert_alpha``, ``expert_gamma``: the Boltzmann temperature and discount of
  the soft-optimal expert that produced the data.

Algorithms consume batches with the agent axis first; see
:mod:`mairl.data.sampling` for the conversion.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

#: Version of the ``.npz`` layout written by :meth:`Demonstrations.save`. Version 2
#: adds ``episode_rule``, ``expert_alpha`` and ``expert_gamma``; version 3 adds
#: ``checksum`` (:func:`entries_checksum`); :func:`load` reads versions 1 to 3.
SCHEMA_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
#: The first version whose files carry (and must carry) a ``checksum`` entry.
_CHECKSUM_VERSION = 3

_ARRAY_FIELDS = ("obs", "actions", "next_obs", "terminated", "truncated", "episode_id")
_META_ENTRIES = ("schema_version", "env_id", "num_agents", "num_actions")
#: Entries added by schema version 2, optional when reading.
_PROVENANCE_ENTRIES = ("episode_rule", "expert_alpha", "expert_gamma")

#: ``episode_rule`` as stored: sorted ``(name, value)`` pairs, hashable, so the
#: demonstrations stay a valid pytree under ``jit``.
EpisodeRule = tuple[tuple[str, Any], ...]


def _fail(field: str, message: str) -> ValueError:
    return ValueError(f"Demonstrations.{field}: {message}")


def _shape_str(names: Sequence[str], values: Sequence[int]) -> str:
    return f"({', '.join(names)}) = {tuple(int(v) for v in values)}"


@struct.dataclass
class Demonstrations:
    """Transitions of ``N`` agents, time first and agent second (module docstring).

    Build with :meth:`Demonstrations.create`, which validates; the plain
    constructor performs no checks and exists for JAX transformations.
    ``env_id``, ``num_actions``, ``episode_rule``, ``expert_alpha`` and
    ``expert_gamma`` are static metadata (part of the tree structure, not
    leaves); see the module docstring.
    """

    obs: jax.Array  # (T, N, *obs_shape)
    actions: jax.Array  # (T, N) int32 | (T, N, action_dim) float32
    next_obs: jax.Array  # (T, N, *obs_shape)
    terminated: jax.Array  # (T,) bool
    truncated: jax.Array  # (T,) bool
    episode_id: jax.Array  # (T,) int32
    rewards: jax.Array | None = None  # (T, N) float32, evaluation only
    env_id: str | None = struct.field(pytree_node=False, default=None)
    num_actions: int | None = struct.field(pytree_node=False, default=None)
    episode_rule: EpisodeRule | None = struct.field(pytree_node=False, default=None)
    expert_alpha: float | None = struct.field(pytree_node=False, default=None)
    expert_gamma: float | None = struct.field(pytree_node=False, default=None)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        obs: Any,
        actions: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        episode_id: Any = None,
        rewards: Any = None,
        *,
        env_id: str | None = None,
        num_actions: int | None = None,
        episode_rule: Mapping[str, Any] | EpisodeRule | None = None,
        expert_alpha: float | None = None,
        expert_gamma: float | None = None,
    ) -> Demonstrations:
        """Validate host arrays (NumPy or JAX) and build device-resident demonstrations.

        ``episode_rule`` (a mapping or ``(name, value)`` pairs of JSON scalars),
        ``expert_alpha`` (> 0) and ``expert_gamma`` (in ``[0, 1]``) are the
        metadata of the module docstring, ``None`` where unknown.
        ``episode_id`` defaults to the episode ordinal derived from the flags
        (a new episode after every terminated or truncated transition). Integer
        actions become int32, float actions float32, ``episode_id`` int32 and
        ``rewards`` float32, after the checks, so a cast never hides a bad value.
        Raises ``ValueError`` naming the field for any inconsistency. Host-side
        only (not under ``jit``).
        """
        if episode_id is None:
            terminated_np = np.asarray(terminated)
            truncated_np = np.asarray(truncated)
            if terminated_np.shape == truncated_np.shape and terminated_np.ndim == 1:
                episode_id = _ordinals(terminated_np.astype(bool) | truncated_np.astype(bool))
        given = {
            "obs": obs,
            "actions": actions,
            "next_obs": next_obs,
            "terminated": terminated,
            "truncated": truncated,
            "episode_id": episode_id,
            "rewards": rewards,
        }
        fields = {k: None if v is None else np.asarray(v) for k, v in given.items()}
        _check(fields, env_id=env_id, num_actions=num_actions)
        provenance = _check_provenance(episode_rule, expert_alpha, expert_gamma)
        discrete = np.issubdtype(fields["actions"].dtype, np.integer)
        dtypes = {
            "actions": jnp.int32 if discrete else jnp.float32,
            "terminated": jnp.bool_,
            "truncated": jnp.bool_,
            "episode_id": jnp.int32,
            "rewards": jnp.float32,
        }
        # Convert from the given objects: a JAX array of the right dtype is kept as is.
        arrays = {k: None if v is None else jnp.asarray(v, dtypes.get(k)) for k, v in given.items()}
        return cls(
            **arrays,
            env_id=env_id,
            num_actions=None if num_actions is None else int(num_actions),
            **provenance,
        )

    def validate(self) -> Demonstrations:
        """Run every check of :meth:`create` on this instance; returns it unchanged."""
        fields = {name: np.asarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        fields["rewards"] = None if self.rewards is None else np.asarray(self.rewards)
        _check(fields, env_id=self.env_id, num_actions=self.num_actions)
        _check_provenance(self.episode_rule, self.expert_alpha, self.expert_gamma)
        return self

    def with_obs_dtype(self, dtype: Any) -> Demonstrations:
        """A copy whose ``obs`` and ``next_obs`` are stored as ``dtype``, e.g. the
        uint8 of Gems maps for a file written with float32 ones (a quarter of the
        memory); the same object when they already are.

        The conversion must be exact: raises ``ValueError`` naming the field and
        the first transition where a value does not survive it (``0.5`` into
        uint8, say). Host-side only.
        """
        dtype = np.dtype(dtype)
        if self.obs.dtype == dtype and self.next_obs.dtype == dtype:
            return self
        if not _is_numeric(np.empty((), dtype)):
            raise _fail("obs", f"expected a numeric dtype to convert to, got {dtype}")
        converted = {}
        for name in ("obs", "next_obs"):
            x = np.asarray(getattr(self, name))
            y = x.astype(dtype)
            with np.errstate(invalid="ignore", over="ignore"):
                exact = (y.astype(x.dtype) == x).reshape(x.shape[0], -1).all(axis=1)
            if not exact.all():
                t = int(np.flatnonzero(~exact)[0])
                raise _fail(name, f"cannot be stored exactly as {dtype}: transition {t} holds "
                                  f"values outside it (dtype {x.dtype})")
            converted[name] = jnp.asarray(y)
        return self.replace(**converted)

    def with_meta(self, **meta: Any) -> Demonstrations:
        """A copy with metadata replaced, validated as in :meth:`create`.

        Keywords: ``env_id``, ``num_actions``, ``episode_rule``, ``expert_alpha``,
        ``expert_gamma`` (``None`` for unknown). For example, after collecting
        from a soft-Q expert: ``demos.with_meta(expert_alpha=0.05, expert_gamma=0.95)``.
        """
        names = ("env_id", "num_actions", *_PROVENANCE_ENTRIES)
        unknown = sorted(set(meta) - set(names))
        if unknown:
            raise TypeError(f"with_meta: unknown metadata {unknown}; expected some of {names}")
        current = {name: getattr(self, name) for name in names}
        current.update(meta)
        _check_meta(current["env_id"], current["num_actions"])
        provenance = _check_provenance(
            current["episode_rule"], current["expert_alpha"], current["expert_gamma"]
        )
        num_actions = current["num_actions"]
        return self.replace(
            env_id=current["env_id"],
            num_actions=None if num_actions is None else int(num_actions),
            **provenance,
        )

    @property
    def meta(self) -> dict[str, Any]:
        """The static metadata as a plain dict (``episode_rule`` as a dict or ``None``)."""
        return {
            "env_id": self.env_id,
            "num_actions": self.num_actions,
            "episode_rule": None if self.episode_rule is None else dict(self.episode_rule),
            "expert_alpha": self.expert_alpha,
            "expert_gamma": self.expert_gamma,
        }

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_transitions(self) -> int:
        """``T``."""
        return self.obs.shape[0]

    @property
    def num_agents(self) -> int:
        """``N``."""
        return self.obs.shape[1]

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One agent's observation shape."""
        return tuple(self.obs.shape[2:])

    @property
    def discrete(self) -> bool:
        """Whether actions are integer indices (``(T, N)``) rather than vectors."""
        return bool(jnp.issubdtype(self.actions.dtype, jnp.integer))

    @property
    def num_episodes(self) -> int:
        """Number of complete episodes (host-side: reads the flags)."""
        return int(np.count_nonzero(self._done()))

    # -- episodes (host-side) ------------------------------------------------------------
    def _done(self) -> np.ndarray:
        return np.asarray(self.terminated) | np.asarray(self.truncated)

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, stops)``: episode ``e`` holds transitions ``starts[e]:stops[e]``."""
        stops = np.flatnonzero(self._done()) + 1
        starts = np.concatenate([[0], stops[:-1]]).astype(np.int64)
        return starts, stops.astype(np.int64)

    def episode_lengths(self) -> np.ndarray:
        """``(E,)`` number of transitions of each episode, in order."""
        starts, stops = self.episode_bounds()
        return stops - starts

    def initial_obs(self) -> jax.Array:
        """``(E, N, *obs_shape)``: each episode's first observation."""
        starts, _ = self.episode_bounds()
        return jnp.asarray(np.asarray(self.obs)[starts])

    def select_episodes(self, episodes: slice | Sequence[int] | np.ndarray) -> Demonstrations:
        """Keep whole episodes, given by ordinal (0 = first episode stored).

        ``episodes`` is a slice or a sequence of ordinals (repeats allowed, e.g.
        for a bootstrap). The result holds them in the order given, with
        ``episode_id`` renumbered ``0 .. len - 1``.
        """
        starts, stops = self.episode_bounds()
        num = len(starts)
        if isinstance(episodes, slice):
            chosen = np.arange(num)[episodes]
        else:
            chosen = np.asarray(episodes)
            if chosen.ndim != 1 or not (
                chosen.size == 0 or np.issubdtype(chosen.dtype, np.integer)
            ):
                raise TypeError(
                    f"select_episodes: expected a slice or a 1-D sequence of integer episode "
                    f"ordinals, got {chosen.dtype} array of shape {chosen.shape}"
                )
            bad = (chosen < 0) | (chosen >= num)
            if bad.any():
                raise IndexError(
                    f"select_episodes: episode ordinal {int(chosen[bad][0])} out of range "
                    f"for {num} episodes"
                )
        if chosen.size == 0:
            raise ValueError(
                "select_episodes: no episodes selected; demonstrations cannot be empty"
            )
        lengths = stops[chosen] - starts[chosen]
        index = np.concatenate([np.arange(starts[e], stops[e]) for e in chosen])
        taken = _take(self, index)
        return taken.replace(
            episode_id=jnp.asarray(np.repeat(np.arange(len(chosen)), lengths), jnp.int32)
        )

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, compress: bool = True) -> Path:
        """Write a ``.npz`` file at exactly ``path`` (atomically); returns the path.

        Entries: the array fields (``rewards`` only when present) and the
        metadata ``schema_version``, ``env_id`` (``""`` for none),
        ``num_agents``, ``num_actions`` (``-1`` for none), ``episode_rule`` (a
        JSON object as a string, ``""`` for none), ``expert_alpha`` and
        ``expert_gamma`` (float64, NaN for none), and ``checksum``, the SHA-256
        of all the others (:func:`entries_checksum`). Read it back with :func:`load`.
        """
        path = Path(path)
        entries: dict[str, np.ndarray] = {
            name: np.asarray(getattr(self, name)) for name in _ARRAY_FIELDS
        }
        if self.rewards is not None:
            entries["rewards"] = np.asarray(self.rewards)
        entries["schema_version"] = np.asarray(SCHEMA_VERSION, np.int64)
        entries["env_id"] = np.asarray("" if self.env_id is None else str(self.env_id))
        entries["num_agents"] = np.asarray(self.num_agents, np.int64)
        entries["num_actions"] = np.asarray(
            -1 if self.num_actions is None else self.num_actions, np.int64
        )
        entries["episode_rule"] = np.asarray(
            "" if self.episode_rule is None else json.dumps(dict(self.episode_rule), sort_keys=True)
        )
        for name in ("expert_alpha", "expert_gamma"):
            value = getattr(self, name)
            entries[name] = np.asarray(np.nan if value is None else value, np.float64)
        # The checksum goes first in the archive: a damaged central directory that
        # loses entries loses the last ones, and the checksum then names them.
        entries = {"checksum": np.asarray(entries_checksum(entries)), **entries}
        tmp = path.with_name(path.name + ".tmp")
        writer = np.savez_compressed if compress else np.savez
        try:
            with open(tmp, "wb") as f:
                writer(f, **entries)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


def _take(demos: Demonstrations, index: np.ndarray) -> Demonstrations:
    """Transitions ``index`` (``(K,)``) of every field, time axis kept first.

    Gathers on the host: selections come in many lengths, and each new length
    would compile a device gather.
    """
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[index]), demos)


# -- checks --------------------------------------------------------------------------------
def _ordinals(done: np.ndarray) -> np.ndarray:
    """Episode ordinal of each transition: a new episode after every ``done``."""
    return np.concatenate([[0], np.cumsum(done[:-1], dtype=np.int64)]).astype(np.int64)


def _is_numeric(x: np.ndarray) -> bool:
    return (
        x.dtype == np.bool_
        or np.issubdtype(x.dtype, np.integer)
        or np.issubdtype(x.dtype, np.floating)
    )


def _check_finite(field: str, x: np.ndarray) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        return
    finite = np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
    if not finite.all():
        t = int(np.flatnonzero(~finite)[0])
        raise _fail(
            field,
            f"expected finite values, got NaN or inf at transition {t} "
            f"({int(np.count_nonzero(~finite))} transitions affected)",
        )


def _check_meta(env_id: Any, num_actions: Any) -> None:
    if env_id is not None and not isinstance(env_id, str):
        raise _fail("env_id", f"expected a str or None, got {type(env_id).__name__}")
    if num_actions is not None:
        if isinstance(num_actions, bool) or not isinstance(num_actions, (int, np.integer)):
            raise _fail("num_actions", f"expected an int or None, got {num_actions!r}")
        if num_actions < 1:
            raise _fail("num_actions", f"expected a positive number of actions, got {num_actions}")


def _real(field: str, x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, np.ndarray) and x.shape == ():
        x = x[()]
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise _fail(field, f"expected a real number or None, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        raise _fail(field, f"expected a finite number or None, got {x}")
    return x


def _check_provenance(episode_rule: Any, expert_alpha: Any, expert_gamma: Any) -> dict[str, Any]:
    """Validated, normalized ``episode_rule``, ``expert_alpha``, ``expert_gamma``."""
    rule = None
    if episode_rule is not None:
        if isinstance(episode_rule, Mapping):
            pairs = list(episode_rule.items())
        elif isinstance(episode_rule, (tuple, list)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in episode_rule
        ):
            pairs = [tuple(p) for p in episode_rule]
        else:
            raise _fail(
                "episode_rule",
                f"expected a mapping of keyword arguments or None, got {episode_rule!r}",
            )
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise _fail("episode_rule", f"repeated names in {names}")
        for name, value in pairs:
            if not isinstance(name, str) or not name.isidentifier():
                raise _fail("episode_rule", f"names must be keyword identifiers, got {name!r}")
            scalar = isinstance(value, (str, bool, int, float)) and not (
                isinstance(value, float) and not math.isfinite(value)
            )
            if not scalar:
                raise _fail(
                    "episode_rule",
                    f"value of {name!r} must be a str, bool, int or finite float, got {value!r}",
                )
        rule = tuple(sorted(pairs))
    alpha = _real("expert_alpha", expert_alpha)
    if alpha is not None and alpha <= 0:
        raise _fail("expert_alpha", f"expected a temperature > 0, got {alpha}")
    gamma = _real("expert_gamma", expert_gamma)
    if gamma is not None and not 0 <= gamma <= 1:
        raise _fail("expert_gamma", f"expected a discount in [0, 1], got {gamma}")
    return {"episode_rule": rule, "expert_alpha": alpha, "expert_gamma": gamma}


def _check(fields: dict[str, np.ndarray | None], *, env_id: Any, num_actions: Any) -> None:
    """All consistency checks of the arrays; raises ``ValueError`` naming the field."""
    _check_meta(env_id, num_actions)

    obs = fields["obs"]
    if obs.ndim < 2:
        raise _fail(
            "obs", f"expected shape (T, N, *obs_shape) with at least 2 axes, got {obs.shape}"
        )
    num_t, num_n = obs.shape[:2]
    if num_t < 1:
        raise _fail("obs", f"expected at least one transition, got shape {obs.shape}")
    if num_n < 1:
        raise _fail("obs", f"expected at least one agent, got shape {obs.shape}")
    for name in ("obs", "next_obs"):
        x = fields[name]
        if not _is_numeric(x):
            raise _fail(name, f"expected a numeric dtype, got {x.dtype}")
    next_obs = fields["next_obs"]
    if next_obs.shape != obs.shape:
        raise _fail(
            "next_obs",
            f"expected shape (T, N, *obs_shape) = {obs.shape} (as obs), got {next_obs.shape}",
        )

    actions = fields["actions"]
    if np.issubdtype(actions.dtype, np.integer):
        if actions.shape != (num_t, num_n):
            raise _fail(
                "actions",
                f"expected shape {_shape_str(('T', 'N'), (num_t, num_n))} for integer "
                f"actions, got {actions.shape}",
            )
        if actions.size and actions.min() < 0:
            t = int(np.flatnonzero((actions < 0).any(axis=1))[0])
            raise _fail(
                "actions", f"expected actions >= 0, got {int(actions.min())} at transition {t}"
            )
        if num_actions is not None and actions.size and actions.max() >= num_actions:
            t = int(np.flatnonzero((actions >= num_actions).any(axis=1))[0])
            raise _fail(
                "actions",
                f"expected actions in [0, num_actions) = [0, {num_actions}), got "
                f"{int(actions.max())} at transition {t}",
            )
        if actions.size and actions.max() > np.iinfo(np.int32).max:
            raise _fail("actions", f"expected values that fit int32, got {int(actions.max())}")
    elif np.issubdtype(actions.dtype, np.floating):
        if num_actions is not None:
            raise _fail(
                "actions",
                f"expected integer actions for a discrete game (num_actions={num_actions}), "
                f"got dtype {actions.dtype}",
            )
        if actions.ndim != 3 or actions.shape[:2] != (num_t, num_n):
            raise _fail(
                "actions",
                f"expected shape (T, N, action_dim) with (T, N) = {(num_t, num_n)} for float "
                f"(continuous) actions, got {actions.shape}",
            )
        _check_finite("actions", actions)
    else:
        raise _fail(
            "actions",
            f"expected int (discrete, shape (T, N)) or float (continuous, shape "
            f"(T, N, action_dim)) actions, got dtype {actions.dtype}",
        )

    for name in ("terminated", "truncated"):
        x = fields[name]
        if x.shape != (num_t,):
            raise _fail(name, f"expected shape (T,) = ({num_t},), got {x.shape}")
        if x.dtype != np.bool_:
            raise _fail(name, f"expected dtype bool, got {x.dtype} (convert with .astype(bool))")
    terminated, truncated = fields["terminated"], fields["truncated"]
    both = terminated & truncated
    if both.any():
        raise _fail(
            "truncated",
            f"transition {int(np.flatnonzero(both)[0])} is both terminated and truncated; "
            "expected at most one of the two",
        )

    episode_id = fields["episode_id"]
    if episode_id is None:
        raise _fail("episode_id", "missing")
    if episode_id.shape != (num_t,):
        raise _fail("episode_id", f"expected shape (T,) = ({num_t},), got {episode_id.shape}")
    if not np.issubdtype(episode_id.dtype, np.integer):
        raise _fail("episode_id", f"expected an integer dtype, got {episode_id.dtype}")
    if episode_id.min() < 0 or episode_id.max() > np.iinfo(np.int32).max:
        raise _fail(
            "episode_id",
            f"expected ids in [0, 2**31), got range [{int(episode_id.min())}, "
            f"{int(episode_id.max())}]",
        )
    step = np.diff(episode_id.astype(np.int64))
    done = terminated | truncated
    last = np.append(step > 0, True)  # the last transition of its episode
    # (field, the transitions that break the rule, message about the first of them)
    episode_rules = [
        ("episode_id", np.append(False, step < 0),
         "expected non-decreasing ids (episodes stored contiguously), got {id} after {prev_id} "
         "at transition {t}"),
        ("terminated", last & ~done,
         "episode_id {id} ends at transition {t} with neither terminated nor truncated; "
         "expected every episode's last transition to be terminated or truncated"),
        ("episode_id", done & ~last,
         "transition {t} is terminated or truncated but transition {next_t} continues "
         "episode_id {id}; expected a new, larger id after an episode ends"),
    ]
    for name, broken, message in episode_rules:
        if broken.any():
            t = int(np.flatnonzero(broken)[0])
            raise _fail(name, message.format(t=t, next_t=t + 1, id=int(episode_id[t]),
                                             prev_id=int(episode_id[t - 1])))

    rewards = fields["rewards"]
    if rewards is not None:
        if rewards.shape != (num_t, num_n):
            raise _fail(
                "rewards",
                f"expected shape {_shape_str(('T', 'N'), (num_t, num_n))}, got {rewards.shape}",
            )
        if not (
            np.issubdtype(rewards.dtype, np.floating) or np.issubdtype(rewards.dtype, np.integer)
        ):
            raise _fail("rewards", f"expected a real dtype, got {rewards.dtype}")
        _check_finite("rewards", rewards)
    _check_finite("obs", obs)
    _check_finite("next_obs", next_obs)


# -- combining -----------------------------------------------------------------------------
def concatenate(demos: Sequence[Demonstrations]) -> Demonstrations:
    """Join demonstrations in order; ``episode_id`` is renumbered ``0 .. E - 1``.

    All parts must agree on agent count, observation shape, action kind and
    shape, the metadata (``env_id``, ``num_actions``, ``episode_rule``,
    ``expert_alpha``, ``expert_gamma``) and whether ``rewards`` are present.
    """
    demos = list(demos)
    if not demos:
        raise ValueError("concatenate: expected at least one Demonstrations, got none")
    first = demos[0]
    for i, d in enumerate(demos):
        if not isinstance(d, Demonstrations):
            raise TypeError(f"concatenate: demos[{i}] is a {type(d).__name__}, not Demonstrations")
        checks = [
            ("obs", tuple(d.obs.shape[1:]), tuple(first.obs.shape[1:])),
            ("actions", tuple(d.actions.shape[1:]), tuple(first.actions.shape[1:])),
            ("actions.dtype", d.actions.dtype, first.actions.dtype),
            ("obs.dtype", d.obs.dtype, first.obs.dtype),
            ("env_id", d.env_id, first.env_id),
            ("num_actions", d.num_actions, first.num_actions),
            ("episode_rule", d.episode_rule, first.episode_rule),
            ("expert_alpha", d.expert_alpha, first.expert_alpha),
            ("expert_gamma", d.expert_gamma, first.expert_gamma),
            ("rewards present", d.rewards is not None, first.rewards is not None),
        ]
        for what, got, want in checks:
            if got != want:
                raise ValueError(
                    f"concatenate: demos[{i}] {what} is {got}, expected {want} as in demos[0]"
                )
    offsets = np.cumsum([0] + [d.num_episodes for d in demos[:-1]])
    episode_id = np.concatenate(
        [_ordinals(d._done()) + off for d, off in zip(demos, offsets, strict=True)]
    ).astype(np.int32)

    def cat(name):
        parts = [getattr(d, name) for d in demos]
        return None if parts[0] is None else jnp.concatenate(parts, axis=0)

    return Demonstrations(
        obs=cat("obs"),
        actions=cat("actions"),
        next_obs=cat("next_obs"),
        terminated=cat("terminated"),
        truncated=cat("truncated"),
        episode_id=jnp.asarray(episode_id),
        rewards=cat("rewards"),
        env_id=first.env_id,
        num_actions=first.num_actions,
        episode_rule=first.episode_rule,
        expert_alpha=first.expert_alpha,
        expert_gamma=first.expert_gamma,
    )


# -- loading -------------------------------------------------------------------------------
def entries_checksum(entries: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a demonstrations file's entries other than ``checksum``.

    Each entry in name order contributes its name, dtype, shape and bytes (C
    order), so that a changed value, dtype, shape or name, and a lost or added
    entry, all change the digest. The zip archive's own CRC-32 per member misses
    what lies outside the members' data: an entry lost with a damaged central
    directory (``rewards`` or the provenance entries are optional, so their loss
    would otherwise pass unseen).
    """
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(entries):
        if name == "checksum":
            continue
        x = np.ascontiguousarray(entries[name])
        digest.update(f"{name}\0{x.dtype.str}\0{x.shape}\0".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def _verify_checksum(path: Path, entries: dict[str, np.ndarray], version: int) -> None:
    """The ``checksum`` entry must match the other entries (required from version 3;
    files of versions 1 and 2, written before it, have none)."""
    if "checksum" not in entries:
        if version >= _CHECKSUM_VERSION:
            raise ValueError(f"{path}: no 'checksum' entry, required in schema version "
                             f"{version}: the file is damaged")
        return
    if version < _CHECKSUM_VERSION:
        raise ValueError(f"{path}: unexpected entries ['checksum'] (schema version {version})")
    stored = entries["checksum"]
    if stored.shape != () or stored.dtype.kind != "U":
        raise ValueError(f"{path}: entry 'checksum' should be a string, got dtype "
                         f"{stored.dtype} and shape {stored.shape}")
    if str(stored) != entries_checksum(entries):
        raise ValueError(f"{path}: checksum mismatch: the file's contents are not those "
                         "that were written (damaged or edited since)")


def _scalar(path: Path, entries: dict[str, np.ndarray], name: str, kind: str) -> Any:
    x = entries[name]
    if x.shape != ():
        raise ValueError(f"{path}: entry {name!r} should be a scalar, got shape {x.shape}")
    if kind == "int" and np.issubdtype(x.dtype, np.integer):
        return int(x)
    if kind == "str" and x.dtype.kind == "U":
        return str(x)
    if kind == "float" and x.dtype.kind in "iuf":
        return float(x)
    raise ValueError(f"{path}: entry {name!r} should be a {kind}, got dtype {x.dtype}")


def load(
    path: str | os.PathLike,
    *,
    env: Any = None,
    expected_num_agents: int | None = None,
) -> Demonstrations:
    """Read and validate a ``.npz`` written by :meth:`Demonstrations.save`.

    Read with ``allow_pickle=False``; files of schema versions 1 to 3 (version
    1 holds no ``episode_rule``, ``expert_alpha``, ``expert_gamma``: they load
    as ``None``; version 3 files carry a ``checksum`` of their entries, which
    must match, so a file damaged in a way the zip CRCs miss is refused too).
    With ``env`` (any object with the environment protocol's static facts),
    the agent count, observation shape, ``env_id`` (when both are set) and
    action kind are checked against it, and the observations are returned in
    the env's ``obs_dtype`` where it has one (:meth:`Demonstrations.with_obs_dtype`):
    a file written with float32 Gems maps loads as uint8 maps, and an error
    names the field where the values do not fit.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the path for anything else: unreadable, truncated or corrupt file, unknown
    schema version, missing or unexpected entry, invalid contents, mismatch with
    ``env`` or ``expected_num_agents``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such demonstrations file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"\x93NUM":
            raise ValueError("a single .npy array, not an .npz archive")
        if magic != b"PK\x03\x04":
            raise ValueError("not a zip archive")
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"a single .npy array, not an .npz archive (got {type(npz).__name__})")
        with npz:
            names = list(npz.files)
            if "schema_version" not in names:
                raise ValueError("no 'schema_version' entry: not a mairl demonstrations file")
            entries = {name: npz[name] for name in names}
    except Exception as e:  # noqa: BLE001 -- zipfile and numpy raise many kinds on bad bytes
        if isinstance(e, PermissionError):
            raise
        raise ValueError(
            f"{path}: cannot read demonstrations ({type(e).__name__}: {e}); the file is "
            "truncated, corrupt or not a mairl .npz"
        ) from e

    version = _scalar(path, entries, "schema_version", "int")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path}: unknown schema_version {version}; this mairl reads versions "
            f"{', '.join(map(str, _READABLE_VERSIONS))}"
        )
    _verify_checksum(path, entries, version)
    entries.pop("checksum", None)
    required = _ARRAY_FIELDS + _META_ENTRIES
    missing = [name for name in required if name not in entries]
    if missing:
        raise ValueError(f"{path}: missing entries {missing} (schema version {version})")
    optional = {"rewards", *(_PROVENANCE_ENTRIES if version >= 2 else ())}
    unexpected = sorted(set(entries) - set(required) - optional)
    if unexpected:
        raise ValueError(f"{path}: unexpected entries {unexpected} (schema version {version})")
    env_id = _scalar(path, entries, "env_id", "str") or None
    num_agents = _scalar(path, entries, "num_agents", "int")
    num_actions = _scalar(path, entries, "num_actions", "int")
    num_actions = None if num_actions == -1 else num_actions
    provenance = _read_provenance(path, entries)
    for name in _ARRAY_FIELDS + ("rewards",):
        if name in entries and entries[name].dtype.kind not in "biuf":
            raise ValueError(f"{path}: entry {name!r} has non-numeric dtype {entries[name].dtype}")

    try:
        demos = Demonstrations.create(
            **{name: entries[name] for name in _ARRAY_FIELDS},
            rewards=entries.get("rewards"),
            env_id=env_id,
            num_actions=num_actions,
            **provenance,
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    if demos.num_agents != num_agents:
        raise ValueError(
            f"{path}: num_agents entry says {num_agents} but obs has {demos.num_agents} agents "
            f"(shape {tuple(demos.obs.shape)})"
        )
    if expected_num_agents is not None and demos.num_agents != expected_num_agents:
        raise ValueError(
            f"{path}: expected {expected_num_agents} agents, the file holds {demos.num_agents}"
        )
    if env is not None:
        _check_against_env(path, demos, env)
        obs_dtype = getattr(env, "obs_dtype", None)
        if obs_dtype is not None:
            try:
                demos = demos.with_obs_dtype(obs_dtype)
            except ValueError as e:
                name = getattr(env, "name", None) or type(env).__name__
                raise ValueError(f"{path}: env {name!r} observes {np.dtype(obs_dtype)}: "
                                 f"{e}") from e
    return demos


def _read_provenance(path: Path, entries: dict[str, np.ndarray]) -> dict[str, Any]:
    """``episode_rule`` (parsed from JSON), ``expert_alpha``, ``expert_gamma``; ``None``
    where absent, empty or NaN. Their values are checked by ``Demonstrations.create``."""
    out: dict[str, Any] = {"episode_rule": None, "expert_alpha": None, "expert_gamma": None}
    if "episode_rule" in entries:
        text = _scalar(path, entries, "episode_rule", "str")
        if text:
            try:
                rule = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: entry 'episode_rule' is not valid JSON ({e})") from e
            if not isinstance(rule, dict):
                raise ValueError(
                    f"{path}: entry 'episode_rule' should be a JSON object, got {text!r}"
                )
            out["episode_rule"] = rule
    for name in ("expert_alpha", "expert_gamma"):
        if name in entries:
            value = _scalar(path, entries, name, "float")
            out[name] = None if math.isnan(value) else value
    return out


def _check_against_env(path: Path, demos: Demonstrations, env: Any) -> None:
    name = getattr(env, "name", None) or getattr(env, "env_id", None) or type(env).__name__
    if demos.num_agents != env.num_agents:
        raise ValueError(
            f"{path}: demonstrations have {demos.num_agents} agents, env {name!r} has "
            f"{env.num_agents}"
        )
    if demos.obs_shape != tuple(env.obs_shape):
        raise ValueError(
            f"{path}: demonstrations have obs_shape {demos.obs_shape}, env {name!r} has "
            f"{tuple(env.obs_shape)}"
        )
    env_id = getattr(env, "env_id", None)
    if env_id is not None and demos.env_id is not None and env_id != demos.env_id:
        raise ValueError(
            f"{path}: demonstrations were recorded on env {demos.env_id!r}, got env {env_id!r}"
        )
    discrete = getattr(env, "discrete", None)
    if discrete is True and not demos.discrete:
        raise ValueError(f"{path}: env {name!r} has discrete actions, the file holds float actions")
    if discrete is False:
        if demos.discrete:
            raise ValueError(
                f"{path}: env {name!r} has continuous actions, the file holds integer actions"
            )
        want = tuple(env.action_shape)[1:]
        if tuple(demos.actions.shape[2:]) != want:
            raise ValueError(
                f"{path}: actions have shape {tuple(demos.actions.shape[2:])} per agent, env "
                f"{name!r} expects {want}"
            )
    if discrete is True and demos.discrete:
        limit = max(getattr(sp, "n", 0) for sp in env.action_spaces)
        if int(jnp.max(demos.actions)) >= limit:
            raise ValueError(
                f"{path}: actions reach {int(jnp.max(demos.actions))}, env {name!r} has only "
                f"{limit} actions"
            )
