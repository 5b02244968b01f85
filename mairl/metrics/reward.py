"""Reward-recovery metrics: plain, rank and shaping-aware correlations, and EPIC.

An inverse RL algorithm can only recover a reward up to the transformations that
leave the experts' behaviour unchanged: a positive scale, a constant and, above
all, potential-based shaping (Ng, Harada and Russell 1999)

    r'(s, a) = r(s, a) + gamma * E_{s' ~ P(.|s, a)} Phi(s') - Phi(s).

MAMQL and IQ-Learn return ``r(s, a) = Q(s, a) - gamma E[V(s')]``; the reward
read off an exact Boltzmann policy, ``alpha * log pi(a|s) = Q(s, a) - V(s)``, is
the true reward shaped by ``Phi = V``. A plain Pearson correlation penalizes that
shaping; the metrics here do not:

- :func:`shaping_aware_correlation` (tabular, exact) and
  :func:`shaping_aware_correlation_sampled` (sampled transitions, linear
  potential) project the shaping directions out of both rewards and correlate
  what is left;
- :func:`epic_distance` is the EPIC pseudometric of Gleave et al. (2020),
  invariant to shaping of rewards over transitions ``R(s, a, s')``.

Axes: the agent axis comes first. :func:`pearson`, :func:`spearman`,
:func:`epic_distance`, :func:`shaping_aware_correlation_per_agent` and
:func:`shaping_aware_correlation_sampled` take ``(N, ...)`` arrays and return
``(N,)``; :func:`shaping_aware_correlation`, :func:`shaping_residual`,
:func:`epic_canonicalize` and :func:`weighted_ranks` are the single-agent
building blocks. ``S`` states, ``A`` actions, ``S'`` next states.

Degenerate inputs: a correlation is undefined when one side has (numerically)
zero variance. Every function here returns ``1.0`` when both sides do (two
rewards that are both constant, or both pure shaping, are equivalent) and
``nan`` when exactly one side does; :func:`epic_distance` correspondingly
returns ``0.0`` and ``nan``. "Numerically zero" means a weighted standard
deviation at most ``tol`` times a reference scale, documented per function.

Everything is pure ``jax.numpy`` and jit-compatible; computations run in the
dtype of the inputs (float32 unless x64 is enabled).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "epic_canonicalize",
    "epic_distance",
    "pearson",
    "shaping_aware_correlation",
    "shaping_aware_correlation_per_agent",
    "shaping_aware_correlation_sampled",
    "shaping_residual",
    "spearman",
    "weighted_ranks",
]

_COVERAGES = ("transitions", "independent")


# -- weighted moments ----------------------------------------------------------------------------
def _float_dtype(*xs) -> jnp.dtype:
    return jnp.result_type(jnp.float32, *xs)


def _default_tol(dtype) -> float:
    return float(np.finfo(dtype).eps) ** 0.5


def _normalize(w: jax.Array) -> jax.Array:
    """``w / sum(w)``; ``nan`` everywhere when the total weight is zero."""
    total = jnp.sum(w)
    return w / jnp.where(total > 0, total, jnp.nan)


def _correlation(
    x: jax.Array,
    y: jax.Array,
    w: jax.Array,
    scale_x: jax.Array,
    scale_y: jax.Array,
    tol: float,
    centred: bool = True,
) -> jax.Array:
    """Weighted Pearson correlation of 1-d ``x``, ``y`` with degenerate-case handling
    (``centred=False``: the weighted cosine similarity, moments about zero).

    ``w`` sums to one. A side is degenerate when its weighted standard deviation
    (root mean square when not centred) is at most ``tol * scale``: ``1.0`` if
    both are, ``nan`` if one is. The result is clipped to ``[-1, 1]``.
    """
    dx = x - jnp.sum(w * x) if centred else x
    dy = y - jnp.sum(w * y) if centred else y
    var_x = jnp.sum(w * dx * dx)
    var_y = jnp.sum(w * dy * dy)
    cov = jnp.sum(w * dx * dy)
    flat_x = var_x <= (tol * scale_x) ** 2
    flat_y = var_y <= (tol * scale_y) ** 2
    ok = ~(flat_x | flat_y)
    denom = jnp.sqrt(jnp.where(ok, var_x * var_y, 1.0))
    rho = jnp.clip(jnp.where(ok, cov, 0.0) / denom, -1.0, 1.0)
    return jnp.where(ok, rho, jnp.where(flat_x & flat_y, 1.0, jnp.nan)).astype(x.dtype)


def _rms(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(w * x * x))


def _per_agent(x: jax.Array, y: jax.Array, weights: jax.Array | None):
    """Flatten ``(N, ...)`` inputs to ``(N, M)`` and weights, broadcast, normalized per agent."""
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    if x.ndim < 2:
        raise ValueError(f"expected per-agent arrays (N, ...), got shape {x.shape}")
    dtype = _float_dtype(x, y)
    n = x.shape[0]
    if weights is None:
        w = jnp.ones(x.shape, dtype)
    else:
        w = jnp.broadcast_to(jnp.asarray(weights, dtype), x.shape)
    x, y, w = (a.reshape(n, -1).astype(dtype) for a in (x, y, w))
    w = jax.vmap(_normalize)(w)
    return x, y, w


# -- plain and rank correlations -------------------------------------------------------------------
@jax.jit
def pearson(x: jax.Array, y: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Per-agent (weighted) Pearson correlation over all flattened entries.

    ``rho_i = cov_w(x_i, y_i) / sqrt(var_w(x_i) var_w(y_i))`` with the weighted
    moments of ``weights`` normalized per agent (uniform when ``None``).

    Args:
        x, y: ``(N, ...)``, e.g. rewards ``(N, S, A)``.
        weights: non-negative, broadcastable to ``x.shape`` (``(N, S, A)`` or a
            shared ``(S, A)``), not all zero.

    Returns:
        ``(N,)`` in ``[-1, 1]``. Degenerate sides (weighted standard deviation at
        most ``32 eps`` times the weighted root mean square): ``1.0`` when both
        are, ``nan`` when one is.
    """
    x, y, w = _per_agent(x, y, weights)
    tol = 32 * float(np.finfo(x.dtype).eps)

    def one(x, y, w):
        return _correlation(x, y, w, _rms(x, w), _rms(y, w), tol)

    return jax.vmap(one)(x, y, w)


@jax.jit
def weighted_ranks(x: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Weighted mid-ranks of a 1-d array: ``sum_{x_j < x_i} w_j + 0.5 sum_{x_j = x_i} w_j``.

    With equal weights this is ``w * (average rank - 1/2)``, an affine function
    of the usual average ranks (ties share the mean of their ranks), so Pearson
    on these ranks is Spearman's correlation. Entries of weight zero take no
    rank mass. ``O(M log M)`` through a sort.
    """
    x = jnp.ravel(jnp.asarray(x))
    w = jnp.ones_like(x) if weights is None else jnp.ravel(jnp.asarray(weights, x.dtype))
    order = jnp.argsort(x)
    xs = x[order]
    cum = jnp.concatenate([jnp.zeros((1,), w.dtype), jnp.cumsum(w[order])])
    lo = jnp.searchsorted(xs, x, side="left")
    hi = jnp.searchsorted(xs, x, side="right")
    return cum[lo] + 0.5 * (cum[hi] - cum[lo])


@jax.jit
def spearman(x: jax.Array, y: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Per-agent (weighted) Spearman rank correlation over all flattened entries.

    The weighted Pearson correlation of the weighted mid-ranks
    (:func:`weighted_ranks`: average ranks on ties) of ``x_i`` and ``y_i``.

    Args:
        x, y: ``(N, ...)``.
        weights: as in :func:`pearson`.

    Returns:
        ``(N,)`` in ``[-1, 1]``; ``1.0`` when both sides are constant, ``nan``
        when one is.
    """
    x, y, w = _per_agent(x, y, weights)
    tol = 32 * float(np.finfo(x.dtype).eps)

    def one(x, y, w):
        rx = weighted_ranks(x, w)
        ry = weighted_ranks(y, w)
        return _correlation(rx, ry, w, _rms(rx, w), _rms(ry, w), tol)

    return jax.vmap(one)(x, y, w)


# -- shaping-aware correlation -------------------------------------------------------------------
def _project_out(
    ys: jax.Array, features: jax.Array, w: jax.Array, shrink
) -> tuple[jax.Array, jax.Array]:
    """Weighted residuals of ``ys (K, M)`` after removing ``span(1, features (M, F))``.

    Both are centred with the weights ``w (M,)`` (summing to one), then the
    centred features are projected out through an SVD of
    ``sqrt(w) * features``: ``residual = y - U diag(shrink(s)) U^T y`` in the
    weighted space. ``shrink`` maps the singular values to factors in ``[0, 1]``
    (1 for a full projection). Returns the residuals in the original space
    (``(K, M)``, defined also where ``w = 0``) and the weighted standard
    deviations of the centred ``ys`` (``(K,)``).
    """
    sw = jnp.sqrt(w)
    ys_c = ys - (ys @ w)[:, None]
    feats_c = features - (w @ features)[None, :]
    u, s, vt = jnp.linalg.svd(sw[:, None] * feats_c, full_matrices=False)
    factor = shrink(s)
    safe_s = jnp.where(factor > 0, s, 1.0)
    # Coefficients c = V diag(factor / s) U^T (sqrt(w) y): the fitted potential.
    coef = ((ys_c * sw[None, :]) @ u) * (factor / safe_s)[None, :] @ vt
    residuals = ys_c - coef @ feats_c.T
    return residuals, jnp.sqrt(jnp.sum(w[None, :] * ys_c * ys_c, axis=-1))


def _shaping_features(
    transitions: jax.Array, gamma: float | jax.Array, terminal: jax.Array | None
) -> jax.Array:
    """The invariance directions of a tabular reward, ``(S * A, S + 1)``.

    Columns ``b_k(s, a) = 1[s = k] - gamma P(k|s, a) (1 - terminal(k))``, the
    shaping by a unit potential on state ``k`` (no ``Phi(s')`` after entering
    a terminal state: the episode has no future there), and a constant column
    that is kept only when no state is terminal. With terminations a constant
    changes the incentive to end the episode, so it is not an invariance; when
    nothing terminates and ``gamma < 1`` it already lies in the span of the
    ``b_k`` (``sum_k b_k = 1 - gamma``) and the extra column changes nothing.
    """
    num_states, num_actions = transitions.shape[:2]
    if terminal is None:
        keep_constant = jnp.ones((), transitions.dtype)
    else:
        term = jnp.asarray(terminal, bool)
        transitions = jnp.where(term[None, None, :], 0.0, transitions)
        keep_constant = (~jnp.any(term)).astype(transitions.dtype)
    eye = jnp.eye(num_states, dtype=transitions.dtype)[:, None, :]
    b = eye - gamma * transitions  # (S, A, K)
    const = jnp.full((num_states, num_actions, 1), 1.0, transitions.dtype) * keep_constant
    return jnp.concatenate([b, const], axis=-1).reshape(num_states * num_actions, num_states + 1)


def _check_tabular(r_hat, r, transitions, weights, terminal=None):
    r_hat, r, transitions, weights = (jnp.asarray(a) for a in (r_hat, r, transitions, weights))
    if r_hat.ndim != 2 or r_hat.shape != r.shape:
        raise ValueError(
            f"r_hat and r: expected equal shapes (S, A), got {r_hat.shape} and {r.shape}"
        )
    num_states, num_actions = r.shape
    if transitions.shape != (num_states, num_actions, num_states):
        raise ValueError(
            f"transitions: expected (S, A, S') = {(num_states, num_actions, num_states)}, "
            f"got {transitions.shape}"
        )
    if weights.shape != r.shape:
        raise ValueError(f"weights: expected (S, A) = {r.shape}, got {weights.shape}")
    if terminal is not None and jnp.shape(terminal) != (num_states,):
        raise ValueError(
            f"terminal: expected a bool mask (S',) = ({num_states},), "
            f"got shape {jnp.shape(terminal)}"
        )
    dtype = _float_dtype(r_hat, r, transitions, weights)
    return (a.astype(dtype) for a in (r_hat, r, transitions, weights))


@partial(jax.jit, static_argnames=("rcond",))
def shaping_residual(
    reward: jax.Array,
    transitions: jax.Array,
    gamma: float | jax.Array,
    weights: jax.Array,
    *,
    terminal: jax.Array | None = None,
    rcond: float | None = None,
) -> jax.Array:
    """What is left of a tabular reward once potential shaping (and constants) are removed.

    The weighted least-squares residual of ``reward (S, A)`` against the
    shaping columns ``b_k(s, a) = 1[s = k] - gamma P(k|s, a)`` for every
    non-terminal state ``k`` (see ``terminal``) and, when no state is terminal,
    the constant: any ``r + gamma P Phi - Phi (+ c)`` has the same residual as
    ``r``. ``weights (S, A)`` (non-negative, not all zero) define the inner
    product; the residual is also given where the weight is zero. Rank
    deficiency (the constant lies in the span of the ``b_k`` when
    ``gamma < 1``; states without weight) is handled by a truncated SVD:
    singular values below ``rcond`` times the largest are dropped (default
    ``max(S * A, S) * eps``, as ``numpy.linalg.lstsq``).

    Args:
        terminal: optional bool ``(S',)``. Entering a terminal state ends the
            episode, so the potential is zero there (no ``Phi(s')`` after it)
            and a constant is *not* removed: with terminations ``r + c`` makes
            ending the episode more or less attractive than ``r`` does.

    Returns:
        ``(S, A)``; weighted mean zero when the constant is removed.
    """
    reward, _, transitions, weights = _check_tabular(reward, reward, transitions, weights,
                                                     terminal)
    residuals, _ = _tabular_residuals(reward[None], transitions, gamma, weights, terminal, rcond)
    return residuals[0].reshape(reward.shape)


def _tabular_residuals(ys, transitions, gamma, weights, terminal, rcond):
    """Residuals ``(K, S * A)`` of ``ys`` against :func:`_shaping_features` (no centring:
    the constant is one of the features when it is an invariance), and the weighted
    root mean squares of ``ys`` ``(K,)`` as scales for the degenerate-case test."""
    feats = _shaping_features(transitions, gamma, terminal)
    m, f = feats.shape
    if rcond is None:
        rcond = max(m, f) * float(np.finfo(feats.dtype).eps)
    w = _normalize(weights.reshape(-1))
    ys = ys.reshape(ys.shape[0], -1)
    sw = jnp.sqrt(w)
    u, s, vt = jnp.linalg.svd(sw[:, None] * feats, full_matrices=False)
    keep = s > rcond * s[0]
    inv = jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0), 0.0)
    coef = (((ys * sw[None, :]) @ u) * inv[None, :]) @ vt  # least-squares potentials (K, F)
    return ys - coef @ feats.T, _rms_rows(ys, w)


def _rms_rows(ys, w):
    return jnp.sqrt(jnp.sum(w[None, :] * ys * ys, axis=-1))


@partial(jax.jit, static_argnames=("rcond", "tol"))
def shaping_aware_correlation(
    r_hat: jax.Array,
    r: jax.Array,
    transitions: jax.Array,
    gamma: float | jax.Array,
    weights: jax.Array,
    *,
    terminal: jax.Array | None = None,
    rcond: float | None = None,
    tol: float | None = None,
) -> jax.Array:
    """Correlation of two tabular rewards after projecting out shaping (and constants).

    A reward is identified only up to potential shaping
    ``r(s, a) + gamma sum_s' P(s'|s, a) (1 - terminal(s')) Phi(s') - Phi(s)``
    and a positive scale; without terminal states also up to a constant. Both
    rewards are replaced by their :func:`shaping_residual` and the weighted
    cosine similarity of the residuals is returned (their Pearson correlation
    when the constant is removed, as the residuals then have mean zero), which
    the scale does not change. It equals 1 whenever
    ``r_hat = c * (r + gamma P (1 - terminal) Phi - Phi) (+ const)`` with
    ``c > 0`` on the support of ``weights``, for any dynamics.

    Args:
        r_hat, r: ``(S, A)`` rewards of one agent, in expected form
            (``r(s, a) = E[R(s, a, s')]``).
        transitions: ``(S, A, S')``, the dynamics that agent faces (in a Markov
            game the marginal ``P_i^pi(s'|s, a_i)`` under the others' policies).
        gamma: discount.
        weights: ``(S, A)`` coverage, e.g. the expert's state-action occupancy;
            non-negative, positive somewhere; normalized inside.
        terminal: optional bool ``(S',)``: entering a terminal state ends the
            episode; the potential is zero there and constants are kept (see
            :func:`shaping_residual`).
        rcond: SVD cut-off, see :func:`shaping_residual`.
        tol: a residual counts as zero when its weighted root mean square is at
            most ``tol`` times that of the reward it came from (default
            ``sqrt(eps)``: about ``3.5e-4`` in float32).

    Returns:
        A scalar in ``[-1, 1]``; ``1.0`` when both residuals are zero (both
        rewards are pure shaping), ``nan`` when only one is.
    """
    r_hat, r, transitions, weights = _check_tabular(r_hat, r, transitions, weights, terminal)
    if tol is None:
        tol = _default_tol(r.dtype)
    residuals, scales = _tabular_residuals(
        jnp.stack([r_hat, r]), transitions, gamma, weights, terminal, rcond
    )
    w = _normalize(weights.reshape(-1))
    return _correlation(residuals[0], residuals[1], w, scales[0], scales[1], tol,
                        centred=False)


@partial(jax.jit, static_argnames=("rcond", "tol"))
def shaping_aware_correlation_per_agent(
    r_hat: jax.Array,
    r: jax.Array,
    transitions: jax.Array,
    gamma: float | jax.Array,
    weights: jax.Array,
    *,
    terminal: jax.Array | None = None,
    rcond: float | None = None,
    tol: float | None = None,
) -> jax.Array:
    """:func:`shaping_aware_correlation` for every agent, ``jax.vmap``-ed over the agent axis.

    Args:
        r_hat, r: ``(N, S, A)``.
        transitions: ``(N, S, A, S')`` marginal dynamics per agent, or a shared
            ``(S, A, S')``.
        gamma: discount.
        weights: ``(N, S, A)`` per-agent coverage (e.g. ``occupancy`` of
            ``mairl.solvers.soft_value_iteration``), or a shared ``(S, A)``.
        terminal, rcond, tol: as in :func:`shaping_aware_correlation`.

    Returns:
        ``(N,)``.
    """
    r_hat = jnp.asarray(r_hat)
    transitions = jnp.asarray(transitions)
    weights = jnp.asarray(weights)
    if r_hat.ndim != 3:
        raise ValueError(f"r_hat: expected (N, S, A), got shape {r_hat.shape}")
    t_axis = 0 if transitions.ndim == 4 else None
    w_axis = 0 if weights.ndim == 3 else None

    def one(r_hat, r, transitions, weights):
        return shaping_aware_correlation(
            r_hat, r, transitions, gamma, weights, terminal=terminal, rcond=rcond, tol=tol
        )

    return jax.vmap(one, in_axes=(0, 0, t_axis, w_axis))(r_hat, r, transitions, weights)


@partial(jax.jit, static_argnames=("ridge", "tol"))
def shaping_aware_correlation_sampled(
    r_hat: jax.Array,
    r: jax.Array,
    features: jax.Array,
    next_features: jax.Array,
    terminated: jax.Array,
    gamma: float | jax.Array,
    *,
    weights: jax.Array | None = None,
    ridge: float = 1e-6,
    tol: float | None = None,
) -> jax.Array:
    """Shaping-aware correlation on sampled transitions, with a linear potential.

    For games too large to enumerate: with a potential ``Phi(s) = w . f(s)``
    linear in state features, the shaping of a sampled transition
    ``(s, a, s', term)`` is ``gamma (1 - term) Phi(s') - Phi(s)``, linear in
    ``x = f(s) - gamma (1 - term) f(s')``. Both rewards are regressed on
    ``[1, x]`` by ridge least squares (the intercept unpenalized) and the
    Pearson correlation of the residuals is returned, per agent.

    The realized next state stands in for the expectation over ``P(.|s, a)``,
    so with stochastic dynamics this approximates the tabular
    :func:`shaping_aware_correlation` (it also fits the noise
    ``Phi(s') - E[Phi(s')]``); with deterministic dynamics, one-hot features and
    ``ridge -> 0`` it equals the tabular metric weighted by the empirical
    state-action frequencies.

    Args:
        r_hat, r: ``(N, B)`` rewards of the sampled transitions per agent.
        features: ``(N, B, *feat)`` state features per agent (e.g. the
            agent-major ``obs`` of ``mairl.data.Transition``; trailing axes are
            flattened to ``F``), or ``(B, F)`` shared by all agents (a 2-d array
            is always read as shared).
        next_features: same shape, features of the next states.
        terminated: ``(B,)`` bool; no ``Phi(s')`` after termination
            (truncation keeps it).
        gamma: discount.
        weights: optional ``(B,)`` or ``(N, B)`` sample weights.
        ridge: Tikhonov regularizer relative to the mean eigenvalue of the
            weighted, centred Gram matrix of ``x``; directions with eigenvalue
            ``e`` are removed by the factor ``e / (e + lambda)``.
        tol: degenerate-residual threshold as in
            :func:`shaping_aware_correlation`.

    Returns:
        ``(N,)`` in ``[-1, 1]``, with the degenerate cases of the module
        docstring.
    """
    r_hat = jnp.asarray(r_hat)
    r = jnp.asarray(r)
    if r_hat.ndim != 2 or r_hat.shape != r.shape:
        raise ValueError(
            f"r_hat and r: expected equal shapes (N, B), got {r_hat.shape} and {r.shape}"
        )
    n, b = r.shape
    features = jnp.asarray(features)
    next_features = jnp.asarray(next_features)
    if features.shape != next_features.shape:
        raise ValueError(
            f"features and next_features differ in shape: {features.shape} vs {next_features.shape}"
        )
    if features.ndim == 2:
        features = jnp.broadcast_to(features, (n, *features.shape))
        next_features = jnp.broadcast_to(next_features, (n, *next_features.shape))
    if features.shape[:2] != (n, b):
        raise ValueError(
            f"features: expected (N, B, *feat) = ({n}, {b}, ...) or (B, F), got {features.shape}"
        )
    dtype = _float_dtype(r_hat, r, features, next_features)
    features = features.reshape(n, b, -1).astype(dtype)
    next_features = next_features.reshape(n, b, -1).astype(dtype)
    cont = 1.0 - jnp.asarray(terminated, dtype).reshape(b)
    x = features - gamma * cont[None, :, None] * next_features  # (N, B, F)
    if weights is None:
        w = jnp.ones((n, b), dtype)
    else:
        w = jnp.broadcast_to(jnp.asarray(weights, dtype), (n, b))
    w = jax.vmap(_normalize)(w)
    if tol is None:
        tol = _default_tol(dtype)

    def one(r_hat, r, x, w):
        def shrink(s):
            eig = s * s
            lam = ridge * jnp.sum(eig) / x.shape[-1]
            return eig / jnp.where(eig + lam > 0, eig + lam, 1.0)

        residuals, scales = _project_out(jnp.stack([r_hat, r]), x, w, shrink)
        return _correlation(residuals[0], residuals[1], w, scales[0], scales[1], tol)

    return jax.vmap(one)(r_hat.astype(dtype), r.astype(dtype), x, w)


# -- EPIC ----------------------------------------------------------------------------------------
def _lift(reward: jax.Array, num_states: int) -> jax.Array:
    """``(S, A)`` -> ``(S, A, S')`` constant in ``s'``; ``(S, A, S')`` unchanged."""
    if reward.ndim == 2:
        return jnp.broadcast_to(reward[..., None], (*reward.shape, num_states))
    return reward


@jax.jit
def epic_canonicalize(
    reward: jax.Array,
    gamma: float | jax.Array,
    state_dist: jax.Array,
    action_dist: jax.Array,
) -> jax.Array:
    """EPIC canonical form of one reward (Gleave et al. 2020, Section 4).

    ``C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S')
    - gamma R(S, A, S')]`` with ``S, S' ~ D_S`` and ``A ~ D_A`` independent.
    With ``m(x) = E_{A, S'} R(x, A, S')`` this is
    ``R(s, a, s') + gamma m(s') - m(s) - gamma E_S m(S)``. ``C`` removes any
    shaping ``gamma Phi(s') - Phi(s)`` and constant.

    Args:
        reward: ``(S, A, S')``, or ``(S, A)`` read as constant in ``s'``.
        state_dist: ``(S,)`` ``D_S``, summing to one.
        action_dist: ``(A,)`` ``D_A``, summing to one.

    Returns:
        ``(S, A, S')``.
    """
    num_states = state_dist.shape[0]
    reward = _lift(reward, num_states)
    m = jnp.einsum("xat,a,t->x", reward, action_dist, state_dist)  # (S,)
    mean = jnp.dot(state_dist, m)
    return reward + gamma * m[None, None, :] - m[:, None, None] - gamma * mean


@partial(jax.jit, static_argnames=("coverage", "tol"))
def epic_distance(
    r_hat: jax.Array,
    r: jax.Array,
    transitions: jax.Array,
    gamma: float | jax.Array,
    state_dist: jax.Array | None = None,
    action_dist: jax.Array | None = None,
    *,
    coverage: str = "transitions",
    tol: float | None = None,
) -> jax.Array:
    """Per-agent EPIC distance (Gleave et al. 2020, "Quantifying differences in reward functions").

    ``D_EPIC(R_hat, R) = sqrt((1 - rho) / 2)`` where ``rho`` is the Pearson
    correlation of the canonicalized rewards :func:`epic_canonicalize`
    (``D_S = state_dist``, ``D_A = action_dist``, uniform by default) over a
    coverage distribution of transitions ``(s, a, s')``:

    - ``coverage="transitions"`` (default): ``D_S(s) D_A(a) P(s'|s, a)``, only
      transitions the dynamics can make;
    - ``coverage="independent"``: ``D_S(s) D_A(a) D_S(s')``, the product
      distribution used for the tabular examples of the paper.

    ``0`` for identical rewards, ``1`` for ``R_hat = -R``; a pseudometric in
    ``[0, 1]``, invariant to positive scaling, constants and potential shaping
    ``R(s, a, s') + gamma Phi(s') - Phi(s)`` of a reward over transitions, for
    any coverage and dynamics. The square root magnifies round-off
    near zero: equivalent rewards give about ``sqrt(eps)`` (``1e-4`` to ``1e-3``
    in float32), not exactly ``0``.

    State-action rewards ``(N, S, A)`` are read as ``R(s, a, s')`` constant in
    ``s'``. The state-action form of shaping,
    ``r(s, a) + gamma E_{P(.|s, a)} Phi(s') - Phi(s)``, is *not* a reward of
    that kind, and EPIC does not ignore it, even with deterministic dynamics
    (the canonical form queries transitions the dynamics never make). To
    compare state-action rewards up to their shaping use
    :func:`shaping_aware_correlation`; with deterministic dynamics
    ``s' = f(s, a)`` one can instead pass the transition form
    ``r(s, a) + gamma Phi(s') - Phi(s)``, which equals the shaped reward on
    every transition the game makes.

    Args:
        r_hat, r: ``(N, S, A)`` or ``(N, S, A, S')`` (each on its own).
        transitions: ``(N, S, A, S')`` per-agent (marginal) dynamics or a shared
            ``(S, A, S')``; used by ``coverage="transitions"``.
        gamma: discount.
        state_dist: ``(S,)`` ``D_S``; uniform when ``None``. Normalized inside.
        action_dist: ``(A,)`` ``D_A``; uniform when ``None``. Normalized inside.
        coverage: ``"transitions"`` or ``"independent"`` (static).
        tol: a canonical reward counts as constant when its standard deviation
            under the coverage is at most ``tol`` times the root mean square of
            the reward itself (default ``sqrt(eps)``).

    Returns:
        ``(N,)`` in ``[0, 1]``; ``0.0`` when both canonical rewards are constant,
        ``nan`` when only one is.
    """
    if coverage not in _COVERAGES:
        raise ValueError(f"coverage: expected one of {_COVERAGES}, got {coverage!r}")
    r_hat = jnp.asarray(r_hat)
    r = jnp.asarray(r)
    transitions = jnp.asarray(transitions)
    if r.ndim not in (3, 4) or r_hat.ndim not in (3, 4) or r_hat.shape[:3] != r.shape[:3]:
        raise ValueError(
            "r_hat and r: expected (N, S, A) or (N, S, A, S') with equal (N, S, A), got "
            f"{r_hat.shape} and {r.shape}"
        )
    n, num_states, num_actions = r.shape[:3]
    dtype = _float_dtype(r_hat, r, transitions)
    if transitions.ndim == 3:
        transitions = jnp.broadcast_to(transitions, (n, *transitions.shape))
    if transitions.shape != (n, num_states, num_actions, num_states):
        raise ValueError(
            f"transitions: expected (N, S, A, S') = {(n, num_states, num_actions, num_states)} "
            f"or (S, A, S'), got {transitions.shape}"
        )
    ds = jnp.ones((num_states,), dtype) if state_dist is None else jnp.asarray(state_dist, dtype)
    da = jnp.ones((num_actions,), dtype) if action_dist is None else jnp.asarray(action_dist, dtype)
    ds = _normalize(ds)
    da = _normalize(da)
    if tol is None:
        tol = _default_tol(dtype)

    def one(r_hat, r, transitions):
        if coverage == "transitions":
            next_dist = transitions
        else:
            next_dist = jnp.broadcast_to(ds, transitions.shape)
        w = (ds[:, None, None] * da[None, :, None] * next_dist).reshape(-1)
        w = _normalize(w)
        c_hat = epic_canonicalize(r_hat, gamma, ds, da).reshape(-1)
        c = epic_canonicalize(r, gamma, ds, da).reshape(-1)
        scale_hat = _rms(_lift(r_hat, num_states).reshape(-1), w)
        scale = _rms(_lift(r, num_states).reshape(-1), w)
        rho = _correlation(c_hat, c, w, scale_hat, scale, tol)
        return jnp.sqrt(jnp.clip((1.0 - rho) / 2.0, 0.0, 1.0))

    return jax.vmap(one)(r_hat.astype(dtype), r.astype(dtype), transitions.astype(dtype))
