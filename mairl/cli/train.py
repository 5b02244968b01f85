"""``mairl train`` and ``mairl eval``: parsing and printing around :mod:`mairl.runs`.

The options of ``mairl train --algo NAME`` are generated from NAME's config class
and the run's config sections (``mairl.runs``), each field documented once
beside its declaration: ``mairl train --algo mamql --help`` lists them.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from mairl.algos import ALGOS

LogName = Literal["none", "tensorboard", "wandb"]

USAGE = """usage: mairl train --algo NAME --env ENV --demos FILE --out DIR [options]
       mairl train --resume DIR [--algo NAME ... to check the config]

Train an algorithm on demonstrations, several seeds at once, and write a run
directory (config.json, metrics.json, curves.csv, params.npz, plots, checkpoints/).
`mairl train --algo NAME --help` lists NAME's options with their defaults.

algorithms:
"""


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


def _args_class(name: str, resume: bool):
    """The flags of ``mairl train --algo name``: the algorithm's config and the run's
    sections, flattened (``--learning-rate``, ``--env``, ``--updates``, ...)."""
    from mairl import runs

    spec = ALGOS[name]
    out = [("out", Path, dataclasses.field(default=Path(".")))] if resume else [("out", Path)]
    return dataclasses.make_dataclass("TrainArgs", [
        ("env", runs.EnvConfig),
        *out,
        ("algo", spec.config, dataclasses.field(default_factory=spec.config)),
        ("data", runs.DataConfig, dataclasses.field(default_factory=runs.DataConfig)),
        ("schedule", runs.ScheduleConfig,
         dataclasses.field(default_factory=runs.ScheduleConfig)),
        ("eval", runs.EvalConfig, dataclasses.field(default_factory=runs.EvalConfig)),
        ("log", LogName, dataclasses.field(default="none")),
        ("quiet", bool, dataclasses.field(default=False)),
    ], frozen=True)


def _parse(name: str, argv: list[str], resume: bool):
    cls = _args_class(name, resume)
    cls.__doc__ = f"mairl train --algo {name}: {ALGOS[name].summary}."
    return tyro.cli(cls, args=argv, prog=f"mairl train --algo {name}",
                    config=(tyro.conf.OmitArgPrefixes,))


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
        raise SystemExit(f"error: --algo: {name!r} is not an algorithm; expected one of "
                         + ", ".join(ALGOS))
    log, quiet, config = "none", False, None
    if name is not None:
        args = _parse(name, rest, resume=resume_dir is not None)
        log, quiet = args.log, args.quiet
        try:
            config = runs.RunConfig(algo=args.algo, env=args.env, data=args.data,
                                    schedule=args.schedule, eval=args.eval)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        out = Path(resume_dir) if resume_dir is not None else args.out
    else:
        log = _arg_value(rest, "--log") or "none"
        quiet = "--quiet" in rest
        out = Path(resume_dir)
    trackers = [] if log == "none" else [log]
    try:
        total = (config or runs.read_config(out)).schedule
        with progress_bar(total.updates // total.eval_every, "chunks") as update:
            progress = None if quiet else update
            if resume_dir is not None:
                result = runs.resume(out, config, progress=progress, trackers=trackers)
            else:
                result = runs.run(config, out, progress=progress, trackers=trackers)
    except runs.NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3) from None
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None
    print_summary(result.metrics)
    print(f"run written to {out}")


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


def evaluate_run(run: Path, episodes: int | None = None) -> None:
    """Re-evaluate a finished run from its directory; writes ``eval.json``.

    Args:
        run: the run directory written by ``mairl train``.
        episodes: episodes per seed (default: the run's ``final_episodes``).
    """
    from mairl import runs

    try:
        summary = runs.evaluate_run(run, episodes)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    print_summary(summary)
    print(f"written {run / 'eval.json'}")
