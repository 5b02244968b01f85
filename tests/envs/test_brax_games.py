"""Multi-agent Brax games: the split of the body by joint name, observations against
MuJoCo's named access, actions against the physics, episode ends, general-sum rewards.

The default suite compiles two programs on ``ant-4x2``: the PettingZoo wrapper's step
(PettingZoo's API and seed tests, and the test that each agent drives the joints it
observes) and a vmapped ``lax.scan`` of the public ``step`` (episode ends, auto-reset,
no retrace). The other games' dynamics, and the shared contract and PettingZoo tests
on every Brax game (tests/envs/conftest.py), run under ``-m slow``.
"""

from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax")
mujoco = pytest.importorskip("mujoco")

import envs  # noqa: E402
from envs.brax_games import GAMES, BraxGame, GameSpec, joint_layout  # noqa: E402
from envs.pettingzoo import to_pettingzoo  # noqa: E402
from envs.spaces import Box  # noqa: E402
from tests.envs.test_contract import test_static_facts as check_static_facts  # noqa: E402

# PettingZoo's own API and seed tests, run here on ``named_env`` (ant-4x2)
from tests.envs.test_pettingzoo import (  # noqa: E402, F401
    test_parallel_api,
    test_parallel_seed,
)


@pytest.fixture(scope="module")
def games():
    """Every registered Brax game, built once (model only; nothing compiles here)."""
    return {name: envs.make(name) for name in GAMES}


def _joint_name(model, j):
    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j))


def _roots(model):
    return [_joint_name(model, j) for j in range(model.njnt)
            if model.body_parentid[model.jnt_bodyid[j]] == 0]


# -- the split, from the model ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GAMES))
def test_actuators_partition_by_joint_name(games, name):
    env = games[name]
    model = env.brax_env.sys.mj_model
    acts = env.layout.actuators
    # disjoint and covering: every actuator exactly once
    assert sorted(acts.reshape(-1).tolist()) == list(range(model.nu))
    assert env.action_shape == (env.num_agents, acts.shape[1])
    # each agent's actuators drive exactly its named joints, entry m the m-th joint
    for i, names in enumerate(GAMES[name].partition):
        driven = [_joint_name(model, model.actuator_trnid[a, 0]) for a in acts[i]]
        assert driven == list(names), (env.agents[i], driven, names)


def test_ant_actuator_order_is_not_joint_order(games):
    # brax's ant lists its motors hip_4, ankle_4, hip_1, ...: leg_1 must get motors 2, 3
    np.testing.assert_array_equal(games["ant-4x2"].layout.actuators,
                                  [[2, 3], [4, 5], [6, 7], [0, 1]])


@pytest.mark.parametrize("name", sorted(GAMES))
def test_joint_action_sends_each_entry_to_its_joint(games, name):
    env = games[name]
    model = env.brax_env.sys.mj_model
    k = env.action_shape[1]
    actions = jnp.arange(env.num_agents * k, dtype=jnp.float32).reshape(env.num_agents, k)
    full = np.asarray(env.joint_action(actions))
    for a in range(model.nu):
        joint = _joint_name(model, model.actuator_trnid[a, 0])
        agent = next(i for i, names in enumerate(GAMES[name].partition) if joint in names)
        assert full[a] == actions[agent, GAMES[name].partition[agent].index(joint)]


@pytest.mark.parametrize("name", sorted(GAMES))
def test_local_observation_matches_named_access(games, name):
    """Every entry of every agent's view is the ``q`` / ``qd`` entry MuJoCo's named access
    gives for the observed joints (root without its world x, y), then zero padding."""
    env = games[name]
    model = env.brax_env.sys.mj_model
    data = mujoco.MjData(model)
    data.qpos[:] = 1.0 + np.arange(model.nq)
    data.qvel[:] = 100.0 + np.arange(model.nv)
    state = SimpleNamespace(pipeline_state=SimpleNamespace(q=jnp.asarray(data.qpos, jnp.float32),
                                                           qd=jnp.asarray(data.qvel, jnp.float32)))
    obs = np.asarray(env.observe(state))
    assert obs.shape == (env.num_agents, *env.obs_shape) and obs.dtype == np.float32
    roots = _roots(model)
    for i, joints in enumerate(env.observed_joints):
        own = GAMES[name].partition[i]
        assert joints[: len(roots)] == tuple(roots)
        assert joints[len(roots): len(roots) + len(own)] == own
        q, qd = [], []
        for joint in joints:
            jq, jqd = data.joint(joint).qpos, data.joint(joint).qvel
            kind = model.jnt_type[model.joint(joint).id]
            if kind == mujoco.mjtJoint.mjJNT_FREE:
                jq = jq[2:]
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE and model.joint(joint).axis[2] == 0:
                jq = jq[:0]
            q.extend(jq)
            qd.extend(jqd)
        expected = np.asarray(q + qd, np.float32)
        assert env.obs_sizes[i] == expected.size
        np.testing.assert_array_equal(obs[i, : expected.size], expected, err_msg=env.agents[i])
        np.testing.assert_array_equal(obs[i, expected.size:], 0.0)


def test_documented_neighbourhoods(games):
    # obs_k = 1: joints on the same, parent, child or sibling bodies
    assert games["ant-4x2"].observed_joints[0] == (
        "root", "hip_1", "ankle_1", "hip_2", "hip_3", "hip_4")
    assert games["halfcheetah-6x1"].observed_joints[2] == (
        "rootx", "rootz", "rooty", "bfoot", "bshin")
    assert games["halfcheetah-6x1"].observed_joints[0] == (
        "rootx", "rootz", "rooty", "bthigh", "bshin", "fthigh")
    assert games["walker2d-2x3"].observed_joints[1][-1] == "thigh_joint"
    sizes = {name: (games[name].obs_shape, games[name].obs_sizes) for name in GAMES}
    assert sizes == {
        "ant-4x2": ((21,), (21,) * 4),
        "halfcheetah-6x1": ((11,), (11, 11, 9, 11, 11, 9)),
        "walker2d-2x3": ((13,), (13, 13)),
        "hopper-3x1": ((11,), (9, 11, 9)),
        "ant-2x4-xy": ((23,), (23, 23)),
        "ant-4x2-effort": ((21,), (21,) * 4),
    }
    own_only = BraxGame("ant-4x2", obs_k=0)
    assert own_only.observed_joints[3] == ("root", "hip_4", "ankle_4")
    assert own_only.obs_shape == (5 + 6 + 2 + 2,)


def test_global_observation_mode():
    env = BraxGame("walker2d-2x3", obs_mode="global")
    assert env.obs_shape == (17,)  # brax walker2d: q without x (8) and qd (9)
    state = SimpleNamespace(obs=jnp.arange(env.obs_shape[0], dtype=jnp.float32))
    np.testing.assert_array_equal(env.observe(state), np.tile(np.asarray(state.obs), (2, 1)))


def test_bad_configurations_name_the_field():
    model = envs.make("ant-4x2").brax_env.sys.mj_model
    legs = GAMES["ant-4x2"].partition
    with pytest.raises(ValueError, match="unknown joint 'hip_5'"):
        joint_layout(model, (("hip_5", "ankle_1"),) + legs[1:])
    with pytest.raises(ValueError, match="'hip_1' is given to agents 0 and 1"):
        joint_layout(model, (legs[0], ("hip_1", "ankle_2"), legs[2], legs[3]))
    with pytest.raises(ValueError, match="no agent owns"):
        joint_layout(model, legs[:3])
    with pytest.raises(ValueError, match=r"agents drive \[4, 2, 2\] actuators"):
        joint_layout(model, (legs[0] + legs[1], legs[2], legs[3]))
    with pytest.raises(ValueError, match="obs_k"):
        joint_layout(model, legs, obs_k=-1)
    with pytest.raises(ValueError, match="backend: expected one of"):
        BraxGame("ant-4x2", backend="physx")
    with pytest.raises(ValueError, match="horizon: expected an int >= 1"):
        BraxGame("ant-4x2", horizon=0)
    with pytest.raises(ValueError, match="obs_mode"):
        BraxGame("ant-4x2", obs_mode="pixels")
    with pytest.raises(ValueError, match="game: expected one of"):
        BraxGame("ant-8x1")
    with pytest.raises(ValueError, match="'xy' needs the ant"):
        BraxGame(None, spec=GameSpec("hopper", (("thigh_joint", "leg_joint", "foot_joint"),),
                                     ("a",), reward="xy"))
    env = envs.make("ant-4x2")
    with pytest.raises(ValueError, match=r"actions: expected shape \(4, 2\)"):
        env.step_env(jax.random.key(0), None, jnp.zeros((4, 3)))


def test_general_sum_rewards_known_answer(games):
    """r_x = v_x + 1 - 0.5 |a_x|^2 and r_y = v_y + 1 - 0.5 |a_y|^2; team games broadcast."""
    env = games["ant-2x4-xy"]
    state = SimpleNamespace(metrics={"x_velocity": jnp.float32(2.0),
                                     "y_velocity": jnp.float32(-1.0)}, reward=jnp.float32(9.0))
    actions = jnp.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    # agent x: 2 + 1 - 0.5 * 1 = 2.5; agent y: -1 + 1 - 0.5 * (4 * 0.25) = -0.5
    np.testing.assert_allclose(env._rewards(state, actions), [2.5, -0.5])
    team = games["ant-4x2"]
    np.testing.assert_array_equal(team._rewards(state, jnp.zeros((4, 2))), [9.0] * 4)


def test_effort_rewards_known_answer(games):
    """r_i = R + 0.5 |a|^2 - 0.5 |a_i|^2: the body's reward with the leg's own effort only."""
    env = games["ant-4x2-effort"]
    actions = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    total = 0.5 * float(jnp.sum(actions ** 2))  # 0.5 * 3.5 = 1.75
    state = SimpleNamespace(metrics={"reward_ctrl": jnp.float32(-total)},
                            reward=jnp.float32(2.0))
    # R + 1.75 - 0.5 * (1, 0, 0.5, 2)
    np.testing.assert_allclose(env._rewards(state, actions), [3.25, 3.75, 3.5, 2.75])
    idle = SimpleNamespace(metrics={"reward_ctrl": jnp.float32(0.0)}, reward=jnp.float32(2.0))
    np.testing.assert_allclose(env._rewards(idle, jnp.zeros((4, 2))), [2.0] * 4)


def test_import_envs_does_not_import_brax():
    import subprocess
    import sys

    code = "import sys, envs, mairl; print('brax' in sys.modules, 'mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


# -- dynamics: two compiled programs answer the default suite's questions ----------------------
HORIZON = 3
STEPS = 5
BATCH = 5


@pytest.fixture(scope="module")
def ant():
    """``ant-4x2`` with a horizon of 3; its PettingZoo wrappers share one compiled step."""
    env = envs.make("ant-4x2", horizon=HORIZON)
    assert env.backend == "spring"
    return env


@pytest.fixture(scope="module")
def named_env(ant):
    """``(name, env)`` for the shared PettingZoo tests imported above."""
    return "ant-4x2", ant


def test_static_facts_and_spaces(ant):
    check_static_facts(ant)
    assert ant.action_spaces == (Box(-1.0, 1.0, (2,)),) * 4
    assert ant.max_steps == HORIZON and ant.obs_shape == (21,)


def _own_velocity_positions(env):
    """Per agent, where the velocities of its own joints sit in its view, found without the
    layout: ``observe`` a state whose ``qd`` entries are distinct markers and look for the
    markers of the agent's joints (MuJoCo's named ``dofadr``); each must appear once."""
    model = env.brax_env.sys.mj_model
    qd = 1000.0 + np.arange(model.nv)
    state = SimpleNamespace(pipeline_state=SimpleNamespace(
        q=jnp.zeros(model.nq, jnp.float32), qd=jnp.asarray(qd, jnp.float32)))
    obs = np.asarray(env.observe(state))
    positions = []
    for j, names in enumerate(GAMES[env.env_id].partition):
        found = [np.flatnonzero(obs[j] == qd[model.joint(n).dofadr[0]]) for n in names]
        assert all(p.size == 1 for p in found), (env.agents[j], names, found)
        positions.append(np.concatenate(found))
    return positions


def _own_velocity_response(env, next_obs):
    """``R[p][j]``: |change| of agent ``j``'s own joint velocities, as ``j`` observes them,
    when agent ``p`` pushes (row ``1 + p`` of ``next_obs``) against the zero action (row 0)."""
    own_vel = _own_velocity_positions(env)
    n = env.num_agents
    return [[np.abs(next_obs[1 + p, j, own_vel[j]] - next_obs[0, j, own_vel[j]])
             for j in range(n)] for p in range(n)]


def _assert_each_agent_drives_what_it_sees(env, response, factor):
    """Every own joint of every agent moves more (by ``factor``) when its agent pushes than
    when any other agent does: the agent drives the joints it observes as its own. (Other
    joints do move: a push turns the torso, and the other hips with it.)"""
    n = env.num_agents
    for j in range(n):
        own = response[j][j]
        cross = np.max([response[p][j] for p in range(n) if p != j], axis=0)
        assert np.all(own > 0.5) and np.all(own > factor * cross), (
            env.agents[j], own, cross)


def test_each_agent_moves_exactly_its_own_joints(ant):
    """Through the PettingZoo wrapper (actions keyed by agent name), from one reset: the
    zero action, then a push (+1 on each actuator) by one agent at a time, for one step.
    Every joint an agent observes as its own answers its own agent's push most; with
    spring the own joints move 4.9-5.9 rad/s, the others' at most 2.3."""
    rows = []
    for pusher in [None, *ant.agents]:
        par = to_pettingzoo(ant)
        par.reset(seed=0)
        actions = {agent: np.full(2, 1.0 if agent == pusher else 0.0, np.float32)
                   for agent in ant.agents}
        obs = par.step(actions)[0]
        rows.append(np.stack([obs[agent] for agent in ant.agents]))
    _assert_each_agent_drives_what_it_sees(ant, _own_velocity_response(ant, np.stack(rows)),
                                           1.5)


def _lift(env, pipeline_state, lift):
    """Batched pipeline states with the body raised by ``lift`` metres (the free joint's
    z is ``q[2]``), rebuilt by the backend's own ``pipeline_init``."""
    q = pipeline_state.q.at[:, 2].add(lift)
    return jax.vmap(env.brax_env.pipeline_init)(q, pipeline_state.qd)


@pytest.fixture(scope="module")
def rollout(ant):
    """``run(reset_keys (B,), lift (B,), actions (T, B, N, k))``: B ant-4x2 envs
    (horizon 3) from the given resets, lifted by ``lift``, stepped ``T`` times with
    ``env.step`` under ``jax.jit`` + ``lax.scan``; returns per step ``info["next_obs"]``,
    reward, terminated, truncated and time."""
    env = ant

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(reset_keys, lift, actions):
        _, state = jax.vmap(env.reset)(reset_keys)
        pipe = _lift(env, state.brax.pipeline_state, lift)
        state = state.replace(brax=state.brax.replace(pipeline_state=pipe))

        def body(state, inputs):
            key, action = inputs
            keys = jax.random.split(key, reset_keys.shape[0])
            _, state, reward, term, trunc, info = jax.vmap(env.step)(keys, state, action)
            return state, (info["next_obs"], reward, term, trunc, state.time)

        keys = jax.random.split(jax.random.key(1), actions.shape[0])
        return jax.lax.scan(body, state, (keys, actions))[1]

    yield env, run
    chex.clear_trace_counter()


def test_scan_terminated_truncated_and_autoreset(rollout):
    """Lifted bodies (torso above 1 m) fall out of the healthy range: terminated at the
    first step, then reset; the others are truncated at the horizon, never terminated."""
    env, run = rollout
    n, k = env.action_shape
    batch = BATCH
    lift = jnp.array([0.0, 0.0, 1.0, 1.0, 0.0])
    actions = jax.random.uniform(jax.random.key(5), (STEPS, batch, n, k), minval=-1, maxval=1)
    keys = jax.random.split(jax.random.key(3), batch)
    next_obs, reward, term, trunc, time = jax.device_get(run(keys, lift, actions))
    assert next_obs.shape == (STEPS, batch, n, *env.obs_shape) and next_obs.dtype == np.float32
    assert reward.shape == (STEPS, batch, n) and reward.dtype == np.float32
    assert np.all(np.isfinite(next_obs)) and np.all(np.isfinite(reward))
    # team reward: every agent the same
    np.testing.assert_array_equal(reward, np.repeat(reward[..., :1], n, axis=-1))
    np.testing.assert_array_equal(term[0], [False, False, True, True, False])
    assert not term[1:].any()
    expect_trunc = np.zeros((STEPS, batch), bool)
    expect_trunc[HORIZON - 1, [0, 1, 4]] = True  # steps 1, 2, 3 of the first episode
    expect_trunc[HORIZON, [2, 3]] = True  # lifted: reset after step 1, then 3 more steps
    np.testing.assert_array_equal(trunc, expect_trunc)
    expect_time = np.array([[1, 1, 0, 0, 1], [2, 2, 1, 1, 2], [0, 0, 2, 2, 0],
                            [1, 1, 0, 0, 1], [2, 2, 1, 1, 2]])
    np.testing.assert_array_equal(time, expect_time)
    # same inputs, same outputs; no second trace (assert_max_traces in the fixture)
    again = jax.device_get(run(keys, lift, actions))
    chex.assert_trees_all_equal((next_obs, reward, term, trunc, time), again)


def test_step_keeps_state_types(games):
    """The state after ``step_env`` has the types of the state after ``reset_env``, so a
    jitted step called in a Python loop compiles once (checked on shapes, no compile)."""
    env = games["ant-4x2"]
    _, state = jax.eval_shape(env.reset_env, jax.random.key(0))
    out = jax.eval_shape(env.step_env, jax.random.key(1), state, jnp.zeros(env.action_shape))
    assert jax.tree.structure(out[1]) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(out[1]), strict=True):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)


# -- heavier: every game's dynamics ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GAMES))
def test_every_game_forces_exactly_the_joints_each_agent_sees(name):
    """With MuJoCo's dynamics (``backend="mjx"``), one agent's push changes the actuator
    forces ``qfrc_actuator`` on exactly the dofs whose velocities that agent observes as
    its own, and on no other dof. (Velocities alone cannot show this on the chains of
    halfcheetah and walker2d: a thigh's torque swings the shin below it as hard as the
    shin's own motor does.)"""
    env = envs.make(name, backend="mjx")
    n, k = env.action_shape

    @jax.jit
    def actuator_force(action):
        _, state = env.reset(jax.random.key(0))
        return env.step_env(jax.random.key(1), state, action)[1].brax.pipeline_state.qfrc_actuator

    base = np.asarray(actuator_force(jnp.zeros((n, k))))
    seen = _own_velocity_positions(env)
    model = env.brax_env.sys.mj_model
    marker_dof = 1000.0 + np.arange(model.nv)  # what _own_velocity_positions observed
    for i in range(n):
        pushed = np.asarray(actuator_force(jnp.zeros((n, k)).at[i].set(1.0)))
        moved = set(np.flatnonzero(np.abs(pushed - base) > 1e-4).tolist())
        state = SimpleNamespace(pipeline_state=SimpleNamespace(
            q=jnp.zeros(model.nq, jnp.float32), qd=jnp.asarray(marker_dof, jnp.float32)))
        observed = np.asarray(env.observe(state))[i, seen[i]]
        assert moved == set((observed - 1000.0).astype(int).tolist()), (env.agents[i], moved)


@pytest.mark.slow
def test_general_sum_rewards_differ_in_rollouts():
    env = envs.make("ant-2x4-xy", horizon=50)

    @jax.jit
    def run(key):
        _, state = env.reset(key)

        def body(state, key):
            key_act, key_step = jax.random.split(key)
            _, state, reward, _, _, info = env.step(key_step, state,
                                                    env.sample_actions(key_act))
            return state, reward

        return jax.lax.scan(body, state, jax.random.split(key, 50))[1]

    rewards = np.asarray(run(jax.random.key(0)))
    assert rewards.shape == (50, 2)
    assert np.abs(rewards[:, 0] - rewards[:, 1]).mean() > 0.05


@pytest.mark.slow
def test_effort_rewards_are_the_team_reward_with_own_effort_in_rollouts():
    """On the real dynamics: r_i - R_team = 0.5 (|a|^2 - |a_i|^2), so brax's control cost
    is 0.5 |a|^2 of the whole action as the effort game assumes."""
    team, effort = envs.make("ant-4x2", horizon=20), envs.make("ant-4x2-effort", horizon=20)

    def rollout(env, key):
        _, state = env.reset(key)

        def body(state, key):
            actions = env.sample_actions(key)
            _, state, reward, _, _, _ = env.step(key, state, actions)
            return state, (reward, actions)

        return jax.lax.scan(body, state, jax.random.split(key, 20))[1]

    (r_team, a_team), (r_effort, a_effort) = (jax.jit(rollout, static_argnums=0)(e, key)
                                              for e, key in ((team, jax.random.key(0)),
                                                             (effort, jax.random.key(0))))
    np.testing.assert_array_equal(a_team, a_effort)  # same draws, same body
    own = 0.5 * np.sum(np.square(np.asarray(a_team)), axis=-1)  # (step, agent)
    expected = np.asarray(r_team) + own.sum(-1, keepdims=True) - own
    np.testing.assert_allclose(r_effort, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(r_effort) - np.asarray(r_team)).max() > 0.1
