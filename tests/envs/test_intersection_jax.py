"""intersection-jax against highway-env, step by step, and its own protocol facts.

The lockstep checks load highway-env's vehicles after its reset into the JAX
state and apply the same actions to both. Tolerances (float32 against
highway-env's float64): positions 0.05 m, headings 0.01 rad, speeds 1e-4 m/s,
observations 2e-3, on steps without a crash. Positions differ by 1e-5 m while
vehicles move; a vehicle braking to a near standstill (below about 0.1 m/s)
makes highway-env's steering controller oscillate between its +-60 degree
limits, which amplifies rounding to millimetres
(see ``experiments/intersection_fidelity.py``). Collisions,
arrivals, rewards and terminations must agree exactly. The 1,000-episode and
distribution checks are in ``experiments/intersection_fidelity.py``.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.intersection_jax import FASTER, SLOWER, IntersectionJax, lockstep

POSITION_TOL, HEADING_TOL, SPEED_TOL, OBS_TOL = 0.05, 0.01, 1e-4, 2e-3


def test_import_does_not_import_highway_env():
    code = ("import sys, envs; env = envs.make('intersection-jax'); "
            "print('highway_env' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_registration_and_static_facts():
    env, fast = envs.make("intersection-jax"), envs.make("intersection-jax-speed")
    assert env.jittable and env.num_agents == 4 and env.obs_shape == (3, 7)
    assert env.max_steps == 13 and env.num_actions == 3
    assert env.speed_range == (20.0, 40.0) and fast.speed_range == (-20.0, 20.0)
    obs, state = jax.jit(env.reset)(jax.random.key(0))
    assert obs.shape == (4, 3, 7) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs[:, :, 3:5], -1.0)  # 10 m/s over [20, 40]: clipped
    obs_fast = fast.observe(state)
    np.testing.assert_allclose(np.abs(obs_fast[:, 0, 3:5]).max(), 0.5)  # 10 m/s / 20
    # start: on approach c, 60 + 5 N(1, 1) m along it, 10 m/s, target 9 m/s, route lanes
    np.testing.assert_array_equal(state.lane, [0, 5, 10, 15])
    np.testing.assert_array_equal(state.speed, 10.0)
    np.testing.assert_array_equal(state.target_speed, 9.0)
    assert set(np.asarray(state.route[:, 1] % 5)) <= {1, 2, 3}
    np.testing.assert_array_equal(state.route[:, 2] % 5, 4)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="num_agents must be in 1..4"):
        IntersectionJax(num_agents=0)
    with pytest.raises(ValueError, match="turns must be"):
        IntersectionJax(turns="u-turn")
    with pytest.raises(ValueError, match="speed_range must be"):
        IntersectionJax(speed_range=(40.0, 20.0))
    with pytest.raises(ValueError, match="duration must be"):
        IntersectionJax(duration=0)


def test_scripted_policy_matches_the_host_expert():
    pytest.importorskip("highway_env")
    from envs.intersection import Intersection

    host, env = Intersection(), IntersectionJax()
    host_expert, jax_expert = host.scripted_policy(), jax.jit(env.scripted_policy())
    for seed in range(3):
        obs = host.reset_host(seed)
        for _ in range(env.max_steps):
            actions = host_expert(None, obs)
            np.testing.assert_array_equal(jax_expert(None, jnp.asarray(obs)), actions)
            obs, _, terminated, truncated, _ = host.step_host(actions)
            if terminated or truncated:
                break


@pytest.fixture(scope="module")
def games():
    pytest.importorskip("highway_env")
    from envs.intersection import Intersection

    out = {}
    for turns in ("random", "straight"):
        env = IntersectionJax(turns=turns, speed_range=(-20.0, 20.0))
        out[turns] = (Intersection(turns=turns, speed_range=(-20.0, 20.0)), env,
                      jax.jit(env.step_env))
    return out


def _random_policy(seed):
    rng = np.random.default_rng(seed)
    return lambda t, obs: rng.integers(0, 3, 4)


def _policies(host):
    expert = host.scripted_policy()
    return {
        "scripted": lambda seed: (lambda t, obs: expert(None, obs)),
        "random": lambda seed: _random_policy(seed),
        # everyone straight at full speed: crossing paths, crashes
        "crash": lambda seed: (lambda t, obs: np.full(4, FASTER)),
        # braking to a stop, then off again
        "stop-go": lambda seed: (lambda t, obs: np.full(4, SLOWER if t < 5 else FASTER)),
    }


@pytest.mark.parametrize("kind,turns,episodes", [
    ("scripted", "random", 5), ("random", "random", 6), ("crash", "straight", 3),
    ("stop-go", "random", 2)])
def test_lockstep_with_highway_env(games, kind, turns, episodes):
    host, env, step = games[turns]
    make_policy = _policies(host)[kind]
    crashes = arrivals = 0
    for seed in range(episodes):
        r = lockstep(host, env, 1000 * len(kind) + seed, make_policy(seed), step)
        assert r["obs0"] <= 1e-6
        for name in ("crashed", "arrived", "reward", "terminated"):
            np.testing.assert_array_equal(r[f"jax_{name}"], r[f"host_{name}"],
                                          err_msg=f"{kind} episode {seed}: {name}")
        # kinematics before the first crash (an impact's push scales a millimetre
        # difference of overlap into the displacement)
        moving = ~r["host_crashed"].any(1)
        assert r["position"][moving].max() <= POSITION_TOL
        assert r["heading"][moving].max() <= HEADING_TOL
        assert r["speed"][moving].max() <= SPEED_TOL
        # observations agree wherever positions do (a visibility threshold can flip
        # on millimetre differences left by a standstill's steering oscillation)
        tight = r["position"] <= 1e-3
        assert np.all(r["obs"][tight] <= OBS_TOL), f"{kind} episode {seed}: {r['obs']}"
        crashes += r["host_crashed"][-1].any()
        arrivals += r["host_arrived"][-1].sum()
    if kind == "crash":
        assert crashes == episodes
    if kind == "scripted":
        assert arrivals > 0


def test_crash_and_arrival_rewards_in_jax():
    # everyone straight at full speed: -4 to each crashed vehicle, episode terminated
    env = IntersectionJax(turns="straight")
    obs, state = env.reset(jax.random.key(0))
    step = jax.jit(env.step_env)
    for _ in range(env.max_steps):
        obs, state, reward, terminated, info = step(jax.random.key(1), state,
                                                    jnp.full(4, FASTER))
        if terminated:
            break
    assert terminated and info["crashed"].sum() >= 2
    np.testing.assert_array_equal(reward, np.where(info["crashed"], -4.0, 0.0))
    # one vehicle alone arrives: +2 and the episode ends (all arrived)
    env1 = IntersectionJax(num_agents=1, turns="right")
    obs, state = env1.reset(jax.random.key(0))
    step1 = jax.jit(env1.step_env)
    rewards = []
    for _ in range(env1.max_steps):
        obs, state, reward, terminated, info = step1(jax.random.key(1), state, jnp.full(1, FASTER))
        rewards.append(float(reward[0]))
        if terminated:
            break
    assert terminated and bool(info["arrived"][0]) and rewards[-1] == 2.0
    assert all(r == 0.0 for r in rewards[:-1])


def test_vmapped_steps_equal_single_steps():
    env = IntersectionJax(turns="straight")
    keys = jax.random.split(jax.random.key(3), 3)
    _, states = jax.vmap(env.reset)(keys)
    actions = jax.random.randint(jax.random.key(4), (3, 4), 0, 3)
    batched = jax.jit(jax.vmap(env.step_env))(keys, states, actions)
    step = jax.jit(env.step_env)
    for b in range(3):
        state_b = jax.tree.map(lambda x, b=b: x[b], states)
        single = step(keys[b], state_b, actions[b])
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(np.asarray(x)[b], np.asarray(y), atol=1e-5)
