"""HostEnvironment: the mairl protocol (auto-reset, truncation, checks) over a Python game."""

import jax
import numpy as np
import pytest

from envs.host import HostEnvironment, HostState, seed_from_key
from envs.spaces import Discrete


class Walk(HostEnvironment):
    """Two agents add their actions to a counter; the game ends itself at 4."""

    num_agents = 2
    agents = ("a", "b")
    obs_shape = (1,)
    action_spaces = (Discrete(3), Discrete(3))
    max_steps = 5

    def reset_host(self, seed):
        self.count = seed % 2
        return self._obs()

    def _obs(self):
        return np.full((2, 1), self.count, np.float32)

    def step_host(self, actions):
        self.count += int(actions.sum())
        reward = actions.astype(np.float32)
        return self._obs(), reward, self.count >= 4, False, {"count": self.count}


def test_auto_reset_keeps_last_observation_and_splits_terminated_truncated():
    env = Walk()
    obs, state = env.reset(jax.random.key(0))
    assert isinstance(state, HostState) and state.time == 0
    obs, state, r, term, trunc, info = env.step(jax.random.key(1), state, np.array([2, 2]))
    assert bool(term) and not bool(trunc) and state.time == 0
    assert info["next_obs"][0, 0] >= 4 and obs[0, 0] in (0, 1)
    np.testing.assert_array_equal(r, [2, 2])
    for t in range(1, 6):  # zero actions: truncated at max_steps, never terminated
        obs, state, r, term, trunc, info = env.step(jax.random.key(t), state, np.array([0, 0]))
        assert bool(trunc) == (t == 5) and not bool(term)
    assert state.time == 0


def test_stale_state_and_bad_actions_are_refused():
    env = Walk()
    _, old = env.reset(jax.random.key(0))
    _, new, *_ = env.step(jax.random.key(1), old, np.array([0, 0]))
    with pytest.raises(ValueError, match="stale"):
        env.step(jax.random.key(2), old, np.array([0, 0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(jax.random.key(2), new, np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="agent 'b' is 3, expected 0..2"):
        env.step(jax.random.key(2), new, np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        env.step(jax.random.key(2), new, np.array([0.5, 1.0]))


def test_seeds_follow_keys():
    assert seed_from_key(jax.random.key(3)) == seed_from_key(jax.random.key(3))
    assert seed_from_key(jax.random.key(3)) != seed_from_key(jax.random.key(4))
