"""The paper's presets: the networks they build, dropout only in training, the configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mairl.algos import ALGOS, Batch, Transition, make_algo
from mairl.networks import make_critic
from mairl.presets import PAPER, paper_config

DN = ("NHWC", "HWIO", "NHWC")


def _gems_paper_by_hand(params, obs):
    """The reference network written out: conv k5, ReLU, conv k3, ReLU (valid), flatten,
    dense 1024, ELU, dense 1024, ELU, dense 5; obs (batch, channel, x, y)."""
    p = params["params"]
    x = jnp.moveaxis(obs, 1, -1)
    for name in ("Conv_0", "Conv_1"):
        x = jax.lax.conv_general_dilated(x, p[name]["kernel"], (1, 1), "VALID",
                                         dimension_numbers=DN) + p[name]["bias"]
        x = jnp.maximum(x, 0.0)
    x = x.reshape(x.shape[0], -1)
    for name in ("Dense_0", "Dense_1"):
        x = jax.nn.elu(x @ p[name]["kernel"] + p[name]["bias"])
    return x @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]


def test_gems_paper_critic_is_the_reference_network():
    net = make_critic("gems-paper", 5, (5, 15, 15), dropout=0.2)
    params = net.init(jax.random.key(0), jnp.zeros((5, 15, 15)))
    kernels = [p.shape for p in jax.tree.leaves(params) if p.ndim > 1]
    assert kernels == [(5, 5, 5, 64), (3, 3, 64, 64), (9 * 9 * 64, 1024), (1024, 1024), (1024, 5)]
    # 8,064 + 36,928 + 5,309,440 + 1,049,600 + 5,125 (weights and biases)
    assert sum(p.size for p in jax.tree.leaves(params)) == 6_409_157
    obs = jax.random.normal(jax.random.key(1), (2, 5, 15, 15))  # negative inputs reach ELU
    want = _gems_paper_by_hand(params, obs)
    # (a ReLU after the dense layers, or none after the convolutions, would differ here)
    np.testing.assert_allclose(net.apply(params, obs), want, rtol=1e-4, atol=1e-5)


def test_dropout_acts_in_training_only():
    # the gems-paper critic's class, small
    small = {"features": (4, 4), "kernels": (5, 3), "hidden": (8,), "padding": "VALID"}
    net = make_critic("cnn", 5, (5, 15, 15), dropout=0.2, **small)
    plain = make_critic("cnn", 5, (5, 15, 15), **small)
    obs = jax.random.uniform(jax.random.key(1), (8, 5, 15, 15))
    params = net.init(jax.random.key(0), obs[0])
    # dropout has no parameters: one checkpoint fits both networks
    assert jax.tree.structure(params) == jax.tree.structure(plain.init(jax.random.key(0), obs[0]))
    evaluated = jax.jit(net.apply)(params, obs)
    np.testing.assert_array_equal(evaluated, jax.jit(plain.apply)(params, obs))

    @jax.jit
    def train(key):
        return net.apply(params, obs, deterministic=False, rngs={"dropout": key})

    a, b = train(jax.random.key(2)), train(jax.random.key(3))
    np.testing.assert_array_equal(a, train(jax.random.key(2)))  # reproducible from its key
    assert not np.allclose(a, b) and not np.allclose(a, evaluated)
    with pytest.raises(ValueError, match="dropout"):
        make_critic("tabular", 5, (20,), dropout=0.2)
    with pytest.raises(ValueError, match="dropout"):
        make_critic("gems-paper", 5, (5, 15, 15), dropout=1.0)


def test_dropout_zeroes_a_fifth_of_the_convolution_units():
    from mairl.networks import _dropout

    x = jnp.ones((64, 11, 11, 64))

    def layer(key):
        import flax.linen as nn

        class Drop(nn.Module):
            @nn.compact
            def __call__(self, x, deterministic):
                return _dropout(x, 0.2, deterministic)

        return Drop().apply({}, x, False, rngs={"dropout": key})

    y = layer(jax.random.key(0))
    kept = y != 0
    assert abs(float(kept.mean()) - 0.8) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.8, rtol=1e-6)


@pytest.mark.parametrize("name,obs_dim,actions,widths", [
    ("overcooked-paper", 1638, 6, [(1638, 2048), (2048, 4096), (4096, 2048), (2048, 6)]),
    ("intersection-paper", 21, 3, [(21, 256), (256, 256), (256, 3)]),
])
def test_mlp_presets_have_the_papers_layers_and_elu(name, obs_dim, actions, widths):
    net = make_critic(name, actions, (obs_dim,))
    params = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((obs_dim,)))
    assert [p.shape for p in jax.tree.leaves(params) if p.ndim > 1] == widths
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)) == sum(
        i * o + o for i, o in widths)
    assert net.activation == "elu"


def test_paper_config_fills_the_fields_each_algorithm_has():
    mamql = paper_config("mamql", "gems")
    assert (mamql.critic, mamql.dropout, mamql.l2, mamql.learning_rate, mamql.batch_size,
            mamql.gamma, mamql.buffer_size) == ("gems-paper", 0.2, 1e-5, 1e-3, 256, 0.99, 16_600)
    bc = paper_config("bc", "gems")
    assert (bc.critic, bc.dropout, bc.batch_size) == ("gems-paper", 0.2, 256)
    gail = paper_config("ma-gail", "overcooked")
    assert (gail.critic, gail.buffer_size, gail.learning_rate) == ("overcooked-paper", 16_600,
                                                                   1e-3)
    assert paper_config("iq-joint", "intersection", batch_size=32).batch_size == 32
    assert PAPER["gems"].view == "global"
    for name in sorted(set(ALGOS) - {"fiq"}):  # fiq trains without dropout; the rest build
        paper_config(name, "intersection")
    with pytest.raises(ValueError, match="domain"):
        paper_config("mamql", "mujoco")
    with pytest.raises(ValueError, match="no fields"):
        paper_config("bc", "gems", buffer_size=10)


def _tiny_batch(n=2, b=4, obs_dim=21):
    obs = jax.random.normal(jax.random.key(5), (n, b, obs_dim))
    done = jnp.zeros((b,), bool)
    return Batch(Transition(obs, jnp.zeros((n, b), jnp.int32), obs, done, done))


@pytest.mark.parametrize("algo", ["mamql-offline", "bc"])
def test_dropout_is_threaded_through_the_update(algo):
    batch = _tiny_batch()
    small = {"critic": "mlp", "hidden": (8,), "batch_size": 4}
    config = paper_config(algo, "intersection", dropout=0.5, **small)
    net = make_algo(config, num_agents=2, obs_shape=(21,), num_actions=3)
    state = net.init(jax.random.key(0), batch)
    update = jax.jit(net.update)
    a = update(state, batch, jax.random.key(1))[0].params
    again = update(state, batch, jax.random.key(1))[0].params
    b = update(state, batch, jax.random.key(2))[0].params
    jax.tree.map(np.testing.assert_array_equal, a, again)
    assert not all(jax.tree.leaves(jax.tree.map(np.allclose, a, b)))  # the masks differ
    # the policy is read deterministically
    q = net.q_values(a, batch.expert.obs)
    np.testing.assert_array_equal(q, net.q_values(a, batch.expert.obs))
    # without dropout the update does not depend on the key (offline learners)
    plain = make_algo(paper_config(algo, "intersection", **small), num_agents=2,
                      obs_shape=(21,), num_actions=3)
    s0 = plain.init(jax.random.key(0), batch)
    step = jax.jit(plain.update)
    jax.tree.map(np.testing.assert_array_equal, step(s0, batch, jax.random.key(1))[0],
                 step(s0, batch, jax.random.key(2))[0])


def test_fiq_refuses_dropout():
    with pytest.raises(ValueError, match="FIQConfig.dropout"):
        ALGOS["fiq"].config(dropout=0.2)
