"""Critic networks: the matmul convolution equals lax's, presets have the right shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mairl.networks import conv_as_matmul, make_critic

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 2), (0, 3))])
@pytest.mark.parametrize("kernel", [(3, 3), (5, 2)])
def test_conv_as_matmul_equals_lax_conv(padding, kernel):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (3, 9, 7, 4))
    w = jax.random.normal(kw, (*kernel, 4, 6))
    want = jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)
    got = conv_as_matmul(x, w, (1, 1), padding, dimension_numbers=DN)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # and its gradient, the part that matters for training
    loss = lambda f, w: jnp.sum(jnp.tanh(f(x, w, (1, 1), padding, dimension_numbers=DN)))  # noqa: E731
    np.testing.assert_allclose(
        jax.grad(lambda w: loss(conv_as_matmul, w))(w),
        jax.grad(lambda w: loss(jax.lax.conv_general_dilated, w))(w), rtol=1e-4, atol=1e-4,
    )


def test_conv_as_matmul_refuses_what_it_does_not_compute():
    x, w = jnp.zeros((1, 5, 5, 2)), jnp.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="window_strides"):
        conv_as_matmul(x, w, (2, 2), "SAME")
    with pytest.raises(ValueError, match="rhs_dilation"):
        conv_as_matmul(x, w, (1, 1), "SAME", rhs_dilation=(2, 2))
    with pytest.raises(ValueError, match="feature groups"):
        conv_as_matmul(x, w, (1, 1), "SAME", feature_group_count=2)


def test_gems_paper_critic_shapes_and_parameter_count():
    net = make_critic("gems-paper", 5, (5, 15, 15))
    params = net.init(jax.random.key(0), jnp.zeros((5, 15, 15)))
    assert net.apply(params, jnp.zeros((5, 15, 15))).shape == (5,)
    assert net.apply(params, jnp.zeros((7, 5, 15, 15))).shape == (7, 5)
    kernels = [p.shape for p in jax.tree.leaves(params) if p.ndim > 1]
    # conv 5->64 k5 and 64->64 k3 (valid: 15 -> 11 -> 9), dense 9*9*64 -> 1024 -> 1024 -> 5
    assert kernels == [(5, 5, 5, 64), (3, 3, 64, 64), (9 * 9 * 64, 1024), (1024, 1024), (1024, 5)]


def test_unknown_critic_and_wrong_observation_rank_are_named():
    with pytest.raises(ValueError, match="unknown critic 'resnet'"):
        make_critic("resnet", 5, (3,))
    with pytest.raises(ValueError, match="map observations"):
        make_critic("cnn", 5, (30,))
