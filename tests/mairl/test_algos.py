"""MAMQL, joint-action IQ-Learn and behaviour cloning: known answers and invariants."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mairl.algos import Batch, BCConfig, MAMQLConfig, make_bc, make_iq_joint, make_mamql
from mairl.algos.common import log_policy, soft_value
from mairl.algos.iq import iq_chi2_loss, joint_index, joint_marginal_masks
from mairl.data import Transition


def test_soft_value_and_policy_known_answer():
    # One state, Q = [0, ln 3], alpha = 1: pi = [1/4, 3/4], V = ln(1 + 3) = ln 4.
    q = jnp.array([0.0, np.log(3.0)])
    np.testing.assert_allclose(soft_value(q, 1.0), np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(log_policy(q, 1.0)), [0.25, 0.75], rtol=1e-6)
    # alpha = 2 on Q = 2 [0, ln 3] gives the same policy and V = 2 ln 4.
    np.testing.assert_allclose(soft_value(2 * q, 2.0), 2 * np.log(4.0), rtol=1e-6)


def test_iq_chi2_loss_known_answer():
    # y = Q(s,a) - gamma (1 - term) V(s') = [1 - 0.5*2, 3 - 0] = [0, 3];
    # phi(y) = y - y^2 / 4 (alpha = 1, c = 1) = [0, 0.75]; expert term 0.375.
    # value term: mean(V - gamma (1 - term) V') = mean([1 - 0.5*2, 2 - 0.5*4]) = 0.
    loss, aux = iq_chi2_loss(
        jnp.array([1.0, 3.0]), jnp.array([2.0, 5.0]), jnp.array([0.0, 1.0]),
        jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]), jnp.array([0.0, 0.0]),
        alpha=1.0, gamma=0.5, chi2_coef=1.0,
    )
    np.testing.assert_allclose(aux["expert_term"], 0.375)
    np.testing.assert_allclose(aux["value_term"], 0.0)
    np.testing.assert_allclose(loss, -0.375)


def test_joint_index_and_marginal_masks():
    actions = jnp.array([[0, 1, 2], [2, 0, 1]])  # (agent, batch), 3 actions
    np.testing.assert_array_equal(joint_index(actions, 3), [0 * 3 + 2, 1 * 3 + 0, 2 * 3 + 1])
    masks = joint_marginal_masks(2, 3)  # (agent, action, joint)
    assert masks.shape == (2, 3, 9)
    assert masks[0, 1].nonzero()[0].tolist() == [3, 4, 5]  # a_0 = 1
    assert masks[1, 1].nonzero()[0].tolist() == [1, 4, 7]  # a_1 = 1
    assert np.all(masks.sum(1) == 1)


def _one_state_data(pi, num=4096, seed=0):
    """Transitions of a one-state repeated game with per-agent policies ``pi (N, A)``."""
    rng = np.random.default_rng(seed)
    n = pi.shape[0]
    acts = np.stack([rng.choice(pi.shape[1], num, p=p) for p in pi]).astype(np.int32)
    obs = jnp.ones((n, num, 1), jnp.float32)
    return Transition(obs, jnp.asarray(acts), obs, jnp.zeros(num, bool), jnp.zeros(num, bool))


def _train(algo, data, updates, seed=0):
    def sample(key):
        idx = jax.random.randint(key, (algo.config.batch_size,), 0, data.actions.shape[1])
        return Batch(jax.tree.map(lambda x: x[:, idx] if x.ndim > 1 else x[idx], data))

    state = algo.init(jax.random.key(seed), sample(jax.random.key(1)))

    @jax.jit
    def run(state, key):
        def body(state, key):
            k1, k2 = jax.random.split(key)
            return algo.update(state, sample(k1), k2)

        return jax.lax.scan(body, state, jax.random.split(key, updates))

    return run(state, jax.random.key(seed + 2))


@pytest.mark.parametrize("make", [make_mamql, make_iq_joint])
def test_offline_recovers_one_state_policies(make):
    # One state (s' = s), two agents with Boltzmann experts, value_expert mode.
    # Write y_a = Q(a) - gamma V; since V = lse(Q) = gamma V + lse(y), the loss is
    #   L(y) = lse(y) - sum_a pi_E(a) phi(y_a),  phi(x) = x - c x^2 / 4   (alpha = 1),
    # and dL/dy_a = 0 gives  softmax(y)_a = pi_E(a) (1 - c y_a / 2).
    # With c = 0 the learned policy is the empirical expert policy itself.
    # (gamma = 0.5 keeps the soft values small, so 1500 Adam steps converge.)
    pi = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    data = _one_state_data(pi)
    empirical = np.stack([np.bincount(a, minlength=3) / a.size for a in np.asarray(data.actions)])
    # For the joint head the relation holds for the joint distribution, so only c = 0
    # is checked on the marginals.
    for coef in (0.0, 1.0) if make is make_mamql else (0.0,):
        cfg = MAMQLConfig(mode="value_expert", gamma=0.5, learning_rate=0.05, batch_size=1024,
                          critic="mlp", hidden=(), max_grad_norm=None, chi2_coef=coef)
        algo = make(cfg, num_agents=2, obs_shape=(1,), num_actions=3)
        state, metrics = _train(algo, data, 1500)
        q = np.asarray(algo.q_values(state.params, jnp.ones((2, 1))), np.float64)
        learned = np.exp(q - np.log(np.exp(q).sum(-1, keepdims=True)))
        y = q - 0.5 * np.log(np.exp(q).sum(-1, keepdims=True))
        np.testing.assert_allclose(learned, empirical * (1 - coef * y / 2), atol=0.03)
        assert np.all(np.isfinite(np.asarray(metrics["loss"])))


def test_bc_recovers_action_frequencies():
    pi = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    data = _one_state_data(pi)
    algo = make_bc(BCConfig(learning_rate=0.05, batch_size=512, hidden=()), num_agents=2,
                   obs_shape=(1,), num_actions=3)
    state, _ = _train(algo, data, 300)
    learned = np.asarray(jax.nn.softmax(algo.q_values(state.params, jnp.ones((2, 1)))))
    empirical = np.stack([np.bincount(a, minlength=3) / a.size for a in np.asarray(data.actions)])
    np.testing.assert_allclose(learned, empirical, atol=0.03)


def test_vmap_over_agents_equals_separate_agents():
    # The two-agent update equals two one-agent updates on each agent's slice.
    pi = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    data = _one_state_data(pi, num=64)
    cfg = MAMQLConfig(mode="value_expert", batch_size=64, hidden=(8,))
    two = make_mamql(cfg, num_agents=2, obs_shape=(1,), num_actions=3)
    one = make_mamql(cfg, num_agents=1, obs_shape=(1,), num_actions=3)
    batch = Batch(data)
    state = two.init(jax.random.key(0), batch)
    new, _ = jax.jit(two.update)(state, batch, jax.random.key(1))
    for i in range(2):
        sl = lambda tree, i=i: jax.tree.map(lambda x: x[i:i + 1], tree)  # noqa: E731
        agent_batch = Batch(data._replace(obs=data.obs[i:i + 1], actions=data.actions[i:i + 1],
                                          next_obs=data.next_obs[i:i + 1]))
        single = state.replace(params=sl(state.params), target_params=sl(state.target_params),
                               opt_state=sl(state.opt_state))
        single_new, _ = jax.jit(one.update)(single, agent_batch, jax.random.key(1))
        chex.assert_trees_all_close(single_new.params, sl(new.params), rtol=1e-5, atol=1e-6)


def test_joint_head_marginal_is_marginal_of_joint_boltzmann():
    cfg = MAMQLConfig(mode="value_expert", hidden=(4,))
    algo = make_iq_joint(cfg, num_agents=2, obs_shape=(3,), num_actions=2)
    data = Transition(jnp.ones((2, 5, 3)), jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 5, 3)),
                      jnp.zeros(5, bool), jnp.zeros(5, bool))
    state = algo.init(jax.random.key(0), Batch(data))
    obs = jnp.full((2, 3), 0.3)
    from mairl.networks import MLPCritic

    joint = jax.vmap(MLPCritic(4, hidden=(4,)).apply)(state.params, obs)  # (agent, 4)
    probs = jax.nn.softmax(joint, axis=-1).reshape(2, 2, 2)  # (agent, a_0, a_1)
    expected = np.stack([probs[0].sum(1), probs[1].sum(0)])
    got = jax.nn.softmax(algo.q_values(state.params, obs), axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(soft_value(algo.q_values(state.params, obs), 1.0),
                               soft_value(joint, 1.0), rtol=1e-5)


def test_online_mode_steps_env_and_fills_buffer():
    import envs

    env = envs.make("stag-hunt")
    cfg = MAMQLConfig(mode="online", batch_size=8, num_envs=4, buffer_size=64, hidden=(8,),
                      target_tau=0.1, gamma=0.9)
    algo = make_mamql(cfg, num_agents=2, obs_shape=env.obs_shape, num_actions=2, env=env)
    pi = np.array([[0.9, 0.1], [0.9, 0.1]])
    data = _one_state_data(pi, num=32)
    sample = lambda k: Batch(jax.tree.map(lambda x: x[:, :8] if x.ndim > 1 else x[:8], data))  # noqa: E731
    state = algo.init(jax.random.key(0), sample(None))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def update(state, key):
        return algo.update(state, sample(None), key)

    for i in range(5):
        state, metrics = update(state, jax.random.key(i))
    assert int(state.buffer.size) == 20
    assert int(state.step) == 5
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, state.params, state.target_params))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="MAMQLConfig.gamma"):
        MAMQLConfig(gamma=1.0)
    with pytest.raises(ValueError, match="MAMQLConfig.mode"):
        MAMQLConfig(mode="offline")
    with pytest.raises(ValueError, match="needs an environment"):
        make_mamql(MAMQLConfig(mode="online"), num_agents=2, obs_shape=(1,), num_actions=2)


# A value each standard field check (mairl.algos.common.FIELD_CHECKS) refuses.
BAD_VALUES = {
    "alpha": 0.0, "gamma": 1.0, "learning_rate": 0.0, "actor_learning_rate": -1e-3,
    "batch_size": 0, "chi2_coef": -1.0, "l2": -1.0, "num_envs": 0, "buffer_size": 0,
    "tau": 0.0, "target_tau": 1.5, "critic": "resnet", "hidden": (64, 0),
    "max_grad_norm": 0.0, "huber_delta": -1.0, "dropout": 1.0, "warmup_steps": -1,
    "grad_penalty": -0.1,
}


def test_every_config_checks_each_standard_field_it_has():
    import dataclasses

    from mairl.algos import ALGOS
    from mairl.algos.common import FIELD_CHECKS, deferred_checks

    assert set(BAD_VALUES) == set(FIELD_CHECKS)
    checked = set()
    for spec in ALGOS.values():
        cls = spec.config
        cls()  # the defaults pass
        for field in sorted({f.name for f in dataclasses.fields(cls)} & set(BAD_VALUES)):
            with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{field}: expected .*, "
                                                 rf"got {re.escape(repr(BAD_VALUES[field]))}$"):
                cls(**{field: BAD_VALUES[field]})
            checked.add(field)
        with deferred_checks():  # a command line parser builds them first, checks later
            cls(alpha=0.0)
    assert checked == set(FIELD_CHECKS)  # every standard check is some config's
