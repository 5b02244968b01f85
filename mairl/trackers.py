"""Streaming a run's curves to the trackers researchers watch: TensorBoard and
Weights & Biases (optional extras: ``pip install "mairl[tensorboard]"`` /
``"mairl[wandb]"``).

A tracker has ``log(curves, updates)`` (``curves``: metric -> ``(seed, chunk,
...)``, ``updates (chunk,)``), called after every segment of chunks, and
``close()``. Scalars are named ``metric/seed_s/agent`` (``metric/seed_s`` for
metrics that are not per agent); the step is the update count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def scalars(curves: dict, updates: np.ndarray,
            agents: Sequence[str] | None = None) -> Iterator[tuple[int, dict[str, float]]]:
    """``(update, {name: value})`` per chunk, one scalar per seed and agent."""
    for c, update in enumerate(np.asarray(updates)):
        row: dict[str, float] = {}
        for name, values in sorted(curves.items()):
            values = np.asarray(values)  # (seed, chunk, ...)
            for s in range(values.shape[0]):
                entry = np.atleast_1d(values[s, c]).reshape(-1)
                if entry.size == 1 and values.ndim == 2:
                    row[f"{name}/seed_{s}"] = float(entry[0])
                    continue
                for i, v in enumerate(entry):
                    label = agents[i] if agents is not None and entry.size == len(agents) else i
                    row[f"{name}/seed_{s}/{label}"] = float(v)
        yield int(update), row


class TensorBoardTracker:
    """Event files under ``directory`` (``tensorboard --logdir DIR``), written with
    tensorboardX."""

    def __init__(self, directory: str | Path, agents: Sequence[str] | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise ImportError("--log tensorboard needs tensorboardX: pip install "
                              "'mairl[tensorboard]'") from err
        self.agents = agents
        self.writer = SummaryWriter(logdir=str(directory))

    def log(self, curves: dict, updates: np.ndarray) -> None:
        """Write every curve point as a TensorBoard scalar at its update count."""
        for step, row in scalars(curves, updates, self.agents):
            for name, value in row.items():
                self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


class WandbTracker:
    """A Weights & Biases run (``mode="offline"`` writes it locally for a later
    ``wandb sync``)."""

    def __init__(self, directory: str | Path, config: dict | None = None,
                 agents: Sequence[str] | None = None, mode: str | None = None,
                 project: str = "mairl", name: str | None = None):
        try:
            import wandb
        except ImportError as err:
            raise ImportError("--log wandb needs wandb: pip install 'mairl[wandb]'") from err
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.agents = agents
        self.run = wandb.init(project=project, name=name, dir=str(directory), config=config,
                              mode=mode, reinit="create_new")

    def log(self, curves: dict, updates: np.ndarray) -> None:
        """Log every curve point to the Weights & Biases run at its update count."""
        for step, row in scalars(curves, updates, self.agents):
            self.run.log(row, step=step)

    def close(self) -> None:
        """Finish the Weights & Biases run."""
        self.run.finish()


def make_trackers(name: str, out: str | Path, config: Any = None,
                  agents: Sequence[str] | None = None) -> list:
    """The trackers of ``--log name`` (``none``, ``tensorboard`` or ``wandb``) for the
    run directory ``out`` (TensorBoard: ``out/tensorboard``; W&B: ``out/wandb``,
    offline unless ``WANDB_MODE`` says otherwise)."""
    import os

    out = Path(out)
    if name == "none":
        return []
    if name == "tensorboard":
        return [TensorBoardTracker(out / "tensorboard", agents)]
    if name == "wandb":
        return [WandbTracker(out, config, agents, mode=os.environ.get("WANDB_MODE", "offline"),
                             name=out.name)]
    raise ValueError(f"log: expected one of none, tensorboard, wandb; got {name!r}")
