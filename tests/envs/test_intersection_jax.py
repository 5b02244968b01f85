"""intersection-jax against highway-env, step by step, and its own protocol facts.

The lockstep checks load highway-env's vehicles after its reset into the JAX
state and apply the same actions to both. Tolerances (float32 against
highway-env's float64): positions 0.1 m, headings 0.03 rad, speeds 1e-4 m/s,
observations 2e-3, on steps without a crash. Positions differ by 1e-5 m while
vehicles move; a vehicle braking to a near standstill (below about 0.15 m/s)
makes highway-env's steering controller swing between its +-60 degree limits,
which amplifies rounding to centimetres: the worst over 1,000 episodes was
7.3e-2 m and 2.0e-2 rad (``experiments/intersection_fidelity.py``), so the
position and heading bounds leave room for other seeds. Collisions, arrivals,
rewards and terminations must agree exactly. The 1,000-episode and
distribution checks are in ``experiments/intersection_fidelity.py``.

Compiling a step takes seconds, so the tests share one env with one jitted
reset and step (module-scoped fixture); routes other than the reset's random
turns are set on its states (the dynamics read the route from the state).
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import intersection_jax
from envs.intersection_jax import FASTER, SLOWER, IntersectionJax, lockstep

POSITION_TOL, HEADING_TOL, SPEED_TOL, OBS_TOL = 0.1, 0.03, 1e-4, 2e-3


@pytest.fixture(scope="module")
def jitted():
    """``(env, jit(reset), jit(step_env))`` of ``intersection-jax-speed``'s configuration."""
    env = IntersectionJax(speed_range=(-20.0, 20.0))
    return env, jax.jit(env.reset), jax.jit(env.step_env)


def _routes(turn: str) -> np.ndarray:
    """``route (vehicle, 3)`` with every vehicle taking ``turn``: approach ``5c``, turn
    lane ``5c + TURN_LANE``, exit ``5((c + TURN_OFFSET + 1) % 4) + 4`` (the lane order of
    :mod:`envs.intersection_jax`)."""
    corner = np.arange(4)
    exit_side = (corner + intersection_jax.TURN_OFFSET[turn]) % 4
    return np.stack([5 * corner, 5 * corner + intersection_jax.TURN_LANE[turn],
                     5 * ((exit_side + 1) % 4) + 4], axis=1).astype(np.int32)


def test_import_does_not_import_highway_env():
    code = ("import sys, envs; env = envs.make('intersection-jax'); "
            "print('highway_env' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_registration_and_static_facts(jitted):
    env, fast = envs.make("intersection-jax"), envs.make("intersection-jax-speed")
    assert env.jittable and env.num_agents == 4 and env.obs_shape == (3, 7)
    assert env.max_steps == 13 and env.num_actions == 3
    assert env.speed_range == (20.0, 40.0) and fast.speed_range == (-20.0, 20.0)
    assert jitted[0].speed_range == fast.speed_range
    obs_fast, state = jitted[1](jax.random.key(0))
    assert obs_fast.shape == (4, 3, 7) and obs_fast.dtype == jnp.float32
    np.testing.assert_allclose(np.abs(obs_fast[:, 0, 3:5]).max(), 0.5)  # 10 m/s / 20
    obs = jax.jit(env.observe)(state)
    assert obs.shape == (4, 3, 7) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs[:, :, 3:5], -1.0)  # 10 m/s over [20, 40]: clipped
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
def games(jitted):
    pytest.importorskip("highway_env")
    from envs.intersection import Intersection

    env, _, step = jitted  # the JAX state comes from the host's, routes included
    return {turns: (Intersection(turns=turns, speed_range=(-20.0, 20.0)), env, step)
            for turns in ("random", "straight")}


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


def test_crash_and_arrival_rewards_in_jax(jitted):
    # everyone straight at full speed: -4 to each crashed vehicle, episode terminated
    env, reset, step = jitted
    obs, state = reset(jax.random.key(0))
    state = state.replace(route=jnp.asarray(_routes("straight")))
    for _ in range(env.max_steps):
        obs, state, reward, terminated, info = step(jax.random.key(1), state,
                                                    jnp.full(4, FASTER, jnp.int32))
        if terminated:
            break
    assert terminated and info["crashed"].sum() >= 2
    np.testing.assert_array_equal(reward, np.where(info["crashed"], -4.0, 0.0))
    # everyone turning right (paths apart): 0 until a vehicle arrives, then +2 on
    # each step; the episode ends when all have arrived
    _, state = reset(jax.random.key(2))
    state = state.replace(route=jnp.asarray(_routes("right")))
    rewards, faster = [], jnp.full(4, FASTER, jnp.int32)
    for _ in range(env.max_steps):
        obs, state, reward, terminated, info = step(jax.random.key(1), state, faster)
        rewards.append(np.asarray(reward))
        if terminated:
            break
    rewards = np.array(rewards)  # (step, agent)
    assert terminated and info["arrived"].all() and not info["crashed"].any()
    arrived_at = (rewards == 2.0).argmax(0)
    assert len(set(arrived_at)) > 1  # the vehicles arrive at different steps
    for agent, t in enumerate(arrived_at):
        np.testing.assert_array_equal(rewards[:t, agent], 0.0)
        np.testing.assert_array_equal(rewards[t:, agent], 2.0)


def test_one_vehicle_arrives_alone(jitted):
    # no pairs to collide; the episode ends when its one vehicle arrives (its state:
    # the first vehicle of a four-vehicle reset, turning right)
    env = IntersectionJax(num_agents=1)
    step = jax.jit(env.step_env)
    _, state = jitted[1](jax.random.key(0))
    state = state.replace(route=jnp.asarray(_routes("right")))
    state = jax.tree.map(lambda x: x if x.ndim == 0 else x[:1], state)
    rewards = []
    for _ in range(env.max_steps):
        obs, state, reward, terminated, info = step(jax.random.key(1), state, jnp.full(1, FASTER))
        rewards.append(float(reward[0]))
        if terminated:
            break
    assert terminated and bool(info["arrived"][0]) and rewards[-1] == 2.0
    assert all(r == 0.0 for r in rewards[:-1])


def test_vmapped_steps_equal_single_steps(jitted):
    # batch-minor under vmap (custom_vmap) against one env at a time; the fourth env's
    # first vehicle is past its route's end, so the batch takes the lane-table path
    env, reset, step = jitted
    keys = jax.random.split(jax.random.key(3), 4)
    states = jax.tree.map(lambda *x: jnp.stack(x), *[reset(k)[1] for k in keys])
    states = states.replace(route_index=states.route_index.at[3, 0].set(3).astype(jnp.int32))
    actions = jax.random.randint(jax.random.key(4), (4, 4), 0, 3)
    batched = jax.jit(jax.vmap(env.step_env))(keys, states, actions)
    for b in range(4):
        state_b = jax.tree.map(lambda x, b=b: x[b], states)
        single = step(keys[b], state_b, actions[b])
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(np.asarray(x)[b], np.asarray(y), atol=1e-5)


def test_route_end_takes_the_lane_table(jitted):
    # a vehicle on its exit lane with the route used up (route_index 3, the table's
    # path) moves as one with the exit lane still its route's last (index 2)
    env, reset, step = jitted
    _, state = reset(jax.random.key(5))
    for _ in range(3):
        _, state, *_ = step(jax.random.key(1), state, jnp.full(4, FASTER, jnp.int32))
    state = state.replace(target_lane=state.route[:, 2],
                          route_index=jnp.full(4, 2, jnp.int32))
    used_up = state.replace(route=jnp.repeat(state.route[:, 2:], 3, axis=1),
                            route_index=jnp.full(4, 3, jnp.int32))
    a = step(jax.random.key(1), state, jnp.full(4, SLOWER, jnp.int32))
    b = step(jax.random.key(1), used_up, jnp.full(4, SLOWER, jnp.int32))
    for name in ("position", "heading", "speed", "target_lane", "lane", "crashed"):
        np.testing.assert_array_equal(getattr(a[1], name), getattr(b[1], name), err_msg=name)
    np.testing.assert_array_equal(a[0], b[0])


def test_polynomial_atan2_and_wrap():
    # quadrants, axes, signed zeros and the tan(pi/8) switch, against NumPy in float64
    values = np.array([0.0, -0.0, 1e-6, -1e-6, 0.4142135, 0.4142136, 1.0, -1.0, 2.5, -7.0, 1e3])
    y, x = (a.ravel() for a in np.meshgrid(values, values))
    got = np.asarray(jax.jit(intersection_jax._atan2)(jnp.asarray(y, jnp.float32),
                                                      jnp.asarray(x, jnp.float32)))
    want = np.arctan2(y.astype(np.float32).astype(np.float64), x.astype(np.float32))
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-7)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    angles = np.array([-7.0, -np.pi, -1.0, 0.0, 3.0, np.pi - 1e-3, 10.0, 40.0], np.float32)
    wrapped = np.asarray(intersection_jax._wrap_to_pi(jnp.asarray(angles)))
    np.testing.assert_allclose(wrapped, (angles + np.pi) % (2 * np.pi) - np.pi, atol=2e-6)
    assert np.all((-np.pi <= wrapped) & (wrapped < np.pi))
