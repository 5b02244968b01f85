"""The training loop: one jitted function per configuration, vmapped over seeds.

``make_train(algo, config, eval_fn)`` returns ``train(key, data)``; it runs
``num_updates`` updates as a ``lax.scan`` over chunks of ``eval_every`` updates,
evaluating after every chunk inside the same compiled program. Progress leaves
through ``jax.debug.callback`` at chunk boundaries, never by syncing inside an
update. Many seeds at once::

    train = make_train(algo, TrainConfig(num_updates=5000), eval_fn)
    results = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, train_data(demos))

What varies between learners is the batch source, ``source(key, data) ->
Batch``: uniform demonstrated transitions (:func:`demo_batches`, the default,
sized by ``algo.needs``), i.i.d. draws from a tabular expert's exact occupancy
(:func:`occupancy_batches`), or nothing for forward learners that need no
demonstrations. ``train`` is also available in two pieces, ``train.init(key,
data) -> (state, chunk_keys)`` and ``train.chunks(state, chunk_keys, first,
data) -> (state, curves)``, so that a run can stop between chunks to write a
checkpoint (``mairl.runs``) and go on with exactly the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mairl.algos.base import Algo, Batch, Needs
from mairl.data import Demonstrations, Transition, sample_transitions
from mairl.sharding import local_batch


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
        """The number of evaluation chunks: ``num_updates // eval_every``."""
        return self.num_updates // self.eval_every


class TrainData(NamedTuple):
    """What a run reads: the demonstrations without their true rewards, the first
    observation of every episode ``init_obs (episode, agent, *obs_shape)``, and
    optionally held-out transitions for evaluation only (``eval_fn``'s third
    argument). Forward learners take ``TrainData(None, None)``."""

    demos: Demonstrations | None
    init_obs: jax.Array | None
    heldout: Any = None


def train_data(demos: Demonstrations | None, heldout: Any = None) -> TrainData:
    """Strip the true rewards (no IRL algorithm may learn from them); ``heldout``
    (e.g. ``mairl.evaluation.heldout_batch``) reaches only the evaluation."""
    if demos is None:
        return TrainData(None, None, heldout)
    return TrainData(demos.replace(rewards=None), demos.initial_obs(), heldout)


# -- batch sources --------------------------------------------------------------------------------
BatchSource = Callable[[jax.Array, Any], Batch]


def sample_batch(key: jax.Array, data: TrainData, batch_size: int, with_init: bool) -> Batch:
    """Uniform expert transitions (with replacement), agent axis first."""
    key_t, key_0 = jax.random.split(key)
    expert = sample_transitions(key_t, data.demos, batch_size)
    init_obs = None
    if with_init:
        pick = jax.random.randint(key_0, (batch_size,), 0, data.init_obs.shape[0])
        init_obs = jnp.swapaxes(data.init_obs[pick], 0, 1)
    return Batch(expert, init_obs)


def demo_batches(needs: Needs) -> BatchSource:
    """The default source: what ``needs`` asks of :class:`TrainData`'s demonstrations,
    or ``Batch(None)`` for learners that need none."""

    def source(key: jax.Array, data: TrainData) -> Batch:
        if needs.expert_batch == 0:
            return Batch(None)
        if data.demos is None:
            raise ValueError("make_train: this algorithm needs demonstrations; got none")
        return sample_batch(key, data, needs.expert_batch, needs.init_obs)

    return source


class ExpertOccupancy(NamedTuple):
    """A tabular expert's discounted occupancy and the true dynamics, as cumulative
    tables (:func:`expert_occupancy`); the ``data`` of :func:`occupancy_batches`."""

    state_cdf: jax.Array  # (S,) of d_E(s)
    policy_cdf: jax.Array  # (N, S, A) of pi_E,i(a|s)
    transition_cdf: jax.Array  # (S, A**N, S') of P(s'|s, a), joint actions flattened


def expert_occupancy(game: Any, solution: Any) -> ExpertOccupancy:
    """The sampling tables of the expert ``solution`` (``mairl.solvers``) of a tabular
    ``game`` (anything with ``joint_transitions (S, A**N, S')``)."""
    cdf = lambda p: jnp.asarray(np.cumsum(np.asarray(p), axis=-1), jnp.float32)
    return ExpertOccupancy(
        state_cdf=cdf(solution.state_occupancy),
        policy_cdf=cdf(solution.policy),
        transition_cdf=cdf(game.joint_transitions),
    )


def _sample_cdf(key: jax.Array, cdf: jax.Array) -> jax.Array:
    """One index per row of ``cdf (..., K)`` by inverse transform: ``(...)`` int32."""
    u = jax.random.uniform(key, cdf.shape[:-1]) * cdf[..., -1]
    return jnp.minimum(jnp.sum(cdf < u[..., None], axis=-1), cdf.shape[-1] - 1)


def occupancy_batches(batch_size: int) -> BatchSource:
    """``batch_size`` i.i.d. ``(s, a, s')`` from ``d_E(s) prod_i pi_i(a_i|s) P(s'|s, a)``
    per update, with one-hot observations: a tabular learner's loss in expectation
    over the expert's exact occupancy, up to minibatch noise. ``data`` is an
    :class:`ExpertOccupancy`; no state terminates."""
    from mairl.algos.iq import joint_index

    def source(key: jax.Array, expert: ExpertOccupancy) -> Batch:
        num_agents, num_states, num_actions = expert.policy_cdf.shape
        key_state, key_action, key_next = jax.random.split(key, 3)
        state = _sample_cdf(key_state,
                            jnp.broadcast_to(expert.state_cdf, (batch_size, num_states)))
        actions = _sample_cdf(key_action, expert.policy_cdf[:, state])  # (N, B)
        joint = joint_index(actions, num_actions)  # (B,)
        next_state = _sample_cdf(key_next, expert.transition_cdf[state, joint])
        eye = jnp.eye(num_states, dtype=jnp.float32)
        obs = jnp.broadcast_to(eye[state], (num_agents, batch_size, num_states))
        next_obs = jnp.broadcast_to(eye[next_state], (num_agents, batch_size, num_states))
        done = jnp.zeros(batch_size, bool)
        return Batch(Transition(obs, actions.astype(jnp.int32), next_obs, done, done))

    return source


# -- the loop -------------------------------------------------------------------------------------
class TrainResult(NamedTuple):
    """``state``: final learner state; ``curves``: every metric, ``(chunk, ...)``;
    ``updates``: updates done at each evaluation ``(chunk,)``."""

    state: Any
    curves: dict
    updates: jax.Array


#: ``eval_fn(params, key, heldout) -> dict`` of arrays, traced into the run.
EvalFn = Callable[[Any, jax.Array, Any], dict]


def _heldout(data: Any) -> Any:
    return getattr(data, "heldout", None)


def make_train(
    algo: Algo,
    config: TrainConfig,
    eval_fn: EvalFn | None = None,
    progress: Callable[[int], None] | None = None,
    batch_source: BatchSource | None = None,
    data_axis: str | None = None,
) -> Callable[[jax.Array, Any], TrainResult]:
    """``train(key, data) -> TrainResult``, pure and jittable.

    Key schedule: ``key_init, key_sample, key_run = split(key, 3)``; the state is
    ``algo.init(key_init, source(key_sample, data))``; chunk ``c`` uses
    ``split(key_run, num_chunks)[c]``, split into the updates' keys and the
    evaluation key; update ``u`` of a chunk splits its key into the batch key
    and the update key.

    Args:
        eval_fn: ``eval_fn(state.params, key, data.heldout) -> dict`` of arrays,
            run after every chunk on the state the chunk ends with.
        progress: ``progress(chunks_done)``, called on the host through
            ``jax.debug.callback``.
        batch_source: ``source(key, data) -> Batch``; default
            ``demo_batches(algo.needs)`` (``data`` a :class:`TrainData`).
        data_axis: data-parallel updates inside ``jax.shard_map`` over this mesh
            axis (``mairl.sharding``): every device draws the same batch and
            updates on its slice of it; ``algo`` must be built with the same
            ``data_axis``, so that it averages its gradients over the axis.

    ``train.init`` and ``train.chunks`` (module docstring) are the same program
    in two pieces.
    """
    source = demo_batches(algo.needs) if batch_source is None else batch_source

    def one_update(data, state, key):
        key_batch, key_update = jax.random.split(key)
        return algo.update(state, local_batch(source(key_batch, data), data_axis), key_update)

    def chunk(data, state, xs):
        index, key = xs
        key_updates, key_eval = jax.random.split(key)
        state, metrics = jax.lax.scan(
            functools.partial(one_update, data), state,
            jax.random.split(key_updates, config.eval_every),
        )
        curves = {f"train/{k}": jnp.mean(v, axis=0) for k, v in metrics.items()}
        if eval_fn is not None:
            curves.update(eval_fn(state.params, key_eval, _heldout(data)))
        if progress is not None:
            jax.debug.callback(progress, index + 1)
        return state, curves

    def init(key: jax.Array, data: Any):
        key_init, key_sample, key_run = jax.random.split(key, 3)
        state = algo.init(key_init, source(key_sample, data))
        return state, jax.random.split(key_run, config.num_chunks)

    def chunks(state: Any, chunk_keys: jax.Array, first: jax.Array, data: Any):
        """Chunks ``first, first + 1, ...``, one per key of ``chunk_keys``."""
        index = first + jnp.arange(chunk_keys.shape[0])
        return jax.lax.scan(functools.partial(chunk, data), state, (index, chunk_keys))

    def train(key: jax.Array, data: Any) -> TrainResult:
        state, keys = init(key, data)
        state, curves = chunks(state, keys, jnp.int32(0), data)
        updates = (jnp.arange(config.num_chunks) + 1) * config.eval_every
        return TrainResult(state, curves, updates)

    train.init = init
    train.chunks = chunks
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
    update, each seed's ``algo.needs.num_envs`` environments (built by
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
    source = demo_batches(algo.needs)
    num_seeds, num_envs = keys.shape[0], algo.needs.num_envs

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
        return jax.vmap(lambda ki, ks: algo.init(ki, source(ks, data)))(key_init, key_sample)

    act = jax.jit(jax.vmap(algo.act))
    # the learner states hold the replay buffers: donated, so that a step writes
    # them in place instead of copying every buffer per call
    store = jax.jit(jax.vmap(algo.store), donate_argnums=0)

    @functools.partial(jax.jit, donate_argnums=0)
    def update(states, key_batch, key_update):
        def one(state, key_batch, key_update):
            return algo.update(state, source(key_batch, data), key_update)

        return jax.vmap(one)(states, key_batch, key_update)

    evaluate = None
    if eval_fn is not None:
        evaluate = jax.jit(jax.vmap(lambda state, key, held: eval_fn(state.params, key, held),
                                    in_axes=(0, 0, None)))

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
