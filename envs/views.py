"""Per-agent views of map observations, for critics that should see the world
from the agent's own position.

``egocentric_map(obs, agent, channel_order, radius)`` turns a global map
``(channel, x, y)`` into the view of ``agent``: channels reordered so that the
agent's own channels come first (``channel_order[agent]``), one extra channel
marking the cells inside the grid (the walls), and a ``(2 radius + 1)`` square
window centred on the agent's cell (cells beyond the window are not seen;
``radius = size - 1`` sees the whole grid from anywhere). Jittable and
vmappable over agents (``agent`` may be traced).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def egocentric_map(
    obs: jax.Array, agent: jax.Array, channel_order: np.ndarray, radius: int
) -> jax.Array:
    """``obs (C, X, Y)`` -> ``(C + 1, 2 radius + 1, 2 radius + 1)``, agent at the centre.

    ``channel_order (num_agents, C)``: row ``i`` lists the input channels in the
    order agent ``i`` sees them; its first entry must be agent ``i``'s own
    position channel (a one-hot map).
    """
    _, nx, ny = obs.shape
    order = jnp.asarray(channel_order, jnp.int32)[agent]
    view = jnp.take(obs, order, axis=0)
    pos = jnp.argmax(view[0].reshape(-1))
    x, y = pos // ny, pos % ny
    full = jnp.concatenate([view, jnp.ones((1, nx, ny), obs.dtype)])
    padded = jnp.pad(full, ((0, 0), (radius, radius), (radius, radius)))
    size = 2 * radius + 1
    return jax.lax.dynamic_slice(padded, (0, x, y), (full.shape[0], size, size))
