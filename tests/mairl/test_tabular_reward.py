"""The recovered tabular reward, ``mairl.evaluation.tabular_reward``, at the value
level on games with terminal states.

``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) (1 - terminal(s')) V_i(s')``,
``V_i(s) = alpha logsumexp(Q_i(s, .) / alpha)``: entering a terminal state ends
the episode, so its value is never bootstrapped.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from mairl.algos.mamql import MAMQLOfflineConfig, make_mamql
from mairl.evaluation import tabular_reward
from mairl.solvers import soft_value_iteration_from_tensors

ALPHA, GAMMA = 0.5, 0.9


class Oracle(NamedTuple):
    """What ``tabular_reward`` reads of a solver's result."""

    q: np.ndarray  # (agent, S, A)
    marginal_transitions: np.ndarray  # (agent, S, A, S')


def learner(q: np.ndarray, alpha: float = ALPHA, gamma: float = GAMMA):
    """A MAMQL learner with tabular critics set to ``q (agent, S, A)``, and its params."""
    num_agents, num_states, num_actions = q.shape
    config = MAMQLOfflineConfig(alpha=alpha, gamma=gamma, critic="tabular")
    algo = make_mamql(config, num_agents=num_agents, obs_shape=(num_states,),
                      num_actions=num_actions)
    return algo, {"params": {"Dense_0": {"kernel": jnp.asarray(q, jnp.float32)}}}


def by_hand(q, transitions, terminal, alpha=ALPHA, gamma=GAMMA):
    m = q.max(-1, keepdims=True)
    v = (m + alpha * np.log(np.exp((q - m) / alpha).sum(-1, keepdims=True)))[..., 0]  # (N, S)
    if terminal is not None:
        v = np.where(terminal[None], 0.0, v)
    return q - gamma * np.einsum("nsat,nt->nsa", transitions, v)


def test_known_answer_one_state_and_a_goal():
    """One agent, state 0 and a terminal goal state 1. ``Q(0) = [0, ln 3]`` at
    ``alpha = 1`` gives ``V(0) = ln 4``; ``Q(1) = [2, 2]`` gives ``V(1) = 2 + ln 2``.
    Action 0 stays in 0, action 1 reaches the goal with probability 1/2.

    Without terminal states: ``r(0, 0) = 0 - 0.9 ln 4``,
    ``r(0, 1) = ln 3 - 0.9 (ln 4 + 2 + ln 2) / 2``. With state 1 terminal its
    value is not bootstrapped: ``r(0, 1) = ln 3 - 0.9 ln 4 / 2``.
    """
    q = np.array([[[0.0, np.log(3.0)], [2.0, 2.0]]])
    p = np.zeros((1, 2, 2, 2))
    p[0, 0, 0] = [1.0, 0.0]
    p[0, 0, 1] = [0.5, 0.5]
    p[0, 1, :] = [0.0, 1.0]
    algo, params = learner(q, alpha=1.0, gamma=0.9)
    _, plain = tabular_reward(algo, params, Oracle(q, p), 1)
    np.testing.assert_allclose(plain[0, 0], [-0.9 * np.log(4.0),
                                             np.log(3.0) - 0.45 * (np.log(8.0) + 2.0)], rtol=1e-5)
    _, ended = tabular_reward(algo, params, Oracle(q, p), 1, np.array([False, True]))
    np.testing.assert_allclose(ended[0, 0], [-0.9 * np.log(4.0),
                                             np.log(3.0) - 0.45 * np.log(4.0)], rtol=1e-5)
    np.testing.assert_allclose(ended[0, 1], [2.0, 2.0], rtol=1e-6)  # nothing after the goal


def test_random_game_with_terminal_states_by_hand():
    rng = np.random.default_rng(0)
    num_agents, num_states, num_actions = 2, 5, 3
    q = rng.normal(0.0, 1.0, (num_agents, num_states, num_actions))
    p = rng.dirichlet(np.ones(num_states), (num_agents, num_states, num_actions))
    terminal = np.array([False, False, False, True, True])
    q[:, terminal] += 2.0  # values well away from 0 where the mask zeroes them
    algo, params = learner(q)
    q_out, r = tabular_reward(algo, params, Oracle(q, p), num_agents, terminal)
    np.testing.assert_allclose(q_out, q, rtol=1e-6)
    np.testing.assert_allclose(r, by_hand(q, p, terminal), rtol=1e-5, atol=1e-5)
    _, r_plain = tabular_reward(algo, params, Oracle(q, p), num_agents)
    np.testing.assert_allclose(r_plain, by_hand(q, p, None), rtol=1e-5, atol=1e-5)
    assert np.abs(r - r_plain).min() > 1e-2  # every (s, a) can reach a terminal state


@pytest.mark.parametrize("goal_reward", [0.0, 1.0])
def test_exact_q_recovers_the_true_reward_on_a_terminating_game(goal_reward):
    """The logit equilibrium's own ``Q`` (soft value iteration with the terminal
    mask) gives back the true marginal reward ``r_i^pi(s, a_i)`` exactly, also for
    a pure goal reward (reward only on entering the goal)."""
    rng = np.random.default_rng(1)
    num_states, num_actions = 4, 2
    transitions = rng.dirichlet(np.ones(num_states), (num_states, num_actions, num_actions))
    rewards = rng.normal(0.0, 1.0, (2, num_states, num_actions, num_actions))
    if goal_reward:
        # each agent is paid for the chance of entering the goal state 3, nothing else
        rewards = np.broadcast_to(transitions[..., 3], rewards.shape).copy()
    terminal = np.array([False, False, False, True])
    initial = np.array([1.0, 0.0, 0.0, 0.0])
    solution = soft_value_iteration_from_tensors(
        transitions, rewards, initial, ALPHA, GAMMA, terminal=terminal, tol=1e-10,
        max_iters=100_000,
    )
    algo, params = learner(np.asarray(solution.q))
    oracle = Oracle(np.asarray(solution.q), np.asarray(solution.marginal_transitions))
    _, r = tabular_reward(algo, params, oracle, 2, terminal)
    np.testing.assert_allclose(r, np.asarray(solution.marginal_rewards), atol=1e-4)
    _, r_plain = tabular_reward(algo, params, oracle, 2)
    assert np.abs(r_plain - np.asarray(solution.marginal_rewards)).max() > 1e-2
