"""Critic networks: ``obs -> Q(s, .)`` for one agent; stacked over agents with vmap.

Every critic maps one agent's observation ``(*obs_shape)`` (or a batch
``(batch, *obs_shape)``) to action values ``(..., num_actions)``. Per-agent
parameters are created with ``jax.vmap(net.init, in_axes=(0, None))`` and
applied with ``jax.vmap(net.apply)`` over the leading agent axis.

Input dtype: observations may arrive in a compact dtype (Gems maps are uint8,
``envs.core.Environment.obs_dtype``), and every critic converts them to
float32 at its input, in one place (:func:`network_input`), after any
per-agent view and batch gather has run on the compact bytes. A 0/1 uint8
map and the same map in float32 give bit-identical outputs and gradients.

Presets, by name (``make_critic``):

- ``mlp``: flatten, two ReLU layers (256 by default), linear output.
- ``cnn``: two small convolutions and one dense layer, for map observations
  ``(channel, x, y)``.
- ``gems-paper``: the MAMQL paper's Gems critic: conv 5->64 kernel 5, conv
  64->64 kernel 3 (valid padding, ReLU after each), dense 1024, 1024 (ELU after
  each), linear output 5; ``dropout=p`` adds dropout after each convolution
  (0.2 in the paper's runs, off by default).
- ``overcooked-paper``: the MAMQL authors' Overcooked critic: flatten, dense
  2048, 4096, 2048 (ELU after each), linear output; ``dropout=p`` after each
  hidden layer (0.5 in the authors' code, off by default).
- ``intersection-paper``: the MAMQL authors' intersection critic: flatten,
  dense 256, 256 (ELU after each), linear output.
- ``tabular``: one value per (state, action) read off a one-hot observation; a
  linear layer without bias started at zero, i.e. an exact table.

**Dropout.** Every critic is called as ``net.apply(params, obs)``, which is
deterministic (evaluation, acting, soft values of targets). Training passes
``net.apply(params, obs, deterministic=False, rngs={"dropout": key})``: each
unit is zeroed with probability ``p`` and the kept ones scaled by ``1 / (1 - p)``,
so the expected activation is the deterministic one (inverted dropout, as in
Srivastava et al. 2014 and PyTorch's ``nn.Dropout``). With ``p = 0`` no dropout
layer is built and the two calls coincide; the parameters never depend on
``p`` (dropout has none), so a checkpoint trained with dropout is evaluated by
the same network without it. ``mairl.algos.common.make_stacked_apply`` threads
the key per agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv_as_matmul(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
    dimension_numbers=None, feature_group_count=1, precision=None, **kwargs,
):
    """A drop-in for ``lax.conv_general_dilated`` computed as one matrix product.

    Gathers the ``kh * kw`` shifted windows of the (NHWC) input into one patch
    tensor (im2col) and multiplies by the (HWIO) kernel reshaped to
    ``(kh * kw * in, out)``. Under ``jax.vmap`` over per-agent kernels this is a
    batched matmul, which XLA's CPU backend runs at matmul speed, while a vmapped
    ``lax.conv`` becomes a grouped convolution (and its gradient a slow path),
    20-60x slower there. Numerically it is the same convolution (tested against
    ``lax.conv_general_dilated``). Only what the critics use is supported: unit
    strides and dilations, no feature groups, 2-D NHWC/HWIO layouts.
    """
    ndim = lhs.ndim - 2
    if ndim != 2 or rhs.ndim != 4:
        raise ValueError(f"conv_as_matmul supports 2-D convolutions, got input {lhs.shape}")
    for name, value in (
        ("window_strides", window_strides), ("lhs_dilation", lhs_dilation),
        ("rhs_dilation", rhs_dilation),
    ):
        if value is not None and any(v != 1 for v in value):
            raise ValueError(f"conv_as_matmul supports unit {name} only, got {tuple(value)}")
    if feature_group_count != 1:
        raise ValueError("conv_as_matmul does not support feature groups")
    if dimension_numbers is not None:
        dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        if dn != jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")):
            raise ValueError("conv_as_matmul expects NHWC inputs and HWIO kernels")
    kh, kw, cin, cout = rhs.shape
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), (1, 1), padding)
    x = jnp.pad(lhs, ((0, 0), *[tuple(p) for p in padding], (0, 0)))
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    patches = jnp.concatenate(
        [x[:, i : i + ho, j : j + wo, :] for i in range(kh) for j in range(kw)], axis=-1
    )
    out = jnp.dot(patches, rhs.reshape(kh * kw * cin, cout), precision=precision)
    return out.astype(jnp.result_type(lhs, rhs))


def network_input(x: jax.Array) -> jax.Array:
    """What a network computes with: ``x`` as float32 where it is stored as bool
    or integers (compact binary maps), floating inputs unchanged.

    Exact for the values observations hold (integers below ``2**24``)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jnp.float32)


def _batched(fn):
    """Apply a network written for float ``(batch, *obs_shape)`` to unbatched
    input too, and to compact dtypes (:func:`network_input`)."""

    def wrapper(self, obs, deterministic: bool = True):
        obs = network_input(obs)
        if obs.ndim == self.obs_ndim:
            return fn(self, obs[None], deterministic)[0]
        return fn(self, obs, deterministic)

    return wrapper


#: Hidden-layer activations a critic may name.
ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def _dropout(x: jax.Array, rate: float, deterministic: bool) -> jax.Array:
    """Inverted dropout at ``rate`` (no layer at all when ``rate == 0``)."""
    if rate == 0:
        return x
    return nn.Dropout(rate, deterministic=deterministic)(x)


class MLPCritic(nn.Module):
    """Flatten, dense layers of ``hidden`` widths (``activation``, then dropout at
    ``dropout`` in training), linear output."""

    num_actions: int
    hidden: Sequence[int] = (256, 256)
    obs_ndim: int = 1
    activation: str = "relu"
    dropout: float = 0.0

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array, deterministic: bool = True) -> jax.Array:
        act = _activation(self.activation)
        x = obs.reshape(obs.shape[0], -1)
        for width in self.hidden:
            x = _dropout(act(nn.Dense(width)(x)), self.dropout, deterministic)
        return nn.Dense(self.num_actions)(x)


class CNNCritic(nn.Module):
    """Convolutions over ``(channel, x, y)`` maps (``conv_activation``, then dropout
    at ``dropout`` in training), then dense layers (``dense_activation``)."""

    num_actions: int
    features: Sequence[int] = (32, 32)
    kernels: Sequence[int] = (3, 3)
    hidden: Sequence[int] = (256,)
    padding: str = "SAME"
    obs_ndim: int = 3
    conv_activation: str = "relu"
    dense_activation: str = "relu"
    dropout: float = 0.0

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array, deterministic: bool = True) -> jax.Array:
        conv_act, dense_act = _activation(self.conv_activation), _activation(self.dense_activation)
        x = jnp.moveaxis(obs, 1, -1)  # (batch, x, y, channel)
        for feat, k in zip(self.features, self.kernels, strict=True):
            conv = nn.Conv(feat, (k, k), padding=self.padding, conv_general_dilated=conv_as_matmul)
            x = _dropout(conv_act(conv(x)), self.dropout, deterministic)
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = dense_act(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


class TabularCritic(nn.Module):
    """``Q[s, a]`` for one-hot state observations ``(num_states,)``."""

    num_actions: int
    obs_ndim: int = 1

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array, deterministic: bool = True) -> jax.Array:
        return nn.Dense(self.num_actions, use_bias=False, kernel_init=nn.initializers.zeros)(obs)


CRITICS = ("mlp", "cnn", "gems-paper", "overcooked-paper", "intersection-paper", "tabular")
#: Critics with a ``dropout`` option.
DROPOUT_CRITICS = ("mlp", "cnn", "gems-paper", "overcooked-paper", "intersection-paper")


def make_critic(name: str, num_actions: int, obs_shape: Sequence[int], *, dropout: float = 0.0,
                **kwargs) -> nn.Module:
    """A critic preset by name (see the module docstring); ``dropout``: rate of the
    training-time dropout of the presets that have one (:data:`DROPOUT_CRITICS`)."""
    ndim = len(obs_shape)
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected in [0, 1), got {dropout!r}")
    if dropout and name not in DROPOUT_CRITICS:
        raise ValueError(f"dropout: critic {name!r} has no dropout; expected 0, or one of "
                         f"{DROPOUT_CRITICS}")
    if name == "mlp":
        return MLPCritic(num_actions, obs_ndim=ndim, dropout=dropout, **kwargs)
    if name == "cnn":
        _check_map(name, obs_shape)
        return CNNCritic(num_actions, obs_ndim=ndim, dropout=dropout, **kwargs)
    if name == "gems-paper":
        _check_map(name, obs_shape)
        return CNNCritic(
            num_actions, features=(64, 64), kernels=(5, 3), hidden=(1024, 1024),
            padding="VALID", obs_ndim=ndim, conv_activation="relu", dense_activation="elu",
            dropout=dropout,
        )
    if name == "overcooked-paper":
        return MLPCritic(num_actions, hidden=(2048, 4096, 2048), obs_ndim=ndim,
                         activation="elu", dropout=dropout)
    if name == "intersection-paper":
        return MLPCritic(num_actions, hidden=(256, 256), obs_ndim=ndim, activation="elu",
                         dropout=dropout)
    if name == "tabular":
        if ndim != 1:
            raise ValueError(f"critic 'tabular' needs one-hot observations (S,), got {obs_shape}")
        return TabularCritic(num_actions, obs_ndim=1)
    raise ValueError(f"unknown critic {name!r}; expected one of {CRITICS}")


def _check_map(name: str, obs_shape: Sequence[int]) -> None:
    if len(obs_shape) != 3:
        raise ValueError(
            f"critic {name!r} needs map observations (channel, x, y), got shape {tuple(obs_shape)}"
        )


# -- continuous actions -------------------------------------------------------------------------
class MLPStateActionCritic(nn.Module):
    """``Q(s, a) -> ()``: an MLP on the flattened observation concatenated with the
    action vector; batched inputs ``obs (B, *obs_shape)``, ``actions (B, dim)`` give ``(B,)``."""

    hidden: Sequence[int] = (256, 256)
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        lead = obs.shape[: obs.ndim - self.obs_ndim]
        x = obs.reshape(*lead, -1).astype(jnp.float32)
        x = jnp.concatenate([x, actions.astype(jnp.float32)], axis=-1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


class MLPGaussianActor(nn.Module):
    """``obs -> (mean, log_std)``, each ``(..., action_dim)``: the pre-squash Gaussian of
    a tanh-squashed Gaussian policy. ``log_std`` is squashed smoothly into
    ``[log_std_min, log_std_max]`` (``mairl.algos.common.tanh_gaussian_*``)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    obs_ndim: int = 1
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        lead = obs.shape[: obs.ndim - self.obs_ndim]
        x = obs.reshape(*lead, -1).astype(jnp.float32)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        mean = nn.Dense(self.action_dim)(x)
        raw = nn.Dense(self.action_dim)(x)
        span = self.log_std_max - self.log_std_min
        log_std = self.log_std_min + 0.5 * span * (jnp.tanh(raw) + 1.0)
        return mean, log_std
