"""Runs as library objects (mairl.runs): values of finished runs, reloading and acting,
checkpoints and exact resume, the options of ``mairl train``, trackers."""

import dataclasses
import json
import os
import shutil
import signal
import struct as binary
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import envs
from mairl import data, runs
from mairl.algos import ALGOS, Batch, Needs
from mairl.algos.base import Algo
from mairl.cli import main
from mairl.experts import tabular_policy_fn
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, make_train, train_data

GAMMA = 0.9
IRL = ("mamql", "mamql-offline", "iq-joint", "bc")


@pytest.fixture(scope="module")
def game_demos(tmp_path_factory):
    """random-game (20 states, 3 actions, 2 agents), its logit equilibrium, 200 episodes."""
    game = envs.make("random-game")
    sol = soft_value_iteration(game, alpha=1.0, gamma=GAMMA)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 200,
                         num_envs=100)
    path = tmp_path_factory.mktemp("demos") / "random_game.npz"
    demos.save(path)
    return game, sol, path


def small_config(name: str, demos: Path, **schedule) -> runs.RunConfig:
    algo = ALGOS[name].config(critic="tabular", gamma=GAMMA, learning_rate=0.05)
    if name != "bc":
        algo = dataclasses.replace(algo, num_envs=4, buffer_size=2000)
    sched = {"seeds": 2, "updates": 400, "eval_every": 200, **schedule}
    return runs.RunConfig(algo=algo, env=runs.EnvConfig("random-game"),
                          data=runs.DataConfig(demos=str(demos)),
                          schedule=runs.ScheduleConfig(**sched),
                          eval=runs.EvalConfig(eval_episodes=4, final_episodes=16))


def one_hot_states(game) -> np.ndarray:
    """Every state's observation, environments first: ``(S, agent, S)``."""
    eye = np.eye(game.num_states, dtype=np.float32)
    return np.repeat(eye[:, None, :], game.num_agents, axis=1)


def expert_kl(sol, policy: np.ndarray) -> np.ndarray:
    """``E_{s ~ d_E} KL(pi_E(.|s) || policy(.|s))`` per agent; ``policy (agent, S, A)``."""
    pi = np.asarray(sol.policy, np.float64)
    d = np.asarray(sol.state_occupancy, np.float64)
    return np.sum(d[None] * np.sum(pi * (np.log(pi) - np.log(policy)), axis=-1), axis=-1)


@pytest.mark.parametrize("name", IRL)
def test_train_command_recovers_policy_and_reward(name, game_demos, tmp_path):
    # Uniform play is KL 0.11-0.12 from the expert here; 400 updates bring every
    # algorithm to about 0.01, and the shaping-aware correlation to 0.95-0.97.
    game, sol, path = game_demos
    uniform = expert_kl(sol, np.full(np.shape(sol.policy), 1 / game.num_actions))
    out = tmp_path / name
    main(["train", "--algo", name, "--env", "random-game", "--demos", str(path), "--out",
          str(out), "--seeds", "2", "--updates", "400", "--eval-every", "200", "--critic",
          "tabular", "--gamma", str(GAMMA), "--learning-rate", "0.05", "--eval-episodes", "4",
          "--final-episodes", "16", "--quiet", *([] if name == "bc" else ["--num-envs", "4"])])
    metrics = json.loads((out / "metrics.json").read_text())
    kl = np.asarray(metrics["policy_kl"]["per_seed"])  # (seed, agent)
    corr = np.asarray(metrics["reward_shaping_corr"]["per_seed"])
    assert kl.shape == corr.shape == (2, 2)
    assert np.all(kl < 0.3 * uniform), (kl, uniform)
    assert np.all(corr > 0.9), corr


@pytest.fixture(scope="module")
def finished(game_demos, tmp_path_factory):
    _, _, path = game_demos
    out = tmp_path_factory.mktemp("runs") / "offline"
    config = small_config("mamql-offline", path, checkpoint_every=200)
    return runs.run(config, out), out


def test_eval_command_agrees_with_an_independent_computation(finished, game_demos):
    game, sol, _ = game_demos
    trained, out = finished
    main(["eval", "--run", str(out), "--episodes", "50"])
    again = json.loads((out / "eval.json").read_text())
    loaded = runs.load_run(out)
    for seed in range(2):
        q = np.asarray(loaded.q_values(one_hot_states(game), seed=seed), np.float64)  # (S, N, A)
        policy = np.exp(q - q.max(-1, keepdims=True))
        policy = np.swapaxes(policy / policy.sum(-1, keepdims=True), 0, 1)  # (N, S, A)
        kl = expert_kl(sol, policy)
        np.testing.assert_allclose(again["policy_kl"]["per_seed"][seed], kl, rtol=1e-3)
        np.testing.assert_allclose(trained.metrics["policy_kl"]["per_seed"][seed], kl, rtol=1e-3)
        # returns: 400 episodes of our own with the run's agents, 50 in eval.json
        mine = data.episode_returns(data.collect(jax.random.key(100 + seed), game,
                                                 loaded.policy_fn(seed), 400, num_envs=100))
        theirs = again["return_per_agent"]["per_seed"][seed]
        se = mine.std(axis=0, ddof=1) * np.sqrt(1 / 400 + 1 / 50)
        assert np.all(np.abs(mine.mean(axis=0) - theirs) < 4 * se), (mine.mean(0), theirs, se)


def test_load_run_acts_and_reads_back_what_the_run_wrote(finished, game_demos):
    game, _, _ = game_demos
    trained, out = finished
    loaded = runs.load_run(out)
    assert loaded.config == trained.config
    assert loaded.metrics == json.loads((out / "metrics.json").read_text())
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(trained.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert set(loaded.curves) == set(trained.curves)
    np.testing.assert_array_equal(loaded.updates, [200, 400])
    for name, values in trained.curves.items():
        np.testing.assert_allclose(loaded.curves[name], values, rtol=1e-6, err_msg=name)
    obs, _ = jax.vmap(game.reset)(jax.random.split(jax.random.key(0), 7))  # (7, agent, S)
    actions = loaded.policy(obs, jax.random.key(1), seed=1)
    assert actions.shape == (7, 2) and actions.dtype == jnp.int32
    greedy = loaded.policy(obs, jax.random.key(1), seed=1, greedy=True)
    np.testing.assert_array_equal(greedy, np.argmax(loaded.q_values(obs, seed=1), axis=-1))
    # the recovered reward is Q(s, a) - gamma V(s') on the seed's own critics
    q = np.asarray(loaded.q_values(obs, seed=1))  # (7, agent, A)
    v = np.log(np.exp(q).sum(-1))
    r = loaded.reward(obs, actions, obs, seed=1)
    want = np.take_along_axis(q, np.asarray(actions)[..., None], -1)[..., 0] - GAMMA * v
    np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-5)
    r_term = loaded.reward(obs, actions, obs, terminated=np.ones(7, bool), seed=1)
    np.testing.assert_allclose(r_term, want + GAMMA * v, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="obs: expected"):
        loaded.q_values(np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="seed: expected"):
        loaded.policy(obs, jax.random.key(0), seed=2)


def test_run_equals_the_whole_run_in_one_program(finished, game_demos):
    # runs.run calls one compiled chunk at a time; the numbers are make_train's
    trained, _ = finished
    setup = runs.Setup(trained.config)
    tcfg = TrainConfig(num_updates=400, eval_every=200)
    train = make_train(setup.algo, tcfg, setup.eval_fn)
    keys = jax.random.split(jax.random.key(0), 2)
    whole = jax.jit(jax.vmap(train, in_axes=(0, None)))(
        keys, train_data(setup.train_demos, setup.held))
    for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(trained.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.curves["train/loss"], trained.curves["train/loss"],
                               rtol=1e-5)


# -- make_train's schedule ------------------------------------------------------------------------
@struct.dataclass
class ToyState:
    params: jax.Array  # updates done
    batch: jax.Array  # (update, 2) the batch key of every update
    update: jax.Array  # (update, 2) the update key of every update


def test_make_train_draws_fresh_batches_and_evaluates_the_current_state():
    # A toy learner whose parameters count its updates and which records every
    # batch key and update key it is given, at the update's index.
    updates, every = 6, 2

    def init(key, batch):
        zeros = jnp.zeros((updates, 2), jnp.uint32)
        return ToyState(jnp.int32(0), zeros, zeros)

    def update(state, batch, key):
        i = state.params
        return ToyState(i + 1, state.batch.at[i].set(batch.expert),
                        state.update.at[i].set(jax.random.key_data(key))), {"loss": i}

    algo = Algo("toy", init, update, None, 1.0, 0.9, None, Needs())
    source = lambda key, data: Batch(jax.random.key_data(key))  # noqa: E731
    seen = lambda params, key, held: {"updates_seen": params,  # noqa: E731
                                      "eval_key": jax.random.key_data(key)}
    train = make_train(algo, TrainConfig(updates, every), seen, batch_source=source)
    result = jax.jit(train)(jax.random.key(0), None)
    np.testing.assert_array_equal(result.curves["updates_seen"], [2, 4, 6])  # not stale
    np.testing.assert_array_equal(result.updates, [2, 4, 6])
    np.testing.assert_array_equal(result.curves["train/loss"], [0.5, 2.5, 4.5])
    keys = np.concatenate([np.asarray(result.state.batch), np.asarray(result.state.update),
                           np.asarray(result.curves["eval_key"])])
    assert len({tuple(k) for k in keys}) == 2 * updates + updates // every  # none reused
    # the two pieces are the same program
    state, chunk_keys = train.init(jax.random.key(0), None)
    state, curves = train.chunks(state, chunk_keys[:1], jnp.int32(0), None)
    state, rest = train.chunks(state, chunk_keys[1:], jnp.int32(1), None)
    np.testing.assert_array_equal(state.batch, result.state.batch)
    np.testing.assert_array_equal(np.concatenate([curves["eval_key"], rest["eval_key"]]),
                                  result.curves["eval_key"])


# -- checkpoints and resume -----------------------------------------------------------------------
def _arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _results(out: Path) -> tuple[dict, dict, str]:
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("compile_time_s", "run_time_s", "wall_time_s", "updates_per_s",
                "seed_updates_per_s"):
        metrics.pop(key)
    return _arrays(out / "params.npz"), metrics, (out / "curves.csv").read_text()


def test_killed_run_resumes_to_exactly_the_uninterrupted_numbers(game_demos, tmp_path):
    # Online MAMQL: the checkpoint must hold replay buffers and environment states too.
    _, _, path = game_demos
    args = ["--algo", "mamql", "--env", "random-game", "--demos", str(path), "--seeds", "2",
            "--updates", "300", "--eval-every", "10", "--checkpoint-every", "20",
            "--critic", "tabular", "--gamma", str(GAMMA), "--learning-rate", "0.05",
            "--num-envs", "4", "--buffer-size", "500", "--eval-episodes", "2",
            "--final-episodes", "16", "--quiet"]
    whole = tmp_path / "whole"
    main(["train", *args, "--out", str(whole)])

    killed = tmp_path / "killed"
    code = "import sys; from mairl.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, "train", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        steps = [p for p in (killed / "checkpoints").glob("*") if p.name.isdigit()]
        if len(steps) >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "metrics.json").exists()
    main(["train", "--resume", str(killed), "--quiet"])
    params, metrics, curves = _results(killed)
    params_0, metrics_0, curves_0 = _results(whole)
    assert params.keys() == params_0.keys()
    for name in params:
        np.testing.assert_array_equal(params[name], params_0[name], err_msg=name)
    assert metrics == metrics_0
    assert curves == curves_0


def test_resume_skips_a_half_written_checkpoint_and_refuses_changes(finished, game_demos,
                                                                    tmp_path):
    _, _, path = game_demos
    trained, done = finished
    out = tmp_path / "run"
    shutil.copytree(done, out)
    config = trained.config
    params_0, metrics_0, _ = _results(out)
    ckpts = out / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [1, 2]
    # what orbax leaves when killed mid-write: a temporary directory, never listed
    half = ckpts / "9.orbax-checkpoint-tmp-1700000000000000"
    half.mkdir()
    (half / "junk").write_bytes(b"\x00" * 10)
    resumed = runs.resume(out)
    params, metrics, _ = _results(out)
    for name in params:
        np.testing.assert_array_equal(params[name], params_0[name], err_msg=name)
    assert metrics == metrics_0 and resumed.metrics["updates"] == 400
    # a changed config is refused, naming the field
    other = dataclasses.replace(config, algo=dataclasses.replace(config.algo, learning_rate=0.1))
    with pytest.raises(ValueError, match=r"algo.learning_rate: 0.05 -> 0.1"):
        runs.resume(out, other)
    with pytest.raises(SystemExit, match="schedule.seeds: 2 -> 3"):
        main(["train", "--resume", str(out), "--algo", "mamql-offline", "--env", "random-game",
              "--demos", str(path), "--seeds", "3", "--updates", "400", "--eval-every", "200",
              "--checkpoint-every", "200", "--critic", "tabular", "--gamma", str(GAMMA),
              "--learning-rate", "0.05", "--num-envs", "4", "--buffer-size", "2000",
              "--eval-episodes", "4", "--final-episodes", "16"])
    # so are demonstrations changed since the checkpoint
    demos = data.load(path)
    demos.select_episodes(slice(0, 150)).save(path.parent / "fewer.npz")
    Path(config.data.demos).rename(path.parent / "saved.npz")
    (path.parent / "fewer.npz").rename(config.data.demos)
    try:
        with pytest.raises(ValueError, match="demonstrations changed"):
            runs.resume(out)
    finally:
        (path.parent / "saved.npz").replace(config.data.demos)
    # and a new run into a directory holding one
    with pytest.raises(ValueError, match="already holds a run"):
        runs.run(config, out)


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(game_demos, tmp_path,
                                                                          capsys, monkeypatch):
    # The learner's loss turns NaN at its 35th update (chunk 3 of 10 updates):
    # checkpoints after chunks 1-3 hold finite states, none after.
    _, _, path = game_demos
    build = runs.build_algo

    def failing(config, env):
        algo = build(config, env)

        def update(state, batch, key):
            state, metrics = algo.update(state, batch, key)
            loss = jnp.where(state.step >= 35, jnp.nan, metrics["loss"])
            return state, {**metrics, "loss": loss}

        return algo._replace(update=update)

    monkeypatch.setattr(runs, "build_algo", failing)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", "mamql-offline", "--env", "random-game", "--demos", str(path),
              "--out", str(out), "--seeds", "2", "--updates", "100", "--eval-every", "10",
              "--checkpoint-every", "10", "--critic", "tabular", "--eval-episodes", "2",
              "--final-episodes", "2", "--quiet"])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "non-finite loss in updates 30-40 (seed 0, agent 0)" in err
    assert "the last good checkpoint, after 30 updates, is kept" in err
    assert not (out / "metrics.json").exists()
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1, 2, 3]
    # resuming goes on from there and stops at the same place
    with pytest.raises(runs.NonFiniteLossError, match="updates 30-40"):
        runs.resume(out)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALGOS))
def test_train_help_lists_every_field_of_the_algorithm_and_the_run(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--algo", name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    sections = (ALGOS[name].config, runs.DataConfig, runs.ScheduleConfig, runs.EvalConfig)
    for cls in sections:
        for f in dataclasses.fields(cls):
            assert f"--{f.name.replace('_', '-')}" in text, (cls.__name__, f.name)
    assert "--env" in text and "--view" in text and "--out" in text and "--log" in text


def test_train_help_without_an_algorithm_lists_them(capsys):
    main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ALGOS)
    with pytest.raises(SystemExit, match="--algo: 'nope' is not an algorithm"):
        main(["train", "--algo", "nope", "--env", "x", "--out", "y"])


# -- trackers -------------------------------------------------------------------------------------
def _tfrecords(path: Path):
    """The records of a TFRecord file: ``uint64 length, uint32 crc, data, uint32 crc``."""
    raw = path.read_bytes()
    i = 0
    while i < len(raw):
        (n,) = binary.unpack("<Q", raw[i:i + 8])
        yield raw[i + 12:i + 12 + n]
        i += 12 + n + 4


def test_tensorboard_tracker_streams_the_curves(finished, tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2

    from mairl.trackers import TensorBoardTracker

    trained, _ = finished
    tracker = TensorBoardTracker(tmp_path / "tb", agents=["agent_0", "agent_1"])
    tracker.log(trained.curves, trained.updates)
    tracker.close()
    (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    got = {}
    for record in _tfrecords(events):
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            got[(value.tag, event.step)] = value.simple_value
    loss = np.asarray(trained.curves["train/loss"])  # (seed, chunk, agent)
    for s in range(2):
        for c, step in enumerate((200, 400)):
            for a, agent in enumerate(("agent_0", "agent_1")):
                assert got[(f"train/loss/seed_{s}/{agent}", step)] == pytest.approx(
                    loss[s, c, a], rel=1e-6)
    assert len(got) == sum(np.asarray(v).size for v in trained.curves.values())


def test_wandb_tracker_offline(finished, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from mairl.trackers import WandbTracker

    monkeypatch.setenv("WANDB_SILENT", "true")
    trained, _ = finished
    tracker = WandbTracker(tmp_path, {"algo": "mamql-offline"}, agents=["agent_0", "agent_1"],
                           mode="offline", name="t")
    sent = []
    real_log = tracker.run.log
    monkeypatch.setattr(tracker.run, "log", lambda row, step: (sent.append((step, row)),
                                                                real_log(row, step=step)))
    tracker.log(trained.curves, trained.updates)
    tracker.close()
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (record,) = run_dir.glob("*.wandb")
    assert record.stat().st_size > 0
    assert [step for step, _ in sent] == [200, 400]
    loss = np.asarray(trained.curves["train/loss"])  # (seed, chunk, agent)
    assert sent[1][1]["train/loss/seed_1/agent_0"] == pytest.approx(loss[1, 1, 0], rel=1e-6)
    assert sent[0][1]["train/loss/seed_0/agent_1"] == pytest.approx(loss[0, 0, 1], rel=1e-6)
    assert all(len(row) == sum(np.asarray(v)[:, 0].size for v in trained.curves.values())
               for _, row in sent)


def test_metrics_json_records_each_measure_and_its_calibration(finished, game_demos):
    """On random-game the shaping-aware correlation is calibrated (shapings of the true
    reward score ~1, random rewards ~0); plain Pearson and EPIC are not."""
    _, sol, _ = game_demos
    trained, _ = finished
    m = trained.metrics["measures"]
    corr = m["reward_shaping_corr"]
    assert corr["reward_recovery"] is True
    cal = corr["calibration"]
    assert cal["ceiling"] > 0.99 and abs(cal["floor"]) < 0.1
    assert set(cal["scores"]) >= {"true", "true + 10 V_E shaping", "alpha log pi_E",
                                  "random reward", "random critic"}
    assert m["reward_pearson"]["reward_recovery"] is False
    assert m["reward_epic"]["reward_recovery"] is False
    assert m["policy_kl"]["measures"].startswith("behaviour")
    assert "reward_recovery" not in m["policy_kl"]


def test_runs_follow_the_demonstrations_episode_rule(tmp_path):
    """Demonstrations recorded under the authors' rule are trained and evaluated under it
    (unless the config asks for the env's own rule)."""
    authors = envs.make("gems-authors")
    demos = data.collect(jax.random.key(0), authors, lambda k, o: authors.sample_actions(k), 4,
                         num_envs=4)
    assert dict(demos.episode_rule)["end_rule"] == "joint-return"
    demos = demos.with_meta(env_id="gems")  # as the authors' file converts: Gems, their rule
    path = tmp_path / "authors_rule.npz"
    demos.save(path)
    config = runs.RunConfig(algo=ALGOS["bc"].config(batch_size=64), env=runs.EnvConfig("gems"),
                            data=runs.DataConfig(demos=str(path), heldout_fraction=0.25))
    setup = runs.Setup(config)
    assert setup.env.episode_rule == dict(demos.episode_rule)
    own = dataclasses.replace(config, env=runs.EnvConfig("gems", episode_rule="env"))
    assert runs.Setup(own).env.episode_rule["end_rule"] == "gems"


def test_defaults_follow_the_env_family(capsys):
    """Tabular games get a tabular critic and the tabular step sizes by default; other
    games, and algorithms without the IQ objective, keep the plain defaults; a flag
    given on the command line wins."""
    from mairl.algos import FAMILY_DEFAULTS, family_config

    tab = family_config("mamql-offline", envs.family_of("random-game"))
    assert (tab.critic, tab.chi2_coef, tab.learning_rate, tab.batch_size) == (
        "tabular", 0.5, 3e-3, 1024)
    assert envs.family_of("tabular:/some/game.npz") == "tabular"
    assert family_config("mamql-offline", envs.family_of("gems")).critic == "mlp"
    assert family_config("bc", "tabular") == ALGOS["bc"].config()
    assert set(FAMILY_DEFAULTS["tabular"]) <= {f.name for f in dataclasses.fields(tab)}

    def default_critic(argv):
        with pytest.raises(SystemExit):
            main(["train", "--algo", "mamql-offline", *argv, "--help"])
        after = capsys.readouterr().out.split("--critic STR", 1)[1]
        return after.split("(default:", 1)[1].split(")", 1)[0].strip()

    assert default_critic(["--env", "random-game"]) == "tabular"
    assert default_critic(["--env", "gems"]) == "mlp"


def test_load_demos_keeps_the_last_file_and_still_checks_the_env(game_demos, tmp_path):
    game, _, path = game_demos
    first = runs.load_demos(path, game)
    assert runs.load_demos(path, game) is first  # read once
    with pytest.raises(ValueError, match="do not match stag-hunt"):
        runs.load_demos(path, envs.make("stag-hunt"))
    copy = tmp_path / "copy.npz"
    shutil.copy(path, copy)
    assert runs.load_demos(copy, game) is not first  # another file is read
    with pytest.raises(ValueError, match="recorded on env 'random-game'"):
        runs.load_demos(path, envs.make("random-goal-game"))  # same shapes, another game


# -- views computed once for offline learners ------------------------------------------------------
def test_views_are_not_computed_ahead_for_a_learner_reading_raw_observations():
    # fiq's mixer reads every agent's raw observations: training on precomputed
    # views would feed the mixer views instead (and size its parameters by them).
    from types import SimpleNamespace

    env = envs.make("gems")
    rng = np.random.default_rng(0)
    obs = (rng.random((21, 2, *env.obs_shape)) < 0.2).astype(np.float32)
    done = np.arange(20) == 19
    demos = data.Demonstrations.create(obs[:-1], rng.integers(0, env.num_actions, (20, 2)),
                                       obs[1:], done, np.zeros(20, bool))
    config = runs.RunConfig(algo=ALGOS["fiq"].config(hidden=(8,), batch_size=16),
                            env=runs.EnvConfig("gems"))
    algo = runs.build_algo(config, env)
    assert algo.needs.raw_obs
    s = SimpleNamespace(env=env, config=config, algo=algo)
    tdata = train_data(demos)
    trained, same = runs._pre_viewed(s, tdata)
    assert trained is algo and same is tdata


def test_offline_views_computed_once_give_the_same_training():
    # Gems critics read each agent's egocentric view. Offline learners train on views
    # computed once (runs._pre_viewed); the parameters must equal those of the same
    # training with the views recomputed in every update (v0: initial observations
    # too), and the training algorithm's q_values must take raw observations.
    from types import SimpleNamespace

    env = envs.make("gems")
    rng = np.random.default_rng(0)
    t = 40
    obs = (rng.random((t + 1, 2, *env.obs_shape)) < 0.2).astype(np.float32)
    done = np.zeros(t, bool)
    done[[19, 39]] = True
    demos = data.Demonstrations.create(obs[:-1], rng.integers(0, env.num_actions, (t, 2)),
                                       obs[1:], done, np.zeros(t, bool))
    algo = ALGOS["mamql-offline"].config(hidden=(8,), batch_size=16, mode="v0")
    config = runs.RunConfig(algo=algo, env=runs.EnvConfig("gems"))
    s = SimpleNamespace(env=env, config=config, algo=runs.build_algo(config, env))
    tdata = train_data(demos)
    trained, viewed = runs._pre_viewed(s, tdata)
    assert viewed.demos.obs.shape[2:] == viewed.init_obs.shape[2:] == (6, 15, 15)
    no_eval = lambda params, key, held: {}  # noqa: E731
    tcfg = TrainConfig(num_updates=4, eval_every=2)
    once = jax.jit(make_train(trained, tcfg, no_eval))(jax.random.key(3), viewed)
    every = jax.jit(make_train(s.algo, tcfg, no_eval))(jax.random.key(3), tdata)
    for a, b in zip(jax.tree.leaves(once.state.params), jax.tree.leaves(every.state.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    raw = jnp.asarray(obs[:5]).swapaxes(0, 1)
    np.testing.assert_allclose(trained.q_values(once.state.params, raw),
                               s.algo.q_values(once.state.params, raw), rtol=1e-5, atol=1e-6)


def test_a_finished_run_is_an_expert(finished, game_demos, tmp_path):
    from mairl.experts import expert_alpha_gamma, make_expert

    game, _, _ = game_demos
    trained, out = finished
    policy = make_expert(game, "run", params_path=out)
    obs, _ = game.reset(jax.random.key(3))
    for k in range(3):  # the run's own (first seed's) policy, draw for draw
        key = jax.random.key(k)
        np.testing.assert_array_equal(policy(key, obs), trained.policy_fn()(key, obs))
    assert expert_alpha_gamma("run", params_path=out) == (trained.config.algo.alpha, GAMMA)
    demos = tmp_path / "d.npz"
    main(["demos", "--env", "random-game", "--expert", "run", "--expert-params", str(out),
          "--out", str(demos), "--episodes", "3", "--num-envs", "3"])
    recorded = data.load(demos)
    assert recorded.num_episodes == 3
    assert (recorded.expert_alpha, recorded.expert_gamma) == (trained.config.algo.alpha, GAMMA)
    with pytest.raises(ValueError, match="expert 'run': .*a run on env 'random-game' with "
                                         r"obs_shape \(20,\); env 'stag-hunt' has obs_shape"):
        make_expert(envs.make("stag-hunt"), "run", params_path=out)
    with pytest.raises(FileNotFoundError, match="expert 'run': .*not a run directory"):
        make_expert(game, "run", params_path=tmp_path)
    with pytest.raises(SystemExit, match="--expert run needs --expert-params"):
        main(["demos", "--env", "random-game", "--expert", "run", "--out", str(demos)])
