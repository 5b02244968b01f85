"""The MAMQL paper's comparison (Haynam et al. 2025) on Gems, Overcooked and the intersection.

MAMQL online and offline, IQ-Learn with joint-action critics, behaviour cloning,
MA-GAIL, MA-AIRL and ML-IRL, with the paper's settings per domain
(``mairl.presets``), at three sizes of expert data each; every row is a
resumable ``mairl.runs`` directory, so running the same command again picks up
where an interrupted run stopped. The work is ``mairl.reproduce``; this script
only configures it (the same as ``mairl reproduce mamql``). On Gems the MAMQL
authors' own demonstrations are used too where the file is found
(``--authors-file``; by default ``$MAIRL_GEMS_DATA`` or
``../shared/data/gems_mamql_authors.pkl.gz`` next to the repository, if present).

    python experiments/reproduce_mamql.py --budget small --docs docs   # ~15 min, 2 CPU cores
    python experiments/reproduce_mamql.py --budget full --out runs/repro-full   # see docs
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path

import tyro

from mairl.reproduce import ReproduceConfig, reproduce

AUTHORS = Path(os.environ.get(
    "MAIRL_GEMS_DATA",
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gems_mamql_authors.pkl.gz"))


def main(config: ReproduceConfig) -> None:
    if config.authors_file is None and AUTHORS.is_file() and "gems" in config.domains:
        config = dataclasses.replace(config, authors_file=AUTHORS)
    command = shlex.join(["python", "experiments/reproduce_mamql.py", *sys.argv[1:]])
    results = reproduce(dataclasses.replace(config, command=config.command or command))
    print("\n" + results.text)
    print(f"\nruns in {config.out}/; total {results.wall_s:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(ReproduceConfig))
