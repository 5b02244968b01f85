"""``mairl train``, ``mairl sweep`` and ``mairl eval``: parsing and printing around
:mod:`mairl.runs` and :mod:`mairl.sweep`.

The options of ``mairl train --algo NAME`` are generated from NAME's config class
and the run's config sections (``mairl.runs``), each field documented once
beside its declaration: ``mairl train --algo mamql --help`` lists them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import tyro

from mairl.algos import ALGOS

LogName = Literal["none", "tensorboard", "wandb"]

USAGE = """usage: mairl train --algo NAME --env ENV --demos FILE --out DIR [options]
       mairl train --resume DIR [--algo NAME ... to check the config]
       (--devices N: shard the seeds over N devices, default all; --batch-shards K;
        several hosts: --coordinator HOST:PORT --num-processes N --process-id I,
        or --distributed to read them from the cluster)

Train an algorithm on demonstrations, several seeds at once, and write a run
directory (config.json, metrics.json, curves.csv, params.npz, plots, checkpoints/).
`mairl train --algo NAME --help` lists NAME's options with their defaults.

algorithms:
"""


#: Several processes (hosts) running one run (``mairl.sharding.initialize``).
PROCESS_FLAGS = [
    ("coordinator", Annotated[str | None, tyro.conf.arg(
        help="HOST:PORT of process 0 for a run over several processes "
             "(jax.distributed.initialize); the same on every process")],
     dataclasses.field(default=None)),
    ("num_processes", Annotated[int | None, tyro.conf.arg(
        help="processes taking part in the run (with --coordinator)")],
     dataclasses.field(default=None)),
    ("process_id", Annotated[int | None, tyro.conf.arg(
        help="this process's index in [0, num-processes); process 0 writes the run")],
     dataclasses.field(default=None)),
    ("distributed", Annotated[bool, tyro.conf.arg(
        help="join a run over several processes, reading what the three flags above leave "
             "out from the cluster: Cloud TPU VM, SLURM, Open MPI, Kubernetes or "
             "JAX_COORDINATOR_ADDRESS")],
     dataclasses.field(default=False)),
]

#: ``--devices N`` (default: all devices) and ``--batch-shards K``: where a run's seeds
#: go (``mairl.runs.run``'s ``devices`` and ``batch_shards``, ``mairl.sharding``).
DEVICE_FLAGS = [
    ("devices", Annotated[int | None, tyro.conf.arg(
        help="devices the seeds are sharded over (the first N of jax.devices()); default: all")],
     dataclasses.field(default=None)),
    ("batch_shards", Annotated[int, tyro.conf.arg(
        help="devices that split each seed's batch (data-parallel updates, gradients "
             "averaged with pmean); the devices are seed shards x batch shards")],
     dataclasses.field(default=1)),
    *PROCESS_FLAGS,
]


def _arg_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _without(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


#: ``--overwrite``: replace the run already in ``--out`` (``mairl.runs.run``'s ``overwrite``).
OVERWRITE_FLAG = ("overwrite", Annotated[bool, tyro.conf.arg(
    help="replace the run (or sweep) already in --out; without it, a directory that "
         "holds one is refused")], dataclasses.field(default=False))


def unknown_algo(name: str, choices) -> str:
    """``--algo``'s message for a name not among ``choices``, with the closest ones."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"error: --algo: {name!r} is not an algorithm.{hint} Expected one of " + \
        ", ".join(choices)


def _args_class(name: str, resume: bool, family: str | None = None, extra=()):
    """The flags of ``mairl train --algo name``: the algorithm's config and the run's
    sections, flattened (``--learning-rate``, ``--env``, ``--updates``, ...). The
    algorithm's defaults are those of the env's ``family``
    (``mairl.algos.FAMILY_DEFAULTS``)."""
    from mairl import runs
    from mairl.algos import family_config

    spec = ALGOS[name]
    default = family_config(name, family)
    out = [("out", Path, dataclasses.field(default=Path(".")))] if resume else [("out", Path)]
    return dataclasses.make_dataclass("TrainArgs", [
        ("env", runs.EnvConfig),
        *out,
        *extra,
        ("algo", spec.config, dataclasses.field(default_factory=lambda: default)),
        ("data", runs.DataConfig, dataclasses.field(default_factory=runs.DataConfig)),
        ("schedule", runs.ScheduleConfig,
         dataclasses.field(default_factory=runs.ScheduleConfig)),
        ("eval", runs.EvalConfig, dataclasses.field(default_factory=runs.EvalConfig)),
        ("log", LogName, dataclasses.field(default="none")),
        ("quiet", bool, dataclasses.field(default=False)),
        *DEVICE_FLAGS,
    ], frozen=True)


def join_processes(args: Any) -> bool:
    """``mairl.sharding.initialize`` from the parsed ``PROCESS_FLAGS`` (before jax
    starts computing); whether this is process 0, the one that prints."""
    from mairl import sharding

    try:
        sharding.initialize(args.coordinator, args.num_processes, args.process_id,
                            auto=args.distributed)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return sharding.is_main()


def _process_args(argv: list[str]) -> Any:
    """``PROCESS_FLAGS`` read from a command line that has no ``--algo`` (``--resume``)."""
    try:
        values = {name: _arg_value(argv, "--" + name.replace("_", "-"))
                  for name in ("coordinator", "num_processes", "process_id")}
        for name in ("num_processes", "process_id"):
            values[name] = None if values[name] is None else int(values[name])
    except ValueError:
        raise SystemExit("error: --num-processes, --process-id: expected integers") from None
    return SimpleNamespace(**values, distributed="--distributed" in argv)


def _parse(name: str, argv: list[str], resume: bool, extra=(), prog: str = "mairl train"):
    import envs
    from mairl.algos.common import deferred_checks, recheck

    env = _arg_value(argv, "--env")
    cls = _args_class(name, resume, None if env is None else envs.family_of(env), extra)
    cls.__doc__ = f"{prog} --algo {name}: {ALGOS[name].summary}."
    # The configs' checks run after parsing, so that a bad value is one line naming
    # the field (``error: MAMQLConfig.alpha: expected > 0, got 0.0``), not a panel.
    with deferred_checks():
        args = tyro.cli(cls, args=argv, prog=f"{prog} --algo {name}",
                        config=(tyro.conf.OmitArgPrefixes,))
    sections = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)
                if dataclasses.is_dataclass(getattr(args, f.name))}
    try:
        return dataclasses.replace(args, **{k: recheck(v) for k, v in sections.items()})
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def train_main(argv: list[str]) -> None:
    """``mairl train``: parse, run (or resume), print the summary."""
    from mairl import runs
    from mairl.utils import progress_bar

    name = _arg_value(argv, "--algo")
    resume_dir = _arg_value(argv, "--resume")
    rest = _without(_without(argv, "--algo"), "--resume")
    if name is None and resume_dir is None:
        if any(a in ("-h", "--help") for a in argv):
            width = max(len(n) for n in ALGOS)
            print(USAGE + "\n".join(f"  {n:<{width}}  {s.summary}" for n, s in ALGOS.items()))
            return
        raise SystemExit("error: --algo: required (one of " + ", ".join(ALGOS) + ")")
    if name is not None and name not in ALGOS:
        raise SystemExit(unknown_algo(name, ALGOS))
    log, quiet, config, overwrite = "none", False, None, False
    if name is not None:
        resuming = resume_dir is not None
        # join before parsing: the config checks may start jax's backend
        main = join_processes(_process_args(rest))
        args = _parse(name, rest, resume=resuming, extra=() if resuming else [OVERWRITE_FLAG])
        log, quiet = args.log, args.quiet
        overwrite = getattr(args, "overwrite", False)
        devices, batch_shards = args.devices, args.batch_shards
        try:
            config = runs.RunConfig(algo=args.algo, env=args.env, data=args.data,
                                    schedule=args.schedule, eval=args.eval)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        out = Path(resume_dir) if resume_dir is not None else args.out
    else:
        main = join_processes(_process_args(rest))
        log = _arg_value(rest, "--log") or "none"
        quiet = "--quiet" in rest
        out = Path(resume_dir)
        try:
            devices = _arg_value(rest, "--devices")
            devices = None if devices is None else int(devices)
            batch_shards = int(_arg_value(rest, "--batch-shards") or 1)
        except ValueError:
            raise SystemExit("error: --devices, --batch-shards: expected integers") from None
    trackers = [] if log == "none" else [log]
    try:
        total = (config or runs.read_config(out)).schedule
        with progress_bar(total.updates // total.eval_every, "chunks", enabled=main) as update:
            progress = None if quiet else update
            where = {"devices": devices, "batch_shards": batch_shards}
            if resume_dir is not None:
                result = runs.resume(out, config, progress=progress, trackers=trackers, **where)
            else:
                result = runs.run(config, out, progress=progress, trackers=trackers,
                                  overwrite=overwrite, **where)
    except runs.NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3) from None
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None
    if main:
        print_summary(result.metrics)
        print(f"run written to {out}")


SWEEP_USAGE = """usage: mairl sweep --algo NAME --env ENV --demos FILE --out DIR
                   [--grid-learning-rate V ...] [--grid-alpha V ...]
                   [--grid-chi2-coef V ...] [--grid-l2 V ...] [options]

Train every point of a grid of continuous hyperparameters (their product), with
--seeds seeds each, in one compiled program sharded over the devices; write one
run directory per point and summary.csv, summary.md, summary.png.
`mairl sweep --algo NAME --help` lists NAME's options. Algorithms: """


def sweep_main(argv: list[str]) -> None:
    """``mairl sweep``: parse, train the grid (``mairl.sweep``), print the table."""
    from mairl import runs, sweep
    from mairl.utils import progress_bar

    name = _arg_value(argv, "--algo")
    if name is None:
        if any(a in ("-h", "--help") for a in argv):
            print(SWEEP_USAGE + ", ".join(sweep.GRID_ALGOS))
            return
        raise SystemExit("error: --algo: required (one of " + ", ".join(sweep.GRID_ALGOS) + ")")
    if name not in sweep.GRID_ALGOS:
        if name in ALGOS:
            raise SystemExit(f"error: --algo: {name!r} cannot be swept; expected one of "
                             + ", ".join(sweep.GRID_ALGOS))
        raise SystemExit(unknown_algo(name, sweep.GRID_ALGOS))
    main = join_processes(_process_args(argv))  # before the config checks start jax
    args = _parse(name, _without(argv, "--algo"), resume=False, extra=[
        ("grid", sweep.Grid),
        ("point_plots", Annotated[bool, tyro.conf.arg(
            help="also draw every point's curves.png and reward.png (about 2 s each)")],
         dataclasses.field(default=False)),
        OVERWRITE_FLAG],
                  prog="mairl sweep")
    try:
        config = runs.RunConfig(algo=args.algo, env=args.env, data=args.data,
                                schedule=args.schedule, eval=args.eval)
        total = config.schedule
        with progress_bar(total.updates // total.eval_every, "chunks", enabled=main) as update:
            result = sweep.sweep(config, args.grid, args.out, devices=args.devices,
                                 batch_shards=args.batch_shards,
                                 progress=None if args.quiet else update,
                                 point_plots=args.point_plots, overwrite=args.overwrite)
    except runs.NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3) from None
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None
    if not main:
        return
    first = result.runs[0].metrics
    print(f"{len(result.points)} points x {config.schedule.seeds} seeds, "
          f"{config.schedule.updates} updates in one program: wall {first['wall_time_s']:.1f} s "
          f"(compile {first['compile_time_s']:.1f} s), "
          f"{first['grid']['grid_seed_updates_per_s']:.0f} seed-updates/s")
    print((result.dir / "summary.md").read_text(), end="")
    print(f"sweep written to {result.dir} (one directory per point, summary.csv, summary.png)")


def sweep(algo: str, env: str, out: Path) -> None:
    """Train a grid of continuous hyperparameters in one program (``mairl sweep --algo
    NAME --help`` lists the options).

    Args:
        algo: algorithm name.
        env: environment name.
        out: sweep directory.
    """
    raise NotImplementedError  # dispatched by mairl.cli.main before tyro sees it


def train(algo: str, env: str, out: Path) -> None:
    """Train an algorithm on demonstrations, several seeds at once (``mairl train --algo
    NAME --help`` lists NAME's options; ``mairl train --help`` the algorithms).

    Args:
        algo: algorithm name.
        env: environment name.
        out: run directory.
    """
    raise NotImplementedError  # dispatched by mairl.cli.main before tyro sees it


def print_summary(summary: dict) -> None:
    """Print a run's timing and its final metrics over seeds, one line per measure."""
    def fmt(entry):
        mean = entry["mean"]
        return ", ".join(f"{m:.3f}" for m in mean) if isinstance(mean, list) else f"{mean:.3f}"

    print(f"{summary['algo']} on {summary['env']}, {summary['seeds']} seeds, "
          f"{summary['updates']} updates: {summary['updates_per_s']:.0f} updates/s per seed, "
          f"wall {summary['wall_time_s']:.1f} s (compile {summary['compile_time_s']:.1f} s)")
    measures = summary.get("measures", {})
    d = summary.get("demonstrations") or {}
    for what in ("alpha", "gamma"):
        expert, learner = d.get(f"expert_{what}"), d.get(f"learner_{what}")
        if expert is not None and learner is not None and abs(expert - learner) > 1e-9:
            print(f"  note: the demonstrations' expert used {what} {expert:g}, the learner "
                  f"{learner:g}: an exact recovery is not the expert's reward up to shaping")
    for key in ("return_per_agent", "return_mean", "reward_shaping_corr", "reward_pearson",
                "reward_spearman", "reward_epic", "policy_kl", "heldout_kl", "action_accuracy",
                "imitation_mse"):
        if key in summary:
            note = ""
            m = measures.get(key, {})
            if "reward_recovery" in m:
                cal = m.get("calibration")
                if cal is None:
                    note = "  (not calibrated on this game)"
                else:
                    verdict = "calibrated" if m["reward_recovery"] else "NOT informative"
                    note = (f"  ({verdict}: true reward up to shaping scores "
                            f"{cal['ceiling']:.2f} at worst, random {cal['floor']:.2f})")
            print(f"  {key:<20} {fmt(summary[key])}{note}")


def evaluate_run(run: Path, episodes: int | None = None, transfer: str | None = None,
                 transfer_updates: int = 6000, transfer_seeds: int = 2) -> None:
    """Re-evaluate a finished run from its directory; writes ``eval.json``.

    Args:
        run: the run directory written by ``mairl train``.
        episodes: episodes per seed (default: the run's ``final_episodes``).
        transfer: instead, the reward-transfer test (``mairl.transfer``) in the
            shifted game ``transfer`` (``envs.make`` name and keywords as
            ``NAME:key=value,...``, e.g. ``gems:size=11``): each seed's reward
            distilled and re-optimised by soft Q-learning; writes ``transfer.json``.
        transfer_updates: soft Q-learning updates per re-optimisation.
        transfer_seeds: re-optimisation seeds per reward.
    """
    from mairl import runs

    if transfer is not None:
        return _transfer(run, transfer, transfer_updates, transfer_seeds, episodes or 300)
    try:
        summary = runs.evaluate_run(run, episodes)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    print_summary(summary)
    print(f"written {run / 'eval.json'}")


def parse_env_spec(spec: str) -> tuple[str, dict]:
    """``NAME:key=value,...`` -> ``(NAME, {key: value})``; values are read as JSON
    where they parse (numbers, booleans), else kept as strings."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"transfer: expected NAME:key=value,..., got {spec!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return name, kwargs


def _transfer(run_dir: Path, spec: str, updates: int, seeds: int, episodes: int) -> None:
    import jax
    import numpy as np

    import envs
    from mairl import runs, transfer
    from mairl.algos.soft_q import SoftQConfig

    try:
        name, kwargs = parse_env_spec(spec)
        shifted = envs.make(name, **kwargs)
        run = runs.load_run(run_dir)
        demos = runs.load_demos(run.config.data.demos, run.env)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    config = SoftQConfig(alpha=run.algo.alpha, gamma=run.algo.gamma, hidden=(128, 128),
                         learning_rate=5e-4)
    learners = [(run.config.algo_name, run.algo, jax.tree.map(lambda x, s=s: x[s], run.params))
                for s in range(run.config.schedule.seeds)]
    rows = transfer.reward_transfer(jax.random.key(0), shifted, learners, config=config,
                                    demos=demos, demo_env=run.env, updates=updates, seeds=seeds,
                                    episodes=episodes, progress=print)
    normalised = rows.pop("normalised")
    result = {"shift": spec, "updates": updates, "seeds": seeds, "episodes": episodes,
              "returns": {k: np.asarray(v).tolist() for k, v in rows.items()},
              "normalised": {k: np.asarray(v).tolist() for k, v in normalised.items()}}
    runs.write_text(run_dir / "transfer.json", json.dumps(result, indent=2))
    for k, v in normalised.items():
        print(f"  {k:<18} normalised return {np.mean(v):.3f}")
    print(f"written {run_dir / 'transfer.json'}")
