"""Reward recovery on games too large to enumerate, through the simulator.

Tabular games give the exact marginal reward and dynamics; on a game such as
Gems they are computed here from the simulator, on a sample of states (the
held-out demonstrated states, i.e. the expert's state occupancy), for every
action of each agent:

- the **exact marginal reward** ``r_i(s, a_i) = E_{a_-i ~ pi_E}[R_i(s, a)]``,
  summing over the others' joint actions with the expert's probabilities
  (Gems' rewards do not depend on where collected gems respawn);
- **expectations over the next state** ``E[f(s') | s, a_i]``, the same sum over
  ``a_-i`` and an average over ``samples`` draws of the game's randomness, so a
  learned critic's expected-form reward
  ``r_hat_i(s, a_i) = Q_i(s, a_i) - gamma E[(1 - term) V_i(s') | s, a_i]`` is the
  object the tabular metric scores.

:func:`shaping_aware_correlation_fitted` then compares two such rewards up to
shaping with a **neural potential fitted by cross-fitting**: for each reward a
small MLP ``Phi(s)`` over state features minimises the weighted squared
residual ``r(s, a) - c - (gamma E[(1 - term) Phi(s')] - Phi(s))`` on one half of
the states, and the residual is scored on the other half (and the halves
swapped), so a potential cannot absorb a reward by memorising the states it is
scored on (the failure of the in-sample linear potential it replaces). Weights:
the sampled states equally, each agent's actions uniformly. Its calibration
(:func:`calibrate_simulated`: the true reward, its shapings by the expert's
value and by random neural potentials, ``alpha log pi_E``, random rewards and a
random critic's reward) says whether the number can be read as reward recovery.

Approximation, stated: a state rebuilt from an observation starts a fresh
episode (Gems: the count of collected gems and the joint return are not in the
map), so the simulated ``term`` flags are those of a fresh episode; the same
expectation operator is applied to every candidate, so the calibration measures
its effect.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mairl.metrics.calibration import MetricCalibration, calibrate

__all__ = [
    "Simulated",
    "calibrate_simulated",
    "expected_next",
    "gems_states_from_maps",
    "learned_reward",
    "shaping_aware_correlation_fitted",
    "simulate",
]


class Simulated(NamedTuple):
    """Sampled states and every joint action's outcome from them.

    Attributes:
        obs: ``(agent, M, *obs_shape)`` the states' observations, agent-major.
        next_obs: ``(agent, M, J, K, *obs_shape)`` next observations for every
            joint action ``j`` (``J = A ** N``) and randomness sample ``k``.
        terminated: ``(M, J, K)`` bool.
        weights: ``(agent, M, A, J)``: ``1[j_i = a] prod_{m != i} pi_E(j_m | s)``,
            the probability of joint action ``j`` when agent ``i`` plays ``a``.
        rewards: ``(agent, M, A)`` the exact marginal rewards ``r_i(s, a_i)``.
        gamma: the discount of the expectations.
    """

    obs: Any
    next_obs: Any
    terminated: Any
    weights: Any
    rewards: Any
    gamma: float


def gems_states_from_maps(maps: jax.Array):
    """Gems states rebuilt from map observations ``(M, 5, size, size)``.

    Agents: the cell of their channel. Gems of each colour: the (up to three)
    marked cells in row-major order; a colour with fewer marked cells (gems
    sharing a cell) repeats its first cell, which gives the same map and the
    same rewards. The time, collected count and joint return are those of a
    fresh episode.
    """
    from envs.gems import state_from_cells

    maps = jnp.asarray(maps)
    size = maps.shape[-1]

    def one(m):
        flat = m.reshape(m.shape[0], -1)  # (channel, cell)
        agents = jnp.argmax(flat[:2], axis=-1)  # (2,)

        def three(channel):
            idx = jnp.nonzero(channel > 0.5, size=3, fill_value=-1)[0]
            return jnp.where(idx >= 0, idx, idx[0])

        gems = jnp.concatenate([three(flat[c]) for c in (2, 3, 4)])  # (9,)
        cells = jnp.concatenate([agents, gems]).astype(jnp.int32)
        return state_from_cells(jnp.stack([cells // size, cells % size], axis=-1))

    return jax.vmap(one)(maps)


def _joint_actions(num_agents: int, num_actions: int) -> np.ndarray:
    return np.array(list(itertools.product(range(num_actions), repeat=num_agents)), np.int32)


def simulate(
    env: Any,
    states: Any,
    expert_logits: Callable[[jax.Array], jax.Array],
    key: jax.Array,
    *,
    gamma: float,
    samples: int = 2,
) -> Simulated:
    """Step ``env`` from every state in ``states`` (leading axis ``M``) with every joint
    action and ``samples`` draws of its randomness (``env.step_env``, no auto-reset).

    Args:
        env: a jittable game with discrete actions, the same count for all agents.
        states: its states, stacked on a leading axis.
        expert_logits: ``fn(obs (agent, B, *obs_shape)) -> (agent, B, A)``, the
            expert policy's logits (``mairl.experts.soft_q_expert_logits``).
        key: randomness of the next states.
        gamma: discount used by :func:`expected_next` callers.
        samples: draws of the game's randomness per joint action.
    """
    n, a = env.num_agents, env.num_actions
    if samples < 1:
        raise ValueError(f"samples: expected at least 1, got {samples}")
    joint = jnp.asarray(_joint_actions(n, a))  # (J, N)
    m = jax.tree.leaves(states)[0].shape[0]
    keys = jax.random.split(key, (m, joint.shape[0], samples))

    def step(k, s, act):
        obs, _, reward, term, _ = env.step_env(k, s, act)
        return obs, reward, term

    per_sample = jax.vmap(step, in_axes=(0, None, None))
    per_joint = jax.vmap(per_sample, in_axes=(0, None, 0))
    nxt, reward, term = jax.jit(jax.vmap(per_joint, in_axes=(0, 0, None)))(keys, states, joint)
    # nxt (M, J, K, N, *obs), reward (M, J, K, N), term (M, J, K)
    obs = jax.vmap(env.get_obs)(states)  # (M, N, *obs)
    obs = jnp.swapaxes(obs, 0, 1)
    pi = jax.nn.softmax(expert_logits(obs), axis=-1)  # (N, M, A)
    onehot = jax.nn.one_hot(joint, a)  # (J, N, A)
    prob = jnp.einsum("nma,jna->nmj", pi, onehot)  # pi_n(j_n | s)
    log_prob = jnp.log(jnp.maximum(prob, 1e-30))
    others = jnp.exp(jnp.sum(log_prob, axis=0, keepdims=True) - log_prob)  # prod over m != n
    weights = jnp.einsum("jna,nmj->nmaj", onehot, others)
    r_joint = jnp.moveaxis(reward.mean(axis=2), -1, 0)  # (N, M, J)
    rewards = jnp.einsum("nmaj,nmj->nma", weights, r_joint)
    next_obs = jnp.moveaxis(nxt, 3, 0)  # (N, M, J, K, *obs)
    return Simulated(obs, next_obs, term, weights, rewards, float(gamma))


def expected_next(sim: Simulated, f_next: jax.Array, *, bootstrap: bool = True) -> jax.Array:
    """``E[(1 - term) f(s') | s, a_i]`` ``(agent, M, A)`` from ``f_next (agent, M, J, K)``
    (without the ``(1 - term)`` factor when ``bootstrap`` is False)."""
    if bootstrap:
        f_next = jnp.where(sim.terminated[None], 0.0, f_next)
    return jnp.einsum("nmaj,nmj->nma", sim.weights, f_next.mean(axis=-1))


def learned_reward(sim: Simulated, q_values: Callable[[jax.Array], jax.Array],
                   alpha: float) -> jax.Array:
    """A critic's expected-form reward ``Q(s, a) - gamma E[(1 - term) V(s')]`` ``(agent, M, A)``;
    ``q_values(obs (agent, B, *obs_shape)) -> (agent, B, A)``."""
    q = q_values(sim.obs)
    n, m, j, k = sim.next_obs.shape[:4]
    flat = sim.next_obs.reshape(n, m * j * k, *sim.next_obs.shape[4:])
    q_next = q_values(flat)
    v_next = alpha * jax.nn.logsumexp(q_next / alpha, axis=-1).reshape(n, m, j, k)
    return q - sim.gamma * expected_next(sim, v_next)


class _Potential(nn.Module):
    hidden: Sequence[int]
    outputs: int

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.elu(nn.Dense(h)(x))
        return nn.Dense(self.outputs)(x)


def _fit_and_score(ys, feats, next_feats, weights, terminated, gamma, fit, score, key, *,
                   hidden, steps, lr):
    """One agent, one fold: fit a potential per reward on the states ``fit`` and return
    the residuals ``(C, |score|, A)`` on ``score``. ``ys (C, M, A)``, ``feats (M, F)``,
    ``next_feats (M, J, K, F)``, ``weights (M, A, J)``, ``terminated (M, J, K)``."""
    c = ys.shape[0]
    net = _Potential(tuple(hidden), c)
    scale = jnp.std(ys[:, fit], axis=(1, 2), keepdims=True) + 1e-8  # (C, 1, 1)
    ys = ys / scale

    def residual(params, idx):
        phi = net.apply(params, feats[idx])  # (|idx|, C)
        phi_next = net.apply(params, next_feats[idx])  # (|idx|, J, K, C)
        phi_next = jnp.where(terminated[idx][..., None], 0.0, phi_next).mean(axis=2)
        e_next = jnp.einsum("maj,mjc->cma", weights[idx], phi_next)
        res = ys[:, idx] - (gamma * e_next - phi.T[:, :, None])
        return res - jnp.mean(res, axis=(1, 2), keepdims=True)

    params = net.init(key, feats[:1])
    opt = optax.adam(lr)

    def body(carry, _):
        p, st = carry
        g = jax.grad(lambda q: jnp.mean(residual(q, fit) ** 2))(p)
        upd, st = opt.update(g, st, p)
        return (optax.apply_updates(p, upd), st), None

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return residual(params, score) * scale


@partial(jax.jit, static_argnames=("features", "hidden", "steps", "learning_rate"))
def _fitted(sim, ys, features, key, hidden, steps, learning_rate):
    n, c1, m, _ = ys.shape
    feats = features(sim.obs)  # (N, M, F)
    nxt = sim.next_obs
    next_feats = features(nxt.reshape(n, -1, *nxt.shape[4:])).reshape(*nxt.shape[:4], -1)
    half = m // 2
    folds = jnp.array([np.arange(half), np.arange(half, 2 * half)])  # (2, half)
    fit = jnp.stack([folds[0], folds[1]])
    score = jnp.stack([folds[1], folds[0]])
    keys = jax.random.split(key, (n, 2))
    one = partial(_fit_and_score, hidden=hidden, steps=steps, lr=learning_rate)
    per_fold = jax.vmap(one, in_axes=(None, None, None, None, None, None, 0, 0, 0))
    res = jax.vmap(per_fold, in_axes=(0, 0, 0, 0, None, None, None, None, 0))(
        ys, feats, next_feats, sim.weights, sim.terminated, sim.gamma, fit, score, keys)
    # res (N, fold, C + 1, half, A): pool both held-out halves
    res = jnp.moveaxis(res, 1, 2).reshape(n, c1, -1)
    res = res - res.mean(axis=-1, keepdims=True)
    norm = jnp.sqrt(jnp.sum(res * res, axis=-1))  # (N, C + 1)
    flat = norm <= 1e-6 * jnp.sqrt(jnp.sum(ys.reshape(n, c1, -1) ** 2, axis=-1))
    rho = jnp.einsum("ncx,nx->nc", res[:, :-1], res[:, -1])
    both = flat[:, :-1] | flat[:, -1:]
    rho = jnp.clip(rho / jnp.where(both, 1.0, norm[:, :-1] * norm[:, -1:]), -1.0, 1.0)
    rho = jnp.where(both, jnp.where(flat[:, :-1] & flat[:, -1:], 1.0, jnp.nan), rho)
    return rho.T  # (C, N)


def shaping_aware_correlation_fitted(
    sim: Simulated,
    candidates: jax.Array,
    true: jax.Array,
    features: Callable[[jax.Array], jax.Array],
    *,
    key: jax.Array | None = None,
    hidden: Sequence[int] = (64, 64),
    steps: int = 1500,
    learning_rate: float = 3e-3,
) -> jax.Array:
    """Correlation of rewards with the true one after removing a cross-fitted neural potential.

    Args:
        sim: :func:`simulate`'s output (the expectations over ``s'``).
        candidates: ``(C, agent, M, A)`` expected-form rewards to score.
        true: ``(agent, M, A)`` the true marginal reward.
        features: ``fn(obs (agent, B, *obs_shape)) -> (agent, B, F)``, the
            potential's input per agent (e.g. ``mairl.experts.gems_features``-like
            relative positions).
        key: initialisation of the potentials (default ``key(0)``).
        hidden, steps, learning_rate: the potential MLP (ELU) and its full-batch
            Adam fit, per half.

    Returns:
        ``(C, agent)``: the Pearson correlation, over both held-out halves, of
        each candidate's residual with the true reward's residual (``nan`` when
        one residual vanishes, 1 when both do).
    """
    key = jax.random.key(0) if key is None else key
    ys = jnp.concatenate([candidates, true[None]], axis=0)  # (C + 1, N, M, A)
    ys = jnp.swapaxes(ys, 0, 1)  # (N, C + 1, M, A)
    if ys.shape[2] < 4:
        raise ValueError(f"sim: need at least 4 sampled states, got {ys.shape[2]}")
    return _fitted(sim, ys, features, key, tuple(hidden), int(steps), float(learning_rate))


def calibrate_simulated(
    sim: Simulated,
    features: Callable[[jax.Array], jax.Array],
    *,
    expert_q: Callable[[jax.Array], jax.Array],
    expert_alpha: float,
    random_critic: Callable[[jax.Array], Callable[[jax.Array], jax.Array]] | None = None,
    key: jax.Array | None = None,
    draws: int = 3,
    shaping_scales: Sequence[float] = (1.0, 10.0),
    learned: dict[str, Sequence[tuple[Callable[[jax.Array], jax.Array], float]]] | None = None,
    **fit: Any,
) -> MetricCalibration:
    """Calibrate :func:`shaping_aware_correlation_fitted` (name ``reward_shaping_corr_fitted``).

    Candidates (``mairl.metrics.calibration``): the true marginal reward; it
    shaped by the expert's soft value ``V_E`` and ``10 V_E``; shaped by random
    potentials (randomly initialised ELU MLPs over ``features``, scaled to
    ``K`` times the reward's standard deviation); ``alpha log pi_E``; random
    rewards; and, with ``random_critic(key) -> q_values``, a fresh critic's
    expected-form reward.

    Args:
        expert_q: ``fn(obs (agent, B, ...)) -> (agent, B, A)``, the expert's soft-Q.
        expert_alpha: its temperature.
        learned: optional rows scored beside the calibration: name ->
            ``[(q_values, alpha), ...]`` (one per seed), each scored through its
            expected-form reward :func:`learned_reward`; they do not enter the
            ceiling or the floor.
        fit: keywords of :func:`shaping_aware_correlation_fitted`.
    """
    key = jax.random.key(0) if key is None else key
    true = sim.rewards
    n, m, a = true.shape
    k_shape, k_rand, k_crit, k_fit = jax.random.split(key, 4)
    q_e = expert_q(sim.obs)
    v_e = expert_alpha * jax.nn.logsumexp(q_e / expert_alpha, axis=-1)  # (N, M)
    nxt = sim.next_obs
    q_e_next = expert_q(nxt.reshape(n, -1, *nxt.shape[4:]))
    v_e_next = (expert_alpha * jax.nn.logsumexp(q_e_next / expert_alpha, axis=-1)
                ).reshape(nxt.shape[:4])

    def shaped(phi, phi_next):
        return true + sim.gamma * expected_next(sim, phi_next) - phi[:, :, None]

    cands: dict[str, list] = {"true": [true],
                              "true + V_E shaping": [shaped(v_e, v_e_next)],
                              "true + 10 V_E shaping": [shaped(10 * v_e, 10 * v_e_next)]}
    feats = features(sim.obs)
    next_feats = features(nxt.reshape(n, -1, *nxt.shape[4:])).reshape(*nxt.shape[:4], -1)
    std = jnp.std(true, axis=(1, 2))[:, None]  # (N, 1)
    net = _Potential((64, 64), 1)
    for s_i, scale in enumerate(shaping_scales):
        draws_list = []
        for k in jax.random.split(jax.random.fold_in(k_shape, s_i), draws):
            params = jax.vmap(lambda kk: net.init(kk, feats[0, :1]))(jax.random.split(k, n))
            phi = jax.vmap(net.apply)(params, feats)[..., 0]  # (N, M)
            phi_next = jax.vmap(net.apply)(params, next_feats)[..., 0]  # (N, M, J, K)
            norm = scale * std / (jnp.std(phi, axis=1, keepdims=True) + 1e-8)
            draws_list.append(shaped(phi * norm, phi_next * norm[:, :, None, None]))
        cands[f"true + random shaping x{scale:g}"] = draws_list
    cands["alpha log pi_E"] = [q_e - v_e[..., None]]
    cands["random reward"] = [jax.random.normal(k, true.shape) for k in
                              jax.random.split(k_rand, draws)]
    if random_critic is not None:
        cands["random critic"] = [learned_reward(sim, random_critic(k), 1.0) for k in
                                  jax.random.split(k_crit, draws)]
    for name, fns in (learned or {}).items():
        cands[name] = [learned_reward(sim, q, a) for q, a in fns]
    flat = [r for lst in cands.values() for r in lst]
    scores = shaping_aware_correlation_fitted(sim, jnp.stack(flat), true, features,
                                              key=k_fit, **fit)  # (C, N)
    # ``calibrate`` scores candidates through a metric function; the scores are known.
    index = {id(r): s for r, s in zip(flat, scores, strict=True)}
    table = calibrate({"reward_shaping_corr_fitted": ("similarity", lambda r: index[id(r)])},
                      cands)
    return table["reward_shaping_corr_fitted"]
