"""Host-side envs: evaluation, online training and the train command through a host loop."""

import json

import chex
import jax
import numpy as np
import pytest

import envs
from mairl import data, metrics
from mairl.algos import FIQConfig, MAMQLConfig, make_algo, make_mamql
from mairl.cli import main
from mairl.experts import tabular_policy_fn
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, make_train, train_data, train_host


@pytest.fixture(scope="module")
def stag():
    game = envs.make("stag-hunt", max_steps=10)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    return game, sol


def test_host_env_returns_equal_jitted_returns(stag):
    game, sol = stag
    host = envs.make("host:stag-hunt", max_steps=10)
    assert not host.jittable and host.num_actions == 2
    policy = tabular_policy_fn(game, sol.policy)
    key = jax.random.key(5)
    jitted = metrics.evaluate_returns(key, game, policy, 6, max_steps=7)
    hosted = metrics.evaluate_returns(key, host, policy, 6, max_steps=7)
    np.testing.assert_allclose(hosted, jitted, rtol=1e-6)
    # a plain-Python policy (``host = True``) runs un-jitted
    calls = []

    def first_action(key, obs):
        calls.append(type(obs))
        return np.zeros(2, np.int32)

    first_action.host = True
    ret = metrics.evaluate_returns(key, host, first_action, 2, max_steps=3)
    assert ret.shape == (2, 2) and len(calls) == 6


@pytest.mark.parametrize("config_class", [MAMQLConfig, FIQConfig])
def test_online_training_through_the_host_loop_equals_the_jitted_loop(stag, config_class):
    # The same game, once stepped inside jit and once on the host: same keys,
    # same rollouts, same replay, same parameters (online MAMQL, online fiq).
    game, sol = stag
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 40,
                         num_envs=20)
    cfg = config_class(mode="online", critic="tabular", batch_size=32, gamma=0.9,
                       learning_rate=0.05, num_envs=3, buffer_size=64)
    dims = dict(num_agents=2, obs_shape=game.obs_shape, num_actions=2)
    host_algo = make_algo(cfg, env=envs.make("host:stag-hunt", max_steps=10), **dims)
    jit_algo = make_algo(cfg, env=game, **dims)
    assert host_algo.act is not None and jit_algo.act is None
    tcfg = TrainConfig(num_updates=30, eval_every=10)
    keys = jax.random.split(jax.random.key(1), 2)
    seen = []
    hosted = train_host(host_algo, tcfg, lambda: envs.make("host:stag-hunt", max_steps=10),
                        keys, train_data(demos), progress=seen.append)
    jitted = jax.jit(jax.vmap(make_train(jit_algo, tcfg), in_axes=(0, None)))(
        keys, train_data(demos))
    assert seen == [1, 2, 3]
    np.testing.assert_array_equal(hosted.state.buffer.size, [64, 64])  # 90 steps, capacity 64
    np.testing.assert_array_equal(hosted.state.buffer.data.actions,
                                  jitted.state.buffer.data.actions)
    # the same actions and replay; the mixer's sums reduce in another order inside
    # the scan than in the host loop's separately compiled update (1e-5 after 30 steps)
    atol = 1e-5 if config_class is MAMQLConfig else 1e-4
    chex.assert_trees_all_close(hosted.state.params, jitted.state.params, rtol=1e-4, atol=atol)
    loss_shape = (2, 3, 2) if config_class is MAMQLConfig else (2, 3)  # per agent / team
    assert hosted.curves["train/loss"].shape == jitted.curves["train/loss"].shape == loss_shape
    np.testing.assert_array_equal(hosted.updates, jitted.updates)
    # learners without a host rollout are refused
    offline = make_mamql(MAMQLConfig(mode="value_expert", critic="tabular"), **dims)
    with pytest.raises(ValueError, match="no host rollout"):
        train_host(offline, tcfg, lambda: None, keys, train_data(demos))


def test_train_command_on_a_host_env(stag, tmp_path):
    _, sol = stag
    host = envs.make("host:stag-hunt", max_steps=10)  # demos recorded through the host path
    demos = data.collect(jax.random.key(0), host, tabular_policy_fn(host, sol.policy), 6,
                         num_envs=2)
    path = tmp_path / "stag.npz"
    demos.save(path)
    out = tmp_path / "run"
    main(["train", "--algo", "mamql", "--env", "host:stag-hunt", "--demos", str(path),
          "--out", str(out), "--seeds", "2", "--updates", "20", "--eval-every", "10",
          "--critic", "tabular", "--gamma", "0.9", "--num-envs", "2", "--batch-size", "32",
          "--eval-episodes", "4", "--final-episodes", "4"])  # 50 training transitions
    summary = json.loads((out / "metrics.json").read_text())
    assert np.asarray(summary["return_per_agent"]["per_seed"]).shape == (2, 2)
    assert "policy_kl" in summary


def test_jitted_loop_is_unchanged_for_jittable_envs(stag):
    # make_train still needs no host loop: the online learner steps envs inside jit
    game, sol = stag
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 20,
                         num_envs=20)
    cfg = MAMQLConfig(mode="online", critic="tabular", batch_size=16, num_envs=2,
                      buffer_size=64)
    algo = make_mamql(cfg, num_agents=2, obs_shape=game.obs_shape, num_actions=2, env=game)
    assert algo.act is None
    result = jax.jit(make_train(algo, TrainConfig(num_updates=4, eval_every=2)))(
        jax.random.key(0), train_data(demos))
    assert int(result.state.buffer.size) == 8
