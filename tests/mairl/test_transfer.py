"""Reward transfer pieces (mairl.transfer): distillation, the reward-replaced game, scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from mairl import transfer


def test_distil_reward_recovers_a_known_state_action_reward():
    """Targets ``r(s, a) + noise`` with zero mean noise on one-hot states: the distilled
    ``r_phi`` is ``r`` (the conditional mean), per agent, not the agents swapped."""
    rng = np.random.default_rng(0)
    num_states, num_actions, b = 6, 3, 4000
    table = rng.normal(size=(2, num_states, num_actions)).astype(np.float32)
    states = rng.integers(0, num_states, size=b)
    actions = rng.integers(0, num_actions, size=(2, b))
    obs = np.broadcast_to(np.eye(num_states, dtype=np.float32)[states], (2, b, num_states))
    targets = table[np.arange(2)[:, None], states[None], actions] + 0.3 * rng.normal(size=(2, b))
    reward_fn = transfer.distil_reward(jax.random.key(0), jnp.asarray(obs), jnp.asarray(actions),
                                       jnp.asarray(targets, jnp.float32), None, num_actions,
                                       hidden=(32,), steps=1500, batch_size=256,
                                       learning_rate=3e-3)
    got = np.zeros_like(table)
    for s in range(num_states):
        o = np.broadcast_to(np.eye(num_states, dtype=np.float32)[s], (2, num_states))
        for a in range(num_actions):
            got[:, s, a] = np.asarray(reward_fn(jnp.asarray(o), jnp.array([a, a])))
    np.testing.assert_allclose(got, table, atol=0.15)


def test_reward_replaced_game_pays_the_given_reward_and_keeps_the_truth():
    game = envs.make("random-game")
    bonus = jnp.array([1.0, -2.0])

    def reward_fn(obs, actions):
        return bonus * (actions + 1) + jnp.argmax(obs[0])

    env = transfer.RewardReplaced(game, reward_fn)
    assert env.num_agents == game.num_agents and env.obs_shape == game.obs_shape
    obs, state = env.reset(jax.random.key(0))
    actions = jnp.array([1, 2])
    _, state2, reward, _, _, info = env.step(jax.random.key(1), state, actions)
    np.testing.assert_allclose(reward, reward_fn(obs, actions))
    _, _, true_reward, *_ = game.step(jax.random.key(1), state.inner, actions)
    np.testing.assert_allclose(info["true_reward"], true_reward)
    # the reward reads the state the action was taken in, the next step the new one
    _, _, reward2, *_ = env.step(jax.random.key(2), state2, actions)
    np.testing.assert_allclose(reward2, reward_fn(state2.obs, actions))


def test_transfer_score_bounds():
    np.testing.assert_allclose(transfer.transfer_score(jnp.array([2.0, 10.0]), 2.0, 10.0),
                               [0.0, 1.0])
    assert float(transfer.transfer_score(jnp.array(6.0), 2.0, 10.0)) == pytest.approx(0.5)


def test_distil_reward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="obs, actions, targets"):
        transfer.distil_reward(jax.random.key(0), jnp.zeros((2, 5, 3)), jnp.zeros((2, 4), int),
                               jnp.zeros((2, 4)), None, 3)


def test_shift_spec_parsing_and_errors(tmp_path):
    from mairl.cli import main
    from mairl.cli.train import parse_env_spec

    assert parse_env_spec("gems:size=11,max_steps=60") == ("gems", {"size": 11, "max_steps": 60})
    assert parse_env_spec("gems") == ("gems", {})
    assert parse_env_spec("gems:obs_mode=map") == ("gems", {"obs_mode": "map"})
    with pytest.raises(ValueError, match="NAME:key=value"):
        parse_env_spec("gems:size")
    with pytest.raises(SystemExit, match="error"):
        main(["eval", "--run", str(tmp_path), "--transfer", "gems:size=11"])


def test_reward_transfer_runs_every_row_on_a_tiny_budget():
    """The whole test end to end (one recovered reward and the controls),
    at a budget that only checks the plumbing: every row present, normalised to the
    random policy and the true-reward learner."""
    from mairl import runs
    from mairl.algos import ALGOS, make_algo
    from mairl.algos.soft_q import SoftQConfig
    from mairl.data import collect

    game = envs.make("random-game", max_steps=5)
    demos = collect(jax.random.key(0), game, lambda k, o: game.sample_actions(k), 4, num_envs=4)
    algo = make_algo(ALGOS["mamql-offline"].config(critic="tabular"), num_agents=2,
                     obs_shape=tuple(game.obs_shape), num_actions=game.num_actions, env=game)
    params = [algo.init(jax.random.key(2), runs.example_batch(algo, game)).params]
    config = SoftQConfig(hidden=(8,), batch_size=8, num_envs=2, buffer_size=64, warmup_steps=4)
    out = transfer.reward_transfer(
        jax.random.key(1), game, [("mamql-offline", algo, p) for p in params], config=config,
        demos=demos, demo_env=game, updates=2, seeds=1, episodes=2, distil_steps=2)
    assert out["random policy"].shape == (1, 2) and out["true reward"].shape == (1, 2)
    assert out["random critic"].shape == (1, 2) and out["mamql-offline"].shape == (1, 2)
    norm = out["normalised"]
    assert set(norm) == {"random policy", "true reward", "random critic", "mamql-offline"}
    np.testing.assert_allclose(norm["random policy"], 0.0, atol=1e-6)
    np.testing.assert_allclose(norm["true reward"], 1.0, atol=1e-6)
    # the random critic's and the learner's distilled rewards ran in one compiled
    # program (the reward is its argument), the true-reward row in another
    program = transfer._reoptimise_program(game, config, 2, 2, game)
    assert program._cache_size() == 2
