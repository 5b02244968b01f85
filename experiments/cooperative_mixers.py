"""Factorized IQ-Learn (``fiq``) with each mixer against offline MAMQL, on cooperative
games and on general-sum ones, where one team critic is the wrong model.

For each game the script records ``--demo-episodes`` episodes of an expert
(``mairl.data.collect`` through ``mairl.report.record_demos``), trains
``mamql-offline`` and ``fiq`` with every mixer of ``--mixers`` on them (one
``mairl.runs.run`` each, ``--seeds`` seeds vmapped) and prints one table per game
from the runs' ``metrics.json``:

- ``random-team-game`` (cooperative: one team reward, 20 states, 3 actions, 2
  agents) and ``random-game`` (general-sum, same sizes): the expert is the exact
  logit equilibrium at ``alpha = 1`` (``soft-vi``), the learners use tabular
  critics with the tabular defaults (``mairl.algos.FAMILY_DEFAULTS``) at
  ``gamma = --tabular-gamma``; reported: the policy KL to the expert under its
  occupancy and the shaping-aware reward correlation, whose calibration on the
  game is recorded by each run (``metrics.json["measures"]``: the true reward and
  its shapings score 1, random critics around 0);
- ``mpe2-simple-spread`` (cooperative, 3 agents, scripted expert, PettingZoo
  through the adapter) and ``overcooked`` (cooperative, the shipped PPO expert):
  return per agent and held-out action accuracy (Overcooked: also the held-out KL
  to the known expert);
- ``gems`` (general-sum, 2 agents, the shipped soft-Q expert): return per agent,
  held-out KL to the expert and, with ``--gems-calibration``, the calibrated
  simulated reward measure (``mairl.evaluation.calibrate_game``, the learned
  critics scored beside the true reward, its shapings and random critics).

Deep games use MLP critics on the raw observations (``--view global``, the
settings of ``mairl.report.learner_config``) or, with ``--view agent``, on each
agent's own view where the game defines one (Gems: the egocentric map); the
mixers always read the raw observations of all agents. Returns are mean ± 95% t-interval
over seeds (each seed's mean over ``--final-episodes`` episodes, Boltzmann
policies at ``alpha = 1``); the expert row is the mean over its demonstrations.

    python experiments/cooperative_mixers.py --games random-team-game random-game
    python experiments/cooperative_mixers.py --seeds 3 --updates 2000 --demo-episodes 100
    python experiments/cooperative_mixers.py --games overcooked --algos mamql-offline mamql \
        --fiq-mode online
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

import envs
from mairl import report, runs
from mairl.algos import family_config
from mairl.data import episode_returns
from mairl.experts import GEMS_SOFT_Q_PARAMS, make_expert
from mairl.metrics import mean_half_width

Game = Literal["random-team-game", "random-game", "mpe2-simple-spread", "overcooked", "gems"]
MixerName = Literal["vdn", "linear", "qmix"]
OVERCOOKED_EXPERT = GEMS_SOFT_Q_PARAMS.with_name("overcooked_cramped_room.npz")
COOPERATIVE = {"random-team-game", "mpe2-simple-spread", "overcooked"}


@dataclass(frozen=True)
class Args(report.ExperimentArgs):
    """fiq (every mixer) against offline MAMQL on cooperative and general-sum games.

    Attributes:
        games: games to run, one table each.
        mixers: fiq's mixers, one run each.
        view: what the deep games' critics see: ``global`` (the raw observations)
            or ``agent`` (each agent's view, ``env.agent_view``, where defined).
        fiq_mode: fiq's value term: ``value_expert`` or ``v0`` (demonstrations
            alone) or ``online`` (also the agents' own rollouts, stepped
            ``online_envs`` games per seed and update, as online ``mamql``).
        tabular_gamma: discount of the tabular games' expert and learners.
        tabular_updates: updates per seed on the tabular games.
        gems_calibration: score the Gems runs' critics with the calibrated
            simulated reward measure.
        gems_states: demonstrated states sampled by that measure.
    """

    out: Path = Path("runs/cooperative_mixers")
    games: tuple[Game, ...] = ("random-team-game", "random-game", "mpe2-simple-spread", "gems")
    mixers: tuple[MixerName, ...] = ("vdn", "linear", "qmix")
    view: Literal["global", "agent"] = "global"
    fiq_mode: Literal["value_expert", "v0", "online"] = "value_expert"
    algos: tuple[report.Learner, ...] = ("mamql-offline",)
    demo_episodes: int = 100
    final_episodes: int = 20
    tabular_gamma: float = 0.9
    tabular_updates: int = 3000
    gems_calibration: bool = True
    gems_states: int = 256


def expert_of(game: str, env, args: Args):
    """The expert policy and, where its policy is known, its soft-Q file."""
    if envs.family_of(game) == "tabular":
        return make_expert(env, "soft-vi", gamma=args.tabular_gamma), None
    if game == "gems":
        return make_expert(env, "soft-q"), GEMS_SOFT_Q_PARAMS
    if game == "overcooked":
        return make_expert(env, "soft-q", params_path=OVERCOOKED_EXPERT), OVERCOOKED_EXPERT
    return env.scripted_policy(), None


def learner_configs(game: str, args: Args, demos: Path, expert_file) -> dict[str, runs.RunConfig]:
    """``{row name: RunConfig}``: the baselines of ``args.algos`` and fiq per mixer."""
    tabular = envs.family_of(game) == "tabular"
    out = {}
    for name in (*args.algos, *(f"fiq-{m}" for m in args.mixers)):
        algo_name = "fiq" if name.startswith("fiq-") else name
        online = algo_name == "mamql" or (algo_name == "fiq" and args.fiq_mode == "online")
        config = report.learner_config(args, algo_name, game, demos, online=online,
                                       final_episodes=None, view=args.view)
        if tabular:
            algo = dataclasses.replace(family_config(algo_name, "tabular"),
                                       gamma=args.tabular_gamma)
            config = dataclasses.replace(
                config, algo=algo, schedule=dataclasses.replace(
                    config.schedule, updates=args.tabular_updates,
                    eval_every=args.tabular_updates))
        if algo_name == "fiq":
            config = dataclasses.replace(config, algo=dataclasses.replace(
                config.algo, mixer=name.removeprefix("fiq-"), mode=args.fiq_mode))
        if expert_file is not None:
            config = dataclasses.replace(config, eval=dataclasses.replace(
                config.eval, expert=str(expert_file)))
        out[name] = config
    return out


def cell(metrics: dict, name: str, agent: int | None = None) -> str:
    """``mean`` of a metric (one agent's), ``-`` where the run did not report it."""
    if name not in metrics:
        return "-"
    per_seed = np.asarray(metrics[name]["per_seed"], np.float64)  # (seed[, agent])
    values = per_seed if agent is None else per_seed[:, agent]
    mean, half = mean_half_width(values)
    return f"{mean:.3f} ± {half:.3f}" if name.startswith(("policy", "heldout", "reward")) \
        else f"{mean:.2f} ± {half:.2f}"


def run_game(game: str, args: Args) -> dict:
    env = runs.make_env(game)
    kind = "cooperative" if game in COOPERATIVE else "general-sum"
    print(f"\n=== {game} ({kind}): {env.num_agents} agents, obs {env.obs_shape}, "
          f"{env.num_actions} actions", flush=True)
    expert, expert_file = expert_of(game, env, args)
    path = args.out / f"{game}_demos.npz"
    demos = report.record_demos(jax.random.key(0), env, expert, args.demo_episodes, path,
                                num_envs=8 if not getattr(env, "jittable", True) else 16)
    expert_return = episode_returns(demos).mean(axis=0)
    trained = {}
    for name, config in learner_configs(game, args, path, expert_file).items():
        t0 = time.perf_counter()
        trained[name] = runs.run(config, args.out / game / name, overwrite=True)
        print(f"{name}: {config.schedule.seeds} seeds x {config.schedule.updates} updates in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    columns = [("return_per_agent", i) for i in range(env.num_agents)]
    for metric in ("policy_kl", "reward_shaping_corr", "heldout_kl", "action_accuracy"):
        if any(metric in r.metrics for r in trained.values()):
            columns += [(metric, i) for i in range(env.num_agents)]
    header = " | ".join(f"{m} {env.agents[i]}" for m, i in columns)
    lines = [f"| row | {header} |", "|---" * (len(columns) + 1) + "|",
             "| expert (demonstrations) | " + " | ".join(
                 f"{expert_return[i]:.2f}" if m == "return_per_agent" else "-"
                 for m, i in columns) + " |"]
    for name, run in trained.items():
        lines.append(f"| {name} | " + " | ".join(cell(run.metrics, m, i) for m, i in columns)
                     + " |")
    print("\n" + "\n".join(lines))
    result = {"rows": {name: {k: run.metrics.get(k) for k, _ in columns}
                       for name, run in trained.items()},
              "expert_return": expert_return}
    cal = next((r.metrics["measures"].get("reward_shaping_corr") for r in trained.values()
                if "reward_shaping_corr" in r.metrics["measures"]), None)
    if cal is not None and "calibration" in cal:
        print(f"reward_shaping_corr calibration on {game}: {cal['calibration']}")
        result["calibration"] = cal["calibration"]
    if game == "gems" and args.gems_calibration:
        from mairl.evaluation import calibrate_game
        from mairl.metrics.calibration import format_calibration

        learned = {name: [(partial(run.algo.q_values, run.seed_params(s)), run.algo.alpha)
                          for s in range(run.config.schedule.seeds)]
                   for name, run in trained.items()}
        table = calibrate_game(env, demos=demos, expert=GEMS_SOFT_Q_PARAMS,
                               states=args.gems_states, learned=learned)
        print("\n" + format_calibration(table))
        result["gems_calibration"] = {k: c.to_dict() for k, c in table.items()}
    if hasattr(env, "close"):
        env.close()
    return result


def main(args: Args) -> None:
    report.run_games(args, run_game, note=(
        f"return: undiscounted per-agent episode return, mean ± 95% t-interval over "
        f"{args.seeds} seeds ({args.final_episodes} episodes each, Boltzmann at alpha 1); "
        "policy_kl: KL(expert || learned) under the expert occupancy (tabular, exact); "
        "reward_shaping_corr: shaping-aware correlation with the true marginal reward; "
        "heldout_kl: KL to the known expert on held-out demonstrated states."))


if __name__ == "__main__":
    main(tyro.cli(Args))
