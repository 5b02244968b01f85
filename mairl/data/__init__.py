"""Expert demonstrations: storage, validation, sampling, collection, converters.

- :class:`Demonstrations`: validated pytree, time first ``(T, N, ...)``;
  ``save`` / :func:`load` as ``.npz``; :func:`concatenate`.
- :func:`sample_transitions`, :func:`to_agent_major`: agent-major
  :class:`Transition` batches ``(N, batch, ...)`` for the algorithms;
  :func:`split_by_episode` for held-out episodes.
- :func:`collect`: record any policy on vmapped jitted envs (or host envs).
- :func:`episode_returns`: per-agent true return of every episode.
- :func:`from_mamql_gems`: the MAMQL authors' Gems file, read safely.

True rewards ride along for evaluation only; no IRL algorithm may learn from them.
"""

from mairl.data.collect import collect
from mairl.data.demonstrations import SCHEMA_VERSION, Demonstrations, concatenate, load
from mairl.data.mamql import (
    RestrictedUnpickler,
    UnsafePickleError,
    from_mamql_gems,
    load_pickle_restricted,
)
from mairl.data.sampling import (
    Transition,
    gather_transitions,
    sample_transitions,
    split_by_episode,
    to_agent_major,
)
from mairl.data.stats import episode_returns

__all__ = [
    "SCHEMA_VERSION",
    "Demonstrations",
    "RestrictedUnpickler",
    "Transition",
    "UnsafePickleError",
    "collect",
    "concatenate",
    "episode_returns",
    "from_mamql_gems",
    "gather_transitions",
    "load",
    "load_pickle_restricted",
    "sample_transitions",
    "split_by_episode",
    "to_agent_major",
]
