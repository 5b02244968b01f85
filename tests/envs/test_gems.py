"""Gems against a plain-Python port of the reference rules and the authors' data.

The port, ``envs.gems_reference``, is written from the rules in words
(``shared/data/README.md``, "Gems reference dynamics"), with lists and ints
only: agents move in turn, each checks the purple gems before and after its
move (in index order, later matches overwrite the remembered gem), collects its
own gems after its move, and the purple bonus is settled after both moves. It
receives the same respawn cells as the JAX code (``Gems.step_randomness``).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.gems import Gems, GemsState, encode_map, render, state_from_cells
from envs.gems_reference import GemsReference, observe_compact, observe_map, transition

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gems_mamql_authors.pkl.gz"


# -- the plain-Python port of the reference rules (envs.gems_reference) ------------------
def port_step(agents, gems, collected, actions, candidates, size=15, gems_to_end=6):
    """One reference step; returns ``agents, gems, collected, reward, terminated``."""
    agents, gems, collected, reward = transition(agents, gems, collected, actions, candidates,
                                                 size)
    return agents, gems, collected, reward, collected > gems_to_end


# -- helpers ---------------------------------------------------------------------------
def make_state(agents, gems, collected=0, time=0, joint_return=None) -> GemsState:
    time = jnp.asarray(time, jnp.int32)
    if joint_return is None:
        joint_return = jnp.zeros(time.shape, jnp.float32)
    return GemsState(
        time=time,
        agents=jnp.asarray(agents, jnp.int32),
        gems=jnp.asarray(gems, jnp.int32),
        collected=jnp.asarray(collected, jnp.int32),
        joint_return=jnp.asarray(joint_return, jnp.float32),
    )


def as_lists(state: GemsState):
    return np.asarray(state.agents).tolist(), np.asarray(state.gems).tolist(), int(state.collected)


# Recognizable respawn cells, one per gem, in 1..14.
CANDIDATES = [[1 + g, 14 - g] for g in range(9)]
FAR = [13, 1]  # a cell the scripted agents never reach

ENV = Gems()
TRANSITION = jax.jit(ENV.transition)


@jax.jit
def step_both_ways(key, state, actions):
    """``step`` and ``step_env`` from the same key, and that key's randomness."""
    return (
        ENV.step(key, state, actions),
        ENV.step_env(key, state, actions),
        ENV.step_randomness(key),
    )


def scripted(agents, gems, actions, collected=0, env=None):
    """Run the JAX transition and the port on one hand-made state; check they agree."""
    env = env or ENV
    transition = TRANSITION if env is ENV else jax.jit(env.transition)
    state = make_state(agents, gems, collected)
    nxt, reward, terminated = transition(
        state, jnp.asarray(actions), jnp.asarray(CANDIDATES, jnp.int32)
    )
    p_agents, p_gems, p_collected, p_reward, p_term = port_step(
        agents, gems, collected, actions, CANDIDATES, env.size, env.gems_to_end
    )
    assert as_lists(nxt) == (p_agents, p_gems, p_collected)
    assert np.asarray(reward).tolist() == p_reward
    assert bool(terminated) == p_term
    assert int(nxt.time) == 1
    return nxt, np.asarray(reward).tolist(), bool(terminated)


# -- scripted rules --------------------------------------------------------------------
@pytest.mark.parametrize(
    "start, action, end",
    [
        ([0, 0], 2, [0, 0]),
        ([0, 0], 3, [0, 0]),
        ([14, 14], 0, [14, 14]),
        ([14, 14], 1, [14, 14]),
        ([0, 14], 0, [0, 14]),
        ([0, 14], 3, [0, 14]),
        ([0, 14], 1, [1, 14]),
        ([0, 14], 2, [0, 13]),
        ([7, 7], 0, [7, 8]),
        ([7, 7], 1, [8, 7]),
        ([7, 7], 2, [7, 6]),
        ([7, 7], 3, [6, 7]),
        ([7, 7], 4, [7, 7]),
    ],
)
def test_moves_and_off_grid_noops(start, action, end):
    gems = [FAR] * 9
    nxt, reward, _ = scripted([start, start], gems, [action, action])
    assert np.asarray(nxt.agents).tolist() == [end, end]
    assert reward == [0.0, 0.0]


def test_overlapping_own_gems_one_reward_two_collected():
    # Blue gems 0 and 1 share (5, 6); red gem 3 lies there too but is agent 1's.
    gems = [[5, 6], [5, 6], FAR, [5, 6], FAR, FAR, FAR, FAR, FAR]
    nxt, reward, _ = scripted([[5, 5], [9, 9]], gems, [0, 4])
    assert reward == [1.0, 0.0]
    assert int(nxt.collected) == 2
    g = np.asarray(nxt.gems).tolist()
    assert g[0] == CANDIDATES[0] and g[1] == CANDIDATES[1] and g[2] == FAR
    assert g[3] == [5, 6]


def test_own_gem_counts_only_after_the_move():
    # Agent 1 starts on its red gem and leaves: nothing; agent 0 stays on blue: collected.
    gems = [[2, 2], FAR, FAR, [9, 9], FAR, FAR, FAR, FAR, FAR]
    nxt, reward, _ = scripted([[2, 2], [9, 9]], gems, [4, 1])
    assert reward == [1.0, 0.0]
    assert int(nxt.collected) == 1


def test_purple_before_move_counts():
    # Agent 0 leaves purple gem 6; agent 1 steps onto purple gem 7: both on purple.
    gems = [FAR] * 6 + [[3, 3], [8, 9], FAR]
    nxt, reward, _ = scripted([[3, 3], [8, 8]], gems, [1, 0])
    assert reward == [6.0, 6.0]
    assert int(nxt.collected) == 2
    g = np.asarray(nxt.gems).tolist()
    assert g[6] == CANDIDATES[6] and g[7] == CANDIDATES[7] and g[8] == FAR


def test_purple_same_gem_respawns_once():
    # Agent 0 leaves purple gem 6, agent 1 steps onto the same gem.
    gems = [FAR] * 6 + [[3, 3], FAR, FAR]
    nxt, reward, _ = scripted([[3, 3], [3, 2]], gems, [1, 0])
    assert reward == [6.0, 6.0]
    assert int(nxt.collected) == 1
    assert np.asarray(nxt.gems)[6].tolist() == CANDIDATES[6]


def test_purple_one_agent_only_gives_nothing():
    gems = [FAR] * 6 + [[3, 3], FAR, FAR]
    nxt, reward, _ = scripted([[3, 3], [9, 9]], gems, [4, 4])
    assert reward == [0.0, 0.0]
    assert int(nxt.collected) == 0
    assert np.asarray(nxt.gems)[6].tolist() == [3, 3]


def test_purple_remembered_gem_is_the_last_match():
    # Purple 6 and 8 share (3, 3), purple 7 is at (3, 4).
    # Agent 0 steps from (3, 3) onto 7: the after-move match (7) overwrites 8.
    # Agent 1 starts on (3, 3) and steps off: it remembers 8, the last before-move match.
    gems = [FAR] * 6 + [[3, 3], [3, 4], [3, 3]]
    nxt, reward, _ = scripted([[3, 3], [3, 3]], gems, [0, 1])
    assert reward == [6.0, 6.0]
    assert int(nxt.collected) == 2
    g = np.asarray(nxt.gems).tolist()
    assert g[6] == [3, 3] and g[7] == CANDIDATES[7] and g[8] == CANDIDATES[8]


def test_purple_after_move_overwrites_a_higher_before_match():
    # Agent 0 moves from purple 8 onto purple 6 and remembers 6; agent 1 stays on 7.
    gems = [FAR] * 6 + [[5, 6], [9, 9], [5, 5]]
    nxt, reward, _ = scripted([[5, 5], [9, 9]], gems, [0, 4])
    assert reward == [6.0, 6.0]
    g = np.asarray(nxt.gems).tolist()
    assert g[6] == CANDIDATES[6] and g[7] == CANDIDATES[7] and g[8] == [5, 5]
    assert int(nxt.collected) == 2


def test_own_gems_and_purple_bonus_add_up():
    # Agent 1 steps onto a red gem that sits on a purple gem: 1 + 6; agent 0 on purple: 6.
    gems = [FAR, FAR, FAR, [4, 5], FAR, FAR, [4, 5], [1, 1], FAR]
    nxt, reward, _ = scripted([[1, 1], [4, 4]], gems, [4, 0])
    assert reward == [6.0, 7.0]
    assert int(nxt.collected) == 3


@pytest.mark.parametrize(
    "collected, overlap, terminated",
    [(5, False, False), (6, False, True), (5, True, True), (0, True, False)],
)
def test_termination_needs_more_than_six(collected, overlap, terminated):
    gems = [[5, 6], [5, 6] if overlap else FAR, FAR, FAR, FAR, FAR, FAR, FAR, FAR]
    nxt, _, term = scripted([[5, 5], [9, 9]], gems, [0, 4], collected=collected)
    assert term == terminated
    assert int(nxt.collected) == collected + (2 if overlap else 1)


def test_gems_to_end_is_configurable():
    env = Gems(gems_to_end=0)
    gems = [[5, 6]] + [FAR] * 8
    _, _, term = scripted([[5, 5], [9, 9]], gems, [0, 4], env=env)
    assert term


# -- the authors' data rule: the joint return ends the episode ---------------------------
AUTHORS = Gems(end_rule="joint-return")


@pytest.mark.parametrize(
    "joint_before, actions, reward, terminated",
    [
        (13.0, [0, 4], [1.0, 0.0], False),  # 14: not more than 20
        (19.0, [0, 4], [1.0, 0.0], False),  # 20: not more than 20
        (20.0, [0, 4], [1.0, 0.0], True),  # 21
        (20.0, [4, 4], [0.0, 0.0], False),  # 20, no reward this step
        (9.0, [0, 0], [7.0, 6.0], True),  # purple bonus and a blue gem: 9 + 13 = 22
    ],
)
def test_joint_return_rule_terminates_above_twenty(joint_before, actions, reward, terminated):
    # agent 0 at (5, 5) below its blue gem at (5, 6); with ``actions == [0, 0]``
    # (both y + 1) both agents step onto purple gems, (5, 6) and (9, 10)
    purple = [[5, 6], [9, 10]] if actions == [0, 0] else [FAR, FAR]
    gems = [[5, 6], FAR, FAR, FAR, FAR, FAR, *purple, FAR]
    state = make_state([[5, 5], [9, 9]], gems, collected=0, time=3, joint_return=joint_before)
    nxt, r, term = jax.jit(AUTHORS.transition)(
        state, jnp.asarray(actions), jnp.asarray(CANDIDATES, jnp.int32)
    )
    assert np.asarray(r).tolist() == reward
    assert bool(term) == terminated
    assert float(nxt.joint_return) == joint_before + sum(reward)
    # the gem rule sees only one or two collected gems here: it never ends these steps
    assert not bool(TRANSITION(state, jnp.asarray(actions), jnp.asarray(CANDIDATES))[2])


def test_joint_return_rule_ignores_the_gem_count():
    gems = [[5, 6]] + [FAR] * 8
    state = make_state([[5, 5], [9, 9]], gems, collected=6, time=3, joint_return=0.0)
    candidates = jnp.asarray(CANDIDATES, jnp.int32)
    nxt, _, term = jax.jit(AUTHORS.transition)(state, jnp.asarray([0, 4]), candidates)
    assert int(nxt.collected) == 7 and not bool(term)
    assert bool(TRANSITION(state, jnp.asarray([0, 4]), candidates)[2])  # the gem rule ends it


def test_joint_return_accumulates_and_resets_with_the_episode():
    """``step`` carries the joint return on, resets it to 0 on termination and at the cap."""
    step = jax.jit(AUTHORS.step)
    gems = [[5, 6]] + [FAR] * 8
    state = make_state([[5, 5], [9, 9]], gems, time=3, joint_return=4.0)
    _, out, reward, term, trunc, _ = step(jax.random.key(0), state, jnp.asarray([0, 4]))
    assert not bool(term | trunc) and float(out.joint_return) == 5.0
    state = make_state([[5, 5], [9, 9]], gems, time=3, joint_return=20.0)
    _, out, _, term, trunc, _ = step(jax.random.key(0), state, jnp.asarray([0, 4]))
    assert bool(term) and not bool(trunc)
    assert float(out.joint_return) == 0.0 and int(out.time) == 0
    state = make_state([[5, 5], [9, 9]], [FAR] * 9, time=44, joint_return=20.0)
    _, out, _, term, trunc, _ = step(jax.random.key(0), state, jnp.asarray([0, 4]))
    assert bool(trunc) and not bool(term), "the 45-step cap is a truncation under both rules"
    assert float(out.joint_return) == 0.0
    _, fresh = AUTHORS.reset(jax.random.key(1))
    assert float(fresh.joint_return) == 0.0 and fresh.joint_return.dtype == jnp.float32


def test_episode_rule_rebuilds_the_env():
    assert Gems().episode_rule == {"end_rule": "gems", "gems_to_end": 6, "max_steps": 45}
    authors = envs.make("gems-authors")
    assert authors.episode_rule == {
        "end_rule": "joint-return", "return_to_end": 20.0, "max_steps": 45,
    }
    assert (authors.obs_shape, authors.max_steps) == ((5, 15, 15), 45)
    rebuilt = envs.make("gems", **authors.episode_rule)
    assert rebuilt.episode_rule == authors.episode_rule
    assert Gems(gems_to_end=3, max_steps=10).episode_rule == {
        "end_rule": "gems", "gems_to_end": 3, "max_steps": 10,
    }
    with pytest.raises(ValueError, match="end_rule"):
        Gems(end_rule="joint_return")
    with pytest.raises(ValueError, match="return_to_end"):
        Gems(end_rule="joint-return", return_to_end=float("nan"))
    with pytest.raises(ValueError, match="max_steps"):
        Gems(max_steps=0)


# -- step: truncation, termination, auto-reset -------------------------------------------
def test_step_truncates_at_max_steps_and_resets():
    state = make_state([[7, 7], [8, 8]], [FAR] * 9, collected=2, time=44)
    stepped, _, (_, reset_cells) = step_both_ways(jax.random.key(3), state, jnp.array([0, 0]))
    obs, out, reward, term, trunc, info = stepped
    assert bool(trunc) and not bool(term)
    cells = np.asarray(reset_cells).tolist()
    assert as_lists(out) == (cells[:2], cells[2:], 0) and int(out.time) == 0
    for row in np.asarray(obs):
        np.testing.assert_array_equal(row, observe_map(cells[:2], cells[2:]))
    np.testing.assert_array_equal(info["next_obs"][0], observe_map([[7, 8], [8, 9]], [FAR] * 9))
    np.testing.assert_array_equal(reward, [0.0, 0.0])


def test_step_terminates_not_truncates_at_the_cap():
    gems = [[5, 6]] + [FAR] * 8
    for time in (44, 10):
        state = make_state([[5, 5], [9, 9]], gems, collected=6, time=time)
        stepped, _, _ = step_both_ways(jax.random.key(1), state, jnp.array([0, 4]))
        _, out, reward, term, trunc, _ = stepped
        assert bool(term) and not bool(trunc)
        assert int(out.time) == 0 and int(out.collected) == 0
        np.testing.assert_array_equal(reward, [1.0, 0.0])


def test_step_matches_step_env_when_not_done():
    state = make_state([[3, 4], [5, 6]], [[g, g + 1] for g in range(9)], collected=1, time=5)
    stepped, raw, (candidates, _) = step_both_ways(jax.random.key(5), state, jnp.array([1, 2]))
    obs, out, reward, term, trunc, info = stepped
    assert not bool(trunc) and not bool(term)
    jax.tree.map(np.testing.assert_array_equal, (obs, out, reward, term), raw[:4])
    np.testing.assert_array_equal(info["next_obs"], obs)
    expected = TRANSITION(state, jnp.array([1, 2]), candidates)
    jax.tree.map(np.testing.assert_array_equal, (out, reward, term), expected)


# -- rollouts against the port ---------------------------------------------------------
ROLLOUT_ENVS, ROLLOUT_STEPS = 6, 100


def rollout(env, seed):
    """Random-action rollout of ``ROLLOUT_ENVS`` envs; records each step's inputs.

    Initial cells and actions come from NumPy and the step keys from one split,
    so the compiled program draws random numbers only inside the environment.
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, env.size, (ROLLOUT_ENVS, 11, 2))
    state = jax.vmap(state_from_cells)(jnp.asarray(cells, jnp.int32))
    actions = jnp.asarray(rng.integers(0, 5, (ROLLOUT_STEPS, ROLLOUT_ENVS, 2)), jnp.int32)
    keys = jax.random.split(jax.random.key(seed), (ROLLOUT_STEPS, ROLLOUT_ENVS))

    def run(state, actions, keys):
        def body(state, inputs):
            actions, keys = inputs
            candidates, reset_cells = jax.vmap(env.step_randomness)(keys)
            obs, nxt, reward, term, trunc, info = jax.vmap(env.step)(keys, state, actions)
            record = dict(
                state=state,
                actions=actions,
                candidates=candidates,
                reset_cells=reset_cells,
                reward=reward,
                term=term,
                trunc=trunc,
                obs=obs,
                next_obs=info["next_obs"],
            )
            return nxt, record

        return jax.lax.scan(body, state, (actions, keys))[1]

    return jax.tree.map(np.asarray, jax.jit(run)(state, actions, keys))


@pytest.mark.parametrize(
    "obs_mode, size, end_rule",
    [("map", 4, "gems"), ("compact", 15, "gems"), ("map", 3, "joint-return")],
)
def test_rollouts_match_port(obs_mode, size, end_rule):
    """``GemsReference`` stepped with the JAX env's respawn and reset cells makes the
    same states, rewards, terminated/truncated flags and observations."""
    env = Gems(obs_mode=obs_mode, size=size, end_rule=end_rule)
    out = rollout(env, size)
    events = dict(own=0, purple=0, term=0, trunc=0)
    for e in range(ROLLOUT_ENVS):
        ref = GemsReference(obs_mode=obs_mode, size=size, end_rule=end_rule, seed=None)
        s0 = out["state"]
        ref.reset([*s0.agents[0, e].tolist(), *s0.gems[0, e].tolist()])
        for t in range(ROLLOUT_STEPS):
            s = out["state"]
            assert (s.agents[t, e].tolist(), s.gems[t, e].tolist()) == (ref.agents, ref.gems)
            assert (int(s.collected[t, e]), int(s.time[t, e])) == (ref.collected, ref.time)
            assert float(s.joint_return[t, e]) == ref.joint_return
            obs, reward, term, trunc, info = ref.step(
                out["actions"][t, e].tolist(), out["candidates"][t, e].tolist(),
                out["reset_cells"][t, e].tolist())
            assert out["reward"][t, e].tolist() == reward, (e, t)
            assert (bool(out["term"][t, e]), bool(out["trunc"][t, e])) == (term, trunc), (e, t)
            np.testing.assert_allclose(out["next_obs"][t, e], info["next_obs"], rtol=1e-6)
            np.testing.assert_allclose(out["obs"][t, e], obs, rtol=1e-6)
            events["own"] += int(reward[0] % 6 + reward[1] % 6)
            events["purple"] += reward[0] >= 6
            events["term"] += term
            events["trunc"] += trunc
    assert events["own"] > 0
    if size < 15:
        assert events["purple"] > 0 and events["term"] > 0
    else:
        assert events["trunc"] > 0


def test_reference_env_draws_its_own_cells_and_checks_its_input():
    ref = GemsReference(seed=3)
    obs = ref.reset()
    assert obs.shape == (2, 5, 15, 15) and obs.dtype == np.uint8
    assert obs[0, 0].sum() == 1 and obs[0, 1].sum() == 1
    lengths, length = [], 0
    for _ in range(500):
        obs, reward, term, trunc, info = ref.step([ref.rng.randrange(5), ref.rng.randrange(5)])
        length += 1
        assert all(0 <= c < 15 for p in [*ref.agents, *ref.gems] for c in p)
        if term or trunc:
            lengths.append(length)
            length = 0
            assert ref.time == 0 and ref.collected == 0
    assert lengths and max(lengths) <= 45
    with pytest.raises(ValueError, match="actions"):
        ref.step([0, 5])
    with pytest.raises(ValueError, match="end_rule"):
        GemsReference(end_rule="joint_return")


# -- randomness --------------------------------------------------------------------------
def test_reset_and_respawn_cells_are_uniform():
    env = ENV
    keys = jax.random.split(jax.random.key(0), 4000)

    @jax.jit
    def draw(keys):
        obs, states = jax.vmap(env.reset)(keys)
        return obs[:4], states, jax.vmap(env.step_randomness)(keys)

    obs, states, (candidates, reset_cells) = draw(keys)
    for e in range(4):
        agents, gems = np.asarray(states.agents[e]).tolist(), np.asarray(states.gems[e]).tolist()
        for row in np.asarray(obs[e]):
            np.testing.assert_array_equal(row, observe_map(agents, gems))
    cells = np.concatenate([np.asarray(states.agents), np.asarray(states.gems)], axis=1)
    assert cells.min() == 0 and cells.max() == 14
    counts = np.bincount((cells[..., 0] * 15 + cells[..., 1]).ravel(), minlength=225)
    # 44,000 draws over 225 cells: mean 195.6, sd 14; 6 sd either way.
    assert counts.min() > 110 and counts.max() < 285
    assert np.all(np.asarray(states.time) == 0) and np.all(np.asarray(states.collected) == 0)

    candidates = np.asarray(candidates)
    assert candidates.shape == (4000, 9, 2) and candidates.dtype == np.int32
    assert candidates.min() == 1 and candidates.max() == 14
    counts = np.bincount(((candidates[..., 0] - 1) * 14 + candidates[..., 1] - 1).ravel())
    # 36,000 draws over 196 cells: mean 183.7, sd 13.5.
    assert counts.shape == (196,) and counts.min() > 100 and counts.max() < 270
    assert np.asarray(reset_cells).shape == (4000, 11, 2)


# -- observations ----------------------------------------------------------------------
def test_map_layout_is_channel_x_y():
    agents = [[1, 2], [14, 0]]
    gems = [[3, 4], [3, 4], [0, 14], [5, 6], [7, 8], [9, 10], [11, 12], [11, 12], [11, 12]]
    env = envs.make("gems")
    obs = np.asarray(jax.jit(env.get_obs)(make_state(agents, gems)))
    assert obs.shape == (2, 5, 15, 15) and obs.dtype == np.uint8 == env.obs_dtype
    np.testing.assert_array_equal(obs[0], obs[1])
    m = obs[0]
    assert m[0, 1, 2] == 1 and m[0].sum() == 1
    assert m[1, 14, 0] == 1 and m[1].sum() == 1
    assert m[2, 3, 4] == 1 and m[2, 0, 14] == 1 and m[2].sum() == 2  # overlap stays 1
    assert m[3, 5, 6] == m[3, 7, 8] == m[3, 9, 10] == 1 and m[3].sum() == 3
    assert m[4, 11, 12] == 1 and m[4].sum() == 1
    np.testing.assert_array_equal(m, observe_map(agents, gems))
    np.testing.assert_array_equal(jax.jit(encode_map)(make_state(agents, gems)), m)


def test_compact_observation():
    agents = [[1, 2], [14, 0]]
    gems = [[g, 14 - g] for g in range(9)]
    env = envs.make("gems-compact")
    assert env.obs_shape == (22,)
    obs = np.asarray(jax.jit(env.get_obs)(make_state(agents, gems)))
    assert obs.shape == (2, 22) and obs.dtype == np.float32 == env.obs_dtype
    np.testing.assert_allclose(obs[1], observe_compact(agents, gems))
    assert obs.min() == 0.0 and obs.max() == 1.0


def test_registry_kwargs_and_validation():
    env = envs.make("gems")
    assert (env.obs_mode, env.max_steps, env.size, env.gems_to_end) == ("map", 45, 15, 6)
    assert env.num_actions == 5 and env.agents == ("agent_0", "agent_1")
    assert envs.make("gems-compact").obs_mode == "compact"
    with pytest.raises(ValueError, match="obs_mode"):
        Gems(obs_mode="pixels")


def test_render():
    agents = [[0, 0], [0, 0]]
    gems = [[1, 0], FAR, FAR, [1, 0], FAR, FAR, [14, 14], FAR, FAR]
    text = render(make_state(agents, gems, collected=3, time=7))
    lines = text.splitlines()
    assert lines[0] == "t=7 collected=3"
    assert len(lines) == 16 and all(len(line.split()) == 15 for line in lines[1:])
    assert lines[-1].split()[:2] == ["&", "*"]  # y = 0 is the bottom row
    assert lines[1].split()[14] == "p"
    assert Gems().render(make_state(agents, gems)).startswith("t=0")


# -- the authors' demonstrations -------------------------------------------------------
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


@pytest.fixture(scope="module")
def authors_data():
    if not DATA.exists():
        pytest.skip(f"the authors' Gems demonstrations are not at {DATA}")
    with gzip.open(DATA, "rb") as f:
        data = _NumpyOnlyUnpickler(f).load()
    s = np.stack([np.asarray(t[0]) for t in data])
    s_next = np.stack([np.asarray(t[1]) for t in data])
    return dict(
        s_raw=s[:2000],
        s=s.astype(bool),
        s_next=s_next.astype(bool),
        a=np.stack([np.asarray(t[2]) for t in data]),
        r=np.stack([np.asarray(t[3]) for t in data]),
        done=np.asarray([bool(t[4]) for t in data]),
    )


def decode(maps, pad=0):
    """Maps ``(N, 5, 15, 15)`` to agents ``(N, 2, 2)`` and gems ``(N, 9, 2)``.

    A colour with fewer than three occupied cells has overlapping gems, and the
    map does not say which cell holds two: ``pad=0`` puts the extra gems on its
    first occupied cell (row-major), ``pad=-1`` on its last.
    """
    flat = maps.reshape(len(maps), 5, -1)
    agents = np.argmax(flat[:, :2], axis=-1)  # (N, 2)
    order = np.argsort(~flat[:, 2:], axis=-1, kind="stable")[..., :3]  # occupied first
    count = flat[:, 2:].sum(-1, keepdims=True)  # (N, 3, 1)
    extra = np.take_along_axis(order, count - 1, axis=-1) if pad == -1 else order[..., :1]
    gems = np.where(np.arange(3) < count, order, extra).reshape(len(maps), 9)
    cells = lambda i: np.stack([i // 15, i % 15], axis=-1).astype(np.int32)
    return cells(agents), cells(gems)


def test_authors_maps_are_binary_reference_maps(authors_data):
    s = authors_data["s"]
    assert set(np.unique(authors_data["s_raw"])) <= {0.0, 1.0}
    counts = s.reshape(len(s), 5, -1).sum(-1)
    assert np.all(counts[:, :2] == 1)
    assert counts[:, 2:].min() >= 1 and counts[:, 2:].max() == 3
    assert np.any(counts[:, 2:] < 3), "overlapping gems show as one cell valued 1"
    agents, gems = decode(s)
    states = make_state(agents, gems, np.zeros(len(s)), np.zeros(len(s)))
    maps = jax.jit(jax.vmap(encode_map))(states)
    np.testing.assert_array_equal(np.asarray(maps), s.astype(np.float32))


def test_authors_transitions_match(authors_data):
    """Every transition: rewards, agent moves and gem cells follow the rules.

    The JAX rules run on all transitions at once, with every respawn sent off
    the grid (cell ``(-1, -1)``), so the next map shows the gems left in place:
    those must be in ``s_next``, and the other gems of ``s_next`` must be new
    cells in ``1 .. 14``, no more than the gems respawned. Where a colour has
    overlapping gems either placement of the extra gem may explain ``s_next``.
    """
    s, s_next, a, r = (authors_data[k] for k in ("s", "s_next", "a", "r"))
    n = len(s)
    assert np.all(a[:, :5].sum(-1) == 1) and np.all(a[:, 5:].sum(-1) == 1)
    actions = np.stack([a[:, :5].argmax(-1), a[:, 5:].argmax(-1)], axis=-1)
    next_agents, _ = decode(s_next)
    env = Gems()
    step = jax.jit(jax.vmap(env.transition))
    off_grid = jnp.full((n, 9, 2), -1, jnp.int32)

    explained = np.zeros(n, bool)
    for pad in (0, -1):
        agents, gems = decode(s, pad)
        states = make_state(agents, gems, np.zeros(n), np.zeros(n))
        nxt, reward, _ = step(states, jnp.asarray(actions), off_grid)
        np.testing.assert_array_equal(np.asarray(reward), r)
        np.testing.assert_array_equal(np.asarray(nxt.agents), next_agents)
        kept = np.asarray(jax.jit(jax.vmap(encode_map))(nxt)).astype(bool)[:, 2:]
        new = s_next[:, 2:] & ~kept  # (N, colour, x, y)
        respawned = np.asarray(nxt.gems < 0).any(-1).reshape(n, 3, 3).sum(-1)
        explained |= (
            ~np.any(kept & ~s_next[:, 2:], axis=(1, 2, 3))
            & ~np.any(new[:, :, 0, :] | new[:, :, :, 0], axis=(1, 2))
            & np.all(new.reshape(n, 3, -1).sum(-1) <= respawned, axis=-1)
        )
    assert explained.all(), np.flatnonzero(~explained)[:10]

    agents, gems = decode(s)
    for t in range(n):
        p_agents, _, _, p_reward, _ = port_step(
            agents[t].tolist(), gems[t].tolist(), 0, actions[t].tolist(), [[-1, -1]] * 9
        )
        assert (p_reward, p_agents) == (r[t].tolist(), next_agents[t].tolist()), t


def test_authors_done_flag_is_a_joint_reward_threshold(authors_data):
    """The published flags end an episode once the joint return exceeds 20.

    Not the gem rule of the reference environment: with two purple bonuses an
    episode ends although only 2 to 4 gems were collected. So ``terminated`` is
    checked against the port above, not against these flags.
    """
    s, s_next, r, done = (authors_data[k] for k in ("s", "s_next", "r", "done"))
    continues = np.all(s_next[:-1] == s[1:], axis=(1, 2, 3))
    np.testing.assert_array_equal(continues, ~done[:-1])
    ends = np.flatnonzero(done)
    starts = np.r_[0, ends[:-1] + 1]
    assert len(ends) == 864
    for start, end in zip(starts, ends, strict=True):
        joint = np.cumsum(r[start : end + 1].sum(-1))
        np.testing.assert_array_equal(joint > 20, done[start : end + 1])


def test_authors_done_flags_are_the_joint_return_rule(authors_data):
    """``Gems(end_rule="joint-return")`` terminates exactly where the file is ``done``.

    Each transition is replayed from its decoded state with the joint return of
    its episode so far (episodes split at the ``done`` flags, which is where the
    file's states stop running on), all at once; the gem rule would end many
    episodes earlier.
    """
    s, r, a, done = (authors_data[k] for k in ("s", "r", "a", "done"))
    n = len(s)
    episode = np.r_[0, np.cumsum(done[:-1])]
    joint = np.cumsum(r.sum(-1))
    before = joint - r.sum(-1)  # the joint return up to this transition, file-wide
    starts = np.r_[0, np.flatnonzero(done[:-1]) + 1]
    joint_before = before - before[starts][episode]
    actions = np.stack([a[:, :5].argmax(-1), a[:, 5:].argmax(-1)], axis=-1)
    agents, gems = decode(s)
    states = make_state(agents, gems, np.zeros(n), np.ones(n), joint_before)
    off_grid = jnp.full((n, 9, 2), -1, jnp.int32)
    _, reward, term = jax.jit(jax.vmap(AUTHORS.transition))(states, jnp.asarray(actions), off_grid)
    np.testing.assert_array_equal(np.asarray(reward), r)
    np.testing.assert_array_equal(np.asarray(term), done)
    assert AUTHORS.episode_rule["return_to_end"] == 20.0
