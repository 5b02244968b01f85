"""Implementations of the CLI subcommands (the place where ``mairl`` meets ``envs``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from mairl.utils import progress_bar

Expert = Literal["soft-vi", "soft-q", "random", "scripted", "run"]


def list_envs(family: str | None = None) -> None:
    """List the registered environments with their family and whether they jit.

    Args:
        family: show only this family (e.g. ``tabular``, ``gems``).
    """
    import envs

    rows = [envs.spec(name) for name in envs.registered()]
    if family is not None:
        rows = [r for r in rows if r.family == family]
        if not rows:
            families = sorted({envs.spec(n).family for n in envs.registered()})
            raise SystemExit(f"error: no environment in family {family!r}; families: {families}")
    width = max(len(r.name) for r in rows)
    print(f"{'name':<{width}}  {'family':<10}  {'jit':<3}  description")
    for r in rows:
        jit = "yes" if r.jittable else "no"
        print(f"{r.name:<{width}}  {r.family:<10}  {jit:<3}  {r.description}")
    print("\nAlso: tabular:PATH.npz loads a saved TabularGame (see envs.tabular.TabularGame.save);"
          "\n      host:NAME runs a jittable game through the host-side interface (as_host).")


def demos(
    env: str,
    out: Path,
    expert: Expert = "soft-vi",
    episodes: int = 100,
    seed: int = 0,
    alpha: float | None = None,
    gamma: float = 0.99,
    num_envs: int = 64,
    expert_params: Path | None = None,
) -> None:
    """Record expert demonstrations and save them as ``.npz``.

    Args:
        env: environment name (``mairl envs`` lists them) or ``tabular:PATH.npz``.
        out: output file (``.npz``).
        expert: ``soft-vi`` (exact logit equilibrium, tabular games), ``soft-q``
            (trained soft-Q critics, e.g. the shipped Gems expert), ``scripted`` (the
            game's hand-written expert, where it has one), ``random``, or ``run``
            (the policy of a finished run directory, ``--expert-params DIR``, e.g.
            the SAC expert of ``experiments/train_brax_expert.py``).
        episodes: number of complete episodes to record.
        seed: random seed.
        alpha: Boltzmann temperature of the expert (soft-vi: 1 by default;
            soft-q: the temperature its parameter file was trained at).
        gamma: discount of the soft-vi expert.
        num_envs: environments run side by side.
        expert_params: parameter file of the soft-q expert (default: the shipped
            Gems expert, ``mairl/assets/gems_soft_q.npz``); the run directory of
            the run expert.
    """
    import jax

    from mairl.data import collect, episode_returns
    from mairl.experts import expert_alpha_gamma, make_expert
    from mairl.runs import make_env

    if episodes < 1:
        raise SystemExit(f"error: --episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise SystemExit(f"error: --num-envs must be >= 1, got {num_envs}")
    if alpha is not None and alpha <= 0:
        raise SystemExit(f"error: --alpha must be > 0, got {alpha}")
    if expert_params is not None and expert not in ("soft-q", "run"):
        raise SystemExit("error: --expert-params needs --expert soft-q or run, got "
                         f"--expert {expert}")
    if expert == "run" and expert_params is None:
        raise SystemExit("error: --expert run needs --expert-params RUN_DIR (a finished run)")
    try:
        game = make_env(env)
    except ValueError as err:  # it names the field, ``env``, whose flag is --env
        raise SystemExit(f"error: --{err}") from None
    try:
        policy_fn = make_expert(
            game, expert, alpha=alpha, gamma=gamma, params_path=expert_params
        )
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: --expert {expert}: {err}") from None
    expert_alpha, expert_gamma = expert_alpha_gamma(expert, alpha=alpha, gamma=gamma,
                                                    params_path=expert_params)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    with progress_bar(episodes, "episodes") as update:
        data = collect(
            key, game, policy_fn, episodes, num_envs=min(num_envs, episodes), progress=update,
            expert_alpha=expert_alpha, expert_gamma=expert_gamma,
        )
    elapsed = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    data.save(out)
    returns = episode_returns(data)
    print(f"env {game.name}: expert {expert}, {data.num_episodes} episodes, "
          f"{data.num_transitions} transitions in {elapsed:.1f} s")
    per_agent = ", ".join(
        f"{name} {r:.3f}" for name, r in zip(game.agents, returns.mean(axis=0), strict=True)
    )
    print(f"mean return per agent: {per_agent}")
    print(f"saved {out}")


def bench(what: Positional[Literal["envs", "mamql", "scale", "all"]] = "envs",
          quick: bool = False, out: Path | None = None, json: Path | None = None) -> None:
    """Benchmarks: ``envs`` times Gems steps/s and the exact soft value iteration;
    ``mamql`` times MAMQL updates on Gems against this machine's matmul peak, and
    the speed-up of training 8 seeds at once; ``scale`` gives seed-updates per
    second against seeds (1 to 64) and devices, and grid point-updates per second;
    ``all`` runs every benchmark in one process and writes one report of figures
    and ratios (``mairl.bench.bench_all``; ``make bench`` writes docs/benchmarks.md).

    Args:
        what: which benchmark.
        quick: tiny sizes (for smoke tests); the figures mean little.
        out: ``all``: write the markdown report here (default: print it).
        json: ``all``: write the figures as JSON here.
    """
    from mairl.cli.benchmarks import run

    if what != "all" and (out is not None or json is not None):
        raise SystemExit(f"error: --out and --json belong to 'mairl bench all', not "
                         f"'mairl bench {what}'")
    run(what, quick=quick, out=out, json_path=json)


def calibrate(
    env: str,
    demos: Path | None = None,
    expert: Path | None = None,
    alpha: float | None = None,
    gamma: float | None = None,
    states: int = 512,
    draws: int = 3,
    seed: int = 0,
) -> None:
    """Print what each reward metric gives the true reward, its shapings and random rewards.

    A metric counts as reward recovery only where the true reward up to any
    shaping scores near its best (ceiling >= 0.95) and random rewards near
    zero (floor <= 0.1); see ``mairl.metrics.calibration``.

    Args:
        env: a registered game (``mairl envs``) or ``tabular:PATH.npz``.
        demos: demonstrations whose states are the sample (games that are not
            tabular); their recorded ``expert_alpha``/``expert_gamma`` are the
            defaults of ``alpha``/``gamma`` on tabular games.
        expert: soft-Q expert file that made ``demos`` (default on Gems: the
            shipped expert).
        alpha: expert temperature (tabular; default: the file's or 1).
        gamma: discount (tabular; default: the file's or 0.99).
        states: sampled states (games that are not tabular).
        draws: draws of each random candidate.
        seed: randomness of the candidates.
    """
    import jax

    import envs
    from mairl.evaluation import calibrate_game
    from mairl.experts import GEMS_SOFT_Q_PARAMS
    from mairl.metrics import format_calibration
    from mairl.runs import load_demos

    game = envs.make(env)
    data = None
    if demos is not None:
        try:
            data = load_demos(demos, game)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"error: {err}") from None
        alpha = data.expert_alpha if alpha is None else alpha
        gamma = data.expert_gamma if gamma is None else gamma
    if expert is None and env.startswith("gems"):
        expert = GEMS_SOFT_Q_PARAMS
    t = time.perf_counter()
    try:
        table = calibrate_game(game, alpha=alpha, gamma=gamma, demos=data, expert=expert,
                               states=states, draws=draws, key=jax.random.key(seed))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(format_calibration(table))
    print(f"({time.perf_counter() - t:.0f} s) ceiling: worst score of the true reward up to "
          "shaping; floor: mean score of random rewards.")


def reproduce_mamql(argv: list[str]) -> None:
    """``mairl reproduce mamql``: the MAMQL paper's comparison (``mairl.reproduce``):
    parse the options of :class:`mairl.reproduce.ReproduceConfig`, run, print the tables."""
    import dataclasses
    import shlex

    import tyro

    from mairl.reproduce import ReproduceConfig, reproduce

    config = tyro.cli(ReproduceConfig, args=argv, prog="mairl reproduce mamql",
                      description="Reproduce the MAMQL paper's comparison on Gems, Overcooked "
                                  "and the intersection; every row is a resumable run.")
    if not config.command:
        config = dataclasses.replace(
            config, command=shlex.join(["mairl", "reproduce", "mamql", *argv]))
    try:
        results = reproduce(config)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print("\n" + results.text)
    print(f"\nruns in {config.out}/, results.json beside them; total {results.wall_s:.0f} s")
