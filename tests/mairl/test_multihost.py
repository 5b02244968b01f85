"""Runs over several processes (hosts): two local CPU processes with one device
each (slow variant: two), joined by ``jax.distributed`` (gloo collectives), against
one process with as many devices.

Both sides run ``multihost_checks.py`` (``mairl train``, and in the slow variant
a resume on another layout); each test starts the three processes side by side and
compares their run directories.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from mairl import sharding

HERE = Path(__file__).parent
TOL = 1e-5  # float32 rounding of sums taken in another order
TIMEOUT = 240  # seconds for all three processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], devices: int, log: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(HERE.parents[1])}
    err = log.with_suffix(".err")
    proc = subprocess.Popen([sys.executable, str(HERE / "multihost_checks.py"), *args], env=env,
                            stdout=open(log, "w"), stderr=open(err, "w"))
    return proc, log


def wait_all(procs: dict[str, tuple[subprocess.Popen, Path]]) -> dict[str, dict]:
    """Each process's JSON line; on a failure or the timeout every process is ended and
    the failing one's stderr reported."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p, _ in procs.values()):
            failed = [name for name, (p, _) in procs.items() if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        running = [name for name, (p, _) in procs.items() if p.poll() is None]
        for name in running:
            procs[name][0].kill()
            procs[name][0].wait()
    out, problems = {}, []
    for name, (p, log) in procs.items():
        if p.returncode != 0:
            why = (f"exit status {p.returncode}" if name not in running
                   else "timed out" if time.monotonic() > deadline
                   else "ended after another process failed")
            tail = log.with_suffix(".err").read_text()[-2500:]
            problems.append(f"--- {name}: {why}\n{tail}")
            continue
        out[name] = json.loads(log.read_text().strip().splitlines()[-1])
    assert not problems, "\n".join(problems)
    return out


def run_hosts(tmp: Path, mode: str, devices: int) -> dict[str, dict]:
    """``multihost_checks.py`` in one process with ``devices`` CPU devices and in two
    processes with half as many each, side by side; their JSON reports."""
    import envs
    from mairl import data
    from mairl.experts import tabular_policy_fn
    from mairl.solvers import soft_value_iteration

    game = envs.make("stag-hunt", max_steps=10)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 20,
                         num_envs=20)
    demos.save(tmp / "stag.npz")
    hosts = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    procs = {"single process": start([str(tmp / "stag.npz"), str(tmp / "single"), mode],
                                     devices, tmp / "single.log")}
    for i in range(2):
        procs[f"process {i} of 2"] = start(
            [str(tmp / "stag.npz"), str(tmp / "multi"), mode, *hosts, "--process-id", str(i)],
            devices // 2, tmp / f"multi{i}.log")
    return wait_all(procs)


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """2 local processes x 1 CPU device against 1 process x 2: 2 seeds of online
    MAMQL whose batches are split over both processes (the gradients averaged
    across them with pmean), checkpointed collectively."""
    tmp = tmp_path_factory.mktemp("hosts")
    return tmp, run_hosts(tmp, "fast", 2)


@pytest.fixture(scope="module")
def two_hosts_resumed(tmp_path_factory):
    """2 local processes x 2 CPU devices against 1 process x 4: the batches split over
    all 4 devices, then resumed from the first checkpoint with the seeds (padded to
    4) sharded over the 4 devices, across the processes."""
    tmp = tmp_path_factory.mktemp("hosts_resumed")
    return tmp, run_hosts(tmp, "full", 4)


@pytest.fixture(scope="module")
def two_hosts_sweep(tmp_path_factory):
    """2 local processes x 1 CPU device against 1 process x 2: ``mairl sweep`` over
    two learning rates, one run per device."""
    tmp = tmp_path_factory.mktemp("hosts_sweep")
    return tmp, run_hosts(tmp, "sweep", 2)


def read_params(directory: Path) -> dict:
    with np.load(directory / "params.npz") as f:
        return {k: np.asarray(f[k], np.float64) for k in f.files}


def read_curves(directory: Path) -> dict:
    with open(directory / "curves.csv", newline="") as f:
        return {(r["seed"], r["updates"], r["metric"], r["agent"]): float(r["value"])
                for r in csv.DictReader(f)}


def check_same_numbers(tmp: Path, reports: dict, devices: int) -> None:
    single, multi = tmp / "single" / "run", tmp / "multi" / "run"
    a, b = read_params(single), read_params(multi)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=TOL, err_msg=k)
    ca, cb = read_curves(single), read_curves(multi)
    assert ca.keys() == cb.keys()
    worst = max(abs(ca[k] - cb[k]) for k in ca)
    assert worst <= 1e-4, worst
    ma = json.loads((single / "metrics.json").read_text())
    mb = json.loads((multi / "metrics.json").read_text())
    np.testing.assert_allclose(mb["return_mean"]["per_seed"], ma["return_mean"]["per_seed"],
                               atol=1e-4)
    assert (ma["processes"], mb["processes"]) == (1, 2)
    assert ma["devices"] == mb["devices"] == devices
    first, second = reports["process 0 of 2"], reports["process 1 of 2"]
    assert first["devices"] == second["devices"] == devices  # one global mesh of both
    assert first["first_batch_shards"] == devices
    assert (first["process"], second["process"], first["processes"]) == (0, 1, 2)


def check_writes(tmp: Path, reports: dict) -> None:
    assert reports["process 1 of 2"]["writes"] == []
    written = {Path(w).relative_to(tmp / "multi").as_posix()
               for w in reports["process 0 of 2"]["writes"]}
    assert written == {"run/config.json", "run/metrics.json", "run/params.npz"}
    steps = sorted(p.name for p in (tmp / "multi" / "run" / "checkpoints").iterdir())
    assert steps == ["1", "2"]  # written collectively, every process's shards


def test_two_processes_give_the_numbers_of_one_process_with_as_many_devices(two_hosts):
    check_same_numbers(*two_hosts, devices=2)


def test_only_process_zero_writes_the_run_directory(two_hosts):
    check_writes(*two_hosts)


def test_a_sweep_over_two_processes_gives_the_numbers_of_one_process(two_hosts_sweep):
    tmp, reports = two_hosts_sweep
    single, multi = tmp / "single" / "sweep", tmp / "multi" / "sweep"
    names = json.loads((single / "grid.json").read_text())["points"]
    assert json.loads((multi / "grid.json").read_text())["points"] == names and len(names) == 2
    for name in names:
        a, b = read_params(single / name), read_params(multi / name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(b[k], a[k], atol=TOL, err_msg=f"{name} {k}")
        ma = json.loads((single / name / "metrics.json").read_text())
        mb = json.loads((multi / name / "metrics.json").read_text())
        np.testing.assert_allclose(mb["return_mean"]["per_seed"],
                                   ma["return_mean"]["per_seed"], atol=1e-4)
    # the two learning rates train differently: the comparison is not of equal runs
    a0, a1 = read_params(single / names[0]), read_params(single / names[1])
    assert any(not np.allclose(a0[k], a1[k]) for k in a0)
    first, second = reports["process 0 of 2"], reports["process 1 of 2"]
    assert first["devices"] == second["devices"] == 2
    assert (first["process"], second["process"], first["processes"]) == (0, 1, 2)
    assert second["writes"] == []  # only process 0 writes the sweep
    written = {Path(w).relative_to(multi).as_posix() for w in first["writes"]}
    assert {"grid.json", *(f"{n}/{f}" for n in names
                           for f in ("config.json", "params.npz"))} <= written


@pytest.mark.slow
def test_a_run_over_two_processes_resumes_on_another_global_mesh(two_hosts_resumed):
    tmp, reports = two_hosts_resumed
    check_same_numbers(tmp, reports, devices=4)
    check_writes(tmp, reports)
    # resumed from its first checkpoint on another layout, the run ends where the
    # uninterrupted one ended
    for report in reports.values():
        assert report["resume_diff"] <= TOL


# -- joining, and the errors that name the field ---------------------------------------------------
def test_one_process_joins_nothing_and_bad_process_flags_name_the_field():
    assert sharding.initialize() is False  # nothing given: a single process
    assert sharding.initialize(num_processes=1) is False
    assert sharding.is_main()
    sharding.barrier("alone")  # one process: returns at once
    with pytest.raises(ValueError, match="coordinator: expected HOST:PORT"):
        sharding.initialize("localhost", 2, 0)
    with pytest.raises(ValueError, match="num_processes: expected >= 1"):
        sharding.initialize("localhost:1234", 0, 0)
    with pytest.raises(ValueError, match=r"process_id: expected in \[0, 2\)"):
        sharding.initialize("localhost:1234", 2, 2)
    jax.devices()  # jax has started: too late to join others
    with pytest.raises(ValueError, match="must be joined before jax starts"):
        sharding.initialize("127.0.0.1:1234", 2, 0)


def test_train_help_lists_the_process_flags(capsys):
    from mairl.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--algo", "mamql", "--help"])
    text = capsys.readouterr().out
    for flag in ("--coordinator", "--num-processes", "--process-id", "--distributed"):
        assert flag in text, flag


def test_importing_the_library_does_not_start_jax():
    # jax.distributed.initialize must come before jax's backend starts; a module that
    # computes at import (a constant from jnp) would make every multi-process run fail.
    code = (
        "import jax._src.xla_bridge as xb\n"
        "def refuse(*a, **k): raise SystemExit('the backend started at import')\n"
        "xb.backends = refuse\n"
        "import envs, mairl, mairl.algos, mairl.runs, mairl.cli, mairl.sweep, mairl.bench\n"
        "import mairl.reproduce, mairl.presets, mairl.sharding, mairl.networks\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
