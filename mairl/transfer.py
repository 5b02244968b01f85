"""Reward transfer: does a recovered reward, re-optimised where the experts never went,
produce the experts' behaviour?

The test of Fu et al. (AIRL, 2018) and of the ``imitation`` library, for
several agents:

1. **Distil** each agent's recovered reward into ``r_phi_i(s, a_i)``, a small
   network over the agent's own view (``env.agent_view``, e.g. Gems' egocentric
   window, which has the same shape on every grid size), by least squares on
   the demonstration transitions with the learner's transition-form reward
   ``Q_i(s, a_i) - gamma (1 - terminated) V_i(s')`` as the target
   (:func:`distil_reward`). Its expectation over ``s'`` is the expected-form
   reward; the distilled network no longer carries the learner's policy.
2. **Re-optimise** it from scratch with the library's forward learner
   (``mairl.algos.soft_q``) in a *shifted* game the demonstrations never showed
   (another grid size, a longer horizon), stepping that game with the
   distilled reward in place of its own (:class:`RewardReplaced`).
3. **Score** the true return of the re-optimised policies in the shifted game,
   normalised between a uniformly random policy (0) and the same learner
   trained on the true reward (1) (:func:`transfer_score`). A randomly
   initialised critic's reward, distilled and re-optimised the same way, is
   the negative control.

Re-optimising the un-distilled ``Q - gamma V(s')`` under the demonstrations'
own dynamics only gives the learned policy back, which is why the reward is
distilled and the game shifted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mairl.networks import network_input

__all__ = [
    "DistilledReward",
    "RewardReplaced",
    "distil_reward",
    "reoptimise",
    "transfer_score",
]


class _RewardNet(nn.Module):
    hidden: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, x):
        x = network_input(x.reshape(x.shape[0], -1))
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        return nn.Dense(self.num_actions)(x)


@struct.dataclass
class DistilledReward:
    """``r_phi(obs (agent, *obs_shape), actions (agent,)) -> (agent,)``: a distilled
    per-agent reward (:func:`distil_reward`). A pytree whose leaves are the
    network's parameters and the targets' scale, so programs that take it as an
    argument (:func:`reoptimise`) compile once for every reward of one shape."""

    params: Any
    mean: jax.Array  # (agent,)
    scale: jax.Array  # (agent,)
    net: Any = struct.field(pytree_node=False)
    view: Any = struct.field(pytree_node=False)

    def __call__(self, o: jax.Array, a: jax.Array) -> jax.Array:
        v = _agent_views(o[:, None], self.view)  # (agent, 1, *view)
        pred = jax.vmap(self.net.apply)(self.params, v)[:, 0]  # (agent, A)
        r = jnp.take_along_axis(pred, a[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return r * self.scale + self.mean


def _agent_views(o: jax.Array, view: Callable | None) -> jax.Array:
    """``o (agent, B, *obs)`` -> ``(agent, B, *view)`` (``o`` itself without a view)."""
    if view is None:
        return o
    agents = jnp.arange(o.shape[0])
    return jax.vmap(lambda rows, i: jax.vmap(lambda r: view(r, i))(rows))(o, agents)


@functools.partial(jax.jit, static_argnames=("view",))
def _views_jit(o: jax.Array, view: Callable | None) -> jax.Array:
    return _agent_views(o, view)


@functools.partial(jax.jit, static_argnames=("net", "steps", "batch_size", "learning_rate"))
def _fit(params, key, x, y, actions, *, net, steps, batch_size, learning_rate):
    """``steps`` Adam steps of least squares of ``net``'s output at ``actions`` on ``y``."""
    opt = optax.adam(learning_rate)
    b = actions.shape[1]

    def loss(p, idx):
        pred = jax.vmap(net.apply)(p, x[:, idx])  # (agent, batch, A)
        taken = jnp.take_along_axis(pred, actions[:, idx, None], axis=-1)[..., 0]
        return jnp.mean((taken - y[:, idx]) ** 2)

    def body(carry, k):
        p, st = carry
        idx = jax.random.randint(k, (batch_size,), 0, b)
        g = jax.grad(loss)(p, idx)
        upd, st = opt.update(g, st, p)
        return (optax.apply_updates(p, upd), st), None

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, steps))
    return params


def distil_reward(
    key: jax.Array,
    obs: jax.Array,
    actions: jax.Array,
    targets: jax.Array,
    view: Callable[[jax.Array, jax.Array], jax.Array] | None,
    num_actions: int,
    *,
    hidden: Sequence[int] = (128, 128),
    steps: int = 3000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
) -> DistilledReward:
    """Fit ``r_phi_i(s, a_i)`` per agent by least squares on ``targets``.

    Args:
        obs: ``(agent, B, *obs_shape)`` demonstrated states, agent-major.
        actions: ``(agent, B)`` int, the demonstrated actions.
        targets: ``(agent, B)`` the recovered reward of each transition.
        view: ``view(obs_row, agent)``: agent ``i``'s input (``env.agent_view``),
            or ``None`` for the raw observation.
        num_actions: actions per agent.

    Returns:
        :class:`DistilledReward`: ``reward_fn(obs (agent, *obs_shape), actions
        (agent,)) -> (agent,)``, the distilled reward of one joint observation,
        jittable. Fits of equal shapes share one compiled program.
    """
    n, b = actions.shape
    if obs.shape[:2] != (n, b) or targets.shape != (n, b):
        raise ValueError(f"obs, actions, targets: expected (agent, B, ...) = ({n}, {b}, ...), "
                         f"got {obs.shape}, {actions.shape}, {targets.shape}")
    net = _RewardNet(tuple(hidden), num_actions)
    x = _views_jit(jnp.asarray(obs), view)
    targets = jnp.asarray(targets, jnp.float32)
    mean = jnp.mean(targets, axis=1, keepdims=True)
    scale = jnp.std(targets, axis=1, keepdims=True) + 1e-6
    y = (targets - mean) / scale
    params = jax.vmap(lambda k: net.init(k, x[0, :1]))(jax.random.split(key, n))
    params = _fit(params, jax.random.fold_in(key, 1), x, y, jnp.asarray(actions, jnp.int32),
                  net=net, steps=steps, batch_size=batch_size, learning_rate=learning_rate)
    return DistilledReward(params, mean[:, 0], scale[:, 0], net, view)


@struct.dataclass
class _State:
    inner: Any
    obs: jax.Array


class RewardReplaced:
    """``env`` stepping with ``reward_fn(obs, actions) -> (agent,)`` in place of its
    own rewards (which go to ``info["true_reward"]``); everything else is ``env``'s."""

    def __init__(self, env: Any, reward_fn: Callable[[jax.Array, jax.Array], jax.Array]):
        self.env = env
        self.reward_fn = reward_fn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, key: jax.Array):
        """Reset the wrapped game and remember the first observation."""
        obs, state = self.env.reset(key)
        return obs, _State(state, obs)

    def step(self, key: jax.Array, state: _State, actions: jax.Array):
        """Step the wrapped game; the reward is the replacement's, the true one is in ``info``."""
        reward = self.reward_fn(state.obs, actions).astype(jnp.float32)
        obs, inner, true_reward, terminated, truncated, info = self.env.step(
            key, state.inner, actions)
        info = {**info, "true_reward": true_reward}
        return obs, _State(inner, obs), reward, terminated, truncated, info


def reoptimise(
    key: jax.Array,
    env: Any,
    config: Any,
    *,
    seeds: int,
    updates: int,
    episodes: int = 200,
    true_env: Any = None,
) -> jax.Array:
    """Train ``mairl.algos.soft_q`` (``config``) on ``env`` from scratch, ``seeds`` at once,
    and return the true returns ``(seed, agent)`` of its Boltzmann policies over
    ``episodes`` episodes of ``true_env`` (default ``env``).

    ``RewardReplaced(game, reward)`` with a :class:`DistilledReward` runs one compiled
    program for every reward of the same shape on the same ``game`` (the reward is
    an argument of the program, not a constant in it)."""
    true_env = env if true_env is None else true_env
    reward = None
    if isinstance(env, RewardReplaced) and isinstance(env.reward_fn, DistilledReward):
        env, reward = env.env, env.reward_fn
    program = _reoptimise_program(env, config, updates, episodes, true_env)
    return program(jax.random.split(key, seeds), reward)


@functools.lru_cache(maxsize=8)
def _reoptimise_program(env: Any, config: Any, updates: int, episodes: int, true_env: Any):
    from mairl.algos.soft_q import make_soft_q
    from mairl.evaluation import policy_fn_of
    from mairl.metrics import evaluate_returns
    from mairl.train import TrainConfig, make_train

    def one(k, reward):
        stepped = env if reward is None else RewardReplaced(env, reward)
        algo = make_soft_q(config, num_agents=env.num_agents, obs_shape=tuple(env.obs_shape),
                           num_actions=env.num_actions, env=stepped,
                           obs_transform=getattr(true_env, "agent_view", None))
        train = make_train(algo, TrainConfig(num_updates=updates, eval_every=updates),
                           batch_source=lambda k, d: _no_batch())
        k_train, k_eval = jax.random.split(k)
        params = train(k_train, None).state.params
        return evaluate_returns(k_eval, true_env, policy_fn_of(algo, params), episodes).mean(0)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _no_batch():
    from mairl.algos.base import Batch

    return Batch(None)


def transfer_score(returns: jax.Array, random_return: jax.Array,
                   true_return: jax.Array) -> jax.Array:
    """``(R - R_random) / (R_true - R_random)`` per agent: 0 is a random policy, 1 the
    forward learner on the true reward. ``returns (..., agent)``."""
    return (returns - random_return) / (true_return - random_return)


def recovered_reward(algo: Any, params: Any, demos: Any, max_transitions: int = 20_000):
    """The learner's transition-form reward on the first ``max_transitions`` demonstrated
    transitions: ``(obs (agent, B, ...), actions (agent, B), targets (agent, B))``."""
    from mairl.data import to_agent_major

    n = min(demos.num_transitions, max_transitions)
    batch = to_agent_major(jax.tree.map(lambda x: x[:n], demos))
    targets = _reward_program(algo)(params, batch)
    return batch.obs, batch.actions, targets


@functools.lru_cache(maxsize=8)
def _reward_program(algo: Any):
    from mairl.evaluation import sampled_reward

    return jax.jit(lambda p, b: sampled_reward(algo, p, b)[0])


def transfer_reward_of(key: jax.Array, algo: Any, params: Any, demos: Any, env: Any,
                       **distil: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """:func:`recovered_reward` of one seed's parameters, distilled (:func:`distil_reward`)
    over ``env.agent_view`` where the env has one."""
    obs, actions, targets = recovered_reward(algo, params, demos)
    return distil_reward(key, obs, actions, targets, getattr(env, "agent_view", None),
                         env.num_actions, **distil)


def reward_transfer(
    key: jax.Array,
    shifted: Any,
    learners: Sequence[tuple[str, Any, Any]],
    *,
    config: Any,
    demos: Any,
    demo_env: Any,
    updates: int,
    seeds: int = 2,
    episodes: int = 300,
    distil_steps: int = 3000,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The whole transfer test (module docstring) in the game ``shifted``.

    Args:
        learners: ``(name, algo, params)`` per recovered reward (one seed's
            parameters each; entries may share a name). The first learner's
            ``algo`` also makes the random-critic control.
        config: the forward learner's ``SoftQConfig``.
        demos, demo_env: the demonstrations the rewards are distilled on, and
            their game (for its ``agent_view``).
        updates, seeds, episodes: each re-optimisation.
        distil_steps: regression steps of each distillation.
        progress: called with a line after each re-optimisation.

    Returns:
        ``name -> returns (n, agent)``, with ``"random policy"`` (one row),
        ``"true reward"`` (``seeds`` rows), ``"random critic"`` and every
        learner name (``seeds`` rows per entry); and ``"normalised"``:
        ``name -> (n,)`` :func:`transfer_score` of the agents' mean return.
    """
    import numpy as np

    from mairl.metrics import evaluate_returns
    from mairl.runs import example_batch

    say = progress or (lambda line: None)
    keys = iter(jax.random.split(key, 5 + 2 * len(learners)))
    out: dict[str, Any] = {}
    out["random policy"] = np.asarray(evaluate_returns(
        next(keys), shifted, lambda k, o: shifted.sample_actions(k), episodes).mean(0))[None]
    out["true reward"] = np.asarray(reoptimise(next(keys), shifted, config, seeds=seeds,
                                               updates=updates, episodes=episodes))
    say(f"true reward: {out['true reward'].mean(0)}")

    def row(name, algo, params):
        reward_fn = transfer_reward_of(next(keys), algo, params, demos, demo_env,
                                       steps=distil_steps)
        ret = np.asarray(reoptimise(next(keys), RewardReplaced(shifted, reward_fn), config,
                                    seeds=seeds, updates=updates, episodes=episodes,
                                    true_env=shifted))
        out[name] = ret if name not in out else np.concatenate([out[name], ret])
        say(f"{name}: {ret.mean(0)}")

    if learners:
        algo0 = learners[0][1]
        fresh = algo0.init(next(keys), example_batch(algo0, demo_env)).params
        row("random critic", algo0, fresh)
    for name, algo, params in learners:
        row(name, algo, params)
    low = out["random policy"].mean()
    high = out["true reward"].mean()
    out["normalised"] = {name: np.asarray(transfer_score(v.mean(axis=1), low, high))
                         for name, v in out.items() if name != "normalised"}
    return out
