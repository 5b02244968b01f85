"""Binary maps stay uint8 from the environment to the network's input.

Gems' map observations are 0/1: the environment, the replay buffer and the
demonstration files keep them as uint8, and the critics convert them to
float32 at their input (``mairl.networks.network_input``). Every number a
learner computes must be the one it computes from the same maps in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.gems import Gems
from mairl.algos import MAMQLConfig, make_mamql
from mairl.data import Demonstrations, collect, load
from mairl.networks import make_critic, network_input
from mairl.train import sample_batch, train_data


class FloatGems(Gems):
    """Gems with the maps of earlier versions: float32, the same values."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.obs_dtype = np.dtype(np.float32)

    def get_obs(self, state):
        return super().get_obs(state).astype(jnp.float32)


def _random_maps(key, shape):
    return (jax.random.uniform(key, shape) < 0.1).astype(jnp.uint8)


def test_network_input_converts_only_compact_dtypes():
    x = jnp.array([[0, 1], [1, 0]], jnp.uint8)
    assert network_input(x).dtype == jnp.float32
    np.testing.assert_array_equal(network_input(x), [[0.0, 1.0], [1.0, 0.0]])
    assert network_input(x.astype(bool)).dtype == jnp.float32
    assert network_input(jnp.arange(3, dtype=jnp.int32)).dtype == jnp.float32
    f = jnp.ones((2,), jnp.float32)
    assert network_input(f) is f
    assert network_input(f.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_cnn_critic_on_uint8_maps_equals_float32_maps_bit_for_bit():
    # (the MLP critic: test_online_mamql_on_uint8_gems_equals_float32_gems)
    obs = _random_maps(jax.random.key(0), (7, 5, 15, 15))  # (batch, channel, x, y)
    net = make_critic("cnn", 5, (5, 15, 15))
    params = net.init(jax.random.key(1), obs[0])
    # outputs, batched and unbatched
    np.testing.assert_array_equal(net.apply(params, obs),
                                  net.apply(params, obs.astype(jnp.float32)))
    np.testing.assert_array_equal(net.apply(params, obs[3]),
                                  net.apply(params, obs[3].astype(jnp.float32)))

    def loss(p, o):
        return jnp.sum(jnp.tanh(net.apply(p, o)))

    g8 = jax.jit(jax.grad(loss))(params, obs)
    g32 = jax.jit(jax.grad(loss))(params, obs.astype(jnp.float32))
    jax.tree.map(np.testing.assert_array_equal, g8, g32)


def test_gems_map_is_uint8_everywhere_in_the_env():
    env = envs.make("gems")
    assert env.obs_dtype == np.uint8
    obs, state = jax.jit(env.reset)(jax.random.key(0))
    obs2, _, _, _, _, info = jax.jit(env.step)(jax.random.key(1), state, jnp.array([0, 1]))
    for x in (obs, obs2, info["next_obs"]):
        assert x.dtype == jnp.uint8 and set(np.unique(np.asarray(x)).tolist()) <= {0, 1}
    view = jax.jit(env.agent_view)(obs[0], 1)  # egocentric views stay compact too
    assert view.dtype == jnp.uint8
    np.testing.assert_array_equal(view, env.agent_view(obs[0].astype(jnp.float32), 1))


def test_online_mamql_on_uint8_gems_equals_float32_gems():
    """The same run twice: Gems as it is (uint8 maps in the env, the replay and the
    demonstrations) and Gems whose maps are float32. Same parameters, bit for bit;
    the replay a quarter of the bytes."""
    config = MAMQLConfig(mode="online", batch_size=16, hidden=(32,), num_envs=4,
                         buffer_size=64)
    runs = {}
    gems = envs.make("gems")
    compact = collect(jax.random.key(0), gems,
                      lambda k, o: jax.random.randint(k, (2,), 0, 5), 4, num_envs=4)
    assert compact.obs.dtype == jnp.uint8
    for env in (gems, FloatGems()):
        demos = compact.with_obs_dtype(env.obs_dtype)
        algo = make_mamql(config, num_agents=2, obs_shape=env.obs_shape, num_actions=5,
                          env=env, obs_transform=env.agent_view)
        data = train_data(demos)

        @jax.jit
        def run(key, data=data, algo=algo):
            def body(i, state):
                key_batch, key_update = jax.random.split(jax.random.fold_in(key, i))
                batch = sample_batch(key_batch, data, 16, False)
                return algo.update(state, batch, key_update)[0]

            state = algo.init(key, sample_batch(key, data, 16, False))
            return jax.lax.fori_loop(0, 3, body, state)

        runs[np.dtype(env.obs_dtype).name] = run(jax.random.key(2))
    compact, wide = runs["uint8"], runs["float32"]
    assert compact.buffer.data.obs.dtype == jnp.uint8
    assert wide.buffer.data.obs.dtype == jnp.float32
    assert 4 * compact.buffer.data.obs.nbytes == wide.buffer.data.obs.nbytes
    np.testing.assert_array_equal(compact.buffer.data.obs, wide.buffer.data.obs)
    jax.tree.map(np.testing.assert_array_equal, compact.params, wide.params)


def _float_map_demos(value=1.0):
    """Two episodes of Gems-shaped float32 maps, as earlier versions wrote them."""
    t = 4
    obs = np.zeros((t, 2, 5, 15, 15), np.float32)
    obs[:, :, 0, 3, 4] = value
    done = np.array([False, True, False, True])
    return Demonstrations.create(obs, np.zeros((t, 2), np.int32), obs, np.zeros(t, bool),
                                 done, env_id="gems", num_actions=5)


def test_float32_demonstration_files_load_as_the_envs_uint8(tmp_path):
    path = _float_map_demos().save(tmp_path / "old.npz")
    assert load(path).obs.dtype == jnp.float32  # without an env: as stored
    demos = load(path, env=envs.make("gems"))
    assert demos.obs.dtype == demos.next_obs.dtype == jnp.uint8
    np.testing.assert_array_equal(demos.obs, _float_map_demos().obs)
    # a new file stays compact on disk and in memory
    back = load(demos.save(tmp_path / "new.npz"))
    assert back.obs.dtype == jnp.uint8
    np.testing.assert_array_equal(back.next_obs, demos.next_obs)
    # and an env that observes float32 reads a uint8 file as float32
    assert load(tmp_path / "new.npz", env=FloatGems()).obs.dtype == jnp.float32


def test_lossy_dtype_conversion_is_refused_and_named(tmp_path):
    path = _float_map_demos(value=0.5).save(tmp_path / "half.npz")
    with pytest.raises(ValueError, match=r"half.npz: env 'Gems' observes uint8: "
                                         r"Demonstrations.obs: cannot be stored exactly as "
                                         r"uint8: transition 0"):
        load(path, env=Gems())
    demos = _float_map_demos()
    assert demos.with_obs_dtype(np.float32) is demos
    with pytest.raises(ValueError, match="Demonstrations.obs: cannot be stored exactly as int8"):
        _float_map_demos(value=300.0).with_obs_dtype(np.int8)
