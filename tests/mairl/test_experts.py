"""``mairl.experts`` and ``mairl.data.episode_returns``: library errors are exceptions,
the ``mairl demos`` command turns them into one-line ``error:`` exits."""

from types import SimpleNamespace

import numpy as np
import pytest

import envs
from mairl.cli import main
from mairl.data import Demonstrations, episode_returns
from mairl.experts import EXPERT_KINDS, make_expert, scripted_policy_fn


# -- make_expert raises ValueError / FileNotFoundError, never SystemExit -------------------------
def test_scripted_expert_on_a_game_without_one():
    with pytest.raises(ValueError, match="expert 'scripted': stag-hunt has no scripted expert"):
        make_expert(envs.make("stag-hunt"), "scripted")
    with pytest.raises(ValueError, match="expert 'scripted': gems has no scripted expert"):
        scripted_policy_fn(envs.make("gems"))


def test_scripted_expert_is_the_games_own():
    def policy_fn(key, obs):
        return obs

    game = SimpleNamespace(name="fake", scripted_policy=lambda: policy_fn)
    assert make_expert(game, "scripted") is policy_fn


def test_soft_vi_on_a_non_tabular_game():
    with pytest.raises(ValueError, match="expert 'soft-vi': needs a tabular game; gems is not"):
        make_expert(envs.make("gems"), "soft-vi")


def test_missing_soft_q_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="expert 'soft-q': params_path .*nope.npz"):
        make_expert(envs.make("gems"), "soft-q", params_path=path)


def test_unknown_kind():
    with pytest.raises(ValueError, match="expert 'soft-x': unknown kind; expected one of") as err:
        make_expert(envs.make("stag-hunt"), "soft-x")
    for kind in EXPERT_KINDS:
        assert repr(kind) in str(err.value)
    assert not isinstance(err.value, SystemExit)


def test_demos_cli_turns_the_error_into_one_line(tmp_path):
    out = tmp_path / "x.npz"
    with pytest.raises(SystemExit) as exit_info:
        main(["demos", "--env", "gems", "--expert", "scripted", "--out", str(out)])
    message = str(exit_info.value.code)
    assert message.startswith("error: --expert scripted: ")
    assert "gems has no scripted expert" in message
    assert "\n" not in message
    assert not out.exists()


def test_demos_cli_missing_soft_q_file(tmp_path):
    with pytest.raises(SystemExit, match=r"error: --expert soft-q: .*no such parameter file"):
        main(["demos", "--env", "gems", "--expert", "soft-q", "--expert-params",
              str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.npz")])


# -- episode_returns ------------------------------------------------------------------------------
def _tiny_demos(rewards):
    # Three episodes of lengths 2, 1 and 3, ids 2, 5, 9 (non-contiguous ids).
    t = 6
    obs = np.arange(t * 2, dtype=np.float32).reshape(t, 2, 1)
    done = np.array([0, 1, 1, 0, 0, 1], bool)
    return Demonstrations.create(
        obs, np.zeros((t, 2), np.int32), obs + 1, done, np.zeros(t, bool),
        episode_id=np.array([2, 2, 5, 9, 9, 9]), rewards=rewards,
    )


def test_episode_returns_known_answer():
    rewards = np.array([[1, 10], [2, 20], [4, 40], [8, 80], [16, 160], [32, 320]], np.float32)
    returns = episode_returns(_tiny_demos(rewards))
    assert returns.shape == (3, 2)
    np.testing.assert_array_equal(returns, [[3, 30], [4, 40], [56, 560]])


def test_episode_returns_needs_rewards():
    with pytest.raises(ValueError, match="no true rewards"):
        episode_returns(_tiny_demos(None))


def test_expert_alpha_gamma_records_what_the_expert_uses():
    from mairl.experts import expert_alpha_gamma

    assert expert_alpha_gamma("soft-q") == (0.05, 0.95)  # the shipped Gems expert's file
    assert expert_alpha_gamma("soft-q", alpha=0.2) == (0.2, 0.95)
    assert expert_alpha_gamma("soft-vi", gamma=0.9) == (1.0, 0.9)
    assert expert_alpha_gamma("scripted") == (None, None)
