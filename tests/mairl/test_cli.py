"""The ``mairl`` command line, run in-process."""

import numpy as np
import pytest

from mairl import data
from mairl.cli import main


def test_envs_lists_every_registered_env(capsys):
    import envs

    main(["envs"])
    out = capsys.readouterr().out
    for name in envs.registered():
        assert name in out


def test_envs_unknown_family(capsys):
    with pytest.raises(SystemExit, match="no environment in family"):
        main(["envs", "--family", "nope"])


def test_demos_soft_vi_writes_valid_file(tmp_path, capsys):
    out = tmp_path / "pd.npz"
    main(["demos", "--env", "stag-hunt", "--expert", "soft-vi", "--episodes", "4",
          "--seed", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert "4 episodes" in text and "mean return per agent" in text
    demos = data.load(out)
    assert demos.num_episodes == 4
    assert demos.env_id == "stag-hunt"
    assert np.asarray(demos.actions).shape[1] == 2
    assert (demos.expert_alpha, demos.expert_gamma) == (1.0, 0.99)  # recorded for like-for-like


def test_demos_random_on_saved_tabular_game(tmp_path, capsys):
    import jax

    from envs.tabular import random_game

    path = tmp_path / "g.npz"
    random_game(jax.random.key(0), 5, 2, 3, max_steps=7).save(path)
    out = tmp_path / "d.npz"
    main(["demos", "--env", f"tabular:{path}", "--expert", "random", "--episodes", "3",
          "--out", str(out)])
    demos = data.load(out)
    assert demos.num_transitions == 21  # 3 episodes truncated at 7 steps
    assert demos.num_agents == 3


def test_demos_bad_env_is_clear():
    with pytest.raises(SystemExit, match="--env: unknown environment 'stag-hunter'"):
        main(["demos", "--env", "stag-hunter", "--out", "x.npz"])


def test_demos_soft_vi_needs_tabular(tmp_path):
    with pytest.raises(SystemExit, match="needs a tabular game"):
        main(["demos", "--env", "gems", "--expert", "soft-vi", "--out", str(tmp_path / "x")])


def test_typo_in_flag_is_an_error():
    with pytest.raises(SystemExit):
        main(["demos", "--env", "stag-hunt", "--episods", "3", "--out", "x.npz"])


def test_bench_envs_quick(capsys):
    main(["bench", "envs", "--quick"])
    out = capsys.readouterr().out
    assert "machine:" in out
    assert out.count("steps/s") == 3
    assert "soft value iteration, 100 states x 3 agents" in out
