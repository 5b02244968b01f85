"""The ``mairl`` command line: ``envs``, ``demos``, ``train``, ``sweep``, ``eval``,
``bench``, ``metrics calibrate``, ``reproduce mamql``.

Every subcommand is a plain function whose typed arguments tyro turns into flags;
a mistyped flag is an error, never silently ignored.

Bad input ends in one line on stderr, ``error: ...`` naming what is wrong, and
exit status 1 (a mistyped flag: tyro's usage message, status 2; a non-finite
loss: status 3): the library's ``ValueError`` (bad configs, files, directories),
``KeyError`` (unknown names) and ``OSError`` (unreadable or unwritable files, a
full disk) become that line instead of a traceback. ``MAIRL_DEBUG=1`` lets them
through with their traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Literal

import tyro

from mairl.cli.commands import bench, calibrate, demos, list_envs, reproduce_mamql
from mairl.cli.train import evaluate_run, sweep, sweep_main, train, train_main


def error_line(err: BaseException) -> str:
    """The one-line message of a library error: ``error: <what is wrong>``."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])  # str(KeyError) would quote it
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.split())
    return text if text.startswith("error: ") else f"error: {text}"


def main(argv: list[str] | None = None) -> None:
    """``mairl ARGS``: the subcommands; library errors become one line and exit 1."""
    try:
        return _dispatch(argv)
    except (ValueError, KeyError, OSError) as err:
        if os.environ.get("MAIRL_DEBUG"):
            raise
        raise SystemExit(error_line(err)) from None


def _dispatch(argv: list[str] | None) -> None:
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


__all__ = ["Annotated", "Literal", "error_line", "main"]
