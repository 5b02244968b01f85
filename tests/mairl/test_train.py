"""The training loop, the ``mairl train`` / ``mairl eval`` commands and agent views."""

import csv
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from mairl import data
from mairl.algos import MAMQLConfig, make_mamql
from mairl.cli import main
from mairl.experts import tabular_policy_fn
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, make_train, train_data


@pytest.fixture(scope="module")
def stag_demos(tmp_path_factory):
    game = envs.make("stag-hunt", max_steps=10)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 40,
                         num_envs=20)
    path = tmp_path_factory.mktemp("demos") / "stag.npz"
    demos.save(path)
    return game, demos, path


def test_vmapped_seeds_equal_single_runs(stag_demos):
    game, demos, _ = stag_demos
    cfg = MAMQLConfig(mode="value_expert", critic="tabular", batch_size=32, gamma=0.9)
    algo = make_mamql(cfg, num_agents=2, obs_shape=game.obs_shape, num_actions=2)
    train = make_train(algo, TrainConfig(num_updates=20, eval_every=10))
    tdata = train_data(demos)
    keys = jax.random.split(jax.random.key(3), 2)
    both = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, tdata)
    one = jax.jit(train)(keys[1], tdata)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], both.state.params), one.state.params,
                                rtol=1e-5, atol=1e-6)
    assert both.curves["train/loss"].shape == (2, 2, 2)  # (seed, chunk, agent)
    np.testing.assert_array_equal(one.updates, [10, 20])


def test_train_data_strips_true_rewards(stag_demos):
    _, demos, _ = stag_demos
    assert demos.rewards is not None
    assert train_data(demos).demos.rewards is None


def test_config_rejects_uneven_chunks():
    with pytest.raises(ValueError, match="num_updates"):
        TrainConfig(num_updates=15, eval_every=10)


def test_train_and_eval_commands(stag_demos, tmp_path, capsys):
    _, _, path = stag_demos
    out = tmp_path / "run"
    main(["train", "--algo", "mamql-offline", "--env", "stag-hunt", "--demos", str(path),
          "--out", str(out), "--seeds", "2", "--updates", "40", "--eval-every", "20",
          "--critic", "tabular", "--gamma", "0.9", "--learning-rate", "0.05",
          "--batch-size", "64", "--eval-episodes", "4", "--final-episodes", "8"])
    for name in ("config.json", "metrics.json", "curves.csv", "params.npz", "curves.png",
                 "reward.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("return_per_agent", "return_mean", "reward_shaping_corr", "reward_pearson",
                "reward_epic", "policy_kl", "action_accuracy", "imitation_mse",
                "updates_per_s", "wall_time_s"):
        assert key in metrics, key
    assert np.asarray(metrics["return_per_agent"]["per_seed"]).shape == (2, 2)
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {r["metric"] for r in rows} >= {"return", "policy_kl", "train/loss"}
    assert {int(r["updates"]) for r in rows} == {20, 40}
    main(["eval", "--run", str(out), "--episodes", "8"])
    again = json.loads((out / "eval.json").read_text())
    np.testing.assert_allclose(again["policy_kl"]["per_seed"], metrics["policy_kl"]["per_seed"],
                               rtol=1e-5)
    assert "policy_kl" in capsys.readouterr().out


def test_train_errors_are_clear(stag_demos, tmp_path, capsys):
    _, _, path = stag_demos
    with pytest.raises(SystemExit, match="data.demos: no such file"):
        main(["train", "--algo", "bc", "--env", "stag-hunt", "--demos", "nope.npz",
              "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="obs_shape"):
        main(["train", "--algo", "bc", "--env", "random-game", "--demos", str(path),
              "--out", str(tmp_path), "--updates", "10", "--eval-every", "10"])
    with pytest.raises(SystemExit, match="ScheduleConfig.updates: expected a multiple"):
        main(["train", "--algo", "bc", "--env", "stag-hunt", "--demos", str(path),
              "--out", str(tmp_path), "--updates", "15", "--eval-every", "10"])
    with pytest.raises(SystemExit, match="run: .*config.json not found"):
        main(["eval", "--run", str(tmp_path / "missing")])


def test_gems_agent_view_is_egocentric():
    env = envs.make("gems", view_radius=14)
    obs = np.zeros(env.obs_shape, np.float32)
    obs[0, 2, 3] = 1  # agent 0
    obs[1, 10, 10] = 1  # agent 1
    obs[2, 2, 4] = 1  # a blue gem (agent 0's), one step y+1 from agent 0
    obs[3, 9, 10] = 1  # a red gem (agent 1's), one step x-1 from agent 1
    for agent, own_gem in ((0, (14, 15)), (1, (13, 14))):
        view = np.asarray(env.agent_view(jnp.asarray(obs), agent))
        assert view.shape == (6, 29, 29)
        assert view[0, 14, 14] == 1 and view[0].sum() == 1  # self at the centre
        assert tuple(np.argwhere(view[2])[0]) == own_gem  # own gems in channel 2
        assert view[5].sum() == 15 * 15  # the grid
    # Agent 0 at (2, 3): the grid spans x in [-2, 12], y in [-3, 11] around it.
    view = np.asarray(env.agent_view(jnp.asarray(obs), 0))
    assert view[5, 12, 11] == 1 and view[5, 11, 11] == 0 and view[5, 12, 10] == 0
    # A radius-2 window around agent 0 at (2, 3): x in [0, 4] inside, y in [1, 5].
    small = np.asarray(envs.make("gems", view_radius=2).agent_view(jnp.asarray(obs), 0))
    assert small.shape == (6, 5, 5)
    assert small[0, 2, 2] == 1 and small[2, 2, 3] == 1
    np.testing.assert_array_equal(small[5].sum(axis=1), [5, 5, 5, 5, 5])
