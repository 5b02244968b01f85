"""mairl.metrics: known answers, invariances and the oracle case of reward recovery."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete
from envs.tabular import TabularGame
from mairl import metrics
from mairl.solvers import soft_value_iteration

NUM_STATES, NUM_ACTIONS, NUM_AGENTS = 20, 3, 2


# -- games ---------------------------------------------------------------------------------------
def _random_tensors(seed, num_states, num_actions, num_agents):
    """Dirichlet(1) transitions, N(0, 1) rewards, Dirichlet(1) initial distribution.

    Drawn with NumPy (the same law as ``envs.tabular.random_game``, whose
    ``jax.random.gamma`` draw takes seconds to compile on a CPU).
    """
    rng = np.random.default_rng(seed)
    joint = (num_states,) + (num_actions,) * num_agents
    transitions = rng.dirichlet(np.ones(num_states), size=joint)
    rewards = rng.normal(size=(num_agents, *joint))
    initial = rng.dirichlet(np.ones(num_states))
    return transitions, rewards, initial


def _random_game(seed, num_states=NUM_STATES, num_actions=NUM_ACTIONS, num_agents=NUM_AGENTS):
    return TabularGame(*_random_tensors(seed, num_states, num_actions, num_agents))


def _shape(reward, transitions, gamma, phi):
    """State-action shaping ``r + gamma sum_s' P(s'|s, a) Phi(s') - Phi(s)``; ``(N, S, A)``."""
    return reward + gamma * np.einsum("nsat,nt->nsa", transitions, phi) - phi[:, :, None]


@pytest.fixture(scope="module")
def game():
    return _random_game(0)


@pytest.fixture(scope="module")
def solution(game):
    return soft_value_iteration(game, alpha=1.0, gamma=0.9)


@pytest.fixture(scope="module", params=[0.9, 0.99])
def equilibrium(request, game, solution):
    gamma = request.param
    if gamma == 0.9:
        return gamma, solution
    return gamma, soft_value_iteration(game, alpha=1.0, gamma=gamma)


# -- pearson / spearman --------------------------------------------------------------------------
def test_pearson_spearman_known_answers():
    x = jnp.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 3.0]])
    y = jnp.array([[2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0]])
    # Row 1: average ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4]: centred [-1.5, 0, 0, 1.5]
    # and [-1.5, -.5, .5, 1.5], cov 4.5, variances 4.5 and 5: rho = 4.5 / sqrt(22.5).
    # The values are affine in the ranks, so Pearson agrees.
    expected = np.array([1.0, 4.5 / math.sqrt(22.5)])
    np.testing.assert_allclose(metrics.pearson(x, y), expected, atol=1e-6)
    np.testing.assert_allclose(metrics.spearman(x, y), expected, atol=1e-6)
    # Monotone but non-linear: Spearman 1, Pearson below.
    z = jnp.exp(3.0 * x)
    assert metrics.spearman(z, y)[0] == pytest.approx(1.0, abs=1e-6)
    assert metrics.pearson(z, y)[0] < 0.95
    np.testing.assert_allclose(metrics.pearson(x, -y), -expected, atol=1e-6)


def _average_ranks(x):
    """1-based ranks, ties sharing the mean of their ranks (NumPy oracle)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def test_weighted_correlations_equal_repeated_samples():
    rng = np.random.default_rng(1)
    shape = (NUM_AGENTS, NUM_STATES, NUM_ACTIONS)  # rewards, flattened over (s, a)
    x = rng.normal(size=shape).round(1)  # rounding makes ties
    y = (x + rng.normal(size=shape)).round(1)
    counts = rng.integers(0, 4, size=shape).astype(np.float32)
    pearson = metrics.pearson(x, y, counts)
    spearman = metrics.spearman(x, y, counts)
    for i in range(2):
        # Integer weights are repetitions; zero weights drop the entry.
        reps = counts[i].astype(int).ravel()
        xr, yr = np.repeat(x[i].ravel(), reps), np.repeat(y[i].ravel(), reps)
        assert float(pearson[i]) == pytest.approx(np.corrcoef(xr, yr)[0, 1], abs=1e-5)
        rank_corr = np.corrcoef(_average_ranks(xr), _average_ranks(yr))[0, 1]
        assert float(spearman[i]) == pytest.approx(rank_corr, abs=1e-5)
    # Shared weights broadcast over agents.
    shared = metrics.pearson(x, y, counts[0])
    assert shared.shape == (2,)
    assert float(shared[0]) == pytest.approx(float(pearson[0]), abs=1e-6)


def test_correlation_degenerate_cases():
    const = jnp.full((2, 4), 3.0)
    varying = jnp.stack([jnp.arange(4.0), jnp.full((4,), 7.0)])
    # Agent 0: constant vs varying (undefined); agent 1: constant vs constant.
    np.testing.assert_array_equal(metrics.pearson(const, varying), [np.nan, 1.0])
    np.testing.assert_array_equal(metrics.spearman(varying, const), [np.nan, 1.0])


def test_weighted_ranks_average_ties():
    # Values [3, 1, 3, 2] have average ranks [3.5, 1, 3.5, 2]; mid-ranks with unit
    # weights are the ranks minus 1/2.
    r = metrics.weighted_ranks(jnp.array([3.0, 1.0, 3.0, 2.0]))
    np.testing.assert_allclose(r, [3.0, 0.5, 3.0, 1.5])


# -- shaping-aware correlation: the oracle case --------------------------------------------------
def test_policy_reward_is_shaped_true_reward(equilibrium, capsys):
    """``alpha log pi`` is the marginal reward shaped by ``Phi = V``.

    At the logit equilibrium, with alpha = 1,
        log pi_i(a|s) = Q_i(s, a) - V_i(s)
                      = r_i(s, a) + gamma sum_s' P_i(s'|s, a) V_i(s') - V_i(s),
    i.e. potential shaping of the marginal reward r_i with Phi = V_i, under the
    marginal dynamics P_i. Shaping-aware correlation must be 1; plain Pearson
    sees the shaping term and is far from 1.
    """
    gamma, sol = equilibrium
    alpha = 1.0
    r_hat = alpha * np.log(sol.policy)
    r = sol.marginal_rewards
    shaped = _shape(r, sol.marginal_transitions, gamma, sol.v)
    np.testing.assert_allclose(r_hat, shaped, atol=1e-8)

    sac = metrics.shaping_aware_correlation_per_agent(
        r_hat, r, sol.marginal_transitions, gamma, sol.occupancy
    )
    plain = metrics.pearson(r_hat, r)
    plain_occ = metrics.pearson(r_hat, r, sol.occupancy)
    rank_occ = metrics.spearman(r_hat, r, sol.occupancy)
    with capsys.disabled():
        print(
            f"\ngamma={gamma}: shaping-aware {np.asarray(sac)}, pearson {np.asarray(plain)}, "
            f"occupancy-weighted pearson {np.asarray(plain_occ)}, "
            f"occupancy-weighted spearman {np.asarray(rank_occ)}"
        )
    assert sac.shape == (NUM_AGENTS,)
    np.testing.assert_allclose(sac, 1.0, atol=1e-5)
    assert np.all(plain < 0.9)
    assert np.all(plain_occ < 0.9)
    assert np.all(rank_occ < 0.9)


def test_shaping_aware_invariances(equilibrium):
    gamma, sol = equilibrium
    P, w, r = sol.marginal_transitions, sol.occupancy, sol.marginal_rewards
    rng = np.random.default_rng(2)
    r_hat = r + 0.7 * rng.normal(size=r.shape)  # partly recovered
    base = np.asarray(metrics.shaping_aware_correlation_per_agent(r_hat, r, P, gamma, w))
    assert np.all((base > 0.3) & (base < 0.95))

    phi = 5.0 * rng.normal(size=(NUM_AGENTS, NUM_STATES))
    transformed = 3.0 * _shape(r_hat, P, gamma, phi) - 11.0
    got = metrics.shaping_aware_correlation_per_agent(transformed, r, P, gamma, w)
    np.testing.assert_allclose(got, base, atol=1e-4)
    # Symmetric, and the true reward may be shaped too.
    got = metrics.shaping_aware_correlation_per_agent(r, _shape(r_hat, P, gamma, -phi), P, gamma, w)
    np.testing.assert_allclose(got, base, atol=1e-4)

    unrelated = rng.normal(size=r.shape)
    low = metrics.shaping_aware_correlation_per_agent(unrelated, r, P, gamma, w)
    assert np.all(np.abs(low) < 0.5)
    negated = metrics.shaping_aware_correlation_per_agent(-r, r, P, gamma, w)
    np.testing.assert_allclose(negated, -1.0, atol=1e-5)


def test_shaping_aware_matches_float64_least_squares():
    """Against a NumPy float64 ``lstsq`` of the definition, with unweighted states."""
    gamma = 0.95
    P = _random_tensors(3, 8, 3, 1)[0][None, :, :, :]  # one agent: (1, S, A, S')
    rng = np.random.default_rng(3)
    r_hat, r = rng.normal(size=(2, 1, 8, 3))
    w = rng.random((1, 8, 3))
    w[0, :3] = 0.0  # three states without coverage: those b_k are rank deficient
    basis = np.concatenate(
        [(np.eye(8)[:, None, :] - gamma * P[0]).reshape(24, 8), np.ones((24, 1))], axis=1
    )
    sw = np.sqrt(w[0].reshape(-1))

    def residual(y):
        coef = np.linalg.lstsq(sw[:, None] * basis, sw * y.reshape(-1), rcond=None)[0]
        return y.reshape(-1) - basis @ coef

    a, b, ww = residual(r_hat[0]), residual(r[0]), w[0].reshape(-1) / w.sum()
    a, b = a - ww @ a, b - ww @ b
    expected = (ww @ (a * b)) / np.sqrt((ww @ (a * a)) * (ww @ (b * b)))
    got = metrics.shaping_aware_correlation(r_hat[0], r[0], P[0], gamma, w[0])
    assert float(got) == pytest.approx(expected, abs=1e-5)
    res = metrics.shaping_residual(r[0], P[0], gamma, w[0])
    np.testing.assert_allclose(np.asarray(res).reshape(-1) * sw, b * sw, atol=1e-4)


def test_shaping_aware_degenerate_cases():
    gamma = 0.9
    P = _random_tensors(4, 8, 3, 1)[0]
    w = np.ones((8, 3))
    rng = np.random.default_rng(4)
    phi1, phi2 = rng.normal(size=(2, 1, 8))
    pure1 = _shape(np.full((1, 8, 3), 2.0), P[None], gamma, phi1)[0]
    pure2 = _shape(np.zeros((1, 8, 3)), P[None], gamma, phi2)[0]
    real = rng.normal(size=(8, 3))
    # Both rewards are shaping plus a constant: equivalent.
    assert float(metrics.shaping_aware_correlation(pure1, pure2, P, gamma, w)) == 1.0
    # Only one is: undefined.
    assert np.isnan(metrics.shaping_aware_correlation(pure1, real, P, gamma, w))


def test_shaping_aware_terminal_states():
    """With a terminal mask, shaping has no ``Phi(s')`` after termination."""
    gamma = 0.9
    P = _random_tensors(5, 8, 3, 1)[0]
    terminal = np.zeros(8, bool)
    terminal[[2, 5]] = True
    rng = np.random.default_rng(5)
    r, noise = rng.normal(size=(2, 8, 3))
    phi = rng.normal(size=8)
    shaped = r + gamma * np.einsum("sat,t->sa", P, np.where(terminal, 0.0, phi)) - phi[:, None]
    w = np.ones((8, 3))
    r_hat = shaped + 0.5 * noise
    got = metrics.shaping_aware_correlation(r_hat, r, P, gamma, w, terminal=terminal)
    expected = metrics.shaping_aware_correlation(r + 0.5 * noise, r, P, gamma, w, terminal=terminal)
    assert float(got) == pytest.approx(float(expected), abs=1e-4)


def _goal_game(gamma=0.9, seed=6):
    """8 states, 3 actions, state 7 terminal; ``r(s, a) = P(7|s, a)``, a pure goal reward."""
    P = _random_tensors(seed, 8, 3, 1)[0]
    terminal = np.zeros(8, bool)
    terminal[7] = True
    return P, terminal, P[:, :, 7].copy()


def test_shaping_aware_pure_goal_reward_survives_projection():
    """A reward paid on entering a terminal state is not shaping when ``gamma < 1``:
    its residual is not zero, it scores 1 against its own shapings and a finite
    number (not ``nan``) against anything else."""
    gamma = 0.9
    P, terminal, goal = _goal_game(gamma)
    w = np.ones((8, 3))
    res = np.asarray(metrics.shaping_residual(goal, P, gamma, w, terminal=terminal))
    assert np.sqrt(np.mean(res**2)) > 0.05 * np.sqrt(np.mean(goal**2))
    rng = np.random.default_rng(7)
    phi = 10 * rng.normal(size=8)
    shaped = goal + gamma * np.einsum("sat,t->sa", P, np.where(terminal, 0.0, phi)) - phi[:, None]
    assert float(metrics.shaping_aware_correlation(shaped, goal, P, gamma, w,
                                                   terminal=terminal)) > 1 - 1e-4
    other = rng.normal(size=(8, 3))
    got = float(metrics.shaping_aware_correlation(other, goal, P, gamma, w, terminal=terminal))
    assert np.isfinite(got) and abs(got) < 0.9
    assert float(metrics.shaping_aware_correlation(-goal, goal, P, gamma, w,
                                                   terminal=terminal)) < -1 + 1e-4


def test_shaping_aware_constant_matters_only_with_terminations():
    """``r + c`` is equivalent to ``r`` without terminal states, not with them (a
    constant changes the incentive to end the episode)."""
    gamma = 0.9
    P, terminal, _ = _goal_game(gamma)
    rng = np.random.default_rng(8)
    r = rng.normal(size=(8, 3))
    w = np.ones((8, 3))
    plus = r + 3.0
    assert float(metrics.shaping_aware_correlation(plus, r, P, gamma, w)) > 1 - 1e-4
    with_term = float(metrics.shaping_aware_correlation(plus, r, P, gamma, w, terminal=terminal))
    assert with_term < 0.9
    # A constant is still removed when the mask marks no state.
    none = np.zeros(8, bool)
    assert float(metrics.shaping_aware_correlation(plus, r, P, gamma, w, terminal=none)) > 1 - 1e-4


def test_shaping_aware_terminal_matches_float64_least_squares():
    """With a terminal state: residuals against ``b_k`` with ``P(k|.)`` zeroed into the
    terminal state and no constant column; the weighted cosine of the residuals."""
    gamma = 0.8
    P, terminal, _ = _goal_game(gamma, seed=9)
    rng = np.random.default_rng(10)
    r_hat, r = rng.normal(size=(2, 8, 3))
    w = rng.random((8, 3))
    Pz = np.where(terminal[None, None, :], 0.0, P)
    basis = (np.eye(8)[:, None, :] - gamma * Pz).reshape(24, 8)
    sw = np.sqrt(w.reshape(-1) / w.sum())

    def residual(y):
        coef = np.linalg.lstsq(sw[:, None] * basis, sw * y.reshape(-1), rcond=None)[0]
        return (y.reshape(-1) - basis @ coef) * sw

    a, b = residual(r_hat), residual(r)
    expected = a @ b / np.sqrt((a @ a) * (b @ b))
    got = metrics.shaping_aware_correlation(r_hat, r, P, gamma, w, terminal=terminal)
    assert float(got) == pytest.approx(expected, abs=1e-4)


# -- shaping-aware correlation on samples --------------------------------------------------------
def test_sampled_matches_tabular_on_deterministic_dynamics():
    """One-hot features, deterministic ``s' = f(s, a)``: the sampled regression
    columns ``f(s) - gamma f(s')`` are exactly ``b_k(s, a)``, so with ridge -> 0
    the sampled metric is the tabular one weighted by the empirical frequencies,
    and approaches the one weighted by the sampling distribution. Per-agent
    features ``(N, B, S)``."""
    gamma, num_states, num_actions, num_samples = 0.9, NUM_STATES, NUM_ACTIONS, 50_000
    rng = np.random.default_rng(6)
    nxt = rng.integers(num_states, size=(NUM_AGENTS, num_states, num_actions))
    P = np.eye(num_states)[nxt]  # (N, S, A, S')
    r = rng.normal(size=(NUM_AGENTS, num_states, num_actions))
    phi = 3.0 * rng.normal(size=(NUM_AGENTS, num_states))
    r_hat = _shape(r + 0.6 * rng.normal(size=r.shape), P, gamma, phi)
    w = rng.dirichlet(np.ones(num_states * num_actions), size=NUM_AGENTS)
    idx = np.stack([rng.choice(num_states * num_actions, num_samples, p=w[i]) for i in range(2)])
    s, a = np.divmod(idx, num_actions)
    s_next = np.take_along_axis(nxt.reshape(NUM_AGENTS, -1), idx, axis=1)
    agents = np.arange(NUM_AGENTS)[:, None]
    got = metrics.shaping_aware_correlation_sampled(
        r_hat[agents, s, a],
        r[agents, s, a],
        np.eye(num_states)[s],
        np.eye(num_states)[s_next],
        np.zeros(num_samples, bool),
        gamma,
        ridge=1e-9,
    )
    counts = np.stack([np.bincount(i, minlength=num_states * num_actions) for i in idx])
    counts = counts.reshape(r.shape).astype(np.float32)
    empirical = metrics.shaping_aware_correlation_per_agent(r_hat, r, P, gamma, counts)
    exact = metrics.shaping_aware_correlation_per_agent(r_hat, r, P, gamma, w.reshape(r.shape))
    np.testing.assert_allclose(got, empirical, atol=2e-4)
    np.testing.assert_allclose(got, exact, atol=2e-2)
    assert np.all(got < 0.95)


def test_sampled_removes_realized_shaping_with_termination():
    """Shaping on the realized transitions, ``gamma (1 - term) Phi(s') - Phi(s)``, is
    in the span of the regression columns for any dynamics: removed exactly.
    Features shared by the agents, ``(B, F)``."""
    gamma, num_states, num_samples = 0.95, 7, 500
    rng = np.random.default_rng(7)
    s = rng.integers(num_states, size=num_samples)
    s_next = rng.integers(num_states, size=num_samples)
    term = rng.random(num_samples) < 0.2
    r, noise = rng.normal(size=(2, NUM_AGENTS, num_samples))
    phi = rng.normal(size=(NUM_AGENTS, num_states))
    r_hat = 2.0 * (r + 0.5 * noise + gamma * (1 - term) * phi[:, s_next] - phi[:, s]) + 4.0
    feats, next_feats = np.eye(num_states)[s], np.eye(num_states)[s_next]
    got = metrics.shaping_aware_correlation_sampled(
        r_hat, r, feats, next_feats, term, gamma, ridge=1e-9
    )
    expected = metrics.shaping_aware_correlation_sampled(
        r + 0.5 * noise, r, feats, next_feats, term, gamma, ridge=1e-9
    )
    np.testing.assert_allclose(got, expected, atol=1e-4)


# -- EPIC ----------------------------------------------------------------------------------------
def _epic_canonical_brute_force(reward_sas, gamma, ds, da):
    """Canonical form (Gleave et al. 2020) written out: S, S' ~ D_S, A ~ D_A independent."""
    num_states, num_actions, _ = reward_sas.shape
    out = np.empty_like(reward_sas)
    for s in range(num_states):
        for a in range(num_actions):
            for sn in range(num_states):
                e = 0.0
                for big_s in range(num_states):
                    for big_a in range(num_actions):
                        for big_sn in range(num_states):
                            p = ds[big_s] * da[big_a] * ds[big_sn]
                            e += p * (
                                gamma * reward_sas[sn, big_a, big_sn]
                                - reward_sas[s, big_a, big_sn]
                                - gamma * reward_sas[big_s, big_a, big_sn]
                            )
                out[s, a, sn] = reward_sas[s, a, sn] + e
    return out


def test_epic_canonical_form_matches_definition():
    rng = np.random.default_rng(8)
    reward = rng.normal(size=(3, 2, 3))
    ds, da = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(2))
    got = metrics.epic_canonicalize(reward, 0.9, ds, da)
    np.testing.assert_allclose(got, _epic_canonical_brute_force(reward, 0.9, ds, da), atol=1e-5)


@pytest.mark.parametrize("coverage", ["transitions", "independent"])
def test_epic_properties(coverage):
    gamma = 0.9  # shapes (2, 8, 3) as in the other EPIC tests: one compilation each
    transitions, rewards, _ = _random_tensors(9, 8, 3, 1)
    P = np.broadcast_to(transitions[None], (NUM_AGENTS, 8, 3, 8))
    rng = np.random.default_rng(9)
    r = rng.normal(size=(NUM_AGENTS, 8, 3))
    other = r + rng.normal(size=r.shape)

    def epic(x, y):
        return np.asarray(metrics.epic_distance(x, y, P, gamma, coverage=coverage))

    np.testing.assert_allclose(epic(r, r), 0.0, atol=1e-3)
    np.testing.assert_allclose(epic(-r, r), 1.0, atol=1e-5)
    d = epic(other, r)
    assert np.all((d > 0.05) & (d < 0.95))
    np.testing.assert_allclose(epic(r, other), d, atol=1e-6)
    np.testing.assert_allclose(epic(4.0 * other + 2.0, r), d, atol=1e-4)
    # Shaping of a transition reward R(s, a, s') + gamma Phi(s') - Phi(s): invariant
    # for any dynamics (Gleave et al. 2020).
    phi = 3.0 * rng.normal(size=(NUM_AGENTS, 8))
    shaped = other[..., None] + gamma * phi[:, None, None, :] - phi[:, :, None, None]
    np.testing.assert_allclose(epic(shaped, r), d, atol=1e-4)
    # Random pairs stay in [0, 1].
    x, y = rng.normal(size=(2, NUM_AGENTS, 8, 3))
    assert np.all((epic(x, y) >= 0.0) & (epic(x, y) <= 1.0))


def test_epic_shaping_with_deterministic_dynamics():
    """With ``s' = f(s, a)`` the shaped state-action reward ``r + gamma Phi(f(s, a)) - Phi(s)``
    and the transition reward ``r + gamma Phi(s') - Phi(s)`` agree on every transition
    the game makes; given in the transition form, EPIC ignores the shaping. Read as
    constant in ``s'``, the shaped state-action reward is a different reward to EPIC
    (its canonical form queries transitions the game never makes), while the
    shaping-aware correlation still sees the equivalence."""
    gamma, num_states, num_actions = 0.9, 8, 3
    rng = np.random.default_rng(10)
    nxt = rng.integers(num_states, size=(NUM_AGENTS, num_states, num_actions))
    P = np.eye(num_states)[nxt]  # (N, S, A, S')
    r = rng.normal(size=(NUM_AGENTS, num_states, num_actions))
    phi = 3.0 * rng.normal(size=(NUM_AGENTS, num_states))
    shaped_sa = _shape(r, P, gamma, phi)
    shaped_sas = r[..., None] + gamma * phi[:, None, None, :] - phi[:, :, None, None]
    realized = np.take_along_axis(shaped_sas, nxt[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(realized, shaped_sa, atol=1e-12)
    for coverage in ("transitions", "independent"):
        d = metrics.epic_distance(shaped_sas, r, P, gamma, coverage=coverage)
        np.testing.assert_allclose(d, 0.0, atol=1e-3)
    assert np.all(metrics.epic_distance(shaped_sa, r, P, gamma) > 0.05)
    sac = metrics.shaping_aware_correlation_per_agent(shaped_sa, r, P, gamma, np.ones_like(r))
    np.testing.assert_allclose(sac, 1.0, atol=1e-5)


# -- behaviour -----------------------------------------------------------------------------------
def test_policy_kl_known_answer():
    # State 0: pi_E = [1/4, 3/4], pi = [1/2, 1/2]: KL = 1/4 ln(1/2) + 3/4 ln(3/2).
    # State 1: pi_E = [1, 0] (a zero), pi = [1/2, 1/2]: KL = ln 2.
    # Weights [1, 3] normalize to [1/4, 3/4].
    expert = jnp.array([[[0.25, 0.75], [1.0, 0.0]]])
    learned = jnp.full((1, 2, 2), 0.5)
    kl0 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    expected = 0.25 * kl0 + 0.75 * math.log(2.0)
    got = metrics.policy_kl(expert, learned, jnp.array([1.0, 3.0]))
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(expected, rel=1e-6)
    assert float(metrics.policy_kl(expert, expert, jnp.ones(2))[0]) == pytest.approx(0.0, abs=1e-7)
    grad = jax.grad(lambda p: metrics.policy_kl(expert, p, jnp.ones(2))[0])(learned)
    assert np.all(np.isfinite(grad))
    # An expert action the learner never takes: infinite divergence.
    assert np.isinf(metrics.policy_kl(learned, expert, jnp.ones(2))[0])


def test_policy_kl_of_equilibrium_is_zero(equilibrium):
    _, sol = equilibrium
    np.testing.assert_allclose(
        metrics.policy_kl(sol.policy, sol.policy, sol.state_occupancy), 0.0, atol=1e-6
    )
    uniform = np.full_like(sol.policy, 1.0 / NUM_ACTIONS)
    assert np.all(metrics.policy_kl(sol.policy, uniform, sol.state_occupancy) > 0.0)


def test_action_accuracy_and_log_likelihood():
    # Agent 0: logits [0, ln 3] -> pi = [1/4, 3/4]; actions [1, 0]: argmax matches once,
    # log-likelihood (ln 3/4 + ln 1/4) / 2. Agent 1: probabilities, both matched.
    logits = jnp.array([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]], [[0.9, 0.1], [0.2, 0.8]]])
    actions = jnp.array([[1, 0], [0, 1]])
    np.testing.assert_allclose(metrics.action_accuracy(logits, actions), [0.5, 1.0])
    ll = metrics.log_likelihood(logits, actions)
    assert float(ll[0]) == pytest.approx(0.5 * (math.log(0.75) + math.log(0.25)), rel=1e-6)
    # Log-probabilities pass through log_softmax unchanged.
    ll_probs = metrics.log_likelihood(jnp.log(logits[1:]), actions[1:])
    assert float(ll_probs[0]) == pytest.approx(0.5 * (math.log(0.9) + math.log(0.8)), rel=1e-5)


# -- returns -------------------------------------------------------------------------------------
@struct.dataclass
class CounterState(EnvState):
    pass


class CounterEnv(Environment):
    """Two agents; each step pays ``(1 + a_i) * (1, 2)[i]`` and terminates after
    ``horizon`` steps (0: never) or, independently, with probability ``term_prob``."""

    num_agents = 2
    agents = ("a", "b")
    obs_shape = (1,)
    action_spaces = (Discrete(2), Discrete(2))

    def __init__(self, max_steps, horizon=0, term_prob=0.0):
        self.max_steps = max_steps
        self.horizon = horizon
        self.term_prob = term_prob

    def reset_env(self, key):
        state = CounterState(time=jnp.zeros((), jnp.int32))
        return jnp.zeros((2, 1), jnp.float32), state

    def step_env(self, key, state, actions):
        time = state.time + 1
        terminated = jax.random.uniform(key) < self.term_prob
        if self.horizon:
            terminated = terminated | (time >= self.horizon)
        reward = (1.0 + actions.astype(jnp.float32)) * jnp.array([1.0, 2.0])
        obs = jnp.broadcast_to(time.astype(jnp.float32), (2, 1))
        return obs, CounterState(time=time), reward, terminated, {}


def _zeros_policy(key, obs):
    return jnp.zeros((obs.shape[0],), jnp.int32)


def _ones_policy(key, obs):
    return jnp.ones((obs.shape[0],), jnp.int32)


def test_returns_fixed_length_and_termination():
    key = jax.random.key(0)
    # Truncation at 5 steps, reward (1, 2) per step: returns (5, 10).
    env = CounterEnv(max_steps=5)
    ret = metrics.evaluate_returns(key, env, _zeros_policy, 4)
    assert ret.shape == (4, 2)
    np.testing.assert_allclose(ret, np.tile([5.0, 10.0], (4, 1)))
    # Cut before the end: 3 steps.
    cut = metrics.evaluate_returns(key, env, _zeros_policy, 4, max_steps=3)
    np.testing.assert_allclose(cut, np.tile([3.0, 6.0], (4, 1)))
    # Termination after 3 steps, action 1 doubles the reward: (6, 12). Running 12
    # steps, past the termination and past env.max_steps = 10, adds nothing from
    # the episodes that follow the auto-reset.
    env = CounterEnv(max_steps=10, horizon=3)
    ret = metrics.evaluate_returns(key, env, _ones_policy, 4, max_steps=12)
    np.testing.assert_allclose(ret, np.tile([6.0, 12.0], (4, 1)))


_GEOMETRIC_ENV = CounterEnv(max_steps=10, term_prob=0.3)
_POLICY_TRACES = []


def _random_policy(key, obs):
    _POLICY_TRACES.append(None)
    return jax.random.randint(key, (obs.shape[0],), 0, 2)


def test_returns_random_termination_counts_first_episode_only():
    # Termination with probability p each step, truncation at M: the first episode
    # lasts L = min(Geometric(p), M) steps, E[L] = sum_{t<M} (1-p)^t = (1 - (1-p)^M) / p.
    # Agent i earns (1 + a) * (1, 2)[i] per step with a uniform in {0, 1}: E = 1.5 and 3
    # per step, and since actions are independent of L, E[return_i] = E[L] * (1.5, 3)[i].
    # Counting past the first end would give about M * (1.5, 3) = (15, 30).
    p, horizon, episodes = 0.3, 10, 4000
    ret = np.asarray(
        metrics.evaluate_returns(jax.random.key(1), _GEOMETRIC_ENV, _random_policy, episodes)
    )
    assert ret.shape == (episodes, 2)
    assert np.all((ret[:, 0] >= 1.0) & (ret[:, 0] <= 2.0 * horizon))
    expected = (1.0 - (1.0 - p) ** horizon) / p * np.array([1.5, 3.0])  # (4.86, 9.72)
    summary = metrics.mean_confidence_interval(ret)
    np.testing.assert_array_less(np.abs(np.asarray(summary.mean) - expected), 4 * summary.stderr)
    assert np.all((summary.lower < summary.mean) & (summary.mean < summary.upper))


def test_returns_vmap_over_seeds_without_retracing():
    evaluate = metrics.make_evaluate_returns(_GEOMETRIC_ENV, _random_policy, 4000)
    out1 = evaluate(jax.random.key(1))
    traced = len(_POLICY_TRACES)
    assert traced >= 1
    out2 = evaluate(jax.random.key(2))
    assert len(_POLICY_TRACES) == traced
    assert not np.array_equal(out1, out2)
    # Seeds side by side under jit(vmap(...)) give the runs one at a time.
    keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
    both = jax.jit(jax.vmap(evaluate))(keys)
    assert both.shape == (2, 4000, 2)
    np.testing.assert_array_equal(both[0], out1)
    np.testing.assert_array_equal(both[1], out2)


def test_returns_match_exact_expectation_on_tabular_game(game, solution):
    """Mean return of the equilibrium policy over 8 steps against ``sum_{t<8} d_t . r_pi``
    (``d_0 = rho``, ``d_{t+1} = d_t P_pi``)."""
    horizon, episodes = 8, 4000
    policy = jnp.asarray(solution.policy, jnp.float32)

    def policy_fn(key, obs):
        s = game.state_from_obs(obs[0])
        return jax.random.categorical(key, jnp.log(policy[:, s]), axis=-1).astype(jnp.int32)

    joint = np.einsum("sa,sb->sab", solution.policy[0], solution.policy[1])
    r_pi = np.einsum("sab,nsab->ns", joint, game.rewards)
    p_pi = np.einsum("sab,sabt->st", joint, game.transitions)
    d, exact = game.initial.copy(), np.zeros(NUM_AGENTS)
    for _ in range(horizon):
        exact += r_pi @ d
        d = d @ p_pi
    ret = metrics.evaluate_returns(jax.random.key(4), game, policy_fn, episodes, max_steps=horizon)
    summary = metrics.mean_confidence_interval(ret, confidence=0.999)
    assert np.all(np.asarray(summary.lower) < exact)
    assert np.all(exact < np.asarray(summary.upper))


def test_mean_confidence_interval_known_answer():
    # Returns [1, 2, 3] (agent 0): mean 2, s = 1, stderr 1/sqrt(3), t_{0.975, 2} = 4.3027.
    ret = jnp.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    summary = metrics.mean_confidence_interval(ret)
    half = 4.302653 / math.sqrt(3.0)
    np.testing.assert_allclose(summary.mean, [2.0, 5.0])
    np.testing.assert_allclose(summary.lower, [2.0 - half, 5.0], rtol=1e-5)
    np.testing.assert_allclose(summary.upper, [2.0 + half, 5.0], rtol=1e-5)
    # Student-t table values.
    for q, dof, t in [(0.975, 1, 12.7062), (0.975, 9, 2.2622), (0.95, 29, 1.6991)]:
        assert float(metrics.student_t_quantile(q, dof)) == pytest.approx(t, abs=1e-3)
    assert float(metrics.student_t_quantile(0.025, 9)) == pytest.approx(-2.2622, abs=1e-3)
    assert np.all(np.isnan(metrics.mean_confidence_interval(ret[:1]).lower))


def test_imitation_mse_known_answer():
    # V(s) - gamma (1 - term) V(s'): [2 - 0.5 * 2, 3 - 0] = [1, 3]; r = [1, 1]:
    # squared errors [0, 4], mean 2. Agent 1: V = 0, r = [1, -1]: mean 1.
    r = jnp.array([[1.0, 1.0], [1.0, -1.0]])
    v = jnp.array([[2.0, 3.0], [0.0, 0.0]])
    v_next = jnp.array([[2.0, 7.0], [0.0, 0.0]])
    term = jnp.array([False, True])
    np.testing.assert_allclose(metrics.imitation_mse(r, v, v_next, term, 0.5), [2.0, 1.0])


def test_mean_half_width_known_answer():
    mean, half = metrics.mean_half_width([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * 1 / sqrt(3)
    mean, half = metrics.mean_half_width([5.0])
    assert mean == 5.0 and np.isnan(half)


def test_heldout_kl_against_numpy():
    rng = np.random.default_rng(11)
    e, p = rng.normal(size=(2, 2, 5, 3))
    pe = np.exp(e) / np.exp(e).sum(-1, keepdims=True)
    pp = np.exp(p) / np.exp(p).sum(-1, keepdims=True)
    expected = np.mean(np.sum(pe * (np.log(pe) - np.log(pp)), -1), -1)
    np.testing.assert_allclose(metrics.heldout_kl(e, p), expected, rtol=1e-5)
    np.testing.assert_allclose(metrics.heldout_kl(e, e + 3.0), 0.0, atol=1e-6)
    # KL(expert || learner), not the reverse
    reverse = np.mean(np.sum(pp * (np.log(pp) - np.log(pe)), -1), -1)
    assert not np.allclose(metrics.heldout_kl(e, p), reverse)
    with pytest.raises(ValueError, match="expert_logits and logits"):
        metrics.heldout_kl(e, p[:, :3])
