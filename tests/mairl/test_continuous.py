"""Continuous actions: tanh-Gaussian densities, the MAMQL and BC losses, agent stacking,
and a whole run on the point-masses game."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import envs
from mairl import runs
from mairl.algos import (
    Batch,
    BCContinuousConfig,
    MAMQLConfig,
    MAMQLContinuousConfig,
    MAMQLContinuousOfflineConfig,
    SACConfig,
    Transition,
    make_algo,
    make_bc_continuous,
    make_mamql_continuous,
)
from mairl.algos.common import (
    ACTION_EPS,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from mairl.algos.mamql_continuous import actor_loss, iq_critic_loss
from mairl.networks import MLPStateActionCritic


# -- the tanh-squashed Gaussian ----------------------------------------------------------------
def test_tanh_gaussian_density_is_the_change_of_variables():
    mean, log_std = jnp.array([0.3]), jnp.array([-0.5])
    a = jnp.linspace(-0.999, 0.999, 20001)[:, None]
    density = jnp.exp(tanh_gaussian_log_prob(a, mean, log_std, eps=0.0))
    # integrates to one over (-1, 1) (the tails beyond 0.999 hold ~0 mass here)
    assert float(jnp.trapezoid(density, a[:, 0])) == pytest.approx(1.0, abs=2e-3)
    # P(A <= a) = Phi((atanh(a) - mean) / std): its numerical derivative is the density
    cdf = lambda x: norm.cdf((jnp.arctanh(x) - 0.3) / jnp.exp(-0.5))  # noqa: E731
    x = jnp.array([-0.8, -0.2, 0.1, 0.5, 0.9])
    h = 1e-3
    numeric = (cdf(x + h) - cdf(x - h)) / (2 * h)
    exact = jnp.exp(tanh_gaussian_log_prob(x[:, None], mean, log_std, eps=0.0))
    np.testing.assert_allclose(exact, numeric, rtol=2e-3)


def test_sample_log_prob_equals_density_of_the_sample():
    key = jax.random.key(0)
    mean = jnp.array([[0.2, -1.0], [1.5, 0.0]])
    log_std = jnp.array([[-1.0, 0.3], [-0.2, -2.0]])
    a, logp = tanh_gaussian_sample(key, mean, log_std)
    assert a.shape == (2, 2) and logp.shape == (2,)
    assert bool(jnp.all(jnp.abs(a) < 1))
    np.testing.assert_allclose(logp, tanh_gaussian_log_prob(a, mean, log_std), rtol=1e-4,
                               atol=1e-4)
    greedy, _ = tanh_gaussian_sample(key, mean, log_std, greedy=True)
    np.testing.assert_allclose(greedy, jnp.tanh(mean))


def test_log_prob_of_actions_on_the_bounds_is_finite():
    a = jnp.array([[1.0, -1.0]])
    logp = tanh_gaussian_log_prob(a, jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    assert bool(jnp.isfinite(logp).all())
    # the clipped action: u = atanh(1 - eps) on each axis
    u = jnp.arctanh(1 - ACTION_EPS)
    expected = 2 * (norm.logpdf(u) - jnp.log(1 - jnp.tanh(u) ** 2))
    assert float(logp[0]) == pytest.approx(float(expected), rel=1e-3)


# -- the losses ----------------------------------------------------------------------------------
def test_actor_loss_gradient_moves_the_mean_toward_higher_q():
    obs = jnp.zeros((256, 1))

    def loss(mean, log_std, target):
        actor_fn = lambda o: (jnp.full((o.shape[0], 1), mean), jnp.full((o.shape[0], 1),  # noqa: E731
                                                                        log_std))
        q_fn = lambda o, a: -10.0 * (a[:, 0] - target) ** 2  # noqa: E731
        return actor_loss(actor_fn, q_fn, obs, jax.random.key(1), alpha=0.1)

    # Q peaks at a = +0.5: descending the loss raises the mean; at a = -0.5 it lowers it
    grad = jax.jit(jax.grad(loss))
    assert float(grad(0.0, -1.0, 0.5)) < 0
    assert float(grad(0.0, -1.0, -0.5)) > 0
    # a flat Q: only the entropy bonus acts, and a narrow policy widens

    def entropy_only(log_std):
        actor_fn = lambda o: (jnp.zeros((o.shape[0], 1)), jnp.full((o.shape[0], 1), log_std))  # noqa: E731
        return actor_loss(actor_fn, lambda o, a: jnp.zeros(o.shape[0]), obs,
                          jax.random.key(2), alpha=0.1)

    assert float(jax.jit(jax.grad(entropy_only))(-3.0)) < 0


def _hand_batch():
    """Two expert transitions, 1-D actions, Q(s, a) = s_0 + alpha log pi(a|s) under a
    standard-normal actor: then Q - alpha log pi = s_0 for every draw, so V(s) = s_0
    exactly, whatever the samples."""
    alpha, gamma = 0.5, 0.9
    actor_fn = lambda o: (jnp.zeros((o.shape[0], 1)), jnp.zeros((o.shape[0], 1)))  # noqa: E731

    def q_fn(o, a):
        return o[:, 0] + alpha * tanh_gaussian_log_prob(a, *actor_fn(o))

    obs = jnp.array([[1.0], [2.0]])
    next_obs = jnp.array([[0.5], [3.0]])
    actions = jnp.zeros((2, 1))  # log pi(0) = log N(0; 0, 1) = -0.918939
    term = jnp.array([0.0, 1.0])
    return alpha, gamma, actor_fn, q_fn, obs, next_obs, actions, term


def test_iq_critic_loss_on_a_hand_computed_batch():
    alpha, gamma, actor_fn, q_fn, obs, next_obs, actions, term = _hand_batch()
    # Q(s, a^E) = s_0 - 0.5 * 0.918939 = [0.540531, 1.540531]; V(s') = [0.5, 3]
    # y = Q - 0.9 (1 - term) V(s') = [0.090531, 1.540531]
    # phi(y) = y - y^2 / (4 * 0.5) = [0.086433, 0.353913]; mean 0.220173
    # value term (value_expert): V(s) - 0.9 (1 - term) V(s') = [0.55, 2.0]; mean 1.275
    loss_fn = jax.jit(functools.partial(iq_critic_loss, q_fn, q_fn, actor_fn), static_argnames=(
        "b", "mode", "alpha", "gamma", "chi2_coef", "value_samples"))
    loss, aux = loss_fn(obs, next_obs, actions, term, term, jax.random.key(0), b=2,
                        mode="value_expert", alpha=alpha, gamma=gamma, chi2_coef=1.0,
                        value_samples=3)
    assert float(aux["expert_term"]) == pytest.approx(0.220173, abs=1e-5)
    assert float(aux["value_term"]) == pytest.approx(1.275, abs=1e-5)
    assert float(loss) == pytest.approx(1.275 - 0.220173, abs=1e-5)
    # v0: the value term is (1 - gamma) V(s_0) over initial states s_0 = [4, -1]: 0.15
    init = jnp.array([[4.0], [-1.0]])
    loss, aux = loss_fn(jnp.concatenate([obs, init]), next_obs, actions, term, term,
                        jax.random.key(0), b=2, mode="v0", alpha=alpha, gamma=gamma,
                        chi2_coef=1.0, value_samples=1)
    assert float(aux["value_term"]) == pytest.approx(0.15, abs=1e-5)
    assert float(loss) == pytest.approx(0.15 - 0.220173, abs=1e-5)


def test_iq_critic_loss_takes_the_regularizer_over_the_mixture_of_expert_and_own():
    alpha, gamma, actor_fn, q_fn, obs, next_obs, actions, term = _hand_batch()
    loss_fn = jax.jit(functools.partial(iq_critic_loss, q_fn, q_fn, actor_fn), static_argnames=(
        "b", "mode", "alpha", "gamma", "chi2_coef", "value_samples"))
    kw = dict(b=2, mode="online", alpha=alpha, gamma=gamma, chi2_coef=1.0, value_samples=2)
    # own transitions equal to the expert's: the mixture is the expert's distribution
    twice = lambda x: jnp.concatenate([x, x])  # noqa: E731
    expert_only, _ = loss_fn(twice(obs), twice(next_obs), actions, term, twice(term),
                             jax.random.key(0), **kw)
    mixture, _ = loss_fn(twice(obs), twice(next_obs), actions, term, twice(term),
                         jax.random.key(0), actions_own=actions, **kw)
    assert float(expert_only) == pytest.approx(1.275 - 0.220173, abs=1e-5)
    assert float(mixture) == pytest.approx(float(expert_only), abs=1e-6)
    # one own transition s = 0 -> s' = 1, a = 0: Q = -0.459470, y = Q - 0.9 * 1 = -1.359469
    # value term over [1, 2, 0]: [0.55, 2.0, -0.9], mean 0.55
    # expert half: phi with c / 2: y - y^2 / 4 = [0.088482, 0.947222], mean 0.517852
    # own half: c / (8 alpha) y^2 = 0.462039
    loss, aux = loss_fn(jnp.concatenate([obs, jnp.array([[0.0]])]),
                        jnp.concatenate([next_obs, jnp.array([[1.0]])]), actions, term,
                        jnp.array([0.0, 1.0, 0.0]), jax.random.key(0),
                        actions_own=jnp.zeros((1, 1)), **kw)
    assert float(aux["value_term"]) == pytest.approx(0.55, abs=1e-5)
    assert float(aux["own_reward"]) == pytest.approx(-1.359469, abs=1e-5)
    assert float(loss) == pytest.approx(0.55 - 0.517852 + 0.462039, abs=1e-5)
    with pytest.raises(ValueError, match="actions_own: only with mode='online'"):
        loss_fn(obs, next_obs, actions, term, term, jax.random.key(0), b=2,
                mode="value_expert", alpha=alpha, gamma=gamma, chi2_coef=1.0,
                value_samples=1, actions_own=actions)


# -- stacking on the agent axis ------------------------------------------------------------------
def _batch(key, num_agents=2, b=16, obs_dim=5, dim=2):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    obs = jax.random.normal(k1, (num_agents, b, obs_dim))
    return Batch(Transition(obs, jnp.tanh(jax.random.normal(k2, (num_agents, b, dim))),
                            jax.random.normal(k3, (num_agents, b, obs_dim)),
                            jax.random.bernoulli(k4, 0.2, (b,)), jnp.zeros(b, bool)))


@pytest.mark.parametrize("kind", ["mamql-offline", "bc",
                                  pytest.param("mamql-online", marks=pytest.mark.slow),
                                  pytest.param("mamql-online-mixture", marks=pytest.mark.slow)])
def test_each_agent_updates_on_its_own_data_only(kind):
    env = envs.make("point-masses")
    if kind.startswith("mamql-online"):
        chi2_on = "mixture" if kind.endswith("mixture") else "expert"
        algo = make_mamql_continuous(
            MAMQLContinuousConfig(hidden=(16,), batch_size=16, num_envs=4, buffer_size=64,
                                  chi2_on=chi2_on),
            num_agents=2, obs_shape=env.obs_shape, action_dim=2, env=env)
    elif kind == "mamql-offline":
        algo = make_mamql_continuous(MAMQLContinuousOfflineConfig(hidden=(16,), batch_size=16),
                                     num_agents=2, obs_shape=env.obs_shape, action_dim=2)
    else:
        algo = make_bc_continuous(BCContinuousConfig(hidden=(16,), batch_size=16),
                                  num_agents=2, obs_shape=env.obs_shape, action_dim=2)
    batch = _batch(jax.random.key(0), obs_dim=8)
    state = jax.jit(algo.init)(jax.random.key(1), batch)
    update = jax.jit(algo.update)
    new, metrics = update(state, batch, jax.random.key(2))
    # change agent 1's demonstrated actions only: agent 0's update must not move
    e = batch.expert
    other = batch._replace(expert=e._replace(actions=e.actions.at[1].multiply(-0.5)))
    new2, metrics2 = update(state, other, jax.random.key(2))
    leaves = list(zip(jax.tree.leaves(new.params), jax.tree.leaves(new2.params), strict=True))
    for x, y in leaves:
        np.testing.assert_array_equal(x[0], y[0])
    assert any(not np.array_equal(x[1], y[1]) for x, y in leaves)
    assert float(metrics["loss"][0]) == float(metrics2["loss"][0])
    assert float(metrics["loss"][1]) != float(metrics2["loss"][1])
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(metrics))
    if kind.startswith("mamql"):
        # only `terminated` stops the bootstrap: the successor of a terminated expert
        # transition does not matter, that of a truncated one does
        term = e.terminated
        assert bool(term.any()) and bool((~term).any())
        moved = e.next_obs + 3.0
        after_end = batch._replace(expert=e._replace(
            next_obs=jnp.where(term[None, :, None], moved, e.next_obs)))
        cut = batch._replace(expert=e._replace(
            next_obs=jnp.where(term[None, :, None], e.next_obs, moved),
            truncated=~term))
        np.testing.assert_array_equal(update(state, after_end, jax.random.key(2))[1]["loss"],
                                      metrics["loss"])
        assert not np.allclose(update(state, cut, jax.random.key(2))[1]["loss"], metrics["loss"])
    if kind == "mamql-offline":
        # the stacked critic read-out is each agent's network on its own inputs
        obs, actions = e.obs, e.actions
        critic = jax.jit(algo.critic)
        q = critic(new.params, obs, actions)
        net = MLPStateActionCritic(hidden=(16,))
        per_agent = jax.jit(lambda p, o, a: jnp.stack([
            net.apply(jax.tree.map(lambda x, i=i: x[i], p), o[i], a[i]) for i in range(2)]))
        np.testing.assert_allclose(q, per_agent(new.params["critic"], obs, actions), rtol=1e-5)
        assert not np.allclose(critic(new.params, obs[::-1], actions[::-1]), q)  # swapped
    if kind.startswith("mamql-online"):  # the replay holds the agents' own actions
        new, _ = update(new, batch, jax.random.key(3))
        assert int(new.buffer.size) == 8
        stored = new.buffer.data.actions[:8]
        assert stored.shape == (8, 2, 2) and bool(jnp.all(jnp.abs(stored) < 1))
        assert bool(jnp.any(stored != 0))


# -- behaviour cloning recovers a Gaussian expert -----------------------------------------------
def test_bc_recovers_the_mean_of_a_gaussian_expert_on_a_contextual_bandit():
    """Context s ~ U[-1, 1]; agent 0 plays tanh(0.8 s + 0.3 + 0.2 eps), agent 1
    tanh(-0.5 s - 0.2 + 0.1 eps). The maximum-likelihood actor's pre-squash mean
    is 0.8 s + 0.3 (resp. -0.5 s - 0.2), its std 0.2 (resp. 0.1)."""
    key_s, key_e, key_init, key_run = jax.random.split(jax.random.key(0), 4)
    n = 4096
    s = jax.random.uniform(key_s, (n, 1), minval=-1, maxval=1)
    eps = jax.random.normal(key_e, (2, n, 1))
    slope, offset, std = jnp.array([0.8, -0.5]), jnp.array([0.3, -0.2]), jnp.array([0.2, 0.1])
    u = slope[:, None, None] * s + offset[:, None, None] + std[:, None, None] * eps
    obs = jnp.broadcast_to(s, (2, n, 1))
    data = Transition(obs, jnp.tanh(u), obs, jnp.zeros(n, bool), jnp.zeros(n, bool))
    algo = make_bc_continuous(BCContinuousConfig(hidden=(32,), learning_rate=3e-3,
                                                 batch_size=256),
                              num_agents=2, obs_shape=(1,), action_dim=1)

    def sample(key):
        idx = jax.random.randint(key, (256,), 0, n)
        return Batch(jax.tree.map(lambda x: x[:, idx] if x.ndim > 1 else x[idx], data))

    @jax.jit
    def train(key):
        state = algo.init(key_init, sample(key))

        def step(state, key):
            k1, k2 = jax.random.split(key)
            return algo.update(state, sample(k1), k2)[0], None

        return jax.lax.scan(step, state, jax.random.split(key, 1500))[0]

    params = train(key_run).params
    grid = jnp.linspace(-0.9, 0.9, 7)[:, None]
    mode = algo.policy(params, jnp.broadcast_to(grid, (2, 7, 1)), jax.random.key(0), True)
    want = jnp.tanh(slope[:, None, None] * grid + offset[:, None, None])
    np.testing.assert_allclose(mode, want, atol=0.03)
    # and the spread: the density at the mode is that of N(.; mu, std) through the tanh
    logp = algo.log_prob(params, jnp.broadcast_to(grid, (2, 7, 1)), want)
    expected = (norm.logpdf(0.0, scale=std)[:, None]
                - jnp.log(1 - want[..., 0] ** 2))
    np.testing.assert_allclose(logp, expected, atol=0.15)


# -- configuration and errors --------------------------------------------------------------------
def test_configs_name_the_bad_field():
    with pytest.raises(ValueError, match="MAMQLContinuousConfig.value_samples"):
        MAMQLContinuousConfig(value_samples=0)
    with pytest.raises(ValueError, match="MAMQLContinuousOfflineConfig.mode"):
        MAMQLContinuousOfflineConfig(mode="online")
    with pytest.raises(ValueError, match="MAMQLContinuousOfflineConfig.chi2_on.*mode='online'"):
        MAMQLContinuousOfflineConfig(chi2_on="mixture")
    assert MAMQLContinuousConfig(chi2_on="mixture").chi2_on == "mixture"
    with pytest.raises(ValueError, match="BCContinuousConfig.log_std_max"):
        BCContinuousConfig(log_std_min=1.0, log_std_max=0.0)
    with pytest.raises(ValueError, match="SACConfig.tau"):
        SACConfig(tau=0.0)


def test_action_kinds_must_match_the_game():
    env = envs.make("point-masses")
    assert env.action_dim == 2 and not env.discrete
    with pytest.raises(ValueError, match="mamql needs discrete actions.*continuous"):
        make_algo(MAMQLConfig(), num_agents=2, obs_shape=(8,), action_dim=2, env=env)
    with pytest.raises(ValueError, match="continuous .Box. action spaces.*use mamql"):
        make_algo(MAMQLContinuousConfig(), num_agents=2, obs_shape=(8,), num_actions=5)
    with pytest.raises(ValueError, match="needs an environment"):
        make_algo(MAMQLContinuousConfig(), num_agents=2, obs_shape=(8,), action_dim=2)


# -- the game and a whole run --------------------------------------------------------------------
def test_point_masses_terminate_only_when_every_agent_is_home():
    env = envs.make("point-masses")
    _, state = env.reset(jax.random.key(0))
    goal = jnp.array([[0.5, 0.5], [-0.5, -0.5]])
    stay = jnp.zeros((2, 2))
    # both within goal_radius (0.1) of their targets, far from each other: terminated
    home = state.replace(pos=goal + 0.05, goal=goal)
    _, _, r, term, _ = env.step_env(jax.random.key(1), home, stay)
    assert bool(term)
    np.testing.assert_allclose(r, [-0.05 * np.sqrt(2)] * 2, rtol=1e-5)
    # only agent 0 home: goes on
    half = home.replace(pos=jnp.array([[0.5, 0.5], [0.5, -0.5]]))
    _, _, r, term, _ = env.step_env(jax.random.key(1), half, stay)
    assert not bool(term)
    np.testing.assert_allclose(r, [0.0, -1.0], atol=1e-6)
    # two agents closer than collision_radius each pay collision_cost
    crash = home.replace(pos=jnp.array([[0.0, 0.0], [0.1, 0.0]]))
    _, _, r, _, _ = env.step_env(jax.random.key(1), crash, stay)
    dist = jnp.linalg.norm(crash.pos - goal, axis=-1)
    np.testing.assert_allclose(r, -dist - env.collision_cost, rtol=1e-5)
    # a move is speed * action, clipped to the square
    _, moved, _, _, _ = env.step_env(jax.random.key(1), crash, jnp.array([[1.0, -1.0]] * 2))
    np.testing.assert_allclose(moved.pos, [[0.1, -0.1], [0.2, -0.1]], atol=1e-6)


def test_point_masses_greedy_expert_is_the_tanh_of_its_mean():
    env = envs.make("point-masses")
    obs, _ = env.reset(jax.random.key(0))
    n = env.num_agents
    row = obs[0]
    mean = env.expert_gain * (row[2 * n:] - row[: 2 * n]).reshape(n, 2) / env.speed
    greedy = env.scripted_policy(greedy=True)
    for k in range(3):  # no noise: the same action whatever the key
        np.testing.assert_allclose(greedy(jax.random.key(k), obs), jnp.tanh(mean), rtol=1e-6)
    sampled = env.scripted_policy()(jax.random.key(0), obs)
    assert not np.allclose(sampled, jnp.tanh(mean), atol=1e-3)


@pytest.fixture(scope="module")
def demos_file(tmp_path_factory):
    from mairl.cli import main

    path = tmp_path_factory.mktemp("pm") / "demos.npz"
    main(["demos", "--env", "point-masses", "--expert", "scripted", "--episodes", "60",
          "--num-envs", "30", "--out", str(path)])
    with np.load(path) as data:
        assert data["actions"].shape[1:] == (2, 2) and data["actions"].dtype == np.float32
    return path


#: Uniformly random actions score -26.7 and -26.4 on point-masses (agents 0, 1; 500 episodes, 95%
#: intervals ± 1.1; the scripted expert -5.8 and -5.5), ``experiments/continuous_mamql.py``.
BEATS_RANDOM = -16.0


def test_bc_trains_through_the_cli_and_the_run_pipeline(demos_file, tmp_path):
    from mairl.cli import main

    out = tmp_path / "bc"
    main(["train", "--algo", "bc-continuous", "--env", "point-masses", "--demos",
          str(demos_file), "--out", str(out), "--hidden", "32", "32", "--learning-rate",
          "3e-3", "--seeds", "2", "--updates", "300", "--eval-every", "300",
          "--eval-episodes", "16", "--final-episodes", "16", "--quiet"])
    run = runs.load_run(out)
    metrics = run.metrics
    assert "action_accuracy" in metrics["not_reported"]
    for name in ("return_mean", "heldout_log_likelihood", "action_mse"):
        assert np.all(np.isfinite(metrics[name]["per_seed"])), name
    assert np.all(np.isfinite(run.curves["train/loss"]))
    assert min(metrics["return_mean"]["per_seed"]) > BEATS_RANDOM
    obs = jnp.asarray(np.load(demos_file)["obs"][:5])
    actions = run.policy(obs, jax.random.key(0))
    assert actions.shape == (5, 2, 2) and bool(jnp.all(jnp.abs(actions) <= 1))
    with pytest.raises(ValueError, match="learns no critic"):
        run.reward(obs, actions, obs)


@pytest.mark.slow
def test_mamql_trains_through_the_run_pipeline(demos_file, tmp_path):
    config = runs.RunConfig(
        algo=MAMQLContinuousOfflineConfig(hidden=(32, 32), learning_rate=3e-3,
                                          actor_learning_rate=3e-3, batch_size=128),
        env=runs.EnvConfig("point-masses"), data=runs.DataConfig(demos=str(demos_file)),
        schedule=runs.ScheduleConfig(seeds=2, updates=400, eval_every=200),
        eval=runs.EvalConfig(eval_episodes=16, final_episodes=64))
    runs.run(config, tmp_path / "mamql")
    run = runs.load_run(tmp_path / "mamql")
    for name in ("return_mean", "heldout_log_likelihood", "action_mse"):
        assert np.all(np.isfinite(run.metrics[name]["per_seed"])), name
    assert np.all(np.isfinite(run.curves["train/loss"]))
    assert min(run.metrics["return_mean"]["per_seed"]) > BEATS_RANDOM
    obs = jnp.asarray(np.load(demos_file)["obs"][:5])
    actions = run.policy(obs, jax.random.key(0))
    r = run.reward(obs, actions, obs)
    assert r.shape == (5, 2) and bool(jnp.all(jnp.isfinite(r)))
    assert run.critic(obs, actions).shape == (5, 2)


@pytest.mark.slow
def test_sac_learns_to_reach_the_targets(tmp_path):
    """The forward learner on the true rewards beats random actions by far."""
    config = runs.RunConfig(
        algo=SACConfig(hidden=(64, 64), learning_rate=1e-3, actor_learning_rate=1e-3,
                       alpha=0.02, gamma=0.95),
        env=runs.EnvConfig("point-masses"),
        schedule=runs.ScheduleConfig(seeds=2, updates=4000, eval_every=2000),
        eval=runs.EvalConfig(eval_episodes=16, final_episodes=64))
    run = runs.run(config, tmp_path / "sac")
    assert "not_reported" in run.metrics
    assert min(run.metrics["return_mean"]["per_seed"]) > BEATS_RANDOM



def test_heldout_calibration_scores_the_runs_own_heldout_transitions(demos_file, tmp_path):
    """With the learner as its own expert, the ceiling row is the learner's own
    held-out figures (seed 0); the floor is the uniform density on [-1, 1]^2."""
    from mairl import report

    config = runs.RunConfig(
        algo=BCContinuousConfig(hidden=(8,), batch_size=32),
        env=runs.EnvConfig("point-masses"), data=runs.DataConfig(demos=str(demos_file)),
        schedule=runs.ScheduleConfig(seeds=2, updates=4, eval_every=4),
        eval=runs.EvalConfig(eval_episodes=1, final_episodes=2))
    run = runs.run(config, tmp_path / "bc")
    rows = report.heldout_calibration(run, run)
    for measure in ("heldout_log_likelihood", "action_mse"):
        per_seed = np.asarray(run.metrics[measure]["per_seed"])
        assert not np.allclose(per_seed[0], per_seed[1])  # the seeds differ, seed 0 is taken
        np.testing.assert_allclose(rows["expert"][measure], per_seed[0], rtol=1e-5)
    np.testing.assert_allclose(rows["uniform"]["heldout_log_likelihood"], [-2 * np.log(2)] * 2)
    held = np.asarray(runs.Setup(config).held.actions)
    np.testing.assert_allclose(rows["uniform"]["action_mse"],
                               np.mean(np.sum(held ** 2, axis=-1), axis=-1), rtol=1e-6)
