"""Per-agent views of map observations, for critics that should see the world
from the agent's own position.

``egocentric_map(obs, agent, channel_order)`` turns a global map ``(channel, x,
y)`` into the view of ``agent``: channels reordered so that the agent's own
channels come first (``channel_order[agent]``), the map shifted so that the
agent's cell is the centre of a ``(2X - 1, 2Y - 1)`` canvas, and one extra
channel marking the cells inside the grid (the walls). Jittable and vmappable
over agents (``agent`` may be traced).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def egocentric_map(obs: jax.Array, agent: jax.Array, channel_order: np.ndarray) -> jax.Array:
    """``obs (C, X, Y)`` -> ``(C + 1, 2X - 1, 2Y - 1)``, agent at the centre.

    ``channel_order (num_agents, C)``: row ``i`` lists the input channels in the
    order agent ``i`` sees them; its first entry must be agent ``i``'s own
    position channel (a one-hot map).
    """
    num_channels, nx, ny = obs.shape
    order = jnp.asarray(channel_order, jnp.int32)[agent]
    view = jnp.take(obs, order, axis=0)
    pos = jnp.argmax(view[0].reshape(-1))
    x, y = pos // ny, pos % ny
    inside = jnp.ones((1, nx, ny), obs.dtype)
    canvas = jnp.zeros((num_channels + 1, 2 * nx - 1, 2 * ny - 1), obs.dtype)
    return jax.lax.dynamic_update_slice(
        canvas, jnp.concatenate([view, inside]), (0, nx - 1 - x, ny - 1 - y)
    )
