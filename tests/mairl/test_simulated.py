"""Reward recovery through the simulator (mairl.metrics.simulated), on Gems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from mairl.evaluation import agent_features
from mairl.metrics import simulated


@pytest.fixture(scope="module")
def sim():
    env = envs.make("gems")
    keys = jax.random.split(jax.random.key(3), 6)
    states = jax.vmap(lambda k: env.reset_env(k)[1])(keys)
    # each agent beside its first gem, so every agent's reward varies with its action
    beside = jnp.clip(states.gems[:, jnp.array([0, 3])] + jnp.array([1, 0]), 0, 13)
    states = states.replace(agents=beside)
    maps = jax.vmap(env.get_obs)(states)[:, 0]
    rebuilt = simulated.gems_states_from_maps(maps)
    uniform = lambda obs: jnp.zeros((*obs.shape[:2], env.num_actions))  # noqa: E731
    return env, maps, rebuilt, simulated.simulate(env, rebuilt, uniform, jax.random.key(4),
                                                  gamma=0.9, samples=1)


def test_states_rebuilt_from_maps_give_the_same_maps(sim):
    env, maps, rebuilt, _ = sim
    np.testing.assert_array_equal(jax.vmap(env.get_obs)(rebuilt)[:, 0], maps)


def test_marginal_reward_against_the_rules(sim):
    """Uniform partner: ``r_i(s, a_i)`` is the mean over the partner's 5 actions of the
    reward ``env.transition`` gives (rewards do not depend on respawns)."""
    env, _, rebuilt, s = sim
    weights = np.asarray(s.weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    cand = jnp.zeros((9, 2), jnp.int32)
    transition = jax.jit(env.transition)
    for m in (0, 3):
        state = jax.tree.map(lambda x, m=m: x[m], rebuilt)
        for i in range(2):
            for a in range(5):
                total = 0.0
                for b in range(5):
                    act = jnp.array([a, b] if i == 0 else [b, a])
                    total += float(transition(state, act, cand)[1][i])
                assert float(s.rewards[i, m, a]) == pytest.approx(total / 5, abs=1e-6)


def test_fitted_correlation_orders_rewards(sim):
    *_, s = sim
    true = s.rewards
    feats = agent_features("gems")
    rng = np.random.default_rng(0)
    noise = jnp.asarray(rng.normal(size=true.shape), jnp.float32)
    cands = jnp.stack([true, -true, noise])
    scores = np.asarray(simulated.shaping_aware_correlation_fitted(
        s, cands, true, feats, steps=20, hidden=(8,)))
    assert scores.shape == (3, 2)
    assert np.all(scores[0] > 0.9) and np.all(scores[1] < -0.9)
    assert np.all(np.abs(scores[2]) < 0.9)
