"""Calibration of the reward metrics (mairl.metrics.calibration): known verdicts on
tabular games, with and without terminal states."""

import jax
import numpy as np
import pytest

import envs
from mairl import metrics
from mairl.solvers import soft_value_iteration


@pytest.fixture(scope="module", params=["random-game", "random-goal-game"])
def table(request):
    game = envs.make(request.param)
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    return game, metrics.calibrate_tabular(sol, 1.0, 0.9, terminal=game.terminal, draws=4)


def test_shaping_aware_correlation_is_informative_and_plain_ones_are_not(table):
    game, cal = table
    corr = cal["reward_shaping_corr"]
    assert corr.informative
    for name in ("true", "true + V_E shaping", "true + 10 V_E shaping",
                 "true + random shaping x100", "alpha log pi_E"):
        assert min(corr.scores[name]) > 0.999, (name, corr.scores[name])
    assert abs(corr.floor) < 0.1
    # Plain correlations and EPIC on expected-form rewards punish shaping.
    for name in ("reward_pearson", "reward_spearman", "reward_epic"):
        assert not cal[name].informative, name
    assert cal["reward_pearson"].scores["true + 10 V_E shaping"][0] < 0.5
    assert cal["reward_epic"].kind == "distance"
    assert cal["reward_epic"].scores["true"] == pytest.approx([0.0, 0.0], abs=1e-3)


def test_terminal_game_has_terminal_states():
    assert envs.make("random-goal-game").terminal[-2:].all()
    assert envs.make("random-game").terminal is None or not envs.make("random-game").terminal.any()


def test_calibrate_verdicts_and_errors():
    true = np.array([[1.0, 2.0, 3.0]])
    good = {"similarity": ("similarity", lambda r: metrics.pearson(r, true))}
    cands = {"true": [true], "random reward": [np.array([[3.0, 1.0, 2.0]]),
                                               np.array([[2.0, 3.0, 1.0]])]}
    cal = metrics.calibrate(good, cands)["similarity"]
    assert cal.ceiling == pytest.approx(1.0) and cal.floor == pytest.approx(-0.5)
    assert cal.informative  # -0.5 <= 0.1: a floor below zero is fine
    with pytest.raises(ValueError, match="random reward"):
        metrics.calibrate(good, {"true": [true]})
    with pytest.raises(ValueError, match="kind"):
        metrics.calibrate({"x": ("other", lambda r: r)}, cands)
    text = metrics.format_calibration({"similarity": cal})
    assert "informative" in text and "yes" in text


def test_random_critic_row(table):
    game, _ = table
    sol = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    rng = np.random.default_rng(0)

    def critic(key):
        return rng.normal(size=np.shape(sol.marginal_rewards))

    cal = metrics.calibrate_tabular(sol, 1.0, 0.9, terminal=game.terminal, draws=2,
                                    random_critic=critic, key=jax.random.key(1))
    assert abs(np.mean(cal["reward_shaping_corr"].scores["random critic"])) < 0.5


def test_calibrate_command_on_a_terminating_game(capsys):
    from mairl.cli import main

    main(["metrics", "calibrate", "--env", "random-goal-game", "--gamma", "0.9", "--draws", "2"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    header = out.splitlines()[0].split()
    col = header.index("reward_shaping_corr") + 1
    assert lines["informative"][col] == "yes"
    assert lines["informative"][header.index("reward_pearson") + 1] == "NO"
    assert float(lines["floor"][col]) < 0.1 and float(lines["ceiling"][col]) > 0.95


def test_calibrate_command_errors():
    from mairl.cli import main

    with pytest.raises(SystemExit, match="needs the expert file"):  # Gems without demos
        main(["metrics", "calibrate", "--env", "gems"])
    with pytest.raises(SystemExit, match="no such file"):
        main(["metrics", "calibrate", "--env", "gems", "--demos", "/nonexistent.npz"])
