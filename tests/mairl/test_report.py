"""mairl.report: intervals per agent, tables, timing, arguments and the comparison loop."""

import dataclasses
import json
import re
import types
from pathlib import Path

import jax
import numpy as np
import pytest
import tyro

from mairl import report, runs
from mairl.experts import make_expert

# Student t quantiles t_{0.975, dof}, from tables: dof 2 -> 4.302653, dof 3 -> 3.182446.
T2, T3 = 4.302653, 3.182446


# -- intervals ------------------------------------------------------------------------------------
def test_per_agent_is_over_seeds_with_seeds_minus_one_degrees_of_freedom():
    # (seed, episode, agent). Agent 0's seed means are 1, 2, 3 (mean 2, sd 1): half-width
    # t_{.975,2} / sqrt(3). Agent 1's are 10, 10, 16 (mean 12, sd sqrt(12)): half-width
    # t_{.975,2} * sqrt(12) / sqrt(3) = 2 t_{.975,2}. Pooling the 6 episodes, using 3
    # degrees of freedom or the normal 1.96 all give other numbers.
    values = np.array([
        [[0.0, 9.0], [2.0, 11.0]],
        [[1.0, 12.0], [3.0, 8.0]],
        [[2.0, 15.0], [4.0, 17.0]],
    ])
    (m0, h0), (m1, h1) = report.per_agent(values)
    assert m0 == pytest.approx(2.0) and h0 == pytest.approx(T2 / np.sqrt(3), rel=1e-5)
    assert m1 == pytest.approx(12.0) and h1 == pytest.approx(2 * T2, rel=1e-5)


def test_per_agent_over_episodes_of_a_fixed_policy():
    # (episode, agent): 4 episodes, each agent's sd is sqrt(5/3); half-width
    # t_{.975,3} * sqrt(5/3) / 2.
    values = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    intervals = report.per_agent(values)
    half = T3 * np.sqrt(5 / 3) / 2
    assert intervals[0] == pytest.approx((2.5, half), rel=1e-5)
    assert intervals[1] == pytest.approx((6.5, half), rel=1e-5)


def test_per_agent_needs_an_agent_axis():
    with pytest.raises(ValueError, match="agent"):
        report.per_agent(np.arange(4.0))


# -- tables ---------------------------------------------------------------------------------------
def _cell(line: str, header: str, title: str) -> str:
    """The text of ``line`` under the column titled ``title`` (cells are CELL_WIDTH wide)."""
    end = header.index(title) + len(title)
    return line[end - report.CELL_WIDTH:end]


def test_table_puts_each_agent_under_its_own_column():
    values = np.stack([np.full((3, 2), 1.0), np.full((3, 2), 7.0), np.full((3, 2), 4.0)],
                      axis=-1)  # (seed, episode, agent): agent 0 -> 1, agent 1 -> 7, agent 2 -> 4
    values[0, :, 1] += 3.0
    cells = report.per_agent(values)
    columns = report.agent_columns("return", ["north", "east", "south"])
    assert [c.title for c in columns] == ["return north", "return east", "return south"]
    text = report.format_table({"learner": cells}, columns, over={"learner": "3 seeds"})
    header, rule, line = text.split("\n")
    assert set(rule) == {"-"} and len(rule) == len(header)
    assert _cell(line, header, "return north").split() == ["1.00", "±", "0.00"]
    assert _cell(line, header, "return east").split()[0] == "8.00"
    assert _cell(line, header, "return south").split() == ["4.00", "±", "0.00"]
    assert line.endswith("  3 seeds")


def test_table_cells_plain_numbers_blanks_and_precision():
    columns = [report.Column("soups", 1), report.Column("acc", 3), "wall s"]
    text = report.format_table({"expert": [(12.04, 0.06), None, None],
                                "bc": [(11.0, 0.5), 0.9765, 60.0]}, columns,
                               title="cramped_room")
    title, header, _, expert, bc = text.split("\n")
    assert title == "cramped_room"
    assert _cell(expert, header, "soups").split() == ["12.0", "±", "0.1"]
    assert _cell(expert, header, "acc").strip() == ""
    assert _cell(bc, header, "acc").strip() == "0.977"
    assert _cell(bc, header, "wall s").strip() == "60.00"


def test_table_refuses_a_row_with_missing_cells():
    with pytest.raises(ValueError, match="'bc' has 1 cells for 2 columns"):
        report.format_table({"bc": [(1.0, 0.1)]}, ["a", "b"])


# -- timing ---------------------------------------------------------------------------------------
def test_steps_per_second_times_the_best_repeat_and_not_the_warmup(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(report.time, "perf_counter", lambda: clock[0])
    seen = []

    def step(carry, i):
        seen.append((i, carry))
        clock[0] += 100.0 if i == 0 else (0.5 if i <= 4 else 0.25)  # warm-up, slow, fast
        return carry + 1

    sps = report.steps_per_second(step, 10, calls=4, steps_per_call=3, warmup=1, repeats=2)
    assert sps == pytest.approx(12 / 1.0)  # the second repeat: 4 calls x 0.25 s
    assert seen == [(i, 10 + i) for i in range(9)]


def test_env_steps_per_second_plays_the_given_actions():
    env = runs.make_env("stag-hunt")
    actions = report.random_actions(env, 5)
    assert actions.shape == (5, 2) and actions.dtype == np.int32
    assert actions.min() >= 0 and actions.max() < env.num_actions
    assert report.env_steps_per_second(env, actions) > 0


# -- arguments and configs ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Args(report.ExperimentArgs):
    """A script's arguments.

    Attributes:
        extra: a field of the script's own.
    """

    updates: int = 40
    online_updates: int | None = 10
    extra: int = 1


def test_arguments_from_flags():
    args = tyro.cli(_Args, args=["--seeds", "2", "--algos", "bc", "--extra", "5"])
    assert (args.seeds, args.algos, args.extra, args.updates) == (2, ("bc",), 5, 40)
    assert args.updates_of(online=True) == 10 and args.updates_of(online=False) == 40
    assert tyro.cli(_Args, args=["--algos"]).algos == ()
    assert report.ExperimentArgs().updates_of(online=True) == 2000  # None: updates
    with pytest.raises(SystemExit):
        tyro.cli(_Args, args=["--algos", "gail"])


def test_learner_configs_share_critic_step_and_discount():
    args = _Args(seeds=2, learning_rate=1e-3, hidden=(8,), gamma=0.9, online_envs=3,
                 final_episodes=7)
    env = runs.make_env("stag-hunt")
    configs = {name: report.learner_config(args, name, "stag-hunt", "d.npz", evaluations=4)
               for name in report.LEARNERS}
    for name, config in configs.items():
        assert config.algo_name == name
        assert (config.algo.critic, config.algo.hidden) == ("mlp", (8,))
        assert (config.algo.learning_rate, config.algo.gamma) == (1e-3, 0.9)
        assert config.env == runs.EnvConfig("stag-hunt", view="global")
        assert config.data.demos == "d.npz"
        assert (config.schedule.seeds, config.schedule.updates, config.schedule.eval_every) == (
            2, 40, 10)
        assert config.eval.final_episodes == 7
    assert configs["iq-joint"].algo.num_envs == 3
    assert not hasattr(configs["bc"].algo, "num_envs")
    assert [report.is_online(c, env) for c in configs.values()] == [False, True, False]
    online = report.learner_config(args, "iq-joint", "stag-hunt", "d.npz", online=True,
                                   evaluations=4, final_episodes=2)
    assert (online.schedule.updates, online.schedule.eval_every) == (10, 2)
    assert online.eval.final_episodes == 2


def test_write_summary(tmp_path):
    args = _Args(out=Path("runs/x"))
    report.write_summary(tmp_path / "s.json", args, rows={"a": np.arange(3)},
                         speed=np.float32(2.5))
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["args"]["out"] == "runs/x" and saved["args"]["algos"] == str(report.LEARNERS)
    assert saved["rows"] == {"a": [0, 1, 2]} and saved["speed"] == 2.5
    with pytest.raises(TypeError, match="object"):
        report.write_summary(tmp_path / "t.json", args, bad=object())


# -- the comparison loop --------------------------------------------------------------------------
class _Run:
    """What compare reads of a mairl.runs.Run: the seed count and per-seed policies."""

    def __init__(self, tag, seeds):
        self.config = types.SimpleNamespace(schedule=runs.ScheduleConfig(seeds=seeds))
        self.tag = tag
        self.greedy = []

    def policy_fn(self, seed, greedy=False):
        self.greedy.append(greedy)
        return (self.tag, seed)


def test_compare_measures_policies_then_every_seed(capsys):
    calls = []

    def measure(key, policy, episodes):
        calls.append((int(jax.random.key_data(key)[-1]), policy, episodes))  # key(k): [0, k]
        marker = len(calls)
        return {"x": np.full((episodes, 2), float(marker)), "y": np.zeros(episodes)}

    learner = _Run("bc", seeds=3)
    rows = report.compare(measure, {"expert": "E", "random": "R"}, {"bc": learner},
                          episodes=4, seed_episodes=2, greedy=True)
    assert list(rows) == ["expert", "random", "bc"]
    assert [c[0] for c in calls] == [10_000, 10_001, 20_000, 20_001, 20_002]
    assert [c[1:] for c in calls] == [("E", 4), ("R", 4), (("bc", 0), 2), (("bc", 1), 2),
                                      (("bc", 2), 2)]
    assert learner.greedy == [True] * 3
    assert rows["expert"].stats["x"].shape == (4, 2) and rows["expert"].over == "4 episodes"
    assert rows["bc"].stats["x"].shape == (3, 2, 2)  # (seed, episode, agent), seeds in order
    np.testing.assert_array_equal(rows["bc"].stats["x"][:, 0, 0], [3.0, 4.0, 5.0])
    assert rows["bc"].over == "3 seeds x 2 episodes"
    assert "bc: 3 seeds x 2 episodes in" in capsys.readouterr().out


def test_record_demos_and_baselines_on_a_tabular_game(tmp_path, capsys):
    env = runs.make_env("stag-hunt")
    expert = make_expert(env, "soft-vi")
    demos = report.record_demos(jax.random.key(0), env, expert, 3, tmp_path / "d.npz",
                                num_envs=2)
    assert demos.num_episodes == 3
    assert runs.load_demos(tmp_path / "d.npz", env).num_transitions == demos.num_transitions
    assert "demonstrations: 3 episodes" in capsys.readouterr().out
    policies = report.baselines(env, expert, idle="I")
    assert list(policies) == ["expert", "random", "idle"]
    assert policies["expert"] is expert and not getattr(policies["random"], "host", False)


def test_train_learners_runs_each_learner(tmp_path, capsys):
    env = runs.make_env("stag-hunt")
    report.record_demos(jax.random.key(0), env, make_expert(env, "soft-vi"), 10,
                        tmp_path / "d.npz")
    args = _Args(out=tmp_path, seeds=2, updates=2, hidden=(4,), algos=("bc",))
    trained = report.train_learners(args, env, tmp_path / "d.npz", final_episodes=2,
                                    progress=False)
    assert list(trained) == ["bc"]
    assert (tmp_path / "bc" / "params.npz").is_file()
    assert trained["bc"].config.schedule.updates == 2
    out = capsys.readouterr().out
    assert "== bc: 2 seeds x 2 updates" in out and "bc: trained in" in out


def test_reuse_learners_takes_runs_trained_as_asked_and_names_what_differs(tmp_path,
                                                                          monkeypatch):
    env = runs.make_env("stag-hunt")
    report.record_demos(jax.random.key(0), env, make_expert(env, "soft-vi"), 10,
                        tmp_path / "d.npz")
    args = _Args(out=tmp_path, seeds=2, updates=2, hidden=(4,), algos=("bc", "mamql-offline"))
    report.train_learners(dataclasses.replace(args, algos=("bc",)), env, tmp_path / "d.npz",
                          final_episodes=2, progress=False, alpha=0.5)
    # the same flags, the demonstrations named by another path to the same file
    monkeypatch.chdir(tmp_path)
    found = report.reuse_learners(args, env, Path("d.npz"), final_episodes=5, alpha=0.5)
    assert list(found) == ["bc"]  # mamql-offline has no finished run (yet): left out
    assert found["bc"].config.schedule.updates == 2
    # an offline learner's online-only fields (num_envs from --online-envs) are not read
    report.train_learners(dataclasses.replace(args, algos=("mamql-offline",)), env, "d.npz",
                          final_episodes=2, progress=False, alpha=0.5)
    found = report.reuse_learners(dataclasses.replace(args, online_envs=7), env, "d.npz",
                                  alpha=0.5)
    assert list(found) == ["bc", "mamql-offline"]
    assert found["mamql-offline"].config.algo.num_envs == args.online_envs != 7
    with pytest.raises(ValueError, match=r"bc was trained otherwise.*schedule\.updates: 2 -> 3"):
        report.reuse_learners(dataclasses.replace(args, updates=3), env, "d.npz", alpha=0.5)
    with pytest.raises(ValueError, match=r"algo\.hidden: \(4,\) -> \(8,\)"):
        report.reuse_learners(dataclasses.replace(args, hidden=(8,)), env, "d.npz", alpha=0.5)
    with pytest.raises(ValueError, match=r"algo\.alpha: 0\.5 -> 0\.1"):
        report.reuse_learners(args, env, "d.npz", alpha=0.1)
    (tmp_path / "e.npz").write_bytes((tmp_path / "d.npz").read_bytes())
    with pytest.raises(ValueError, match=r"data\.demos: '.*d\.npz' -> 'e\.npz'"):
        report.reuse_learners(args, env, "e.npz", alpha=0.5)


def test_learner_config_takes_the_view_and_further_algorithm_values():
    args = _Args(learning_rate=1e-3, hidden=(8,))
    config = report.learner_config(args, "mamql-continuous", "point-masses", "d.npz",
                                   view="agent", alpha=0.3, batch_size=32, chi2_coef=0.0)
    assert config.env == runs.EnvConfig("point-masses", view="agent")
    assert (config.algo.alpha, config.algo.batch_size, config.algo.chi2_coef) == (0.3, 32, 0.0)
    # one step size for critics and actors; fields the config lacks are left out
    assert config.algo.learning_rate == config.algo.actor_learning_rate == 1e-3
    bc = report.learner_config(args, "bc", "stag-hunt", "d.npz", alpha=0.3, value_samples=4)
    assert bc.algo.alpha == 0.3 and not hasattr(bc.algo, "value_samples")


def test_heldout_line_of_discrete_and_continuous_runs():
    discrete = types.SimpleNamespace(metrics={"action_accuracy": {"mean": [0.51234, 0.9]}})
    assert report.heldout_line(discrete) == "held-out action accuracy per agent [0.512, 0.9]"
    continuous = types.SimpleNamespace(metrics={
        "heldout_log_likelihood": {"mean": [1.234, -0.5]}, "action_mse": {"mean": [0.01234, 0.2]}})
    assert report.heldout_line(continuous) == (
        "held-out log-likelihood per agent [1.23, -0.5], action MSE [0.0123, 0.2]")
    assert report.heldout_line(types.SimpleNamespace(metrics={})).endswith("n/a")


# -- random tabular games -------------------------------------------------------------------------
def test_random_games_are_the_keyed_games_and_their_demonstrations():
    from envs.tabular import random_game
    from mairl.data import episode_returns

    suite = report.RandomGames(states=4, actions=2, transitions=30, episode_length=10)
    game = suite.game(3, 1)
    same = random_game(jax.random.key(1), 4, 2, 3, max_steps=10)
    np.testing.assert_array_equal(game.transitions, same.transitions)
    np.testing.assert_array_equal(game.rewards, same.rewards)
    assert game.max_steps == 10
    # a deterministic policy: every agent plays action 1 in every state
    policy = np.zeros((3, 4, 2), np.float32)
    policy[..., 1] = 1.0
    demos = suite.demonstrations(jax.random.key(0), game, policy)
    assert (demos.num_episodes, demos.num_transitions) == (3, 30)
    assert np.all(np.asarray(demos.actions) == 1)
    assert episode_returns(demos).shape == (3, 3)


@pytest.mark.parametrize("field, value, expected", [
    ("transitions", 55, "a positive multiple of episode_length (10)"),
    ("states", 0, ">= 1"),
    ("agents", (2, 0), "positive agent counts"),
])
def test_random_games_refuse_bad_sizes(field, value, expected):
    with pytest.raises(ValueError, match=rf"RandomGames\.{field}: expected {re.escape(expected)}"):
        report.RandomGames(**{"episode_length": 10, "transitions": 50, field: value})


# -- comparisons by return and the per-game script body -------------------------------------------
def test_returns_measure_is_the_per_episode_return():
    from mairl.metrics import evaluate_returns

    env = runs.make_env("stag-hunt")
    expert = make_expert(env, "soft-vi")
    got = report.returns_measure(env)(jax.random.key(3), expert, 4)
    assert list(got) == ["returns"]
    np.testing.assert_array_equal(got["returns"],
                                  evaluate_returns(jax.random.key(3), env, expert, 4))
    assert got["returns"].shape == (4, env.num_agents)


def test_compare_returns_rows_and_table(capsys):
    env = runs.make_env("stag-hunt")
    expert = make_expert(env, "soft-vi")
    args = _Args(baseline_episodes=5)
    rows = report.compare_returns(env, expert, {}, args, title="stag: per-agent return")
    assert list(rows) == ["expert", "random"]
    measured = report.compare(report.returns_measure(env), report.baselines(env, expert), {},
                              episodes=5, seed_episodes=1)
    for name, row in rows.items():
        assert row["over"] == "5 episodes"
        assert row["return_per_agent"] == report.per_agent(measured[name].stats["returns"])
    out = capsys.readouterr().out
    assert "stag: per-agent return" in out and "expert" in out


def test_compare_returns_greedy_plays_learners_greedily_from_the_same_starts():
    env = runs.make_env("stag-hunt")
    expert = make_expert(env, "soft-vi")

    class Learner(_Run):
        def policy_fn(self, seed, greedy=False):
            self.greedy.append(greedy)
            return expert

    learner = Learner("bc", seeds=2)
    args = _Args(baseline_episodes=5, final_episodes=3)
    rows = report.compare_returns(env, expert, {"bc": learner}, args, title="greedy",
                                  more={"also": expert}, greedy=True)
    assert list(rows) == ["expert", "random", "also", "bc"] and learner.greedy == [True, True]
    assert rows["bc"]["over"] == "2 seeds x 3 episodes"
    sampled = report.compare_returns(env, expert, {"bc": learner}, args, title="sampled",
                                     more={"also": expert})
    assert learner.greedy[2:] == [False] * 2
    for name in ("expert", "random", "also", "bc"):  # same policies, same keys: same rows
        assert sampled[name] == rows[name]


def test_run_games_runs_each_game_and_writes_the_summary(tmp_path, capsys):
    @dataclasses.dataclass(frozen=True)
    class GameArgs(report.ExperimentArgs):
        games: tuple[str, ...] = ("a", "b")

    seen = []

    def run_game(game, args):
        seen.append(game)
        return {"score": np.float32(len(seen))}

    args = GameArgs(out=tmp_path / "out")
    results = report.run_games(args, run_game, note="score: how many games so far")
    assert seen == ["a", "b"] and results == {"a": {"score": 1.0}, "b": {"score": 2.0}}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["games"] == {"a": {"score": 1.0}, "b": {"score": 2.0}}
    assert summary["args"]["games"] == "('a', 'b')"
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "\nscore: how many games so far\n" in out


def test_curve_printer_prints_the_first_seeds_agent_means(capsys):
    printer = report.CurvePrinter(lambda m: f"return {m['return']:.2f}", t0=0.0)
    # (seed, eval, agent): seed 1 must not count
    printer.log({"return": np.array([[[1.0, 3.0], [5.0, 7.0]], [[100.0, 100.0]] * 2])},
                np.array([10, 20]))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("update")[1].split() for line in lines] == [["10", "return", "2.00"],
                                                                 ["20", "return", "6.00"]]


def test_train_forward_trains_one_checkpointed_seed_and_resumes(tmp_path):
    from mairl.algos import SoftQConfig

    algo = SoftQConfig(critic="tabular", num_envs=2, buffer_size=100, warmup_steps=2)
    out = tmp_path / "expert"
    args = report.ExpertArgs(updates=20, eval_every=10, eval_episodes=2, seed=3, run_dir=out)
    run = report.train_forward(algo, "stag-hunt", args)
    assert run.config.schedule.seeds == 1 and run.config.schedule.seed == 3
    assert run.config.env.view == "global" and run.metrics["updates"] == 20
    assert run.config.schedule.checkpoint_every == 10
    again = report.train_forward(algo, "stag-hunt", dataclasses.replace(args, resume=True))
    np.testing.assert_array_equal(jax.tree.leaves(again.params)[0], jax.tree.leaves(run.params)[0])


def test_normalized_returns_put_the_floor_at_zero_and_the_expert_at_one():
    rows = {"expert": {"return_per_agent": [(1300.0, 30.0), (500.0, 9.0)]},
            "zero": {"return_per_agent": [(1000.0, 1.0), (1000.0, 1.0)]},
            "learner": {"return_per_agent": [(1075.0, 40.0), (900.0, 5.0)]},
            "random": {"return_per_agent": [(-200.0, 50.0), (250.0, 5.0)]}}
    scaled = report.normalized_returns(rows, floor="zero")
    assert scaled["expert"][0] == 1.0 and scaled["zero"][0] == 0.0
    assert scaled["learner"][0] == pytest.approx(0.25)  # 75 of the expert's 300 over the floor
    assert scaled["random"][0] == pytest.approx(-4.0)
    # agent 2's expert is below the floor: nothing to keep, nan rather than a sign flip
    assert all(np.isnan(v[1]) for v in scaled.values())
    with pytest.raises(ValueError, match="no row 'stand'"):
        report.normalized_returns(rows, floor="stand")
    rows["short"] = {"return_per_agent": [(1.0, 0.0)]}
    with pytest.raises(ValueError, match="'short' has 1 agents"):
        report.normalized_returns(rows, floor="zero")
