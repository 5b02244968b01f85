"""Tabular Markov games: validation, files, sampling, named games."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.tabular import (
    SCHEMA_VERSION,
    TabularGame,
    TabularState,
    battle_of_the_sexes,
    chicken,
    grid_crossing,
    grid_rendezvous,
    load_game,
    prisoners_dilemma,
    random_game,
    stag_hunt,
)


def small_tensors(num_actions=(2, 3), num_states=4, seed=0):
    rng = np.random.default_rng(seed)
    joint = (num_states, *num_actions)
    transitions = rng.dirichlet(np.ones(num_states), size=joint)
    rewards = rng.normal(size=(len(num_actions), *joint))
    initial = rng.dirichlet(np.ones(num_states))
    return transitions, rewards, initial


@pytest.fixture(scope="module")
def game():
    transitions, rewards, initial = small_tensors()
    terminal = np.array([False, False, False, True])
    return TabularGame(
        transitions, rewards, initial, max_steps=7, agents=("row", "col"), terminal=terminal
    )


# -- construction and validation ------------------------------------------------------------
def test_static_facts(game):
    assert game.num_agents == 2 and game.num_states == 4
    assert game.num_actions_per_agent == (2, 3)
    assert game.action_spaces == (envs.Discrete(2), envs.Discrete(3))
    assert game.agents == ("row", "col")
    assert game.obs_shape == (4,)
    assert game.num_joint_actions == 6
    assert game.joint_transitions.shape == (4, 6, 4)
    assert game.joint_rewards.shape == (2, 4, 6)
    np.testing.assert_array_equal(game.joint_rewards[:, :, 1 * 3 + 2], game.rewards[:, :, 1, 2])
    for arr in (game.transitions, game.rewards, game.initial, game.terminal):
        assert not arr.flags.writeable
    assert game.transitions.dtype == np.float64
    with pytest.raises(ValueError):
        game.rewards[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="different action spaces"):
        game.action_space  # noqa: B018


def _bad(kind):
    P, R, rho = small_tensors()
    term = None
    if kind == "transitions-ndim":
        P = P[:, 0, 0]
    elif kind == "transitions-square":
        P = P[..., :3]
    elif kind == "transitions-negative":
        P = P.copy()
        P[0, 0, 0, :2] = [-0.1, P[0, 0, 0, 0] + P[0, 0, 0, 1] + 0.1]
    elif kind == "transitions-sum":
        P = P * 1.01
    elif kind == "transitions-nan":
        P = P.copy()
        P[1, 1, 1, 1] = np.nan
    elif kind == "rewards-shape":
        R = R[:, :, :, :2]
    elif kind == "rewards-agents":
        R = np.concatenate([R, R[:1]])
    elif kind == "rewards-inf":
        R = R.copy()
        R[0, 0, 0, 0] = np.inf
    elif kind == "initial-shape":
        rho = np.ones(3) / 3
    elif kind == "initial-negative":
        rho = np.array([1.5, -0.5, 0.0, 0.0])
    elif kind == "initial-sum":
        rho = np.full(4, 0.3)
    elif kind == "terminal-shape":
        term = np.zeros(3, bool)
    elif kind == "terminal-values":
        term = np.array([0, 2, 0, 0])
    return P, R, rho, term


@pytest.mark.parametrize(
    "kind, match",
    [
        ("transitions-ndim", r"transitions: expected shape \(S, A_1"),
        ("transitions-square", "transitions: .*same S"),
        ("transitions-negative", "transitions: probabilities must be non-negative"),
        ("transitions-sum", r"transitions: .*must sum to 1"),
        ("transitions-nan", "transitions: contains non-finite"),
        ("rewards-shape", r"rewards: expected shape \(N, S, A_1"),
        ("rewards-agents", r"rewards: expected shape .*N = 2 agents"),
        ("rewards-inf", "rewards: contains non-finite"),
        ("initial-shape", r"initial: expected shape \(S,\)"),
        ("initial-negative", "initial: probabilities must be non-negative"),
        ("initial-sum", "initial: .*must sum to 1"),
        ("terminal-shape", "terminal: expected a boolean mask of shape"),
        ("terminal-values", "terminal: expected a boolean mask"),
    ],
)
def test_invalid_tensors_name_the_tensor(kind, match):
    P, R, rho, term = _bad(kind)
    with pytest.raises(ValueError, match=match):
        TabularGame(P, R, rho, terminal=term)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_steps=0), "max_steps"),
        (dict(max_steps=2.5), "max_steps"),
        (dict(obs_mode="pixels"), "obs_mode"),
        (dict(agents=("a",)), "agents"),
        (dict(agents=("a", "a")), "agents: names must be unique"),
    ],
)
def test_invalid_arguments(kwargs, match):
    P, R, rho = small_tensors()
    with pytest.raises(ValueError, match=match):
        TabularGame(P, R, rho, **kwargs)


def test_small_probability_errors_are_renormalized():
    P, R, rho = small_tensors()
    game = TabularGame(P * (1 + 5e-6), R, rho * (1 - 5e-6))
    np.testing.assert_allclose(game.transitions.sum(-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(game.initial.sum(), 1.0, atol=1e-14)


@pytest.mark.parametrize("num_agents", [1, 3])
def test_any_number_of_agents(num_agents):
    P, R, rho = small_tensors(num_actions=(2,) * num_agents, num_states=3)
    game = TabularGame(P, R, rho)
    assert game.num_agents == num_agents
    assert game.agents == tuple(f"agent_{i}" for i in range(num_agents))
    obs, state = game.reset(jax.random.key(0))
    actions = jnp.ones(num_agents, jnp.int32)
    obs, state, reward, *_ = jax.jit(game.step)(jax.random.key(1), state, actions)
    assert obs.shape == (num_agents, 3) and reward.shape == (num_agents,)


# -- dynamics -------------------------------------------------------------------------------------
def test_step_matches_transition_probabilities(game):
    # Every (s, a_0, a_1) at once, 4000 samples each, through vmap(step).
    num_samples = 4000
    grid = np.array(np.meshgrid(range(4), range(2), range(3), indexing="ij")).reshape(3, -1).T
    s, actions = grid[:, 0], grid[:, 1:]
    states = jnp.repeat(jnp.asarray(s, jnp.int32), num_samples)
    acts = jnp.repeat(jnp.asarray(actions, jnp.int32), num_samples, axis=0)
    state = TabularState(time=jnp.zeros_like(states), state=states)
    keys = jax.random.split(jax.random.key(1), states.shape[0])
    _, _, reward, terminated, truncated, info = jax.jit(jax.vmap(game.step))(keys, state, acts)

    next_state = np.asarray(jnp.argmax(info["next_obs"][:, 0], axis=-1)).reshape(-1, num_samples)
    freq = np.stack([np.bincount(row, minlength=4) / num_samples for row in next_state])
    expected = game.transitions[s, actions[:, 0], actions[:, 1]]
    # Binomial standard error is at most 0.5 / sqrt(4000) ~ 0.008.
    np.testing.assert_allclose(freq, expected, atol=0.04)
    np.testing.assert_allclose(
        np.asarray(reward).reshape(-1, num_samples, 2)[:, 0],
        game.rewards[:, s, actions[:, 0], actions[:, 1]].T,
        rtol=1e-6,
    )
    np.testing.assert_array_equal(np.asarray(terminated).reshape(-1, num_samples), next_state == 3)
    assert not np.asarray(truncated).any()


def test_zero_probability_states_are_never_sampled():
    # One agent, one action: from every state, 1/3 to state 0, 2/3 to state 2;
    # states 1 and 3 have probability zero (one in the middle, one trailing).
    P = np.zeros((4, 1, 4))
    P[:, 0, 0], P[:, 0, 2] = 1 / 3, 2 / 3
    game = TabularGame(P, np.zeros((1, 4, 1)), [0.0, 0.0, 1.0, 0.0])
    num_samples = 30000
    keys = jax.random.split(jax.random.key(0), num_samples)
    _, states = jax.jit(jax.vmap(game.reset))(keys)
    assert np.all(np.asarray(states.state) == 2)
    _, next_states, *_ = jax.jit(jax.vmap(game.step_env))(
        keys, states, jnp.zeros((num_samples, 1), jnp.int32)
    )
    counts = np.bincount(np.asarray(next_states.state), minlength=4)
    assert counts[1] == 0 and counts[3] == 0
    np.testing.assert_allclose(counts[2] / num_samples, 2 / 3, atol=0.02)


def test_reset_matches_initial_distribution(game):
    num_samples = 20000
    obs, state = jax.jit(jax.vmap(game.reset))(jax.random.split(jax.random.key(2), num_samples))
    freq = np.bincount(np.asarray(state.state), minlength=4) / num_samples
    np.testing.assert_allclose(freq, game.initial, atol=0.02)
    np.testing.assert_array_equal(np.asarray(obs[:, 0].argmax(-1)), np.asarray(state.state))
    np.testing.assert_array_equal(np.asarray(state.time), 0)


def test_observations(game):
    obs = game.observe(jnp.int32(2))
    assert obs.shape == (2, 4) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, [[0, 0, 1, 0]] * 2)
    assert int(game.state_from_obs(obs[0])) == 2

    P, R, rho = small_tensors()
    indexed = TabularGame(P, R, rho, obs_mode="index")
    assert indexed.obs_shape == (1,)
    obs = indexed.observe(jnp.int32(3))
    assert obs.shape == (2, 1) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, [[3.0], [3.0]])
    np.testing.assert_array_equal(indexed.state_from_obs(obs), [3, 3])


def test_terminal_state_terminates_and_resets():
    # Two states; every joint action moves 0 -> 1, and 1 is terminal.
    P = np.zeros((2, 2, 2, 2))
    P[..., 1] = 1.0
    game = TabularGame(P, np.zeros((2, 2, 2, 2)), [1.0, 0.0], terminal=[False, True])
    obs, state = game.reset(jax.random.key(0))
    obs, state, _, terminated, truncated, info = jax.jit(game.step)(
        jax.random.key(1), state, jnp.zeros(2, jnp.int32)
    )
    assert bool(terminated) and not bool(truncated)
    assert int(game.state_from_obs(info["next_obs"][0])) == 1
    assert int(state.state) == 0 and int(state.time) == 0


def test_truncation_and_no_retrace():
    game = prisoners_dilemma(max_steps=3)
    num_envs = 16

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, actions):
        return jax.vmap(game.step)(jax.random.split(key, num_envs), state, actions)

    state = TabularState(time=jnp.zeros(num_envs, jnp.int32), state=jnp.zeros(num_envs, jnp.int32))
    actions = jnp.zeros((num_envs, 2), jnp.int32)
    truncs = []
    for t in range(6):
        _, state, reward, terminated, truncated, _ = step(jax.random.key(t), state, actions)
        truncs.append(bool(truncated.all()))
        assert not terminated.any()
        np.testing.assert_array_equal(reward, 3.0)
    assert truncs == [False, False, True, False, False, True]
    chex.clear_trace_counter()


# -- files ----------------------------------------------------------------------------------------
def test_save_load_round_trip(game, tmp_path):
    path = game.save(tmp_path / "game.npz")
    loaded = TabularGame.load(path)
    for name in ("transitions", "rewards", "initial", "terminal"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(game, name))
    assert loaded.max_steps == 7 and loaded.obs_mode == "onehot"
    assert loaded.agents == ("row", "col")
    with np.load(path, allow_pickle=False) as data:
        assert int(data["schema_version"]) == SCHEMA_VERSION

    overridden = load_game(path, max_steps=11, obs_mode="index")
    assert overridden.max_steps == 11 and overridden.obs_shape == (1,)


def test_make_with_tabular_prefix(game, tmp_path):
    path = game.save(tmp_path / "made.npz")
    env = envs.make("tabular:" + str(path))
    assert isinstance(env, TabularGame)
    assert env.env_id == "tabular:" + str(path)
    np.testing.assert_array_equal(env.rewards, game.rewards)
    assert envs.make("tabular:" + str(path), max_steps=3).max_steps == 3


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_game(tmp_path / "nothing.npz")


def test_corrupt_and_truncated_files(game, tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not an npz archive" * 10)
    with pytest.raises(ValueError, match="garbage.npz.*not a readable tabular game file"):
        load_game(garbage)

    good = game.save(tmp_path / "good.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_game(truncated)

    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="array.npz.*not an .npz archive"):
        load_game(npy)


def _rewrite(game, path, **changes):
    game.save(path)
    with np.load(path, allow_pickle=False) as data:
        entries = {k: data[k] for k in data.files}
    entries.update(changes)
    entries = {k: v for k, v in entries.items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **entries)
    return path


def test_wrong_schema_missing_key_and_bad_tensor(game, tmp_path):
    path = _rewrite(game, tmp_path / "v99.npz", schema_version=np.asarray(99))
    with pytest.raises(ValueError, match="v99.npz: schema_version 99 is not supported"):
        load_game(path)

    path = _rewrite(game, tmp_path / "norewards.npz", rewards=None)
    with pytest.raises(ValueError, match="norewards.npz: missing entry 'rewards'"):
        load_game(path)

    path = _rewrite(game, tmp_path / "badinit.npz", initial=np.full(4, 0.5))
    with pytest.raises(ValueError, match="badinit.npz: initial: .*must sum to 1"):
        load_game(path)

    path = _rewrite(game, tmp_path / "badsteps.npz", max_steps=np.asarray([1, 2]))
    with pytest.raises(ValueError, match="badsteps.npz: 'max_steps' must be a scalar"):
        load_game(path)


# -- named games ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "factory, table",
    [
        # (a_0, a_1): (payoff of agent 0, payoff of agent 1), as documented.
        (prisoners_dilemma, {(0, 0): (3, 3), (0, 1): (0, 5), (1, 0): (5, 0), (1, 1): (1, 1)}),
        (stag_hunt, {(0, 0): (4, 4), (0, 1): (0, 3), (1, 0): (3, 0), (1, 1): (3, 3)}),
        (chicken, {(0, 0): (0, 0), (0, 1): (-1, 1), (1, 0): (1, -1), (1, 1): (-10, -10)}),
        (battle_of_the_sexes, {(0, 0): (3, 2), (0, 1): (0, 0), (1, 0): (0, 0), (1, 1): (2, 3)}),
    ],
)
def test_matrix_game_payoffs(factory, table):
    game = factory()
    assert game.num_states == 1 and game.num_actions_per_agent == (2, 2)
    np.testing.assert_array_equal(game.transitions, 1.0)
    actions = jnp.array(list(table), jnp.int32)  # (4, 2)
    state = TabularState(time=jnp.zeros(4, jnp.int32), state=jnp.zeros(4, jnp.int32))
    keys = jax.random.split(jax.random.key(1), 4)
    reward = jax.jit(jax.vmap(game.step))(keys, state, actions)[2]
    np.testing.assert_array_equal(reward, list(table.values()))
    for (a0, a1), payoff in table.items():
        np.testing.assert_array_equal(game.rewards[:, 0, a0, a1], payoff)


@pytest.mark.parametrize(
    "name",
    [
        "prisoners-dilemma",
        "stag-hunt",
        "chicken",
        "battle-of-the-sexes",
        "grid-rendezvous",
        "grid-crossing",
        "random-game",
    ],
)
def test_registered_names(name):
    env = envs.make(name)
    assert isinstance(env, TabularGame)
    assert envs.spec(name).family == "tabular"


def test_grid_rendezvous_layout():
    game = grid_rendezvous()
    assert game.num_states == 81 and game.num_actions_per_agent == (5, 5)
    # Agent 0 starts bottom-left (cell 6), agent 1 bottom-right (cell 8).
    assert int(np.argmax(game.initial)) == 6 * 9 + 8 and game.initial.max() == 1.0
    meet = 4 * 9 + 4
    np.testing.assert_allclose(game.rewards[:, meet, 0, 0], [2.0, 2.0])
    np.testing.assert_allclose(game.rewards[:, 0 * 9 + 2, 0, 0], [1.0, 1.0])  # both on goals
    np.testing.assert_allclose(game.rewards[:, 0 * 9 + 4, 0, 0], [1.0, 0.0])  # only agent 0
    # Moving costs the mover only.
    np.testing.assert_allclose(game.rewards[:, meet, 1, 0], [1.95, 2.0])
    # Slip: agent 0 in the centre going up reaches the top-middle cell with
    # probability 0.9 + 0.1 / 5 while agent 1 stays in the corner cell 8 with 0.9 + 0.1 * 3 / 5.
    s = 4 * 9 + 8
    np.testing.assert_allclose(game.transitions[s, 1, 0, 1 * 9 + 8], 0.92 * 0.96)


def test_grid_crossing_layout():
    game = grid_crossing()
    # Agent 0 starts at the middle-left (cell 3), agent 1 at the top-middle (cell 1).
    assert int(np.argmax(game.initial)) == 3 * 9 + 1
    centre = 4 * 9 + 4
    np.testing.assert_allclose(game.rewards[:, centre, 0, 0], [-2.0, -2.0])
    np.testing.assert_allclose(game.rewards[:, 5 * 9 + 7, 0, 0], [1.0, 1.0])  # both on goals
    assert not np.allclose(game.rewards[0], game.rewards[1])


def test_random_game_is_deterministic_under_key():
    a = random_game(jax.random.key(3), 5, 2, 3)
    b = random_game(jax.random.key(3), 5, 2, 3)
    c = random_game(jax.random.key(4), 5, 2, 3)
    for name in ("transitions", "rewards", "initial"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))
    assert a.transitions.shape == (5, 2, 2, 2, 5) and a.rewards.shape == (3, 5, 2, 2, 2)
    uneven = random_game(jax.random.key(0), 3, (2, 4), 2, max_steps=9)
    assert uneven.num_actions_per_agent == (2, 4) and uneven.max_steps == 9
    with pytest.raises(ValueError, match="num_actions"):
        random_game(jax.random.key(0), 3, (2, 4, 1), 2)
