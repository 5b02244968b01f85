"""The Brax games in the env tests shared by every registered game.

A Brax game compiles its physics in 10-25 s per program on two cores, so the
shared contract and PettingZoo tests check them only under ``-m slow``;
``test_brax_games.py`` runs PettingZoo's tests and the contract's checks on
``ant-4x2`` by default through two compiled programs. Without the optional
``brax`` package their cases are skipped.
"""

import importlib.util

import pytest

import envs

BRAX_GAMES = {name for name in envs.registered() if envs.spec(name).family == "brax"}
#: The test modules shared by every registered game.
SHARED = {"test_contract", "test_pettingzoo"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    have_brax = importlib.util.find_spec("brax") is not None
    for item in items:
        callspec = getattr(item, "callspec", None)
        module = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
        if callspec is None or module not in SHARED:
            continue
        games = [v for v in callspec.params.values() if isinstance(v, str) and v in BRAX_GAMES]
        if not games:
            continue
        if not have_brax:
            item.add_marker(pytest.mark.skip(reason="the Brax games need the brax package"))
        else:
            item.add_marker(pytest.mark.slow)
