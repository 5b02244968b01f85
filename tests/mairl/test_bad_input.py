"""Bad input at every entry point: one clear message that names what is wrong.

Through the command line (``mairl.cli.main`` in-process; one subprocess checks the
real exit status and stderr) every case ends in ``SystemExit`` with one line
``error: ...`` (exit status 1), never a traceback; through the Python API the same
input raises ``ValueError`` (``OSError`` for a failed write) with that text.
Nothing is lost: a directory that holds a run is refused unless overwritten, a
full disk leaves the last complete checkpoint, from which the run resumes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import envs
from envs.tabular import random_game
from mairl import data, runs
from mairl.algos import MAMQLOfflineConfig
from mairl.cli import main
from mairl.experts import GEMS_SOFT_Q_PARAMS, tabular_policy_fn
from mairl.params import flatten_params, load_params
from mairl.solvers import soft_value_iteration


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Demonstrations of random-game (1,000 transitions), a 3-agent game with the same
    observations, files that are not what they claim, and a finished tiny run."""
    root = tmp_path_factory.mktemp("bad_input")
    game = envs.make("random-game")
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 10,
                         num_envs=10)
    demos.save(root / "demos.npz")
    random_game(jax.random.key(1), 20, 3, 3, max_steps=10).save(root / "three.npz")
    (root / "garbage.npz").write_bytes(b"not a game at all" * 4)
    run = root / "run"
    runs.run(run_config(root / "demos.npz"), run)
    return {"root": root, "demos": root / "demos.npz", "three": root / "three.npz",
            "garbage": root / "garbage.npz", "run": run}


def run_config(demos: Path, **algo) -> runs.RunConfig:
    """Offline MAMQL on random-game: 1 seed, 20 updates, a checkpoint every 10 (the
    config of ``train_args``: the tabular family's ``chi2_coef``)."""
    return runs.RunConfig(
        algo=MAMQLOfflineConfig(critic="tabular", gamma=0.9, learning_rate=0.05,
                                batch_size=64, chi2_coef=0.5, **algo),
        env=runs.EnvConfig("random-game"), data=runs.DataConfig(demos=str(demos)),
        schedule=runs.ScheduleConfig(seeds=1, updates=20, eval_every=10, checkpoint_every=10),
        eval=runs.EvalConfig(eval_episodes=2, final_episodes=2))


RUN_FLAGS = ["--critic", "tabular", "--gamma", "0.9", "--learning-rate", "0.05",
             "--batch-size", "64", "--seeds", "1", "--updates", "20", "--eval-every", "10",
             "--checkpoint-every", "10", "--eval-episodes", "2", "--final-episodes", "2",
             "--quiet"]


def train_args(f: dict, *extra: str, env: str = "random-game", out: str = "out") -> list[str]:
    base = {"--env": env, "--demos": str(f["demos"]), "--out": str(f["root"] / out)}
    for flag in extra[::2]:
        base.pop(flag, None)
    args = [x for kv in base.items() for x in kv]
    return ["train", "--algo", "mamql-offline", *args, *RUN_FLAGS, *extra]


def damaged_run(f: dict, name: str, change) -> Path:
    """A copy of the finished run, then ``change(copy)``."""
    out = f["root"] / name
    if not out.exists():
        shutil.copytree(f["run"], out)
        change(out)
    return out


def edit_config(out: Path, **sections) -> None:
    path = out / "config.json"
    raw = json.loads(path.read_text())
    for key, value in sections.items():
        if isinstance(value, dict):
            raw[key].update(value)
        elif value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path.write_text(json.dumps(raw))


# (argv, what the message must say); the argv built from the fixture's files
CLI_CASES = {
    "unknown algorithm": (lambda f: ["train", "--algo", "mamq", "--env", "random-game"],
                          "'mamq' is not an algorithm. Did you mean 'mamql'?"),
    "unknown algorithm to sweep": (lambda f: ["sweep", "--algo", "mamql-ofline"],
                                   "Did you mean 'mamql-offline'?"),
    "unknown environment": (lambda f: train_args(f, env="random-gam"),
                            "EnvConfig.name: expected a registered environment"),
    "unknown environment suggestion": (lambda f: train_args(f, env="random-gam"),
                                       "did you mean 'random-game'"),
    "zero seeds": (lambda f: train_args(f, "--seeds", "0"), "ScheduleConfig.seeds: expected >= 1"),
    "negative updates": (lambda f: train_args(f, "--updates", "-10"),
                         "ScheduleConfig.updates: expected >= 1, got -10"),
    "zero batch": (lambda f: train_args(f, "--batch-size", "0"),
                   "MAMQLOfflineConfig.batch_size: expected >= 1, got 0"),
    "zero width": (lambda f: train_args(f, "--critic", "mlp", "--hidden", "64", "0"),
                   "MAMQLOfflineConfig.hidden: expected positive widths"),
    "zero evaluation episodes": (lambda f: train_args(f, "--eval-episodes", "0"),
                                 "EvalConfig.eval_episodes: expected >= 1, got 0"),
    "alpha zero": (lambda f: train_args(f, "--alpha", "0"),
                   "MAMQLOfflineConfig.alpha: expected > 0, got 0.0"),
    "alpha negative": (lambda f: train_args(f, "--alpha", "-1"),
                       "MAMQLOfflineConfig.alpha: expected > 0, got -1.0"),
    "gamma one": (lambda f: train_args(f, "--gamma", "1"),
                  "MAMQLOfflineConfig.gamma: expected in [0, 1), got 1.0"),
    "gamma negative": (lambda f: train_args(f, "--gamma", "-0.1"),
                       "MAMQLOfflineConfig.gamma: expected in [0, 1), got -0.1"),
    "sweep alpha zero": (lambda f: ["sweep", "--algo", "mamql-offline", "--env", "random-game",
                                    "--demos", str(f["demos"]), "--out", str(f["root"] / "sw"),
                                    "--grid-alpha", "0", "1"],
                         "alpha: expected > 0, got 0.0"),
    "batch larger than the data": (lambda f: train_args(f, "--batch-size", "5000"),
                                   "algo.batch_size: expected at most the 900 training "
                                   "transitions"),
    "updates not a multiple of the evaluation period": (
        lambda f: train_args(f, "--updates", "25"),
        "ScheduleConfig.updates: expected a multiple of eval_every=10, got 25"),
    "tabular file of garbage": (lambda f: train_args(f, env=f"tabular:{f['garbage']}"),
                                "garbage.npz: not a readable tabular game file"),
    "tabular file of demonstrations": (lambda f: train_args(f, env=f"tabular:{f['demos']}"),
                                       "demos.npz: missing entry 'transitions'"),
    "tabular file missing": (lambda f: train_args(f, env=f"tabular:{f['root'] / 'no.npz'}"),
                             "no.npz: no such tabular game file"),
    "demonstrations of another env": (lambda f: train_args(f, env="stag-hunt"),
                                      "do not match stag-hunt's obs_shape"),
    "demonstrations of another agent count": (
        lambda f: train_args(f, env=f"tabular:{f['three']}"),
        "demonstrations have 2 agents, env"),
    "demonstrations file missing": (lambda f: train_args(f, "--demos", "nowhere.npz"),
                                    "data.demos: no such file nowhere.npz"),
    "expert file of another env (demos)": (
        lambda f: ["demos", "--env", "stag-hunt", "--expert", "soft-q", "--out",
                   str(f["root"] / "x.npz")],
        "gems_soft_q.npz: an expert for env 'gems' (family gems); env 'stag-hunt'"),
    "expert file of another env (train)": (
        lambda f: train_args(f, "--expert", str(GEMS_SOFT_Q_PARAMS)),
        "eval.expert: "),
    "run directory missing": (lambda f: ["eval", "--run", str(f["root"] / "none")],
                              "none/config.json not found (not a run directory?)"),
    "run directory incomplete": (
        lambda f: ["eval", "--run", str(damaged_run(f, "incomplete",
                                                    lambda o: (o / "params.npz").unlink()))],
        "incomplete: no params.npz (the run did not finish); resume it"),
    "run directory of another version": (
        lambda f: ["eval", "--run", str(damaged_run(f, "v1", lambda o: edit_config(o, version=1)))],
        "config: version 1, expected 2 (written by another mairl version)"),
    "run directory without a version": (
        lambda f: ["eval", "--run", str(damaged_run(f, "v0",
                                                    lambda o: edit_config(o, version=None)))],
        "config: no 'version' entry"),
    "run directory with a broken config": (
        lambda f: ["eval", "--run", str(damaged_run(
            f, "broken", lambda o: (o / "config.json").write_text('{"version": 2,')))],
        "config.json is not valid JSON"),
    "checkpoint from another config": (
        lambda f: ["train", "--resume", str(damaged_run(
            f, "other", lambda o: edit_config(o, algo={"learning_rate": 0.01})))],
        "was written by another config than the run's config.json: "
        "algo.learning_rate: 0.05 -> 0.01"),
    "output directory holds a run": (lambda f: train_args(f, "--out", str(f["run"])),
                                     "already holds a run (config.json, metrics.json"),
    "calibrate an unknown environment": (lambda f: ["metrics", "calibrate", "--env", "stag"],
                                         "unknown environment 'stag'. Did you mean"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_command_line_refuses_bad_input_in_one_line(case, files, capsys):
    argv, message = CLI_CASES[case]
    with pytest.raises(SystemExit) as exit_info:
        main(argv(files))
    text = exit_info.value.code  # what Python prints on stderr, exiting with status 1
    assert isinstance(text, str) and text.startswith("error: ") and "\n" not in text, text
    assert message in text, text
    assert "Traceback" not in capsys.readouterr().err


def test_the_command_line_exit_status_and_stderr(files):
    code = "from mairl.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, *train_args(files, "--alpha", "0")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: MAMQLOfflineConfig.alpha: expected > 0, got 0.0"], proc.stderr


API_CASES = {
    "unknown environment": (lambda f: runs.EnvConfig("random-gam"),
                            "did you mean 'random-game'"),
    "empty tabular path": (lambda f: runs.EnvConfig("tabular:"), "EnvConfig.name: expected"),
    "zero seeds": (lambda f: runs.ScheduleConfig(seeds=0), "ScheduleConfig.seeds: expected >= 1"),
    "zero evaluation period": (lambda f: runs.ScheduleConfig(eval_every=0),
                               "ScheduleConfig.eval_every: expected in [1, updates=10000]"),
    "updates not a multiple": (lambda f: runs.ScheduleConfig(updates=25, eval_every=10),
                               "ScheduleConfig.updates: expected a multiple of eval_every=10"),
    "alpha zero": (lambda f: MAMQLOfflineConfig(alpha=0.0), "MAMQLOfflineConfig.alpha"),
    "gamma one": (lambda f: MAMQLOfflineConfig(gamma=1.0), "MAMQLOfflineConfig.gamma"),
    "unknown critic": (lambda f: MAMQLOfflineConfig(critic="resnet"),
                       "MAMQLOfflineConfig.critic: expected one of"),
    "batch larger than the data": (
        lambda f: runs.run(dataclasses.replace(
            run_config(f["demos"]), algo=MAMQLOfflineConfig(critic="tabular", batch_size=901)),
            f["root"] / "api_batch"),
        "algo.batch_size: expected at most the 900 training transitions"),
    "tabular file of garbage": (lambda f: runs.make_env(f"tabular:{f['garbage']}"),
                                "not a readable tabular game file"),
    "demonstrations of another agent count": (
        lambda f: runs.load_demos(f["demos"], envs.make(f"tabular:{f['three']}")),
        "demonstrations have 2 agents"),
    "demonstrations of another env": (
        lambda f: data.load(f["demos"], env=envs.make("random-team-game")),
        "recorded on env 'random-game', got env 'random-team-game'"),
    "expert file of another env": (
        lambda f: runs.Setup(dataclasses.replace(run_config(f["demos"]),
                                                 eval=runs.EvalConfig(expert=str(
                                                     GEMS_SOFT_Q_PARAMS)))),
        "an expert for env 'gems' (family gems); env 'random-game' is of family tabular"),
    "run directory incomplete": (
        lambda f: runs.load_run(damaged_run(f, "incomplete",
                                            lambda o: (o / "params.npz").unlink())),
        "is incomplete: no params.npz"),
    "run directory of another version": (
        lambda f: runs.load_run(damaged_run(f, "v1", lambda o: edit_config(o, version=1))),
        "config: version 1, expected 2"),
    "checkpoint from another config": (
        lambda f: runs.resume(damaged_run(
            f, "other", lambda o: edit_config(o, algo={"learning_rate": 0.01}))),
        "was written by another config"),
    "resume with a config that differs": (
        lambda f: runs.resume(f["run"], run_config(f["demos"], alpha=0.5)),
        "resume: the config differs from the run in"),
    "output directory holds a run": (lambda f: runs.run(run_config(f["demos"]), f["run"]),
                                     "already holds a run"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_the_python_api_raises_a_value_error_naming_the_field(case, files):
    call, message = API_CASES[case]
    with pytest.raises(ValueError) as info:
        call(files)
    assert message in str(info.value), str(info.value)


def test_an_output_directory_is_replaced_only_with_overwrite(files, capsys):
    out = files["root"] / "replaced"
    shutil.copytree(files["run"], out)
    (out / "notes.txt").write_text("mine")
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(SystemExit, match="already holds a run"):
        main(train_args(files, "--out", str(out)))
    assert (out / "metrics.json").read_bytes() == before  # nothing lost
    # --overwrite with a bad value is refused before anything is removed
    with pytest.raises(SystemExit, match="batch_size"):
        main(train_args(files, "--out", str(out), "--overwrite", "--batch-size", "5000"))
    assert (out / "metrics.json").read_bytes() == before
    (out / "checkpoints" / "7").mkdir()  # a checkpoint of the old run, never of the new
    (out / "eval.json").write_text("{}")
    main(train_args(files, "--out", str(out), "--overwrite"))
    assert (out / "notes.txt").read_text() == "mine"  # files not of the run stay
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["1", "2"]
    assert not (out / "eval.json").exists()


def _params(out: Path) -> dict:
    return flatten_params(load_params(out / "params.npz")[0])


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes(files, monkeypatch, capsys):
    import orbax.checkpoint as ocp

    save = ocp.CheckpointManager.save
    calls = []

    def full_disk(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:  # the second checkpoint: half written, then the disk is full
            tmp = Path(self.directory) / f"{step}.orbax-checkpoint-tmp-1"
            tmp.mkdir()
            (tmp / "part").write_bytes(b"\0" * 8)
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    out = files["root"] / "full"
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(files, "--out", str(out)))
    text = exit_info.value.code
    assert text.startswith("error: run: writing the checkpoint after 20 updates failed (No "
                           "space left on device); the last complete checkpoint, after 10 "
                           "updates, is kept"), text
    assert f"mairl train --resume {out}" in text
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["1"]
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()
    main(["train", "--resume", str(out), "--quiet"])
    for name, value in _params(files["run"]).items():  # as if never interrupted
        np.testing.assert_array_equal(_params(out)[name], value, err_msg=name)


def test_a_full_disk_while_writing_the_results_keeps_the_checkpoints(files, monkeypatch):
    import mairl.params

    def full_disk(path, params, metadata=None):
        Path(path).write_bytes(b"PK\3\4 half")  # what a writer leaves when the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    # the last step of a run: its final checkpoint is written, then the results
    out = files["root"] / "results"
    shutil.copytree(files["run"], out)
    for name in ("metrics.json", "params.npz"):
        (out / name).unlink()
    monkeypatch.setattr(mairl.params, "save_params", full_disk)
    with pytest.raises(runs.RunWriteError, match=r"writing the results .* failed \(No space "
                       r"left on device\); the last complete checkpoint, after 20 updates"):
        runs.resume(out)
    assert not (out / "metrics.json").exists()  # not mistaken for a finished run
    with pytest.raises(ValueError, match="is incomplete"):
        runs.load_run(out)
    monkeypatch.undo()
    runs.resume(out)
    for name, value in _params(files["run"]).items():
        np.testing.assert_array_equal(_params(out)[name], value, err_msg=name)


def test_a_full_disk_keeps_the_old_demonstrations_file(files, monkeypatch):
    path = files["root"] / "kept.npz"
    shutil.copy(files["demos"], path)
    before = path.read_bytes()

    def full_disk(f, **entries):
        f.write(b"PK\3\4 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(SystemExit, match=r"^error: \[Errno 28\] No space left on device$"):
        main(["demos", "--env", "random-game", "--expert", "random", "--episodes", "2",
              "--out", str(path)])
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.glob("kept.npz*")) == ["kept.npz"]


# -- the demonstrations loader under random damage ------------------------------------------------
def _small_demos() -> data.Demonstrations:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(12, 2, 3)).astype(np.float32)
    terminated, truncated = np.zeros(12, bool), np.zeros(12, bool)
    terminated[5], truncated[-1] = True, True
    return data.Demonstrations.create(
        obs, rng.integers(0, 3, (12, 2)), obs + 1, terminated, truncated,
        rewards=rng.normal(size=(12, 2)), env_id="counter", num_actions=3,
        episode_rule={"max_steps": 7}, expert_alpha=0.5, expert_gamma=0.9)


def _same(a: data.Demonstrations, b: data.Demonstrations) -> bool:
    if a.meta != b.meta:
        return False
    for name in ("obs", "actions", "next_obs", "terminated", "truncated", "episode_id",
                 "rewards"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and (x.dtype != y.dtype or x.shape != y.shape
                              or not np.array_equal(np.asarray(x), np.asarray(y))):
            return False
    return True


@pytest.mark.parametrize("compress", [True, False])
def test_fuzz_every_damaged_demonstrations_file_is_refused_or_loads_the_original(
        tmp_path, compress):
    # Seeded: 1-3 random bytes flipped, a random cut, or 1-8 random bytes inserted.
    original = _small_demos()
    path = original.save(tmp_path / "d.npz", compress=compress)
    raw = path.read_bytes()
    assert _same(data.load(path), original)
    rng = np.random.default_rng(1)
    outcomes = {"refused": 0, "same": 0}
    damaged = tmp_path / "damaged.npz"
    for i in range(240):
        b = bytearray(raw)
        if i % 3 == 0:
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
        elif i % 3 == 1:
            b = b[:int(rng.integers(len(b)))]
        else:
            at = int(rng.integers(len(b) + 1))
            b[at:at] = rng.bytes(int(rng.integers(1, 9)))
        damaged.write_bytes(bytes(b))
        try:
            loaded = data.load(damaged)
        except ValueError as err:
            assert str(err).startswith(f"{damaged}: "), err
            outcomes["refused"] += 1
            continue
        assert _same(loaded, original), f"case {i}: loaded a different file"
        outcomes["same"] += 1
    assert outcomes["refused"] > 150, outcomes


def test_an_entry_lost_from_the_archive_is_caught_by_the_checksum(tmp_path):
    # The zip CRCs check each member's bytes, not which members are there: a file
    # that lost its optional ``rewards`` would load without them.
    import zipfile

    path = _small_demos().save(tmp_path / "d.npz")
    lost = tmp_path / "lost.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(lost, "w") as dst:
        for info in src.infolist():
            if info.filename != "rewards.npy":
                dst.writestr(info, src.read(info))
    with pytest.raises(ValueError, match=r"lost\.npz: checksum mismatch"):
        data.load(lost)
    # files written before the checksum (schema version 2) still load
    old = tmp_path / "v2.npz"
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files if k != "checksum"}
    entries["schema_version"] = np.asarray(2, np.int64)
    np.savez(old, **entries)
    assert _same(data.load(old), _small_demos())
    with pytest.raises(ValueError, match="no 'checksum' entry, required in schema version 3"):
        entries["schema_version"] = np.asarray(3, np.int64)
        np.savez(old, **entries)
        data.load(old)
