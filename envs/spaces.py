"""Action and observation spaces: small frozen dataclasses, hashable and static."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Discrete:
    """Integer actions ``0 .. n - 1``."""

    n: int
    dtype: str = "int32"

    @property
    def shape(self) -> tuple[int, ...]:
        """A discrete action is a scalar: ``()``."""
        return ()

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniform int32 action in ``[0, n)``."""
        return jax.random.randint(key, (), 0, self.n, dtype=jnp.int32)

    def contains(self, x) -> bool:
        """Whether ``x`` is an integer scalar in ``[0, n)``."""
        x = np.asarray(x)
        return x.shape == () and np.issubdtype(x.dtype, np.integer) and 0 <= int(x) < self.n


@dataclass(frozen=True)
class Box:
    """Real vectors in ``[low, high]`` (bounds are scalars, broadcast over ``shape``)."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: str = "float32"

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniform float32 action in the box (unbounded sides are clipped to ``[-1, 1]``)."""
        lo = max(self.low, -1.0) if np.isinf(self.low) else self.low
        hi = min(self.high, 1.0) if np.isinf(self.high) else self.high
        return jax.random.uniform(key, self.shape, jnp.float32, lo, hi)

    def contains(self, x) -> bool:
        """Whether ``x`` has the box's shape and lies within its bounds."""
        x = np.asarray(x)
        return (
            x.shape == tuple(self.shape)
            and bool(np.all(np.isfinite(x)))
            and bool(np.all(x >= self.low))
            and bool(np.all(x <= self.high))
        )


Space = Discrete | Box
