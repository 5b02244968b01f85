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
``None``), with the numbers of an unsharded run bit for bit.

Several processes (hosts): after :func:`initialize` (``jax.distributed``)
every process runs the same program on one global mesh of all processes'
devices, ordered process by process (``processes x local devices``). The
runs' data enter it with :func:`put` (each process places its own devices'
shards of the same host value), results leave it with :func:`gather` (the
global value on every process), and the seed and batch axes are the same
mesh axes as on one host: a ``batch`` group no longer than a host's devices
stays inside that host, a longer one averages its gradients across hosts.
Only :func:`is_main` (process 0) writes files.
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

    The devices are laid out by ``jax.make_mesh`` (on TPUs along the chips'
    interconnect, elsewhere in ``jax.devices()`` order: process by process).
    With several processes a count takes the first ``devices / processes``
    devices of every process.

    Raises:
        ValueError: naming ``devices`` or ``batch_shards``.
    """
    available = jax.devices()
    processes = jax.process_count()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices: expected in [1, {len(available)}] (jax sees "
                             f"{len(available)} {available[0].platform} devices), got {devices}")
        if processes > 1:
            if devices % processes:
                raise ValueError(f"devices: expected a multiple of the {processes} processes "
                                 f"(the same number of devices on each), got {devices}")
            per = devices // processes
            chosen = [d for p in range(processes)
                      for d in [d for d in available if d.process_index == p][:per]]
        else:
            chosen = list(available[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices: expected at least one device, got none")
    if batch_shards < 1 or len(chosen) % batch_shards:
        raise ValueError(f"batch_shards: expected a divisor of the {len(chosen)} devices, got "
                         f"{batch_shards}")
    if processes > 1 and {d.process_index for d in chosen} != set(range(processes)):
        raise ValueError(f"devices: every one of the {processes} processes needs a device in "
                         "the mesh")
    if len(chosen) == 1:
        return None
    shape, names = (len(chosen) // batch_shards, batch_shards), (SEED, BATCH)
    types = (AxisType.Auto, AxisType.Auto)
    try:
        return jax.make_mesh(shape, names, types, devices=chosen)
    except (ValueError, NotImplementedError, AssertionError):  # a subset no topology fits
        grid = np.asarray(chosen, dtype=object).reshape(shape)
        return Mesh(grid, names, axis_types=types)


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
    """The first ``runs`` entries of every leaf's leading axis (padding dropped;
    a leaf of exactly ``runs`` entries is returned as it is, sharding and all)."""
    return jax.tree.map(lambda x: x if x.shape[0] == runs else x[:runs], tree)


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
    or replicated, so that calls do not copy it again. Without a mesh, unchanged.

    With several processes every process passes the same global value (host
    arrays, arrays of its own devices, or global arrays already on the mesh);
    each one places only its own devices' shards, with no communication."""
    if mesh is None:
        return tree
    target = NamedSharding(mesh, P(SEED) if sharded else P())
    if jax.process_count() == 1:
        return jax.device_put(tree, target)
    return jax.tree.map(lambda x: _global_array(x, target), tree)


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _global_array(x: Any, target: NamedSharding) -> jax.Array:
    """``x`` (the same value on every process) as a global array of ``target``."""
    if _is_key(x):
        data = _global_array(jax.random.key_data(x), target)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, target)  # a global array: resharded collectively
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, target, lambda index: host[index])


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False) -> bool:
    """Join a run of several processes (``jax.distributed.initialize``), before jax
    touches a device; ``True`` if this process is now one of several.

    Args:
        coordinator: ``HOST:PORT`` of process 0, where the coordination service
            listens (every process gives the same one).
        num_processes: how many processes take part.
        process_id: this process's index in ``[0, num_processes)``.
        auto: join even where none of the three is given. jax then reads what
            is missing from the environment: ``JAX_COORDINATOR_ADDRESS`` (and
            ``JAX_COORDINATOR_PORT``), a Cloud TPU VM's metadata, SLURM
            (``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS``,
            ``SLURM_PROCID``; a GPU process sees the GPU of its
            ``SLURM_LOCALID``), Open MPI (``OMPI_MCA_orte_hnp_uri``,
            ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_RANK``) or a Kubernetes
            job.

    Nothing given and ``auto`` false: a single process, nothing done. On the
    CPU the processes exchange collectives through gloo
    (``jax_cpu_collectives_implementation``). Calling it again with the same
    arguments after success does nothing.

    Raises:
        ValueError: naming ``coordinator``, ``num_processes`` or ``process_id``.
    """
    given = (coordinator, num_processes, process_id)
    if all(v is None for v in given) and not auto:
        return False
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"coordinator: expected HOST:PORT, got {coordinator!r}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes: expected >= 1, got {num_processes}")
    if process_id is not None and (process_id < 0 or (
            num_processes is not None and process_id >= num_processes)):
        bound = "" if num_processes is None else f", {num_processes}"
        raise ValueError(f"process_id: expected in [0{bound}), got {process_id}")
    if num_processes == 1 and process_id in (None, 0):
        return False  # one process: nothing to coordinate
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    if not jax.config.jax_cpu_collectives_implementation:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except ValueError as err:  # jax found no cluster to fill in what is missing
        raise ValueError(
            f"coordinator, num_processes, process_id: {err} Give --coordinator HOST:PORT "
            "--num-processes N --process-id I, or run under a cluster jax detects (Cloud TPU "
            "VM, SLURM, Open MPI, Kubernetes, JAX_COORDINATOR_ADDRESS)") from None
    except RuntimeError as err:
        if "before any JAX" in str(err):
            raise ValueError("coordinator: the processes must be joined before jax starts "
                             f"computing ({err})") from None
        raise
    return jax.process_count() > 1


def is_main() -> bool:
    """Whether this is process 0, the one that writes files and reports progress."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process has reached ``barrier(name)`` (nothing with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


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


__all__ = ["BATCH", "SEED", "barrier", "batch_shards", "data_axis", "gather", "initialize",
           "is_main", "local_batch", "local_transitions", "make_mesh", "mean_over", "pad_runs",
           "padded", "put", "seed_map", "seed_shards", "shard_slice", "take_runs"]
