"""Small helpers shared by the library, the CLI and the experiments."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def progress_bar(total: int, unit: str, enabled: bool = True):
    """A tqdm bar on stderr; yields ``update(done, total=None)`` that sets its position
    (``enabled=False``: no bar, the update does nothing)."""
    from tqdm import tqdm

    with tqdm(total=total, unit=f" {unit}", dynamic_ncols=True, leave=False,
              disable=not enabled) as bar:

        def update(done: int, total: int | None = None) -> None:
            bar.update(int(done) - bar.n)

        yield update
