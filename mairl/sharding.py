"""Runs sharded over devices: seeds (and grid points) across a mesh, batches within it.

A run trains many independent learners at once (seeds, and in ``mairl.sweep``
the points of a hyperparameter grid), vmapped over a leading *run* axis. On a
machine with several devices that axis is split over a ``jax.sharding.Mesh``:

- ``seed`` mesh axis: every device trains its own runs, ``runs / devices`` of
  them vmapped, with no communication at all (``jax.shard_map`` over the
  vmapped program; the data are replicated).
- ``batch`` mesh axis (``batch_shards`` devices per group of runs): one
  learner's update is data-parallel. Every device of the group draws the same
  batch (same key), keeps its slice of ``B / batch_shards`` transitions
  (:func:`local_batch`), computes the gradient of the mean loss on its slice,
  and the gradients are averaged with ``jax.lax.pmean``. Losses are means over
  the batch, so the average of the slices' gradients is the gradient on the
  whole batch: the update, and so the run, equals the unsharded one up to
  float rounding. The optimizer step then runs identically on every device of
  the group, which keeps the parameters replicated.

The run axis is padded to a multiple of the ``seed`` mesh axis with copies of
the first run (:func:`pad_runs`), whose results are dropped: a run of 3 seeds
on 4 devices takes the time of one seed per device, and 9 seeds on 8 devices
the time of 2 per device, the same as any uneven split would take.

On one device everything reduces to the plain ``jax.vmap`` (the mesh is
``None``), with the numbers of an unsharded run bit for bit. Several
processes (``jax.distributed.initialize``) see one global mesh of all their
devices; :func:`gather` brings results to every process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

SEED = "seed"
BATCH = "batch"


def make_mesh(devices: int | Sequence[Any] | None = None, batch_shards: int = 1) -> Mesh | None:
    """The 2-D mesh ``(seed, batch)`` of ``devices`` (a count of the first of
    ``jax.devices()``, a list of devices, or ``None``: all of them), the ``batch``
    axis ``batch_shards`` long; ``None`` where that is a single device.

    Raises:
        ValueError: naming ``devices`` or ``batch_shards``.
    """
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices: expected in [1, {len(available)}] (jax sees "
                             f"{len(available)} {available[0].platform} devices), got {devices}")
        chosen = list(available[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices: expected at least one device, got none")
    if batch_shards < 1 or len(chosen) % batch_shards:
        raise ValueError(f"batch_shards: expected a divisor of the {len(chosen)} devices, got "
                         f"{batch_shards}")
    if len(chosen) == 1:
        return None
    grid = np.asarray(chosen, dtype=object).reshape(len(chosen) // batch_shards, batch_shards)
    return Mesh(grid, (SEED, BATCH), axis_types=(AxisType.Auto, AxisType.Auto))


def seed_shards(mesh: Mesh | None) -> int:
    """Length of the mesh's ``seed`` axis (1 without a mesh)."""
    return 1 if mesh is None else mesh.shape[SEED]


def batch_shards(mesh: Mesh | None) -> int:
    """Length of the mesh's ``batch`` axis (1 without a mesh)."""
    return 1 if mesh is None else mesh.shape[BATCH]


def data_axis(mesh: Mesh | None) -> str | None:
    """The axis a learner's batch is split over: ``"batch"`` where it has several
    devices, else ``None`` (no data-parallel update)."""
    return BATCH if batch_shards(mesh) > 1 else None


def padded(runs: int, mesh: Mesh | None) -> int:
    """``runs`` rounded up to a multiple of the ``seed`` axis."""
    k = seed_shards(mesh)
    return -(-runs // k) * k


def pad_runs(tree: Any, size: int) -> Any:
    """Every leaf's leading (run) axis padded to ``size`` with copies of run 0."""

    def pad(x):
        extra = size - x.shape[0]
        if extra <= 0:
            return x
        return jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


def take_runs(tree: Any, runs: int) -> Any:
    """The first ``runs`` entries of every leaf's leading axis (padding dropped)."""
    return jax.tree.map(lambda x: x[:runs], tree)


def seed_map(fn: Callable, mesh: Mesh | None, in_axes: Sequence[int | None]) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the leading run axis, split over the mesh's
    ``seed`` axis: arguments with ``in_axes`` 0 are sharded, those with ``None``
    replicated; every output is sharded on its leading axis and replicated over
    ``batch``. The run axis must be a multiple of the ``seed`` axis
    (:func:`pad_runs`). Without a mesh, the plain ``vmap``."""
    mapped = jax.vmap(fn, in_axes=tuple(in_axes))
    if mesh is None:
        return mapped
    specs = tuple(P(SEED) if a == 0 else P() for a in in_axes)
    # check_vma=False: the learners' loops start their carries from constants,
    # which the replication checker would ask to be cast to "varying" one by one;
    # nothing here differentiates through a collective, and the outputs are
    # replicated over ``batch`` because every varying value is pmean-ed.
    return jax.shard_map(mapped, mesh=mesh, in_specs=specs, out_specs=P(SEED),
                         check_vma=False)


def put(tree: Any, mesh: Mesh | None, sharded: bool) -> Any:
    """Place ``tree`` on the mesh once: its leading axis over ``seed`` (``sharded``)
    or replicated, so that calls do not copy it again. Without a mesh, unchanged."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P(SEED) if sharded else P()))


def gather(tree: Any) -> Any:
    """Every leaf as a NumPy array of the global value, on every process (in one
    process, ``jax.device_get``)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


# -- data-parallel pieces, inside the mapped program -----------------------------------------------
def shard_slice(x: jax.Array, axis_name: str, axis: int) -> jax.Array:
    """This device's contiguous slice of ``x`` along ``axis``, split evenly over the
    mesh axis ``axis_name`` (inside ``shard_map``)."""
    shards = jax.lax.axis_size(axis_name)
    if x.shape[axis] % shards:
        raise ValueError(f"batch_shards: the batch of {x.shape[axis]} does not split evenly "
                         f"over {shards} devices; expected a batch size divisible by it")
    size = x.shape[axis] // shards
    return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis_name) * size, size, axis)


def local_transitions(t: Any, axis_name: str) -> Any:
    """This device's slice of agent-major transitions (``mairl.data.Transition``:
    ``obs (agent, B, ...)``, ``actions (agent, B)``, ``terminated (B,)``, optional
    ``rewards (agent, B)``)."""
    cut = lambda x, axis: None if x is None else shard_slice(x, axis_name, axis)  # noqa: E731
    fields = {"obs": 1, "actions": 1, "next_obs": 1, "terminated": 0, "truncated": 0,
              "rewards": 1}
    return t._replace(**{k: cut(getattr(t, k), a) for k, a in fields.items() if hasattr(t, k)})


def local_batch(batch: Any, axis_name: str | None) -> Any:
    """This device's slice of an update's ``mairl.algos.Batch`` (expert transitions
    and initial observations, batch on axis 1); unchanged for ``axis_name=None``."""
    if axis_name is None or batch.expert is None:
        return batch
    init_obs = None if batch.init_obs is None else shard_slice(batch.init_obs, axis_name, 1)
    return batch._replace(expert=local_transitions(batch.expert, axis_name), init_obs=init_obs)


def mean_over(tree: Any, axis_name: str | None) -> Any:
    """``jax.lax.pmean`` of every leaf over ``axis_name`` (identity for ``None``)."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


__all__ = ["BATCH", "SEED", "batch_shards", "data_axis", "gather", "local_batch",
           "local_transitions", "make_mesh", "mean_over", "pad_runs", "padded", "put",
           "seed_map", "seed_shards", "shard_slice", "take_runs"]
