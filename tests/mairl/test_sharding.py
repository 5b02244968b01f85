"""Runs sharded over devices (mairl.sharding) and hyperparameter grids (mairl.sweep).

The sharded-against-unsharded checks need several devices, which on the CPU means
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before jax starts: they
run in a subprocess (``sharded_checks.py``) and report their differences here.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mairl import runs, sharding, sweep
from mairl.algos import BCConfig, MAMQLOfflineConfig, make_algo
from mairl.cli import main

HERE = Path(__file__).parent
TOL = 1e-5  # float32 rounding of sums taken in another order


@pytest.fixture(scope="module")
def forced_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run([sys.executable, str(HERE / "sharded_checks.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_seeds_sharded_one_per_device_equal_the_unsharded_run(forced_devices):
    r = forced_devices["seeds"]
    assert r["devices"] == 4
    assert r["diff"] <= TOL


def test_a_batch_split_over_devices_equals_the_unsharded_run(forced_devices):
    # 4 seeds x online MAMQL over a (2 seed, 2 batch) mesh: expert batch and replay
    # samples split, gradients pmean-ed; a missing pmean leaves each device on its
    # own half batch and the parameters differ by far more than rounding
    r = forced_devices["batch"]
    assert r["devices"] == 4
    assert r["diff"] <= TOL


def test_the_batch_sharded_gradient_step_equals_the_unsharded_one(forced_devices):
    r = forced_devices["gradient_step"]
    assert r["moved"] > 1e-3  # the step did something
    assert r["diff"] <= TOL


def test_a_grid_sharded_over_devices_equals_its_points_run_alone(forced_devices):
    r = forced_devices["grid"]
    assert r["devices"] == 4
    assert r["points_differ"] > 1e-2  # the traced step sizes do reach the update
    assert r["diff"] <= TOL


# -- meshes, padding, errors ----------------------------------------------------------------------
def test_one_device_is_no_mesh_and_bad_counts_name_the_field():
    assert sharding.make_mesh() is None  # this CPU: one device, plain vmap
    assert sharding.make_mesh(1) is None
    with pytest.raises(ValueError, match="devices: expected in"):
        sharding.make_mesh(jax.device_count() + 1)
    with pytest.raises(ValueError, match="batch_shards"):
        sharding.make_mesh(1, batch_shards=2)
    assert sharding.padded(3, None) == 3


def test_padding_repeats_the_first_run_and_is_dropped_again():
    tree = {"a": np.arange(3.0), "b": np.arange(6.0).reshape(3, 2)}
    padded = sharding.pad_runs(tree, 4)
    np.testing.assert_array_equal(padded["a"], [0, 1, 2, 0])
    np.testing.assert_array_equal(padded["b"][3], tree["b"][0])
    back = sharding.take_runs(padded, 3)
    np.testing.assert_array_equal(back["b"], tree["b"])


def test_only_data_parallel_algorithms_take_a_batch_axis():
    with pytest.raises(ValueError, match="batch_shards: bc has no data-parallel update"):
        make_algo(BCConfig(), num_agents=2, obs_shape=(3,), num_actions=2,
                  data_axis=sharding.BATCH)


# -- grids ----------------------------------------------------------------------------------------
def test_grid_points_are_the_product_and_bad_grids_name_the_field():
    grid = sweep.Grid(learning_rate=(0.1, 0.01), l2=(0.0, 1e-3, 1e-2))
    points = grid.points()
    assert len(points) == 6
    assert points[0] == {"learning_rate": 0.1, "l2": 0.0}
    assert points[-1] == {"learning_rate": 0.01, "l2": 0.01}
    assert sweep.point_name(5, points[5]) == "005_learning_rate=0.01_l2=0.01"
    with pytest.raises(ValueError, match="Grid.alpha: expected distinct"):
        sweep.Grid(alpha=(1.0, 1.0))
    with pytest.raises(ValueError, match="at least one"):
        sweep.Grid()
    base = runs.RunConfig(algo=MAMQLOfflineConfig(), env=runs.EnvConfig("stag-hunt"))
    with pytest.raises(ValueError, match="alpha: expected > 0"):
        sweep.point_configs(base, sweep.Grid(alpha=(1.0, -1.0)))
    bc = dataclasses.replace(base, algo=BCConfig())
    with pytest.raises(ValueError, match="grid: bc does not take traced"):
        sweep.point_configs(bc, grid)


def test_grid_runs_are_point_major_with_the_keys_of_single_runs():
    grid = sweep.Grid(alpha=(0.5, 1.0), chi2_coef=(0.5, 1.0, 2.0))
    extra, keys = sweep.grid_runs(grid, seeds=2, seed=7)
    assert keys.shape == (12,)
    np.testing.assert_array_equal(extra["point"], np.repeat(np.arange(6), 2))
    np.testing.assert_allclose(extra["hyper"]["alpha"], np.repeat([0.5, 0.5, 0.5, 1, 1, 1], 2))
    np.testing.assert_allclose(extra["hyper"]["chi2_coef"], np.repeat([0.5, 1, 2] * 2, 2))
    single = jax.random.key_data(jax.random.split(jax.random.key(7), 2))
    data = jax.random.key_data(keys)
    for p in range(6):
        np.testing.assert_array_equal(data[2 * p:2 * p + 2], single)


def test_sweep_help_lists_the_grid_flags(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--algo", "mamql-offline", "--help"])
    text = capsys.readouterr().out
    for flag in ("--grid-learning-rate", "--grid-alpha", "--grid-chi2-coef", "--grid-l2",
                 "--devices", "--batch-shards", "--point-plots"):
        assert flag in text, flag
    with pytest.raises(SystemExit, match="cannot be swept"):
        main(["sweep", "--algo", "bc", "--env", "stag-hunt", "--out", "x"])


@pytest.mark.slow
def test_sweep_command_writes_every_point_and_equals_the_point_run_alone(tmp_path):
    import envs
    from mairl import data
    from mairl.experts import tabular_policy_fn
    from mairl.solvers import soft_value_iteration

    game = envs.make("stag-hunt", max_steps=10)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 20,
                         num_envs=20)
    path = tmp_path / "stag.npz"
    demos.save(path)
    out = tmp_path / "sweep"
    main(["sweep", "--algo", "mamql-offline", "--env", "stag-hunt", "--demos", str(path),
          "--out", str(out), "--seeds", "2", "--updates", "20", "--eval-every", "10",
          "--critic", "tabular", "--gamma", "0.9", "--batch-size", "32", "--eval-episodes", "2",
          "--final-episodes", "4", "--grid-learning-rate", "0.05", "0.01", "--grid-alpha", "1",
          "0.5", "--quiet"])
    names = json.loads((out / "grid.json").read_text())["points"]
    assert len(names) == 4
    for name in names:
        for f in ("config.json", "metrics.json", "curves.csv", "params.npz"):
            assert (out / name / f).exists(), (name, f)
    for f in ("summary.csv", "summary.md", "summary.png"):
        assert (out / f).exists(), f
    point = runs.read_config(out / names[3])
    assert point.algo.learning_rate == 0.01 and point.algo.alpha == 0.5
    alone = runs.run(point, tmp_path / "alone")
    swept = runs.load_run(out / names[3])
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(swept.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL)
    for name, values in alone.curves.items():
        np.testing.assert_allclose(values, swept.curves[name], atol=1e-4, err_msg=name)
    np.testing.assert_allclose(alone.metrics["return_mean"]["per_seed"],
                               swept.metrics["return_mean"]["per_seed"], atol=1e-4)
