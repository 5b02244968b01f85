"""The MAMQL authors' Gems demonstrations, read through the restricted unpickler.

The data file is not part of the repository: it is looked up in
``../shared/data/`` next to the checkout, or at ``$MAIRL_GEMS_DATA``, and the
tests that need it skip where it is absent. The safety tests use small crafted
files and always run.
"""

from __future__ import annotations

import builtins
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mairl.data import (
    Demonstrations,
    UnsafePickleError,
    from_mamql_gems,
    load,
    load_pickle_restricted,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DATA = Path(os.environ.get("MAIRL_GEMS_DATA", SHARED_DATA / "gems_mamql_authors.pkl.gz"))


AUTHORS_RULE = {"end_rule": "joint-return", "return_to_end": 20.0, "max_steps": 45}


def _need_data():
    if not DATA.is_file():
        pytest.skip(
            f"the MAMQL authors' Gems file is not at {DATA} (set MAIRL_GEMS_DATA to its path)"
        )


@pytest.fixture(scope="module")
def gems() -> Demonstrations:
    _need_data()
    return from_mamql_gems(DATA)


@pytest.fixture(scope="module")
def records() -> list:
    """The file's own records, read independently of the converter (restricted unpickler)."""
    _need_data()
    return load_pickle_restricted(DATA)


# -- the authors' file ----------------------------------------------------------------------
def test_sizes_and_types(gems):
    assert gems.num_transitions == 20_000
    assert gems.num_agents == 2 and gems.obs_shape == (5, 15, 15)
    assert gems.obs.dtype == np.uint8 and gems.actions.dtype == np.int32  # 0/1 maps
    assert gems.env_id == "gems" and gems.num_actions == 5
    assert gems.actions.shape == (20_000, 2) and gems.rewards.shape == (20_000, 2)


def test_known_totals(gems):
    assert int(gems.terminated.sum()) == 864
    np.testing.assert_array_equal(np.asarray(gems.rewards).sum(axis=0), [11_428, 11_330])
    assert set(np.unique(np.asarray(gems.rewards)).tolist()) <= {0.0, 1.0, 6.0, 7.0}


def test_experts_never_stay(gems):
    counts = np.bincount(np.asarray(gems.actions).ravel(), minlength=5)
    assert counts[4] == 0 and counts[:4].min() > 0


def test_episode_boundaries(gems):
    lengths = gems.episode_lengths()
    assert lengths.max() <= 45 and lengths.min() >= 1
    starts, stops = gems.episode_bounds()
    obs, next_obs = np.asarray(gems.obs[:, 0]), np.asarray(gems.next_obs[:, 0])
    inner = np.setdiff1d(np.arange(gems.num_transitions), stops - 1)
    np.testing.assert_array_equal(next_obs[inner], obs[inner + 1])
    # Measured on this file: every episode but the last ends in `done`; the last
    # 8 transitions are an unfinished episode, cut by the end of the data.
    assert gems.num_episodes == 865
    truncated = np.flatnonzero(np.asarray(gems.truncated))
    np.testing.assert_array_equal(truncated, [gems.num_transitions - 1])
    assert lengths[-1] == 8


def test_records_the_authors_episode_rule(gems, tmp_path):
    """The file's flags follow the joint-return rule, so the converter records it."""
    assert gems.meta["episode_rule"] == AUTHORS_RULE
    assert gems.expert_alpha is None and gems.expert_gamma is None
    back = load(gems.select_episodes(slice(0, 3)).save(tmp_path / "a.npz"))
    assert back.meta["episode_rule"] == AUTHORS_RULE
    starts, stops = gems.episode_bounds()
    joint = np.asarray(gems.rewards).sum(axis=1)
    finals = np.array([joint[a:b].sum() for a, b in zip(starts, stops, strict=True)])
    terminated = np.asarray(gems.terminated)[stops - 1]
    assert terminated.sum() == 864
    assert finals[terminated].min() == 21 and finals[terminated].max() == 32


def test_channels_actions_rewards_are_the_records(gems, records):
    """Each agent's row of ``obs``/``next_obs`` is the record's map, channel by channel
    (agent 0, agent 1, blue, red, purple); actions and rewards keep the agent order."""
    index = np.r_[0:300, len(records) - 300 : len(records)]
    obs, next_obs = np.asarray(gems.obs[index]), np.asarray(gems.next_obs[index])
    s = np.stack([records[t][0] for t in index])
    s_next = np.stack([records[t][1] for t in index])
    for agent in range(2):
        for channel in range(5):
            np.testing.assert_array_equal(obs[:, agent, channel], s[:, channel])
            np.testing.assert_array_equal(next_obs[:, agent, channel], s_next[:, channel])
    a = np.stack([records[t][2] for t in index])
    np.testing.assert_array_equal(np.asarray(gems.actions[index, 0]), a[:, :5].argmax(-1))
    np.testing.assert_array_equal(np.asarray(gems.actions[index, 1]), a[:, 5:].argmax(-1))
    r = np.stack([records[t][3] for t in index])
    np.testing.assert_array_equal(np.asarray(gems.rewards[index]), r)


def test_own_gem_rewards_match_each_agents_channels(gems):
    """Semantics, not layout: where agent ``i`` earns an own-gem reward (1 or 7), its
    cell after the move (channel ``i`` of ``next_obs``) held one of its own gems
    before (channel ``2 + i`` of ``obs``: blue for agent 0, red for agent 1)."""
    obs, next_obs = np.asarray(gems.obs[:, 0]), np.asarray(gems.next_obs[:, 0])
    rewards = np.asarray(gems.rewards)
    for agent in range(2):
        own = np.flatnonzero(rewards[:, agent] % 6 == 1)
        assert len(own) > 1000
        on_gem = (next_obs[own, agent] * obs[own, 2 + agent]).sum(axis=(1, 2))
        np.testing.assert_array_equal(on_gem, 1.0)
        other = (next_obs[own, agent] * obs[own, 3 - agent]).sum(axis=(1, 2))
        assert other.mean() < 0.2  # the other agent's gems: only by coincidence


def test_both_agents_see_the_same_map(gems):
    obs = np.asarray(gems.obs)
    np.testing.assert_array_equal(obs[:, 0], obs[:, 1])
    assert set(np.unique(obs[:100]).tolist()) <= {0.0, 1.0}
    # One cell for each agent.
    np.testing.assert_array_equal(obs[:, 0, :2].sum(axis=(2, 3)), 1.0)


# -- crafted files: format ------------------------------------------------------------------
def _write(path: Path, obj) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


def _record(x: int, y: int, a0: int, a1: int, done: bool = False):
    s = np.zeros((5, 15, 15))
    s[0, x, y] = s[1, 7, 7] = 1.0
    s_next = np.zeros((5, 15, 15))
    s_next[0, x + 1, y] = s_next[1, 7, 7] = 1.0
    a = np.zeros(10, np.int64)
    a[a0] = a[5 + a1] = 1
    return s, s_next, a, np.array([1.0, 0.0]), done


def _chain(length: int, start: int = 0, done_last: bool = False):
    return [
        _record(start + i, 3, i % 4, (i + 1) % 4, done=done_last and i == length - 1)
        for i in range(length)
    ]


def _random_records(rng, length: int, returns: list[float] | None = None):
    """``length`` records of distinct, asymmetric maps (one cell per agent, three per
    gem colour), random joint actions, rewards that differ per agent and ``done``
    by the joint-return rule; a record's ``s_next`` is the next one's ``s``."""
    maps = np.zeros((length + 1, 5, 15, 15))
    for t in range(length + 1):
        cells = rng.choice(225, size=11, replace=False)
        maps[t, 0].flat[cells[0]] = maps[t, 1].flat[cells[1]] = 1.0
        for colour in range(3):
            maps[t, 2 + colour].flat[cells[2 + 3 * colour: 5 + 3 * colour]] = 1.0
    out, joint = [], 0.0
    for t in range(length):
        a = np.zeros(10)
        a[rng.integers(0, 5)] = a[5 + rng.integers(0, 5)] = 1.0
        r = np.array([1.0, 0.0]) if t % 3 else np.array([7.0, 6.0])
        joint += r.sum()
        done = joint > 20
        if done:
            joint = 0.0
        out.append((maps[t], maps[t + 1], a, r, done))
    return out


def test_crafted_records_channel_by_channel(tmp_path):
    """A small file written here: each converted channel, action and reward is the
    record's own, for both agents (runs without ``../shared``)."""
    records = _random_records(np.random.default_rng(0), 12)
    demos = from_mamql_gems(_write(tmp_path / "g.pkl.gz", records))
    obs, next_obs = np.asarray(demos.obs), np.asarray(demos.next_obs)
    for t, (s, s_next, a, r, done) in enumerate(records):
        for agent in range(2):
            for channel in range(5):
                np.testing.assert_array_equal(obs[t, agent, channel], s[channel])
                np.testing.assert_array_equal(next_obs[t, agent, channel], s_next[channel])
        assert np.asarray(demos.actions[t]).tolist() == [a[:5].argmax(), a[5:].argmax()]
        assert np.asarray(demos.rewards[t]).tolist() == r.tolist()
        assert bool(demos.terminated[t]) == done
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(demos.terminated)), [3, 9])
    # joint returns 13, 14, 15, 28 (ends), then 1, 2, 15, 16, 17, 30 (ends), 1, 2 (cut)
    assert demos.meta["episode_rule"] == AUTHORS_RULE


def test_episode_rule_recorded_only_when_the_flags_follow_it(tmp_path):
    records = _random_records(np.random.default_rng(1), 12)
    uncapped = from_mamql_gems(_write(tmp_path / "g.pkl.gz", records), max_steps=None)
    assert uncapped.meta["episode_rule"] == {"end_rule": "joint-return", "return_to_end": 20.0}
    early = list(records)
    early[1] = early[1][:4] + (True,)  # ends at a joint return of 14: not the rule
    assert from_mamql_gems(_write(tmp_path / "e.pkl.gz", early)).episode_rule is None
    late = list(records)
    late[3] = late[3][:4] + (False,)  # runs on past 20: not the rule either
    assert from_mamql_gems(_write(tmp_path / "l.pkl.gz", late)).episode_rule is None


def test_boundaries_on_crafted_file(tmp_path):
    # Episode A: 3 steps ending in done. Episode B: 4 continuous steps, then a jump
    # (truncated). Episode C: 5 continuous steps, cut at max_steps=3 then at the end.
    records = _chain(3, 0, done_last=True) + _chain(4, 0) + _chain(5, 0)
    demos = from_mamql_gems(_write(tmp_path / "g.pkl.gz", records), max_steps=3)
    np.testing.assert_array_equal(demos.episode_lengths(), [3, 3, 1, 3, 2])
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(demos.terminated)), [2])
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(demos.truncated)), [5, 6, 9, 11])
    np.testing.assert_array_equal(demos.actions[:4], [[0, 1], [1, 2], [2, 3], [0, 1]])
    uncapped = from_mamql_gems(tmp_path / "g.pkl.gz", max_steps=None)
    np.testing.assert_array_equal(uncapped.episode_lengths(), [3, 4, 5])
    assert uncapped.obs.shape == (12, 2, 5, 15, 15)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.__setitem__(2, r[2][:4]), r"record 2: expected a 5-tuple .* length 4"),
        (
            lambda r: r.__setitem__(1, (r[1][0][:4],) + r[1][1:]),
            r"record 1, field 's': expected shape \(5, 15, 15\), got \(4, 15, 15\)",
        ),
        (
            lambda r: r.__setitem__(0, r[0][:2] + (np.ones(10),) + r[0][3:]),
            r"record 0, field 'a': expected two concatenated one-hots of 5",
        ),
        (
            lambda r: r.__setitem__(2, r[2][:3] + (np.array([np.nan, 0.0]), False)),
            r"record 2, field 'r': expected finite values",
        ),
        (
            lambda r: r.__setitem__(1, (r[1][0] * 0.5,) + r[1][1:]),
            r"record 1, field 's': expected a Gems map of 0s and 1s, got \[0.5\]",
        ),
        (lambda r: r.__setitem__(1, r[1][:4] + ("yes",)), r"record 1, field 'done'"),
        (
            lambda r: r.__setitem__(1, r[1][:3] + ([1.0, 0.0], False)),
            r"record 1, field 'r': expected a NumPy array, got list",
        ),
    ],
)
def test_malformed_records_are_named(tmp_path, mutate, message):
    records = _chain(3)
    mutate(records)
    with pytest.raises(ValueError, match=message):
        from_mamql_gems(_write(tmp_path / "bad.pkl.gz", records))


def test_not_a_gzip_pickle(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_chain(2)))
    with pytest.raises(ValueError, match=r"plain\.pkl: not a readable gzip-compressed pickle"):
        from_mamql_gems(plain)
    cut = tmp_path / "cut.pkl.gz"
    raw = gzip.compress(pickle.dumps(_chain(2)))
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut\.pkl\.gz"):
        from_mamql_gems(cut)
    with pytest.raises(ValueError, match="expected a list"):
        from_mamql_gems(_write(tmp_path / "dict.pkl.gz", {"a": 1}))


# -- crafted files: code execution is refused -----------------------------------------------
class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, source: str):
        self.source = source

    def __reduce__(self):
        return (builtins.eval, (self.source,))


class _NumpyLoad:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (np.load, (self.path,))


@pytest.mark.parametrize(
    "payload, refused",
    [
        (lambda sentinel: _System(f"touch {sentinel}"), r"refused global (posix|nt)\.system"),
        (
            lambda sentinel: [_chain(1)[0], (_System(f"touch {sentinel}"),)],
            r"refused global (posix|nt)\.system",
        ),
        (lambda sentinel: _Eval(f"open({str(sentinel)!r}, 'w')"), r"refused global builtins\.eval"),
        (lambda sentinel: _NumpyLoad(str(sentinel)), r"refused global numpy\.load"),
    ],
)
def test_code_in_pickle_is_refused(tmp_path, payload, refused):
    sentinel = tmp_path / "sentinel"
    path = _write(tmp_path / "evil.pkl.gz", payload(sentinel))
    with pytest.raises(UnsafePickleError, match=refused) as info:
        from_mamql_gems(path)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, ValueError)
    assert "evil.pkl.gz" in str(info.value)
    assert not sentinel.exists()


def test_object_arrays_are_refused(tmp_path):
    path = _write(tmp_path / "objects.pkl.gz", np.array([1, "x"], dtype=object))
    with pytest.raises(UnsafePickleError, match="object dtype"):
        load_pickle_restricted(path)


def test_plain_arrays_and_scalars_are_admitted(tmp_path):
    value = [np.arange(6.0).reshape(2, 3), np.float32(2.5), np.bool_(True), (1, "x"), {"k": 2}]
    back = load_pickle_restricted(_write(tmp_path / "ok.pkl.gz", value))
    np.testing.assert_array_equal(back[0], value[0])
    assert back[1:] == value[1:]
