"""Known answers of the IQ-Learn losses (``mairl.algos.iq``) that MAMQL and
joint-action IQ-Learn train on, computed by hand in NumPy.

Every batch mixes a ``terminated`` row, a ``truncated`` row and plain rows:
only ``terminated`` zeroes the bootstrap ``gamma V(s')``. The losses are read
from ``algo.update``'s metrics, which are computed at the parameters set here
(tabular critics: ``Q_i[s, .]`` is agent ``i``'s table row for one-hot state
``s``), so the whole path from batch to loss is checked, not only
``iq_chi2_loss``.

Per agent ``i``, with ``V_i(s) = alpha logsumexp(Q_i(s, .) / alpha)``::

    y_b        = Q_i(s_b, a_b) - gamma (1 - term_b) V_i(s'_b)
    expert     = mean_b [y_b - c y_b^2 / (4 alpha)]
    value      = mean_b [V_i(s_b) - gamma (1 - term_b) V_i(s'_b)]   (value_expert)
               = mean_k [(1 - gamma) V_i(s0_k)]                      (v0)
    loss_i     = value - expert
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mairl.algos.base import Batch
from mairl.algos.iq import iq_chi2_loss
from mairl.algos.iq_joint import IQJointConfig, make_iq_joint
from mairl.algos.mamql import MAMQLOfflineConfig, make_mamql
from mairl.data import Transition

NUM_STATES, NUM_ACTIONS, NUM_AGENTS = 4, 3, 2
ALPHA, GAMMA, CHI2 = 0.5, 0.9, 0.5

# Four expert rows: s -> s'. Row 0 is terminated, row 1 truncated, rows 2-3 neither.
# State 3 appears nowhere (its critic entries get no gradient from the loss).
STATES = np.array([0, 1, 2, 0])
NEXT_STATES = np.array([1, 2, 0, 2])
ACTIONS = np.array([[0, 2, 1, 1], [2, 2, 0, 1]])  # (agent, row)
TERMINATED = np.array([True, False, False, False])
TRUNCATED = np.array([False, True, False, False])
INIT_STATES = np.array([2, 1, 2])  # v0: first states of demonstrated episodes


def soft_v(q: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``alpha logsumexp(q / alpha)`` over the last axis, in float64."""
    m = q.max(axis=-1, keepdims=True)
    return (m + alpha * np.log(np.exp((q - m) / alpha).sum(axis=-1, keepdims=True)))[..., 0]


def expected_loss(q, taken, terminated, mode="value_expert", alpha=ALPHA, gamma=GAMMA,
                  chi2=CHI2):
    """Per-agent ``(loss, expert, value)`` by hand; ``q (agent, S, outputs)``,
    ``taken (agent, row)`` the output index of the expert's action."""
    losses, experts, values = [], [], []
    not_term = 1.0 - terminated.astype(np.float64)
    for i in range(q.shape[0]):
        v = soft_v(q[i], alpha)  # (S,)
        y = q[i][STATES, taken[i]] - gamma * not_term * v[NEXT_STATES]
        expert = np.mean(y - chi2 * y**2 / (4 * alpha))
        if mode == "value_expert":
            value = np.mean(v[STATES] - gamma * not_term * v[NEXT_STATES])
        else:
            value = np.mean((1 - gamma) * v[INIT_STATES])
        losses.append(value - expert)
        experts.append(expert)
        values.append(value)
    return np.array(losses), np.array(experts), np.array(values)


def one_hot(states):
    return np.broadcast_to(np.eye(NUM_STATES, dtype=np.float32)[states],
                           (NUM_AGENTS, len(states), NUM_STATES))


def make_batch(terminated=TERMINATED, truncated=TRUNCATED, states=STATES) -> Batch:
    expert = Transition(
        obs=jnp.asarray(one_hot(states)),
        actions=jnp.asarray(ACTIONS, jnp.int32),
        next_obs=jnp.asarray(one_hot(NEXT_STATES)),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
    )
    return Batch(expert, init_obs=jnp.asarray(one_hot(INIT_STATES)))


def tables(outputs: int, seed: int = 0) -> np.ndarray:
    """Critic tables ``(agent, S, outputs)``, spread enough that every term matters."""
    return np.random.default_rng(seed).normal(0.0, 1.5, (NUM_AGENTS, NUM_STATES, outputs))


def run_update(make, config, q, batch):
    """One update at critic tables ``q``: ``(metrics at q, tables after the step)``."""
    algo = make(config, num_agents=NUM_AGENTS, obs_shape=(NUM_STATES,), num_actions=NUM_ACTIONS)
    state = algo.init(jax.random.key(0), batch)
    params = {"params": {"Dense_0": {"kernel": jnp.asarray(q, jnp.float32)}}}
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, state.params)
    state = state.replace(params=params)
    state, metrics = jax.jit(algo.update)(state, batch, jax.random.key(1))
    after = np.asarray(state.params["params"]["Dense_0"]["kernel"], np.float64)
    return jax.tree.map(lambda x: np.asarray(x, np.float64), metrics), after


def mamql_config(**changes):
    base = dict(mode="value_expert", alpha=ALPHA, gamma=GAMMA, chi2_coef=CHI2, critic="tabular",
                learning_rate=0.01, max_grad_norm=None)
    return MAMQLOfflineConfig(**{**base, **changes})


def joint_config(**changes):
    base = dict(mode="value_expert", alpha=ALPHA, gamma=GAMMA, chi2_coef=CHI2, critic="tabular",
                learning_rate=0.01, max_grad_norm=None)
    return IQJointConfig(**{**base, **changes})


def assert_loss(metrics, expected):
    loss, expert, value = expected
    np.testing.assert_allclose(metrics["expert_term"], expert, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["value_term"], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5, atol=1e-6)


# -- iq_chi2_loss on precomputed values ------------------------------------------------------
def test_iq_chi2_loss_known_answer():
    # alpha 1, gamma 0.5, c 1: y = [2 - 0.5 * 4, 1 - 0, 3 - 0.5 * 2] = [0, 1, 2]
    # (row 1 terminated: its V(s') = 10 is not bootstrapped); phi(y) = y - y^2 / 4
    # = [0, 0.75, 1], mean 7/12. Value rows: [1 - 0.5 * 2, 4 - 0 * 6] = [0, 4], mean 2.
    loss, aux = iq_chi2_loss(
        jnp.array([2.0, 1.0, 3.0]), jnp.array([4.0, 10.0, 2.0]), jnp.array([0.0, 1.0, 0.0]),
        jnp.array([1.0, 4.0]), jnp.array([2.0, 6.0]), jnp.array([0.0, 1.0]),
        alpha=1.0, gamma=0.5, chi2_coef=1.0,
    )
    assert float(aux["expert_term"]) == pytest.approx(7 / 12)
    assert float(aux["value_term"]) == pytest.approx(2.0)
    assert float(loss) == pytest.approx(2.0 - 7 / 12)
    assert float(aux["expert_reward"]) == pytest.approx(1.0)


# -- the losses inside MAMQL and joint IQ-Learn -------------------------------------------------
def test_mamql_value_expert_terminated_zeroes_the_bootstrap():
    q = tables(NUM_ACTIONS)
    metrics, _ = run_update(make_mamql, mamql_config(), q, make_batch())
    assert_loss(metrics, expected_loss(q, ACTIONS, TERMINATED))
    # Truncation is not an end of the game: bootstrapping every row gives another
    # loss, and so does zeroing the bootstrap of every episode end.
    for wrong in (np.zeros(4, bool), TERMINATED | TRUNCATED):
        other = expected_loss(q, ACTIONS, wrong)[0]
        assert np.abs(other - metrics["loss"]).min() > 1e-3


def test_mamql_flags_swapped_give_the_swapped_known_answer():
    """The same rows with row 0 truncated and row 1 terminated: the loss follows
    ``terminated`` and only ``terminated``."""
    q = tables(NUM_ACTIONS)
    right, _ = run_update(make_mamql, mamql_config(), q, make_batch())
    swapped, _ = run_update(make_mamql, mamql_config(), q, make_batch(TRUNCATED, TERMINATED))
    assert_loss(swapped, expected_loss(q, ACTIONS, TRUNCATED))
    assert np.abs(swapped["loss"] - right["loss"]).min() > 1e-3
    for name in ("expert_term", "value_term"):
        assert np.abs(swapped[name] - right[name]).min() > 1e-3, name


def test_joint_iq_terminated_zeroes_the_bootstrap():
    """Joint-action critics: ``Q_i(s, a_0, a_1)`` at joint index ``3 a_0 + a_1``."""
    q = tables(NUM_ACTIONS**NUM_AGENTS, seed=1)
    joint = ACTIONS[0] * NUM_ACTIONS + ACTIONS[1]
    taken = np.stack([joint, joint])
    metrics, _ = run_update(make_iq_joint, joint_config(), q, make_batch())
    assert_loss(metrics, expected_loss(q, taken, TERMINATED))
    swapped, _ = run_update(make_iq_joint, joint_config(), q, make_batch(TRUNCATED, TERMINATED))
    assert_loss(swapped, expected_loss(q, taken, TRUNCATED))
    assert np.abs(swapped["loss"] - metrics["loss"]).min() > 1e-3


def test_mamql_v0_value_term_reads_initial_states():
    """``v0``: the value term is ``(1 - gamma) E[V(s_0)]`` over the batch's initial
    states, whatever the expert rows' flags; the expert term is unchanged."""
    q = tables(NUM_ACTIONS, seed=2)
    config = mamql_config(mode="v0")
    metrics, _ = run_update(make_mamql, config, q, make_batch())
    expected = expected_loss(q, ACTIONS, TERMINATED, mode="v0")
    assert_loss(metrics, expected)
    # hand check of one number: agent 0's value term
    v0 = soft_v(q[0])[INIT_STATES]
    assert metrics["value_term"][0] == pytest.approx((1 - GAMMA) * v0.mean(), rel=1e-5)
    # it is not the value_expert term, nor V(s_0) without the (1 - gamma)
    assert np.abs(expected[2] - expected_loss(q, ACTIONS, TERMINATED)[2]).min() > 1e-3
    assert np.abs(metrics["value_term"] - soft_v(q)[:, INIT_STATES].mean(-1)).min() > 1e-3
    swapped, _ = run_update(make_mamql, config, q, make_batch(TRUNCATED, TERMINATED))
    assert_loss(swapped, expected_loss(q, ACTIONS, TRUNCATED, mode="v0"))
    np.testing.assert_allclose(swapped["value_term"], metrics["value_term"], rtol=1e-6)


def test_joint_iq_v0():
    q = tables(NUM_ACTIONS**NUM_AGENTS, seed=3)
    joint = ACTIONS[0] * NUM_ACTIONS + ACTIONS[1]
    metrics, _ = run_update(make_iq_joint, joint_config(mode="v0"), q, make_batch())
    assert_loss(metrics, expected_loss(q, np.stack([joint, joint]), TERMINATED, mode="v0"))


# -- the L2 penalty ------------------------------------------------------------------------------
def test_l2_penalty_moves_only_through_the_penalty():
    """State 3 is in no row, so its entries get no gradient from the loss: without
    the penalty one Adam step leaves them alone; with it (gradient ``2 l2 p``)
    the first Adam step moves each by ``learning_rate`` towards 0."""
    q = tables(NUM_ACTIONS, seed=4)
    lr = 0.01
    _, plain = run_update(make_mamql, mamql_config(learning_rate=lr), q, make_batch())
    np.testing.assert_allclose(plain[:, 3], q[:, 3], rtol=0, atol=1e-6)
    metrics, penalized = run_update(make_mamql, mamql_config(learning_rate=lr, l2=1e-3), q,
                                    make_batch())
    np.testing.assert_allclose(penalized[:, 3], q[:, 3] - lr * np.sign(q[:, 3]), atol=1e-5)
    # the per-agent losses reported are the IQ losses alone
    assert_loss(metrics, expected_loss(q, ACTIONS, TERMINATED))


@pytest.mark.parametrize("l2, moves_up", [(0.03, False), (0.06, True)])
def test_l2_penalty_scale(l2, moves_up):
    """The penalty is ``l2 * sum(p^2)``: on an entry where the loss pulls one way and
    the penalty the other, the first Adam step follows the larger gradient.

    State 3 gets one expert row as its only appearance (value_expert: ``s = 3``,
    an action other than 0, ``s'`` not 3), with ``Q(3, .) = -1`` for every action,
    so ``pi(0 | 3) = 1/3``. Entry ``Q(3, 0)`` then has loss gradient
    ``d value / dQ = pi(0|3) / B = 1 / 12`` (B = 4 rows) and penalty gradient
    ``2 l2 (-1)``: the sum changes sign at ``l2 = 1 / 24 ~ 0.042``; Adam's first
    step is ``-lr sign(gradient)``.
    """
    q = tables(NUM_ACTIONS, seed=5)
    q[:, 3] = -1.0
    batch = make_batch(states=np.array([0, 1, 2, 3]))
    _, after = run_update(make_mamql, mamql_config(l2=l2), q, batch)
    lr = 0.01
    step = after[:, 3, 0] - q[:, 3, 0]
    np.testing.assert_allclose(step, lr if moves_up else -lr, rtol=1e-3)
