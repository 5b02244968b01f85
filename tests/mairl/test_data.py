"""Tests of mairl.data: validation, persistence, sampling, splits, collection."""

from __future__ import annotations

import types
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete
from mairl.data import (
    SCHEMA_VERSION,
    Demonstrations,
    Transition,
    collect,
    concatenate,
    gather_transitions,
    load,
    sample_transitions,
    split_by_episode,
    to_agent_major,
)
from mairl.data.demonstrations import entries_checksum


# -- a tiny game of our own -----------------------------------------------------------------
@struct.dataclass
class CounterState(EnvState):
    count: jax.Array


class CounterGame(Environment):
    """Two agents add 0, 1 or 2 to a shared counter; the episode ends at random.

    Agent ``i`` observes ``[count, time, i]``. Each step terminates with
    probability ``p_end``; ``max_steps`` truncates the rest, so both kinds of
    episode end occur. Reward of agent ``i``: its own action minus the other's.
    """

    num_agents = 2
    agents = ("a", "b")
    obs_shape = (3,)
    action_spaces = (Discrete(3), Discrete(3))

    def __init__(self, max_steps: int = 5, p_end: float = 0.25):
        self.max_steps = max_steps
        self.p_end = p_end

    def _obs(self, state):
        agent = jnp.arange(2, dtype=jnp.float32)
        count = jnp.full(2, state.count, jnp.float32)
        time = jnp.full(2, state.time, jnp.float32)
        return jnp.stack([count, time, agent], axis=1)

    def reset_env(self, key):
        state = CounterState(time=jnp.int32(0), count=jax.random.randint(key, (), 0, 5))
        return self._obs(state), state

    def step_env(self, key, state, actions):
        state = CounterState(time=state.time + 1, count=state.count + actions.sum())
        reward = (actions - actions[::-1]).astype(jnp.float32)
        terminated = jax.random.bernoulli(key, self.p_end)
        return self._obs(state), state, reward, terminated, {}


class HostCounterGame(CounterGame):
    """The same game behind a host-side (NumPy in, NumPy out) interface."""

    jittable = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reset = jax.jit(super().reset)
        self._step = jax.jit(super().step)

    def reset(self, key):
        return jax.device_get(self._reset(key))

    def step(self, key, state, actions):
        assert isinstance(actions, np.ndarray)
        return jax.device_get(self._step(key, state, actions))


def random_policy(key, obs):
    return jax.random.randint(key, (obs.shape[0],), 0, 3)


GAME = CounterGame()  # one instance, so collect's compiled steps are reused


@pytest.fixture(scope="module")
def collected() -> Demonstrations:
    return collect(jax.random.key(0), GAME, random_policy, 23, num_envs=4)


# -- hand-made valid fields -----------------------------------------------------------------
def valid_fields(num_t: int = 6) -> dict:
    """Two episodes of three transitions: the first terminated, the second truncated."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(num_t, 2, 3)).astype(np.float32)
    done_at = num_t // 2 - 1
    terminated = np.zeros(num_t, bool)
    terminated[done_at] = True
    truncated = np.zeros(num_t, bool)
    truncated[-1] = True
    return dict(
        obs=obs,
        actions=rng.integers(0, 3, size=(num_t, 2)).astype(np.int32),
        next_obs=obs + 1,
        terminated=terminated,
        truncated=truncated,
        episode_id=(np.arange(num_t) > done_at).astype(np.int32),
        rewards=rng.normal(size=(num_t, 2)).astype(np.float32),
    )


PROVENANCE = ("episode_rule", "expert_alpha", "expert_gamma")
AUTHORS_RULE = {"end_rule": "joint-return", "return_to_end": 20.0, "max_steps": 45}


def make(**overrides) -> Demonstrations:
    fields = valid_fields()
    meta = {
        "env_id": overrides.pop("env_id", "counter"),
        "num_actions": overrides.pop("num_actions", 3),
        **{k: overrides.pop(k) for k in PROVENANCE if k in overrides},
    }
    fields.update(overrides)
    return Demonstrations.create(**fields, **meta)


def test_create_valid():
    d = make()
    assert (d.num_transitions, d.num_agents, d.num_episodes) == (6, 2, 2)
    assert d.obs_shape == (3,) and d.discrete
    assert d.actions.dtype == jnp.int32 and d.episode_id.dtype == jnp.int32
    assert d.terminated.dtype == jnp.bool_ and d.rewards.dtype == jnp.float32
    np.testing.assert_array_equal(d.episode_lengths(), [3, 3])
    assert d.validate() is d


def test_create_derives_episode_id_and_casts_int64():
    f = valid_fields()
    f["actions"] = f["actions"].astype(np.int64)
    del f["episode_id"]
    d = Demonstrations.create(**f, num_actions=3)
    np.testing.assert_array_equal(d.episode_id, [0, 0, 0, 1, 1, 1])
    assert d.actions.dtype == jnp.int32


def test_continuous_actions():
    f = valid_fields()
    f["actions"] = np.zeros((6, 2, 4), np.float32)
    d = Demonstrations.create(**f)
    assert not d.discrete and d.actions.shape == (6, 2, 4)
    with pytest.raises(ValueError, match=r"Demonstrations\.actions: expected integer actions"):
        Demonstrations.create(**f, num_actions=3)


def _nan_at(x, t):
    x = x.copy()
    x[t] = np.nan
    return x


def _set(x, index, value):
    x = x.copy()
    x[index] = value
    return x


BAD_INPUTS = {
    "actions shape": (
        lambda f: {"actions": np.zeros((6, 3), np.int32)},
        r"Demonstrations\.actions: expected shape \(T, N\) = \(6, 2\) for integer actions, "
        r"got \(6, 3\)",
    ),
    "actions too large": (
        lambda f: {"actions": _set(f["actions"], (4, 1), 3)},
        r"Demonstrations\.actions: expected actions in \[0, num_actions\) = \[0, 3\), "
        r"got 3 at transition 4",
    ),
    "actions negative": (
        lambda f: {"actions": _set(f["actions"], (2, 0), -1)},
        r"Demonstrations\.actions: expected actions >= 0",
    ),
    "actions bool": (
        lambda f: {"actions": f["actions"] > 0},
        r"Demonstrations\.actions: expected int .* got dtype bool",
    ),
    "actions nan": (
        lambda f: {"actions": _nan_at(np.zeros((6, 2, 2), np.float32), 3), "num_actions": None},
        r"Demonstrations\.actions: expected finite values, got NaN or inf at transition 3",
    ),
    "obs one axis": (
        lambda f: {"obs": np.zeros(6, np.float32)},
        r"Demonstrations\.obs: expected shape \(T, N, \*obs_shape\)",
    ),
    "obs empty": (
        lambda f: {"obs": np.zeros((0, 2, 3), np.float32)},
        r"Demonstrations\.obs: expected at least one transition",
    ),
    "obs T disagrees": (
        lambda f: {"obs": f["obs"][:5]},
        r"Demonstrations\.next_obs: expected shape .* = \(5, 2, 3\) \(as obs\), got \(6, 2, 3\)",
    ),
    "next_obs shape": (
        lambda f: {"next_obs": np.zeros((6, 2, 4), np.float32)},
        r"Demonstrations\.next_obs: expected shape \(T, N, \*obs_shape\) = \(6, 2, 3\)",
    ),
    "obs nan": (
        lambda f: {"obs": _nan_at(f["obs"], 2)},
        r"Demonstrations\.obs: expected finite values, got NaN or inf at transition 2",
    ),
    "next_obs inf": (
        lambda f: {"next_obs": _set(f["next_obs"], (5, 1, 0), np.inf)},
        r"Demonstrations\.next_obs: expected finite values, got NaN or inf at transition 5",
    ),
    "obs object dtype": (
        lambda f: {"obs": f["obs"].astype(object)},
        r"Demonstrations\.obs: expected a numeric dtype, got object",
    ),
    "terminated shape": (
        lambda f: {"terminated": f["terminated"][:, None]},
        r"Demonstrations\.terminated: expected shape \(T,\) = \(6,\), got \(6, 1\)",
    ),
    "truncated int": (
        lambda f: {"truncated": f["truncated"].astype(np.int32)},
        r"Demonstrations\.truncated: expected dtype bool, got int32",
    ),
    "both flags": (
        lambda f: {"terminated": _set(f["terminated"], 5, True)},
        r"Demonstrations\.truncated: transition 5 is both terminated and truncated",
    ),
    "episode unfinished": (
        lambda f: {"truncated": np.zeros(6, bool)},
        r"Demonstrations\.terminated: episode_id 1 ends at transition 5 with neither",
    ),
    "flag inside episode": (
        lambda f: {
            "episode_id": np.zeros(6, np.int32),
            "truncated": np.zeros(6, bool),
            "terminated": _set(np.zeros(6, bool), [1, 5], True),
        },
        r"Demonstrations\.episode_id: transition 1 is terminated or truncated but transition 2 "
        r"continues episode_id 0",
    ),
    "episode ids decrease": (
        lambda f: {"episode_id": np.array([1, 1, 1, 0, 0, 0], np.int32)},
        r"Demonstrations\.episode_id: expected non-decreasing ids .* got 0 after 1 at "
        r"transition 3",
    ),
    "episode ids float": (
        lambda f: {"episode_id": f["episode_id"].astype(np.float32)},
        r"Demonstrations\.episode_id: expected an integer dtype, got float32",
    ),
    "episode ids negative": (
        lambda f: {"episode_id": f["episode_id"] - 1},
        r"Demonstrations\.episode_id: expected ids in \[0, 2\*\*31\)",
    ),
    "rewards shape": (
        lambda f: {"rewards": np.zeros((6,), np.float32)},
        r"Demonstrations\.rewards: expected shape \(T, N\) = \(6, 2\), got \(6,\)",
    ),
    "rewards nan": (
        lambda f: {"rewards": _nan_at(f["rewards"], 1)},
        r"Demonstrations\.rewards: expected finite values, got NaN or inf at transition 1",
    ),
    "num_actions": (
        lambda f: {"num_actions": 0},
        r"Demonstrations\.num_actions: expected a positive number of actions, got 0",
    ),
    "env_id": (
        lambda f: {"env_id": 3},
        r"Demonstrations\.env_id: expected a str or None, got int",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_create_rejects(case):
    mutate, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        make(**mutate(valid_fields()))


# -- persistence ----------------------------------------------------------------------------
def assert_demos_equal(a: Demonstrations, b: Demonstrations):
    assert a.meta == b.meta
    for name in ("obs", "actions", "next_obs", "terminated", "truncated", "episode_id"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.rewards is None) == (b.rewards is None)
    if a.rewards is not None:
        np.testing.assert_array_equal(a.rewards, b.rewards)


@pytest.mark.parametrize("compress", [True, False])
def test_save_load_round_trip(tmp_path, compress):
    d = make()
    path = d.save(tmp_path / "demos.npz", compress=compress)
    assert path == tmp_path / "demos.npz" and sorted(p.name for p in tmp_path.iterdir()) == [
        "demos.npz"
    ]
    assert_demos_equal(load(path), d)
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz["schema_version"]) == SCHEMA_VERSION
        assert str(npz["env_id"]) == "counter" and int(npz["num_agents"]) == 2
        assert int(npz["num_actions"]) == 3


def test_round_trip_without_rewards_or_metadata(tmp_path):
    f = valid_fields()
    del f["rewards"]
    d = Demonstrations.create(**f)
    back = load(d.save(tmp_path / "d.npz"))
    assert back.rewards is None and back.env_id is None and back.num_actions is None
    assert_demos_equal(back, d)


def test_load_checks_env_and_agent_count(tmp_path):
    path = make(env_id=None).save(tmp_path / "d.npz")
    game = CounterGame()
    assert load(path, env=game, expected_num_agents=2).num_agents == 2
    with pytest.raises(ValueError, match=r"d\.npz: expected 3 agents, the file holds 2"):
        load(path, expected_num_agents=3)
    three = types.SimpleNamespace(num_agents=3, obs_shape=(3,), name="three")
    with pytest.raises(ValueError, match=r"have 2 agents, env 'three' has 3"):
        load(path, env=three)
    wide = types.SimpleNamespace(num_agents=2, obs_shape=(4,), name="wide")
    with pytest.raises(ValueError, match=r"obs_shape \(3,\), env 'wide' has \(4,\)"):
        load(path, env=wide)
    other = make(env_id="gems").save(tmp_path / "g.npz")
    game.env_id = "counter"
    with pytest.raises(ValueError, match=r"recorded on env 'gems', got env 'counter'"):
        load(other, env=game)
    few = types.SimpleNamespace(
        num_agents=2, obs_shape=(3,), discrete=True, action_spaces=(Discrete(2),) * 2
    )
    with pytest.raises(ValueError, match=r"only 2 actions"):
        load(path, env=few)


def _rewrite(src, dst, **changes):
    """``src`` with entries changed (``None``: removed), as a writer would have saved
    them: the checksum recomputed (schema version 3), or dropped for older versions."""
    with np.load(src, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if v is None:
            entries.pop(k)
        else:
            entries[k] = v
    if "checksum" not in changes:
        entries.pop("checksum", None)
        if int(entries["schema_version"]) >= 3:
            entries["checksum"] = np.asarray(entries_checksum(entries))
    np.savez(dst, **entries)
    return dst


def test_load_rejects_bad_files(tmp_path):
    good = make().save(tmp_path / "good.npz")
    raw = good.read_bytes()

    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    garbled = tmp_path / "garbled.npz"
    middle = len(raw) // 2
    garbled.write_bytes(raw[:middle] + bytes(64) + raw[middle + 64 :])
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(500))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    for bad in (cut, garbled, noise, empty, npy):
        with pytest.raises(ValueError, match=rf"{bad.name}: cannot read demonstrations"):
            load(bad)

    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load(tmp_path / "absent.npz")

    cases = {
        "version": ({"schema_version": np.asarray(99)}, r"unknown schema_version 99"),
        "missing": ({"actions": None}, r"missing entries \['actions'\]"),
        "extra": ({"surprise": np.zeros(2)}, r"unexpected entries \['surprise'\]"),
        "agents": ({"num_agents": np.asarray(3)}, r"num_agents entry says 3 but obs has 2"),
        "bad values": (
            {"actions": np.full((6, 2), 7, np.int32)},
            r"bad values\.npz: Demonstrations\.actions: expected actions in \[0, num_actions\)",
        ),
        "object": (
            {"obs": np.empty((6, 2, 3), object)},
            r"object\.npz: cannot read demonstrations \(ValueError: Object arrays",
        ),
    }
    for name, (changes, message) in cases.items():
        path = _rewrite(good, tmp_path / f"{name}.npz", **changes)
        with pytest.raises(ValueError, match=message):
            load(path)


def test_garbled_member_is_detected(tmp_path):
    path = make().save(tmp_path / "d.npz", compress=False)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("obs.npy")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"d\.npz: cannot read demonstrations \(BadZipFile"):
        load(path)


# -- provenance: episode rule and the expert's temperature and discount ---------------------
def test_provenance_round_trip(tmp_path):
    d = make(episode_rule=AUTHORS_RULE, expert_alpha=0.05, expert_gamma=0.95)
    assert d.episode_rule == (("end_rule", "joint-return"), ("max_steps", 45),
                              ("return_to_end", 20.0))
    assert d.meta == {"env_id": "counter", "num_actions": 3, "episode_rule": AUTHORS_RULE,
                      "expert_alpha": 0.05, "expert_gamma": 0.95}
    back = load(d.save(tmp_path / "d.npz"))
    assert_demos_equal(back, d)
    assert dict(back.episode_rule) == AUTHORS_RULE and back.expert_gamma == 0.95
    assert isinstance(dict(back.episode_rule)["max_steps"], int)
    with np.load(tmp_path / "d.npz", allow_pickle=False) as npz:
        assert int(npz["schema_version"]) == SCHEMA_VERSION == 3
        assert str(npz["episode_rule"]) == (
            '{"end_rule": "joint-return", "max_steps": 45, "return_to_end": 20.0}'
        )
        assert npz["expert_alpha"].dtype == np.float64 and float(npz["expert_alpha"]) == 0.05
    # static metadata: hashable, so the demonstrations still pass through jit
    assert float(jax.jit(lambda x: x.obs.sum())(d)) == pytest.approx(float(d.obs.sum()))
    assert split_by_episode(d, 0.5)[1].meta == d.meta and d.select_episodes([1]).meta == d.meta
    assert concatenate([d, d]).meta == d.meta


def test_provenance_unknown_is_none(tmp_path):
    d = make()
    assert d.meta["episode_rule"] is None and d.expert_alpha is None and d.expert_gamma is None
    path = d.save(tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["episode_rule"]) == "" and np.isnan(npz["expert_gamma"])
    assert load(path).meta == d.meta


def test_schema_version_1_files_still_load(tmp_path):
    good = make(episode_rule=AUTHORS_RULE, expert_alpha=0.5).save(tmp_path / "good.npz")
    v1 = _rewrite(good, tmp_path / "v1.npz", schema_version=np.asarray(1, np.int64),
                  episode_rule=None, expert_alpha=None, expert_gamma=None)
    old = load(v1)
    assert old.episode_rule is None and old.expert_alpha is None and old.expert_gamma is None
    np.testing.assert_array_equal(old.obs, make().obs)
    v1_extra = _rewrite(good, tmp_path / "v1x.npz", schema_version=np.asarray(1, np.int64))
    with pytest.raises(ValueError, match=r"unexpected entries \['episode_rule', 'expert_alpha'"):
        load(v1_extra)


BAD_PROVENANCE = {
    "rule not a mapping": ({"episode_rule": "joint-return"}, r"Demonstrations\.episode_rule: "),
    "rule list value": ({"episode_rule": {"max_steps": [45]}}, r"episode_rule: value of 'max_st"),
    "rule nan value": ({"episode_rule": {"x": float("nan")}}, r"episode_rule: value of 'x'"),
    "rule bad name": ({"episode_rule": {"max steps": 3}}, r"episode_rule: names must be keyword"),
    "alpha zero": ({"expert_alpha": 0.0}, r"Demonstrations\.expert_alpha: expected a temp"),
    "alpha nan": ({"expert_alpha": float("nan")}, r"expert_alpha: expected a finite"),
    "alpha str": ({"expert_alpha": "0.05"}, r"expert_alpha: expected a real number"),
    "alpha bool": ({"expert_alpha": True}, r"expert_alpha: expected a real number"),
    "gamma above one": ({"expert_gamma": 1.5}, r"Demonstrations\.expert_gamma: expected a disc"),
    "gamma negative": ({"expert_gamma": -0.1}, r"expert_gamma: expected a discount in \[0, 1\]"),
}


@pytest.mark.parametrize("case", list(BAD_PROVENANCE))
def test_bad_provenance_names_the_field(case):
    meta, message = BAD_PROVENANCE[case]
    with pytest.raises(ValueError, match=message):
        make(**meta)
    with pytest.raises(ValueError, match=message):
        make().with_meta(**meta)
    with pytest.raises(ValueError, match=message):
        make().replace(**meta).validate()


def test_with_meta():
    d = make(episode_rule=AUTHORS_RULE).with_meta(expert_alpha=0.05, expert_gamma=0.95)
    assert (d.expert_alpha, d.expert_gamma, dict(d.episode_rule)) == (0.05, 0.95, AUTHORS_RULE)
    assert d.with_meta(episode_rule=None).episode_rule is None
    assert d.with_meta(expert_alpha=np.float32(0.5)).expert_alpha == 0.5
    with pytest.raises(TypeError, match=r"unknown metadata \['alpha'\]"):
        d.with_meta(alpha=0.1)
    with pytest.raises(ValueError, match=r"Demonstrations\.num_actions"):
        d.with_meta(num_actions=0)


def test_load_rejects_bad_provenance_entries(tmp_path):
    good = make().save(tmp_path / "good.npz")
    cases = {
        "json": ({"episode_rule": np.asarray("{end_rule: 1")}, r"json\.npz: entry 'episode_rule' "
                 r"is not valid JSON"),
        "array": ({"episode_rule": np.asarray("[1, 2]")}, r"entry 'episode_rule' should be a JSON "
                  r"object"),
        "list value": ({"episode_rule": np.asarray('{"max_steps": [1]}')},
                       r"list value\.npz: Demonstrations\.episode_rule: value of 'max_steps'"),
        "alpha dtype": ({"expert_alpha": np.asarray("0.1")}, r"entry 'expert_alpha' should be a "
                        r"float"),
        "alpha shape": ({"expert_alpha": np.zeros(2)}, r"entry 'expert_alpha' should be a scalar"),
        "alpha value": ({"expert_alpha": np.asarray(-1.0)},
                        r"alpha value\.npz: Demonstrations\.expert_alpha: expected a temperature"),
        "gamma value": ({"expert_gamma": np.asarray(np.inf)}, r"expert_gamma: expected a finite"),
    }
    for name, (changes, message) in cases.items():
        path = _rewrite(good, tmp_path / f"{name}.npz", **changes)
        with pytest.raises(ValueError, match=message):
            load(path)


def test_concatenate_rejects_other_provenance():
    with pytest.raises(ValueError, match=r"demos\[1\] expert_alpha is 0\.5, expected 0\.05"):
        concatenate([make(expert_alpha=0.05), make(expert_alpha=0.5)])
    with pytest.raises(ValueError, match=r"demos\[1\] episode_rule is None"):
        concatenate([make(episode_rule=AUTHORS_RULE), make()])


# -- combining and selecting ----------------------------------------------------------------
def test_concatenate_renumbers_episodes():
    a, b = make(), make()
    c = concatenate([a, b, a])
    assert c.num_transitions == 18 and c.num_episodes == 6
    np.testing.assert_array_equal(c.episode_id, np.repeat(np.arange(6), 3))
    np.testing.assert_array_equal(c.obs[6:12], b.obs)
    c.validate()


def test_concatenate_rejects_mismatch():
    f = valid_fields()
    f["obs"] = f["next_obs"] = np.zeros((6, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"demos\[1\] obs is \(2, 4\), expected \(2, 3\)"):
        concatenate([make(), make(**f)])
    with pytest.raises(ValueError, match=r"demos\[1\] rewards present is False"):
        concatenate([make(), make(rewards=None)])
    with pytest.raises(ValueError, match=r"demos\[1\] env_id is other"):
        concatenate([make(), make(env_id="other")])
    with pytest.raises(ValueError, match="at least one"):
        concatenate([])


def test_select_episodes(collected):
    lengths = collected.episode_lengths()
    starts, _ = collected.episode_bounds()
    sub = collected.select_episodes([4, 1, 4])
    np.testing.assert_array_equal(sub.episode_lengths(), lengths[[4, 1, 4]])
    np.testing.assert_array_equal(sub.episode_id, np.repeat(np.arange(3), lengths[[4, 1, 4]]))
    np.testing.assert_array_equal(sub.obs[: lengths[4]], collected.obs[starts[4] :][: lengths[4]])
    sub.validate()
    assert collected.select_episodes(slice(0, 5)).num_episodes == 5
    with pytest.raises(IndexError, match="episode ordinal 23 out of range for 23 episodes"):
        collected.select_episodes([0, 23])
    with pytest.raises(ValueError, match="no episodes selected"):
        collected.select_episodes([])


# -- sampling ------------------------------------------------------------------------------
def test_sample_shapes_are_agent_major(collected):
    batch = sample_transitions(jax.random.key(1), collected, 7)
    assert isinstance(batch, Transition)
    chex.assert_shape(batch.obs, (2, 7, 3))
    chex.assert_shape(batch.next_obs, (2, 7, 3))
    chex.assert_shape(batch.actions, (2, 7))
    chex.assert_shape([batch.terminated, batch.truncated], (7,))
    assert batch.actions.dtype == jnp.int32 and batch.rewards is None
    with_r = sample_transitions(jax.random.key(1), collected, 7, with_rewards=True)
    chex.assert_shape(with_r.rewards, (2, 7))
    with pytest.raises(ValueError, match="no rewards"):
        sample_transitions(jax.random.key(1), make(rewards=None), 7, with_rewards=True)


def test_gather_matches_time_major(collected):
    index = jnp.array([0, 5, 5, 17])
    batch = gather_transitions(collected, index, with_rewards=True)
    for agent in range(2):
        np.testing.assert_array_equal(batch.obs[agent], collected.obs[index, agent])
        np.testing.assert_array_equal(batch.actions[agent], collected.actions[index, agent])
        np.testing.assert_array_equal(batch.next_obs[agent], collected.next_obs[index, agent])
        np.testing.assert_array_equal(batch.rewards[agent], collected.rewards[index, agent])
    np.testing.assert_array_equal(batch.terminated, collected.terminated[index])
    full = to_agent_major(collected)
    chex.assert_shape(full.obs, (2, collected.num_transitions, 3))
    np.testing.assert_array_equal(full.obs[1], collected.obs[:, 1])


def test_sampling_does_not_retrace(collected):
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw(key, demos):
        return sample_transitions(key, demos, 16)

    other = collected.replace(obs=collected.obs + 1.0)
    for seed in range(3):
        draw(jax.random.key(seed), collected)
        draw(jax.random.key(seed), other)
    if hasattr(sample_transitions, "_cache_size"):
        before = sample_transitions._cache_size()
        for seed in range(3):
            sample_transitions(jax.random.key(seed), other, 16)
        assert sample_transitions._cache_size() <= before + 1


def test_sampling_is_uniform():
    d = make()
    index = jnp.arange(6, dtype=jnp.float32)
    d = d.replace(obs=jnp.broadcast_to(index[:, None, None], d.obs.shape))
    batch = sample_transitions(jax.random.key(3), d, 60_000)
    counts = np.bincount(np.asarray(batch.obs[0, :, 0]).astype(int), minlength=6)
    # 10,000 expected per transition, binomial std about 91: allow 5 std.
    assert np.all(np.abs(counts - 10_000) < 460), counts
    np.testing.assert_array_equal(batch.obs[0], batch.obs[1])


# -- splits ---------------------------------------------------------------------------------
def test_split_by_episode(collected):
    train, held = split_by_episode(collected, 0.25)
    assert (train.num_episodes, held.num_episodes) == (17, 6)
    lengths = collected.episode_lengths()
    np.testing.assert_array_equal(held.episode_lengths(), lengths[17:])
    np.testing.assert_array_equal(held.obs, collected.obs[-held.num_transitions :])
    assert train.num_transitions + held.num_transitions == collected.num_transitions

    key = jax.random.key(5)
    train_r, held_r = split_by_episode(collected, 0.25, key)
    again = split_by_episode(collected, 0.25, key)
    np.testing.assert_array_equal(held_r.obs, again[1].obs)
    assert (train_r.num_episodes, held_r.num_episodes) == (17, 6)
    starts, _ = collected.episode_bounds()
    first_obs = {tuple(o.ravel()) for o in np.asarray(collected.obs)[starts]}
    parts = [tuple(o.ravel()) for d in (train_r, held_r) for o in np.asarray(d.initial_obs())]
    assert set(parts) <= first_obs
    for part in (train_r, held_r):
        part.validate()

    tiny_train, tiny_held = split_by_episode(collected, 0.001)
    assert tiny_held.num_episodes == 1 and tiny_train.num_episodes == 22
    big_train, _ = split_by_episode(collected, 0.999)
    assert big_train.num_episodes == 1


def test_split_by_episode_errors(collected):
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match=r"holdout_fraction must be in \(0, 1\)"):
            split_by_episode(collected, fraction)
    with pytest.raises(ValueError, match="need at least 2 episodes .* got 1"):
        split_by_episode(collected.select_episodes([0]), 0.5)


# -- collection -----------------------------------------------------------------------------
def test_collect_gives_complete_episodes(collected):
    d = collected
    assert d.num_episodes == 23 and d.num_agents == 2 and d.num_actions == 3
    lengths = d.episode_lengths()
    np.testing.assert_array_equal(d.episode_id, np.repeat(np.arange(23), lengths))
    assert lengths.max() <= 5
    starts, stops = d.episode_bounds()
    term, trunc = np.asarray(d.terminated), np.asarray(d.truncated)
    assert term.any() and trunc.any()
    np.testing.assert_array_equal(lengths[trunc[stops - 1]], 5)
    assert not term[~np.isin(np.arange(d.num_transitions), stops - 1)].any()
    d.validate()


def test_collect_next_obs_is_true_successor(collected):
    d = collected
    obs, next_obs = np.asarray(d.obs), np.asarray(d.next_obs)
    actions = np.asarray(d.actions)
    # The game's dynamics: count += sum(actions), time += 1, agent index kept.
    np.testing.assert_array_equal(next_obs[:, :, 0], obs[:, :, 0] + actions.sum(1, keepdims=True))
    np.testing.assert_array_equal(next_obs[:, :, 1], obs[:, :, 1] + 1)
    np.testing.assert_array_equal(next_obs[:, :, 2], obs[:, :, 2])
    starts, stops = d.episode_bounds()
    assert (obs[starts, :, 1] == 0).all()
    inner = np.setdiff1d(np.arange(d.num_transitions), stops - 1)
    np.testing.assert_array_equal(next_obs[inner], obs[inner + 1])
    np.testing.assert_array_equal(d.rewards, (actions - actions[:, ::-1]).astype(np.float32))


def test_collect_is_deterministic(collected):
    again = collect(jax.random.key(0), GAME, random_policy, 23, num_envs=4)
    assert_demos_equal(again, collected)
    chunked = collect(jax.random.key(0), GAME, random_policy, 23, num_envs=4, chunk_steps=3)
    assert_demos_equal(chunked, collected)
    other = collect(jax.random.key(1), GAME, random_policy, 23, num_envs=4)
    assert not np.array_equal(np.asarray(other.actions[:20]), np.asarray(collected.actions[:20]))


def test_collect_host_path_equals_jitted(collected):
    calls = []
    host = collect(
        jax.random.key(0),
        HostCounterGame(),
        random_policy,
        23,
        num_envs=4,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert_demos_equal(host, collected)
    assert calls[-1] == (23, 23) and len(calls) == 23


def test_collect_progress_and_few_episodes():
    calls = []
    d = collect(
        jax.random.key(2),
        CounterGame(max_steps=3, p_end=0.0),
        random_policy,
        3,
        num_envs=8,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert d.num_episodes == 3 and int(d.truncated.sum()) == 3
    np.testing.assert_array_equal(d.episode_lengths(), [3, 3, 3])
    assert calls[-1] == (3, 3)
    assert all(a <= b for (a, _), (b, _) in zip(calls, calls[1:], strict=False))
    with pytest.raises(ValueError, match="num_episodes must be >= 1"):
        collect(jax.random.key(2), CounterGame(), random_policy, 0)


class RuledCounterGame(CounterGame):
    """The counter game stating where its episodes end."""

    @property
    def episode_rule(self):
        return {"p_end": self.p_end, "max_steps": self.max_steps}


def test_collect_records_provenance(collected):
    assert collected.meta["episode_rule"] is None and collected.expert_alpha is None
    game = RuledCounterGame(max_steps=4, p_end=0.5)
    d = collect(jax.random.key(1), game, random_policy, 3, num_envs=3, expert_alpha=0.25,
                expert_gamma=0.9)
    assert d.meta["episode_rule"] == {"p_end": 0.5, "max_steps": 4}
    assert (d.expert_alpha, d.expert_gamma) == (0.25, 0.9)
    with pytest.raises(ValueError, match="Demonstrations.expert_gamma"):
        collect(jax.random.key(1), game, random_policy, 3, num_envs=3, expert_gamma=2.0)


def test_collect_detects_endless_episodes():
    class Endless(CounterGame):
        def step(self, key, state, actions):
            out = super().step(key, state, actions)
            return (*out[:3], jnp.bool_(False), jnp.bool_(False), out[5])

    with pytest.raises(RuntimeError, match="did not finish its episodes within 5 steps"):
        collect(jax.random.key(0), Endless(), random_policy, 2, num_envs=2)
