"""JaxMARL's Overcooked and MPE behind the mairl protocol (``envs/jaxmarl.py``).

The registry-wide contract (shapes, dtypes, vmap, auto-reset, determinism) runs
on these games in ``test_contract.py``; here: transition-by-transition agreement
with JaxMARL called directly, the end-of-episode flags, the Overcooked rewards,
and the JaxMARL MPE against mpe2's NumPy MPE in distribution.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

OVERCOOKED_NAMES = [n for n in envs.registered() if n.startswith("overcooked")]
MPE_NAMES = [n for n in envs.registered() if n.startswith("jaxmarl-mpe-")]


def test_import_envs_does_not_import_jaxmarl():
    code = "import envs, sys; envs.spec('overcooked'); assert 'jaxmarl' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_covers_jaxmarl_layouts_and_scenarios():
    envs.make("overcooked")  # imports JaxMARL quietly (its banner, its stdout reset)
    from jaxmarl.environments.overcooked import overcooked_layouts

    from envs.jaxmarl import MPE_SCENARIOS, OVERCOOKED_LAYOUTS

    assert set(OVERCOOKED_LAYOUTS) == set(overcooked_layouts)
    assert set(OVERCOOKED_NAMES) == {"overcooked"} | {f"overcooked-{k}" for k in overcooked_layouts}
    assert set(MPE_NAMES) == {f"jaxmarl-mpe-{s.replace('_', '-')}" for s in MPE_SCENARIOS}
    for name in OVERCOOKED_NAMES + MPE_NAMES:
        assert envs.spec(name).family == "jaxmarl" and envs.spec(name).jittable


def test_unstackable_scenarios_and_bad_arguments_are_clear():
    envs.make("jaxmarl-mpe-simple")
    from jaxmarl.environments.mpe import SimpleSpeakerListenerMPE

    from envs.jaxmarl import JaxMARLEnv

    with pytest.raises(ValueError, match="share one action count.*speaker_0.*3.*listener_0.*5"):
        JaxMARLEnv(SimpleSpeakerListenerMPE())
    with pytest.raises(ValueError, match="layout must be one of"):
        envs.make("overcooked", layout="kitchen")
    with pytest.raises(ValueError, match="reward_mode must be one of"):
        envs.make("overcooked", reward_mode="dense")
    with pytest.raises(ValueError, match="scenario must be one of"):
        envs.make("jaxmarl-mpe-simple", scenario="simple_speaker_listener")


# -- the same transitions as JaxMARL ------------------------------------------------------------
def _stack(env, obs_dict):
    return jax.vmap(env.batchify_obs)(obs_dict)


def test_overcooked_matches_jaxmarl_step_including_autoreset():
    """With JaxMARL's own ``step`` (auto-reset at its time limit) and the same keys.

    ``max_steps=10``: 25 steps cross two resets. JaxMARL's ``step`` splits its
    key as the mairl base class does, so both reset to the same state.
    """
    env = envs.make("overcooked", max_steps=10)
    jm = env.inner
    keys = jax.random.split(jax.random.key(0), 26)
    actions = jax.random.randint(jax.random.key(1), (25, 2), 0, 6, jnp.int32)

    @jax.jit
    def both():
        obs, state = env.reset(keys[0])
        jm_obs, jm_state = jm.reset(keys[0])

        def body(carry, x):
            state, jm_state = carry
            key, action = x
            out = env.step(key, state, action)
            jm_out = jm.step(key, jm_state, env.unbatchify_actions(action))
            return (out[1], jm_out[1]), (out, jm_out)

        _, (out, jm_out) = jax.lax.scan(body, (state, jm_state), (keys[1:], actions))
        return obs, jm_obs, out, jm_out

    obs0, jm_obs0, out, jm_out = both()
    obs, state, reward, terminated, truncated, info = out
    jm_obs, jm_state, jm_rew, jm_dones, jm_info = jm_out
    np.testing.assert_array_equal(obs0, env.batchify_obs(jm_obs0))
    np.testing.assert_array_equal(obs, _stack(env, jm_obs))
    jax.tree.map(np.testing.assert_array_equal, state.inner, jm_state)
    np.testing.assert_array_equal(reward, np.stack([jm_rew[a] for a in env.agents], -1))
    np.testing.assert_array_equal(
        info["shaped_reward"], np.stack([jm_info["shaped_reward"][a] for a in env.agents], -1))
    t = np.arange(1, 26)
    assert not np.any(terminated)
    np.testing.assert_array_equal(truncated, t % 10 == 0)
    np.testing.assert_array_equal(jm_dones["__all__"], t % 10 == 0)
    np.testing.assert_array_equal(state.time, t % 10)
    np.testing.assert_array_equal(jm_state.step, t % 10)


def test_overcooked_observation_layout():
    env = envs.make("overcooked-asymm_advantages")
    obs, state = jax.jit(env.reset)(jax.random.key(0))
    jm_obs = jax.jit(env.inner.get_obs)(state.inner)
    assert obs.shape == (2, 26, env.width, env.height) == (2, 26, 9, 5)
    # JaxMARL's (y, x, channel) -> (channel, x, y); channel 0 is the agent's own position.
    for i, a in enumerate(env.agents):
        np.testing.assert_array_equal(obs[i], np.asarray(jm_obs[a]).transpose(2, 1, 0))
        x, y = np.asarray(state.inner.agent_pos[i])
        assert obs[i, 0, x, y] == 1 and obs[i, 0].sum() == 1


@pytest.mark.parametrize("name", ["jaxmarl-mpe-simple-spread", "jaxmarl-mpe-simple-tag"])
def test_mpe_matches_jaxmarl_step_env(name):
    """Against JaxMARL's raw ``step_env``, reset after 25 steps with the second half of the key.

    JaxMARL's own ``done`` is still false after 25 steps (it compares the step
    count before incrementing it) and fires one step later.
    """
    env = envs.make(name)
    jm = env.inner
    keys = jax.random.split(jax.random.key(2), 31)
    actions = jax.random.randint(jax.random.key(3), (30, env.num_agents), 0, 5, jnp.int32)

    @jax.jit
    def both():
        _, state = env.reset(keys[0])
        _, jm_state = jm.reset(keys[0])

        def body(carry, x):
            state, jm_state = carry
            key, action = x
            out = env.step(key, state, action)
            key_step, key_reset = jax.random.split(key)
            jm_next, jm_st, jm_rew, jm_dones, _ = jm.step_env(
                key_step, jm_state, env.unbatchify_actions(action))
            late = jm.step_env(key_step, jm_st, env.unbatchify_actions(action))[3]["__all__"]
            reset_obs, reset_st = jm.reset(key_reset)
            end = jm_st.step == 25
            jm_obs = jax.tree.map(lambda r, s: jnp.where(end, r, s), reset_obs, jm_next)
            jm_st = jax.tree.map(lambda r, s: jnp.where(end, r, s), reset_st, jm_st)
            ref = (jm_obs, jm_next, jm_rew, jm_dones["__all__"], late, end)
            return (out[1], jm_st), (out, ref)

        return jax.lax.scan(body, (state, jm_state), (keys[1:], actions))[1]

    (obs, state, reward, terminated, truncated, info), ref = both()
    jm_obs, jm_next, jm_rew, jm_done, jm_late_done, end = ref
    tol = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(obs, _stack(env, jm_obs), **tol)
    np.testing.assert_allclose(info["next_obs"], _stack(env, jm_next), **tol)
    np.testing.assert_allclose(reward, np.stack([jm_rew[a] for a in env.agents], -1), **tol)
    t = np.arange(1, 31)
    assert not np.any(terminated)
    np.testing.assert_array_equal(truncated, t == 25)
    np.testing.assert_array_equal(end, t == 25)
    np.testing.assert_array_equal(state.time, t % 25)
    assert not np.any(jm_done) and bool(jm_late_done[24])  # JaxMARL: done after 26 steps


def test_mpe_padding_keeps_true_sizes():
    env = envs.make("jaxmarl-mpe-simple-tag")
    assert env.agents == ("adversary_0", "adversary_1", "adversary_2", "agent_0")
    assert env.obs_sizes == (16, 16, 16, 14) and env.obs_shape == (16,)
    obs, _ = jax.jit(env.reset)(jax.random.key(0))
    assert np.all(np.asarray(obs)[3, 14:] == 0) and np.any(np.asarray(obs)[3, :14] != 0)


def test_jit_vmap_agree_with_single_env_steps():
    env = envs.make("jaxmarl-mpe-simple-spread")
    n = 4
    keys = jax.random.split(jax.random.key(4), n)
    actions = jax.random.randint(jax.random.key(5), (n, 3), 0, 5, jnp.int32)

    @jax.jit
    def run():
        _, state = jax.vmap(env.reset)(keys)
        batched = jax.vmap(env.step)(keys, state, actions)
        single = jax.lax.map(lambda x: env.step(*x), (keys, state, actions))
        return batched, single

    batched, single = run()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 batched, single)


# -- Overcooked rewards ----------------------------------------------------------------------------
# cramped_room, (x, y): onion piles (0, 1) and (4, 1), pot (2, 0), plates (1, 3),
# delivery (3, 3); cook 0 starts at (1, 1), cook 1 at (3, 1).
# Actions: 0 up, 1 down, 2 right, 3 left, 4 stay, 5 interact; moving into a
# counter only turns the cook to face it.
_ONION = [3, 5, 2, 0, 5]  # face the pile, take an onion, step right, face the pot, drop it
_SOUP = _ONION * 3 + [3, 1, 1, 5] + [0, 2, 0] + [5] * 22 + [1, 2, 1, 5]


def test_overcooked_scripted_soup_rewards():
    """One soup by cook 0: shaping 3 + 3 + 3 (onions), 3 (plate), 5 (soup), then 20 each."""
    coef = 0.5
    env = envs.make("overcooked", reward_mode="shaped", shaping_coef=coef)
    actions = jnp.asarray([[a, 4] for a in _SOUP], jnp.int32)

    @jax.jit
    def play():
        _, state = env.reset(jax.random.key(0))

        def body(state, action):
            _, state, reward, _, _, info = env.step(jax.random.key(1), state, action)
            return state, (reward, info["sparse_reward"], info["shaped_reward"], info["delivery"])

        return jax.lax.scan(body, state, actions)[1]

    reward, sparse, shaped, delivery = play()
    nonzero = np.asarray(shaped[:, 0])[np.asarray(shaped[:, 0]) != 0]
    np.testing.assert_array_equal(nonzero, [3, 3, 3, 3, 5])
    assert np.all(np.asarray(shaped[:, 1]) == 0)
    assert int(delivery.sum()) == 1 and int(delivery[-1]) == 1
    np.testing.assert_array_equal(sparse.sum(0), [20.0, 20.0])
    np.testing.assert_array_equal(sparse[-1], [20.0, 20.0])
    np.testing.assert_allclose(reward, sparse + coef * shaped)
    assert envs.make("overcooked").reward_mode == "sparse"


# -- JaxMARL's MPE against mpe2's ----------------------------------------------------------------
def test_simple_spread_matches_mpe2_in_distribution():
    """Uniformly random agents on simple_spread (3 agents, local_ratio 0.5, 25 steps).

    The per-agent return has the same mean in both implementations (within four
    standard errors of the difference) and the same spread (within 15%, over
    about four standard errors of a standard deviation from 300 episodes). Same rules
    in both: agents and landmarks uniform in [-1, 1]^2, reward
    ``0.5 * (-sum_landmarks min_agents distance) + 0.5 * (-1 per other agent in
    contact)``, contact at distance < 0.3, identical physics constants.
    """
    from mpe2 import simple_spread_v3

    from envs.pettingzoo import from_pettingzoo
    from mairl.metrics.returns import evaluate_returns

    env = envs.make("jaxmarl-mpe-simple-spread")
    jm_returns = np.asarray(evaluate_returns(
        jax.random.key(6), env, lambda key, obs: env.sample_actions(key), 4000))

    pz = from_pettingzoo(simple_spread_v3.parallel_env(N=3, local_ratio=0.5, max_cycles=25))
    assert pz.agents == env.agents and pz.obs_shape == env.obs_shape
    rng = np.random.default_rng(0)
    pz_returns = []
    for episode in range(300):
        pz.reset_host(seed=episode)
        total = np.zeros(3)
        for t in range(25):
            _, reward, terminated, truncated, _ = pz.step_host(rng.integers(0, 5, 3))
            total += reward
            assert not terminated and truncated == (t == 24)
        pz_returns.append(total)
    pz_returns = np.asarray(pz_returns)

    for i in range(3):
        a, b = jm_returns[:, i], pz_returns[:, i]
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) < 4 * se, (i, a.mean(), b.mean(), se)
        assert abs(a.std() / b.std() - 1) < 0.15, (i, a.std(), b.std())


# -- the shipped Overcooked expert ----------------------------------------------------------------
def test_shipped_overcooked_expert_loads_as_soft_q_and_delivers():
    from pathlib import Path

    from mairl.experts import make_expert

    path = Path(__file__).resolve().parents[2] / "mairl" / "assets" / "overcooked_cramped_room.npz"
    assert path.stat().st_size < 1_000_000
    env = envs.make("overcooked")
    expert = make_expert(env, "soft-q", params_path=path)

    # Measured, not read from the file: 8 episodes of 400 steps; the lower end of
    # the 99% t-interval of the soups per episode must clear 11 (it delivers 12).
    from mairl.metrics import episode_info_sums, mean_confidence_interval

    sums = episode_info_sums(jax.random.key(0), env, expert, 8, ("delivery",))
    soups = np.asarray(sums["delivery"], np.float64).reshape(8, -1)[:, :1]
    assert float(mean_confidence_interval(soups, confidence=0.99).lower[0]) > 11, soups
