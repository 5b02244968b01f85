"""Multi-agent soft Q-learning (mairl.forward) and the shipped Gems soft-Q expert."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.gems import state_from_cells
from envs.tabular import TabularGame
from mairl.algos.base import Batch
from mairl.algos.soft_q import SoftQConfig as NewSoftQConfig
from mairl.algos.soft_q import make_soft_q as make_new_soft_q
from mairl.evaluation import make_eval_fn
from mairl.experts import (
    GEMS_NUM_FEATURES,
    GEMS_SOFT_Q_PARAMS,
    gems_features,
    load_soft_q_expert,
    make_expert,
)
from mairl.forward import (
    SoftQConfig,
    check_params,
    load_params,
    make_soft_q,
    make_train,
    save_params,
    soft_bellman_target,
    soft_q_loss,
)
from mairl.metrics.returns import evaluate_returns
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, TrainData
from mairl.train import make_train as make_train_loop

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
        ("num_updates", {"num_updates": 10, "eval_every": 3}),
        ("huber_delta", {"huber_delta": -1.0}),
    ],
)
def test_config_errors_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=rf"SoftQConfig\.{field}"):
        SoftQConfig(**kwargs)


# -- mairl.algos.soft_q: the same learner as an ordinary algorithm ------------------------------
#: Per-agent views for the equivalence test: smaller than the observation (stored
#: as views, float32 and uint8) and larger (stored raw).
VIEWS = {
    "none": None,
    "smaller": lambda obs, agent: obs[:4] * (agent + 1.0),
    "uint8": lambda obs, agent: (obs * (agent + 1) > 0).astype(jnp.uint8),
    "larger": lambda obs, agent: jnp.concatenate([obs, jax.nn.one_hot(agent, 2)]),
}


@pytest.mark.parametrize("view", list(VIEWS))
def test_algos_soft_q_equals_the_forward_learner(view):
    # Same keys, same parameters: mairl.algos.soft_q.init(key) is the old
    # init(split(key)[0]) followed by warmup_steps collections on split(key)[1],
    # and its update(state, batch, key) the old update(state, key).
    game = envs.tabular.random_game(jax.random.key(3), 6, 3, 2, max_steps=5)
    kwargs = dict(alpha=0.5, gamma=0.9, learning_rate=1e-2, batch_size=32, num_envs=4,
                  buffer_size=64, tau=0.1, hidden=(16, 16), warmup_steps=3)
    per_agent = VIEWS[view]
    joint = None if per_agent is None else (
        lambda obs: jax.vmap(per_agent)(obs, jnp.arange(obs.shape[0])))
    old = make_soft_q(SoftQConfig(**kwargs), game, joint)
    new = make_new_soft_q(NewSoftQConfig(**kwargs), num_agents=2, obs_shape=game.obs_shape,
                          num_actions=3, env=game, obs_transform=per_agent)
    key = jax.random.key(11)
    update_keys = jax.random.split(jax.random.key(12), 5)

    @jax.jit
    def run_old():
        key_init, key_warmup = jax.random.split(key)
        state = old.init(key_init)
        state, _ = jax.lax.scan(lambda s, k: (old.collect(s, k), None), state,
                                jax.random.split(key_warmup, 3))
        return jax.lax.scan(old.update, state, update_keys)

    @jax.jit
    def run_new():
        state = new.init(key, Batch(None))
        return jax.lax.scan(lambda s, k: new.update(s, Batch(None), k), state, update_keys)

    (state_old, metrics_old), (state_new, metrics_new) = run_old(), run_new()
    assert int(state_new.buffer.size) == 4 * (3 + 5)
    stored = state_new.buffer.data.obs
    if view in ("smaller", "uint8"):  # the buffer holds the views
        assert stored.shape[1:] == state_old.buffer.data.obs.shape[1:]
        assert stored.dtype == state_old.buffer.data.obs.dtype
    else:
        assert stored.shape[1:] == (2, *game.obs_shape)
    for name in ("params", "target_params"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     getattr(state_old, name), getattr(state_new, name))
    np.testing.assert_allclose(metrics_old["loss"], metrics_new["loss"], rtol=1e-5)
    obs, _ = game.reset(jax.random.key(0))
    np.testing.assert_allclose(old.q_values(state_old.params, obs),
                               new.q_values(state_new.params, obs), rtol=1e-5, atol=1e-6)


def test_algos_soft_q_runs_in_make_train():
    game = envs.make("stag-hunt")
    config = NewSoftQConfig(batch_size=16, num_envs=4, buffer_size=64, hidden=(8,),
                            warmup_steps=2)
    algo = make_new_soft_q(config, num_agents=2, obs_shape=game.obs_shape,
                           num_actions=game.num_actions, env=game)
    assert algo.needs.expert_batch == 0 and algo.needs.rewards and algo.needs.num_envs == 4
    train = make_train_loop(algo, TrainConfig(num_updates=6, eval_every=3),
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
                         num_updates=1500, warmup_steps=8, eval_every=500, eval_episodes=8)
    result = jax.jit(make_train(config, game))(jax.random.key(0))
    exact = soft_value_iteration(game, alpha=1.0, gamma=0.9).q  # (agent, state, action)
    learner = make_soft_q(config, game)
    q = learner.q_values(result.state.params, jax.vmap(game.observe)(jnp.arange(2))[:, 0][None])
    np.testing.assert_allclose(q[0], exact[0, :2], atol=0.02)
    assert result.metrics["eval_return"].shape == (3, 1)
    np.testing.assert_array_equal(result.metrics["update"], [500, 1000, 1500])


@pytest.mark.slow
def test_soft_q_learning_approaches_the_logit_equilibrium_of_stag_hunt():
    # Two agents in a repeated one-state game: each critic's target averages
    # over the other's Boltzmann action, so the learners approach the logit
    # equilibrium (within the noise of sampled targets).
    game = envs.make("stag-hunt")
    config = SoftQConfig(alpha=1.0, gamma=0.5, learning_rate=0.01, batch_size=256, num_envs=16,
                         buffer_size=2048, tau=0.05, critic="tabular", num_updates=2000,
                         warmup_steps=16, eval_every=2000, eval_episodes=4)
    result = jax.jit(make_train(config, game))(jax.random.key(1))
    exact = soft_value_iteration(game, alpha=1.0, gamma=0.5).q[:, 0]  # (agent, action)
    learner = make_soft_q(config, game)
    q = learner.q_values(result.state.params, game.observe(0))
    np.testing.assert_allclose(q, exact, atol=0.15)


# -- parameter files ----------------------------------------------------------------------------
def test_params_round_trip_and_errors(tmp_path):
    game = envs.make("stag-hunt")

    def template(hidden):
        return jax.eval_shape(
            make_soft_q(SoftQConfig(hidden=hidden), game).init_params, jax.random.key(0)
        )

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


def test_shipped_gems_expert_loads_and_acts():
    env = envs.make("gems")
    params, metadata = load_params(GEMS_SOFT_Q_PARAMS)
    assert GEMS_SOFT_Q_PARAMS.stat().st_size < 2_000_000
    assert metadata["features"] == "gems" and metadata["alpha"] > 0
    assert min(metadata["eval_return_agent_0"], metadata["eval_return_agent_1"]) >= 13.2
    policy_fn = make_expert(env, "soft-q")
    obs, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 4))
    actions = jax.jit(jax.vmap(policy_fn))(jax.random.split(jax.random.key(1), 4), obs)
    assert actions.shape == (4, 2) and actions.dtype == jnp.int32
    assert bool(jnp.all((actions >= 0) & (actions < 5)))


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
