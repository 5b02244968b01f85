"""Offline MAMQL on random general-sum games, scored against the exact oracle.

For every random game (``random_game(jax.random.key(g), states, actions, agents)``,
``g = 0 .. games - 1``) the script solves the logit equilibrium at ``alpha = 1``
(``mairl.solvers.soft_value_iteration``), the expert, and trains offline MAMQL
(``mode="value_expert"``, one tabular marginal critic per agent) two ways:

- ``sampled``: from ``--transitions`` demonstrated transitions, recorded with
  ``mairl.data.collect`` as complete episodes of ``--episode-length`` steps from
  the game's initial distribution (truncated, never terminated), and trained with
  ``mairl.train.make_train``, which draws minibatches uniformly from them;
- ``exact``: the same loss and update, with every minibatch drawn i.i.d. from the
  expert's exact discounted occupancy, ``s ~ d_E``, ``a_i ~ pi_i(.|s)``
  independently per agent, ``s' ~ P(.|s, a)``, so that the expectations of the
  loss are those of the occupancy itself, up to minibatch noise. (The learner's
  ``Batch`` holds unweighted transitions, so a weighted full-batch dataset is not
  an option.)

Several training seeds run at once (``jax.vmap``). Each run is scored by
``mairl.evaluation.make_eval_fn`` with the oracle: ``policy_kl`` is
``E_{s ~ d_E} KL(pi_E,i(.|s) || pi_i(.|s))``; the recovered reward
``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) V_i(s')`` is compared with
the true marginal reward by the shaping-aware correlation (weights: the expert's
state-action occupancy), the plain Pearson correlation and the EPIC distance. The
tables give, per game and agent, the worst training seed for the two targeted
figures (largest KL, smallest correlation) and the seed mean for the others, with
PASS or FAIL against the targets:

- sampled: ``policy KL <= 0.02`` and ``shaping-aware correlation >= 0.98``;
- exact occupancy: ``policy KL <= 0.01`` and ``shaping-aware correlation >= 0.99``.

With the tabular critic the loss of agent ``i`` is the cross-entropy of its
Boltzmann policy against the expert's plus ``(c / 4 alpha) E[(Q_i(s, a_i) -
gamma V_i(s'))^2]``, with ``c`` the chi-squared coefficient: the second term
shrinks the implied reward, and pulls the policy away from the expert's by a
KL that grows like ``c^2``. At ``c = 1`` that bias alone is about 0.01 on
2-agent games, the exact-occupancy target, hence ``c = 0.5`` by default.

    python experiments/tabular_mamql.py                      # 2 and 3 agents, 3 games
    python experiments/tabular_mamql.py --agents 2 --games 1 --chi2-coef 1.0
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from envs.tabular import TabularGame, random_game
from mairl.algos.base import Algo, Batch
from mairl.algos.iq import joint_index
from mairl.algos.mamql import MAMQLConfig, make_mamql
from mairl.cli.experts import tabular_policy_fn
from mairl.data import Transition, collect
from mairl.evaluation import make_eval_fn
from mairl.solvers import SoftVIResult, soft_value_iteration
from mairl.train import TrainConfig, TrainResult, make_train, train_data


@dataclass(frozen=True)
class Args:
    """Tabular MAMQL against the oracle.

    Attributes:
        agents: agent counts to run, one set of games each.
        states: states of every random game.
        actions: actions of every agent.
        transitions: demonstrated transitions of the sampled runs.
        episode_length: steps of every demonstrated episode (``transitions`` must
            be a multiple of it).
        games: random games per agent count (game ``g`` is ``random_game(key(g))``).
        seeds: training seeds per game and per variant, vmapped.
        gamma: discount of the expert and of the learner.
        chi2_coef: chi-squared coefficient ``c`` of the MAMQL loss.
        learning_rate: Adam step size (constant).
        batch_size: transitions per update, both variants.
        updates: gradient updates per run.
        eval_every: updates between evaluations (``--curves`` prints them all).
        curves: also print policy KL and shaping-aware correlation during training.
        seed: seed of the demonstrations and of training.
    """

    agents: tuple[int, ...] = (2, 3)
    states: int = 20
    actions: int = 3
    transitions: int = 50_000
    episode_length: int = 100
    games: int = 3
    seeds: int = 2
    gamma: float = 0.9
    chi2_coef: float = 0.5
    learning_rate: float = 1e-2
    batch_size: int = 1024
    updates: int = 10_000
    eval_every: int = 2_000
    curves: bool = False
    seed: int = 0


class Targets(NamedTuple):
    """Largest policy KL and smallest shaping-aware correlation that pass."""

    kl: float
    corr: float


TARGETS = {"sampled": Targets(kl=0.02, corr=0.98), "exact": Targets(kl=0.01, corr=0.99)}
VARIANTS = {
    "sampled": "{transitions:,} demonstrated transitions",
    "exact": "exact expert occupancy",
}


class ExpertOccupancy(NamedTuple):
    """The expert's discounted occupancy and the true dynamics, as sampling tables."""

    log_state: jax.Array  # (S,) log d_E(s)
    log_policy: jax.Array  # (N, S, A) log pi_E,i(a|s)
    log_transitions: jax.Array  # (S, A**N, S') log P(s'|s, a), joint actions flattened


def expert_occupancy(game: TabularGame, solution: SoftVIResult) -> ExpertOccupancy:
    with np.errstate(divide="ignore"):
        log = lambda x: jnp.asarray(np.log(x), jnp.float32)  # noqa: E731
        return ExpertOccupancy(
            log_state=log(solution.state_occupancy),
            log_policy=log(solution.policy),
            log_transitions=log(game.joint_transitions),
        )


def sample_exact_batch(key: jax.Array, expert: ExpertOccupancy, batch_size: int) -> Batch:
    """``batch_size`` i.i.d. ``(s, a, s')`` from ``d_E(s) prod_i pi_i(a_i|s) P(s'|s, a)``."""
    num_agents, num_states, num_actions = expert.log_policy.shape
    key_state, key_action, key_next = jax.random.split(key, 3)
    state = jax.random.categorical(key_state, expert.log_state, shape=(batch_size,))
    actions = jax.random.categorical(key_action, expert.log_policy[:, state], axis=-1)  # (N, B)
    joint = joint_index(actions, num_actions)  # (B,)
    next_state = jax.random.categorical(key_next, expert.log_transitions[state, joint], axis=-1)
    eye = jnp.eye(num_states, dtype=jnp.float32)
    obs = jnp.broadcast_to(eye[state], (num_agents, batch_size, num_states))
    next_obs = jnp.broadcast_to(eye[next_state], (num_agents, batch_size, num_states))
    done = jnp.zeros(batch_size, bool)
    return Batch(Transition(obs, actions.astype(jnp.int32), next_obs, done, done))


def make_train_exact(algo: Algo, config: TrainConfig, eval_fn):
    """``train(key, expert) -> TrainResult``: ``make_train``'s loop, with minibatches
    drawn from the exact occupancy (``sample_exact_batch``) instead of demonstrations."""
    batch_size = algo.config.batch_size

    def train(key: jax.Array, expert: ExpertOccupancy) -> TrainResult:
        key_init, key_sample, key_run = jax.random.split(key, 3)
        state = algo.init(key_init, sample_exact_batch(key_sample, expert, batch_size))

        def one_update(state, key):
            key_batch, key_update = jax.random.split(key)
            return algo.update(state, sample_exact_batch(key_batch, expert, batch_size), key_update)

        def chunk(state, key):
            key_updates, key_eval = jax.random.split(key)
            state, _ = jax.lax.scan(
                one_update, state, jax.random.split(key_updates, config.eval_every)
            )
            return state, eval_fn(state, key_eval)

        state, curves = jax.lax.scan(chunk, state, jax.random.split(key_run, config.num_chunks))
        updates = (jnp.arange(config.num_chunks) + 1) * config.eval_every
        return TrainResult(state, curves, updates)

    return train


def run_game(args: Args, num_agents: int, game_index: int, key: jax.Array) -> dict:
    """Both variants on one game: ``{variant: curves}``, each ``(seed, chunk, agent)``."""
    game = random_game(jax.random.key(game_index), args.states, args.actions, num_agents,
                       max_steps=args.episode_length)
    solution = soft_value_iteration(game, alpha=1.0, gamma=args.gamma)
    config = MAMQLConfig(
        mode="value_expert", critic="tabular", alpha=1.0, gamma=args.gamma,
        learning_rate=args.learning_rate, batch_size=args.batch_size,
        chi2_coef=args.chi2_coef, max_grad_norm=None,
    )
    algo = make_mamql(config, num_agents=num_agents, obs_shape=(args.states,),
                      num_actions=args.actions)
    eval_fn = make_eval_fn(algo, game, oracle=solution, episodes=16)
    train_config = TrainConfig(num_updates=args.updates, eval_every=args.eval_every)

    key_demos, key_sampled, key_exact = jax.random.split(key, 3)
    demos = collect(key_demos, game, tabular_policy_fn(game, solution.policy),
                    args.transitions // args.episode_length)
    train_sampled = jax.jit(jax.vmap(make_train(algo, train_config, eval_fn), in_axes=(0, None)))
    train_exact = jax.jit(jax.vmap(make_train_exact(algo, train_config, eval_fn),
                                   in_axes=(0, None)))
    sampled = train_sampled(jax.random.split(key_sampled, args.seeds), train_data(demos))
    exact = train_exact(jax.random.split(key_exact, args.seeds), expert_occupancy(game, solution))
    return {"sampled": jax.device_get(sampled.curves), "exact": jax.device_get(exact.curves)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(args: Args, num_agents: int, variant: str, results: list[dict]) -> int:
    """One row per game and agent, final evaluation; returns the number of failures."""
    target = TARGETS[variant]
    source = VARIANTS[variant].format(transitions=args.transitions)
    print(f"\n{num_agents} agents, {variant}: {source}; worst of {args.seeds} seeds for KL "
          f"and shaping corr, seed mean for Pearson and EPIC")
    print(f"{'game':>4} {'agent':>5}  {'policy KL':>9} {f'<= {target.kl}':>9}  "
          f"{'shaping corr':>12} {f'>= {target.corr}':>9}  {'Pearson':>7}  {'EPIC':>6}")
    failures = 0
    for game_index, curves in enumerate(results):
        final = {name: np.asarray(value)[:, -1] for name, value in curves.items()}  # (seed, N)
        kl = final["policy_kl"].max(axis=0)
        corr = final["reward_shaping_corr"].min(axis=0)
        pearson = final["reward_pearson"].mean(axis=0)
        epic = final["reward_epic"].mean(axis=0)
        for i in range(num_agents):
            kl_ok, corr_ok = kl[i] <= target.kl, corr[i] >= target.corr
            failures += int(not (kl_ok and corr_ok))
            print(f"{game_index:>4} {i:>5}  {kl[i]:9.4f} {verdict(kl_ok):>9}  "
                  f"{corr[i]:12.4f} {verdict(corr_ok):>9}  {pearson[i]:7.3f}  {epic[i]:6.3f}")
    return failures


def print_curves(args: Args, num_agents: int, results: list[dict]) -> None:
    for variant in VARIANTS:
        for game_index, game_results in enumerate(results):
            curves = game_results[variant]
            for chunk in range(args.updates // args.eval_every):
                kl = np.asarray(curves["policy_kl"])[:, chunk].max(axis=0)
                corr = np.asarray(curves["reward_shaping_corr"])[:, chunk].min(axis=0)
                print(f"  {num_agents} agents {variant:>7} game {game_index} update "
                      f"{(chunk + 1) * args.eval_every:6d}: KL {np.array2string(kl, precision=4)}"
                      f"  shaping corr {np.array2string(corr, precision=4)}")


def main(args: Args) -> None:
    if args.transitions % args.episode_length:
        raise SystemExit(
            f"error: --transitions ({args.transitions}) must be a multiple of "
            f"--episode-length ({args.episode_length})"
        )
    t0 = time.perf_counter()
    print(f"MAMQL value_expert, tabular critic: {args.states} states, {args.actions} actions, "
          f"alpha 1, gamma {args.gamma}, chi2 coef {args.chi2_coef}, Adam lr "
          f"{args.learning_rate}, batch {args.batch_size}, {args.updates} updates, "
          f"{args.games} games x {args.seeds} seeds")
    key = jax.random.key(args.seed)
    failures = 0
    for num_agents in args.agents:
        key, key_agents = jax.random.split(key)
        results = [run_game(args, num_agents, g, k)
                   for g, k in enumerate(jax.random.split(key_agents, args.games))]
        if args.curves:
            print_curves(args, num_agents, results)
        for variant in VARIANTS:
            failures += print_table(args, num_agents, variant, [r[variant] for r in results])
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = 2 * args.games * sum(args.agents)
    print(f"\n{rows - failures}/{rows} agent rows pass both targets; "
          f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
