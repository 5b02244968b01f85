"""Suite-wide settings: a compilation cache shared by the test processes, and which
registered games get the full checks only under ``-m slow``."""

import os
import tempfile

import pytest

# Programs that several tests (and their subprocesses) compile alike are compiled
# once per session: JAX's persistent cache, in a directory shared by the xdist
# workers of one run (the controller sets it; workers and subprocesses inherit it).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="mairl-test-jax-cache-"))

import envs

#: Games checked in the default suite stand for the others of their family, which
#: share their code and differ in layout or scenario; compiling each JaxMARL game
#: takes 5-15 s on two cores, so the others run with ``pytest -m slow``.
REPRESENTATIVES = {"overcooked", "jaxmarl-mpe-simple-spread", "jaxmarl-mpe-simple-tag"}
SLOW_ENVS = {
    name for name in envs.registered() if envs.spec(name).family == "jaxmarl"
} - REPRESENTATIVES
#: Registered configurations of a game checked in the default suite (same code, other
#: constructor options: intersection-jax with another velocity scaling).
SLOW_ENVS |= {"intersection-jax-speed"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        if any(isinstance(v, str) and v in SLOW_ENVS for v in callspec.params.values()):
            item.add_marker(pytest.mark.slow)
