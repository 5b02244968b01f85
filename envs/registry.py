"""Environment registry: ``envs.make(name, **kwargs)`` and ``envs.registered()``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvSpec:
    name: str
    entry_point: str  # "module:callable", imported lazily
    family: str
    jittable: bool
    description: str = ""
    kwargs: tuple[tuple[str, Any], ...] = ()


_REGISTRY: dict[str, EnvSpec] = {}
# "prefix:ARG" handlers, e.g. "tabular:games/my_game.npz".
_PREFIXES: dict[str, str] = {}


def register(
    name: str,
    entry_point: str,
    *,
    family: str,
    jittable: bool = True,
    description: str = "",
    **kwargs: Any,
) -> None:
    """Register ``name``; ``entry_point`` is ``"module:callable"``, imported on ``make``."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    if ":" in name:
        raise ValueError(f"environment name {name!r} must not contain ':'")
    _REGISTRY[name] = EnvSpec(
        name, entry_point, family, jittable, description, tuple(sorted(kwargs.items()))
    )


def register_prefix(prefix: str, entry_point: str) -> None:
    """``make(f"{prefix}:{arg}", **kw)`` calls ``entry_point(arg, **kw)``."""
    _PREFIXES[prefix] = entry_point


def _load(entry_point: str) -> Callable[..., Any]:
    module, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module), attr)


def registered() -> list[str]:
    """Names of every registered environment, sorted."""
    return sorted(_REGISTRY)


def prefixes() -> list[str]:
    """The registered ``prefix:ARG`` forms' prefixes (``tabular``, ``host``), sorted."""
    return sorted(_PREFIXES)


def known(name: str) -> bool:
    """Whether :func:`make` knows ``name``: a registered game, or a registered prefix
    followed by an argument (whose file or game is checked by :func:`make`)."""
    prefix, sep, arg = name.partition(":")
    if sep and prefix in _PREFIXES:
        return bool(arg)
    return name in _REGISTRY


def close_matches(name: str, n: int = 3) -> list[str]:
    """The registered names closest to ``name`` (``difflib``), best first."""
    import difflib

    return difflib.get_close_matches(name, list(_REGISTRY), n=n)


def spec(name: str) -> EnvSpec:
    """The registered ``EnvSpec`` of ``name``; an unknown name raises ``KeyError``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(_unknown(name)) from None


def _unknown(name: str) -> str:
    close = close_matches(name)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    prefixes = ", ".join(f"'{p}:...'" for p in sorted(_PREFIXES))
    return (
        f"unknown environment {name!r}.{hint} Registered: {', '.join(registered())}; "
        f"prefixes: {prefixes}."
    )


def make(name: str, **kwargs: Any):
    """Build a registered environment, or a ``prefix:ARG`` one (``tabular:PATH.npz``)."""
    prefix, sep, arg = name.partition(":")
    if sep and prefix in _PREFIXES:
        env = _load(_PREFIXES[prefix])(arg, **kwargs)
    else:
        s = spec(name)
        env = _load(s.entry_point)(**{**dict(s.kwargs), **kwargs})
    env.env_id = name
    return env


def family_of(name: str) -> str | None:
    """The family of a registered environment (``"tabular"`` for ``tabular:PATH``), or
    ``None`` for a name the registry does not know."""
    prefix, sep, _ = name.partition(":")
    if sep and prefix in _PREFIXES:
        return "tabular" if prefix == "tabular" else None
    try:
        return spec(name).family
    except KeyError:
        return None
