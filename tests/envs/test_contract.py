"""The environment protocol, checked on every registered environment."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.spaces import Box, Discrete

NAMES = [name for name in envs.registered() if envs.spec(name).jittable]
HOST_NAMES = [name for name in envs.registered() if not envs.spec(name).jittable]


@pytest.fixture(scope="module", params=NAMES)
def env(request):
    return envs.make(request.param)


@pytest.fixture(scope="module", params=HOST_NAMES)
def host_env(request):
    game = envs.make(request.param)
    yield game
    game.close()


def _random_actions(env, key):
    return env.sample_actions(key)


def test_static_facts(env):
    assert env.num_agents >= 1
    assert len(env.agents) == env.num_agents
    assert len(set(env.agents)) == env.num_agents
    assert len(env.action_spaces) == env.num_agents
    assert all(isinstance(sp, (Discrete, Box)) for sp in env.action_spaces)
    assert isinstance(env.max_steps, int) and env.max_steps > 0
    assert env.jittable
    hash(env.action_spaces)


def test_reset_and_step_shapes_dtypes(env):
    key = jax.random.key(0)
    obs, state = jax.jit(env.reset)(key)
    assert obs.shape == (env.num_agents, *env.obs_shape)
    assert obs.dtype == env.obs_dtype
    actions = _random_actions(env, jax.random.key(1))
    assert actions.shape == env.action_shape
    obs2, state2, reward, terminated, truncated, info = jax.jit(env.step)(
        jax.random.key(2), state, actions
    )
    assert obs2.shape == obs.shape and obs2.dtype == env.obs_dtype
    assert jax.tree.structure(state2) == jax.tree.structure(state)
    assert reward.shape == (env.num_agents,) and reward.dtype == jnp.float32
    assert terminated.shape == () and terminated.dtype == jnp.bool_
    assert truncated.shape == () and truncated.dtype == jnp.bool_
    assert info["next_obs"].shape == obs.shape and info["next_obs"].dtype == env.obs_dtype
    assert np.all(np.isfinite(np.asarray(obs2)))
    assert np.all(np.isfinite(np.asarray(reward)))


def test_vmap_no_retrace_and_autoreset(env):
    num_envs = 8
    steps = env.max_steps + 2

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key):
        key_reset, key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))

        def body(state, key):
            key_act, key_step = jax.random.split(key)
            actions = jax.vmap(env.sample_actions)(jax.random.split(key_act, num_envs))
            _, state, _, terminated, truncated, _ = jax.vmap(env.step)(
                jax.random.split(key_step, num_envs), state, actions
            )
            return state, (state.time, terminated, truncated)

        return state.time, jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    time_prev, (times, terminated, truncated) = jax.device_get(run(jax.random.key(3)))
    run(jax.random.key(4))  # same shapes: no second trace
    saw_done = np.zeros(num_envs, bool)
    for time_now, term, trunc in zip(times, terminated, truncated, strict=True):
        done = term | trunc
        assert not np.any(term & trunc), "terminated and truncated both set"
        # After an episode ends the state is a fresh reset; otherwise time advanced.
        np.testing.assert_array_equal(time_now, np.where(done, 0, time_prev + 1))
        # Truncation happens exactly at the cap.
        np.testing.assert_array_equal(trunc, (time_prev + 1 >= env.max_steps) & ~term)
        saw_done |= done
        time_prev = time_now
    assert saw_done.all(), "every env must end an episode within max_steps"
    chex.clear_trace_counter()


def test_deterministic_under_same_key(env):
    def rollout(key):
        key_reset, key = jax.random.split(key)
        obs, state = env.reset(key_reset)

        def body(carry, key):
            state = carry
            key_act, key_step = jax.random.split(key)
            actions = env.sample_actions(key_act)
            obs, state, reward, term, trunc, _ = env.step(key_step, state, actions)
            return state, (obs, reward, term, trunc)

        _, out = jax.lax.scan(body, state, jax.random.split(key, 20))
        return obs, out

    run = jax.jit(rollout)
    a = run(jax.random.key(7))
    b = run(jax.random.key(7))
    chex.assert_trees_all_equal(a, b)
    c = run(jax.random.key(8))
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True)
    assert not all(np.array_equal(x, y) for x, y in leaves)


# -- host-side games (PettingZoo, highway-env): the same protocol on NumPy arrays ----------
def _host_rollout(env, key, steps):
    key_reset, key = jax.random.split(key)
    obs, state = env.reset(key_reset)
    out = [obs]
    for key_t in jax.random.split(key, steps):
        key_act, key_step = jax.random.split(key_t)
        obs, state, reward, term, trunc, info = env.step(key_step, state,
                                                         env.sample_actions(key_act))
        out.append((obs, reward, term, trunc, info["next_obs"], state.time))
    return out


def test_host_env_protocol(host_env):
    env = host_env
    assert not env.jittable and env.num_agents == len(env.agents) == len(env.action_spaces)
    assert isinstance(env.max_steps, int) and env.max_steps > 0
    hash(env.action_spaces)
    steps = env.max_steps + 2
    rollout = _host_rollout(env, jax.random.key(3), steps)
    assert rollout[0].shape == (env.num_agents, *env.obs_shape)
    time_prev, saw_done = 0, False
    for obs, reward, term, trunc, next_obs, time_now in rollout[1:]:
        assert isinstance(obs, np.ndarray) and obs.dtype == np.float32
        assert obs.shape == next_obs.shape == (env.num_agents, *env.obs_shape)
        assert reward.shape == (env.num_agents,) and reward.dtype == np.float32
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
        assert not (term and trunc)
        done = bool(term) or bool(trunc)
        assert time_now == (0 if done else time_prev + 1)
        assert bool(trunc) == (time_prev + 1 >= env.max_steps and not term)
        saw_done |= done
        time_prev = time_now
    assert saw_done, "an episode must end within max_steps"


def test_host_env_deterministic_under_same_key(host_env):
    a = _host_rollout(host_env, jax.random.key(7), 4)
    b = _host_rollout(host_env, jax.random.key(7), 4)
    chex.assert_trees_all_equal(a, b)


def test_make_unknown_name_is_clear():
    with pytest.raises(KeyError, match="unknown environment 'gemz'.*gems"):
        envs.make("gemz")
