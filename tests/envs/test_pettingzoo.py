"""PettingZoo both ways: every mairl env passes PettingZoo's own tests; PettingZoo games stack."""

import importlib.util
import warnings

import jax
import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test
from pettingzoo.utils.env import ParallelEnv

import envs
from envs.host import seed_from_key
from envs.pettingzoo import from_pettingzoo, to_pettingzoo

#: Optional dependency of each family whose games come from another package.
OPTIONAL = {"jaxmarl": "jaxmarl", "highway": "highway_env", "mpe2": "mpe2"}


def _make(name):
    module = OPTIONAL.get(envs.spec(name).family)
    if module is not None:
        pytest.importorskip(module, reason=f"{name} needs the optional package {module}")
    return envs.make(name)


@pytest.fixture(scope="module", params=envs.registered())
def named_env(request):
    """``(name, env)``, built once per module: jittable games compile once."""
    env = _make(request.param)
    yield request.param, env
    if not env.jittable:
        env.close()


def _fresh(name, env):
    """A constructor of wrappers: jittable games share the env (and its compiled steps);
    host games keep their state in the object, so each wrapper gets its own game."""
    if env.jittable:
        return lambda: to_pettingzoo(env)
    return lambda: to_pettingzoo(envs.make(name))


def _pettingzoo_warnings(record):
    return [str(w.message) for w in record if "pettingzoo" in w.filename]


def test_parallel_api(named_env):
    name, env = named_env
    par = to_pettingzoo(env, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        parallel_api_test(par, num_cycles=6)  # sets max_cycles: episodes end after 6 steps
    assert not _pettingzoo_warnings(record)
    assert par.agents == []  # the last episode ended
    assert par.metadata["name"] == name and par.metadata["is_parallelizable"]
    agent = par.possible_agents[0]
    assert par.observation_space(agent) is par.observation_space(agent)
    assert par.action_space(agent) is par.action_space(agent)


def test_parallel_seed(named_env):
    name, env = named_env
    parallel_seed_test(_fresh(name, env), num_cycles=4)
    # a seed fixes the whole episode, not just its start
    make = _fresh(name, env)
    a, b = make(), make()
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    for t in range(3):
        actions = {agent: a.action_space(agent).sample() for agent in a.agents}
        out_a, out_b = a.step(actions), b.step(actions)
        for x, y in zip(out_a[:2], out_b[:2], strict=True):
            for agent in x:
                np.testing.assert_array_equal(x[agent], y[agent], err_msg=f"step {t} {agent}")
        if not a.agents:
            break
    for par in (a, b):
        if not env.jittable:
            par.close()


def test_host_envs_without_host_hooks_go_through_the_public_protocol():
    """``host:NAME`` (a jittable game behind the host interface) has no ``step_host``."""
    env = envs.make("host:grid-crossing")
    par = to_pettingzoo(env, seed=0)
    parallel_api_test(par, num_cycles=4)
    parallel_seed_test(lambda: to_pettingzoo(envs.make("host:grid-crossing")), num_cycles=3)
    obs, _ = par.reset(seed=2)
    jit_obs, _ = to_pettingzoo(envs.make("grid-crossing")).reset(seed=2)
    np.testing.assert_array_equal(obs["agent_0"], jit_obs["agent_0"])  # same reset key


def test_observations_inside_their_spaces():
    env = envs.make("grid-crossing")
    par = to_pettingzoo(env, seed=1)
    obs, _ = par.reset(seed=1)
    space = par.observation_space(par.possible_agents[0])
    assert (space.low.min(), space.high.max()) == (0.0, 1.0)  # one-hot states
    for _ in range(5):
        assert all(par.observation_space(a).contains(o) for a, o in obs.items())
        obs, *_ = par.step({a: par.action_space(a).sample() for a in par.agents})


def test_render_modes():
    gems = to_pettingzoo(envs.make("gems-compact"), render_mode="ansi")
    gems.reset(seed=0)
    assert isinstance(gems.render(), str)
    plain = to_pettingzoo(envs.make("stag-hunt"))
    plain.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert plain.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        to_pettingzoo(envs.make("stag-hunt"), render_mode="ansi")


def _chain_game():
    """4 states, 2 agents, 2 actions; state 3 is terminal; random dynamics; 6-step episodes."""
    from envs.tabular.game import TabularGame

    rng = np.random.default_rng(0)
    transitions = rng.dirichlet(np.ones(4), size=(4, 2, 2))  # (s, a_1, a_2, s')
    rewards = rng.normal(size=(2, 4, 2, 2))
    return TabularGame(transitions, rewards, np.array([1.0, 0, 0, 0]), max_steps=6,
                       obs_mode="index", terminal=np.array([False, False, False, True]))


def test_round_trip_matches_the_mairl_env():
    """mairl -> PettingZoo -> mairl gives the env's own transitions for the same actions.

    ``from_pettingzoo(...).reset(key)`` resets the wrapper with ``seed_from_key(key)``,
    which draws ``key(seed)`` -> split -> ``reset_env``; each step splits again. The
    auto-reset after an episode uses ``seed_from_key`` of the step key.
    """
    env = _chain_game()
    back = from_pettingzoo(to_pettingzoo(env))
    assert back.max_steps == env.max_steps and back.obs_shape == env.obs_shape
    assert back.action_spaces == env.action_spaces and back.agents == env.agents
    reset_env, step_env = jax.jit(env.reset_env), jax.jit(env.step_env)

    def reference_reset(key):
        k, k_reset = jax.random.split(jax.random.key(seed_from_key(key)))
        return (k, *reset_env(k_reset))

    key = jax.random.key(5)
    obs, state = back.reset(key)
    k, ref_obs, ref_state = reference_reset(key)
    np.testing.assert_array_equal(obs, ref_obs)
    rng = np.random.default_rng(1)
    ends, time = [], 0
    for t in range(40):
        actions = rng.integers(0, 2, 2).astype(np.int32)
        key_step = jax.random.key(100 + t)
        obs, state, reward, term, trunc, info = back.step(key_step, state, actions)
        k, k_step = jax.random.split(k)
        ref_obs, ref_state, ref_reward, ref_term, _ = step_env(k_step, ref_state, actions)
        time += 1
        np.testing.assert_array_equal(info["next_obs"], ref_obs)
        np.testing.assert_array_equal(reward, ref_reward)
        assert bool(term) == bool(ref_term)
        assert bool(trunc) == (not bool(ref_term) and time == env.max_steps)
        if term or trunc:
            ends.append("terminated" if term else "truncated")
            k, ref_obs, ref_state = reference_reset(key_step)
            np.testing.assert_array_equal(obs, ref_obs)
            time = 0
    assert {"terminated", "truncated"} <= set(ends), ends


# -- from_pettingzoo on mpe2 ------------------------------------------------------------------
needs_mpe2 = pytest.mark.skipif(importlib.util.find_spec("mpe2") is None,
                                reason="needs the optional package mpe2 (pip install mairl[mpe])")


@needs_mpe2
def test_simple_tag_pads_observations_and_keeps_true_sizes():
    from mpe2 import simple_tag_v3

    raw = simple_tag_v3.parallel_env()
    env = from_pettingzoo(raw)
    assert env.agents == ("adversary_0", "adversary_1", "adversary_2", "agent_0")
    assert env.obs_shape == (16,) and env.obs_sizes == (16, 16, 16, 14) and env.obs_padded
    assert env.max_steps == 25 and env.num_actions == 5
    obs = env.reset_host(7)
    ref, _ = simple_tag_v3.parallel_env().reset(seed=7)
    for i, agent in enumerate(env.agents):
        np.testing.assert_array_equal(obs[i, : env.obs_sizes[i]], ref[agent])
    np.testing.assert_array_equal(obs[3, 14:], 0.0)


@needs_mpe2
def test_aec_input_equals_parallel_input():
    from mpe2 import simple_spread_v3

    aec = from_pettingzoo(simple_spread_v3.env())
    par = from_pettingzoo(simple_spread_v3.parallel_env())
    key = jax.random.key(2)
    (obs_a, sa), (obs_p, sp) = aec.reset(key), par.reset(key)
    np.testing.assert_array_equal(obs_a, obs_p)
    for t in range(3):
        actions = np.array([t % 5, 2, 4], np.int32)
        out_a = aec.step(jax.random.key(t), sa, actions)
        out_p = par.step(jax.random.key(t), sp, actions)
        np.testing.assert_array_equal(out_a[0], out_p[0])
        np.testing.assert_array_equal(out_a[2], out_p[2])
        sa, sp = out_a[1], out_p[1]


@needs_mpe2
def test_continuous_mpe2_through_both_adapters():
    env = envs.make("mpe2-simple-spread", continuous_actions=True)
    assert not env.discrete and env.action_spaces[0] == envs.Box(0.0, 1.0, (5,))
    par = to_pettingzoo(env, seed=0)
    parallel_api_test(par, num_cycles=4)
    assert isinstance(par.action_space("agent_0"), spaces.Box)
    env.close()


@needs_mpe2
def test_collect_through_from_pettingzoo():
    from mairl.data import collect

    env = envs.make("mpe2-simple-spread")
    demos = collect(jax.random.key(0), env, env.scripted_policy(), 3, num_envs=2)
    assert demos.obs.shape == (75, 3, 18) and demos.num_episodes == 3
    np.testing.assert_array_equal(np.flatnonzero(demos.truncated), [24, 49, 74])
    assert not demos.terminated.any()
    np.testing.assert_array_equal(np.asarray(demos.episode_id), np.repeat([0, 1, 2], 25))
    inner = np.ones(75, bool)
    inner[[24, 49, 74]] = False  # within an episode, next_obs is the next step's obs
    np.testing.assert_array_equal(demos.next_obs[:-1][inner[:-1]], demos.obs[1:][inner[:-1]])
    assert not np.array_equal(demos.next_obs[24], demos.obs[25])  # the true last observation


@needs_mpe2
def test_scripted_experts_beat_random():
    """Mean episode return over 6 seeded episodes (25 steps); margins are several sigma."""

    def returns(env, policy):
        totals = []
        for seed in range(6):
            obs = env.reset_host(seed)
            total = np.zeros(env.num_agents)
            for _ in range(env.max_steps):
                obs, reward, term, trunc, _ = env.step_host(policy(obs))
                total += reward
                if term or trunc:
                    break
            totals.append(total)
        return np.mean(totals, axis=0)

    rng = np.random.default_rng(0)
    spread = envs.make("mpe2-simple-spread")
    expert = spread.scripted_policy()
    scripted = returns(spread, lambda obs: expert(None, obs))
    random = returns(spread, lambda obs: rng.integers(0, 5, 3))
    assert np.all(scripted > random + 8.0), (scripted, random)  # about -9 against -28

    tag = envs.make("mpe2-simple-tag")
    expert = tag.scripted_policy()
    chase = returns(tag, lambda obs: expert(None, obs))
    idle_prey = returns(tag, lambda obs: np.r_[expert(None, obs)[:3], 0])
    assert chase[3] > idle_prey[3], (chase, idle_prey)  # fleeing beats standing still
    random_hunters = returns(tag, lambda obs: np.r_[rng.integers(0, 5, 3), 0])
    assert idle_prey[0] > random_hunters[0], (idle_prey, random_hunters)


# -- stacking errors, on small hand-made games ----------------------------------------------------
class Toy(ParallelEnv):
    """Agents ``a``, ``b`` (and ``c``) with given spaces; ``script`` bends the rules.

    ``script``: ``"b_done_at_2"`` terminates ``b`` after step 2; ``"c_appears"``
    adds ``c`` (a possible agent absent at reset) at step 1; ``"stranger"``
    reports an observation for an agent ``z`` not in ``possible_agents``.
    Observations are ``step + 1`` in every entry; rewards are 1 per live agent.
    """

    metadata = {"name": "toy", "is_parallelizable": True, "render_modes": []}

    def __init__(self, obs_spaces, action_spaces, script=None, max_cycles=4):
        self.possible_agents = list(obs_spaces)
        self._obs_spaces, self._action_spaces = obs_spaces, action_spaces
        self.script, self.max_cycles = script, max_cycles

    def observation_space(self, agent):
        return self._obs_spaces[agent]

    def action_space(self, agent):
        return self._action_spaces[agent]

    def _obs(self, agents):
        return {a: np.full(self._obs_spaces[a].shape, self.t + 1, np.float32) for a in agents}

    def reset(self, seed=None, options=None):
        self.t = 0
        self.agents = [a for a in self.possible_agents if a != "c"]
        return self._obs(self.agents), {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.t += 1
        agents = list(self.agents)
        if self.script == "c_appears" and self.t == 1:
            agents.append("c")
        term = {a: self.script == "b_done_at_2" and a == "b" and self.t == 2 for a in agents}
        trunc = {a: self.t >= self.max_cycles for a in agents}
        obs = self._obs(agents)
        if self.script == "stranger":
            obs["z"] = np.zeros(2, np.float32)
        self.agents = [a for a in agents if not (term[a] or trunc[a])]
        return obs, dict.fromkeys(agents, 1.0), term, trunc, {a: {} for a in agents}


def _box(n):
    return spaces.Box(-5.0, 5.0, (n,), np.float32)


def test_agents_finishing_early_get_zeros_until_the_episode_ends():
    env = from_pettingzoo(Toy({"a": _box(2), "b": _box(3)},
                              {"a": spaces.Discrete(4), "b": spaces.Discrete(4, start=1)},
                              script="b_done_at_2"))
    assert env.obs_shape == (3,) and env.obs_sizes == (2, 3)
    obs = env.reset_host(0)
    np.testing.assert_array_equal(obs, [[1, 1, 0], [1, 1, 1]])
    live, rewards, flags = [], [], []
    for _ in range(4):
        obs, reward, term, trunc, info = env.step_host(np.array([3, 3], np.int32))
        live.append(info["live"].tolist())
        rewards.append(reward.tolist())
        flags.append((term, trunc))
    np.testing.assert_array_equal(obs, [[5, 5, 0], [0, 0, 0]])  # b finished at step 2
    assert live == [[True, True], [True, True], [True, False], [True, False]]
    assert rewards == [[1, 1], [1, 1], [1, 0], [1, 0]]
    assert flags == [(False, False)] * 3 + [(False, True)]  # a was truncated: no termination


@pytest.mark.parametrize(
    ("obs_spaces", "action_spaces", "match"),
    [
        ({"a": _box(2), "b": _box(2)}, {"a": spaces.Discrete(4), "b": spaces.Discrete(5)},
         r"different numbers of discrete actions \{'a': 4, 'b': 5\}"),
        ({"a": _box(2), "b": _box(2)}, {"a": spaces.Discrete(4), "b": _box(2)},
         r"continuous and discrete actions are mixed \(discrete: \['a'\], continuous: \['b'\]"),
        ({"a": _box(2), "b": _box(2)},
         {"a": spaces.MultiDiscrete([2, 2]), "b": spaces.MultiDiscrete([2, 2])},
         r"Discrete or Box action space; unsupported: \{'a': 'MultiDiscrete'"),
        ({"a": _box(2), "b": spaces.Dict({"x": _box(2)})},
         {"a": spaces.Discrete(4), "b": spaces.Discrete(4)},
         r"observation spaces must be Box or Discrete.*\{'b': 'Dict'\}"),
        ({"a": _box(2), "b": _box(2)}, {"a": _box(2), "b": spaces.Box(0.0, 2.0, (2,))},
         r"continuous action bounds differ"),
    ],
)
def test_unstackable_spaces_are_refused_by_name(obs_spaces, action_spaces, match):
    with pytest.raises(ValueError, match=match):
        from_pettingzoo(Toy(obs_spaces, action_spaces))


@needs_mpe2
def test_mpe2_speaker_listener_cannot_be_stacked():
    from mpe2 import simple_speaker_listener_v4

    with pytest.raises(ValueError, match=r"\{'speaker_0': 3, 'listener_0': 5\}"):
        from_pettingzoo(simple_speaker_listener_v4.parallel_env())


def test_agents_outside_the_roster_are_refused():
    three = {a: _box(2) for a in "abc"}
    actions = {a: spaces.Discrete(2) for a in "abc"}
    env = from_pettingzoo(Toy(three, actions, script="c_appears"))
    env.reset_host(0)
    with pytest.raises(ValueError, match=r"agents \['c'\] appeared in the middle"):
        env.step_host(np.zeros(3, np.int32))
    env = from_pettingzoo(Toy(three, actions, script="stranger"))
    env.reset_host(0)
    with pytest.raises(ValueError, match=r"agents \['z'\] are not in possible_agents"):
        env.step_host(np.zeros(3, np.int32))


def test_max_steps_is_required_without_max_cycles():
    toy = Toy({"a": _box(2)}, {"a": spaces.Discrete(2)})
    del toy.max_cycles
    with pytest.raises(ValueError, match="max_steps: the game has no max_cycles"):
        from_pettingzoo(toy)
    assert from_pettingzoo(toy, max_steps=9, name="toy9").max_steps == 9
    with pytest.raises(TypeError, match="ParallelEnv or AECEnv"):
        from_pettingzoo(envs.make("stag-hunt"))
