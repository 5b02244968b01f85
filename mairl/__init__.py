"""mairl: multi-agent inverse reinforcement learning in JAX.

Submodules are imported on first attribute access, so ``import mairl`` is cheap.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("algos", "cli", "data", "experts", "metrics", "runs", "solvers", "train")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"mairl.{name}")
    raise AttributeError(f"module 'mairl' has no attribute {name!r}")


__all__ = list(_SUBMODULES)
