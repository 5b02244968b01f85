"""MA-GAIL, MA-AIRL and multi-agent ML-IRL (mairl.algos.adversarial), and the soft-Q
learner's reward hook they are built on."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.tabular import TabularGame
from mairl import data, runs
from mairl.algos import ALGOS, Batch, SoftQConfig, make_algo, make_soft_q
from mairl.algos.adversarial import (
    MAAIRLConfig,
    MLIRLConfig,
    airl_f,
    airl_logits,
    discriminator_loss,
    ml_irl_reward_loss,
)
from mairl.data import Transition
from mairl.evaluation import tabular_reward
from mairl.experts import tabular_policy_fn
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, TrainData, make_train, train_data, train_host

LN2, LN3 = math.log(2.0), math.log(3.0)
GAMMA = 0.9
NAMES = ("ma-gail", "ma-airl", "ml-irl")


# -- losses on hand-made batches ----------------------------------------------------------------
def test_discriminator_loss_known_values():
    # logit 0 on both sides: D = 1/2, loss = -ln(1/2) - ln(1/2) = 2 ln 2.
    assert float(discriminator_loss(jnp.zeros(3), jnp.zeros(2))) == pytest.approx(2 * LN2)
    # expert logit ln 3 (D = 3/4): -ln(3/4); policy logit ln 3: -ln(1/4) = ln 4.
    loss = discriminator_loss(jnp.array([LN3]), jnp.array([LN3]))
    assert float(loss) == pytest.approx(math.log(4 / 3) + math.log(4.0), rel=1e-6)
    # the gradient raises expert logits and lowers policy logits
    g_e, g_p = jax.grad(discriminator_loss, argnums=(0, 1))(jnp.zeros(2), jnp.zeros(2))
    np.testing.assert_allclose(g_e, [-0.25, -0.25])  # -(1 - 1/2) / 2
    np.testing.assert_allclose(g_p, [0.25, 0.25])


def test_airl_f_bootstraps_through_truncation_not_termination():
    # g = 1, h(s) = 0.5, h(s') = 2, gamma = 0.5: f = 1 + 0.5 * 2 - 0.5 = 1.5,
    # and on a terminated transition f = 1 - 0.5 = 0.5.
    g, h, h_next = jnp.ones(2), jnp.full(2, 0.5), jnp.full(2, 2.0)
    f = airl_f(g, h, h_next, jnp.array([False, True]), 0.5)
    np.testing.assert_allclose(f, [1.5, 0.5])
    # D = exp(f) / (exp(f) + pi): pi = 1/3 gives logit f + ln 3, D = 3 e^f / (3 e^f + 1)
    logit = airl_logits(f, jnp.log(jnp.full(2, 1 / 3)))
    d = jnp.exp(f) / (jnp.exp(f) + 1 / 3)
    np.testing.assert_allclose(jax.nn.sigmoid(logit), d, rtol=1e-6)


def test_ml_irl_reward_gradient_raises_expert_pairs():
    # L = mean r_policy - mean r_expert: dL/dr_expert = -1/B, dL/dr_policy = +1/B,
    # so a descent step raises the expert's rewards and lowers the learner's.
    r_e, r_p = jnp.array([0.3, -1.0]), jnp.array([2.0, 0.0, 1.0, 1.0])
    assert float(ml_irl_reward_loss(r_e, r_p)) == pytest.approx(1.0 - (-0.35))
    g_e, g_p = jax.grad(ml_irl_reward_loss, argnums=(0, 1))(r_e, r_p)
    np.testing.assert_allclose(g_e, [-0.5, -0.5])
    np.testing.assert_allclose(g_p, [0.25] * 4)


@pytest.mark.parametrize(("field", "kwargs"), [
    ("reward_learning_rate", {"reward_learning_rate": 0.0}),
    ("policy_window", {"policy_window": 0}),
    ("reward_every", {"reward_every": 0}),
    ("grad_penalty", {"grad_penalty": -1.0}),
    ("gamma", {"gamma": 1.0}),
])
def test_config_errors_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=rf"MAAIRLConfig\.{field}"):
        MAAIRLConfig(**kwargs)


# -- the reward hook of the soft-Q learner ------------------------------------------------------
def own_action_game():
    """random-game's dynamics with rewards that depend on each agent's own action only,
    ``R[i, s, a_1, a_2] = M[i, s, a_i]``, so a hook reading ``(s, a_i)`` can return
    exactly the rewards the env stores."""
    base = envs.make("random-game")
    m = np.asarray(np.random.default_rng(3).normal(size=(2, 20, 3)), np.float32)
    rewards = np.stack([np.broadcast_to(m[0][:, :, None], (20, 3, 3)),
                        np.broadcast_to(m[1][:, None, :], (20, 3, 3))])
    return TabularGame(base.transitions, rewards, base.initial, max_steps=30), jnp.asarray(m)


def test_reward_hook_returning_the_true_rewards_equals_no_hook():
    game, m = own_action_game()
    config = SoftQConfig(critic="tabular", gamma=GAMMA, learning_rate=0.05, batch_size=32,
                         num_envs=4, buffer_size=256, tau=0.1, warmup_steps=4)

    def true_reward(rp, obs, actions, next_obs, terminated):  # obs (agent, B, S)
        state = jnp.argmax(obs, axis=-1)
        return rp[jnp.arange(2)[:, None], state, actions]

    dims = dict(num_agents=2, obs_shape=game.obs_shape, num_actions=3, env=game)
    plain = make_soft_q(config, **dims)
    hooked = make_soft_q(config, reward_fn=true_reward, **dims)
    assert plain.needs.rewards and not hooked.needs.rewards
    train_p = make_train(plain, TrainConfig(num_updates=30, eval_every=10))
    init = hooked.init

    def hooked_init(key, batch=None):
        return init(key, batch).replace(reward_params=m)

    train_h = make_train(hooked._replace(init=hooked_init), TrainConfig(30, 10))
    key = jax.random.key(4)
    a = jax.jit(train_p)(key, TrainData(None, None)).state
    b = jax.jit(train_h)(key, TrainData(None, None)).state
    assert b.buffer.data.rewards is None  # the IRL learner never holds true rewards
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


# -- per-agent parameters, steps and read-outs --------------------------------------------------
def tiny_config(name, **kw):
    base = dict(critic="tabular", gamma=GAMMA, learning_rate=1e-6, reward_learning_rate=0.1,
                batch_size=8, num_envs=2, buffer_size=64, warmup_steps=2, reward_batch_size=8)
    return ALGOS[name].config(**{**base, **kw})


_LEARNERS: dict = {}


def learner(name, **kw):
    """``(algo, jitted update)`` of :func:`tiny_config`, built and compiled once per test
    module (several tests read the same learner)."""
    key = (name, tuple(sorted(kw.items())))
    if key not in _LEARNERS:
        game = envs.make("random-game")
        algo = make_algo(tiny_config(name, **kw), num_agents=2, obs_shape=game.obs_shape,
                         num_actions=3, env=game)
        _LEARNERS[key] = (algo, jax.jit(algo.update))
    return _LEARNERS[key]


def expert_batch(state: int, actions: tuple[int, int], *, terminated=False, truncated=False,
                 next_state: int | None = None, b: int = 8) -> Batch:
    eye = jnp.eye(20, dtype=jnp.float32)
    obs = jnp.broadcast_to(eye[state], (2, b, 20))
    nxt = jnp.broadcast_to(eye[state if next_state is None else next_state], (2, b, 20))
    acts = jnp.broadcast_to(jnp.asarray(actions, jnp.int32)[:, None], (2, b))
    return Batch(Transition(obs, acts, nxt, jnp.full(b, terminated), jnp.full(b, truncated)))


@pytest.mark.parametrize("name", [
    "ml-irl", "ma-airl", pytest.param("ma-gail", marks=pytest.mark.slow)])
def test_each_agent_learns_its_own_reward(name):
    """One reward step on an expert batch where agent 0 plays 0 and agent 1 plays 2 in
    state 5: each agent's reward of its own expert action rises, not the other's."""
    algo, update = learner(name)
    state = algo.init(jax.random.key(0), None)
    r0 = algo.reward(state.params, jnp.broadcast_to(jnp.eye(20), (2, 20, 20)))
    np.testing.assert_array_equal(r0, 0.0)  # tabular: zero at the start
    batch = expert_batch(5, (0, 2))
    state, metrics = update(state, batch, jax.random.key(1))
    r = algo.reward(state.params, jnp.broadcast_to(jnp.eye(20), (2, 20, 20)))[:, 5]
    assert r[0, 0] > 0.05 and r[1, 2] > 0.05, r
    assert r[0, 2] <= 0.0 and r[1, 0] <= 0.0, r  # not the other agent's action
    assert metrics["reward_loss"].shape == (2,) and metrics["loss"].shape == (2,)
    # the swapped batch gives the swapped rewards
    swapped = expert_batch(5, (2, 0))
    state_s, _ = update(algo.init(jax.random.key(0), None), swapped, jax.random.key(1))
    r_s = algo.reward(state_s.params, jnp.broadcast_to(jnp.eye(20), (2, 20, 20)))[:, 5]
    np.testing.assert_allclose(r_s[0, 2], r[0, 0], rtol=1e-5)
    np.testing.assert_allclose(r_s[1, 0], r[1, 2], rtol=1e-5)


def test_airl_discriminator_reads_terminated_not_truncated():
    """h(s') counts after truncation and not after termination: with h = 1 at s' and
    g = 0, Q = 0 (pi = 1/3), the expert's logit is gamma + ln 3 or ln 3."""
    algo, update = learner("ma-airl")
    state = algo.init(jax.random.key(0), None)
    h = jax.tree.map(lambda x: x.at[:, 7].set(1.0) if x.ndim == 3 else x,
                     state.policy.reward_params["h"])
    state = state.replace(policy=state.policy.replace(
        reward_params={**state.policy.reward_params, "h": h}))
    probs = {}
    for kind in ("terminated", "truncated"):
        batch = expert_batch(5, (0, 1), next_state=7, **{kind: True})
        _, metrics = update(state, batch, jax.random.key(1))
        probs[kind] = np.asarray(metrics["expert_prob"])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(probs["terminated"], sig(LN3), rtol=1e-4)
    np.testing.assert_allclose(probs["truncated"], sig(GAMMA + LN3), rtol=1e-4)


def test_gradient_penalty_is_zero_centred_on_expert_inputs():
    """Tabular discriminator: logit_i(s, a) = W[s, a]; its gradient in the one-hot
    input is the column W[:, a], so the R1 penalty is sum_s W[s, a]^2."""
    algo, update = learner("ma-gail", grad_penalty=1.0)
    state = algo.init(jax.random.key(0), None)
    d = jax.tree.map(lambda x: x.at[:, :4, 1].set(0.5), state.policy.reward_params["d"])
    state = state.replace(policy=state.policy.replace(reward_params={"d": d}))
    _, metrics = update(state, expert_batch(5, (1, 1)), jax.random.key(1))
    np.testing.assert_allclose(metrics["grad_penalty"], [1.0, 1.0], rtol=1e-5)  # 4 * 0.25


# -- whole runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def game_demos(tmp_path_factory):
    game = envs.make("random-game")
    sol = soft_value_iteration(game, alpha=1.0, gamma=GAMMA)
    demos = data.collect(jax.random.key(0), game, tabular_policy_fn(game, sol.policy), 200,
                         num_envs=100)
    path = tmp_path_factory.mktemp("demos") / "random_game.npz"
    demos.save(path)
    return game, sol, path, demos


def expert_kl(sol, policy):
    pi = np.asarray(sol.policy, np.float64)
    d = np.asarray(sol.state_occupancy, np.float64)
    return np.sum(d[None] * np.sum(pi * (np.log(pi) - np.log(policy)), axis=-1), axis=-1)


def test_ma_airl_learns_in_make_train(game_demos):
    # Uniform play is KL 0.11-0.12 from the expert here; 1,000 updates bring MA-AIRL
    # to about 0.02 and its g to a shaping-aware correlation of about 0.9.
    from mairl.evaluation import make_eval_fn

    game, sol, _, demos = game_demos
    uniform = expert_kl(sol, np.full(np.shape(sol.policy), 1 / 3))
    config = MAAIRLConfig(critic="tabular", gamma=GAMMA, learning_rate=0.05,
                          reward_learning_rate=0.01, num_envs=8, buffer_size=5000, tau=0.05,
                          policy_window=256, warmup_steps=8)
    algo = make_algo(config, num_agents=2, obs_shape=game.obs_shape, num_actions=3, env=game)
    full = make_eval_fn(algo, game, oracle=sol, episodes=4)
    keep = ("policy_kl", "reward_shaping_corr")
    eval_fn = lambda p, k, h: {n: v for n, v in full(p, k, h).items() if n in keep}  # noqa: E731
    train = make_train(algo, TrainConfig(num_updates=1000, eval_every=1000), eval_fn)
    result = jax.jit(train)(jax.random.key(1), train_data(demos))
    kl, corr = result.curves["policy_kl"][-1], result.curves["reward_shaping_corr"][-1]
    assert np.all(kl < 0.4 * uniform), (kl, uniform)
    assert np.all(corr > 0.8), corr
    # what the run reports as the recovered reward is g, not the critic's Q - gamma E V
    params = result.state.params
    states = jnp.broadcast_to(jnp.eye(20), (2, 20, 20))
    table = algo.reward(params, states)  # (agent, S, A)
    orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), sol)
    np.testing.assert_array_equal(tabular_reward(algo, params, orc, 2)[1], table)
    run = runs.Run(runs.RunConfig(algo=config, env=runs.EnvConfig("random-game")), {}, {},
                   np.zeros(0), jax.tree.map(lambda x: x[None], params), algo, game)
    obs = np.repeat(np.eye(20, dtype=np.float32)[:, None], 2, axis=1)  # (S, agent, S)
    acts = np.stack([np.arange(20) % 3, (np.arange(20) + 1) % 3], axis=1)
    r = run.reward(obs, acts, obs)  # (S, agent)
    np.testing.assert_allclose(r[:, 0], table[0, np.arange(20), acts[:, 0]], rtol=1e-6)
    np.testing.assert_allclose(r[:, 1], table[1, np.arange(20), acts[:, 1]], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_train_command_learns_on_a_random_game(name, game_demos, tmp_path):
    # Uniform play is KL 0.11-0.12 from the expert here; 1,000 updates bring each
    # learner to 0.02-0.04, and MA-AIRL's g and ML-IRL's r to a shaping-aware
    # correlation of about 0.9 with the true marginal reward.
    from mairl.cli import main

    game, sol, path, _ = game_demos
    uniform = expert_kl(sol, np.full(np.shape(sol.policy), 1 / 3))
    out = tmp_path / name
    main(["train", "--algo", name, "--env", "random-game", "--demos", str(path), "--out",
          str(out), "--seeds", "1", "--updates", "1000", "--eval-every", "500", "--critic",
          "tabular", "--gamma", str(GAMMA), "--learning-rate", "0.05", "--reward-learning-rate",
          "0.01", "--num-envs", "8", "--buffer-size", "5000", "--tau", "0.05",
          "--policy-window", "256", "--warmup-steps", "8", "--eval-episodes", "4",
          "--final-episodes", "16", "--quiet"])
    metrics = json.loads((out / "metrics.json").read_text())
    kl = np.asarray(metrics["policy_kl"]["per_seed"])  # (seed, agent)
    corr = np.asarray(metrics["reward_shaping_corr"]["per_seed"])
    assert kl.shape == corr.shape == (1, 2)
    assert np.all(kl < 0.4 * uniform), (kl, uniform)
    if name != "ma-gail":  # GAIL's logit is no reward in theory; not checked
        assert np.all(corr > 0.8), corr
    # the run's reward read-out is the learned reward, not the critic's
    run = runs.load_run(out)
    states = jnp.broadcast_to(jnp.eye(20), (2, 20, 20))
    table = run.algo.reward(run.seed_params(0), states)  # (agent, S, A)
    obs = np.repeat(np.eye(20, dtype=np.float32)[:, None], 2, axis=1)  # (S, agent, S)
    acts = np.stack([np.arange(20) % 3, (np.arange(20) + 1) % 3], axis=1)
    r = run.reward(obs, acts, obs)
    np.testing.assert_allclose(r[:, 0], table[0, np.arange(20), acts[:, 0]], rtol=1e-6)
    np.testing.assert_allclose(r[:, 1], table[1, np.arange(20), acts[:, 1]], rtol=1e-6)
    orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), sol)
    np.testing.assert_array_equal(tabular_reward(run.algo, run.seed_params(0), orc, 2)[1], table)


def test_host_loop_trains_on_a_host_side_game(game_demos):
    """On a host-side game the learners act and store through the host loop."""
    _, _, _, demos = game_demos
    host = envs.make("host:random-game")
    config = dataclasses.replace(tiny_config("ml-irl"), learning_rate=0.05)
    algo = make_algo(config, num_agents=2, obs_shape=host.obs_shape, num_actions=3, env=host)
    assert algo.act is not None and algo.store is not None
    result = train_host(algo, TrainConfig(num_updates=6, eval_every=3), lambda: host,
                        jax.random.split(jax.random.key(0), 2), train_data(demos))
    assert int(result.state.policy.buffer.size[0]) == 6 * 2
    assert result.curves["train/loss"].shape == (2, 2, 2)
    assert np.all(np.isfinite(result.curves["train/reward_loss"]))


def test_registered_with_tabular_family_defaults():
    from mairl.algos import REWARD_LEARNER_FAMILY_DEFAULTS, family_config

    for name in NAMES:
        assert ALGOS[name].config.name == name
        tab = family_config(name, "tabular")
        assert tab.critic == "tabular" and tab.reward_learning_rate == 5e-4
        assert family_config(name, "gems") == ALGOS[name].config()
        assert set(REWARD_LEARNER_FAMILY_DEFAULTS["tabular"]) <= {
            f.name for f in dataclasses.fields(tab)}
    assert isinstance(MLIRLConfig(), ALGOS["ml-irl"].config)
