"""Multi-agent maximum-likelihood IRL on tabular games, with the exact soft policy step.

Single-agent ML-IRL (Zeng, Li, Garcia and Hong, NeurIPS 2022, "Maximum-likelihood
inverse reinforcement learning with finite-time guarantees") maximizes the
discounted log-likelihood of the expert's actions under the soft-optimal policy
of a parametrized reward,

    L(theta) = E_{tau ~ pi_E} sum_t gamma^t log pi_theta(a_t | s_t),
    pi_theta(a|s) = exp((Q_theta(s, a) - V_theta(s)) / alpha),

in a single loop: each iteration takes one soft policy-improvement step under
the current reward (``pi_{k+1} ∝ exp(Q^soft_{r_k, pi_k} / alpha)``), then one
gradient step on the reward,

    grad L = (1 / alpha) (E_{d_E}[grad r(s, a)] - E_{d_pi}[grad r(s, a)]),

the difference of the reward's gradient under the expert's and the learner's
discounted state-action occupancies.

**The multi-agent extension (this library's; no published version exists).**
``N`` agents of a general-sum Markov game, with per-agent rewards
``r_i(s, a_i) = phi_i(s, a_i) . theta_i`` (tabular: ``phi_i`` the indicator of
``(s, a_i)``). Agent ``i`` learns in its *marginal game*: the Markov decision
process the others' current policies leave it, with dynamics
``P_i^pi(s'|s, a_i) = E_{a_-i ~ pi_-i(.|s)} P(s'|s, a)``
(``mairl.solvers.marginal_transitions``). One iteration, for all agents at once:

1. policy step: ``K`` sweeps of soft policy evaluation of ``pi_k`` in each
   agent's marginal game under ``r_k``,
   ``Q_i <- r_i + gamma P_i^{pi_k} (1 - terminal) V_i^{pi_k}`` with
   ``V_i^pi(s) = sum_a pi_i(a|s) (Q_i(s, a) - alpha log pi_i(a|s))``, from the
   previous ``Q`` (warm start), then ``pi_{k+1} = softmax(Q / alpha)``.
   ``K = 1`` is the paper's single loop and equals one step of the joint soft
   Bellman operator (``mairl.solvers.soft_bellman_operator``); ``K -> infinity``
   is exact soft policy iteration.
2. reward step: for each agent, the gradient of its own log-likelihood in its
   marginal game, the others held at ``pi_{k+1}``:
   ``g_i = (1 / alpha) sum_{s, a} (w_i(s, a) - d_i(s, a)) phi_i(s, a) - l2 theta_i``,
   one Adam (or SGD) step on ``theta_i``.

``w_i`` is the expert's state-action occupancy of agent ``i`` (normalized to sum
to one) and ``d_i`` the learner's, ``d_i(s, a) = D_i(s) pi_i(a|s)``. Where the
learner's state occupancy ``D_i`` starts is ``start``:

- ``"data"`` (default): from the start measure the expert data implies,
  ``mu_i(s') = w(s') - gamma sum_{s, a} w_i(s, a) P_i^pi(s'|s, a) (1 - terminal(s'))``,
  ``D_i = mu_i^T (I - gamma P_pi)^-1`` with ``P_pi(s, s') = sum_a pi_i(a|s)
  P_i^pi(s'|s, a) (1 - terminal(s'))``. Then ``g_i`` is the exact gradient of
  the weighted log-likelihood ``sum_{s, a} w_i(s, a) log pi_i(a|s)`` for *any*
  non-negative ``w_i``: for the exact discounted occupancy in the expert's own
  marginal game (``mu = (1 - gamma) rho / Z``) it is Zeng et al.'s gradient; for the
  frequencies counted from sampled, truncated, undiscounted episodes it is the
  gradient of the demonstrations' own log-likelihood ``sum_n log pi(a_n|s_n)``,
  whose state frequencies would otherwise disagree with any discounted
  occupancy from ``rho`` by the sampling noise and the discounting.
- ``"initial"``: from the game's initial distribution ``rho``, the occupancy
  ``mairl.solvers.state_occupancy`` (normalized), as in the paper. Same
  stationary points as ``"data"`` on exact occupancies (and the same gradient
  once the others play the expert's policies, without terminal states); on
  counted data, whose state frequencies are undiscounted, it has no stationary
  point and drifts.

At a stationary point without ``l2`` (tabular rewards) ``w_i = d_i`` for every
agent, so the learned policies equal the expert's action distributions on the
states the expert visits, and ``pi`` is the logit equilibrium of the learned
rewards; the rewards then equal the expert's marginal rewards up to potential
shaping when the expert is itself a logit equilibrium at the same ``alpha`` and
``gamma``. ``docs/ml_irl.md`` derives this.

Terminal states: entering one ends the episode, so no value is bootstrapped from
it (as in ``mairl.solvers``) and it carries no occupancy.

Axes: agent first; ``N`` agents, ``S`` states, ``A`` actions per agent (equal for
all agents), ``F`` features.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mairl.data import Demonstrations
from mairl.solvers import (
    boltzmann_policy,
    expected_next_value,
    marginal_transitions,
    state_occupancy,
)

__all__ = [
    "MLIRLConfig",
    "MLIRLResult",
    "MLIRLTrace",
    "demonstration_occupancy",
    "learner_occupancy",
    "likelihood_gradient",
    "ml_irl",
    "ml_irl_from_tensors",
    "soft_policy_evaluation",
]

START = ("data", "initial")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class MLIRLConfig:
    """Options of tabular multi-agent ML-IRL.

    Attributes:
        alpha: temperature of the learner's Boltzmann policies (the expert's, for
            reward recovery up to shaping).
        gamma: discount in ``[0, 1)`` (the expert's, for reward recovery).
        learning_rate: step size of the reward optimizer.
        optimizer: ``"adam"`` or ``"sgd"`` on the reward parameters (ascent).
        evaluation_sweeps: soft policy-evaluation sweeps per iteration
            (``1``: the paper's single loop).
        iterations: policy and reward steps.
        l2: weight of ``(l2 / 2) ||theta_i||^2`` subtracted from each agent's
            log-likelihood.
        start: where the learner's occupancy starts: ``"data"`` (the start
            measure implied by the expert data; exact likelihood gradient) or
            ``"initial"`` (the game's initial distribution); module docstring.
    """

    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 0.05
    optimizer: Literal["adam", "sgd"] = "adam"
    evaluation_sweeps: int = 1
    iterations: int = 5000
    l2: float = 0.0
    start: Literal["data", "initial"] = "data"

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"alpha: expected a positive temperature, got {self.alpha}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma: expected a discount in [0, 1), got {self.gamma}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: expected a positive step, got {self.learning_rate}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("evaluation_sweeps", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not self.l2 >= 0:
            raise ValueError(f"l2: expected a non-negative weight, got {self.l2}")
        if self.start not in START:
            raise ValueError(f"start: expected one of {START}, got {self.start!r}")


class MLIRLTrace(NamedTuple):
    """Per-iteration figures, ``(iterations, N)``, of the policy ``pi_{k+1}`` the
    reward step of iteration ``k`` used.

    Attributes:
        log_likelihood: ``sum_{s, a} w_i(s, a) log pi_i(a|s)``, the expert's
            expected log-likelihood per (occupancy-weighted) step.
        policy_kl: ``sum_s w(s) KL(pi_hat_i(.|s) || pi_i(.|s))``, the KL from the
            expert's action distribution ``pi_hat_i = w_i(s, .) / w(s)``; the
            log-likelihood's gap to its maximum.
        grad_norm: Euclidean norm of the reward gradient ``g_i`` (with ``l2``).
    """

    log_likelihood: Any
    policy_kl: Any
    grad_norm: Any


class MLIRLResult(NamedTuple):
    """What tabular ML-IRL learned.

    Attributes:
        reward: ``(N, S, A)`` learned ``r_i(s, a_i)``, comparable with the
            expert's marginal reward up to shaping.
        theta: reward parameters, ``(N, S, A)`` (tabular) or ``(N, F)``.
        q: ``(N, S, A)`` the learner's marginal soft-Q after the last policy step.
        policy: ``(N, S, A)`` ``softmax(q / alpha)``.
        trace: :class:`MLIRLTrace`.
    """

    reward: Any
    theta: Any
    q: Any
    policy: Any
    trace: MLIRLTrace


# -- building blocks -------------------------------------------------------------------------------
def soft_policy_evaluation(
    q: jax.Array,
    rewards: jax.Array,
    transitions: jax.Array,
    terminal: jax.Array | None,
    alpha: float | jax.Array,
    gamma: float | jax.Array,
    sweeps: int,
) -> jax.Array:
    """``sweeps`` soft policy-evaluation sweeps of ``pi = softmax(q / alpha)`` from ``q``.

    ``Q_i <- r_i + gamma sum_s' P_i^pi(s'|s, a) (1 - terminal(s')) V_i^pi(s')``,
    ``V_i^pi(s) = sum_a pi_i(a|s) (Q_i(s, a) - alpha log pi_i(a|s))``, with ``pi``
    (and so every agent's marginal game) fixed at the policy of the input ``q``.
    The first sweep is the soft Bellman operator ``T(q)``
    (``mairl.solvers.soft_bellman_operator``), since ``V^pi`` of the Boltzmann
    policy of ``q`` is ``q``'s soft value.

    Args:
        q: ``(N, S, A)``.
        rewards: ``(N, S, A)`` per-agent ``r_i(s, a_i)``.
        transitions: ``(S, A, ..., A, S')`` with ``N`` action axes.
        terminal: bool ``(S',)`` or ``None``.
        sweeps: a static positive integer.
    """
    pi = boltzmann_policy(q, alpha)
    alpha_log_pi = alpha * jax.nn.log_softmax(q / alpha, axis=-1)
    trans = marginal_transitions(transitions, pi)  # (N, S, A, S')

    def sweep(q, _):
        v = jnp.sum(pi * (q - alpha_log_pi), axis=-1)  # (N, S)
        return rewards + gamma * expected_next_value(trans, v, terminal), None

    q, _ = jax.lax.scan(sweep, q, None, length=sweeps)
    return q


def learner_occupancy(
    policy: jax.Array,
    expert_occupancy: jax.Array,
    transitions: jax.Array,
    initial: jax.Array,
    terminal: jax.Array | None,
    gamma: float | jax.Array,
    start: str = "data",
) -> jax.Array:
    """The learner's state-action occupancy ``d_i(s, a) = D_i(s) pi_i(a|s)``, ``(N, S, A)``.

    ``start="data"``: ``D_i = mu_i^T (I - gamma P_pi)^-1`` from the start measure
    implied by ``expert_occupancy`` ``w (N, S, A)`` in agent ``i``'s marginal
    game, ``mu_i = w(.) - gamma sum_{s, a} w_i(s, a) P_i^pi(.|s, a) (1 - terminal)``
    (a signed measure for counted data). ``start="initial"``:
    ``mairl.solvers.state_occupancy`` from ``initial`` (normalized), shared by all
    agents. See the module docstring.
    """
    if start == "initial":
        d = state_occupancy(transitions, initial, policy, gamma, terminal)  # (S,)
        return d[None, :, None] * policy
    if start != "data":
        raise ValueError(f"start: expected one of {START}, got {start!r}")
    num_states = policy.shape[1]
    if terminal is None:
        terminal = jnp.zeros(num_states, bool)
    keep = 1.0 - jnp.asarray(terminal).astype(policy.dtype)  # (S',)
    trans = marginal_transitions(transitions, policy) * keep  # (N, S, A, S')
    mu = expert_occupancy.sum(-1) - gamma * jnp.einsum("nsa,nsat->nt", expert_occupancy, trans)
    p_pi = jnp.einsum("nsa,nsat->nst", policy, trans)  # (N, S, S'), equal over agents
    eye = jnp.eye(num_states, dtype=policy.dtype)
    lhs = jnp.swapaxes(eye - gamma * p_pi, -1, -2)
    d = jnp.linalg.solve(lhs, mu[..., None])[..., 0]  # (N, S)
    return d[..., None] * policy


def likelihood_gradient(
    expert_occupancy: jax.Array, learner_occupancy: jax.Array, alpha: float | jax.Array
) -> jax.Array:
    """``(w_i - d_i) / alpha`` ``(N, S, A)``: the gradient of agent ``i``'s
    log-likelihood with respect to its tabular reward ``r_i(s, a)`` (with
    features, contract it with ``phi_i(s, a)``)."""
    return (expert_occupancy - learner_occupancy) / alpha


# -- the learner -----------------------------------------------------------------------------------
def _optimizer(config: MLIRLConfig) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    return optax.sgd(config.learning_rate)


@partial(jax.jit, static_argnames=("config",))
def _run(transitions, initial, terminal, occupancy, features, config: MLIRLConfig):
    """The jitted single loop (``lax.scan`` over iterations); validated inputs."""
    num_agents, num_states, num_actions = occupancy.shape
    alpha, gamma = config.alpha, config.gamma
    tabular = features is None
    state_weights = occupancy.sum(-1, keepdims=True)  # (N, S, 1)
    data_policy = occupancy / jnp.where(state_weights > 0, state_weights, 1.0)
    log_data = jnp.where(occupancy > 0, jnp.log(jnp.where(occupancy > 0, data_policy, 1.0)), 0.0)
    best_log_likelihood = jnp.sum(occupancy * log_data, axis=(1, 2))  # (N,)

    def reward_of(theta):
        return theta if tabular else jnp.einsum("nsaf,nf->nsa", features, theta)

    theta = (jnp.zeros_like(occupancy) if tabular
             else jnp.zeros((num_agents, features.shape[-1]), occupancy.dtype))
    tx = _optimizer(config)

    def iteration(carry, _):
        theta, q, opt_state = carry
        q = soft_policy_evaluation(q, reward_of(theta), transitions, terminal, alpha, gamma,
                                   config.evaluation_sweeps)
        policy = boltzmann_policy(q, alpha)
        log_policy = jax.nn.log_softmax(q / alpha, axis=-1)
        d = learner_occupancy(policy, occupancy, transitions, initial, terminal, gamma,
                              config.start)
        grad_r = likelihood_gradient(occupancy, d, alpha)
        grad = grad_r if tabular else jnp.einsum("nsaf,nsa->nf", features, grad_r)
        grad = grad - config.l2 * theta
        updates, opt_state = tx.update(jax.tree.map(jnp.negative, grad), opt_state, theta)
        theta = optax.apply_updates(theta, updates)
        log_likelihood = jnp.sum(occupancy * log_policy, axis=(1, 2))
        trace = MLIRLTrace(
            log_likelihood=log_likelihood,
            policy_kl=best_log_likelihood - log_likelihood,
            grad_norm=jnp.sqrt(jnp.sum(grad.reshape(num_agents, -1) ** 2, axis=-1)),
        )
        return (theta, q, opt_state), trace

    q0 = jnp.zeros((num_agents, num_states, num_actions), occupancy.dtype)
    (theta, q, _), trace = jax.lax.scan(
        iteration, (theta, q0, tx.init(theta)), None, length=config.iterations
    )
    return MLIRLResult(reward=reward_of(theta), theta=theta, q=q,
                       policy=boltzmann_policy(q, alpha), trace=trace)


def ml_irl(
    game: Any,
    expert: Any,
    config: MLIRLConfig = MLIRLConfig(),
    *,
    features: Any = None,
) -> MLIRLResult:
    """Multi-agent ML-IRL on a tabular ``game`` from the expert's data.

    Args:
        game: anything with ``transitions``, ``initial`` and optionally
            ``terminal`` (``envs.tabular.TabularGame``); its rewards are not read.
        expert: the expert's per-agent state-action occupancy ``(N, S, A)`` (an
            array, or an object with ``.occupancy`` such as
            ``mairl.solvers.SoftVIResult``), or ``mairl.data.Demonstrations`` of
            the game, whose occupancy is counted by :func:`demonstration_occupancy`.
        config: :class:`MLIRLConfig`.
        features: optional reward features ``(S, A, F)`` shared or ``(N, S, A, F)``
            per agent (``r_i = phi_i . theta_i``); tabular rewards when ``None``.

    Returns:
        :class:`MLIRLResult`.
    """
    for attr in ("transitions", "initial"):
        if not hasattr(game, attr):
            raise TypeError(
                f"ml_irl: game {type(game).__name__} has no {attr!r} attribute "
                "(it needs transitions and initial tensors)"
            )
    if isinstance(expert, Demonstrations):
        transitions = np.asarray(game.transitions)
        expert = demonstration_occupancy(expert, transitions.shape[0], transitions.shape[1])
    return ml_irl_from_tensors(game.transitions, game.initial, expert, config,
                               terminal=getattr(game, "terminal", None), features=features)


def ml_irl_from_tensors(
    transitions: Any,
    initial: Any,
    expert_occupancy: Any,
    config: MLIRLConfig = MLIRLConfig(),
    *,
    terminal: Any = None,
    features: Any = None,
) -> MLIRLResult:
    """:func:`ml_irl` on the game's tensors: ``transitions (S, A, ..., A, S')``,
    ``initial (S,)``, optional bool ``terminal (S,)``; ``expert_occupancy
    (N, S, A)`` (or an object with ``.occupancy``), normalized per agent inside.

    Computes in float32 (float64 under ``jax.enable_x64``). Raises ``ValueError``
    naming the field for inconsistent shapes, negative or non-finite entries,
    an agent without occupancy, or per-agent occupancies whose state marginals
    differ (all agents share the states).
    """
    if not isinstance(config, MLIRLConfig):
        raise TypeError(f"config: expected an MLIRLConfig, got {type(config).__name__}")
    args = _validate(transitions, initial, terminal, expert_occupancy, features)
    dtype = jnp.zeros((), float).dtype  # float32, or float64 under x64
    args = [None if x is None else jnp.asarray(x, bool if i == 2 else dtype)
            for i, x in enumerate(args)]
    return _run(*args, config=config)


def _validate(transitions, initial, terminal, occupancy, features):
    P = np.asarray(transitions, np.float64)
    if P.ndim < 3 or P.shape[0] != P.shape[-1]:
        raise ValueError(
            f"transitions: expected shape (S, A_1, ..., A_N, S) with N >= 1, got {P.shape}"
        )
    num_agents, num_states = P.ndim - 2, P.shape[0]
    if len(set(P.shape[1:-1])) != 1:
        raise ValueError(
            f"transitions: tabular ML-IRL needs the same number of actions for every agent, "
            f"got action counts {tuple(P.shape[1:-1])}"
        )
    num_actions = P.shape[1]
    if not np.all(np.isfinite(P)) or np.any(P < 0):
        raise ValueError("transitions: expected finite, non-negative probabilities")
    if not np.allclose(P.sum(-1), 1.0, atol=1e-5):
        raise ValueError("transitions: every P[s, a, :] must sum to one")
    rho = np.asarray(initial, np.float64)
    if rho.shape != (num_states,):
        raise ValueError(f"initial: expected shape (S,) = ({num_states},), got {rho.shape}")
    if not np.all(np.isfinite(rho)) or np.any(rho < 0) or not np.isclose(rho.sum(), 1.0,
                                                                          atol=1e-5):
        raise ValueError("initial: expected a probability vector")
    if terminal is None:
        term = np.zeros(num_states, bool)
    else:
        term = np.asarray(terminal)
        if term.shape != (num_states,):
            raise ValueError(f"terminal: expected a bool mask (S,) = ({num_states},), "
                             f"got shape {term.shape}")
        term = term.astype(bool)
    if hasattr(occupancy, "occupancy"):
        occupancy = occupancy.occupancy
    w = np.asarray(occupancy, np.float64)
    expected = (num_agents, num_states, num_actions)
    if w.shape != expected:
        raise ValueError(f"expert_occupancy: expected shape (N, S, A) = {expected}, got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("expert_occupancy: expected finite, non-negative entries")
    totals = w.sum(axis=(1, 2))
    if np.any(totals <= 0):
        raise ValueError(f"expert_occupancy: agent(s) {np.flatnonzero(totals <= 0).tolist()} "
                         "have no occupancy (all zeros)")
    w = w / totals[:, None, None]
    marginals = w.sum(-1)
    if np.max(np.abs(marginals - marginals[0])) > 1e-4:
        raise ValueError(
            "expert_occupancy: the agents' state marginals sum_a w_i(s, a) differ (largest gap "
            f"{np.max(np.abs(marginals - marginals[0])):.2e}); all agents share one state "
            "distribution"
        )
    phi = None
    if features is not None:
        phi = np.asarray(features, np.float64)
        if phi.ndim == 3:
            phi = np.broadcast_to(phi, (num_agents, *phi.shape))
        if phi.ndim != 4 or phi.shape[:3] != expected or phi.shape[-1] < 1:
            raise ValueError(
                f"features: expected (S, A, F) or (N, S, A, F) with (N, S, A) = {expected}, "
                f"got {np.shape(features)}"
            )
        if not np.all(np.isfinite(phi)):
            raise ValueError("features: contains non-finite values")
    return [P, rho, term, w, phi]


# -- expert data -----------------------------------------------------------------------------------
def demonstration_occupancy(
    demos: Demonstrations, num_states: int, num_actions: int | None = None
) -> np.ndarray:
    """Empirical per-agent state-action frequencies ``(N, S, A)`` of tabular demonstrations.

    ``w_i(s, a) = (1 / T) #{t : s_t = s, a_{t, i} = a}`` over all ``T`` recorded
    transitions, the state read from agent 0's observation: one-hot ``(S,)``
    (``obs_mode="onehot"`` of ``envs.tabular.TabularGame``) or the index ``(1,)``
    (``obs_mode="index"``). Every step counts once, undiscounted; with
    ``MLIRLConfig(start="data")`` ML-IRL then ascends the demonstrations' own
    log-likelihood.

    Args:
        demos: discrete-action demonstrations of a tabular game.
        num_states: ``S``.
        num_actions: ``A`` (default ``demos.num_actions``, else the largest
            action + 1).
    """
    if not isinstance(demos, Demonstrations):
        raise TypeError(f"demos: expected mairl.data.Demonstrations, got {type(demos).__name__}")
    obs = np.asarray(demos.obs)
    actions = np.asarray(demos.actions)
    if actions.ndim != 2 or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"demos.actions: expected discrete actions (T, N), got {actions.shape} "
                         f"of {actions.dtype}")
    if obs.ndim != 3:
        raise ValueError(f"demos.obs: expected tabular observations (T, N, S) or (T, N, 1), "
                         f"got shape {obs.shape}")
    rows = obs[:, 0]
    if rows.shape[-1] == num_states and num_states > 1:
        states = rows.argmax(-1)
        if not (np.all((rows == 0) | (rows == 1)) and np.all(rows.sum(-1) == 1)):
            raise ValueError("demos.obs: expected one-hot state observations")
    elif rows.shape[-1] == 1:
        states = np.rint(rows[:, 0]).astype(np.int64)
        if np.any(states < 0) or np.any(states >= num_states) or np.any(states != rows[:, 0]):
            raise ValueError(f"demos.obs: expected state indices in 0 .. {num_states - 1}")
    else:
        raise ValueError(f"demos.obs: expected observations of size {num_states} (one-hot) or 1 "
                         f"(index), got {rows.shape[-1]}")
    if num_actions is None:
        num_actions = demos.num_actions if demos.num_actions else int(actions.max()) + 1
    if np.any(actions < 0) or np.any(actions >= num_actions):
        raise ValueError(f"demos.actions: expected actions in 0 .. {num_actions - 1}")
    num_steps, num_agents = actions.shape
    counts = np.zeros((num_agents, num_states, num_actions))
    agents = np.broadcast_to(np.arange(num_agents), actions.shape)
    np.add.at(counts, (agents, np.broadcast_to(states[:, None], actions.shape), actions), 1.0)
    return counts / num_steps
