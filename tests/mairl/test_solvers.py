"""Exact soft value iteration: known answers, fixed-point equations, occupancy, errors."""

import itertools
import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mairl.solvers import (
    SoftVIResult,
    SolverDidNotConverge,
    soft_value_iteration,
    soft_value_iteration_from_tensors,
    solve_logit_equilibrium,
)

LN3 = math.log(3.0)
LN4 = math.log(4.0)


def one_state_game(payoffs):
    """Repeated one-state game from ``payoffs (N, A, ..., A)``."""
    payoffs = np.asarray(payoffs, np.float64)
    actions = payoffs.shape[1:]
    return SimpleNamespace(
        transitions=np.ones((1, *actions, 1)), rewards=payoffs[:, None], initial=np.ones(1)
    )


def random_tensors(seed, num_states, num_actions, num_agents, reward_scale=1.0):
    rng = np.random.default_rng(seed)
    joint = (num_states, *(num_actions,) * num_agents)
    transitions = rng.dirichlet(np.ones(num_states), size=joint)
    rewards = reward_scale * rng.normal(size=(num_agents, *joint))
    initial = rng.dirichlet(np.ones(num_states))
    return transitions, rewards, initial


# -- independent NumPy reference ----------------------------------------------------------------
def np_logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def np_marginals(transitions, rewards, policy):
    """``r_i^pi (N, S, A)`` and ``P_i^pi (N, S, A, S')`` by explicit sums over joint actions."""
    num_agents, num_states, num_actions = policy.shape
    r = np.zeros((num_agents, num_states, num_actions))
    p = np.zeros((num_agents, num_states, num_actions, num_states))
    for joint in itertools.product(range(num_actions), repeat=num_agents):
        for i in range(num_agents):
            weight = np.ones(num_states)
            for j in range(num_agents):
                if j != i:
                    weight = weight * policy[j, :, joint[j]]
            r[i, :, joint[i]] += weight * rewards[(i, slice(None), *joint)]
            p[i, :, joint[i]] += weight[:, None] * transitions[(slice(None), *joint)]
    return r, p


def np_joint_transition(transitions, policy):
    """``P_pi(s, s')`` of the product policy."""
    num_agents, num_states, num_actions = policy.shape
    p_pi = np.zeros((num_states, num_states))
    for joint in itertools.product(range(num_actions), repeat=num_agents):
        weight = np.prod([policy[j, :, joint[j]] for j in range(num_agents)], axis=0)
        p_pi += weight[:, None] * transitions[(slice(None), *joint)]
    return p_pi


# -- known answers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, 0.9, 0.99])
def test_own_action_rewards_known_answer(gamma):
    # One state, each agent's reward depends on its own action only: R_i(a_i) = [0, ln 3].
    # Then r_i^pi = [0, ln 3] whatever the others do, Q_i(a) = R(a) + gamma V_i, and
    # V_i = logsumexp(Q_i) = ln(1 + 3) + gamma V_i, so V_i = ln 4 / (1 - gamma),
    # pi_i = softmax([0, ln 3]) = [1/4, 3/4].
    own = np.array([0.0, LN3])
    payoffs = np.stack([np.broadcast_to(own[:, None], (2, 2)), np.broadcast_to(own, (2, 2))])
    res = soft_value_iteration(one_state_game(payoffs), alpha=1.0, gamma=gamma)
    v = LN4 / (1 - gamma)
    np.testing.assert_allclose(res.policy[:, 0], [[0.25, 0.75]] * 2, atol=1e-9)
    np.testing.assert_allclose(res.v[:, 0], [v, v], atol=1e-7)
    np.testing.assert_allclose(res.q[:, 0], [own + gamma * v] * 2, atol=1e-7)
    np.testing.assert_allclose(res.state_occupancy, [1.0])
    np.testing.assert_allclose(res.occupancy[:, 0], [[0.25, 0.75]] * 2, atol=1e-9)


def test_temperature_known_answer():
    # Single agent, R = [0, 2 ln 3], alpha = 2: Q / alpha = [0, ln 3] + gamma V / alpha, so
    # pi = [1/4, 3/4] and V = alpha ln 4 + gamma V, i.e. V = 2 ln 4 / (1 - gamma).
    gamma = 0.5
    res = soft_value_iteration(one_state_game([[0.0, 2 * LN3]]), alpha=2.0, gamma=gamma)
    np.testing.assert_allclose(res.policy[0, 0], [0.25, 0.75], atol=1e-9)
    np.testing.assert_allclose(res.v[0, 0], 2 * LN4 / (1 - gamma), atol=1e-7)


def test_interaction_known_answer():
    # One state, two agents with two actions each.
    # Agent 0's reward depends only on agent 1's action: R_0(a_0, a_1) = f(a_1), f = [1, 5].
    #   r_0^pi(a_0) = E_{pi_1} f is the same for both a_0, so pi_0 = [1/2, 1/2].
    # Agent 1's reward: R_1(a_0, a_1) = M[a_0, a_1] with M = [[0, 2 ln 3], [0, 0]].
    #   With pi_0 uniform, r_1^pi(a_1) = (M[0, a_1] + M[1, a_1]) / 2 = [0, ln 3],
    #   so pi_1 = [1/4, 3/4] and V_1 = ln 4 / (1 - gamma).
    # Back to agent 0: E_{pi_1} f = 1/4 + 15/4 = 4, Q_0(a_0) = 4 + gamma V_0 and
    #   V_0 = ln(2 e^{4 + gamma V_0}) gives V_0 = (4 + ln 2) / (1 - gamma).
    gamma = 0.9
    f = np.array([1.0, 5.0])
    m = np.array([[0.0, 2 * LN3], [0.0, 0.0]])
    payoffs = np.stack([np.broadcast_to(f[None, :], (2, 2)), m])
    res = soft_value_iteration(one_state_game(payoffs), alpha=1.0, gamma=gamma)
    np.testing.assert_allclose(res.policy[0, 0], [0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(res.policy[1, 0], [0.25, 0.75], atol=1e-9)
    np.testing.assert_allclose(res.marginal_rewards[:, 0], [[4.0, 4.0], [0.0, LN3]], atol=1e-9)
    np.testing.assert_allclose(
        res.v[:, 0], [(4 + math.log(2)) / (1 - gamma), LN4 / (1 - gamma)], atol=1e-7
    )


def test_terminal_state_known_answer():
    # Single agent, two states. From state 0 every action enters state 1, which is
    # terminal (and absorbing). Entering a terminal state stops the bootstrap, so
    # Q(0, a) = R(0, a) = [0, ln 3], V(0) = ln 4, pi(.|0) = [1/4, 3/4]; the episode
    # starts in 0 and ends on leaving it, so the normalized occupancy is [1, 0].
    transitions = np.zeros((2, 2, 2))
    transitions[:, :, 1] = 1.0
    rewards = np.array([[[0.0, LN3], [7.0, 7.0]]])
    res = soft_value_iteration_from_tensors(
        transitions, rewards, np.array([1.0, 0.0]), gamma=0.9, terminal=np.array([False, True])
    )
    np.testing.assert_allclose(res.q[0, 0], [0.0, LN3], atol=1e-9)
    np.testing.assert_allclose(res.v[0, 0], LN4, atol=1e-9)
    np.testing.assert_allclose(res.q[0, 1], [7.0, 7.0], atol=1e-9)
    np.testing.assert_allclose(res.state_occupancy, [1.0, 0.0], atol=1e-12)


# -- fixed-point equations on random games ------------------------------------------------------
@pytest.mark.parametrize(
    "seed, num_states, num_actions, num_agents, gamma",
    [(0, 6, 3, 2, 0.99), (1, 5, 2, 3, 0.95), (2, 4, 3, 3, 0.9)],
)
def test_fixed_point_equations_hold(seed, num_states, num_actions, num_agents, gamma):
    transitions, rewards, initial = random_tensors(seed, num_states, num_actions, num_agents)
    alpha = 0.7
    res = soft_value_iteration_from_tensors(transitions, rewards, initial, alpha, gamma)
    assert isinstance(res, SoftVIResult)
    assert res.residual <= 1e-8
    assert res.q.shape == (num_agents, num_states, num_actions)
    assert res.marginal_transitions.shape == (num_agents, num_states, num_actions, num_states)

    pi = res.policy
    r, p = np_marginals(transitions, rewards, pi)
    v = alpha * np_logsumexp(res.q / alpha)
    np.testing.assert_allclose(res.v, v, atol=1e-9)
    np.testing.assert_allclose(pi, np.exp((res.q - v[..., None]) / alpha), atol=1e-9)
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(res.marginal_rewards, r, atol=1e-9)
    np.testing.assert_allclose(res.marginal_transitions, p, atol=1e-9)
    bellman = r + gamma * np.einsum("nsat,nt->nsa", p, v)
    np.testing.assert_allclose(res.q, bellman, atol=1e-6, rtol=0)


def test_single_agent_equals_plain_soft_value_iteration():
    transitions, rewards, initial = random_tensors(3, 7, 4, 1)
    alpha, gamma = 0.5, 0.9
    q = np.zeros((7, 4))
    for _ in range(2000):
        v = alpha * np_logsumexp(q / alpha)
        q = rewards[0] + gamma * transitions @ v
    res = soft_value_iteration_from_tensors(transitions, rewards, initial, alpha, gamma)
    np.testing.assert_allclose(res.q[0], q, atol=1e-7)
    pi = np.exp((q - alpha * np_logsumexp(q / alpha)[:, None]) / alpha)
    np.testing.assert_allclose(res.policy[0], pi, atol=1e-8)


@pytest.mark.parametrize("damping, extrapolate", [(0.0, False), (0.3, True), (0.8, False)])
def test_same_fixed_point_for_every_schedule(damping, extrapolate):
    transitions, rewards, initial = random_tensors(4, 5, 3, 2)
    ref = soft_value_iteration_from_tensors(transitions, rewards, initial, gamma=0.9)
    res = soft_value_iteration_from_tensors(
        transitions, rewards, initial, gamma=0.9, damping=damping, extrapolate=extrapolate
    )
    np.testing.assert_allclose(res.q, ref.q, atol=1e-6)


def test_warm_start_from_solution_stops_at_once():
    transitions, rewards, initial = random_tensors(5, 5, 2, 2)
    res = soft_value_iteration_from_tensors(transitions, rewards, initial)
    again = soft_value_iteration_from_tensors(transitions, rewards, initial, init=res.q)
    assert again.iterations <= 2
    np.testing.assert_allclose(again.q, res.q, atol=1e-8)


# -- occupancy ---------------------------------------------------------------------------------
def test_occupancy_satisfies_flow_equation():
    transitions, rewards, initial = random_tensors(6, 6, 2, 3)
    gamma = 0.95
    res = soft_value_iteration_from_tensors(transitions, rewards, initial, gamma=gamma)
    d = res.state_occupancy
    p_pi = np_joint_transition(transitions, res.policy)
    # d(s') = (1 - gamma) rho(s') + gamma sum_s d(s) P_pi(s'|s)
    np.testing.assert_allclose(d, (1 - gamma) * initial + gamma * d @ p_pi, atol=1e-10)
    np.testing.assert_allclose(d.sum(), 1.0, atol=1e-12)
    assert np.all(d >= 0)
    np.testing.assert_allclose(res.occupancy, d[None, :, None] * res.policy, atol=1e-12)
    np.testing.assert_allclose(res.occupancy.sum(axis=(1, 2)), 1.0, atol=1e-12)


def test_occupancy_with_terminal_states_is_normalized_flow():
    transitions, rewards, initial = random_tensors(7, 5, 2, 2)
    terminal = np.array([False, False, True, False, True])
    gamma = 0.9
    res = soft_value_iteration_from_tensors(
        transitions, rewards, initial, gamma=gamma, terminal=terminal
    )
    p_pi = np_joint_transition(transitions, res.policy) * ~terminal[None, :]
    # Unnormalized flow with mass leaving on entering a terminal state.
    flow = np.linalg.solve((np.eye(5) - gamma * p_pi).T, (1 - gamma) * initial)
    np.testing.assert_allclose(res.state_occupancy, flow / flow.sum(), atol=1e-10)
    r, p = np_marginals(transitions, rewards, res.policy)
    v = np.where(terminal[None, :], 0.0, res.v)
    np.testing.assert_allclose(res.q, r + gamma * np.einsum("nsat,nt->nsa", p, v), atol=1e-6)


# -- methods ---------------------------------------------------------------------------------------
def assert_equilibrium(res, transitions, rewards, alpha, gamma, terminal=None):
    """The fixed-point equations, recomputed in NumPy from the returned q."""
    v = alpha * np_logsumexp(res.q / alpha)
    pi = np.exp((res.q - v[..., None]) / alpha)
    r, p = np_marginals(transitions, rewards, pi)
    if terminal is not None:
        v = np.where(terminal[None, :], 0.0, v)
    np.testing.assert_allclose(res.policy, pi, atol=1e-9)
    np.testing.assert_allclose(res.q, r + gamma * np.einsum("nsat,nt->nsa", p, v), atol=1e-6)


CHICKEN = np.array([[[0.0, -1.0], [1.0, -10.0]], [[0.0, 1.0], [-1.0, -10.0]]])


def test_homotopy_converges_where_iteration_cycles():
    # Chicken at alpha = 0.3: the damped best-response iteration falls into a cycle.
    game = one_state_game(CHICKEN)
    kwargs = dict(alpha=0.3, gamma=0.9)
    with pytest.raises(SolverDidNotConverge):
        soft_value_iteration(game, method="iteration", max_iters=3000, **kwargs)
    res = soft_value_iteration(game, method="homotopy", **kwargs)
    assert_equilibrium(res, game.transitions, game.rewards, **kwargs)
    # The principal branch of a symmetric game is symmetric.
    np.testing.assert_allclose(res.policy[0], res.policy[1], atol=1e-9)
    auto = soft_value_iteration(game, **kwargs)
    np.testing.assert_allclose(auto.q, res.q, atol=1e-7)


def test_homotopy_on_a_hard_random_game_with_terminal_states():
    transitions, rewards, initial = random_tensors(12, 4, 2, 2, reward_scale=5.0)
    terminal = np.array([False, True, False, False])
    kwargs = dict(alpha=0.3, gamma=0.95, terminal=terminal)
    res = soft_value_iteration_from_tensors(
        transitions, rewards, initial, method="homotopy", **kwargs
    )
    assert res.residual <= 1e-8
    assert_equilibrium(res, transitions, rewards, **kwargs)


def test_methods_agree_where_the_equilibrium_is_unique():
    # Small rewards at alpha = 1: the best-response map is a contraction.
    transitions, rewards, initial = random_tensors(13, 4, 2, 2, reward_scale=0.5)
    a = soft_value_iteration_from_tensors(transitions, rewards, initial, method="iteration")
    b = soft_value_iteration_from_tensors(transitions, rewards, initial, method="homotopy")
    np.testing.assert_allclose(a.q, b.q, atol=1e-6)
    np.testing.assert_allclose(a.state_occupancy, b.state_occupancy, atol=1e-9)


# -- errors and interfaces ------------------------------------------------------------------------
def test_non_convergence_raises_with_residual():
    transitions, rewards, initial = random_tensors(8, 5, 2, 2)
    with pytest.raises(SolverDidNotConverge, match="residual") as info:
        soft_value_iteration_from_tensors(transitions, rewards, initial, max_iters=1)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.iterations == 1 and err.residual > 1e-8
    assert err.result.q.shape == (2, 5, 2)


def test_unequal_action_counts_raise():
    game = SimpleNamespace(
        transitions=np.full((2, 2, 3, 2), 0.5), rewards=np.zeros((2, 2, 2, 3)), initial=[0.5, 0.5]
    )
    with pytest.raises(ValueError, match="same number of actions"):
        soft_value_iteration(game)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0.0), "alpha"),
        (dict(gamma=1.0), "gamma"),
        (dict(damping=1.0), "damping"),
        (dict(tol=0.0), "tol"),
        (dict(max_iters=0), "max_iters"),
        (dict(method="simplex"), "method"),
        (dict(init=np.zeros((1, 2, 2))), "init"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    transitions, rewards, initial = random_tensors(9, 2, 2, 2)
    with pytest.raises(ValueError, match=match):
        soft_value_iteration_from_tensors(transitions, rewards, initial, **kwargs)


def test_bad_tensors_raise():
    transitions, rewards, initial = random_tensors(10, 3, 2, 2)
    with pytest.raises(ValueError, match="rewards"):
        soft_value_iteration_from_tensors(transitions, rewards[:1], initial)
    with pytest.raises(ValueError, match="initial"):
        soft_value_iteration_from_tensors(transitions, rewards, initial[:2])
    with pytest.raises(ValueError, match="transitions"):
        soft_value_iteration_from_tensors(transitions[..., :2], rewards, initial)
    with pytest.raises(TypeError, match="rewards"):
        soft_value_iteration(SimpleNamespace(transitions=transitions, initial=initial))


def test_result_is_frozen():
    res = soft_value_iteration(one_state_game([[0.0, 1.0]]))
    with pytest.raises(AttributeError):
        res.q = None
    with pytest.raises(ValueError):
        res.q[0, 0, 0] = 1.0
    assert isinstance(res.residual, float) and isinstance(res.iterations, int)


def test_pure_jax_solver_jits_and_vmaps_in_float32():
    transitions, rewards, initial = random_tensors(11, 4, 2, 2)
    ref = soft_value_iteration_from_tensors(transitions, rewards, initial, gamma=0.9)
    scales = jnp.array([1.0, 2.0], jnp.float32)

    @jax.jit
    def solve(scale):
        res = solve_logit_equilibrium(
            jnp.asarray(transitions, jnp.float32),
            scale * jnp.asarray(rewards, jnp.float32),
            jnp.asarray(initial, jnp.float32),
            gamma=0.9,
            tol=1e-4,
            max_iters=10_000,
        )
        return res.q, res.residual

    q, residual = jax.vmap(solve)(scales)
    assert q.dtype == jnp.float32
    assert np.all(np.asarray(residual) <= 1e-4)
    np.testing.assert_allclose(np.asarray(q[0]), ref.q, atol=1e-3)
