"""Evaluation of a learner inside the jitted run: returns, behaviour, reward recovery.

``make_eval_fn(algo, env, oracle=..., expert_logits=...)`` returns
``eval_fn(params, key, held) -> dict`` of per-agent arrays ``(agent,)``, traced
into the training program (``held`` = ``heldout_batch(heldout_demos)``):

- ``return``: mean true return of the learned Boltzmann policies over
  ``episodes`` vmapped episodes (jittable envs only);
- behaviour on held-out demonstrations: ``action_accuracy`` and
  ``imitation_mse``, and, where the expert's policy is
  known (``expert_logits``), ``heldout_kl``: ``KL(pi_E || pi)`` averaged over the held-out states;
- with a tabular ``oracle`` (the exact expert, ``mairl.solvers``): ``policy_kl``
  under the expert occupancy, and the recovered reward in expected form
  ``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) (1 - terminal(s')) V_i(s')``
  (``P_i`` the expert's marginal dynamics; for algorithms that learn a reward
  of their own, ``algo.reward``) against the true marginal reward
  under the metrics of ``mairl.metrics.calibration.tabular_metrics``
  (``reward_shaping_corr``, ``reward_pearson``, ``reward_spearman``,
  ``reward_epic``). Which of them measure reward recovery is decided by their
  calibration on the game (:func:`mairl.metrics.calibrate_tabular`), recorded
  by the run beside the numbers.

Continuous-action learners (``algo.continuous``) report ``return`` and, on
held-out demonstrations, ``heldout_log_likelihood`` (mean ``log pi_i(a^E|s)``
of the demonstrated actions, :data:`mairl.algos.common.ACTION_EPS` clipping)
and ``action_mse`` (squared distance between the policy's mode
``tanh(mu_i(s))`` and the demonstrated action, summed over action dimensions);
:data:`CONTINUOUS_NOT_REPORTED` says why the other metrics are not.

Sampled reward correlations on held-out transitions (a Pearson correlation, or
one after regressing a potential linear in the observation) are not reported:
calibrated on Gems, the true reward scores anywhere from -0.87 to 0.90 under
them, depending only on its shaping.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mairl import metrics
from mairl.algos.base import Algo
from mairl.algos.common import sample_actions, soft_value
from mairl.data import Demonstrations, to_agent_major

#: Metrics a continuous-action run does not report, and why.
CONTINUOUS_NOT_REPORTED = {
    "action_accuracy": "discrete actions only: a continuous action is never matched exactly "
                       "(action_mse and heldout_log_likelihood measure behaviour instead)",
    "imitation_mse": "the MAMQL reference code's loss on Boltzmann soft values of discrete "
                     "actions; no closed-form soft value with continuous actions",
    "policy_kl": "needs the exact expert policy of a tabular game",
    "heldout_kl": "needs the expert's policy density; only soft-Q expert files of discrete "
                  "games provide one",
    "reward_*": "calibrated reward recovery needs a tabular oracle (exact) or the simulated "
                "Gems calibration; neither exists for continuous games yet, and uncalibrated "
                "correlations are not reported",
}


def policy_fn_of(algo: Algo, params: Any, greedy: bool = False):
    """``policy_fn(key, obs (agent, *obs_shape)) -> actions (agent,)`` (``(agent,
    action_dim)`` for continuous learners: a draw of each actor, or its mode)."""
    if algo.continuous:
        return lambda key, obs: algo.policy(params, obs, key, greedy)

    def policy_fn(key, obs):
        return sample_actions(key, algo.q_values(params, obs), algo.alpha, greedy)

    return policy_fn


def continuous_reward(algo: Algo, params: Any, batch, key: jax.Array,
                      samples: int = 16) -> jax.Array:
    """The recovered reward of a continuous learner with a critic on transitions,
    ``r_i = Q_i(s, a_i) - gamma (1 - term) V_i(s')`` with
    ``V_i(s') ≈ mean_k [Q_i(s', a_k) - alpha log pi_i(a_k|s')]``, ``a_k ~ pi_i(.|s')``
    (``samples`` draws): ``(agent, B)``."""
    if algo.critic is None:
        raise ValueError(f"{algo.name}: learns no critic, so it recovers no reward")
    q = algo.critic(params, batch.obs, batch.actions)

    def one(key):
        a = algo.policy(params, batch.next_obs, key, False)
        return algo.critic(params, batch.next_obs, a) - algo.alpha * algo.log_prob(
            params, batch.next_obs, a)

    v_next = jnp.mean(jax.vmap(one)(jax.random.split(key, samples)), axis=0)
    not_term = 1.0 - batch.terminated.astype(jnp.float32)
    return q - algo.gamma * not_term * v_next


def sampled_reward(algo: Algo, params: Any, batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``r_hat (agent, B)`` on transitions, with ``V(s)`` and ``V(s')`` ``(agent, B)``."""
    q = algo.q_values(params, batch.obs)
    v = soft_value(q, algo.alpha)
    v_next = soft_value(algo.q_values(params, batch.next_obs), algo.alpha)
    q_taken = jnp.take_along_axis(q, batch.actions[..., None], axis=-1)[..., 0]
    not_term = 1.0 - batch.terminated.astype(jnp.float32)
    return q_taken - algo.gamma * not_term * v_next, v, v_next


def tabular_reward(algo: Algo, params: Any, oracle, num_agents: int, terminal: Any = None):
    """The learned ``q (agent, S, A)`` and the recovered reward ``(agent, S, A)``.

    Where the algorithm learns a reward of its own (``algo.reward``), that one;
    otherwise the expected form of its critic's,
    ``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) (1 - terminal(s')) V_i(s')``
    with ``P_i = oracle.marginal_transitions``: no bootstrap after entering a
    terminal state (``terminal``: the game's optional bool mask ``(S,)``).
    """
    num_states = oracle.q.shape[1]
    states = jnp.broadcast_to(jnp.eye(num_states, dtype=jnp.float32),
                              (num_agents, num_states, num_states))
    q = algo.q_values(params, states)  # (agent, S, A)
    if algo.reward is not None:
        return q, algo.reward(params, states)
    v = soft_value(q, algo.alpha)  # (agent, S)
    if terminal is not None:
        v = jnp.where(jnp.asarray(terminal, bool)[None, :], 0.0, v)
    expected = q - algo.gamma * jnp.einsum("nsat,nt->nsa", oracle.marginal_transitions, v)
    return q, expected


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
    expert_logits: Any = None,
):
    """``eval_fn(params, key, held)`` (see the module docstring); ``held`` is
    ``heldout_batch(...)`` or ``None``. ``oracle`` must hold float32-convertible
    arrays; ``expert_logits(obs (agent, B, *obs_shape)) -> (agent, B, A)`` gives the
    expert policy's logits (``Q_E / alpha_E``), where the expert is known."""
    from mairl.metrics.calibration import tabular_metrics

    orc = terminal = reward_metrics = None
    if oracle is not None:
        orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), oracle)
        terminal = getattr(env, "terminal", None)
        reward_metrics = tabular_metrics(orc, algo.gamma, terminal)
    jittable = getattr(env, "jittable", True) if env is not None else False
    num_agents = env.num_agents if env is not None else None
    if algo.continuous:
        return _continuous_eval_fn(algo, env, jittable, episodes)

    def eval_fn(params, key, held=None) -> dict:
        out = _mean_return(algo, env, params, key, episodes) if jittable else {}
        if orc is not None:
            q, r_exp = tabular_reward(algo, params, orc, num_agents, terminal)
            learned = jax.nn.softmax(q / algo.alpha, axis=-1)
            out["policy_kl"] = metrics.policy_kl(orc.policy, learned, orc.state_occupancy)
            for name, (_, fn) in reward_metrics.items():
                out[name] = fn(r_exp)
        if held is not None:
            if orc is not None:
                held = _after(held, out["reward_shaping_corr"])
            _, v, v_next = sampled_reward(algo, params, held)
            q = algo.q_values(params, held.obs)
            out["action_accuracy"] = metrics.action_accuracy(q, held.actions)
            out["imitation_mse"] = metrics.imitation_mse(
                held.rewards, v, v_next, held.terminated, algo.gamma
            )
            if expert_logits is not None:
                out["heldout_kl"] = metrics.heldout_kl(expert_logits(held.obs), q / algo.alpha)
        return out

    return eval_fn


def _mean_return(algo: Algo, env: Any, params: Any, key: jax.Array, episodes: int) -> dict:
    """``{"return": (agent,)}``: the mean return of ``episodes`` episodes of the
    learner's policy, rolled out inside the compiled evaluation."""
    returns = metrics.evaluate_returns(key, env, policy_fn_of(algo, params), episodes)
    return {"return": returns.mean(axis=0)}


def _continuous_eval_fn(algo: Algo, env: Any, jittable: bool, episodes: int):
    """``eval_fn`` of a continuous learner (module docstring)."""

    def eval_fn(params, key, held=None) -> dict:
        out = _mean_return(algo, env, params, key, episodes) if jittable else {}
        if held is not None:
            out["heldout_log_likelihood"] = jnp.mean(
                algo.log_prob(params, held.obs, held.actions), axis=-1)
            mode = algo.policy(params, held.obs, key, True)
            out["action_mse"] = jnp.mean(jnp.sum((mode - held.actions) ** 2, axis=-1), axis=-1)
        return out

    return eval_fn


def agent_features(name: str):
    """``fn(obs (agent, B, *obs_shape)) -> (agent, B, F)`` from a row feature map of
    ``mairl.experts.FEATURES`` (``fn(row, agent)``)."""
    from mairl.experts import FEATURES

    row_fn = FEATURES[name]

    def features(obs):
        agents = jnp.arange(obs.shape[0])
        return jax.vmap(lambda rows, i: jax.vmap(lambda r: row_fn(r, i))(rows))(obs, agents)

    return features


def calibrate_game(
    env: Any,
    *,
    alpha: float | None = None,
    gamma: float | None = None,
    demos: Demonstrations | None = None,
    expert: Any = None,
    critic_algo: str = "mamql-offline",
    states: int = 512,
    key: jax.Array | None = None,
    learned: dict | None = None,
    **options: Any,
) -> dict:
    """Calibrate the reward metrics a run reports on ``env`` (``mairl metrics calibrate``).

    Tabular games (exact oracle at ``alpha``, ``gamma``; defaults 1 and 0.99):
    :func:`mairl.metrics.calibrate_tabular`. Other jittable games with a soft-Q
    ``expert`` file (``mairl.experts``; its own ``alpha`` and ``gamma``) and
    ``demos`` (their first ``states`` demonstrated states are the sample):
    :func:`mairl.metrics.simulated.calibrate_simulated`. The random-critic row
    uses a fresh critic of ``critic_algo``'s default config. ``learned`` (simulated
    games only): ``name -> [(q_values, alpha), ...]`` of learners scored beside
    the calibration (``mairl.metrics.simulated.calibrate_simulated``).

    Returns:
        ``metric name -> MetricCalibration``.
    """
    from mairl.algos import ALGOS, make_algo

    key = jax.random.key(0) if key is None else key
    if hasattr(env, "transitions"):
        from mairl.solvers import soft_value_iteration

        alpha = 1.0 if alpha is None else alpha
        gamma = 0.99 if gamma is None else gamma
        sol = soft_value_iteration(env, alpha=alpha, gamma=gamma)
        algo = make_algo(ALGOS[critic_algo].config(alpha=alpha, gamma=gamma, critic="tabular"),
                         num_agents=env.num_agents, obs_shape=tuple(env.obs_shape),
                         num_actions=env.num_actions, env=env)
        orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), sol)
        terminal = getattr(env, "terminal", None)

        def random_critic(k):
            params = algo.init(k, _empty_batch(algo, env)).params
            return tabular_reward(algo, params, orc, env.num_agents, terminal)[1]

        return metrics.calibrate_tabular(sol, alpha, gamma, terminal=terminal, key=key,
                                         random_critic=random_critic, **options)
    if expert is None or demos is None:
        raise ValueError(f"{getattr(env, 'name', env)}: calibration off tabular games needs the "
                         "expert file (expert=) and demonstrations (demos=)")
    if getattr(env, "obs_mode", None) != "map" or not str(getattr(env, "name", "")).startswith(
            "gems"):
        raise ValueError(f"{getattr(env, 'name', env)}: simulated calibration rebuilds states "
                         "from Gems map observations; other large games are not supported yet")
    from mairl.experts import load_soft_q_critics
    from mairl.metrics import simulated
    from mairl.params import load_params

    e_algo, e_params = load_soft_q_critics(expert, env)
    feature_name = str(load_params(expert)[1]["features"])
    n = min(states, demos.num_transitions)
    sample = simulated.gems_states_from_maps(jnp.asarray(demos.obs[:n, 0]))
    q_e = lambda obs: e_algo.q_values(e_params, obs)  # noqa: E731
    k_sim, k_cal = jax.random.split(key)
    sim = simulated.simulate(env, sample, lambda obs: q_e(obs) / e_algo.alpha, k_sim,
                             gamma=e_algo.gamma)
    algo = make_algo(ALGOS[critic_algo].config(alpha=e_algo.alpha, gamma=e_algo.gamma),
                     num_agents=env.num_agents, obs_shape=tuple(env.obs_shape),
                     num_actions=env.num_actions, env=env,
                     obs_transform=getattr(env, "agent_view", None))

    def random_critic(k):
        params = algo.init(k, _empty_batch(algo, env)).params
        return lambda obs: algo.q_values(params, obs)

    cal = simulated.calibrate_simulated(sim, agent_features(feature_name), expert_q=q_e,
                                        expert_alpha=e_algo.alpha, random_critic=random_critic,
                                        key=k_cal, learned=learned, **options)
    return {cal.metric: cal}


def _empty_batch(algo, env):
    from mairl.runs import example_batch

    return example_batch(algo, env)
