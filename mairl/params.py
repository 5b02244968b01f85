"""Parameter files: flax parameter trees as ``.npz``, never pickles.

Parameters are stored under their ``'/'``-joined tree paths
(``params/Dense_0/kernel``), scalar metadata under ``__meta__/<name>``. Files
load with ``allow_pickle=False``; a template tree checks names and shapes, with
``leading`` extra axes allowed in front (a run's parameters carry a seed axis).
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = ["check_params", "flatten_params", "load_params", "save_params", "unflatten_params"]

_META_PREFIX = "__meta__/"
Metadata = Mapping[str, str | int | float | bool]


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def flatten_params(params: Any) -> dict[str, np.ndarray]:
    """A nested parameter tree (dicts) as ``{"params/Dense_0/kernel": array, ...}``."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(_key_name(entry) for entry in path)
        if not name or name.startswith(_META_PREFIX.rstrip("/")):
            raise ValueError(f"flatten_params: unusable parameter path {name!r}")
        flat[name] = np.asarray(leaf)
    return flat


def unflatten_params(flat: Mapping[str, Any]) -> dict:
    """The inverse of :func:`flatten_params`: nested dicts from ``'/'``-joined keys."""
    tree: dict = {}
    for name, value in flat.items():
        parts = name.split("/")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"unflatten_params: {name!r} conflicts with a leaf at {part!r}")
            node = child
        if parts[-1] in node:
            raise ValueError(f"unflatten_params: duplicate or conflicting key {name!r}")
        node[parts[-1]] = value
    return tree


def save_params(path: str | os.PathLike, params: Any, metadata: Metadata | None = None) -> Path:
    """Write ``params`` (a nested dict of arrays) and scalar ``metadata`` as ``.npz``.

    Parameters are stored under their ``'/'``-joined paths, metadata entries
    under ``__meta__/<name>`` as 0-d arrays (strings as unicode, never objects).
    The file is written as named (no ``.npz`` suffix is added), atomically.
    """
    path = Path(path)
    arrays = flatten_params(params)
    for name, value in (metadata or {}).items():
        if not isinstance(value, str | int | float | bool) or "/" in name:
            raise ValueError(f"save_params: metadata {name!r} must be a scalar under a plain name")
        arrays[_META_PREFIX + name] = np.asarray(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:  # renamed over ``path`` once complete: a failed write leaves the old file
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_params(
    path: str | os.PathLike, template: Any = None, *, leading: int = 0
) -> tuple[dict, dict[str, str | int | float | bool]]:
    """Read a file written by :func:`save_params`: ``(params, metadata)``.

    Loaded with ``allow_pickle=False``. With a ``template`` (a parameter tree
    or its ``jax.eval_shape``), the tree is checked by :func:`check_params`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming ``path``: unreadable file, object arrays, non-finite
            values, or a mismatch with ``template``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parameter file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable parameter file ({err})") from None
    metadata: dict[str, str | int | float | bool] = {}
    flat = {}
    for name, value in arrays.items():
        if name.startswith(_META_PREFIX):
            metadata[name[len(_META_PREFIX):]] = value.item()
            continue
        if value.dtype.kind not in "fiub":
            raise ValueError(f"{path}: parameter {name!r} has dtype {value.dtype}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ValueError(f"{path}: parameter {name!r} has non-finite values")
        flat[name] = value
    if not flat:
        raise ValueError(f"{path}: no parameters in the file")
    try:
        params = unflatten_params(flat)
        if template is not None:
            check_params(params, template, leading=leading)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return params, metadata


def check_params(params: Any, template: Any, *, leading: int = 0) -> None:
    """Raise ``ValueError`` naming the entry where ``params`` differ from ``template``.

    Compares the ``'/'``-joined paths and the shapes of every leaf; with
    ``leading > 0`` every leaf of ``params`` has that many extra leading axes,
    the same for all leaves (e.g. a seed axis).
    """
    got = {k: np.shape(v) for k, v in flatten_params(params).items()}
    want = {
        "/".join(_key_name(e) for e in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]
    }
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        raise ValueError(f"parameter names differ: missing {missing}, unexpected {extra}")
    front = None
    for name, shape in want.items():
        have = got[name]
        if len(have) != len(shape) + leading or have[leading:] != shape:
            lead = "(" + ", ".join(["..."] * leading + [str(d) for d in shape]) + ")"
            expected = lead if leading else str(shape)
            raise ValueError(
                f"parameter {name!r}: expected shape {expected}, got {have}"
                f" ({math.prod(have)} values for {math.prod(shape)})"
            )
        if front is None:
            front = have[:leading]
        elif have[:leading] != front:
            raise ValueError(f"parameter {name!r}: leading axes {have[:leading]} differ from "
                             f"the other parameters' {front}")
