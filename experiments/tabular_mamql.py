"""Offline MAMQL on random general-sum games, scored against the exact oracle.

For every random game (``random_game(jax.random.key(g), states, actions, agents)``,
``g = 0 .. games - 1``) the script solves the logit equilibrium at ``alpha = 1``
(``mairl.solvers.soft_value_iteration``), the expert, and fits MAMQL's offline
loss (``mode="value_expert"``, one tabular marginal critic ``Q_i(s, a_i)`` per
agent) three ways:

- ``sampled``: from ``--transitions`` demonstrated transitions, recorded with
  ``mairl.data.collect`` as complete episodes of ``--episode-length`` steps from
  the game's initial distribution (truncated, never terminated), and trained with
  ``mairl.train.make_train``, which draws minibatches uniformly from them;
- ``exact``: the same loss, update and loop, with every minibatch drawn i.i.d.
  from the expert's exact discounted occupancy (``make_train`` with the batch
  source ``mairl.train.occupancy_batches``), ``s ~ d_E``, ``a_i ~ pi_i(.|s)``
  independently per agent, ``s' ~ P(.|s, a)``: the expectations of the loss are
  those of the occupancy, up to minibatch noise. (The learner's ``Batch`` holds
  unweighted transitions, so it cannot take a weighted full-batch dataset.)
- ``minimum``: the exact expected loss itself (``expected_loss``: the same
  objective, its expectations summed over all ``(s, a_i, s')`` with weights
  ``d_E(s) pi_i(a_i|s) P_i(s'|s, a_i)``), minimized over the critics' parameters
  by L-BFGS: where the two stochastic runs would converge with enough data,
  updates and a vanishing step.

The stochastic runs use several training seeds at once (``jax.vmap``). Every fit
is scored by ``mairl.evaluation.make_eval_fn`` with the oracle:
``policy_kl`` is ``E_{s ~ d_E} KL(pi_E,i(.|s) || pi_i(.|s))``; the recovered reward
``r_i(s, a_i) = Q_i(s, a_i) - gamma sum_s' P_i(s'|s, a_i) V_i(s')`` is compared with
the true marginal reward by the shaping-aware correlation (weights: the expert's
state-action occupancy), the plain Pearson correlation and the EPIC distance. The
tables give, per game and agent, the worst training seed for the two targeted
figures (largest KL, smallest correlation) and the seed mean for the others, with
PASS or FAIL against the targets:

- sampled: ``policy KL <= 0.02`` and ``shaping-aware correlation >= 0.98``;
- exact occupancy (``exact`` and ``minimum``): ``policy KL <= 0.01`` and
  ``shaping-aware correlation >= 0.99``.

With the tabular critic, and value and expert terms read on the same
transitions, the loss of agent ``i`` is ``alpha`` times the cross-entropy of its
Boltzmann policy against the expert's plus ``(c / 4 alpha) E[(Q_i(s, a_i) -
gamma V_i(s'))^2]``, ``c`` the chi-squared coefficient: the second term shrinks
the implied reward and pulls the policy off the expert's, by a KL that grows
roughly like ``c^2``. At ``c = 1`` the minimum's KL is 0.008 to 0.013 on the
2-agent games here, around the exact-occupancy target; hence ``c = 0.5`` by
default. The per-state levels of ``Q_i``, which leave the policy alone, are set
by the second term only, their common level through gradients of order
``(1 - gamma) c``: the stochastic runs approach it slowly, and their policies
sit between the expert's and the minimum's.

    python experiments/tabular_mamql.py                      # 2 and 3 agents, 3 games each
    python experiments/tabular_mamql.py --agents 2 --chi2-coef 1.0 --curves
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

from mairl import report
from mairl.algos import MAMQLOfflineConfig, make_algo
from mairl.algos.common import chi2_phi, soft_value
from mairl.evaluation import make_eval_fn
from mairl.runs import example_batch
from mairl.solvers import soft_value_iteration
from mairl.train import TrainConfig, expert_occupancy, make_train, occupancy_batches, train_data


@dataclass(frozen=True)
class Args(report.RandomGames):
    """Tabular MAMQL against the oracle (the demonstrations feed the sampled runs).

    Attributes:
        seeds: training seeds per game and per stochastic variant, vmapped.
        learner: offline MAMQL with tabular critics (its options: ``--gamma``, the
            discount of the expert too, ``--chi2-coef``, ``--learning-rate``,
            ``--batch-size`` for both stochastic variants, ...).
        updates: gradient updates per stochastic run.
        eval_every: updates between evaluations (``--curves`` prints them all).
        lbfgs_steps: L-BFGS iterations of the ``minimum`` variant.
        curves: also print policy KL and shaping-aware correlation during training.
        seed: seed of the demonstrations and of training.
    """

    seeds: int = 2
    learner: Annotated[MAMQLOfflineConfig, tyro.conf.OmitArgPrefixes] = MAMQLOfflineConfig(
        critic="tabular", gamma=0.9, chi2_coef=0.5, learning_rate=3e-3, batch_size=1024,
        max_grad_norm=None)
    updates: int = 8_000
    eval_every: int = 2_000
    lbfgs_steps: int = 300
    curves: bool = False
    seed: int = 0


class Targets(NamedTuple):
    """Largest policy KL and smallest shaping-aware correlation that pass."""

    kl: float
    corr: float


TARGETS = {
    "sampled": Targets(kl=0.02, corr=0.98),
    "exact": Targets(kl=0.01, corr=0.99),
    "minimum": Targets(kl=0.01, corr=0.99),
}
SOURCES = {
    "sampled": "Adam on {transitions:,} demonstrated transitions",
    "exact": "Adam on i.i.d. minibatches of the exact expert occupancy",
    "minimum": "L-BFGS on the exact expected loss (deterministic)",
}


# -- the exact expected loss -----------------------------------------------------------------------
def expected_loss(
    q: jax.Array,
    state_dist: jax.Array,
    policy: jax.Array,
    transitions: jax.Array,
    *,
    alpha: float,
    gamma: float,
    chi2_coef: float,
) -> jax.Array:
    """MAMQL's ``value_expert`` loss of one agent (``mairl.algos.iq``) in expectation.

    ``E[V(s) - gamma V(s')] - E[phi(Q(s, a) - gamma V(s'))]`` with ``s ~ state_dist
    (S,)``, ``a ~ policy (S, A)`` and ``s' ~ transitions (S, A, S')``, the agent's
    marginal dynamics under the others' policies; ``q (S, A)``.
    """
    v = soft_value(q, alpha)  # (S,)
    weights = state_dist[:, None, None] * policy[:, :, None] * transitions  # (S, A, S')
    value_term = jnp.sum(weights * (v[:, None, None] - gamma * v[None, None, :]))
    expert_term = jnp.sum(weights * chi2_phi(q[:, :, None] - gamma * v, alpha, chi2_coef))
    return value_term - expert_term


def minimize(loss_fn, params: Any, steps: int) -> tuple[Any, jax.Array]:
    """L-BFGS from ``params``: the minimizer and the largest gradient entry left there."""
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss_fn)

    def step(carry, _):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=loss_fn)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    grad = jax.grad(loss_fn)(params)
    return params, jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grad)]))


# -- runs ------------------------------------------------------------------------------------------
class OracleScored(NamedTuple):
    """What ``make_eval_fn`` reads of a game scored against its oracle alone: the
    agent count and ``jittable = False``, so that no returns are rolled out. The
    oracle is an argument of the compiled fits rather than a constant (nor is the
    game), so one program serves every game of a given size."""

    num_agents: int
    obs_shape: tuple[int, ...]
    jittable: bool = False


class Runs(NamedTuple):
    """Jitted fits for every game of one size. ``sampled(keys, data, oracle)`` and
    ``exact(keys, expert, oracle)`` return ``TrainResult`` with a leading seed axis;
    ``minimum(oracle)`` returns the metrics and the largest gradient entry left."""

    sampled: Callable[..., Any]
    exact: Callable[..., Any]
    minimum: Callable[..., Any]


def make_runs(args: Args, num_agents: int) -> Runs:
    """The fits of ``num_agents``-agent games, compiled once for all of them."""
    algo = make_algo(args.learner, num_agents=num_agents, obs_shape=(args.states,),
                     num_actions=args.actions)
    train_config = TrainConfig(num_updates=args.updates, eval_every=args.eval_every)
    game = OracleScored(num_agents, (args.states,))
    one_hot = jnp.broadcast_to(jnp.eye(args.states), (num_agents, args.states, args.states))
    shapes = jax.eval_shape(algo.init, jax.random.key(0), example_batch(algo, game)).params

    def sampled(key, data, oracle):
        return make_train(algo, train_config, make_eval_fn(algo, game, oracle=oracle))(key, data)

    def exact(key, expert, oracle):
        return make_train(algo, train_config, make_eval_fn(algo, game, oracle=oracle),
                          batch_source=occupancy_batches(args.learner.batch_size))(key, expert)

    def minimum(oracle):
        loss = functools.partial(expected_loss, alpha=algo.alpha, gamma=algo.gamma,
                                 chi2_coef=args.learner.chi2_coef)

        def loss_fn(params):  # the agents' losses are separate: their sum has their minima
            q = algo.q_values(params, one_hot)  # (N, S, A)
            return jnp.sum(jax.vmap(loss, in_axes=(0, None, 0, 0))(
                q, oracle.state_occupancy, oracle.policy, oracle.marginal_transitions))

        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        params, grad = minimize(loss_fn, zeros, args.lbfgs_steps)
        return make_eval_fn(algo, game, oracle=oracle)(params, jax.random.key(0)), grad

    seeds = lambda f: jax.jit(jax.vmap(f, in_axes=(0, None, None)))
    return Runs(seeds(sampled), seeds(exact), jax.jit(minimum))


def run_game(args: Args, num_agents: int, game_index: int, key: jax.Array, runs: Runs) -> dict:
    """All variants on one game: ``{variant: curves}``, each ``(seed, chunk, agent)``."""
    game = args.game(num_agents, game_index)
    solution = soft_value_iteration(game, alpha=1.0, gamma=args.learner.gamma)
    oracle = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), solution)
    key_demos, key_sampled, key_exact = jax.random.split(key, 3)
    demos = args.demonstrations(key_demos, game, solution.policy)
    sampled = runs.sampled(jax.random.split(key_sampled, args.seeds), train_data(demos), oracle)
    exact = runs.exact(jax.random.split(key_exact, args.seeds),
                       expert_occupancy(game, solution), oracle)
    minimum, grad = runs.minimum(oracle)
    return {
        "sampled": jax.device_get(sampled.curves),
        "exact": jax.device_get(exact.curves),
        "minimum": jax.device_get(jax.tree.map(lambda x: x[None, None], minimum)),
        "minimum_grad": float(grad),
    }


# -- printing --------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(args: Args, num_agents: int, variant: str, results: list[dict]) -> int:
    """One row per game and agent, final evaluation; returns the number of failing rows."""
    target = TARGETS[variant]
    source = SOURCES[variant].format(transitions=args.transitions)
    over = "" if variant == "minimum" else (
        f"; worst of {args.seeds} seeds (KL, shaping corr), seed mean (Pearson, EPIC)"
    )
    print(f"\n{num_agents} agents, {variant}: {source}{over}")
    print(f"{'game':>4} {'agent':>5}  {'policy KL':>9} {f'<= {target.kl}':>9}  "
          f"{'shaping corr':>12} {f'>= {target.corr}':>9}  {'Pearson':>7}  {'EPIC':>6}")
    failures = 0
    for game_index, result in enumerate(results):
        final = {name: np.asarray(value)[:, -1] for name, value in result[variant].items()}
        kl = final["policy_kl"].max(axis=0)  # (N,)
        corr = final["reward_shaping_corr"].min(axis=0)
        pearson = final["reward_pearson"].mean(axis=0)
        epic = final["reward_epic"].mean(axis=0)
        for i in range(num_agents):
            kl_ok, corr_ok = kl[i] <= target.kl, corr[i] >= target.corr
            failures += int(not (kl_ok and corr_ok))
            print(f"{game_index:>4} {i:>5}  {kl[i]:9.4f} {verdict(kl_ok):>9}  "
                  f"{corr[i]:12.4f} {verdict(corr_ok):>9}  {pearson[i]:7.3f}  {epic[i]:6.3f}")
    if variant == "minimum":
        grad = max(result["minimum_grad"] for result in results)
        print(f"(largest gradient entry left at the minima: {grad:.1e})")
    return failures


def print_curves(args: Args, num_agents: int, results: list[dict]) -> None:
    print(f"\n{num_agents} agents, during training: worst of {args.seeds} seeds per agent")
    for variant in ("sampled", "exact"):
        for game_index, result in enumerate(results):
            kls = np.asarray(result[variant]["policy_kl"]).max(axis=0)  # (chunk, N)
            corrs = np.asarray(result[variant]["reward_shaping_corr"]).min(axis=0)
            for chunk, (kl, corr) in enumerate(zip(kls, corrs, strict=True)):
                print(f"{variant:>7} game {game_index} update {(chunk + 1) * args.eval_every:6d}: "
                      f"KL {np.array2string(kl, precision=4)}  "
                      f"shaping corr {np.array2string(corr, precision=4)}")


def main(args: Args) -> None:
    t0 = time.perf_counter()
    print(f"MAMQL value_expert, tabular critic: {args.states} states, {args.actions} actions, "
          f"alpha 1, gamma {args.learner.gamma}, chi2 coef {args.learner.chi2_coef}; Adam lr "
          f"{args.learner.learning_rate}, batch {args.learner.batch_size}, {args.updates} updates; "
          f"{args.games} games x {args.seeds} seeds")
    key = jax.random.key(args.seed)
    failures, rows = 0, 0
    for num_agents in args.agents:
        key, key_agents = jax.random.split(key)
        runs = make_runs(args, num_agents)
        results = [run_game(args, num_agents, g, k, runs)
                   for g, k in enumerate(jax.random.split(key_agents, args.games))]
        if args.curves:
            print_curves(args, num_agents, results)
        for variant in TARGETS:
            failures += print_table(args, num_agents, variant, results)
            rows += args.games * num_agents
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{rows - failures}/{rows} rows pass both targets; "
          f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
