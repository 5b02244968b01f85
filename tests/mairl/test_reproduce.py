"""The reproduction pipeline: rows are runs, numbers come from their directories, reruns
pick up where they are; the small budget end to end (slow)."""

import json
from pathlib import Path

import numpy as np
import pytest

from mairl import presets, report, reproduce, runs
from mairl.data import episode_returns


@pytest.fixture
def tabular_domain(monkeypatch):
    """A domain that compiles in seconds: the random general-sum game, its exact
    logit-equilibrium expert, tabular critics."""
    monkeypatch.setitem(reproduce.DOMAIN_SPECS, "random-game",
                        reproduce.DomainSpec("random-game", (300, 600), "soft-vi", None, 16))
    monkeypatch.setitem(presets.PAPER, "random-game",
                        presets.PaperSettings(critic="tabular", learning_rate=3e-3, gamma=0.9))
    return "random-game"


def test_rows_are_runs_and_reruns_pick_them_up(tmp_path, tabular_domain):
    config = reproduce.ReproduceConfig(out=tmp_path / "out", budget="tiny",
                                       domains=(tabular_domain,), algos=("mamql-offline", "bc"),
                                       docs=tmp_path / "docs")
    results = reproduce.reproduce(config, log=lambda _: None)
    rows = results.rows[tabular_domain]
    assert [r.algo for r in rows] == ["expert", "mamql-offline", "bc"]

    # the expert's row is the return of the demonstrated episodes, interval over episodes
    demos = runs.load_demos(tmp_path / "out" / tabular_domain / "expert_demos.npz")
    assert demos.num_transitions >= 150 / 0.9  # the tiny budget caps the size at 150
    np.testing.assert_array_equal(rows[0].returns, report.per_agent(episode_returns(demos)))

    # a learner's numbers are its run directory's
    for row in rows[1:]:
        assert row.dir == tmp_path / "out" / tabular_domain / "expert" / "150" / row.algo
        metrics = json.loads((row.dir / "metrics.json").read_text())
        np.testing.assert_array_equal(
            row.returns, report.per_agent(np.asarray(metrics["return_per_agent"]["per_seed"])))
        assert row.expert_transitions == metrics["expert_transitions"] <= 150 / 0.9 + 40
        assert row.cells()[-1] == metrics["updates"] == 4
        assert row.env_steps == 0  # offline learners step no game
        assert runs.read_config(row.dir).algo.critic == "tabular"  # the domain's preset

    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["algo"] for r in saved["rows"][tabular_domain]] == ["expert", "mamql-offline", "bc"]
    text = (tmp_path / "docs" / "reproduction.md").read_text()
    assert "budget tiny: not the paper's comparison" in text
    assert results.table(tabular_domain) in text
    assert (tmp_path / "docs" / "reproduction" / "return_vs_transitions.png").is_file()

    # running again reads the finished rows back; a row without its result resumes
    (rows[2].dir / "metrics.json").unlink()
    again = reproduce.reproduce(config, log=lambda _: None).rows[tabular_domain]
    assert [r.status for r in again] == ["expert", "done", "resumed"]
    for old, new in zip(rows, again, strict=True):
        np.testing.assert_allclose(np.asarray(new.returns), np.asarray(old.returns))

    # a directory holding another config is refused, naming the field
    other = reproduce.ReproduceConfig(out=tmp_path / "out", budget="tiny",
                                      domains=(tabular_domain,), algos=("bc",))
    presets.PAPER[tabular_domain] = presets.PaperSettings(critic="tabular", learning_rate=1e-2,
                                                          gamma=0.9)
    with pytest.raises(ValueError, match="learning_rate"):
        reproduce.reproduce(other, log=lambda _: None)


def test_episodes_for_and_sizes():
    lengths = np.array([10, 10, 10, 10, 10])
    assert reproduce.episodes_for(lengths, 18, 0.1) == 2  # 20 >= 18 / 0.9
    assert reproduce.episodes_for(lengths, 19, 0.1) == 3  # 21.1 needs a third episode
    assert reproduce.episodes_for(lengths, 1, 0.1) == 2  # at least two (one is held out)
    assert reproduce.episodes_for(lengths, 1000, 0.1) == 5  # all there is
    spec = reproduce.DOMAIN_SPECS["gems"]
    assert reproduce.sizes_of(spec, reproduce.BUDGETS["full"]) == (1_000, 10_000, 20_000)
    assert reproduce.sizes_of(spec, reproduce.BUDGETS["small"]) == (1_000,)


def test_row_config_uses_the_presets_and_the_budget():
    small = reproduce.BUDGETS["small"]
    cfg = reproduce.row_config("gems", "mamql", Path("d.npz"), 7, small, expert_params=None)
    assert (cfg.algo.critic, cfg.algo.dropout, cfg.algo.l2, cfg.algo.batch_size,
            cfg.algo.num_envs) == ("gems-paper", 0.2, 1e-5, 32, small.online_envs)
    assert cfg.env.view == "global" and cfg.data.max_demo_episodes == 7
    assert cfg.schedule.checkpoint_every == cfg.schedule.eval_every
    full = reproduce.BUDGETS["full"]
    joint = reproduce.row_config("overcooked", "iq-joint", Path("d.npz"), 7, full,
                                 expert_params=None)
    assert (joint.algo.mode, joint.algo.batch_size, joint.algo.critic) == (
        "online", 256, "overcooked-paper")
    assert joint.schedule.seeds == 5


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="ReproduceConfig.domains"):
        reproduce.ReproduceConfig(domains=("mujoco",))
    with pytest.raises(ValueError, match="ReproduceConfig.algos"):
        reproduce.ReproduceConfig(algos=("gail",))
    with pytest.raises(ValueError, match="ReproduceConfig.authors_file"):
        reproduce.ReproduceConfig(authors_file=tmp_path / "missing.pkl.gz")


def test_cli_parses_and_refuses_unknown_papers(capsys):
    from mairl.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "mamql", "--help"])
    assert exit_.value.code == 0 and "--budget" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="expected a paper"):
        main(["reproduce", "airl"])


@pytest.mark.slow
def test_small_budget_runs_every_domain(tmp_path):
    """``--budget small``: every domain's rows (about 13 minutes on two CPU cores)."""
    config = reproduce.ReproduceConfig(out=tmp_path / "out", budget="small")
    results = reproduce.reproduce(config)
    assert set(results.rows) == set(presets.DOMAINS)
    for rows in results.rows.values():
        assert rows[0].algo == "expert"
        for row in rows[1:]:
            assert all(np.isfinite(m) for m, _ in row.returns)
            assert row.metrics["updates"] > 0
    assert results.wall_s < 15 * 60
