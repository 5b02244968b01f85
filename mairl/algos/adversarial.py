"""Adversarial and likelihood IRL on one forward learner: MA-GAIL, MA-AIRL, ML-IRL.

All three alternate, every update, a step of the policy and a step of a learned
per-agent reward. The policy step is one update of multi-agent soft Q-learning
(:func:`mairl.algos.soft_q.make_soft_q`: one env step of every environment with
the agents' Boltzmann policies into a replay buffer, one Adam step on every
marginal critic ``Q_i(s, a_i)``), with the Bellman target's reward computed
from the *current* reward parameters on the sampled transitions (the learner's
``reward_fn`` hook) instead of the env's reward, which is never stored. Each
agent's critic learns against the others' current policies, because they
share the environments. The reward step is one Adam step on every agent's
reward parameters, from ``reward_batch_size`` expert transitions and as many
of the learner's own transitions, drawn among the ``policy_window`` most
recent ones in the buffer (samples of the current policies, not of old ones).
Every per-agent network (critics, discriminators, rewards, potentials) is a
preset of ``mairl.networks`` (``tabular``, ``mlp``, ``cnn``, ...), stacked on
the agent axis and applied with ``jax.vmap``.

Soft Q-learning at temperature ``alpha`` on a reward ``r`` maximises
``E[sum_t gamma^t (r_t - alpha log pi(a_t|s_t))]``; so a policy objective
``E[sum_t gamma^t (x_t - log pi)]`` (entropy weight 1, the AIRL form) is
optimised with the reward ``alpha * x``. Below, ``sigma`` is the logistic
function and ``D = sigma(logit)`` the probability that a transition is the
expert's.

**MA-GAIL** (Song et al. 2018, "Multi-Agent Generative Adversarial Imitation
Learning", decentralised form): one discriminator per agent on its own
state-action pair, ``logit_i(s, a_i)``, trained by logistic regression,

    L_D,i = -E_expert[log D_i(s, a_i)] - E_policy[log(1 - D_i(s, a_i))],

and the policy reward ``alpha * (log D_i - log(1 - D_i)) = alpha * logit_i(s, a_i)``
(the read-out ``algo.reward``). With the optimal discriminator ``logit_i =
log rho_E(s, a_i) / rho_pi(s, a_i)`` (occupancies): the policy minimises the
reverse KL between occupancies with an extra entropy bonus of weight ``alpha``
from soft Q-learning (GAIL's causal-entropy term); the logit tends to 0 as the
occupancies meet, so it is a training signal, not a recovered reward, and
theory gives it no relation to the true one.

**MA-AIRL** (Yu et al. 2019, "Multi-Agent Adversarial Inverse Reinforcement
Learning", decentralised form): per agent

    f_i(s, a_i, s') = g_i(s, a_i) + gamma (1 - terminated) h_i(s') - h_i(s),
    D_i = exp(f_i) / (exp(f_i) + pi_i(a_i|s)),   logit_i = f_i - log pi_i(a_i|s),

with ``pi_i`` the current Boltzmann policy of agent ``i``'s critic (held fixed
in the discriminator step). Only ``terminated`` zeroes ``h_i(s')``; a truncated
episode keeps it. ``L_D,i`` as above on these logits; the policy reward is
``alpha * (log D_i - log(1 - D_i)) + alpha log pi_i = alpha * f_i`` (the
``- log pi_i`` part is the entropy term soft Q-learning adds itself). The
recovered reward is ``alpha * g_i(s, a_i)`` (the read-out). What theory says
of it: when the learner's policies equal the experts' and the discriminators
are optimal, ``D_i = 1/2``, i.e. ``f_i(s, a_i, s') = log pi_E,i(a_i|s)`` for every
successor ``s'``; with ``alpha log pi_E,i = r_i + gamma E[V_i(s')|s, a_i] - V_i(s)``
(``r_i`` the true marginal reward, ``V_i`` the expert's soft value) this gives

    alpha g_i(s, a_i) = r_i(s, a_i) + gamma E[Phi_i(s')|s, a_i] - Phi_i(s),
    Phi_i = V_i - alpha h_i,

the true reward up to potential shaping in expected form, which the
shaping-aware correlation ignores. That optimum is exactly reachable when
``h_i`` can be constant over the successors of each ``(s, a_i)`` (e.g. ``h_i =
0``, ``g_i = log pi_E,i``); where the dynamics are stochastic the logistic fit
is an approximation. The AIRL paper's stronger claim (Fu et al. 2018, Thm
5.1: ``g`` equal to the reward up to a constant) needs a state-only ``g(s)``
and deterministic dynamics; neither holds here (the other agents' random
actions make every agent's dynamics stochastic), so ``g_i`` is compared up to
shaping, never up to a constant.

**ML-IRL** (Zeng et al. 2022, "Maximum-Likelihood Inverse Reinforcement
Learning with Finite-Time Guarantees", NeurIPS; the single-loop algorithm),
extended here to several agents; this extension is this library's (no
published multi-agent version exists). Agent ``i`` has a reward ``r_i(s, a_i)``
and, per update, (1) a soft policy-improvement step: the soft-Q step on
``r_i`` against the others' current policies, then (2) one gradient step on

    L_r,i = -(E_expert[r_i(s, a_i)] - E_policy[r_i(s, a_i)]) + l2 |theta_i|^2,

the stochastic gradient of the expert's log-likelihood under the soft-optimal
policy of ``r_i`` (Zeng et al., Lemma 1: the gradient of
``E_E[log pi_r]`` is ``E_E[grad r] - E_pi_r[grad r]`` over occupancies). The
read-out is ``r_i`` itself. What it converges to: a stationary point has
``E_E[grad r_i] = E_pi[grad r_i]``; for tabular rewards that is equality of
the sampled state-action distributions of expert and learner for every agent,
i.e. ``pi_i = pi_E,i`` on the states the expert visits; with every critic
soft-optimal for its ``r_i`` against the others, the profile is then a logit
equilibrium of the game with rewards ``r_i``, the expert's. Agent ``i``'s
marginal MDP (others at ``pi_E,-i``) is the expert's, and the rewards whose
soft-optimal policy there is ``pi_E,i`` at temperature ``alpha`` are the true
marginal reward ``r_i(s, a_i) = E_{a_-i ~ pi_E,-i} R_i(s, a)`` plus potential
shaping (plus anything on pairs the expert never visits). So ``r_i`` should
match the marginal reward up to shaping, which the shaping-aware correlation
measures; ``l2 > 0`` trades some of that for smaller rewards.

Optional regularisers: ``grad_penalty`` (MA-GAIL, MA-AIRL) adds
``c E_expert |grad_obs logit_i|^2`` (the zero-centred R1 penalty of Mescheder
et al. 2018, on the observations; for MA-AIRL on ``s`` and ``s'``); ``l2`` the
squared norm of the reward parameters.

Measured (random general-sum games, tabular critics): see
``docs/algorithms.md``, section "MA-GAIL, MA-AIRL and ML-IRL", for the figures
and the commands.

Axes: agent first, ``(agent, batch, ...)``; buffer items environments first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from mairl.algos.base import Algo, Batch, Needs
from mairl.algos.common import (
    ObsTransform,
    check_fields,
    l2_penalty,
    log_policy,
    make_optimizer,
    make_stacked_critic,
    stacked_optimizer_step,
)
from mairl.algos.soft_q import SoftQConfig, SoftQState, make_soft_q
from mairl.buffers import buffer_sample_recent
from mairl.data import Transition

__all__ = [
    "DiscriminatorConfig",
    "MAAIRLConfig",
    "MAGAILConfig",
    "MLIRLConfig",
    "RewardLearnerConfig",
    "RewardLearnerState",
    "airl_f",
    "airl_logits",
    "discriminator_loss",
    "make_ma_airl",
    "make_ma_gail",
    "make_ml_irl",
    "ml_irl_reward_loss",
]


# -- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewardLearnerConfig(SoftQConfig):
    """What MA-GAIL, MA-AIRL and ML-IRL share: the soft-Q policy step and the reward step.

    Attributes:
        alpha: Boltzmann temperature of the policies and of the soft value.
        gamma: discount.
        learning_rate: Adam step size of the soft-Q critics (the policy step).
        batch_size: replay transitions per soft-Q step.
        num_envs: environments stepped once per update.
        buffer_size: replay capacity, in transitions.
        tau: Polyak rate of the target critic (1: the target is the online critic).
        critic: network preset of the critics and of the reward networks
            (``mairl.networks.make_critic``).
        hidden: hidden widths of the ``mlp`` networks.
        max_grad_norm: per-agent gradient clipping of both steps; ``None`` for none.
        huber_delta: Huber threshold of the soft-Q regression; ``None`` for squares.
        warmup_steps: vectorized env steps with the initial policies that fill
            the buffer before the first update (jittable games only).
        reward_learning_rate: Adam step size of the reward (discriminator) step.
        reward_batch_size: expert transitions, and as many of the learner's own,
            per reward step.
        reward_every: one reward step every this many updates (policy steps).
        policy_window: the reward step's policy samples are drawn among this many
            most recent transitions of the buffer.
        l2: weight of the squared norm of the reward parameters.
    """

    reward_learning_rate: float = 3e-4
    reward_batch_size: int = 256
    reward_every: int = 1
    policy_window: int = 4096
    l2: float = 0.0

    def __post_init__(self):
        super().__post_init__()  # every field with a standard check (FIELD_CHECKS)
        check_fields(self, [
            ("reward_learning_rate", self.reward_learning_rate > 0, "> 0"),
            ("reward_batch_size", self.reward_batch_size >= 1, ">= 1"),
            ("reward_every", self.reward_every >= 1, ">= 1"),
            ("policy_window", self.policy_window >= 1, ">= 1"),
        ])

    @property
    def soft_q(self) -> SoftQConfig:
        """The policy step's config."""
        return SoftQConfig(**{f.name: getattr(self, f.name) for f in fields(SoftQConfig)})


@dataclass(frozen=True)
class DiscriminatorConfig(RewardLearnerConfig):
    """What MA-GAIL and MA-AIRL share: the fields of :class:`RewardLearnerConfig`, and

    Attributes:
        grad_penalty: weight of the R1 gradient penalty of the discriminators
            (0: none).
    """

    grad_penalty: float = 0.0


@dataclass(frozen=True)
class MAGAILConfig(DiscriminatorConfig):
    """MA-GAIL (decentralised): the fields of :class:`DiscriminatorConfig`."""

    name: ClassVar[str] = "ma-gail"
    kind: ClassVar[str] = "gail"


@dataclass(frozen=True)
class MAAIRLConfig(DiscriminatorConfig):
    """MA-AIRL (decentralised): the fields of :class:`DiscriminatorConfig`."""

    name: ClassVar[str] = "ma-airl"
    kind: ClassVar[str] = "airl"


@dataclass(frozen=True)
class MLIRLConfig(RewardLearnerConfig):
    """Multi-agent single-loop ML-IRL (this library's extension): the fields of
    :class:`RewardLearnerConfig`."""

    name: ClassVar[str] = "ml-irl"
    kind: ClassVar[str] = "ml-irl"


# -- losses -------------------------------------------------------------------------------------
def discriminator_loss(logits_expert: jax.Array, logits_policy: jax.Array) -> jax.Array:
    """Logistic regression of expert against policy samples, for one agent:
    ``-E_expert[log sigma(l)] - E_policy[log(1 - sigma(l))]``
    ``= mean softplus(-l_expert) + mean softplus(l_policy)``.

    Args:
        logits_expert: ``(B,)`` discriminator logits on expert transitions.
        logits_policy: ``(B',)`` on the learner's.
    """
    return jnp.mean(jax.nn.softplus(-logits_expert)) + jnp.mean(jax.nn.softplus(logits_policy))


def airl_f(g: jax.Array, h: jax.Array, h_next: jax.Array, terminated: jax.Array,
           gamma: float) -> jax.Array:
    """AIRL's ``f(s, a, s') = g(s, a) + gamma (1 - terminated) h(s') - h(s)``.

    Args:
        g: ``(..., B)`` ``g(s, a)`` at the actions taken; h, h_next: ``(..., B)``.
        terminated: ``(B,)`` bool; truncation keeps ``h(s')``.
    """
    cont = 1.0 - jnp.asarray(terminated, jnp.float32)
    return g + gamma * cont * h_next - h


def airl_logits(f: jax.Array, log_pi: jax.Array) -> jax.Array:
    """``log D - log(1 - D) = f - log pi(a|s)`` for ``D = exp(f) / (exp(f) + pi(a|s))``."""
    return f - log_pi


def ml_irl_reward_loss(r_expert: jax.Array, r_policy: jax.Array) -> jax.Array:
    """ML-IRL's reward loss for one agent: ``-(E_expert[r] - E_policy[r])`` (minimised,
    it raises the reward of expert pairs and lowers that of the learner's)."""
    return jnp.mean(r_policy) - jnp.mean(r_expert)


def _taken(values: jax.Array, actions: jax.Array) -> jax.Array:
    """``values (agent, B, A)`` at ``actions (agent, B)``: ``(agent, B)``."""
    return jnp.take_along_axis(values, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _agent_major(items: Transition) -> Transition:
    """Buffer items (environments first) as an agent-major batch."""
    return Transition(jnp.swapaxes(items.obs, 0, 1), items.actions.T,
                      jnp.swapaxes(items.next_obs, 0, 1), items.terminated, items.truncated)


# -- the learners -------------------------------------------------------------------------------
@struct.dataclass
class RewardLearnerState:
    """State of MA-GAIL, MA-AIRL and ML-IRL.

    ``policy``: the soft-Q learner's state (critics, target critics, optimizer,
    environments, replay buffer) with the reward parameters in
    ``policy.reward_params``, where its Bellman targets read them;
    ``reward_opt_state``: their optimizer states (agent axis first); ``step``:
    updates done. ``params`` (what evaluation reads): ``{"q": critics,
    "reward": reward parameters}``.
    """

    policy: SoftQState
    reward_opt_state: Any
    step: jax.Array

    @property
    def params(self) -> dict:
        """The parameters a run saves: the forward learner's critics (``q``) and the reward."""
        return {"q": self.policy.params, "reward": self.policy.reward_params}


def make_reward_learner(
    config: RewardLearnerConfig,
    *,
    num_agents: int,
    obs_shape: tuple[int, ...],
    num_actions: int,
    env: Any = None,
    obs_transform: ObsTransform | None = None,
) -> Algo:
    """MA-GAIL, MA-AIRL or ML-IRL (module docstring), as ``type(config)`` says.

    ``env``: the game the learners act in, jittable (trained by
    ``mairl.train.make_train``) or host-side (``mairl.train.train_host``,
    through ``algo.act`` / ``algo.store``); ``obs_transform(obs, agent)``: each
    agent's view of its observation, read by its critic and its reward networks.
    """
    kind = getattr(type(config), "kind", None)
    if kind not in ("gail", "airl", "ml-irl"):
        raise ValueError(f"make_reward_learner: expected an MAGAILConfig, MAAIRLConfig or "
                         f"MLIRLConfig, got {type(config).__name__}")
    if env is None:
        raise ValueError(f"{config.name}: needs an environment (env=...) to act in")
    obs_shape = tuple(obs_shape)
    alpha, gamma = config.alpha, config.gamma
    net = make_stacked_critic(config, num_actions, obs_shape, obs_transform)  # g_i, D_i or r_i
    apply = net.apply
    h_net = make_stacked_critic(config, 1, obs_shape, obs_transform) if kind == "airl" else None
    h_apply = h_net.apply if kind == "airl" else None
    tx = make_optimizer(config.reward_learning_rate, config.max_grad_norm)
    grad_penalty = getattr(config, "grad_penalty", 0.0)

    def f_value(rp, obs, actions, next_obs, terminated):
        """MA-AIRL's ``f_i (agent, B)``."""
        h = h_apply(rp["h"], jnp.concatenate([obs, next_obs], axis=1))[..., 0]
        b = obs.shape[1]
        return airl_f(_taken(apply(rp["g"], obs), actions), h[:, :b], h[:, b:], terminated,
                      gamma)

    def reward_fn(rp, obs, actions, next_obs, terminated):
        """The policy step's reward, ``(agent, B)``."""
        if kind == "gail":
            return alpha * _taken(apply(rp["d"], obs), actions)
        if kind == "airl":
            return alpha * f_value(rp, obs, actions, next_obs, terminated)
        return _taken(apply(rp["r"], obs), actions)

    soft = make_soft_q(config.soft_q, num_agents=num_agents, obs_shape=obs_shape,
                       num_actions=num_actions, env=env, obs_transform=obs_transform,
                       reward_fn=reward_fn)

    def reward(params: dict, obs: jax.Array) -> jax.Array:
        """The recovered reward for every own action, ``(agent, ..., action)``."""
        rp = params["reward"]
        if kind == "gail":
            return alpha * apply(rp["d"], obs)
        if kind == "airl":
            return alpha * apply(rp["g"], obs)
        return apply(rp["r"], obs)

    def logits(rp, q_params, t: Transition) -> jax.Array:
        """Discriminator logits ``(agent, B)`` on an agent-major batch."""
        if kind == "gail":
            return _taken(apply(rp["d"], t.obs), t.actions)
        log_pi = _taken(log_policy(soft.q_values(q_params, t.obs), alpha), t.actions)
        f = f_value(rp, t.obs, t.actions, t.next_obs, t.terminated)
        return airl_logits(f, jax.lax.stop_gradient(log_pi))

    def penalty(rp, t: Transition) -> jax.Array:
        """R1: ``E |grad_(s, s') logit_i|^2`` per agent, on ``t`` (``log pi`` held fixed)."""
        def total(obs, next_obs):
            if kind == "gail":
                return jnp.sum(_taken(apply(rp["d"], obs), t.actions))
            return jnp.sum(f_value(rp, obs, t.actions, next_obs, t.terminated))

        g_obs, g_next = jax.grad(total, argnums=(0, 1))(t.obs.astype(jnp.float32),
                                                        t.next_obs.astype(jnp.float32))
        sq = lambda g: jnp.sum(g.reshape(*g.shape[:2], -1) ** 2, axis=-1)  # noqa: E731
        return jnp.mean(sq(g_obs) + sq(g_next), axis=-1)  # (agent,)

    def reward_loss(rp, q_params, expert: Transition, policy: Transition):
        if kind == "ml-irl":
            r_e = _taken(apply(rp["r"], expert.obs), expert.actions)
            r_p = _taken(apply(rp["r"], policy.obs), policy.actions)
            losses = jax.vmap(ml_irl_reward_loss)(r_e, r_p)
            aux = {"expert_reward": jnp.mean(r_e, -1), "policy_reward": jnp.mean(r_p, -1)}
        else:
            l_e, l_p = logits(rp, q_params, expert), logits(rp, q_params, policy)
            losses = jax.vmap(discriminator_loss)(l_e, l_p)
            aux = {"expert_prob": jnp.mean(jax.nn.sigmoid(l_e), -1),
                   "policy_prob": jnp.mean(jax.nn.sigmoid(l_p), -1)}
            if grad_penalty > 0:
                gp = penalty(rp, expert)
                aux["grad_penalty"] = gp
                losses = losses + grad_penalty * gp
        total = jnp.sum(losses)
        if config.l2 > 0:
            total = total + config.l2 * l2_penalty(rp)
        aux["reward_loss"] = losses
        return total, aux

    def init_reward(key: jax.Array) -> dict:
        if kind == "airl":
            key_g, key_h = jax.random.split(key)
            return {"g": net.init(key_g, num_agents), "h": h_net.init(key_h, num_agents)}
        return {"d" if kind == "gail" else "r": net.init(key, num_agents)}

    def init(key: jax.Array, batch: Batch | None = None) -> RewardLearnerState:
        rp = init_reward(jax.random.fold_in(key, 1))
        policy = soft.init(key).replace(reward_params=rp)
        return RewardLearnerState(policy=policy, reward_opt_state=jax.vmap(tx.init)(rp),
                                  step=jnp.int32(0))

    def update(state: RewardLearnerState, batch: Batch, key: jax.Array):
        if batch is None or batch.expert is None:
            raise ValueError(f"{config.name}: update needs expert transitions (Batch.expert)")
        # (1) the policy step under the current reward; the key schedule of soft-Q
        policy, metrics = soft.update(state.policy, Batch(None), key)
        # (2) the reward step, on expert and recent policy transitions
        items = buffer_sample_recent(policy.buffer, jax.random.fold_in(key, 1),
                                     config.reward_batch_size, config.policy_window)
        rp = policy.reward_params
        grads, aux = jax.grad(reward_loss, has_aux=True)(rp, policy.params, batch.expert,
                                                         _agent_major(items))
        new_rp, new_opt = stacked_optimizer_step(tx, grads, state.reward_opt_state, rp)
        do = state.step % config.reward_every == 0
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(do, a, b), new, old)  # noqa: E731
        policy = policy.replace(reward_params=keep(new_rp, rp))
        state = RewardLearnerState(policy=policy,
                                   reward_opt_state=keep(new_opt, state.reward_opt_state),
                                   step=state.step + 1)
        return state, {**metrics, **aux}

    act = store = None
    if soft.act is not None:  # host-side game: train_host steps it

        def act(state: RewardLearnerState, obs: jax.Array, key: jax.Array) -> jax.Array:
            """Boltzmann actions ``(env, agent)`` for observations ``(env, agent, ...)``."""
            return soft.act(state.policy, obs, key)

        def store(state: RewardLearnerState, items: Transition) -> RewardLearnerState:
            """Add the host loop's transitions (env first) to the replay."""
            return state.replace(policy=soft.store(state.policy, items))

    needs = Needs(expert_batch=config.reward_batch_size, num_envs=config.num_envs)
    return Algo(name=config.name, init=init, update=update,
                q_values=lambda params, obs: soft.q_values(params["q"], obs), alpha=alpha,
                gamma=gamma, config=config, needs=needs, act=act, store=store, reward=reward)


def make_ma_gail(config: MAGAILConfig, **problem: Any) -> Algo:
    """MA-GAIL; ``problem``: the keywords of :func:`make_reward_learner`."""
    return make_reward_learner(config, **problem)


def make_ma_airl(config: MAAIRLConfig, **problem: Any) -> Algo:
    """MA-AIRL; ``problem``: the keywords of :func:`make_reward_learner`."""
    return make_reward_learner(config, **problem)


def make_ml_irl(config: MLIRLConfig, **problem: Any) -> Algo:
    """Multi-agent single-loop ML-IRL; ``problem``: the keywords of
    :func:`make_reward_learner`."""
    return make_reward_learner(config, **problem)
