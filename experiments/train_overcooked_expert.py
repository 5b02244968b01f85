"""Train the Overcooked expert and write ``mairl/assets/overcooked_cramped_room.npz``.

Independent PPO with parameter sharing (one actor and one value network, both
used by the two cooks on their own observations; JaxMARL's observations list
each cook's own channels first, so a shared network knows which cook it is) on
``envs.make("overcooked")`` (cramped_room). Each cook is trained on

    r_i = sparse + c(t) * shaped_i,

the delivery reward shared by both (20 per soup) plus its own shaping reward
(``envs.jaxmarl``: 3 onion into pot, 3 useful plate pickup, 5 soup pickup), with
the shaping weight ``c(t)`` annealed linearly from ``--shaping-start`` to 0 over
the first ``--shaping-horizon`` of the environment steps, so the final policy is
trained on the delivery reward alone.

PPO (Schulman et al. 2017, arXiv 1707.06347): rollouts of ``--rollout-steps``
steps of ``--num-envs`` vmapped environments; advantages by GAE (lambda) with
the bootstrap zeroed only at ``terminated`` (never, in Overcooked: episodes end
by truncation after 400 steps, where the value of the true last observation,
``info["next_obs"]``, is bootstrapped); the clipped surrogate, a clipped value
loss and an entropy bonus; ``--epochs`` passes over ``--minibatches``
minibatches; Adam with a linearly decaying step and global-norm clipping.

The actor is ``mairl.networks.MLPCritic`` (ReLU layers of ``--hidden`` widths,
logits over the 6 actions), so its logits play the part of soft-Q values at
``alpha = 1``: the file is written in the soft-Q expert format
(``mairl.forward.save_params``, ``features = "identity"``, ``alpha = 1``), the
shared parameters copied onto both agents, and loads with

    mairl demos --env overcooked --expert soft-q \\
        --expert-params mairl/assets/overcooked_cramped_room.npz

to a policy that samples each cook's action from the softmax of its logits,
i.e. the trained PPO policy itself. At the end the script measures soups
delivered per 400-step episode (and sparse and shaped returns per agent) of the
expert and of uniformly random cooks over ``--final-episodes`` episodes, and
stores them in the file's metadata. A run is deterministic for a given seed on
one machine.

    python experiments/train_overcooked_expert.py     # about 11 minutes on 2 shared CPU cores
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

import envs
from mairl.experts import SOFT_Q_FORMAT
from mairl.forward import save_params
from mairl.metrics import episode_info_sums
from mairl.networks import MLPCritic

ASSET = Path(__file__).resolve().parent.parent / "mairl" / "assets" / "overcooked_cramped_room.npz"


@dataclass(frozen=True)
class Args:
    """PPO training of the Overcooked expert.

    Attributes:
        layout: Overcooked layout (``envs.jaxmarl.OVERCOOKED_LAYOUTS``).
        total_steps: environment steps (of one env) in the whole run.
        num_envs: environments stepped in parallel.
        rollout_steps: steps of every environment per PPO update.
        epochs: passes over each rollout.
        minibatches: minibatches per pass.
        learning_rate: initial Adam step, decayed linearly to 0.
        max_grad_norm: global-norm gradient clipping.
        gamma: discount.
        gae_lambda: GAE parameter.
        clip_eps: PPO ratio clipping (also clips the value update).
        ent_coef: entropy bonus weight.
        vf_coef: value loss weight.
        shaping_start: initial weight of the shaping reward.
        shaping_horizon: fraction of ``total_steps`` over which the shaping
            weight decays to 0.
        hidden: hidden widths of the actor and value MLPs.
        eval_every: updates between progress reports.
        final_episodes: episodes of the final evaluation (expert and random).
        seed: random seed.
        out: where to write the parameters.
    """

    layout: str = "cramped_room"
    total_steps: int = 3_000_000
    num_envs: int = 64
    rollout_steps: int = 128
    epochs: int = 4
    minibatches: int = 4
    learning_rate: float = 1e-3
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    shaping_start: float = 1.0
    shaping_horizon: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    eval_every: int = 25
    final_episodes: int = 1000
    seed: int = 0
    out: Path = ASSET

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def num_updates(self) -> int:
        return max(self.total_steps // self.steps_per_update, 1)


class Rollout(NamedTuple):
    """One rollout, ``(time, env, agent, ...)``."""

    obs: jax.Array
    actions: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_value: jax.Array
    reward: jax.Array
    terminated: jax.Array  # (time, env)
    done: jax.Array  # (time, env)
    delivery: jax.Array  # (time, env)


class PPOState(NamedTuple):
    actor: Any
    critic: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array  # (env, agent, *obs_shape)
    update: jax.Array


def apply_batched(net, params, obs: jax.Array, obs_ndim: int) -> jax.Array:
    """``net`` on ``obs (*batch, *obs_shape)`` with any number of leading axes."""
    batch = obs.shape[: obs.ndim - obs_ndim]
    out = net.apply(params, obs.reshape(-1, *obs.shape[obs.ndim - obs_ndim:]))
    return out.reshape(*batch, out.shape[-1])


# -- losses ------------------------------------------------------------------------------------
def gae(rollout: Rollout, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation (Schulman et al. 2016, arXiv 1506.02438).

    ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)`` with ``s'_t`` the
    true successor, ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``: the sum is
    cut at every episode end, the bootstrap only at a terminal state.

    Returns ``(advantages, returns)``, both ``(time, env, agent)``.
    """
    cont = 1.0 - rollout.terminated.astype(jnp.float32)[..., None]
    not_done = 1.0 - rollout.done.astype(jnp.float32)[..., None]
    delta = rollout.reward + gamma * cont * rollout.next_value - rollout.value

    def back(adv_next, x):
        delta_t, not_done_t = x
        adv = delta_t + gamma * lam * not_done_t * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True)
    return adv, adv + rollout.value


def ppo_loss(actor_params, critic_params, actor, critic, batch, args: Args):
    """Clipped surrogate, clipped value loss and entropy bonus on a flat batch."""
    obs, actions, old_logp, old_value, adv, ret = batch
    logits = actor.apply(actor_params, obs)
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, actions[:, None], axis=-1)[:, 0]
    ratio = jnp.exp(logp - old_logp)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    surrogate = jnp.minimum(ratio * adv,
                            jnp.clip(ratio, 1 - args.clip_eps, 1 + args.clip_eps) * adv)
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    value = critic.apply(critic_params, obs)[:, 0]
    value_clipped = old_value + jnp.clip(value - old_value, -args.clip_eps, args.clip_eps)
    value_loss = 0.5 * jnp.maximum((value - ret) ** 2, (value_clipped - ret) ** 2).mean()
    loss = -surrogate.mean() + args.vf_coef * value_loss - args.ent_coef * entropy.mean()
    return loss, {"value_loss": value_loss, "entropy": entropy.mean()}


# -- training ----------------------------------------------------------------------------------
def make_train(args: Args, env, progress=None):
    """``train(key) -> (actor_params, metrics)``: the whole run, one jittable function."""
    num_actions = env.num_actions
    ndim = len(env.obs_shape)
    actor = MLPCritic(num_actions, hidden=tuple(args.hidden), obs_ndim=len(env.obs_shape))
    critic = MLPCritic(1, hidden=tuple(args.hidden), obs_ndim=len(env.obs_shape))
    num_updates = args.num_updates
    grad_steps = num_updates * args.epochs * args.minibatches
    schedule = optax.linear_schedule(args.learning_rate, 0.0, grad_steps)
    tx = optax.chain(optax.clip_by_global_norm(args.max_grad_norm),
                     optax.adam(schedule, eps=1e-5))
    shaping_steps = max(args.shaping_horizon * num_updates * args.steps_per_update, 1.0)
    batch_size = args.steps_per_update * env.num_agents
    if batch_size % args.minibatches:
        raise ValueError(f"--minibatches: expected a divisor of {batch_size}, "
                         f"got {args.minibatches}")

    def shaping_weight(update):
        frac = update * args.steps_per_update / shaping_steps
        return args.shaping_start * jnp.clip(1.0 - frac, 0.0, 1.0)

    def init(key):
        key_actor, key_critic, key_env = jax.random.split(key, 3)
        example = jnp.zeros(env.obs_shape, jnp.float32)
        actor_params = actor.init(key_actor, example)
        # Small initial logits: a near-uniform first policy.
        last = f"Dense_{len(args.hidden)}"
        actor_params = jax.tree_util.tree_map_with_path(
            lambda path, p: p * 0.01 if last in jax.tree_util.keystr(path) else p, actor_params)
        critic_params = critic.init(key_critic, example)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(key_env, args.num_envs))
        opt_state = tx.init((actor_params, critic_params))
        return PPOState(actor_params, critic_params, opt_state, env_state, obs, jnp.int32(0))

    def env_step(carry, key):
        state, weight = carry
        key_act, key_step = jax.random.split(key)
        logits = apply_batched(actor, state.actor, state.obs, ndim)  # (env, agent, action)
        actions = jax.random.categorical(key_act, logits).astype(jnp.int32)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None],
                                       axis=-1)[..., 0]
        value = apply_batched(critic, state.critic, state.obs, ndim)[..., 0]
        obs, env_state, _, terminated, truncated, info = jax.vmap(env.step)(
            jax.random.split(key_step, args.num_envs), state.env_state, actions)
        next_value = apply_batched(critic, state.critic, info["next_obs"], ndim)[..., 0]
        reward = info["sparse_reward"] + weight * info["shaped_reward"]
        item = Rollout(state.obs, actions, log_prob, value, next_value, reward, terminated,
                       terminated | truncated, info["delivery"])
        return (state._replace(env_state=env_state, obs=obs), weight), item

    def update(state: PPOState, key):
        key_roll, key_epochs = jax.random.split(key)
        weight = shaping_weight(state.update)
        (state, _), rollout = jax.lax.scan(
            env_step, (state, weight), jax.random.split(key_roll, args.rollout_steps))
        adv, ret = gae(rollout, args.gamma, args.gae_lambda)
        obs_flat = rollout.obs.reshape(batch_size, *env.obs_shape)
        data = (obs_flat, rollout.actions.reshape(-1), rollout.log_prob.reshape(-1),
                rollout.value.reshape(-1), adv.reshape(-1), ret.reshape(-1))

        def epoch(carry, key):
            params, opt_state = carry
            perm = jax.random.permutation(key, batch_size)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape(args.minibatches, -1, *x.shape[1:]), data)

            def minibatch(carry, mb):
                params, opt_state = carry
                grads, aux = jax.grad(
                    lambda p: ppo_loss(p[0], p[1], actor, critic, mb, args), has_aux=True
                )(params)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), aux

            return jax.lax.scan(minibatch, (params, opt_state), mbs)

        (params, opt_state), aux = jax.lax.scan(
            epoch, ((state.actor, state.critic), state.opt_state),
            jax.random.split(key_epochs, args.epochs))
        state = state._replace(actor=params[0], critic=params[1], opt_state=opt_state,
                               update=state.update + 1)
        metrics = {
            "soups_per_episode": rollout.delivery.mean() * env.max_steps,
            "episodes": rollout.done.sum(),
            "shaping_weight": weight,
            "entropy": aux["entropy"].mean(),
            "value_loss": aux["value_loss"].mean(),
        }
        if progress is not None:
            jax.debug.callback(progress, state.update, metrics)
        return state, metrics

    def train(key):
        key_init, key_run = jax.random.split(key)
        state = init(key_init)
        state, metrics = jax.lax.scan(update, state, jax.random.split(key_run, num_updates))
        return state.actor, metrics

    return train, actor


# -- evaluation --------------------------------------------------------------------------------
#: ``info`` fields summed per episode, and the names this script reports them under.
OVERCOOKED_FIELDS = {"soups": "delivery", "sparse": "sparse_reward", "shaped": "shaped_reward"}


def rollout_stats(key, env, policy_fn, num_episodes: int) -> dict[str, jax.Array]:
    """Soups ``(episode,)`` and sparse and shaped returns ``(episode, agent)`` of
    ``num_episodes`` full Overcooked episodes (:func:`mairl.metrics.episode_info_sums`)."""
    sums = episode_info_sums(key, env, policy_fn, num_episodes, OVERCOOKED_FIELDS.values())
    return {name: sums[field] for name, field in OVERCOOKED_FIELDS.items()}


def episode_stats(key, env, policy_fn, num_episodes: int) -> dict[str, np.ndarray]:
    """:func:`rollout_stats`, compiled and brought to the host as NumPy arrays."""
    out = jax.jit(lambda k: rollout_stats(k, env, policy_fn, num_episodes))(key)
    return {name: np.asarray(value) for name, value in jax.device_get(out).items()}


def describe(name: str, stats: dict[str, np.ndarray]) -> str:
    soups = stats["soups"]
    half = 1.96 * soups.std(ddof=1) / np.sqrt(soups.size)
    sparse = np.array2string(stats["sparse"].mean(0), precision=1)
    shaped = np.array2string(stats["shaped"].mean(0), precision=1)
    return (f"{name:<8} soups/episode {soups.mean():6.2f} ± {half:.2f} (95%)  "
            f"sparse return per agent {sparse}  shaping return per agent {shaped}")


def main(args: Args) -> None:
    t0 = time.perf_counter()
    env = envs.make("overcooked", layout=args.layout)
    print(f"PPO on overcooked {args.layout}: {args.num_updates} updates x "
          f"{args.steps_per_update} env steps ({args.num_updates * args.steps_per_update} steps)",
          flush=True)

    def progress(update, metrics):
        update = int(update)
        if update % args.eval_every and update != args.num_updates:
            return
        m = {k: float(v) for k, v in metrics.items()}
        print(f"  {time.perf_counter() - t0:7.1f} s  update {update:5d}  "
              f"soups/episode {m['soups_per_episode']:6.2f}  shaping {m['shaping_weight']:.2f}  "
              f"entropy {m['entropy']:.3f}  value loss {m['value_loss']:.2f}", flush=True)

    train, actor = make_train(args, env, progress)
    key = jax.random.key(args.seed)
    key_train, key_eval, key_random = jax.random.split(key, 3)
    params, _ = jax.block_until_ready(jax.jit(train)(key_train))
    train_time = time.perf_counter() - t0
    print(f"trained in {train_time:.1f} s", flush=True)

    stacked = jax.tree.map(lambda p: jnp.stack([p] * env.num_agents), params)

    def expert(key, obs):
        logits = jax.vmap(actor.apply)(stacked, obs)
        return jax.random.categorical(key, logits).astype(jnp.int32)

    stats = episode_stats(key_eval, env, expert, args.final_episodes)
    random_stats = episode_stats(key_random, env, lambda k, o: env.sample_actions(k),
                                 args.final_episodes)
    print(describe("expert", stats))
    print(describe("random", random_stats))
    metadata = {
        "format": SOFT_Q_FORMAT,
        "env_id": "overcooked" if args.layout == "cramped_room" else f"overcooked-{args.layout}",
        "features": "identity",
        "critic": "mlp",
        "hidden": ",".join(str(h) for h in args.hidden),
        "alpha": 1.0,
        "gamma": float(args.gamma),
        "num_agents": int(env.num_agents),
        "num_actions": int(env.num_actions),
        "trainer": "ppo-shared",
        "seed": int(args.seed),
        "total_steps": int(args.num_updates * args.steps_per_update),
        "eval_episodes": int(args.final_episodes),
        "eval_soups_per_episode": float(stats["soups"].mean()),
        "random_soups_per_episode": float(random_stats["soups"].mean()),
    }
    path = save_params(args.out, jax.device_get(stacked), metadata)
    print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB); "
          f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
