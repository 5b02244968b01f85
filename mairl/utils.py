"""Small helpers shared by the library, the CLI and the experiments."""

from __future__ import annotations

import os
import platform

import jax


def machine() -> str:
    """One line naming this machine: CPU architecture and cores, JAX version and device."""
    dev = jax.devices()[0]
    return (
        f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{dev.platform} ({dev.device_kind})"
    )
