"""Tabular multi-agent ML-IRL (``mairl.tabular_irl``) against the exact oracle.

The expert is the logit equilibrium of a random general-sum game
(``mairl.solvers.soft_value_iteration``). From its exact occupancy the learner
must reach the expert's policies (state-weighted KL) and rewards equal to the
expert's marginal rewards up to potential shaping (the evaluation's
shaping-aware correlation, ``mairl.metrics.calibration.tabular_metrics``), for
every agent. The building blocks are checked against independent computations:
the first evaluation sweep is the solvers' soft Bellman operator, and the reward
gradient is the autodiff gradient of the log-likelihood.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.tabular import random_game
from mairl.data import Demonstrations, collect
from mairl.experts import tabular_policy_fn
from mairl.metrics import policy_kl
from mairl.metrics.calibration import tabular_metrics
from mairl.solvers import (
    boltzmann_policy,
    marginal_transitions,
    soft_bellman_operator,
    soft_value,
    soft_value_iteration,
)
from mairl.tabular_irl import (
    MLIRLConfig,
    demonstration_occupancy,
    learner_occupancy,
    likelihood_gradient,
    ml_irl,
    ml_irl_from_tensors,
    soft_policy_evaluation,
)

GAMMA = 0.9
#: Largest state-weighted KL(expert || learned) and smallest shaping-aware
#: correlation accepted from exact occupancies (the learner's stationary point is
#: the expert: both are met by orders of magnitude within 600 iterations).
KL_EXACT, CORR_EXACT = 1e-4, 0.99
CONFIG = MLIRLConfig(gamma=GAMMA, learning_rate=0.05, iterations=600)


def scores(game, solution, result, gamma=GAMMA):
    """Per-agent policy KL under the expert's state occupancy and the evaluation's
    shaping-aware correlation of the learned reward with the expert's marginal reward."""
    kl = policy_kl(solution.policy, result.policy, solution.state_occupancy)
    corr = tabular_metrics(solution, gamma, game.terminal)["reward_shaping_corr"][1](result.reward)
    return np.asarray(kl), np.asarray(corr)


@pytest.fixture(scope="module", params=[2, 3], ids=["2-agents", "3-agents"])
def expert(request):
    game = random_game(jax.random.key(request.param), 8, 3, request.param)
    return game, soft_value_iteration(game, alpha=1.0, gamma=GAMMA)


def test_known_answer_one_state():
    """One agent, one state that loops on itself, ``alpha = 1``: the expert plays
    ``pi_E = [1/2, 1/3, 1/6]``. Every positive policy is soft-optimal for
    ``r = log pi_E`` (with ``V = 0``), and in one state shaping is a constant, so
    the learned reward is ``log pi_E`` up to a constant and the policy ``pi_E``."""
    pi_e = np.array([1 / 2, 1 / 3, 1 / 6])
    result = ml_irl_from_tensors(np.ones((1, 3, 1)), np.ones(1), pi_e[None, None], CONFIG)
    np.testing.assert_allclose(result.policy[0, 0], pi_e, atol=1e-4)
    r = np.asarray(result.reward[0, 0])
    np.testing.assert_allclose(r - r.mean(), np.log(pi_e) - np.log(pi_e).mean(), atol=1e-3)
    assert result.trace.log_likelihood.shape == (CONFIG.iterations, 1)
    np.testing.assert_allclose(result.trace.policy_kl[-1], 0.0, atol=1e-6)


def test_recovers_expert_policy_and_reward(expert):
    game, solution = expert
    result = ml_irl(game, solution, CONFIG)
    kl, corr = scores(game, solution, result)
    assert np.all(kl <= KL_EXACT), kl
    assert np.all(corr >= CORR_EXACT), corr
    # The likelihood rises to its maximum, the negative conditional entropy of the expert.
    ll = np.asarray(result.trace.log_likelihood)
    assert np.all(ll[-1] > ll[0])
    assert np.all(np.asarray(result.trace.policy_kl)[-1] <= 1e-5)


def test_terminal_states():
    """The last two states are terminal: nothing is bootstrapped after entering one,
    and the reward is compared up to shaping with a potential that is zero there and
    no free constant (the terminal-aware metric)."""
    game = random_game(jax.random.key(7), 8, 3, 2, num_terminal=2)
    solution = soft_value_iteration(game, alpha=1.0, gamma=GAMMA)
    result = ml_irl(game, solution, CONFIG)
    kl, corr = scores(game, solution, result)
    assert np.all(kl <= KL_EXACT), kl
    assert np.all(corr >= CORR_EXACT), corr


def test_other_temperature_rescales_the_reward(expert):
    """A learner at ``alpha = 0.5`` on the ``alpha = 1`` expert: the policy is still
    matched and the reward is the expert's scaled by 1/2, up to shaping."""
    game, solution = expert
    result = ml_irl(game, solution, MLIRLConfig(alpha=0.5, gamma=GAMMA, learning_rate=0.05,
                                                 iterations=600))
    kl, corr = scores(game, solution, result)
    assert np.all(kl <= KL_EXACT), kl
    assert np.all(corr >= CORR_EXACT), corr


def test_start_initial_matches_on_exact_occupancy(expert):
    """From exact occupancies the paper's start (the game's initial distribution)
    reaches the same answer."""
    game, solution = expert
    result = ml_irl(game, solution, MLIRLConfig(gamma=GAMMA, learning_rate=0.05, iterations=600,
                                                 start="initial", evaluation_sweeps=3))
    kl, corr = scores(game, solution, result)
    assert np.all(kl <= KL_EXACT), kl
    assert np.all(corr >= CORR_EXACT), corr


def test_one_hot_features_equal_tabular():
    """Linear rewards with the indicator features of ``(s, a)`` are the tabular ones."""
    game = random_game(jax.random.key(2), 8, 3, 2)
    solution = soft_value_iteration(game, alpha=1.0, gamma=GAMMA)
    n, s, a = solution.policy.shape
    features = np.eye(s * a).reshape(s, a, s * a)
    config = MLIRLConfig(gamma=GAMMA, learning_rate=0.05, iterations=50)
    tabular = ml_irl(game, solution, config)
    linear = ml_irl(game, solution, config, features=features)
    np.testing.assert_allclose(linear.reward, tabular.reward, atol=1e-5)
    np.testing.assert_allclose(linear.theta.reshape(n, s, a), tabular.theta, atol=1e-5)


def test_first_sweep_is_the_soft_bellman_operator():
    """``soft_policy_evaluation`` with one sweep equals ``mairl.solvers.soft_bellman_operator``
    on the joint reward ``R_i(s, a) = r_i(s, a_i)``, terminal states included."""
    game = random_game(jax.random.key(3), 6, 2, 3, num_terminal=1)
    key_q, key_r = jax.random.split(jax.random.key(0))
    q = jax.random.normal(key_q, (3, 6, 2))
    r = jax.random.normal(key_r, (3, 6, 2))
    joint = jnp.stack([
        r[0][:, :, None, None] + jnp.zeros((6, 2, 2, 2)),
        r[1][:, None, :, None] + jnp.zeros((6, 2, 2, 2)),
        r[2][:, None, None, :] + jnp.zeros((6, 2, 2, 2)),
    ])
    transitions = jnp.asarray(game.transitions, jnp.float32)
    terminal = jnp.asarray(game.terminal)
    evaluate = jax.jit(soft_policy_evaluation, static_argnums=6)
    ours = evaluate(q, r, transitions, terminal, 0.7, GAMMA, 1)
    theirs = jax.jit(soft_bellman_operator)(q, transitions, joint, 0.7, GAMMA, terminal)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # Many sweeps: the soft Q of the fixed policy of ``q``, a fixed point of its evaluation.
    many = evaluate(q, r, transitions, terminal, 0.7, GAMMA, 400)
    pi = boltzmann_policy(q, 0.7)
    v = jnp.where(terminal, 0.0, jnp.sum(pi * (many - 0.7 * jnp.log(pi)), -1))
    trans = marginal_transitions(transitions, pi)
    np.testing.assert_allclose(many, r + GAMMA * jnp.einsum("nsat,nt->nsa", trans, v), atol=1e-4)


@pytest.mark.parametrize("terminal", [False, True], ids=["no-terminal", "terminal"])
def test_gradient_is_the_likelihood_gradient(terminal):
    """For any weights ``w`` (here random, not a flow of the game), ``(w_0 - d_0) / alpha``
    with ``start="data"`` is the gradient of ``sum w_0 log pi_0`` with respect to
    agent 0's reward, ``pi_0`` soft-optimal in its marginal game against a fixed
    ``pi_1`` (autodiff through a converged soft value iteration, in float64)."""
    alpha, gamma = 0.8, 0.8
    game = random_game(jax.random.key(5), 5, 3, 2, num_terminal=int(terminal))
    with jax.enable_x64(True):
        transitions = jnp.asarray(game.transitions)
        term = jnp.asarray(game.terminal)
        keys = jax.random.split(jax.random.key(1), 3)
        other = jax.nn.softmax(jax.random.normal(keys[0], (5, 3), jnp.float64))
        w = jax.random.uniform(keys[1], (2, 5, 3), jnp.float64)
        w = w / w.sum(axis=(1, 2), keepdims=True)
        r0 = jax.random.normal(keys[2], (5, 3), jnp.float64)
        trans0 = marginal_transitions(transitions, jnp.stack([other, other]))[0]  # (S, A, S')

        def policy_of(r):
            def body(_, q):
                return r + gamma * trans0 @ jnp.where(term, 0.0, soft_value(q, alpha))

            return boltzmann_policy(jax.lax.fori_loop(0, 200, body, jnp.zeros_like(r)), alpha)

        @jax.jit
        def both(r0):
            autodiff = jax.grad(lambda r: jnp.sum(w[0] * jnp.log(policy_of(r))))(r0)
            policy = jnp.stack([policy_of(r0), other])
            d = learner_occupancy(policy, w, transitions, jnp.asarray(game.initial), term, gamma)
            return likelihood_gradient(w, d, alpha)[0], autodiff

        ours, autodiff = both(r0)
        np.testing.assert_allclose(ours, autodiff, atol=1e-8)


def test_expert_is_stationary(expert):
    """At the expert's own policy, both starts give the learner the expert's occupancy:
    the reward gradient vanishes."""
    _, solution = expert
    game, _ = expert
    args = (jnp.asarray(solution.policy, jnp.float32), jnp.asarray(solution.occupancy, jnp.float32),
            jnp.asarray(game.transitions, jnp.float32), jnp.asarray(game.initial, jnp.float32),
            jnp.zeros(game.num_states, bool), GAMMA)
    occupancy = jax.jit(learner_occupancy, static_argnames="start")
    for start in ("data", "initial"):
        np.testing.assert_allclose(occupancy(*args, start=start), solution.occupancy, atol=1e-5)


# -- demonstrations --------------------------------------------------------------------------------
def test_demonstration_occupancy_counts():
    """Three steps of two agents in a 3-state game: states 0, 2, 2; agent 0 plays
    1, 0, 0 and agent 1 plays 2, 2, 1. Each step weighs 1/3."""
    states = np.array([0, 2, 2])
    actions = np.array([[1, 2], [0, 2], [0, 1]])
    expected = np.zeros((2, 3, 3))
    expected[0, 0, 1] = expected[1, 0, 2] = expected[1, 2, 2] = expected[1, 2, 1] = 1 / 3
    expected[0, 2, 0] = 2 / 3
    for obs in (np.eye(3, dtype=np.float32)[states], states[:, None].astype(np.float32)):
        obs = np.broadcast_to(obs[:, None], (3, 2, obs.shape[-1]))
        demos = Demonstrations.create(obs=obs, actions=actions, next_obs=obs,
                                      terminated=np.zeros(3, bool),
                                      truncated=np.array([False, False, True]))
        np.testing.assert_allclose(demonstration_occupancy(demos, 3, 3), expected)


def test_from_demonstrations():
    """20,000 sampled transitions of a 6-state, 2-agent game: the learned policies are
    within 0.02 of the expert's (KL) and the rewards correlate >= 0.95 up to shaping."""
    game = random_game(jax.random.key(11), 6, 3, 2, max_steps=50)
    solution = soft_value_iteration(game, alpha=1.0, gamma=GAMMA)
    demos = collect(jax.random.key(0), game, tabular_policy_fn(game, solution.policy), 400)
    result = ml_irl(game, demos, CONFIG)
    kl, corr = scores(game, solution, result)
    assert np.all(kl <= 0.02), kl
    assert np.all(corr >= 0.95), corr
    # The learner fits the demonstrations' own action frequencies.
    assert np.all(np.asarray(result.trace.policy_kl)[-1] <= 1e-5)


# -- validation ------------------------------------------------------------------------------------
def test_errors_name_the_field(expert):
    game, solution = expert
    occ = np.asarray(solution.occupancy)
    with pytest.raises(ValueError, match="expert_occupancy: expected shape"):
        ml_irl(game, occ[:, :, :2])
    with pytest.raises(ValueError, match="expert_occupancy: expected finite, non-negative"):
        ml_irl(game, -occ)
    with pytest.raises(ValueError, match="state marginals"):
        ml_irl(game, np.concatenate([occ[:1], occ[1:, ::-1]]))
    with pytest.raises(ValueError, match="features: expected"):
        ml_irl(game, occ, features=np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="terminal: expected"):
        ml_irl_from_tensors(game.transitions, game.initial, occ, terminal=np.zeros(2, bool))
    with pytest.raises(ValueError, match="initial: expected"):
        ml_irl_from_tensors(game.transitions, game.initial[:-1], occ)
    with pytest.raises(ValueError, match="evaluation_sweeps"):
        MLIRLConfig(evaluation_sweeps=0)
    with pytest.raises(ValueError, match="start"):
        MLIRLConfig(start="rho")
    with pytest.raises(ValueError, match="gamma"):
        MLIRLConfig(gamma=1.0)
