"""Hyperparameter grids trained in one compiled program.

PureJaxRL trains many seeds at once by ``jax.vmap`` over the keys; a grid of
*continuous* hyperparameters goes the same way, because such a value changes
no shape and no control flow, only numbers: it can be a traced scalar. A
sweep therefore vmaps one run over the pairs ``(grid point, seed)``:

- **traced** (:data:`GRID_FIELDS`): the Adam step size ``learning_rate``, the
  temperature ``alpha``, the chi-squared coefficient ``chi2_coef`` and the L2
  weight ``l2``. Inside the program every run rebuilds its algorithm from a
  copy of the config whose four fields are that run's traced values (the
  config's checks ran on the concrete values of every point beforehand); the
  optimizer is rebuilt there too, so the step size is an ordinary traced
  scalar of the update, and ``optax.inject_hyperparams`` is not needed (it
  would be for a step size that changes between calls of a compiled program).
- **static**: everything that sets a shape or a branch (critic, widths, batch
  size, mode, environments, buffer, ``gamma``, target networks, clipping): one
  value per sweep, the base config's.

Runs are ordered point-major (run ``r`` is point ``r // seeds``, seed ``r %
seeds``) and seed ``i`` of every point has the key of seed ``i`` of a single
run (:func:`mairl.runs.run`), so a grid point trains and evaluates to the same
numbers as that configuration run alone (up to float rounding). The run axis
is sharded over the devices like a run's seeds (``mairl.sharding``).

On a tabular game the evaluation compares with the exact equilibrium at the
learner's temperature (``mairl.runs.oracle_for``): one oracle per ``alpha`` of
the grid, computed on the host and indexed by each run's point.

:func:`sweep` writes one run directory per point, the layout of
:mod:`mairl.runs` (``config.json``, ``metrics.json``, ``curves.csv``,
``params.npz``, plots), plus ``summary.csv``, ``summary.md`` and
``summary.png`` for the whole grid.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from mairl import runs, sharding

#: The continuous hyperparameters a grid may vary (traced in the program).
GRID_FIELDS = ("learning_rate", "alpha", "chi2_coef", "l2")
#: Algorithms whose update accepts those fields as traced values.
GRID_ALGOS = ("mamql", "mamql-offline", "iq-joint")

#: Per-point figures of the summary table: ``metrics.json`` name -> column.
SUMMARY_COLUMNS = {"return_mean": "return", "policy_kl": "policy_kl",
                   "reward_shaping_corr": "reward_shaping_corr", "heldout_kl": "heldout_kl",
                   "action_accuracy": "action_accuracy", "imitation_mse": "imitation_mse"}


@dataclass(frozen=True)
class Grid:
    """The values of each continuous hyperparameter; the grid is their product.

    Attributes:
        learning_rate: Adam step sizes (empty: the base config's only).
        alpha: Boltzmann temperatures.
        chi2_coef: chi-squared coefficients ``c`` of ``phi(x) = x - c x^2 / (4 alpha)``.
        l2: weights of the squared-parameter penalty.
    """

    learning_rate: Annotated[tuple[float, ...], tyro.conf.arg(name="grid-learning-rate")] = ()
    alpha: Annotated[tuple[float, ...], tyro.conf.arg(name="grid-alpha")] = ()
    chi2_coef: Annotated[tuple[float, ...], tyro.conf.arg(name="grid-chi2-coef")] = ()
    l2: Annotated[tuple[float, ...], tyro.conf.arg(name="grid-l2")] = ()

    def __post_init__(self):
        from mairl.algos.common import check_fields

        check_fields(self, [(name, len(set(getattr(self, name))) == len(getattr(self, name)),
                             "distinct values") for name in GRID_FIELDS])
        check_fields(self, [(name, bool(self.axes),
                             f"values for at least one of {list(GRID_FIELDS)}")
                            for name in GRID_FIELDS[:1]])

    @property
    def axes(self) -> dict[str, tuple[float, ...]]:
        """The varied fields and their values, in :data:`GRID_FIELDS` order."""
        return {k: tuple(float(v) for v in getattr(self, k)) for k in GRID_FIELDS
                if getattr(self, k)}

    def points(self) -> list[dict[str, float]]:
        """Every combination, the last field varying fastest."""
        axes = self.axes
        return [dict(zip(axes, values, strict=True))
                for values in itertools.product(*axes.values())]


def point_configs(config: runs.RunConfig, grid: Grid) -> list[runs.RunConfig]:
    """The run config of every grid point (each checked by its algorithm's config)."""
    if config.algo_name not in GRID_ALGOS:
        raise ValueError(f"grid: {config.algo_name} does not take traced hyperparameters; "
                         f"expected one of {list(GRID_ALGOS)}")
    out = []
    for point in grid.points():
        try:
            algo = dataclasses.replace(config.algo, **point)
        except ValueError as err:
            raise ValueError(f"grid: {err}") from None
        out.append(dataclasses.replace(config, algo=algo))
    return out


def traced_config(algo_config: Any, values: dict[str, jax.Array]) -> Any:
    """A copy of ``algo_config`` with the fields of ``values`` set to (traced)
    arrays, its checks skipped: they ran on every point's concrete values."""
    new = copy.copy(algo_config)
    for name, value in values.items():
        object.__setattr__(new, name, value)
    return new


def grid_runs(grid: Grid, seeds: int, seed: int = 0) -> tuple[dict, jax.Array]:
    """The inputs of every run of the grid, point-major: ``extra = {"hyper": {field:
    (run,)}, "point": (run,)}`` and ``keys (run,)``, seed ``i`` of every point
    with the key of seed ``i`` of a single run (``split(key(seed), seeds)[i]``)."""
    points = grid.points()
    values = {k: jnp.asarray([p[k] for p in points], jnp.float32) for k in grid.axes}
    point_of_run = jnp.repeat(jnp.arange(len(points), dtype=jnp.int32), seeds)
    extra = {"hyper": {k: v[point_of_run] for k, v in values.items()}, "point": point_of_run}
    seed_keys = jax.random.key_data(jax.random.split(jax.random.key(seed), seeds))
    keys = jax.random.wrap_key_data(jnp.tile(seed_keys, (len(points), 1)))
    return extra, keys


def traced_algo(config: runs.RunConfig, env: Any) -> Callable:
    """``algo_of(hyper, data_axis=None)``: the run's algorithm on ``env`` with the
    fields of ``hyper`` (traced scalars) in its config."""

    def algo_of(hyper: dict, data_axis: str | None = None):
        traced = dataclasses.replace(config, algo=traced_config(config.algo, hyper))
        return runs.build_algo(traced, env, data_axis=data_axis)

    return algo_of


def make_point_train(config: runs.RunConfig, env: Any, train_config: Any,
                     eval_of: Callable | None = None, data_axis: str | None = None) -> Callable:
    """``train_of(x)``: the ``make_train`` program of one grid run whose inputs are
    ``x = {"hyper": ..., "point": ...}`` (:func:`grid_runs`, one run's entries);
    ``eval_of(algo, x)`` gives its ``eval_fn`` (``None``: no evaluation)."""
    from mairl.train import make_train

    algo_of = traced_algo(config, env)

    def train_of(x):
        algo = algo_of(x["hyper"], data_axis)
        eval_fn = None if eval_of is None else eval_of(algo, x)
        return make_train(algo, train_config, eval_fn, data_axis=data_axis)

    return train_of


#: A sweep directory's own files, beside its points' run directories.
SWEEP_FILES = ("grid.json", "summary.csv", "summary.md", "summary.png")


def _point_dirs(out: Path) -> list[Path]:
    """The run directories of a sweep's points in ``out`` (``NNN_...`` holding a run)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name[:3].isdigit()
                  and p.name[3:4] == "_" and runs.run_files_in(p))


def sweep_files_in(out: str | Path) -> list[str]:
    """What ``out`` holds of a sweep or a run: :data:`SWEEP_FILES`, point
    directories and :data:`mairl.runs.RUN_FILES`."""
    out = Path(out)
    held = [name for name in SWEEP_FILES if (out / name).exists()]
    return held + [p.name + "/" for p in _point_dirs(out)] + runs.run_files_in(out)


def remove_sweep_files(out: str | Path) -> None:
    """Remove what :func:`sweep_files_in` lists from ``out``; other files stay."""
    out = Path(out)
    for name in SWEEP_FILES:
        if (out / name).is_file():
            (out / name).unlink()
    for p in _point_dirs(out):
        runs.remove_run_files(p)
        if not any(p.iterdir()):
            p.rmdir()
    runs.remove_run_files(out)


def point_name(index: int, point: dict[str, float]) -> str:
    """The point's directory name: ``003_learning_rate=0.01_alpha=0.5``."""
    return f"{index:03d}_" + "_".join(f"{k}={v:g}" for k, v in point.items())


@dataclass
class SweepResult:
    """A finished sweep.

    Attributes:
        points: the grid's points, in order.
        runs: each point's :class:`mairl.runs.Run` (its directory under ``dir``).
        table: the summary table, one row per point.
        dir: the sweep directory.
    """

    points: list[dict[str, float]]
    runs: list[runs.Run]
    table: list[dict]
    dir: Path


def _point_setups(base: runs.Setup, configs: Sequence[runs.RunConfig]) -> list[runs.Setup]:
    """A :class:`mairl.runs.Setup` per point sharing the base's env and data: its own
    concrete algorithm, and the oracle and calibration of its ``alpha`` (computed
    once per value)."""
    oracles: dict[float, Any] = {}
    calibrations: dict[float, Any] = {}
    out = []
    for cfg in configs:
        s = copy.copy(base)
        s.config = cfg
        s.algo = runs.build_algo(cfg, base.env)
        alpha = float(cfg.algo.alpha)
        if alpha not in oracles:
            oracles[alpha] = runs.oracle_for(base.env, s.algo.alpha, s.algo.gamma)
        s.oracle = oracles[alpha]
        s._calibration = calibrations.get(alpha)
        if s._calibration is None:
            calibrations[alpha] = s.calibration
        out.append(s)
    return out


def sweep(config: runs.RunConfig, grid: Grid, out: str | Path, *,
          devices: int | Sequence[Any] | None = None, batch_shards: int = 1,
          progress: Callable[[int, int], None] | None = None,
          point_plots: bool = False, overwrite: bool = False) -> SweepResult:
    """Train every point of ``grid`` around ``config`` (``config.schedule.seeds``
    seeds each) in one compiled program, evaluate, and write ``out``.

    Args:
        config: the base run; the grid replaces its algorithm's fields.
        devices, batch_shards: as for :func:`mairl.runs.run`; the runs of all
            points are sharded together.
        progress: ``progress(chunks_done, num_chunks)``.
        point_plots: also draw every point's ``curves.png`` and ``reward.png``
            (about 2 s a point with matplotlib); the sweep's ``summary.png`` is
            always drawn.
        overwrite: replace the sweep already in ``out`` (:func:`sweep_files_in`),
            once the grid, config and data are checked; otherwise refused.

    Raises:
        ValueError: a bad grid or config (the message names the field), a
            host-side game, or a directory that already holds a sweep or a run
            (without ``overwrite``).
        mairl.runs.RunWriteError: a file could not be written (a full disk).
    """
    from mairl.evaluation import make_eval_fn
    from mairl.train import TrainConfig, train_data

    out = Path(out)
    configs = point_configs(config, grid)
    points = grid.points()
    mesh = sharding.make_mesh(devices, batch_shards)
    base = runs.Setup(config)
    if base.host_loop or not base.jittable:
        raise ValueError(f"env: a sweep needs a jittable game; {config.env.name} steps on the host")
    held = sweep_files_in(out)
    if held and not overwrite:
        raise ValueError(f"sweep: {out} already holds a sweep or a run ({', '.join(held[:4])}"
                         f"{', ...' if len(held) > 4 else ''}); replace it (--overwrite, "
                         "overwrite=True) or choose another directory")
    setups = _point_setups(base, configs)
    base.devices = 1 if mesh is None else mesh.size
    base.batch_shards = sharding.batch_shards(mesh)
    sharding.barrier("mairl:sweep:checked")  # every process checked out before any writes
    main = sharding.is_main()  # with several processes, process 0 writes and reports
    progress = progress if main else None
    if main:
        remove_sweep_files(out)
        out.mkdir(parents=True, exist_ok=True)
        runs.write_text(out / "grid.json", json.dumps(
            {"base": runs.config_to_dict(config),
             "grid": {k: list(v) for k, v in grid.axes.items()},
             "points": [point_name(i, p) for i, p in enumerate(points)]}, indent=2) + "\n")

    sched, axes = config.schedule, grid.axes
    seeds, num_points = sched.seeds, len(points)
    extra, keys = grid_runs(grid, seeds, sched.seed)
    oracles = None
    if base.oracle is not None:
        oracles = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                               *[s.oracle for s in setups])
    expert_logits = None
    if config.eval.expert is not None:
        from mairl.experts import soft_q_expert_logits

        expert_logits = soft_q_expert_logits(config.eval.expert, base.env)
    axis = sharding.data_axis(mesh)
    tcfg = TrainConfig(num_updates=sched.updates, eval_every=sched.eval_every)
    algo_of = traced_algo(config, base.env)

    def eval_of(algo, x):
        orc = None if oracles is None else jax.tree.map(lambda o: jnp.asarray(o)[x["point"]],
                                                          oracles)
        return make_eval_fn(algo, base.env, oracle=orc, episodes=config.eval.eval_episodes,
                            expert_logits=expert_logits)

    train_of = make_point_train(config, base.env, tcfg, eval_of, data_axis=axis)

    tdata = train_data(base.train_demos, base.held)
    state, curves, updates, compile_s, run_s = runs._train_jitted(
        base, out, tdata, progress, False, None, mesh=mesh, program=(train_of, extra, keys))
    returns = _final_returns(base, algo_of, extra, state.params, seeds, num_points, mesh)

    results, table = [], []
    params = sharding.gather(state.params)
    for p, (s, cfg) in enumerate(zip(setups, configs, strict=True)):
        rows = slice(p * seeds, (p + 1) * seeds)
        p_params = jax.tree.map(lambda x, rows=rows: x[rows], params)
        p_curves = {k: v[rows] for k, v in curves.items()}
        final = {k: v[:, -1] for k, v in p_curves.items() if not k.startswith("train/")}
        final["returns"] = returns[rows]
        summary = runs.summarize(s, final, compile_s, run_s)
        summary["grid"] = {"point": p, "points": num_points, "values": points[p],
                           "grid_seed_updates_per_s": num_points * seeds * sched.updates / run_s,
                           "timings": "compile_time_s and run_time_s are the whole grid's"}
        directory = out / point_name(p, points[p])
        if main:
            directory.mkdir(parents=True, exist_ok=True)
            runs.write_text(directory / "config.json",
                            json.dumps(runs.config_to_dict(cfg), indent=2) + "\n")
            runs._write_outputs(s, directory, p_params, p_curves, updates, summary,
                                plots=point_plots)
        results.append(runs.Run(cfg, summary, p_curves, updates, p_params, s.algo, s.env,
                                directory))
        table.append(_row(point_name(p, points[p]), points[p], summary))
    if main:
        write_table(out, table, list(axes))
        plot_sweep(out / "summary.png", table, list(axes),
                   title=f"{config.algo_name} on {config.env.name}, {seeds} seeds per point")
    sharding.barrier("mairl:sweep:written")
    return SweepResult(points, results, table, out)


def _final_returns(base: runs.Setup, algo_of, extra: dict, params: Any, seeds: int,
                   num_points: int, mesh) -> np.ndarray:
    """``returns (run, episode, agent)`` of every run's final policy, the episodes of
    :func:`mairl.runs.final_evaluation` (same keys), all runs in one program."""
    from mairl import metrics
    from mairl.evaluation import policy_fn_of

    sched, episodes = base.config.schedule, base.config.eval.final_episodes
    seed_keys = jax.random.key_data(jax.random.split(jax.random.key(sched.seed + 7), seeds))
    keys = jax.random.wrap_key_data(jnp.tile(seed_keys, (num_points, 1)))

    def one(x, p, key):
        _, key_ret = jax.random.split(key)
        algo = algo_of(x["hyper"])
        return metrics.evaluate_returns(key_ret, base.env, policy_fn_of(algo, p), episodes)

    runs_ = keys.shape[0]
    size = sharding.padded(runs_, mesh)
    args = sharding.put(sharding.pad_runs((extra, params, keys), size), mesh, sharded=True)
    fn = jax.jit(sharding.seed_map(one, mesh, (0, 0, 0)))
    return sharding.take_runs(sharding.gather(fn(*args)), runs_)


def _row(name: str, point: dict[str, float], summary: dict) -> dict:
    row: dict[str, Any] = {"point": name, **point}
    for key, column in SUMMARY_COLUMNS.items():
        if key in summary:
            row[column] = float(np.mean(summary[key]["mean"]))
            if key == "return_mean":
                row["return_ci95"] = summary[key].get("ci95_half_width_over_seeds")
    return row


def write_table(out: Path, table: list[dict], axes: list[str]) -> None:
    """``summary.csv`` and ``summary.md``: one row per point, its values and the mean
    over seeds (and agents) of every reported figure."""
    columns = ["point", *axes] + [c for c in ["return", "return_ci95",
                                              *list(SUMMARY_COLUMNS.values())[1:]]
                                  if any(c in r for r in table)]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)

    def fmt(v):
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in table]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def plot_sweep(path: Path, table: list[dict], axes: list[str], title: str = "") -> None:
    """Final return (mean over seeds, 95% interval) of every point; with one varied
    field, against its value (log scale for step sizes and L2 weights), else by
    point; a second panel for the first behavioural or reward figure reported."""
    from mairl.plots import _plt, curve_label

    plt = _plt()
    others = [c for c in ("policy_kl", "reward_shaping_corr", "heldout_kl", "action_accuracy")
              if any(c in r for r in table)]
    panels = [c for c in ("return", *others[:1]) if any(c in r for r in table)]
    if not panels:
        return
    fig, ax_list = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    one_axis = len(axes) == 1
    x = [r[axes[0]] for r in table] if one_axis else list(range(len(table)))
    for ax, column in zip(ax_list.flat, panels, strict=True):
        y = [r.get(column, np.nan) for r in table]
        err = [r.get("return_ci95") or 0.0 for r in table] if column == "return" else None
        label = ("mean over seeds, bar: 95% interval" if column == "return"
                 else "mean over seeds and agents")
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        if one_axis:
            ax.set_xlabel(axes[0])
            if axes[0] in ("learning_rate", "l2") and min(x) > 0:
                ax.set_xscale("log")
        else:
            ax.set_xticks(x, [r["point"].split("_", 1)[1] for r in table], rotation=60,
                          ha="right", fontsize=7)
            ax.set_xlabel("grid point")
        ax.set_ylabel(curve_label(column), fontsize=8)
        ax.legend(fontsize=7)
        ax.set_title(f"final {column} per grid point", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "hyperparameter grid")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_grid(out: str | Path) -> dict:
    """``grid.json`` of a sweep directory: the base config, the grid, the point names."""
    path = Path(out) / "grid.json"
    if not path.is_file():
        raise ValueError(f"sweep: {path} not found (not a sweep directory?)")
    return json.loads(path.read_text())


__all__ = ["GRID_ALGOS", "GRID_FIELDS", "Grid", "SWEEP_FILES", "SweepResult", "remove_sweep_files",
           "sweep_files_in", "grid_runs", "make_point_train",
           "plot_sweep", "point_configs", "point_name", "read_grid", "sweep", "traced_algo",
           "traced_config", "write_table"]
