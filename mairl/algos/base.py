"""What every algorithm exposes, and the batch layout it consumes.

An algorithm is a pair of pure functions plus read-outs of what it learned::

    state = algo.init(key, example_batch)
    state, metrics = algo.update(state, batch, key)     # jit-able, no host sync
    q = algo.q_values(state.params, obs)                # (agent, ..., action)

``q_values`` returns each agent's marginal soft-Q ``Q_i(s, a_i)`` (for behaviour
cloning and PPO: its logits times ``alpha``), so that every algorithm has the
same Boltzmann policy ``pi_i(a_i|s) ∝ exp(Q_i(s, a_i) / alpha)`` and the same
recovered reward ``r_i(s, a_i) = Q_i(s, a_i) - gamma * E[V_i(s')]``.

Algorithms that learn a reward function of their own (MA-AIRL's ``g_i``,
ML-IRL's ``r_i``, MA-GAIL's discriminator logit) also expose it,
``algo.reward(params, obs) -> (agent, ..., action)``, and that read-out, not
the one derived from ``q_values``, is their recovered reward wherever a run
reports one (``mairl.evaluation.tabular_reward``, ``mairl.runs.Run.reward``).

Every learner state has a ``params`` field (the parameters ``q_values`` reads).

Continuous actions (``Box`` spaces, ``actions (agent, ..., action_dim)``) have no
table of Q-values: those learners read out their policy directly,
``algo.policy(params, obs, key, greedy) -> actions``, its density
``algo.log_prob(params, obs, actions)``, and, where they learn a soft-Q,
``algo.critic(params, obs, actions) -> Q_i(s, a_i)``; their ``q_values`` raises.
``algo.continuous`` tells the two kinds apart.
``algo.needs`` says what the learner consumes, so that callers never read its
config to find out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from mairl.data import Transition


class Batch(NamedTuple):
    """What one update consumes: expert transitions (``mairl.data.Transition``, agent
    axis first, true rewards left out) and, where ``needs.init_obs``, initial
    observations ``init_obs (agent, batch, *obs_shape)`` of demonstrated episodes.

    Forward learners, which need no demonstrations, get ``Batch(None)``.
    """

    expert: Transition | None
    init_obs: jax.Array | None = None


class Needs(NamedTuple):
    """What an algorithm consumes.

    Attributes:
        expert_batch: expert transitions per update (0: learns without
            demonstrations, e.g. a forward learner on the true rewards).
        init_obs: also first observations of demonstrated episodes (``v0``).
        num_envs: environments it steps once per update (online learners; they
            come from the ``env=`` argument of its ``make_*``); 0 for none.
        rewards: learns from the environment's true rewards (forward learners):
            never an inverse-RL algorithm.
        raw_obs: reads every agent's raw observations besides each critic's own
            view (a mixer's global state, ``fiq``), so the views of its data
            cannot be computed ahead of training in place of the observations.
    """

    expert_batch: int = 0
    init_obs: bool = False
    num_envs: int = 0
    rewards: bool = False
    raw_obs: bool = False


class Algo(NamedTuple):
    """An algorithm: pure functions over its state, and what it needs.

    Attributes:
        name: registry name (``mairl.algos.ALGOS``).
        init: ``init(key, example_batch) -> state``.
        update: ``update(state, batch, key) -> (state, metrics)``; metrics are
            arrays, per agent where they differ per agent.
        q_values: ``q_values(params, obs (agent, ..., *obs_shape)) -> (agent, ..., action)``.
        alpha: Boltzmann temperature of the policy read from ``q_values``.
        gamma: discount of the recovered reward.
        config: the algorithm's frozen config (for records; callers read ``needs``).
        needs: what the algorithm consumes (:class:`Needs`).
        act, store: online learners on host-side envs: ``act(state, obs, key) ->
            actions (env, agent)`` and ``store(state, transitions) -> state``,
            called by the host loop of ``mairl.train.train_host``; ``None`` otherwise.
        reward: ``reward(params, obs (agent, ..., *obs_shape)) -> (agent, ..., action)``,
            the learned reward ``r_i(s, a_i)`` for every own action, for
            algorithms that learn one explicitly; ``None``: the recovered reward
            is derived from ``q_values``, ``Q_i(s, a_i) - gamma E[V_i(s')]``.
        policy: continuous learners: ``policy(params, obs (agent, ..., *obs_shape), key,
            greedy) -> actions (agent, ..., action_dim)``, a draw of each agent's
            policy (``greedy``: its mode); ``None`` for discrete learners, whose
            policy is the Boltzmann policy of ``q_values``.
        log_prob: continuous learners: ``log_prob(params, obs, actions) -> (agent, ...)``,
            ``log pi_i(a_i|s)``.
        critic: continuous learners with a soft-Q critic: ``critic(params, obs,
            actions) -> (agent, ...)``, ``Q_i(s, a_i)``; ``None`` otherwise.
    """

    name: str
    init: Callable[[jax.Array, Batch], Any]
    update: Callable[[Any, Batch, jax.Array], tuple[Any, dict]]
    q_values: Callable[[Any, jax.Array], jax.Array]
    alpha: float
    gamma: float
    config: Any
    needs: Needs = Needs()
    act: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None
    store: Callable[[Any, Any], Any] | None = None
    reward: Callable[[Any, jax.Array], jax.Array] | None = None
    policy: Callable[[Any, jax.Array, jax.Array, bool], jax.Array] | None = None
    log_prob: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None
    critic: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None

    @property
    def continuous(self) -> bool:
        """Whether the learner acts in continuous (``Box``) action spaces."""
        return self.policy is not None


def no_q_table(name: str) -> Callable[[Any, jax.Array], jax.Array]:
    """``q_values`` of a continuous learner: raises, naming the read-outs to use."""

    def q_values(params: Any, obs: jax.Array) -> jax.Array:
        raise ValueError(f"{name}: continuous actions have no table of Q-values; use "
                         "algo.critic(params, obs, actions) or algo.policy(params, obs, key)")

    return q_values
