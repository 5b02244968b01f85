"""The ``mairl`` command line: ``envs``, ``demos``, ``train``, ``sweep``, ``eval``,
``bench``, ``metrics calibrate``, ``reproduce mamql``.

Every subcommand is a plain function whose typed arguments tyro turns into flags;
a mistyped flag is an error, never silently ignored.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import tyro

from mairl.cli.commands import bench, calibrate, demos, list_envs, reproduce_mamql
from mairl.cli.train import evaluate_run, sweep, sweep_main, train, train_main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # options generated per algorithm: parsed in two stages
        return train_main(argv[1:])
    if argv[:1] == ["sweep"]:
        return sweep_main(argv[1:])
    if argv[:2] == ["reproduce", "mamql"]:
        return reproduce_mamql(argv[2:])
    if argv[:1] == ["reproduce"]:
        raise SystemExit("error: mairl reproduce: expected a paper, one of: mamql")
    if argv[:2] == ["metrics", "calibrate"]:
        return tyro.cli(calibrate, args=argv[2:], prog="mairl metrics calibrate")
    tyro.extras.subcommand_cli_from_dict(
        {"envs": list_envs, "demos": demos, "train": train, "sweep": sweep,
         "eval": evaluate_run,
         "bench": bench},
        prog="mairl",
        description="Multi-agent inverse reinforcement learning in JAX.",
        args=argv,
    )


__all__ = ["Annotated", "Literal", "main"]
