"""PPO as a mairl algorithm, and the episode metrics its Overcooked expert reports."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete
from envs.tabular import TabularGame
from mairl import metrics
from mairl.algos import ALGOS, Batch, PPOConfig, make_ppo
from mairl.algos.ppo import clipped_surrogate, clipped_value_loss, gae, ppo_loss
from mairl.evaluation import make_eval_fn
from mairl.train import TrainConfig, TrainData, make_train


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


# -- PPO's loss pieces ---------------------------------------------------------------------------
def test_gae_known_answer_with_a_terminated_step():
    # gamma = lam = 1/2, so gamma lam = 1/4. Step 1 terminates (no bootstrap, and
    # the advantage sum is cut there); step 2 is cut by the end of the rollout.
    # delta_0 = 1 + 0.5 * 1 - 0.5 = 1;  delta_1 = 2 + 0 - 1 = 1;  delta_2 = 3 + 0.5 * 4 - 1.5 = 3.5
    # A_2 = 3.5;  A_1 = delta_1 (cut) = 1;  A_0 = delta_0 + 0.25 * A_1 = 1.25
    # returns = A + V = [1.75, 2, 5]
    rewards = jnp.array([1.0, 2.0, 3.0])
    values = jnp.array([0.5, 1.0, 1.5])
    next_values = jnp.array([1.0, 2.0, 4.0])
    terminated = jnp.array([False, True, False])
    adv, ret = gae(rewards, values, next_values, terminated, terminated, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv, [1.25, 1.0, 3.5], rtol=1e-6)
    np.testing.assert_allclose(ret, [1.75, 2.0, 5.0], rtol=1e-6)
    # a truncation instead (done, not terminated) keeps the bootstrap of step 1:
    # delta_1 = 2 + 0.5 * 2 - 1 = 2, and still cuts the sum: A_0 = 1 + 0.25 * 2 = 1.5
    adv, _ = gae(rewards, values, next_values, jnp.zeros(3, bool), terminated, gamma=0.5,
                 lam=0.5)
    np.testing.assert_allclose(adv, [1.5, 2.0, 3.5], rtol=1e-6)


def test_clipped_surrogate_outside_the_clip_range():
    # eps = 0.2. rho = 1.5 with A = 2: min(3, 1.2 * 2) = 2.4, clipped, so no gradient;
    # with A = -2: min(-3, -2.4) = -3, unclipped (pessimistic): d/dlogp (rho A) = rho A = -3.
    # rho = 0.5 with A = -2: min(-1, 0.8 * -2) = -1.6, clipped, no gradient.
    old = jnp.zeros(3)
    log_prob = jnp.log(jnp.array([1.5, 1.5, 0.5]))
    adv = jnp.array([2.0, -2.0, -2.0])
    np.testing.assert_allclose(clipped_surrogate(log_prob, old, adv, 0.2), [2.4, -3.0, -1.6],
                               rtol=1e-6)
    grad = jax.grad(lambda lp: clipped_surrogate(lp, old, adv, 0.2).sum())(log_prob)
    np.testing.assert_allclose(grad, [0.0, -3.0, 0.0], rtol=1e-6, atol=1e-7)
    # value: old 0, new 1, return 2, eps 0.2: max((1 - 2)^2, (0.2 - 2)^2) / 2 = 1.62
    np.testing.assert_allclose(clipped_value_loss(jnp.array([1.0]), jnp.array([0.0]),
                                                  jnp.array([2.0]), 0.2), [1.62], rtol=1e-6)


def test_ppo_loss_at_the_old_policy():
    # At the old policy rho = 1, so the surrogate is mean(normalized A) = 0; uniform
    # logits over 2 actions have entropy ln 2; value = return gives no value loss:
    # loss = -0 + 0 - 0.1 ln 2.
    logits = jnp.zeros((4, 2))
    actions = jnp.array([0, 1, 1, 0])
    old_log_prob = jnp.full(4, -math.log(2.0))
    value = jnp.array([1.0, 2.0, 3.0, 4.0])
    loss, aux = ppo_loss(logits, value, actions, old_log_prob, value, jnp.array([1.0, -1, 2, 0]),
                         value, clip_eps=0.2, vf_coef=0.5, ent_coef=0.1)
    assert float(loss) == pytest.approx(-0.1 * math.log(2.0), abs=1e-6)
    assert float(aux["entropy"]) == pytest.approx(math.log(2.0))
    assert float(aux["value_loss"]) == 0.0


@pytest.mark.parametrize(("field", "kwargs"), [
    ("minibatches", {"num_envs": 3, "num_steps": 5, "minibatches": 2}),
    ("gamma", {"gamma": 1.0}),
    ("lr_decay_updates", {"lr_decay_updates": 0}),
    ("critic", {"critic": "transformer"}),
])
def test_ppo_config_errors_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=rf"PPOConfig\.{field}"):
        PPOConfig(**kwargs)


# -- PPO learns --------------------------------------------------------------------------------
def one_state_game(best: tuple[int, ...], max_steps: int = 10) -> TabularGame:
    """Two agents, one state, two actions; agent ``i`` is paid 1 for action ``best[i]``."""
    transitions = np.ones((1, 2, 2, 1))
    rewards = np.zeros((2, 1, 2, 2))
    rewards[0, 0, best[0], :] = 1.0
    rewards[1, 0, :, best[1]] = 1.0
    return TabularGame(transitions, rewards, np.ones(1), max_steps=max_steps)


@pytest.mark.parametrize(("shared", "best"), [(True, (1, 1)), (False, (1, 0))])
def test_ppo_learns_the_paying_action(shared, best):
    # A uniform policy earns 5 per agent in 10 steps; the best one 10.
    game = one_state_game(best)
    config = PPOConfig(gamma=0.9, learning_rate=0.05, num_envs=8, num_steps=10, epochs=4,
                       minibatches=2, ent_coef=0.0, hidden=(16,), shared=shared)
    algo = make_ppo(config, num_agents=2, obs_shape=game.obs_shape, num_actions=2, env=game)
    assert algo.needs.expert_batch == 0 and algo.needs.rewards and algo.needs.num_envs == 8
    obs = game.reset(jax.random.key(0))[0]
    start = algo.q_values(algo.init(jax.random.key(1), Batch(None)).params, obs)
    assert float(jnp.max(jnp.abs(start))) < 0.1  # small logits: a near-uniform start, return ~5
    train = make_train(algo, TrainConfig(num_updates=10, eval_every=5),
                       make_eval_fn(algo, game, episodes=32))
    result = jax.jit(train)(jax.random.key(0), TrainData(None, None))
    returns = np.asarray(result.curves["return"])  # (chunk, agent)
    assert result.curves["train/loss"].shape == (2, 2)
    assert np.all(returns[-1] > 9.5), returns
    q = algo.q_values(result.state.params, obs)  # (agent, action)
    assert np.all(np.argmax(np.asarray(q), axis=-1) == np.array(best))
    if shared:  # one network: both agents read the same logits
        assert jax.tree.leaves(result.state.params)[0].ndim < 3


def test_ppo_shaping_weight_decays_with_the_step():
    # shaping from info["paid"] of the clock env: weight 2 -> 0 over 2 updates.
    env = ClockEnv()
    config = PPOConfig(num_envs=2, num_steps=4, minibatches=1, epochs=1, hidden=(4,),
                       shaping_start=2.0, shaping_key="paid", shaping_updates=2)
    algo = make_ppo(config, num_agents=2, obs_shape=env.obs_shape, num_actions=2, env=env)
    state = algo.init(jax.random.key(0), Batch(None))
    update = jax.jit(algo.update)
    weights = []
    for i in range(3):
        state, m = update(state, Batch(None), jax.random.key(i))
        weights.append(float(m["shaping_weight"]))
    assert weights == [2.0, 1.0, 0.0]
    assert float(m["reward"][1]) == 0.0  # the env's reward is 0; shaping gone at step 2
    bad = make_ppo(PPOConfig(num_envs=2, num_steps=4, minibatches=1, shaping_start=1.0,
                             shaping_key="absent"),
                   num_agents=2, obs_shape=env.obs_shape, num_actions=2, env=env)
    with pytest.raises(ValueError, match="shaping_key 'absent'"):
        bad.update(bad.init(jax.random.key(0)), Batch(None), jax.random.key(1))


def test_ppo_is_registered():
    assert ALGOS["ppo"].config is PPOConfig and ALGOS["ppo"].make is make_ppo
