"""Multi-agent soft Q-learning (mairl.algos.soft_q) and the shipped soft-Q experts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.gems import state_from_cells
from envs.tabular import TabularGame
from mairl.algos import ALGOS, Batch, SoftQConfig, make_soft_q
from mairl.algos.soft_q import save_soft_q_expert, soft_bellman_target, soft_q_loss
from mairl.evaluation import make_eval_fn
from mairl.experts import (
    GEMS_NUM_FEATURES,
    GEMS_SOFT_Q_PARAMS,
    gems_agent_features,
    gems_features,
    load_soft_q_expert,
    make_expert,
    soft_q_expert_config,
)
from mairl.metrics.returns import evaluate_returns, mean_confidence_interval
from mairl.params import check_params, load_params, save_params
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, TrainData, make_train

LN2, LN3 = math.log(2.0), math.log(3.0)
#: Per-agent mean return of the MAMQL authors' Gems experts.
AUTHORS_GEMS_RETURN = 13.2


# -- losses -------------------------------------------------------------------------------------
def test_soft_bellman_target_known_case():
    # Q(s', .) = [0, ln 3] at alpha = 1: V(s') = ln(e^0 + e^ln3) = ln 4 = 2 ln 2,
    # so with r = 1, gamma = 1/2: y = 1 + ln 2, and y = r = 1 if s' is terminal.
    # Agent 1, alpha = 1/2, Q(s', .) = [0, ln 3 / 2]: V = (1/2) ln(1 + 3) = ln 2 too;
    # its rewards are 0, so y = ln 2 / 2 and 0.
    q_next = jnp.array([[[0.0, LN3], [0.0, LN3]], [[0.0, LN3 / 2], [0.0, LN3 / 2]]])
    rewards = jnp.array([[1.0, 1.0], [0.0, 0.0]])  # (agent, batch)
    terminated = jnp.array([False, True])
    y0 = soft_bellman_target(rewards[0], terminated, q_next[0], alpha=1.0, gamma=0.5)
    np.testing.assert_allclose(y0, [1.0 + LN2, 1.0], rtol=1e-6)
    y1 = soft_bellman_target(rewards[1], terminated, q_next[1], alpha=0.5, gamma=0.5)
    np.testing.assert_allclose(y1, [LN2 / 2, 0.0], rtol=1e-6, atol=1e-7)
    both = soft_bellman_target(rewards, terminated, q_next[:1].repeat(2, 0), alpha=1.0, gamma=0.5)
    np.testing.assert_allclose(both, [[1.0 + LN2, 1.0], [LN2, 0.0]], rtol=1e-6)


def test_soft_q_loss_values_and_fixed_target():
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    actions = jnp.array([1, 0])
    target = jnp.array([0.0, 5.0])  # errors Q(s, a) - y = [2, -2]
    loss, taken = soft_q_loss(q, actions, target)
    np.testing.assert_allclose(taken, [2.0, 3.0])
    assert float(loss) == pytest.approx(4.0)
    huber, _ = soft_q_loss(q, actions, target, huber_delta=1.0)  # 1/2 + (2 - 1) each
    assert float(huber) == pytest.approx(1.5)
    grad_target = jax.grad(lambda t: soft_q_loss(q, actions, t)[0])(target)
    np.testing.assert_array_equal(grad_target, 0.0)
    grad_q = jax.grad(lambda q: soft_q_loss(q, actions, target)[0])(q)
    np.testing.assert_allclose(grad_q, [[0.0, 2.0], [-2.0, 0.0]])  # d/dQ mean(err^2) = err


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("alpha", {"alpha": 0.0}),
        ("gamma", {"gamma": 1.0}),
        ("tau", {"tau": 0.0}),
        ("buffer_size", {"num_envs": 8, "buffer_size": 4}),
        ("critic", {"critic": "transformer"}),
        ("warmup_steps", {"warmup_steps": -1}),
        ("huber_delta", {"huber_delta": -1.0}),
    ],
)
def test_config_errors_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=rf"SoftQConfig\.{field}"):
        SoftQConfig(**kwargs)


# -- the learner in make_train ------------------------------------------------------------------
def algo_on(game, config, obs_transform=None):
    return make_soft_q(config, num_agents=game.num_agents, obs_shape=game.obs_shape,
                       num_actions=game.num_actions, env=game, obs_transform=obs_transform)


def test_algos_soft_q_runs_in_make_train():
    game = envs.make("stag-hunt")
    config = SoftQConfig(batch_size=16, num_envs=4, buffer_size=64, hidden=(8,),
                            warmup_steps=2)
    algo = algo_on(game, config)
    assert ALGOS["soft-q"].config is SoftQConfig and ALGOS["soft-q"].make is make_soft_q
    assert algo.needs.expert_batch == 0 and algo.needs.rewards and algo.needs.num_envs == 4
    train = make_train(algo, TrainConfig(num_updates=6, eval_every=3),
                            make_eval_fn(algo, game, episodes=4))
    result = jax.jit(train)(jax.random.key(0), TrainData(None, None))
    assert result.curves["train/loss"].shape == (2, 2)
    assert result.curves["return"].shape == (2, 2)
    assert int(result.state.step) == 6
    assert bool(jnp.all(jnp.isfinite(result.curves["train/loss"])))


# -- convergence to the exact soft values -------------------------------------------------------
def chain_game() -> TabularGame:
    """One agent, 3 states, 2 actions, deterministic moves; state 2 is terminal.

    From 0: action 0 -> 1 (reward 0), action 1 -> 2 (reward 1). From 1: action 0
    -> 0 (reward 0.5), action 1 -> 2 (reward 2). State 2 only absorbs. Episodes
    start in 0 or 1.
    """
    transitions = np.zeros((3, 2, 3))
    transitions[0, 0, 1] = transitions[0, 1, 2] = 1.0
    transitions[1, 0, 0] = transitions[1, 1, 2] = 1.0
    transitions[2, :, 2] = 1.0
    rewards = np.array([[[0.0, 1.0], [0.5, 2.0], [0.0, 0.0]]])
    terminal = np.array([False, False, True])
    return TabularGame(transitions, rewards, np.array([0.5, 0.5, 0.0]), max_steps=20,
                       terminal=terminal)


def test_soft_q_learning_reaches_soft_value_iteration_on_one_agent_game():
    # Deterministic rewards and moves: the targets have no noise, so tabular
    # soft Q-learning converges to the exact soft Q of the visited states 0, 1.
    game = chain_game()
    config = SoftQConfig(alpha=1.0, gamma=0.9, learning_rate=0.05, batch_size=64, num_envs=8,
                         buffer_size=512, tau=0.1, critic="tabular", max_grad_norm=None,
                         warmup_steps=8)
    algo = algo_on(game, config)
    train = make_train(algo, TrainConfig(num_updates=1500, eval_every=500),
                       make_eval_fn(algo, game, episodes=8))
    result = jax.jit(train)(jax.random.key(0), TrainData(None, None))
    exact = soft_value_iteration(game, alpha=1.0, gamma=0.9).q  # (agent, state, action)
    q = algo.q_values(result.state.params, jax.vmap(game.observe)(jnp.arange(2))[:, 0][None])
    np.testing.assert_allclose(q[0], exact[0, :2], atol=0.02)
    assert result.curves["return"].shape == (3, 1)
    np.testing.assert_array_equal(result.updates, [500, 1000, 1500])


@pytest.mark.slow
def test_soft_q_learning_approaches_the_logit_equilibrium_of_stag_hunt():
    # Two agents in a repeated one-state game: each critic's target averages
    # over the other's Boltzmann action, so the learners approach the logit
    # equilibrium (within the noise of sampled targets).
    game = envs.make("stag-hunt")
    config = SoftQConfig(alpha=1.0, gamma=0.5, learning_rate=0.01, batch_size=256, num_envs=16,
                         buffer_size=2048, tau=0.05, critic="tabular", warmup_steps=16)
    algo = algo_on(game, config)
    train = make_train(algo, TrainConfig(num_updates=2000, eval_every=2000))
    result = jax.jit(train)(jax.random.key(1), TrainData(None, None))
    exact = soft_value_iteration(game, alpha=1.0, gamma=0.5).q[:, 0]  # (agent, action)
    q = algo.q_values(result.state.params, game.observe(0))
    np.testing.assert_allclose(q, exact, atol=0.15)


# -- parameter files ----------------------------------------------------------------------------
def test_params_round_trip_and_errors(tmp_path):
    game = envs.make("stag-hunt")

    def template(hidden):
        algo = algo_on(game, SoftQConfig(hidden=hidden))
        return jax.eval_shape(algo.init, jax.random.key(0), Batch(None)).params

    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(x.dtype), template((8, 4)))
    path = save_params(tmp_path / "p.npz", params, {"alpha": 0.5, "critic": "mlp", "n": 3})
    loaded, metadata = load_params(path, template=params)
    assert metadata == {"alpha": 0.5, "critic": "mlp", "n": 3}
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    kernel = loaded["params"]["Dense_0"]["kernel"]
    assert kernel.shape == (2, 1, 8)  # (agent, feature, hidden)
    with pytest.raises(ValueError, match=r"'params/Dense_0/bias': expected shape \(2, 16\), got"):
        load_params(path, template=template((16, 4)))
    with pytest.raises(ValueError, match="missing.*Dense_3"):
        check_params(loaded, template((8, 4, 4)))
    with pytest.raises(FileNotFoundError):
        load_params(tmp_path / "absent.npz")
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):
        load_params(tmp_path / "objects.npz")


# -- the Gems expert ------------------------------------------------------------------------------
def test_gems_features_of_a_known_state():
    env = envs.make("gems")
    # agents at (2, 3) and (10, 3); blue gems (agent 0's) at (2, 5), (2, 5), (0, 0);
    # red at (14, 14) x3; purple at (6, 3), (2, 4), (8, 8).
    cells = jnp.array([[2, 3], [10, 3], [2, 5], [2, 5], [0, 0], [14, 14], [14, 14], [14, 14],
                       [6, 3], [2, 4], [8, 8]])
    feats = jax.jit(lambda c: gems_features(env.get_obs(state_from_cells(c))))(cells)
    assert feats.shape == (2, GEMS_NUM_FEATURES) and feats.dtype == jnp.float32
    r = 14.0
    f0 = np.asarray(feats[0])
    np.testing.assert_allclose(f0[:2], [8 / r, 0.0], atol=1e-6)  # other - me
    # purple slots ordered by max(d_me, d_other): (6,3) max(4, 4); (2,4) max(1, 9); (8,8) max(11, 7)
    purple = f0[2:23].reshape(3, 7)
    np.testing.assert_allclose(purple[0], [1, 4 / r, 0, -4 / r, 0, 4 / (2 * r), 4 / (2 * r)],
                               atol=1e-6)
    np.testing.assert_allclose(purple[1, 5:], [1 / (2 * r), 9 / (2 * r)], atol=1e-6)
    np.testing.assert_allclose(purple[2, 5:], [11 / (2 * r), 7 / (2 * r)], atol=1e-6)
    # own gems: (2, 5) (two gems, one cell) at distance 2, (0, 0) at 5, then an empty slot
    own = f0[23:].reshape(3, 4)
    np.testing.assert_allclose(own[0], [1, 0, 2 / r, 2 / (2 * r)], atol=1e-6)
    np.testing.assert_allclose(own[1], [1, -2 / r, -3 / r, 5 / (2 * r)], atol=1e-6)
    np.testing.assert_array_equal(own[2], 0.0)
    f1 = np.asarray(feats[1])
    np.testing.assert_allclose(f1[:2], [-8 / r, 0.0], atol=1e-6)
    np.testing.assert_allclose(f1[23:].reshape(3, 4)[0], [1, 4 / r, 11 / r, 15 / (2 * r)],
                               atol=1e-6)
    with pytest.raises(ValueError, match="Gems map observation"):
        gems_features(jnp.zeros((2, 22)))
    # the per-agent view is each agent's row of the joint features
    obs = env.get_obs(state_from_cells(cells))
    for agent in (0, 1):
        np.testing.assert_allclose(gems_agent_features(obs[agent], agent), feats[agent],
                                   atol=1e-6)
    with pytest.raises(ValueError, match="one agent's Gems map observation"):
        gems_agent_features(jnp.zeros((22,)), 0)


def test_soft_q_buffer_holds_gems_features_not_maps():
    # 35 float32 features (140 bytes) per agent instead of a 5 x 15 x 15 uint8 map (1,125).
    env = envs.make("gems")
    algo = algo_on(env, SoftQConfig(num_envs=2, buffer_size=64, warmup_steps=1),
                   gems_agent_features)
    state = jax.eval_shape(algo.init, jax.random.key(0), Batch(None))
    assert state.buffer.data.obs.shape == (64, 2, GEMS_NUM_FEATURES)
    assert state.buffer.data.next_obs.dtype == jnp.float32
    assert state.buffer.data.rewards.shape == (64, 2)
    assert state.env_obs.shape == (2, 2, 5, 15, 15)


def test_shipped_gems_expert_loads_and_acts():
    env = envs.make("gems")
    params, metadata = load_params(GEMS_SOFT_Q_PARAMS)
    assert GEMS_SOFT_Q_PARAMS.stat().st_size < 2_000_000
    assert metadata["features"] == "gems" and metadata["alpha"] > 0
    policy_fn = make_expert(env, "soft-q")
    # Measured, not read from the file: 128 episodes; the lower end of the 99%
    # t-interval of each agent's mean return must clear the authors' experts' 13.2
    # (the shipped expert plays about 33.5 per agent).
    returns = np.asarray(evaluate_returns(jax.random.key(11), env, policy_fn, 128))
    summary = mean_confidence_interval(returns, confidence=0.99)
    assert np.all(np.asarray(summary.lower) > AUTHORS_GEMS_RETURN), summary
    obs, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 4))
    actions = jax.jit(jax.vmap(policy_fn))(jax.random.split(jax.random.key(1), 4), obs)
    assert actions.shape == (4, 2) and actions.dtype == jnp.int32
    assert bool(jnp.all((actions >= 0) & (actions < 5)))


def test_shipped_gems_expert_plays_as_before():
    # Known answers: this file's critic values and sampled actions on these keys,
    # as the code that trained it computes them; a new loader must not change them.
    env = envs.make("gems")
    obs, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 8))
    policy_fn = make_expert(env, "soft-q")
    actions = jax.jit(jax.vmap(policy_fn))(jax.random.split(jax.random.key(1), 8), obs)
    assert actions.tolist() == [[2, 3], [3, 1], [0, 1], [2, 0], [2, 3], [3, 3], [3, 1], [0, 1]]
    params, metadata = load_params(GEMS_SOFT_Q_PARAMS)
    algo = algo_on(env, SoftQConfig(alpha=metadata["alpha"], hidden=(128, 128)),
                   gems_agent_features)
    q = algo.q_values(jax.tree.map(jnp.asarray, params), obs[0])
    np.testing.assert_allclose(q, [[6.781, 9.508, 12.193, 10.599, 6.467],
                                   [10.057, 9.492, 12.501, 12.767, 10.431]], atol=2e-3)


def test_save_soft_q_expert_writes_what_the_loader_reads(tmp_path):
    # The shipped Gems expert saved again from its config and its own entries:
    # the same metadata and parameters, and the same policy.
    env = envs.make("gems")
    params, metadata = load_params(GEMS_SOFT_Q_PARAMS)
    described = {"format", "env_id", "features", "critic", "hidden", "alpha", "gamma",
                 "num_agents", "num_actions"}
    entries = {k: v for k, v in metadata.items() if k not in described}
    path = save_soft_q_expert(tmp_path / "gems.npz", params, soft_q_expert_config(metadata), env,
                              env_id="gems", features="gems", **entries)
    saved, saved_metadata = load_params(path, template=params)
    assert saved_metadata == metadata
    jax.tree.map(np.testing.assert_array_equal, saved, params)
    obs, _ = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 4))
    keys = jax.random.split(jax.random.key(1), 4)
    np.testing.assert_array_equal(jax.vmap(load_soft_q_expert(path, env))(keys, obs),
                                  jax.vmap(make_expert(env, "soft-q"))(keys, obs))


def test_soft_q_expert_rejects_other_games_and_files(tmp_path):
    with pytest.raises(ValueError, match="features 'gems' do not fit"):
        load_soft_q_expert(GEMS_SOFT_Q_PARAMS, envs.make("gems-compact"))
    path = save_params(tmp_path / "plain.npz", {"w": np.zeros(3)}, {"alpha": 1.0})
    with pytest.raises(ValueError, match="expert 'soft-q': .*not a soft-Q expert file"):
        make_expert(envs.make("gems"), "soft-q", params_path=path)


def test_demos_cli_records_the_soft_q_expert(tmp_path, capsys):
    from mairl import data
    from mairl.cli import main

    out = tmp_path / "gems.npz"
    main(["demos", "--env", "gems", "--expert", "soft-q", "--episodes", "4", "--num-envs", "4",
          "--out", str(out)])
    assert "mean return per agent" in capsys.readouterr().out
    demos = data.load(out)
    assert demos.num_episodes == 4
    assert np.asarray(demos.obs).shape[1:] == (2, 5, 15, 15)


@pytest.mark.slow
def test_shipped_gems_expert_beats_the_authors_experts():
    env = envs.make("gems")
    returns = evaluate_returns(jax.random.key(7), env, make_expert(env, "soft-q"), 1000)
    assert float(jnp.min(returns.mean(axis=0))) >= AUTHORS_GEMS_RETURN
