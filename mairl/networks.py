"""Critic networks: ``obs -> Q(s, .)`` for one agent; stacked over agents with vmap.

Every critic maps one agent's observation ``(*obs_shape)`` (or a batch
``(batch, *obs_shape)``) to action values ``(..., num_actions)``. Per-agent
parameters are created with ``jax.vmap(net.init, in_axes=(0, None))`` and
applied with ``jax.vmap(net.apply)`` over the leading agent axis.

Presets, by name (``make_critic``):

- ``mlp``: flatten, two ReLU layers (256 by default), linear output.
- ``cnn``: two small convolutions and one dense layer, for map observations
  ``(channel, x, y)``.
- ``gems-paper``: the MAMQL paper's Gems critic: conv 5->64 kernel 5, conv
  64->64 kernel 3 (valid padding, ReLU), dense 1024, 1024, output 5.
- ``tabular``: one value per (state, action) read off a one-hot observation; a
  linear layer without bias started at zero, i.e. an exact table.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _batched(fn):
    """Apply a network written for ``(batch, *obs_shape)`` to unbatched input too."""

    def wrapper(self, obs):
        if obs.ndim == self.obs_ndim:
            return fn(self, obs[None])[0]
        return fn(self, obs)

    return wrapper


class MLPCritic(nn.Module):
    num_actions: int
    hidden: Sequence[int] = (256, 256)
    obs_ndim: int = 1

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


class CNNCritic(nn.Module):
    """Convolutions over ``(channel, x, y)`` maps, then dense layers."""

    num_actions: int
    features: Sequence[int] = (32, 32)
    kernels: Sequence[int] = (3, 3)
    hidden: Sequence[int] = (256,)
    padding: str = "SAME"
    obs_ndim: int = 3

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = jnp.moveaxis(obs.astype(jnp.float32), 1, -1)  # (batch, x, y, channel)
        for feat, k in zip(self.features, self.kernels, strict=True):
            x = nn.relu(nn.Conv(feat, (k, k), padding=self.padding)(x))
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


class TabularCritic(nn.Module):
    """``Q[s, a]`` for one-hot state observations ``(num_states,)``."""

    num_actions: int
    obs_ndim: int = 1

    @nn.compact
    @_batched
    def __call__(self, obs: jax.Array) -> jax.Array:
        return nn.Dense(self.num_actions, use_bias=False, kernel_init=nn.initializers.zeros)(
            obs.astype(jnp.float32)
        )


CRITICS = ("mlp", "cnn", "gems-paper", "tabular")


def make_critic(name: str, num_actions: int, obs_shape: Sequence[int], **kwargs) -> nn.Module:
    """A critic preset by name (see the module docstring)."""
    ndim = len(obs_shape)
    if name == "mlp":
        return MLPCritic(num_actions, obs_ndim=ndim, **kwargs)
    if name == "cnn":
        _check_map(name, obs_shape)
        return CNNCritic(num_actions, obs_ndim=ndim, **kwargs)
    if name == "gems-paper":
        _check_map(name, obs_shape)
        return CNNCritic(
            num_actions, features=(64, 64), kernels=(5, 3), hidden=(1024, 1024),
            padding="VALID", obs_ndim=ndim,
        )
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
