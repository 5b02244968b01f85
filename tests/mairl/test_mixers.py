"""Mixers (mairl.mixers) and factorized IQ-Learn (mairl.algos.factorized): the joint
soft value by enumeration, monotonicity, the product policy, known answers, an
equivalence with MAMQL, and a short offline run on a cooperative tabular game."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from mairl import data
from mairl.algos import ALGOS, Batch, FIQConfig, MAMQLConfig, MAMQLOfflineConfig, make_algo
from mairl.algos.factorized import make_factorized_critic
from mairl.data import Transition
from mairl.experts import tabular_policy_fn
from mairl.mixers import (
    MIXERS,
    enumerated_soft_value,
    global_state,
    make_mixer,
    mixed_soft_value,
)
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, make_train, train_data

N, A, D = 3, 4, 6  # agents, actions, state size of the mixer checks


def random_points(mixer, seed: int, count: int, scale: float = 2.0):
    """``count`` random mixer parameters, utilities ``(count, N, A)`` and states."""
    key_p, key_q, key_s = jax.random.split(jax.random.key(seed), 3)
    params = jax.vmap(mixer.init, in_axes=(0, None))(jax.random.split(key_p, count), D)
    return (params, scale * jax.random.normal(key_q, (count, N, A)),
            jax.random.normal(key_s, (count, D)))


@functools.partial(jax.jit, static_argnums=0)
def _both_values(mixer_name, params, q, s, alpha):
    mixer = make_mixer(mixer_name, N)

    def one(p, q, s, alpha):
        return (mixed_soft_value(mixer, p, q, s, alpha),
                enumerated_soft_value(mixer, p, q, s, alpha))

    return jax.vmap(one)(params, q, s, alpha)


def both_values(mixer, params, q, s, alpha):
    """(closed-form or tangent-plane V_tot, enumerated V_tot), one per point; ``alpha``
    one per point."""
    return _both_values(mixer.name, params, q, s, alpha)


# -- the joint soft value --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vdn", "linear"])
def test_affine_mixers_give_the_exact_joint_soft_value(name):
    # V_tot from the closed form b + sum_i alpha lse(w_i Q_i / alpha) equals
    # alpha lse over all A^N = 64 joint actions of Q_tot / alpha, at alpha 0.5 and 1.
    mixer = make_mixer(name, N)
    alpha = jnp.tile(jnp.array([0.5, 1.0]), 4)
    closed, exact = both_values(mixer, *random_points(mixer, 100, 8), alpha)
    np.testing.assert_allclose(closed, exact, rtol=1e-5, atol=1e-5)


def test_vdn_known_answer():
    # Two agents, Q_1 = [0, ln 3], Q_2 = [ln 2, 0], alpha = 1: the joint soft value
    # is ln(1 + 3) + ln(2 + 1) = ln 12.
    mixer = make_mixer("vdn", 2)
    q = jnp.log(jnp.array([[1.0, 3.0], [2.0, 1.0]]))
    np.testing.assert_allclose(mixed_soft_value(mixer, {}, q, jnp.zeros(1), 1.0), np.log(12.0),
                               rtol=1e-6)


def test_qmix_tangent_plane_is_a_lower_bound_with_a_measured_gap():
    # QMIX is convex in q, so its tangent plane lies below it and the plane's joint
    # soft value below the exact one. Over 15 random points (Q ~ 2 N(0, 1), random
    # parameters; exact values 17-140) the gap is 0 to 1.7 here (median 0.013, at most 2.2%
    # of the value):
    # not a rounding error. The 16th point has every agent's utility constant over
    # its actions, where the plane is exact.
    mixer = make_mixer("qmix", N)
    params, q, s = random_points(mixer, 200, 16)
    q = q.at[-1].set(jnp.broadcast_to(jnp.arange(N, dtype=jnp.float32)[:, None], (N, A)))
    plane, exact = both_values(mixer, params, q, s, jnp.ones(16))
    gaps = np.asarray(exact - plane)
    assert np.all(gaps[:-1] >= -1e-4 * np.abs(np.asarray(exact[:-1]))), gaps
    assert gaps.max() > 0.1, gaps
    np.testing.assert_allclose(plane[-1], exact[-1], rtol=1e-5)


# -- monotonicity ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MIXERS)
def test_mixers_are_monotone_in_every_agent_value(name):
    mixer = make_mixer(name, N)
    grad = jax.vmap(jax.grad(mixer.apply, argnums=1), in_axes=(None, 0, 0))

    @jax.jit
    def check(key):  # dQ_tot/dQ_i at 256 points, and the affine model's weights there
        key_p, key_q, key_s = jax.random.split(key, 3)
        params = mixer.init(key_p, D)
        q = 5.0 * jax.random.normal(key_q, (256, N))
        s = 3.0 * jax.random.normal(key_s, (256, D))
        flat = jnp.broadcast_to(q[..., None], (256, N, A))  # Boltzmann mean = q
        return grad(params, q, s), mixer.local_affine(params, flat, s, 1.0)[0]

    g, w = jax.vmap(check)(jax.random.split(jax.random.key(300), 5))
    assert g.shape == (5, 256, N)
    assert np.all(np.asarray(g) >= 0.0), (name, float(g.min()))
    # the local affine model's weights are these gradients (exact mixers: w(s))
    np.testing.assert_allclose(w, g, rtol=1e-4, atol=1e-6)


# -- the global state and the factorized critic ----------------------------------------------------
def test_global_state_concatenates_agents_in_order():
    obs = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)  # (agent, batch, obs)
    state = global_state(obs, 1)
    assert state.shape == (5, 6)
    np.testing.assert_array_equal(state[:, :3], obs[0])
    np.testing.assert_array_equal(state[:, 3:], obs[1])
    maps = jnp.ones((2, 4, 5, 3, 3))  # (agent, batch, channel, x, y)
    assert global_state(maps, 3).shape == (4, 90)
    with pytest.raises(ValueError, match="global_state"):
        global_state(jnp.ones(3), 1)


def small_critic(mixer: str, num_states: int = 3, num_agents: int = 2, num_actions: int = 3,
                 seed: int = 0):
    """A factorized critic on one-hot states with random tabular values."""
    config = FIQConfig(critic="tabular", mixer=mixer, gamma=0.9, alpha=0.7)
    critic = make_factorized_critic(config, num_agents=num_agents, obs_shape=(num_states,),
                                    num_actions=num_actions)
    algo = make_algo(config, num_agents=num_agents, obs_shape=(num_states,),
                     num_actions=num_actions)
    obs = jnp.zeros((num_agents, 1, num_states))
    batch = Batch(Transition(obs, jnp.zeros((num_agents, 1), jnp.int32), obs,
                             jnp.zeros(1, bool), jnp.zeros(1, bool)))
    params = algo.init(jax.random.key(seed), batch).params
    params["critics"] = jax.tree.map(
        lambda p: jax.random.normal(jax.random.key(seed + 1), p.shape), params["critics"])
    return critic, params


def one_hot_obs(state: int, num_agents: int = 2, num_states: int = 3):
    return jnp.broadcast_to(jax.nn.one_hot(state, num_states), (num_agents, num_states))


@pytest.mark.parametrize("name", MIXERS)
def test_q_values_give_the_joint_boltzmann_policy_as_a_product(name):
    # Per-agent softmax(q_values / alpha) multiplied over agents equals the joint
    # Boltzmann distribution of the team critic's (affine) Q_tot over all joint
    # actions: q_values carry the per-agent temperatures alpha / w_i.
    critic, params = small_critic(name)
    alpha = critic.alpha
    obs = one_hot_obs(1)
    a0, a1 = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    actions = jnp.stack([a0.ravel(), a1.ravel()])  # (agent, 9)
    obs_joint = jnp.broadcast_to(obs[:, None], (2, 9, 3))

    @jax.jit
    def read(params):
        taken = critic.agent_q(params, obs_joint)[jnp.arange(2)[:, None], jnp.arange(9),
                                                  actions]
        return (critic.q_values(params, obs), critic.team_q(params, obs_joint, actions),
                critic.team_value(params, obs),
                critic.mixer.apply(params["mixer"], taken.T, global_state(obs_joint, 1)))

    q_values, q_tot, v_tot, mixed = read(params)
    pi = jax.nn.softmax(q_values / alpha, axis=-1)  # (agent, A)
    joint = jax.nn.softmax(q_tot / alpha)
    np.testing.assert_allclose(joint, pi[0][a0.ravel()] * pi[1][a1.ravel()], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(v_tot, alpha * jax.nn.logsumexp(q_tot / alpha), rtol=1e-5)
    if name != "qmix":  # the affine read-out is the mixer itself
        np.testing.assert_allclose(q_tot, mixed, rtol=1e-5)


def test_team_reward_known_answer_and_agents_read_their_own_actions():
    # VDN, alpha 0.7, gamma 0.9: r = Q_1(s, a_1) + Q_2(s, a_2) - 0.9 V_tot(s') unless
    # terminated; V_tot(s') = sum_i 0.7 lse(Q_i(s', .) / 0.7).
    critic, params = small_critic("vdn")
    q = critic.agent_q(params, jnp.broadcast_to(jnp.eye(3), (2, 3, 3)))  # (agent, S, A)
    obs = jnp.stack([one_hot_obs(0), one_hot_obs(0)], axis=1)  # (agent, 2, S)
    next_obs = jnp.stack([one_hot_obs(2), one_hot_obs(2)], axis=1)
    actions = jnp.array([[1, 1], [2, 2]])  # agent 0 plays 1, agent 1 plays 2
    term = jnp.array([False, True])
    r = critic.team_reward(params, Transition(obs, actions, next_obs, term, term))
    v_next = np.sum(0.7 * jax.nn.logsumexp(q[:, 2] / 0.7, axis=-1))
    q_taken = q[0, 0, 1] + q[1, 0, 2]
    np.testing.assert_allclose(r, [q_taken - 0.9 * v_next, q_taken], rtol=1e-5)
    swapped = critic.team_q(params, obs, actions[::-1])
    np.testing.assert_allclose(swapped[0], q[0, 0, 2] + q[1, 0, 1], rtol=1e-5)


# -- the learner -----------------------------------------------------------------------------
def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="FIQConfig.mixer"):
        FIQConfig(mixer="sum")
    with pytest.raises(ValueError, match="FIQConfig.mode"):
        FIQConfig(mode="joint")
    with pytest.raises(ValueError, match="FIQConfig.mixer_embed"):
        FIQConfig(mixer_embed=0)
    assert ALGOS["fiq"].config is FIQConfig


def test_vdn_without_regularizer_is_the_sum_of_the_marginal_losses():
    # With c = 0 (phi the identity) and V_tot = sum_i V_i, the team loss is the sum
    # of MAMQL's per-agent losses, so Adam (elementwise, no clipping) takes the same
    # steps from the same parameters.
    common = dict(critic="tabular", gamma=0.9, chi2_coef=0.0, learning_rate=0.05,
                  max_grad_norm=None, batch_size=64)
    problem = dict(num_agents=2, obs_shape=(6,), num_actions=3)
    fiq = make_algo(FIQConfig(mixer="vdn", **common), **problem)
    mamql = make_algo(MAMQLOfflineConfig(**common), **problem)
    key = jax.random.key(3)
    obs = jax.nn.one_hot(jax.random.randint(key, (2, 64), 0, 6), 6)
    obs = jnp.broadcast_to(obs[:1], obs.shape)
    next_obs = jnp.roll(obs, 1, axis=1)
    acts = jax.random.randint(jax.random.key(4), (2, 64), 0, 3)
    term = jnp.arange(64) % 7 == 0
    batch = Batch(Transition(obs, acts, next_obs, term, jnp.zeros(64, bool)))
    s_m = mamql.init(key, batch)
    s_m = s_m.replace(params=jax.tree.map(lambda p: jax.random.normal(key, p.shape), s_m.params))
    s_f = fiq.init(key, batch)
    s_f = s_f.replace(params={"critics": s_m.params, "mixer": s_f.params["mixer"]})
    update_m, update_f = jax.jit(mamql.update), jax.jit(fiq.update)
    for _ in range(3):
        s_m, aux_m = update_m(s_m, batch, key)
        s_f, aux_f = update_f(s_f, batch, key)
    np.testing.assert_allclose(aux_f["loss"], aux_m["loss"].sum(), rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 s_f.params["critics"], s_m.params)


def test_online_vdn_without_regularizer_is_online_mamql():
    # Online, VDN's agents act on their own critics (w = 1) exactly as online MAMQL's
    # do, so from the same critics, environments and replay the two draw the same
    # actions, store the same transitions, sample the same policy rows and (c = 0)
    # take the same steps. Mixing up the expert and policy rows of the value term,
    # or their terminated flags, breaks the equality.
    game = envs.make("random-team-game", num_states=6, max_steps=2)
    common = dict(critic="tabular", gamma=0.9, chi2_coef=0.0, learning_rate=0.05,
                  max_grad_norm=None, batch_size=32, num_envs=4, buffer_size=64)
    problem = dict(num_agents=2, obs_shape=game.obs_shape, num_actions=game.num_actions,
                   env=game)
    fiq = make_algo(FIQConfig(mixer="vdn", mode="online", **common), **problem)
    mamql = make_algo(MAMQLConfig(mode="online", **common), **problem)
    assert fiq.needs.num_envs == 4 and mamql.needs.num_envs == 4
    key = jax.random.key(5)
    obs = jax.nn.one_hot(jax.random.randint(key, (1, 32), 0, 6), 6)
    obs = jnp.broadcast_to(obs, (2, 32, 6))
    acts = jax.random.randint(jax.random.key(4), (2, 32), 0, 3)
    batch = Batch(Transition(obs, acts, jnp.roll(obs, 1, axis=1), jnp.arange(32) % 7 == 0,
                             jnp.zeros(32, bool)))
    s_m = mamql.init(key, batch)
    s_m = s_m.replace(params=jax.tree.map(lambda p: jax.random.normal(key, p.shape), s_m.params))
    s_f = fiq.init(key, batch)
    s_f = s_f.replace(params={"critics": s_m.params, "mixer": s_f.params["mixer"]},
                      env_state=s_m.env_state, env_obs=s_m.env_obs, buffer=s_m.buffer)
    update_m, update_f = jax.jit(mamql.update), jax.jit(fiq.update)
    for i in range(4):
        s_m, aux_m = update_m(s_m, batch, jax.random.fold_in(key, i))
        s_f, aux_f = update_f(s_f, batch, jax.random.fold_in(key, i))
        np.testing.assert_allclose(aux_f["loss"], aux_m["loss"].sum(), rtol=1e-5)
    assert int(s_f.buffer.size) == 16
    np.testing.assert_array_equal(s_f.buffer.data.actions, s_m.buffer.data.actions)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 s_f.params["critics"], s_m.params)


def test_online_fiq_needs_an_env():
    with pytest.raises(ValueError, match="online.*env"):
        make_algo(FIQConfig(mode="online", critic="tabular"), num_agents=2, obs_shape=(6,),
                  num_actions=3)


@pytest.fixture(scope="module")
def team_game_demos():
    """A 6-state cooperative game (2 agents, 3 actions, one team reward), its logit
    equilibrium at gamma 0.9 and 100 demonstrated episodes of 30 steps."""
    game = envs.make("random-team-game", num_states=6, max_steps=30)
    assert np.array_equal(game.rewards[0], game.rewards[1])
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 100,
                         num_envs=100)
    return game, sol, demos


@pytest.mark.parametrize("name", [pytest.param("vdn", marks=pytest.mark.slow),
                                  pytest.param("linear", marks=pytest.mark.slow), "qmix"])
def test_offline_fiq_learns_the_cooperative_experts_policy(name, team_game_demos):
    # Uniform play is KL 0.12 and 0.19 (per agent) from the expert on this game; 400
    # updates of every mixer bring each agent to under a fifth of it.
    game, sol, demos = team_game_demos
    config = FIQConfig(critic="tabular", mixer=name, gamma=0.9, learning_rate=0.05,
                       chi2_coef=0.5, batch_size=256, mixer_hidden=(16,), mixer_embed=8)
    algo = make_algo(config, num_agents=2, obs_shape=game.obs_shape, num_actions=3)
    train = make_train(algo, TrainConfig(num_updates=400, eval_every=400))
    result = jax.jit(train)(jax.random.key(1), train_data(demos))
    states = jnp.broadcast_to(jnp.eye(6), (2, 6, 6))
    learned = np.asarray(jax.nn.softmax(algo.q_values(result.state.params, states), axis=-1))
    pi, d = np.asarray(sol.policy, np.float64), np.asarray(sol.state_occupancy, np.float64)
    kl = np.sum(d[None] * np.sum(pi * (np.log(pi) - np.log(learned)), axis=-1), axis=-1)
    uniform = np.sum(d[None] * np.sum(pi * np.log(pi * 3), axis=-1), axis=-1)
    assert kl.shape == (2,)
    assert np.all(kl < uniform / 5), (kl, uniform)
    assert np.all(np.isfinite(np.asarray(result.curves["train/loss"])))
    assert np.asarray(result.curves["train/mixer_weight"]).shape == (1, 2)


def test_fiq_runs_through_the_pipeline_config():
    cfg = dataclasses.replace(FIQConfig(), mixer="qmix")
    from mairl.runs import EnvConfig, RunConfig, config_from_dict, config_to_dict

    run_cfg = RunConfig(algo=cfg, env=EnvConfig("random-team-game"))
    assert run_cfg.algo_name == "fiq"
    assert config_from_dict(config_to_dict(run_cfg)) == run_cfg
