"""Evaluation of a learner inside the jitted run: returns, behaviour, reward recovery.

``make_eval_fn(algo, env, oracle=...)`` returns ``eval_fn(params, key, held) -> dict``
of per-agent arrays ``(agent,)``, traced into the training program (``held`` =
``heldout_batch(heldout_demos)``):

- ``return``: mean true return of the learned Boltzmann policies over
  ``episodes`` vmapped episodes (jittable envs only);
- ``action_accuracy``, ``imitation_mse``, ``reward_pearson_sampled`` and
  ``reward_shaping_corr_sampled`` on held-out demonstrations (true rewards read
  for evaluation only);
- with a tabular ``oracle`` (the exact expert, ``mairl.solvers``): ``policy_kl``
  under the expert occupancy, and the recovered reward
  ``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) V_i(s')`` (expected
  next value, ``P_i`` the expert's marginal dynamics) against the true marginal
  reward: ``reward_shaping_corr`` (weighted by the expert occupancy),
  ``reward_pearson``, ``reward_spearman`` and ``reward_epic`` (on the transition
  form ``Q_i(s, a_i) - gamma V_i(s')``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mairl import metrics
from mairl.algos.base import Algo
from mairl.algos.common import sample_actions, soft_value
from mairl.data import Demonstrations, to_agent_major


def policy_fn_of(algo: Algo, params: Any, greedy: bool = False):
    """``policy_fn(key, obs (agent, *obs_shape)) -> actions (agent,)``."""

    def policy_fn(key, obs):
        return sample_actions(key, algo.q_values(params, obs), algo.alpha, greedy)

    return policy_fn


def sampled_reward(algo: Algo, params: Any, batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``r_hat (agent, B)`` on transitions, with ``V(s)`` and ``V(s')`` ``(agent, B)``."""
    q = algo.q_values(params, batch.obs)
    v = soft_value(q, algo.alpha)
    v_next = soft_value(algo.q_values(params, batch.next_obs), algo.alpha)
    q_taken = jnp.take_along_axis(q, batch.actions[..., None], axis=-1)[..., 0]
    not_term = 1.0 - batch.terminated.astype(jnp.float32)
    return q_taken - algo.gamma * not_term * v_next, v, v_next


def tabular_reward(algo: Algo, params: Any, oracle, num_agents: int):
    """Recovered ``(agent, S, A)`` expected-form and ``(agent, S, A, S')`` transition-form."""
    num_states = oracle.q.shape[1]
    states = jnp.broadcast_to(jnp.eye(num_states, dtype=jnp.float32),
                              (num_agents, num_states, num_states))
    q = algo.q_values(params, states)  # (agent, S, A)
    v = soft_value(q, algo.alpha)  # (agent, S)
    expected = q - algo.gamma * jnp.einsum("nsat,nt->nsa", oracle.marginal_transitions, v)
    transition_form = q[..., None] - algo.gamma * v[:, None, None, :]
    return q, expected, transition_form


def _after(held, done: jax.Array):
    """``held`` with its observations made to depend on ``done`` (adding an exact 0).

    Both shaping-aware correlations run a batched SVD, which XLA's CPU runtime
    fans out onto the thread pool it already runs on: two at once deadlock a
    two-thread pool. The runtime orders operations by the buffers they read and
    write, so the second SVD is made to read a buffer the first one produced.
    """
    zero = jnp.isnan(jnp.sum(done)).astype(held.obs.dtype) * 0.0
    return held._replace(obs=held.obs + zero, next_obs=held.next_obs + zero)


def heldout_batch(heldout: Demonstrations, max_transitions: int = 2048):
    """The first ``max_transitions`` held-out transitions, agent axis first, with their
    true rewards (read by evaluation only). Passed to ``eval_fn`` as an argument,
    not closed over, so the compiler does not fold it into the program."""
    if heldout.rewards is None:
        raise ValueError("held-out demonstrations need true rewards for evaluation")
    n = min(heldout.num_transitions, max_transitions)
    return to_agent_major(jax.tree.map(lambda x: x[:n], heldout), with_rewards=True)


def make_eval_fn(
    algo: Algo,
    env: Any,
    *,
    oracle: Any = None,
    episodes: int = 64,
):
    """``eval_fn(params, key, held)`` (see the module docstring); ``held`` is
    ``heldout_batch(...)`` or ``None``. ``oracle`` must hold float32-convertible
    arrays."""
    orc = None
    if oracle is not None:
        orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), oracle)
    jittable = getattr(env, "jittable", True) if env is not None else False
    num_agents = env.num_agents if env is not None else None

    def eval_fn(params, key, held=None) -> dict:
        out = {}
        if jittable:
            returns = metrics.evaluate_returns(key, env, policy_fn_of(algo, params), episodes)
            out["return"] = returns.mean(axis=0)
        if orc is not None:
            q, r_exp, r_trans = tabular_reward(algo, params, orc, num_agents)
            learned = jax.nn.softmax(q / algo.alpha, axis=-1)
            out["policy_kl"] = metrics.policy_kl(orc.policy, learned, orc.state_occupancy)
            true = orc.marginal_rewards
            out["reward_shaping_corr"] = metrics.shaping_aware_correlation_per_agent(
                r_exp, true, orc.marginal_transitions, algo.gamma, orc.occupancy
            )
            out["reward_pearson"] = metrics.pearson(r_exp, true)
            out["reward_spearman"] = metrics.spearman(r_exp, true)
            out["reward_epic"] = metrics.epic_distance(
                r_trans, true, orc.marginal_transitions, algo.gamma
            )
        if held is not None:
            if orc is not None:
                held = _after(held, out["reward_shaping_corr"])
            r_hat, v, v_next = sampled_reward(algo, params, held)
            q = algo.q_values(params, held.obs)
            out["action_accuracy"] = metrics.action_accuracy(q, held.actions)
            out["imitation_mse"] = metrics.imitation_mse(
                held.rewards, v, v_next, held.terminated, algo.gamma
            )
            out["reward_pearson_sampled"] = metrics.pearson(r_hat, held.rewards)
            feats = held.obs[0].reshape(held.obs.shape[1], -1)
            next_feats = held.next_obs[0].reshape(held.obs.shape[1], -1)
            out["reward_shaping_corr_sampled"] = metrics.shaping_aware_correlation_sampled(
                r_hat, held.rewards, feats, next_feats, held.terminated, algo.gamma, ridge=1e-3
            )
        return out

    return eval_fn
