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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mairl.algos.base import Algo, Batch
from mairl.data import Demonstrations, sample_transitions


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
