"""Exact forward solvers for tabular general-sum Markov games: the oracles.

A game is given by the tensors ``P[s, a_1, ..., a_N, s']`` (transitions),
``R[i, s, a_1, ..., a_N]`` (rewards), ``rho[s]`` (initial distribution) and an
optional boolean mask ``terminal[s']``: entering a terminal state ends the
episode, so its value is not bootstrapped. Any object with ``.transitions``,
``.rewards``, ``.initial`` (and optionally ``.terminal``) works, e.g.
``envs.tabular.TabularGame``; this module does not depend on ``envs``.

The solution concept is the logit (quantal-response) equilibrium of the soft
Markov game, the fixed point MAMQL's marginal critics describe. With ``pi_j``
the agents' Boltzmann policies, agent ``i`` sees the marginal game

    r_i^pi(s, a_i)     = E_{a_-i ~ pi_-i(.|s)} R_i(s, a_i, a_-i)
    P_i^pi(s'|s, a_i)  = E_{a_-i ~ pi_-i(.|s)} P(s'|s, a_i, a_-i)

and the equilibrium satisfies, for every agent ``i``,

    Q_i(s, a_i) = r_i^pi(s, a_i) + gamma * sum_s' P_i^pi(s'|s, a_i) (1 - terminal(s')) V_i(s')
    V_i(s)      = alpha * logsumexp_a Q_i(s, a) / alpha
    pi_i(a|s)   = exp((Q_i(s, a) - V_i(s)) / alpha).

``soft_value_iteration`` (for a game object) and
``soft_value_iteration_from_tensors`` find it in float64, inside a
``jax.enable_x64`` context that leaves the caller's precision setting alone, so
that the equations hold to well below ``1e-6`` even where values are of order
``1 / (1 - gamma)``. Two methods:

- the damped fixed-point iteration ``Q <- Q + (1 - damping) (T(Q) - Q)`` in a
  jit-compiled ``lax.while_loop`` (``iterate_soft_bellman``), with the
  per-agent constant part of each update extrapolated to its limit
  (McQueen-Porteus), which cuts the iteration count at ``gamma = 0.99`` from
  thousands to tens without moving the fixed point. Cheap per step and
  scalable, but for several agents the iteration is not a contraction in
  general: at low temperatures, or with large rewards, it can cycle (e.g.
  chicken at ``alpha = 0.3``).
- homotopy continuation in ``1 / alpha`` with Newton corrections
  (``_trace_branch``), which follows the principal branch of logit
  equilibria (McKelvey and Palfrey, 1995) from the reward-free game, where the
  equilibrium is unique. Robust, but each Newton step solves a dense system in
  ``N S A`` unknowns.

``method="auto"`` (the default) runs the iteration and falls back to the
homotopy on small games. A game may have several logit equilibria; the one
found depends on the method, on ``init`` and on the damping.
``SolverDidNotConverge`` reports failure. The derived quantities (marginals,
occupancy) are computed in NumPy float64 from the final ``Q``, and the result
holds read-only float64 NumPy arrays.

``solve_logit_equilibrium`` is the iteration as a pure JAX function, in the
dtype of its inputs, for use inside other jitted code. The building blocks
(``marginalize``, ``state_occupancy``, ...) take NumPy arrays to NumPy and JAX
arrays to JAX. For one agent all of this is ordinary soft (maximum-entropy)
value iteration.

Axes: agent first, ``N`` agents, ``S`` states, ``A`` actions per agent (equal
for all agents), ``S'`` next states.
"""

from __future__ import annotations

import string
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_AGENT_AXES = string.ascii_uppercase  # einsum letters of the agents' action axes


class SoftVIResult(NamedTuple):
    """Logit equilibrium of a soft Markov game (see the module docstring).

    Attributes:
        q: ``(N, S, A)`` marginal soft-Q of each agent.
        v: ``(N, S)`` soft value ``alpha * logsumexp(q / alpha)``.
        policy: ``(N, S, A)`` Boltzmann policies ``exp((q - v) / alpha)``.
        marginal_rewards: ``(N, S, A)`` ``r_i^pi(s, a_i)``.
        marginal_transitions: ``(N, S, A, S')`` ``P_i^pi(s'|s, a_i)``.
        state_occupancy: ``(S,)`` normalized discounted state occupancy
            ``(1 - gamma) sum_t gamma^t Pr(s_t = s)`` from ``initial`` under the
            joint policy (episodes stop on entering a terminal state).
        occupancy: ``(N, S, A)`` ``state_occupancy[s] * policy[i, s, a]``.
        residual: ``max |T(q) - q|``, the largest change an undamped step would make.
        iterations: Bellman updates (plus Newton steps of the homotopy) taken.
    """

    q: Any
    v: Any
    policy: Any
    marginal_rewards: Any
    marginal_transitions: Any
    state_occupancy: Any
    occupancy: Any
    residual: Any
    iterations: Any


class SolverDidNotConverge(RuntimeError):
    """The solver stopped with a residual above ``tol``.

    ``residual`` and ``iterations`` say where it stopped; ``result`` holds the
    last iterate.
    """

    def __init__(self, message: str, residual: float, iterations: int, result: SoftVIResult):
        super().__init__(message)
        self.residual = residual
        self.iterations = iterations
        self.result = result


# -- building blocks: NumPy arrays in, NumPy out; JAX arrays (or tracers) otherwise ----------------
def _xp(*arrays):
    return np if all(isinstance(x, np.ndarray) for x in arrays) else jnp


def boltzmann_policy(q: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """``pi(a|s) ∝ exp(q(s, a) / alpha)`` over the last axis; ``q (..., A)``."""
    xp = _xp(q)
    z = q / alpha
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def soft_value(q: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """``alpha * logsumexp(q / alpha)`` over the last axis; ``q (..., A)`` -> ``(...)``."""
    xp = _xp(q)
    z = q / alpha
    m = z.max(axis=-1)
    return alpha * (m + xp.log(xp.exp(z - m[..., None]).sum(axis=-1)))


def marginalize(joint: jax.Array, policy: jax.Array) -> jax.Array:
    """Each agent's view of a joint-action tensor, the others drawn from ``policy``.

    Args:
        joint: ``(N, S, A, ..., A, *rest)`` with ``N`` action axes; row ``i`` is
            agent ``i``'s quantity (a reward, an expected next value, ...).
        policy: ``(N, S, A)``.

    Returns:
        ``(N, S, A, *rest)``: ``out[i, s, a_i] = E_{a_-i ~ pi_-i(.|s)} joint[i, s, a]``.
        The loop over agents builds one einsum each at trace time.
    """
    xp = _xp(joint, policy)
    n = policy.shape[0]
    actions = _AGENT_AXES[:n]
    rest = "".join(chr(ord("a") + k) for k in range(joint.ndim - 2 - n))
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        spec = ",".join(["s" + actions + rest] + ["s" + actions[j] for j in others])
        out.append(
            xp.einsum(
                f"{spec}->s{actions[i]}{rest}",
                joint[i],
                *(policy[j] for j in others),
                optimize=True,
            )
        )
    return xp.stack(out)


def marginal_rewards(rewards: jax.Array, policy: jax.Array) -> jax.Array:
    """``r_i^pi(s, a_i)`` ``(N, S, A)`` from ``rewards (N, S, A, ..., A)``."""
    return marginalize(rewards, policy)


def marginal_transitions(transitions: jax.Array, policy: jax.Array) -> jax.Array:
    """``P_i^pi(s'|s, a_i)`` ``(N, S, A, S')`` from ``transitions (S, A, ..., A, S')``."""
    xp = _xp(transitions, policy)
    n = policy.shape[0]
    return marginalize(xp.broadcast_to(transitions, (n, *transitions.shape)), policy)


def joint_policy(policy: jax.Array) -> jax.Array:
    """Product policy ``(S, A, ..., A)`` from independent ``policy (N, S, A)``."""
    xp = _xp(policy)
    n = policy.shape[0]
    actions = _AGENT_AXES[:n]
    spec = ",".join("s" + a for a in actions)
    return xp.einsum(f"{spec}->s{actions}", *policy)


def expected_next_value(
    marginal_transitions: jax.Array, v: jax.Array, terminal: jax.Array | None = None
) -> jax.Array:
    """``sum_s' P_i^pi(s'|s, a) (1 - terminal(s')) V_i(s')`` ``(N, S, A)``.

    Args:
        marginal_transitions: ``(N, S, A, S')``.
        v: ``(N, S')``.
        terminal: optional bool ``(S',)``.
    """
    xp = _xp(marginal_transitions, v)
    if terminal is not None:
        v = xp.where(terminal, 0.0, v)
    return xp.einsum("nsat,nt->nsa", marginal_transitions, v)


def state_occupancy(
    transitions: jax.Array,
    initial: jax.Array,
    policy: jax.Array,
    gamma: float | jax.Array,
    terminal: jax.Array | None = None,
) -> jax.Array:
    """Normalized discounted state occupancy ``(S,)`` under the joint ``policy``.

    ``d = (1 - gamma) rho^T (I - gamma P_pi)^-1`` with
    ``P_pi(s, s') = sum_a pi(a|s) P(s'|s, a) (1 - terminal(s'))``, rescaled to
    sum to one (it already does without terminal states). A dense solve:
    ``O(S^3)``.
    """
    xp = _xp(transitions, initial, policy)
    num_states = initial.shape[0]
    pi = joint_policy(policy).reshape(num_states, -1)
    p_pi = xp.einsum("sj,sjt->st", pi, transitions.reshape(num_states, -1, num_states))
    if terminal is not None:
        p_pi = xp.where(terminal[None, :], 0.0, p_pi)
    eye = xp.eye(num_states, dtype=p_pi.dtype)
    d = (1.0 - gamma) * xp.linalg.solve((eye - gamma * p_pi).T, initial)
    return d / d.sum()


def soft_bellman_operator(
    q: jax.Array,
    transitions: jax.Array,
    rewards: jax.Array,
    alpha: float | jax.Array,
    gamma: float | jax.Array,
    terminal: jax.Array | None = None,
) -> jax.Array:
    """``T(q)_i(s, a_i) = r_i^pi(s, a_i) + gamma E_{P_i^pi}[(1 - terminal) V_i]``, ``(N, S, A)``.

    ``pi`` and ``V`` are the Boltzmann policy and soft value of ``q (N, S, A)``.
    The next-state expectation is taken on the joint action first (one matrix
    product), then marginalized together with the reward.
    """
    xp = _xp(q, transitions, rewards)
    num_agents, num_states = q.shape[:2]
    pi = boltzmann_policy(q, alpha)
    v = soft_value(q, alpha)  # (N, S')
    if terminal is not None:
        v = xp.where(terminal[None, :], 0.0, v)
    flat = transitions.reshape(-1, num_states)  # (S * A^N, S')
    ev = (flat @ v.T).T.reshape(num_agents, *transitions.shape[:-1])  # (N, S, A, ..., A)
    return marginalize(rewards + gamma * ev, pi)


def iterate_soft_bellman(
    q0: jax.Array,
    transitions: jax.Array,
    rewards: jax.Array,
    terminal: jax.Array,
    alpha: float | jax.Array,
    gamma: float | jax.Array,
    damping: float | jax.Array,
    tol: float | jax.Array,
    max_iters: int | jax.Array,
    extrapolate: bool | jax.Array = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The damped fixed-point iteration, a ``lax.while_loop`` from ``q0 (N, S, A)``.

    Each step evaluates ``delta = T(q) - q`` and stops once
    ``residual = max |delta| <= tol`` (leaving that ``q`` unchanged) or after
    ``max_iters`` steps. Otherwise ``q <- q + (1 - damping) * delta``, except
    that with ``extrapolate`` (and no terminal state) the part of ``delta``
    constant over ``(s, a)`` for an agent is extrapolated to its limit instead
    (McQueen-Porteus): such an error ``c_i`` in ``q_i`` changes no policy and
    comes back as ``gamma * c_i``, so it is removed exactly by
    ``shift_i / (1 - gamma)`` rather than decaying at the slow rate ``gamma``.

    Every argument may be traced, so one compilation serves all parameters.

    Returns:
        ``q (N, S, A)``, ``residual`` of that ``q`` and the number of steps.
    """
    dtype = q0.dtype
    keep = jnp.asarray(damping, dtype)
    use_shift = jnp.logical_and(extrapolate, ~jnp.any(terminal))

    def cond(carry):
        _, residual, it = carry
        return (residual > tol) & (it < max_iters)

    def body(carry):
        q, _, it = carry
        delta = soft_bellman_operator(q, transitions, rewards, alpha, gamma, terminal) - q
        residual = jnp.max(jnp.abs(delta))
        mid = 0.5 * (jnp.max(delta, axis=(1, 2)) + jnp.min(delta, axis=(1, 2)))
        shift = jnp.where(use_shift, mid, 0.0)[:, None, None]
        step = (1.0 - keep) * (delta - shift) + shift / (1.0 - gamma)
        q_next = jnp.where(residual > tol, q + step, q)
        return q_next, residual, it + 1

    carry = (q0, jnp.asarray(jnp.inf, dtype), jnp.zeros((), jnp.int32))
    return jax.lax.while_loop(cond, body, carry)


def solve_logit_equilibrium(
    transitions: jax.Array,
    rewards: jax.Array,
    initial: jax.Array,
    alpha: float | jax.Array = 1.0,
    gamma: float | jax.Array = 0.99,
    *,
    terminal: jax.Array | None = None,
    damping: float | jax.Array = 0.5,
    tol: float | jax.Array = 1e-8,
    max_iters: int | jax.Array = 100_000,
    init: jax.Array | None = None,
    extrapolate: bool | jax.Array = True,
) -> SoftVIResult:
    """Damped soft value iteration as a pure JAX function (jit- and vmap-able).

    Computes in the dtype of ``transitions``/``rewards`` and never raises:
    check ``result.residual <= tol`` yourself (float32 cannot reach much below
    ``1e-5`` relative to the values). Shapes as in the module docstring;
    ``init`` is a starting ``q (N, S, A)`` (zeros by default).
    """
    num_agents, num_states = rewards.shape[:2]
    num_actions = rewards.shape[2]
    dtype = jnp.result_type(transitions, rewards)
    q0 = (
        jnp.zeros((num_agents, num_states, num_actions), dtype)
        if init is None
        else jnp.asarray(init, dtype)
    )
    mask = jnp.zeros(num_states, bool) if terminal is None else jnp.asarray(terminal, bool)
    q, residual, iterations = iterate_soft_bellman(
        q0, transitions, rewards, mask, alpha, gamma, damping, tol, max_iters, extrapolate
    )
    return _assemble(q, transitions, rewards, initial, terminal, alpha, gamma, residual, iterations)


def _assemble(q, transitions, rewards, initial, terminal, alpha, gamma, residual, iterations):
    policy = boltzmann_policy(q, alpha)
    occ = state_occupancy(transitions, initial, policy, gamma, terminal)
    return SoftVIResult(
        q=q,
        v=soft_value(q, alpha),
        policy=policy,
        marginal_rewards=marginal_rewards(rewards, policy),
        marginal_transitions=marginal_transitions(transitions, policy),
        state_occupancy=occ,
        occupancy=occ[None, :, None] * policy,
        residual=residual,
        iterations=iterations,
    )


_iterate_jit = jax.jit(iterate_soft_bellman)


def _homotopy_residual(y, transitions, rewards, terminal, gamma, shape):
    """``H(x, lam) = T(x) - x`` in scaled units ``x = q / alpha``, ``lam = 1 / alpha``.

    ``y = (x.ravel(), lam)``. Since ``T(q) / alpha = lam r^pi + gamma P^pi logsumexp(x)``,
    ``H`` is the Bellman residual at temperature 1 with rewards ``lam R``, and
    it stays bounded as ``lam -> 0`` where ``q`` grows like ``alpha``.
    """
    x = y[:-1].reshape(shape)
    tx = soft_bellman_operator(x, transitions, y[-1] * rewards, 1.0, gamma, terminal)
    return (tx - x).ravel()


def _arc_step(y, tangent, h, transitions, rewards, terminal, gamma, tol, max_newton, shape):
    """One pseudo-arclength step along ``H(y) = 0`` (``N S A + 1`` unknowns).

    Predicts ``y_pred = y + h t`` and corrects with Newton on
    ``[H(y); t . (y - y_pred)] = 0`` (at least one step, at most
    ``max_newton``, failing if the residual grows). Each step also solves
    ``[DH; t^T] t' = e_last`` for the next tangent, which keeps the orientation
    of ``t``. With ``t = e_last`` this is plain Newton at ``lam = y[-1] + h``.
    Dense Jacobian: ``O((N S A)^3)`` per step.

    Returns:
        ``y``, the normalized tangent ``t'``, ``max |H(y)|``, Newton steps, ok.
    """
    fn = lambda y: _homotopy_residual(y, transitions, rewards, terminal, gamma, shape)
    y_pred = y + h * tangent
    last = jnp.zeros_like(y).at[-1].set(1.0)

    def cond(carry):
        _, _, res, it, ok = carry
        return ok & ((res > tol) | (it == 0)) & (it < max_newton)

    def body(carry):
        y, _, res, it, _ = carry
        jac = jnp.concatenate([jax.jacfwd(fn)(y), tangent[None, :]], axis=0)
        rhs = jnp.stack([jnp.concatenate([fn(y), (tangent @ (y - y_pred))[None]]), -last], 1)
        sol = jnp.linalg.solve(jac, -rhs)  # columns: Newton step, tangent
        y_new = y + sol[:, 0]
        res_new = jnp.max(jnp.abs(fn(y_new)))
        ok = jnp.isfinite(res_new) & ((it == 0) | (res_new < res))
        return y_new, sol[:, 1] / jnp.linalg.norm(sol[:, 1]), res_new, it + 1, ok

    init = (y_pred, tangent, jnp.max(jnp.abs(fn(y_pred))), jnp.zeros((), jnp.int32), True)
    y_new, t_new, res, steps, ok = jax.lax.while_loop(cond, body, init)
    ok = ok & (res <= tol) & jnp.all(jnp.isfinite(t_new))
    return y_new, t_new, res, steps, ok


_arc_step_jit = jax.jit(_arc_step, static_argnames=("shape",))

#: Largest ``N * S * A`` for which ``method="auto"`` falls back to homotopy continuation.
NEWTON_MAX_UNKNOWNS = 1024
#: Iteration budget of ``method="auto"`` before that fallback.
AUTO_ITERATIONS = 5000
_ARC_TOL = 1e-8  # corrector tolerance on H along the path (units of q / alpha)
_ARC_GROW = {1: 2.0, 2: 2.0, 3: 1.5, 4: 1.2}  # step-length factor by corrector steps


def _trace_branch(P, R, term, alpha, gamma, tol, max_steps):
    """Follow the principal branch of logit equilibria from ``1 / alpha = 0`` to ``alpha``.

    Homotopy in the rationality ``lam = 1 / alpha`` (McKelvey and Palfrey,
    1995; for stochastic games Eibelshaeuser and Poensgen, 2019). At ``lam = 0``
    the rewards vanish and the iteration finds the solution; pseudo-arclength
    continuation (``_arc_step``) then follows the branch with an adaptive step
    length, through folds where ``lam`` turns back, until ``lam = 1 / alpha``,
    where Newton at fixed ``lam`` polishes the solution to ``tol``. Runs in
    float64 under ``jax.enable_x64``.

    Returns:
        ``q`` (NumPy) at ``alpha``, its residual and the number of Newton steps.
    """
    shape = (R.shape[0], R.shape[1], P.shape[1])
    lam_star = 1.0 / alpha
    with jax.enable_x64(True):
        f64 = lambda x: jnp.asarray(x, jnp.float64)
        Pj, Rj, g = f64(P), f64(R), f64(gamma)
        mask = jnp.asarray(np.zeros(P.shape[0], bool) if term is None else term)
        last = jnp.zeros(np.prod(shape) + 1).at[-1].set(1.0)

        def arc(y, tangent, h, tol):
            out = _arc_step_jit(y, tangent, f64(h), Pj, Rj, mask, g, f64(tol), 8, shape)
            return out[0], out[1], float(out[2]), int(out[3]), bool(out[4])

        x0, res0, _ = _iterate_jit(
            f64(np.zeros(shape)), Pj, 0.0 * Rj, mask, f64(1.0), g, f64(0.5),
            f64(_ARC_TOL), jnp.asarray(AUTO_ITERATIONS, jnp.int32), jnp.asarray(True),
        )  # fmt: skip
        y, tangent, h, steps = jnp.append(jnp.ravel(x0), 0.0), last, 0.1, 0
        while float(res0) <= _ARC_TOL and steps < max_steps and h > 1e-9:
            lam, t_lam = float(y[-1]), float(tangent[-1])
            arrive = t_lam > 0 and lam + h * t_lam >= lam_star
            step = (lam_star - lam) / t_lam if arrive else h
            y_new, t_new, _, its, ok = arc(y, tangent, step, _ARC_TOL)
            steps += its
            if not ok:
                h *= 0.5
                continue
            y, tangent = y_new, t_new
            if arrive:
                break
            h *= _ARC_GROW.get(its, 1.0)
        # Newton at fixed lam = 1 / alpha; H is q's residual divided by alpha.
        y, _, _, its, _ = arc(y, last, lam_star - float(y[-1]), tol / alpha)
        steps += its
    q = alpha * np.array(y[:-1], np.float64).reshape(shape)
    residual = float(np.max(np.abs(soft_bellman_operator(q, P, R, alpha, gamma, term) - q)))
    return q, residual, steps


# -- host-side entry points ---------------------------------------------------------------------
def soft_value_iteration(
    game: Any, alpha: float = 1.0, gamma: float = 0.99, **options: Any
) -> SoftVIResult:
    """Logit equilibrium of ``game`` (``.transitions``, ``.rewards``, ``.initial``,
    optional ``.terminal``); ``options`` (``method``, ``damping``, ``tol``,
    ``max_iters``, ``init``, ``extrapolate``) and the result are those of
    ``soft_value_iteration_from_tensors``."""
    for attr in ("transitions", "rewards", "initial"):
        if not hasattr(game, attr):
            raise TypeError(
                f"soft_value_iteration: game {type(game).__name__} has no {attr!r} attribute "
                "(it needs transitions, rewards and initial tensors)"
            )
    return soft_value_iteration_from_tensors(
        game.transitions,
        game.rewards,
        game.initial,
        alpha,
        gamma,
        terminal=getattr(game, "terminal", None),
        **options,
    )


def soft_value_iteration_from_tensors(
    transitions: Any,
    rewards: Any,
    initial: Any,
    alpha: float = 1.0,
    gamma: float = 0.99,
    *,
    terminal: Any = None,
    method: str = "auto",
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iters: int = 100_000,
    init: Any = None,
    extrapolate: bool = True,
) -> SoftVIResult:
    """Logit equilibrium of the soft Markov game ``(P, R, rho)``, in float64.

    Methods:

    - ``"iteration"``: the damped fixed-point iteration of
      ``iterate_soft_bellman``, from ``init`` (zeros by default).
    - ``"homotopy"``: continuation in the rationality ``1 / alpha`` with
      Newton corrections (``_trace_branch``): from the reward-free game, where
      the equilibrium is unique, along the principal branch of logit
      equilibria to ``alpha``. It reaches equilibria at which the iteration
      cycles, at a cost of ``O((N S A)^3)`` per Newton step (seconds for a few
      hundred unknowns, a minute or more near ``NEWTON_MAX_UNKNOWNS``).
      ``init`` and ``damping`` are not used.
    - ``"auto"``: the iteration for at most ``AUTO_ITERATIONS`` updates; if it
      has not converged, the homotopy when ``N S A`` is at most
      ``NEWTON_MAX_UNKNOWNS``, else more iteration.

    Where a game has several logit equilibria, the methods may find different ones.

    Args:
        transitions: ``P (S, A, ..., A, S')`` with ``N`` action axes.
        rewards: ``R (N, S, A, ..., A)``.
        initial: ``rho (S,)``.
        alpha: temperature ``> 0``.
        gamma: discount in ``[0, 1)``.
        terminal: optional bool ``(S,)``; no bootstrap from terminal next states.
        method: ``"auto"``, ``"iteration"`` or ``"homotopy"``.
        damping: weight in ``[0, 1)`` kept from the previous iterate.
        tol: converged once ``max |T(q) - q| <= tol``.
        max_iters: most Bellman updates and Newton steps, together.
        init: optional starting ``q (N, S, A)`` for the iteration.
        extrapolate: extrapolate the per-agent constant part of each update
            (ignored when ``terminal`` marks any state).

    Returns:
        ``SoftVIResult`` of read-only float64 NumPy arrays, ``residual`` a float
        and ``iterations`` (Bellman updates plus Newton steps) an int.

    Raises:
        ValueError: inconsistent shapes, unequal action counts, bad parameters.
        SolverDidNotConverge: ``residual > tol`` once ``max_iters`` is spent or
            the homotopy gave up.
    """
    P, R, rho, term, q0 = _validate(transitions, rewards, initial, terminal, init)
    if method not in ("auto", "iteration", "homotopy"):
        raise ValueError(f"method: expected 'auto', 'iteration' or 'homotopy', got {method!r}")
    if not alpha > 0:
        raise ValueError(f"alpha: expected a positive temperature, got {alpha}")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma: expected a discount in [0, 1), got {gamma}")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping: expected a value in [0, 1), got {damping}")
    if not tol > 0:
        raise ValueError(f"tol: expected a positive tolerance, got {tol}")
    max_iters = int(max_iters)
    if max_iters < 1:
        raise ValueError(f"max_iters: expected a positive integer, got {max_iters}")

    alpha, gamma, tol = float(alpha), float(gamma), float(tol)
    q = np.zeros((R.shape[0], R.shape[1], P.shape[1])) if q0 is None else q0
    residual, iterations = np.inf, 0
    small = q.size <= NEWTON_MAX_UNKNOWNS

    def iterate(q, budget):
        with jax.enable_x64(True):
            f64 = lambda x: jnp.asarray(x, jnp.float64)
            out = _iterate_jit(
                f64(q),
                f64(P),
                f64(R),
                jnp.asarray(np.zeros(P.shape[0], bool) if term is None else term),
                f64(alpha),
                f64(gamma),
                f64(damping),
                f64(tol),
                jnp.asarray(budget, jnp.int32),
                jnp.asarray(bool(extrapolate)),
            )
            return np.array(out[0], np.float64), float(out[1]), int(out[2])

    if method != "homotopy":
        budget = min(max_iters, AUTO_ITERATIONS) if method == "auto" and small else max_iters
        q, residual, iterations = iterate(q, budget)
    if residual > tol and iterations < max_iters:
        if method == "homotopy" or (method == "auto" and small):
            q_n, res_n, steps = _trace_branch(P, R, term, alpha, gamma, tol, max_iters - iterations)
            iterations += steps
            if res_n < residual:
                q, residual = q_n, res_n
        elif method == "auto":
            q, residual, more = iterate(q, max_iters - iterations)
            iterations += more

    result = _assemble(q, P, R, rho, term, alpha, gamma, residual, iterations)
    for arr in result[:-2]:
        arr.setflags(write=False)
    if not residual <= tol:
        raise SolverDidNotConverge(
            f"soft value iteration did not converge: residual {residual:.3e} > tol {tol:.1e} "
            f"after {iterations} iterations (method={method!r}, alpha={alpha}, gamma={gamma}, "
            f"damping={damping}); try more iterations, more damping or method='homotopy'",
            residual,
            iterations,
            result,
        )
    return result


def _validate(transitions, rewards, initial, terminal, init):
    P = np.asarray(transitions, np.float64)
    if P.ndim < 3 or P.shape[0] != P.shape[-1]:
        raise ValueError(
            f"transitions: expected shape (S, A_1, ..., A_N, S) with N >= 1, got {P.shape}"
        )
    num_agents = P.ndim - 2
    num_states = P.shape[0]
    action_counts = P.shape[1:-1]
    if len(set(action_counts)) != 1:
        raise ValueError(
            "soft value iteration needs the same number of actions for every agent, "
            f"got action counts {tuple(action_counts)} from transitions of shape {P.shape}"
        )
    R = np.asarray(rewards, np.float64)
    if R.shape != (num_agents, *P.shape[:-1]):
        raise ValueError(
            f"rewards: expected shape (N, S, A, ..., A) = {(num_agents, *P.shape[:-1])}, "
            f"got {R.shape}"
        )
    rho = np.asarray(initial, np.float64)
    if rho.shape != (num_states,):
        raise ValueError(f"initial: expected shape (S,) = ({num_states},), got {rho.shape}")
    for name, arr in (("transitions", P), ("rewards", R), ("initial", rho)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains non-finite values")
    term = None
    if terminal is not None:
        term = np.asarray(terminal).astype(bool)
        if term.shape != (num_states,):
            raise ValueError(f"terminal: expected shape (S,) = ({num_states},), got {term.shape}")
        if not term.any():
            term = None
    q0 = None
    if init is not None:
        q0 = np.asarray(init, np.float64)
        expected = (num_agents, num_states, action_counts[0])
        if q0.shape != expected:
            raise ValueError(f"init: expected q of shape (N, S, A) = {expected}, got {q0.shape}")
    return P, R, rho, term, q0
