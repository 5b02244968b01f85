"""Behavioural metrics: how closely learned policies imitate the experts.

- :func:`policy_kl`: ``E_{s ~ d_E} KL(pi_E(.|s) || pi(.|s))`` where the expert
  policy is known (tabular games and their oracles);
- :func:`action_accuracy` and :func:`log_likelihood`: on held-out
  demonstrations otherwise.

Axes: agent first. ``N`` agents, ``S`` states, ``A`` actions, ``T`` samples.
All functions are jitted and return ``(N,)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["action_accuracy", "log_likelihood", "policy_kl"]


@jax.jit
def policy_kl(
    expert_policy: jax.Array, learned_policy: jax.Array, state_weights: jax.Array
) -> jax.Array:
    """Per-agent state-weighted ``KL(pi_E || pi)``.

    ``KL_i = sum_s d(s) sum_a pi_E,i(a|s) (log pi_E,i(a|s) - log pi_i(a|s))``
    with ``d`` normalized to sum to one, and ``0 log 0 = 0``: actions the expert
    never takes contribute nothing (and no ``nan``, also in gradients). An
    action the expert takes but the learned policy gives probability zero
    makes the divergence ``inf``, as it should.

    Args:
        expert_policy: ``(N, S, A)``, rows summing to one.
        learned_policy: ``(N, S, A)``, rows summing to one.
        state_weights: ``(S,)`` shared or ``(N, S)`` per agent, non-negative,
            e.g. the expert's discounted state occupancy
            (``state_occupancy`` of ``mairl.solvers.soft_value_iteration``).

    Returns:
        ``(N,)``, non-negative.
    """
    expert_policy = jnp.asarray(expert_policy)
    learned_policy = jnp.asarray(learned_policy)
    if expert_policy.ndim != 3 or expert_policy.shape != learned_policy.shape:
        raise ValueError(
            "expert_policy and learned_policy: expected equal shapes (N, S, A), got "
            f"{expert_policy.shape} and {learned_policy.shape}"
        )
    n, num_states, _ = expert_policy.shape
    d = jnp.broadcast_to(jnp.asarray(state_weights, expert_policy.dtype), (n, num_states))
    d = d / jnp.sum(d, axis=-1, keepdims=True)
    support = expert_policy > 0
    log_e = jnp.log(jnp.where(support, expert_policy, 1.0))
    log_l = jnp.log(jnp.where(support, learned_policy, 1.0))
    per_state = jnp.sum(jnp.where(support, expert_policy * (log_e - log_l), 0.0), axis=-1)
    return jnp.sum(d * per_state, axis=-1)


@jax.jit
def heldout_kl(expert_logits: jax.Array, logits: jax.Array) -> jax.Array:
    """``KL(pi_E || pi)`` averaged over sampled states, per agent.

    The behavioural distance to a known expert where its occupancy cannot be
    enumerated: on held-out demonstration states (drawn from the expert's own
    occupancy), the mean over states of
    ``sum_a pi_E(a|s) (log pi_E(a|s) - log pi(a|s))``.

    Args:
        expert_logits: ``(N, B, A)`` the expert policy's logits (``Q_E / alpha_E``).
        logits: ``(N, B, A)`` the learned policy's logits (``Q / alpha``).

    Returns:
        ``(N,)``, non-negative; 0 when the policies agree on every state.
    """
    expert_logits = jnp.asarray(expert_logits)
    logits = jnp.asarray(logits)
    if expert_logits.shape != logits.shape or logits.ndim != 3:
        raise ValueError(f"expert_logits and logits: expected equal shapes (N, B, A), got "
                         f"{expert_logits.shape} and {logits.shape}")
    log_e = jax.nn.log_softmax(expert_logits, axis=-1)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    kl = jnp.sum(jnp.exp(log_e) * (log_e - log_p), axis=-1)
    return jnp.maximum(jnp.mean(kl, axis=-1), 0.0)


def _check_samples(logits: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = jnp.asarray(logits)
    actions = jnp.asarray(actions)
    if logits.ndim != 3 or actions.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (N, T, A) and actions (N, T), got {logits.shape} and {actions.shape}"
        )
    return logits, actions.astype(jnp.int32)


@jax.jit
def action_accuracy(logits_or_policy: jax.Array, actions: jax.Array) -> jax.Array:
    """Per-agent fraction of samples where the most likely action is the demonstrated one.

    Args:
        logits_or_policy: ``(N, T, A)`` logits, log-probabilities or
            probabilities (only the argmax matters; ties go to the lowest index).
        actions: ``(N, T)`` int demonstrated actions (agent-major, e.g.
            ``mairl.data.Transition.actions``).

    Returns:
        ``(N,)`` in ``[0, 1]``.
    """
    logits, actions = _check_samples(logits_or_policy, actions)
    return jnp.mean(jnp.argmax(logits, axis=-1) == actions, axis=-1)


@jax.jit
def log_likelihood(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """Per-agent mean log-likelihood of demonstrated actions, ``mean_t log pi_i(a_t|s_t)``.

    ``pi = softmax(logits)``. For a policy given as probabilities pass
    ``jnp.log(policy)``: ``log_softmax`` leaves normalized log-probabilities
    unchanged. For MAMQL's Boltzmann policies the logits are ``Q / alpha``.

    Args:
        logits: ``(N, T, A)``.
        actions: ``(N, T)`` int.

    Returns:
        ``(N,)``, non-positive (``-inf`` for an action of probability zero).
    """
    logits, actions = _check_samples(logits, actions)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.mean(jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0], axis=-1)
