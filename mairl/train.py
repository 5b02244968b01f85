"""The training loop: one jitted function per configuration, vmapped over seeds.

``make_train(algo, config, eval_fn)`` returns ``train(key, demos)``; it runs
``num_updates`` updates as a ``lax.scan`` over chunks of ``eval_every`` updates,
evaluating after every chunk inside the same compiled program. Progress leaves
through ``jax.debug.callback`` at chunk boundaries, never by syncing inside an
update. Many seeds at once::

    train = make_train(algo, TrainConfig(num_updates=5000), eval_fn)
    results = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, train_data(demos))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mairl.algos.base import Algo, Batch
from mairl.data import Demonstrations, Transition, sample_transitions


@dataclass(frozen=True)
class TrainConfig:
    """Attributes:
    num_updates: gradient updates in the run (a multiple of ``eval_every``).
    eval_every: updates between evaluations (one chunk).
    """

    num_updates: int = 10_000
    eval_every: int = 1_000

    def __post_init__(self):
        if self.eval_every < 1:
            raise ValueError(f"TrainConfig.eval_every: expected >= 1, got {self.eval_every}")
        if self.num_updates < self.eval_every or self.num_updates % self.eval_every:
            raise ValueError(
                f"TrainConfig.num_updates: expected a positive multiple of eval_every="
                f"{self.eval_every}, got {self.num_updates}"
            )

    @property
    def num_chunks(self) -> int:
        return self.num_updates // self.eval_every


class TrainData(NamedTuple):
    """What a run reads: the demonstrations without their true rewards, the first
    observation of every episode ``init_obs (episode, agent, *obs_shape)``, and
    optionally held-out transitions for evaluation only (``eval_fn``'s third
    argument)."""

    demos: Demonstrations
    init_obs: jax.Array
    heldout: Any = None


def train_data(demos: Demonstrations, heldout: Any = None) -> TrainData:
    """Strip the true rewards (no IRL algorithm may learn from them); ``heldout``
    (e.g. ``mairl.evaluation.heldout_batch``) reaches only the evaluation."""
    return TrainData(demos.replace(rewards=None), demos.initial_obs(), heldout)


def sample_batch(key: jax.Array, data: TrainData, batch_size: int, with_init: bool) -> Batch:
    """Uniform expert transitions (with replacement), agent axis first."""
    key_t, key_0 = jax.random.split(key)
    expert = sample_transitions(key_t, data.demos, batch_size)
    init_obs = None
    if with_init:
        pick = jax.random.randint(key_0, (batch_size,), 0, data.init_obs.shape[0])
        init_obs = jnp.swapaxes(data.init_obs[pick], 0, 1)
    return Batch(expert, init_obs)


class TrainResult(NamedTuple):
    """``state``: final learner state; ``curves``: every metric, ``(chunk, ...)``;
    ``updates``: updates done at each evaluation ``(chunk,)``."""

    state: Any
    curves: dict
    updates: jax.Array


EvalFn = Callable[[Any, jax.Array, Any], dict]


def make_train(
    algo: Algo,
    config: TrainConfig,
    eval_fn: EvalFn | None = None,
    progress: Callable[[int], None] | None = None,
) -> Callable[[jax.Array, TrainData], TrainResult]:
    """``train(key, data) -> TrainResult``, pure and jittable.

    ``eval_fn(state, key, data.heldout) -> dict`` of arrays is run after every chunk;
    ``progress(chunks_done)`` is called on the host through ``jax.debug.callback``.
    """
    batch_size = algo.config.batch_size
    with_init = getattr(algo.config, "mode", None) == "v0"

    def train(key: jax.Array, data: TrainData) -> TrainResult:
        key_init, key_sample, key_run = jax.random.split(key, 3)
        state = algo.init(key_init, sample_batch(key_sample, data, batch_size, with_init))

        def one_update(state, key):
            key_batch, key_update = jax.random.split(key)
            batch = sample_batch(key_batch, data, batch_size, with_init)
            state, metrics = algo.update(state, batch, key_update)
            return state, metrics

        def chunk(state, xs):
            index, key = xs
            key_updates, key_eval = jax.random.split(key)
            state, metrics = jax.lax.scan(
                one_update, state, jax.random.split(key_updates, config.eval_every)
            )
            curves = {f"train/{k}": jnp.mean(v, axis=0) for k, v in metrics.items()}
            if eval_fn is not None:
                curves.update(eval_fn(state, key_eval, data.heldout))
            if progress is not None:
                jax.debug.callback(progress, index + 1)
            return state, curves

        keys = jax.random.split(key_run, config.num_chunks)
        state, curves = jax.lax.scan(chunk, state, (jnp.arange(config.num_chunks), keys))
        updates = (jnp.arange(config.num_chunks) + 1) * config.eval_every
        return TrainResult(state, curves, updates)

    return train


def train_host(
    algo: Algo,
    config: TrainConfig,
    make_env: Callable[[], Any],
    keys: jax.Array,
    data: TrainData,
    eval_fn: EvalFn | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Online training on host-side environments: a Python loop around jitted steps.

    The counterpart of ``jax.vmap(make_train(...))`` for learners whose rollouts
    cannot run under ``jit`` (PettingZoo, highway-env): ``algo`` must have
    ``act`` and ``store`` (``make_mamql`` in online mode with a host env). Every
    update, each seed's ``algo.config.num_envs`` environments (built by
    ``make_env()``, one per seed and stream) take one step with the seed's
    current Boltzmann policy, the transitions go into the seed's replay buffer,
    and one jitted update runs for all seeds at once (``jax.vmap`` over seeds).
    Evaluation after every ``eval_every`` updates is jitted the same way. Keys
    follow :func:`make_train`'s schedule exactly, so a jittable game behind
    ``envs.host.as_host`` trains to the same parameters through both loops.

    Args:
        keys: one key per seed, ``(seeds,)``.
        data: as for :func:`make_train`.
        progress: called with the number of chunks done.

    Returns:
        :class:`TrainResult` with a leading seed axis on every leaf, as from
        ``jax.vmap(train)``.
    """
    if algo.act is None or algo.store is None:
        raise ValueError(
            f"train_host: {algo.name} has no host rollout (act/store); use an online learner "
            "built with a host-side env, or make_train for jittable envs"
        )
    batch_size = algo.config.batch_size
    with_init = getattr(algo.config, "mode", None) == "v0"
    num_seeds, num_envs = keys.shape[0], algo.config.num_envs

    def split_run(key):  # as in make_train
        key_init, key_sample, key_run = jax.random.split(key, 3)
        key_env = jax.random.split(key_init)[1]  # what algo.init keeps for env resets
        return key_init, key_sample, jax.random.split(key_env, num_envs), key_run

    key_init, key_sample, reset_keys, key_run = jax.vmap(split_run)(keys)
    chunk_keys = jax.vmap(lambda k: jax.random.split(k, config.num_chunks))(key_run)

    @jax.jit
    def keys_of_chunk(key):  # one seed's chunk: the key schedule of make_train
        key_updates, key_eval = jax.random.split(key)

        def one(key):
            key_batch, key_update = jax.random.split(key)
            key_env = jax.random.split(key_update)[0]  # algo.update's env key
            key_act, key_step = jax.random.split(key_env)
            env_keys = jax.random.key_data(jax.random.split(key_step, num_envs))
            return key_batch, key_update, key_act, env_keys

        return (*jax.vmap(one)(jax.random.split(key_updates, config.eval_every)), key_eval)

    @jax.jit
    def init(key_init, key_sample):
        return jax.vmap(lambda ki, ks: algo.init(ki, sample_batch(ks, data, batch_size,
                                                                  with_init)))(key_init, key_sample)

    act = jax.jit(jax.vmap(algo.act))
    # the learner states hold the replay buffers: donated, so that a step writes
    # them in place instead of copying every buffer per call
    store = jax.jit(jax.vmap(algo.store), donate_argnums=0)

    @functools.partial(jax.jit, donate_argnums=0)
    def update(states, key_batch, key_update):
        def one(state, key_batch, key_update):
            batch = sample_batch(key_batch, data, batch_size, with_init)
            return algo.update(state, batch, key_update)

        return jax.vmap(one)(states, key_batch, key_update)

    evaluate = None
    if eval_fn is not None:
        evaluate = jax.jit(jax.vmap(eval_fn, in_axes=(0, 0, None)))

    states = init(key_init, key_sample)
    games = [[make_env() for _ in range(num_envs)] for _ in range(num_seeds)]
    obs, env_states = [], []
    for s in range(num_seeds):
        pairs = [games[s][e].reset(reset_keys[s, e]) for e in range(num_envs)]
        obs.append([np.asarray(o) for o, _ in pairs])
        env_states.append([st for _, st in pairs])

    curves: list[dict] = []
    for index in range(config.num_chunks):
        key_batch, key_update, key_act, env_keys, key_eval = jax.vmap(keys_of_chunk)(
            chunk_keys[:, index]
        )  # each (seed, update, ...)
        env_keys = np.asarray(env_keys)
        metrics = []
        for t in range(config.eval_every):
            obs_now = np.stack([np.stack(row) for row in obs])  # (seed, env, agent, ...)
            actions = np.asarray(act(states, obs_now, key_act[:, t]))
            items = {name: [] for name in ("next_obs", "terminated", "truncated")}
            for s in range(num_seeds):
                for e in range(num_envs):
                    key = jax.random.wrap_key_data(env_keys[s, t, e])
                    o, env_states[s][e], _, term, trunc, info = games[s][e].step(
                        key, env_states[s][e], actions[s, e]
                    )
                    items["next_obs"].append(np.asarray(info["next_obs"]))
                    items["terminated"].append(bool(term))
                    items["truncated"].append(bool(trunc))
                    obs[s][e] = np.asarray(o)
            shape = (num_seeds, num_envs)
            batch = Transition(
                obs=obs_now, actions=actions.astype(np.int32),
                next_obs=np.stack(items["next_obs"]).reshape(obs_now.shape),
                terminated=np.asarray(items["terminated"]).reshape(shape),
                truncated=np.asarray(items["truncated"]).reshape(shape),
            )
            states = store(states, batch)
            states, m = update(states, key_batch[:, t], key_update[:, t])
            metrics.append(m)
        chunk = {f"train/{k}": jnp.mean(jnp.stack([m[k] for m in metrics], axis=1), axis=1)
                 for k in metrics[0]}
        if evaluate is not None:
            chunk.update(evaluate(states, key_eval, data.heldout))
        curves.append(chunk)
        if progress is not None:
            progress(index + 1)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs, axis=1), *curves)
    updates = (jnp.arange(config.num_chunks) + 1) * config.eval_every
    return TrainResult(states, stacked, jnp.broadcast_to(updates, (num_seeds, config.num_chunks)))
