"""The highway-env intersection: MAMQL configuration, per-agent rewards, mairl protocol."""

import subprocess
import sys

import jax
import numpy as np
import pytest

pytest.importorskip("highway_env")

import envs  # noqa: E402
from envs.host import seed_from_key  # noqa: E402
from envs.intersection import FASTER, IDLE, SLOWER, Intersection  # noqa: E402


@pytest.fixture(scope="module")
def env():
    return envs.make("intersection")


def _run(env, seed, actions, steps=None):
    """Step ``env.step_host`` with fixed joint ``actions`` until the episode ends."""
    obs = env.reset_host(seed)
    out = []
    for _ in range(steps or env.max_steps):
        obs, reward, terminated, truncated, info = env.step_host(np.asarray(actions))
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return out


def test_import_envs_does_not_import_highway_env():
    code = "import sys, envs; envs.spec('intersection'); print('highway_env' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_mamql_configuration(env):
    assert envs.spec("intersection").family == "highway" and not env.jittable
    assert env.num_agents == 4 and env.agents == ("agent_0", "agent_1", "agent_2", "agent_3")
    assert env.obs_shape == (3, 7) and env.max_steps == 13
    assert env.num_actions == 3
    game = env.game
    assert game.config["initial_vehicle_count"] == 0 and game.config["spawn_probability"] == 0
    assert game.config["collision_reward"] == -4 and game.config["arrived_reward"] == 2
    assert game.config["high_speed_reward"] == 0
    obs = env.reset_host(0)
    assert len(game.road.vehicles) == 4  # the controlled vehicles and no other traffic
    assert obs.shape == (4, 3, 7) and obs.dtype == np.float32
    assert np.all(obs >= -1) and np.all(obs <= 1)
    np.testing.assert_array_equal(obs[:, :, 0], 1.0)  # 4 vehicles: each sees itself and 2
    # speeds of at most 10 m/s normalized over [20, 40] m/s and clipped: always -1
    np.testing.assert_array_equal(obs[:, :, 3:5], -1.0)
    # row 0 is the observer: positions are metres / 100 from the centre
    centre = np.array([v.position for v in game.controlled_vehicles])
    np.testing.assert_allclose(env.positions(obs), centre, atol=1e-4)
    # the action index -> meta-action mapping
    names = [game.action_type.agents_action_types[0].actions[a] for a in (SLOWER, IDLE, FASTER)]
    assert names == ["SLOWER", "IDLE", "FASTER"]


def test_fast_observations_equal_highway_env():
    fast = Intersection(speed_range=(-20.0, 20.0))
    slow = Intersection(speed_range=(-20.0, 20.0), fast_observations=False)
    np.testing.assert_array_equal(fast.reset_host(5), slow.reset_host(5))
    assert np.abs(fast.reset_host(5)[:, :, 3:5]).max() == 0.5  # 10 m/s / 20
    rng = np.random.default_rng(0)
    for _ in range(6):
        actions = rng.integers(0, 3, 4)
        a, b = fast.step_host(actions), slow.step_host(actions)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        if a[2] or a[3]:
            break


def test_collision_costs_the_colliding_agents_4():
    # everyone straight at full speed: the crossing paths meet after about 5 s
    env = Intersection(turns="straight")
    steps = _run(env, 0, [FASTER] * 4)
    obs, reward, terminated, truncated, info = steps[-1]
    crashed = info["crashed"]
    assert terminated and crashed.sum() >= 2 and len(steps) < env.max_steps
    np.testing.assert_array_equal(reward, np.where(crashed, -4.0, 0.0))
    np.testing.assert_array_equal(reward, info["agents_rewards"])
    for *_, info_t in steps[:-1]:
        np.testing.assert_array_equal(info_t["agents_rewards"], 0.0)


def test_arrival_pays_2_per_step():
    # a single vehicle arrives and ends the episode (every vehicle has arrived)
    env = Intersection(num_agents=1, turns="right")
    steps = _run(env, 0, [FASTER])
    rewards = np.array([s[1][0] for s in steps])
    assert steps[-1][2] and not steps[-1][3] and steps[-1][4]["arrived"][0]
    np.testing.assert_array_equal(rewards, [0.0] * (len(steps) - 1) + [2.0])
    # with four vehicles the arrived ones collect +2 on each step until the episode ends
    env4 = Intersection()
    policy = env4.scripted_policy()
    obs = env4.reset_host(3)
    seen = False
    for _ in range(env4.max_steps):
        obs, reward, terminated, truncated, info = env4.step_host(policy(None, obs))
        np.testing.assert_array_equal(reward, info["agents_rewards"])
        np.testing.assert_array_equal(reward, np.where(info["arrived"], 2.0, 0.0))
        seen |= info["arrived"].any()
        if terminated or truncated:
            break
    assert seen


def test_truncation_and_auto_reset_through_the_protocol(env):
    key = jax.random.key(1)
    obs, state = env.reset(key)
    slow = np.full(4, SLOWER, np.int32)  # all stop: nobody arrives, nobody crashes
    for t in range(1, env.max_steps + 1):
        key, key_step = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = env.step(key_step, state, slow)
        assert not terminated and bool(truncated) == (t == env.max_steps)
        np.testing.assert_array_equal(reward, 0.0)
    assert state.time == 0
    assert not np.array_equal(info["next_obs"], obs)
    # the new episode is seeded from the step key
    np.testing.assert_array_equal(obs, Intersection().reset_host(seed_from_key(key_step)))


def test_terminated_episode_auto_resets():
    env = Intersection(turns="straight")
    obs, state = env.reset(jax.random.key(0))
    for t in range(env.max_steps):
        obs, state, reward, terminated, truncated, info = env.step(
            jax.random.key(100 + t), state, np.full(4, FASTER))
        if terminated:
            break
    assert terminated and not truncated and state.time == 0 and (reward == -4).sum() >= 2
    assert np.abs(obs[:, 0, 1:3]).max() > np.abs(info["next_obs"][:, 0, 1:3]).max()


def test_seeds_reproduce_episodes(env):
    def episode(key):
        obs, state = env.reset(key)
        trace = [obs]
        for t in range(5):
            actions = env.sample_actions(jax.random.fold_in(key, t))
            obs, state, reward, *_ = env.step(jax.random.fold_in(key, 100 + t), state, actions)
            trace += [obs, reward]
        return trace

    a, b, c = episode(jax.random.key(7)), episode(jax.random.key(7)), episode(jax.random.key(8))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_collect_two_episodes_with_the_scripted_expert(env):
    from mairl.data import collect

    policy = env.scripted_policy()
    assert policy.host
    demos = collect(jax.random.key(0), env, policy, 2, num_envs=2)
    assert demos.num_episodes == 2 and demos.obs.shape[1:] == (4, 3, 7)
    assert demos.actions.shape[1] == 4 and demos.rewards.shape[1] == 4
    assert demos.num_transitions <= 2 * env.max_steps
    assert set(np.unique(np.asarray(demos.actions))) <= {SLOWER, IDLE, FASTER}
    done = np.asarray(demos.terminated) | np.asarray(demos.truncated)
    assert done.sum() == 2 and done[-1]


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="num_agents must be in 1..4"):
        Intersection(num_agents=5)
    with pytest.raises(ValueError, match="turns must be"):
        Intersection(turns="u-turn")
    with pytest.raises(ValueError, match="speed_range must be"):
        Intersection(speed_range=(40.0, 20.0))


def test_render_without_a_display(env):
    env.reset_host(0)
    image = env.render()
    assert image.shape == (600, 600, 3) and image.dtype == np.uint8 and image.max() > 0
