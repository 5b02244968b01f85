"""A jittable circular replay buffer of pytrees (leading axis = capacity)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    """``data``: a pytree whose leaves have a leading ``capacity`` axis."""

    data: Any
    position: jax.Array  # int32, next slot to write
    size: jax.Array  # int32, filled slots

    @property
    def capacity(self) -> int:
        """The number of transitions the buffer holds when full (its leading axis)."""
        return jax.tree.leaves(self.data)[0].shape[0]


def buffer_init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer for items shaped like ``example`` (one item, no leading axis)."""
    if capacity < 1:
        raise ValueError(f"ReplayBuffer capacity: expected >= 1, got {capacity}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype),
                        example)
    return ReplayBuffer(data, jnp.int32(0), jnp.int32(0))


def buffer_add(buffer: ReplayBuffer, items: Any) -> ReplayBuffer:
    """Append a batch of items (leading axis ``n <= capacity``), overwriting the oldest."""
    n = jax.tree.leaves(items)[0].shape[0]
    if n > buffer.capacity:
        raise ValueError(f"ReplayBuffer: adding {n} items to a buffer of capacity "
                         f"{buffer.capacity}")
    idx = (buffer.position + jnp.arange(n)) % buffer.capacity
    data = jax.tree.map(lambda d, x: d.at[idx].set(x), buffer.data, items)
    return buffer.replace(
        data=data,
        position=(buffer.position + n) % buffer.capacity,
        size=jnp.minimum(buffer.size + n, buffer.capacity),
    )


def buffer_sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """Uniform sample with replacement among the filled slots (``size`` must be > 0)."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda d: d[idx], buffer.data)


def buffer_sample_recent(buffer: ReplayBuffer, key: jax.Array, batch_size: int,
                         window: int) -> Any:
    """Uniform sample with replacement among the ``window`` most recently written items
    (all filled slots if fewer): samples of the current behaviour, not of old policies."""
    if window < 1:
        raise ValueError(f"buffer_sample_recent: window: expected >= 1, got {window}")
    span = jnp.maximum(jnp.minimum(buffer.size, window), 1)
    back = jax.random.randint(key, (batch_size,), 0, span)  # 0: the newest item
    idx = (buffer.position - 1 - back) % buffer.capacity
    return jax.tree.map(lambda d: d[idx], buffer.data)
