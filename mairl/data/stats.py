"""Summaries of demonstrations (host-side NumPy)."""

from __future__ import annotations

import numpy as np

from mairl.data.demonstrations import Demonstrations


def episode_returns(demos: Demonstrations) -> np.ndarray:
    """Undiscounted per-agent return of every episode: ``(episode, agent)``.

    Episodes are in the order of their ``episode_id``; row ``e`` sums the true
    rewards of the transitions of the ``e``-th distinct id.

    Raises:
        ValueError: ``demos`` carry no true rewards.
    """
    if demos.rewards is None:
        raise ValueError("episode_returns: the demonstrations carry no true rewards")
    ids = np.asarray(demos.episode_id)
    rewards = np.asarray(demos.rewards)
    unique, inverse = np.unique(ids, return_inverse=True)
    totals = np.zeros((unique.size, rewards.shape[1]))
    np.add.at(totals, inverse, rewards)
    return totals
