"""One process of a run over several processes, or the single-process reference,
started by ``test_multihost.py``.

    python multihost_checks.py DEMOS OUT full|fast|sweep [--coordinator HOST:PORT
                                                    --num-processes N --process-id I]

With the process flags it joins the others (``mairl train --coordinator ...``);
without them it is the reference, one process with as many forced CPU devices as
the others have together. Either way it trains, through ``mairl train``, 2 seeds
of online MAMQL for 2 chunks into ``OUT/run``, checkpointed after each chunk:

- first with each seed's batch split over all 4 devices (``--batch-shards 4``:
  the gradients are averaged across the processes);
- then, as if killed after the first checkpoint, the last checkpoint is removed
  and the run resumed on another layout (``--batch-shards 1``: the 2 seeds,
  padded to 4, over 4 seed shards, one or two per process). It must end with
  the numbers it had.

``fast`` stops after the first part, on 2 devices in all (``--batch-shards 2``).
``sweep`` instead trains a grid of two learning rates (``mairl sweep``, offline
MAMQL, one seed a point) into ``OUT/sweep``, its two runs over the devices.
Plots are not drawn and the reward measures not calibrated (they take longer
than the rest and come from the same arrays as ``curves.csv`` and
``metrics.json``). It prints one JSON line: the process index, the files
it wrote outside ``checkpoints/`` (only process 0 may write) and the largest
difference between the resumed and the uninterrupted parameters.
"""

import json
import pathlib
import shutil
import sys

import numpy as np

WRITES: list[str] = []


def spy_on_writes() -> None:
    """Record every file written through ``Path.write_text``, ``runs.write_text`` and
    ``runs._write_outputs``."""
    from mairl import plots, runs

    write_text, write_outputs = pathlib.Path.write_text, runs._write_outputs
    atomic_text = runs.write_text

    def text(self, *args, **kwargs):
        WRITES.append(str(self))
        return write_text(self, *args, **kwargs)

    def atomic(path, *args, **kwargs):  # runs.write_text: a temporary file, renamed
        WRITES.append(str(path))
        return atomic_text(path, *args, **kwargs)

    def outputs(s, out, *args, **kwargs):
        WRITES.append(str(pathlib.Path(out) / "params.npz"))
        return write_outputs(s, out, *args, **kwargs)

    pathlib.Path.write_text = text
    runs._write_outputs = outputs
    runs.write_text = atomic
    plots.plot_curves = plots.plot_reward_heatmap = lambda *args, **kwargs: None
    runs.Setup.calibration = property(lambda self: {})


def params_of(directory: pathlib.Path) -> dict:
    with np.load(directory / "params.npz") as f:
        return {k: np.asarray(f[k], np.float64) for k in f.files}


def main() -> None:
    demos, out, mode, process_flags = (sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3],
                                       sys.argv[4:])
    spy_on_writes()
    from mairl import sharding
    from mairl.cli import main as mairl

    common = ["--algo", "mamql", "--env", "stag-hunt", "--demos", demos, "--mode", "online",
              "--critic", "tabular", "--batch-size", "32", "--gamma", "0.9",
              "--learning-rate", "0.05", "--num-envs", "2", "--buffer-size", "200",
              "--updates", "20", "--eval-every", "10", "--eval-episodes", "2",
              "--final-episodes", "4", "--quiet", *process_flags]
    if mode == "sweep":
        mairl(["sweep", "--algo", "mamql-offline", "--env", "stag-hunt", "--demos", demos,
               "--out", str(out / "sweep"), "--seeds", "1", "--updates", "20",
               "--eval-every", "10", "--critic", "tabular", "--gamma", "0.9",
               "--batch-size", "32", "--eval-episodes", "2", "--final-episodes", "4",
               "--grid-learning-rate", "0.05", "0.01", "--quiet", *process_flags])
        import jax

        print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                          "devices": jax.device_count(), "writes": WRITES}))
        return
    run = out / "run"
    mairl(["train", *common, "--out", str(run), "--seeds", "2",  # all devices split a batch
           "--batch-shards", "2" if mode == "fast" else "4", "--checkpoint-every", "10"])
    import jax

    before = params_of(run)
    first = json.loads((run / "metrics.json").read_text())
    written = [w for w in WRITES if "checkpoints" not in pathlib.Path(w).parts]
    report = {"process": jax.process_index(), "processes": jax.process_count(),
              "devices": jax.device_count(), "writes": written,
              "first_batch_shards": first["batch_shards"]}
    if mode == "fast":
        print(json.dumps(report))
        return
    if sharding.is_main():  # as if killed after the first checkpoint
        shutil.rmtree(run / "checkpoints" / "2")
        (run / "params.npz").unlink()
    sharding.barrier("checks:killed")
    mairl(["train", "--resume", str(run), "--batch-shards", "1", "--quiet", *process_flags])
    after = params_of(run)
    report["resume_diff"] = max(float(np.max(np.abs(before[k] - after[k]))) for k in before)
    report["writes"] = [w for w in WRITES if "checkpoints" not in pathlib.Path(w).parts]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
