"""PPO as a mairl algorithm, and the episode metrics its Overcooked expert reports."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete
from mairl import metrics


# -- mairl.metrics.episode_info_sums -------------------------------------------------------------
@struct.dataclass
class ClockState(EnvState):
    pass


class ClockEnv(Environment):
    """Two agents, episodes of ``max_steps`` steps; ``info["clock"]`` is the step
    count after the step (shared), ``info["paid"]`` pays agent ``i`` ``(i + 1) * a_i``."""

    num_agents = 2
    agents = ("a", "b")
    obs_shape = (1,)
    action_spaces = (Discrete(2), Discrete(2))
    max_steps = 4

    def reset_env(self, key):
        return jnp.zeros((2, 1), jnp.float32), ClockState(time=jnp.int32(0))

    def step_env(self, key, state, actions):
        state = state.replace(time=state.time + 1)
        info = {"clock": state.time, "paid": actions * jnp.array([1, 2])}
        return jnp.zeros((2, 1)), state, jnp.zeros(2), jnp.bool_(False), info


def test_episode_info_sums_known_answer():
    # One episode is 4 steps: clock 1 + 2 + 3 + 4 = 10; both agents always play 1,
    # so agent 0 is paid 1 * 4 = 4 and agent 1 is paid 2 * 4 = 8.
    env = ClockEnv()

    def policy(key, obs):
        return jnp.ones(2, jnp.int32)

    fn = jax.jit(lambda k: metrics.episode_info_sums(k, env, policy, 3, ("clock", "paid")))
    sums = fn(jax.random.key(0))
    assert set(sums) == {"clock", "paid"}
    np.testing.assert_array_equal(sums["clock"], [10, 10, 10])
    np.testing.assert_array_equal(sums["paid"], [[4, 8]] * 3)
