"""Sharded against unsharded numbers on forced host devices, run by ``test_sharding.py``
in a subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set
before jax starts). Prints one JSON object: for every check, the largest absolute
difference between the sharded and the unsharded results, and how many devices the
sharded result spans."""

import dataclasses
import json
import sys

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

import envs
from mairl import data, runs, sharding, sweep
from mairl.algos import MAMQLConfig, make_mamql
from mairl.experts import tabular_policy_fn
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, demo_batches, make_train, train_data


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def spans(tree) -> int:
    return len(jax.tree.leaves(tree)[0].sharding.device_set)


def run_sharded(train, per_run, tdata, mesh, in_axes=(0, None)):
    """``train`` for every run (``per_run``: its keys, or a tuple of per-run inputs),
    vmapped and sharded as ``mairl.runs`` does: ``(padded result, result)``."""
    per_run = per_run if isinstance(per_run, tuple) else (per_run,)
    runs_ = jax.tree.leaves(per_run)[0].shape[0]
    size = sharding.padded(runs_, mesh)
    fn = jax.jit(sharding.seed_map(train, mesh, in_axes))
    out = fn(*sharding.put(sharding.pad_runs(per_run, size), mesh, True),
             sharding.put(tdata, mesh, False))
    return out, sharding.take_runs(out, runs_)


def main():
    assert jax.device_count() == 4, jax.devices()
    game = envs.make("stag-hunt", max_steps=10)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 20,
                         num_envs=20)
    tdata = train_data(demos)
    problem = {"num_agents": 2, "obs_shape": game.obs_shape, "num_actions": 2, "env": game}
    tcfg = TrainConfig(num_updates=20, eval_every=10)
    out = {}

    # the reference: 4 seeds of online MAMQL vmapped on one device
    offline = MAMQLConfig(mode="value_expert", critic="tabular", batch_size=32, gamma=0.9,
                          learning_rate=0.05)
    online = dataclasses.replace(offline, mode="online", num_envs=2, buffer_size=200)
    train = make_train(make_mamql(online, **problem), tcfg)
    keys = jax.random.split(jax.random.key(3), 4)
    plain = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, tdata)

    # one seed per device
    full, sharded = run_sharded(train, keys, tdata, sharding.make_mesh(4))
    out["seeds"] = {"diff": max_diff(plain, sharded), "devices": spans(full.state.params)}

    # 2 seeds per group of 2 devices that split each batch: the expert batch and the
    # policy samples drawn from the replay are both split, the gradients averaged
    split = make_train(make_mamql(online, **problem, data_axis=sharding.BATCH), tcfg,
                       data_axis=sharding.BATCH)
    full, sharded = run_sharded(split, keys, tdata, sharding.make_mesh(4, batch_shards=2))
    out["batch"] = {"diff": max_diff(plain, sharded), "devices": spans(full.state.params)}

    # gradient steps on one batch: 4 shards against the whole batch
    algo = make_mamql(offline, **problem)
    split_algo = make_mamql(offline, **problem, data_axis=sharding.BATCH)
    batch = demo_batches(algo.needs)(jax.random.key(5), tdata)
    state = algo.init(jax.random.key(6), batch)
    state = state.replace(params=jax.tree.map(lambda p: p + 0.3, state.params))
    # (three steps: Adam's first step is lr * sign(gradient), blind to its size)
    def steps(update):
        def run(st, b):
            for k in range(3):
                st, m = update(st, b, jax.random.key(7 + k))
            return st, m
        return run

    one, m_one = jax.jit(steps(algo.update))(state, batch)
    step = jax.jit(jax.shard_map(
        steps(lambda st, b, k: split_algo.update(st, sharding.local_batch(b, sharding.BATCH),
                                                 k)),
        mesh=sharding.make_mesh(4, batch_shards=4), in_specs=P(), out_specs=P(),
        check_vma=False))
    two, m_two = step(state, batch)
    out["gradient_step"] = {"diff": max_diff((one.params, m_one), (two.params, m_two)),
                            "moved": max_diff(one.params, state.params)}

    # a grid of 3 step sizes x seed 0 on 4 devices (padded to 4 runs), the step size
    # traced: the first point is the reference's seed 0, the last its config alone
    grid = sweep.Grid(learning_rate=(0.05, 0.02, 0.01))
    config = runs.RunConfig(algo=runs.ALGOS["mamql"].config(**dataclasses.asdict(online)),
                            env=runs.EnvConfig("stag-hunt", view="global"))
    extra, _ = sweep.grid_runs(grid, seeds=1)
    grid_keys = jax.random.wrap_key_data(np.repeat(jax.random.key_data(keys[:1]), 3, axis=0))
    train_of = sweep.make_point_train(config, game, tcfg)
    full, got = run_sharded(lambda x, k, d: train_of(x)(k, d), (extra, grid_keys), tdata,
                            sharding.make_mesh(4), in_axes=(0, 0, None))
    last = sweep.point_configs(config, grid)[2]
    alone = jax.jit(make_train(runs.build_algo(last, game), tcfg))(keys[0], tdata)
    first = jax.tree.map(lambda x: x[0], plain)
    out["grid"] = {"diff": max(max_diff(first, jax.tree.map(lambda x: x[0], got)),
                               max_diff(alone, jax.tree.map(lambda x: x[2], got))),
                   "devices": spans(full.state.params),
                   "points_differ": max_diff(jax.tree.map(lambda x: x[0], got.state.params),
                                             jax.tree.map(lambda x: x[2], got.state.params))}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
