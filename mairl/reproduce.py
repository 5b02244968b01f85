"""The MAMQL paper's comparison, reproduced: every learner on its three domains.

Haynam et al. 2025 compare MAMQL (online and offline) with IQ-Learn on joint
actions, behaviour cloning and the adversarial baselines on Gems, Overcooked
(cramped_room) and highway-env's intersection, at three sizes of expert data
each. :func:`reproduce` runs that grid with the paper's settings
(:mod:`mairl.presets`) and writes one table and two figures::

    from mairl.reproduce import ReproduceConfig, reproduce
    results = reproduce(ReproduceConfig(budget="small", out=Path("runs/repro")))
    print(results.text)

**Rows.** One row per (domain, demonstrations, expert transitions, algorithm),
each one :func:`mairl.runs.run` into its own directory
``out/<domain>/<source>/<size>/<algo>`` with checkpoints after every
evaluation: running the reproduction again skips the rows whose
``metrics.json`` is written (after checking that their config is the one asked
for) and resumes the rows that have checkpoints but no result
(:func:`mairl.runs.resume`), so a long reproduction survives interruption and
ends with the numbers of an uninterrupted one. Every number of a row is read
from its run directory.

**Demonstrations.** Gems: recorded from the shipped soft-Q expert
(``mairl/assets/gems_soft_q.npz``) and, where ``authors_file`` is given, the
MAMQL authors' own file (20,000 transitions; trained and evaluated under its
own episode rule). Overcooked: the shipped PPO expert
(``mairl/assets/overcooked_cramped_room.npz``). Intersection: the scripted
driver on ``intersection-jax`` (the JAX port of highway-env's game, so online
learners train jitted). Each domain's file is recorded once
(``out/<domain>/expert_demos.npz``) and each size takes its first whole
episodes holding at least ``size / (1 - heldout_fraction)`` transitions; the
held-out tenth of those episodes is the behavioural test set, the rest is
what the learner trains on (the table reports that count).

**What is reported.** Per agent, the true return of the learned Boltzmann
policies with a 95% t-interval over seeds (``mairl.report.per_agent``); the
expert's row is the return of the demonstrated episodes with its interval over
episodes. Behavioural error: the held-out KL(expert || learner) where the
expert's policy is known (the soft-Q experts), and the held-out greedy action
accuracy. Reward recovery: the calibrated fitted shaping-aware correlation of
:mod:`mairl.metrics.simulated` where it exists (Gems with the shipped expert,
whose policy the simulator needs); its ceiling and floor are printed beside.
Each learner's recovered reward there is the expected-form reward of its
critic, ``Q_i(s, a_i) - gamma E[V_i(s')]`` (for MA-AIRL equal to its ``g_i`` up
to shaping at the optimum; for MA-GAIL a training signal, not a reward).
Cost: wall time, environment steps and gradient updates per seed.

**Budgets.** ``full``: the paper's grid, 5 seeds, every size, 20,000 updates.
``small``: one seed, the smallest size, few updates, and a minibatch of 32
instead of 256 (the paper's critics take seconds per update at 256 on a CPU);
all seven learners on Gems, MAMQL (both) and BC on the intersection,
offline MAMQL and BC on Overcooked, offline MAMQL on the authors' file: a
check that the rows run, in under 15 minutes on two CPU cores, not the
paper's comparison. ``tiny``: a few updates on a capped size, for tests of
the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from mairl import presets, report, runs

#: The learners of the paper's comparison.
ALGORITHMS: tuple[str, ...] = ("mamql", "mamql-offline", "iq-joint", "bc", "ma-gail",
                               "ma-airl", "ml-irl")
AlgoName = Literal["mamql", "mamql-offline", "iq-joint", "bc", "ma-gail", "ma-airl", "ml-irl"]
Source = Literal["expert", "authors"]


@dataclass(frozen=True)
class DomainSpec:
    """A domain of the comparison.

    Attributes:
        env: the environment (``envs.make``).
        sizes: expert transitions the learners train on, smallest first.
        expert: ``soft-q`` (a parameter file), ``scripted`` (the env's own) or
            ``soft-vi`` (the exact logit equilibrium of a tabular game).
        expert_params: the soft-Q expert's file.
        record_envs: environments recording the demonstrations side by side.
    """

    env: str
    sizes: tuple[int, ...]
    expert: Literal["soft-q", "scripted", "soft-vi"]
    expert_params: Path | None = None
    record_envs: int = 64


def _asset(name: str) -> Path:
    from mairl.experts import GEMS_SOFT_Q_PARAMS

    return GEMS_SOFT_Q_PARAMS.with_name(name)


#: The three domains. Gems' sizes are the paper's (1k, 10k, 20k transitions);
#: Overcooked's are 10, 50 and 100 episodes of 400 steps; the intersection's
#: 1k, 5k and 10k transitions (episodes of at most 20 steps).
DOMAIN_SPECS: dict[str, DomainSpec] = {
    "gems": DomainSpec("gems", (1_000, 10_000, 20_000), "soft-q", _asset("gems_soft_q.npz"),
                       250),
    "overcooked": DomainSpec("overcooked", (4_000, 20_000, 40_000), "soft-q",
                             _asset("overcooked_cramped_room.npz"), 50),
    "intersection": DomainSpec("intersection-jax", (1_000, 5_000, 10_000), "scripted", None,
                               100),
}


@dataclass(frozen=True)
class Budget:
    """How much of the grid runs, and for how long.

    Attributes:
        seeds: seeds per row, trained side by side.
        sizes: how many of each domain's sizes, smallest first (``None``: all).
        size_cap: cap on every size (``None``: none).
        updates: gradient updates of the offline learners.
        online_updates: updates of the learners that step the game (each steps
            ``online_envs`` games per seed).
        evaluations: evaluations (and checkpoints) per run.
        batch_size: minibatch of every learner (``None``: the paper's 256).
        online_envs: games an online learner steps per update.
        eval_episodes: episodes per evaluation during training.
        final_episodes: episodes per seed of the final evaluation.
        reward_states: held-out states of the simulated reward measure.
        authors_algos: learners trained on the authors' Gems file (``None``: all).
        domain_algos: per domain, the learners the budget trains there (a domain
            not named: all of ``ReproduceConfig.algos``).
    """

    seeds: int
    sizes: int | None
    updates: int
    online_updates: int
    evaluations: int = 4
    size_cap: int | None = None
    batch_size: int | None = None
    online_envs: int = 8
    eval_episodes: int = 16
    final_episodes: int = 100
    reward_states: int = 256
    authors_algos: tuple[str, ...] | None = None
    domain_algos: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def algos_for(self, domain: str, algos: tuple[str, ...]) -> tuple[str, ...]:
        """The learners of ``algos`` this budget trains on ``domain``."""
        keep = self.domain_algos.get(domain)
        return tuple(a for a in algos if keep is None or a in keep)


BUDGETS: dict[str, Budget] = {
    "full": Budget(seeds=5, sizes=None, updates=20_000, online_updates=20_000, evaluations=10,
                   final_episodes=200, reward_states=512),
    # Every row takes 30-110 s on two CPU cores, much of it compiling (its env's
    # evaluation rollouts above all): the rows below took 14.5 minutes (docs/reproduction.md).
    "small": Budget(seeds=1, sizes=1, updates=100, online_updates=60, evaluations=2,
                    batch_size=32, online_envs=4, eval_episodes=4, final_episodes=8,
                    reward_states=64, authors_algos=("mamql-offline",),
                    domain_algos={"overcooked": ("mamql-offline", "bc"),
                                  "intersection": ("mamql", "mamql-offline", "bc")}),
    "tiny": Budget(seeds=1, sizes=1, size_cap=150, updates=4, online_updates=4, evaluations=1,
                   batch_size=16, online_envs=2, eval_episodes=2, final_episodes=2,
                   reward_states=8),
}


@dataclass(frozen=True)
class ReproduceConfig:
    """The reproduction of the MAMQL paper's comparison.

    Attributes:
        out: directory of the runs (one per row), demonstrations and ``results.json``.
        budget: ``full`` (the paper's grid), ``small`` (one seed, smallest size,
            few updates: a check, not the comparison) or ``tiny`` (seconds).
        domains: domains to run (``tiny``: the intersection only, by default).
        algos: learners to train.
        authors_file: the MAMQL authors' Gems demonstrations (gzip pickle); with
            it, Gems rows are also trained on that file.
        docs: where ``reproduction.md`` and its figures are written; ``None``: not.
        command: the command line recorded in ``reproduction.md``.
    """

    out: Path = Path("runs/reproduce-mamql")
    budget: Literal["full", "small", "tiny"] = "small"
    domains: tuple[presets.Domain, ...] = presets.DOMAINS
    algos: tuple[AlgoName, ...] = ALGORITHMS
    authors_file: Path | None = None
    docs: Path | None = None
    command: str = ""

    def __post_init__(self):
        unknown = sorted(set(self.domains) - set(DOMAIN_SPECS))
        if unknown or not self.domains:
            raise ValueError(f"ReproduceConfig.domains: expected some of {tuple(DOMAIN_SPECS)}, "
                             f"got {self.domains!r}")
        bad = sorted(set(self.algos) - set(ALGORITHMS))
        if bad or not self.algos:
            raise ValueError(f"ReproduceConfig.algos: expected some of {ALGORITHMS}, got "
                             f"{self.algos!r}")
        if self.budget not in BUDGETS:
            raise ValueError(f"ReproduceConfig.budget: expected one of {tuple(BUDGETS)}, got "
                             f"{self.budget!r}")
        if self.authors_file is not None and not Path(self.authors_file).is_file():
            raise ValueError(f"ReproduceConfig.authors_file: no such file {self.authors_file}")


@dataclass
class Row:
    """One trained row (or the expert's), with every number it reports.

    ``returns``: per agent ``(mean, 95% half-width)``; ``metrics``: the run's
    ``metrics.json`` (``None`` for the expert); ``status``: ``trained``,
    ``resumed``, ``done`` (read back) or ``expert``.
    """

    domain: str
    source: str
    size: int
    algo: str
    returns: list[tuple[float, float]]
    dir: Path | None = None
    metrics: dict | None = None
    status: str = "trained"
    expert_transitions: int = 0
    env_steps: int = 0
    reward_corr: float | None = None
    over: str = ""

    def cells(self) -> list:
        """The table cells after the returns: reward recovery, behaviour, cost."""
        m = self.metrics or {}
        kl = m.get("heldout_kl", {}).get("mean")
        acc = m.get("action_accuracy", {}).get("mean")
        return [self.expert_transitions or None, self.reward_corr,
                None if kl is None else float(np.mean(kl)),
                None if acc is None else float(np.mean(acc)),
                m.get("wall_time_s"), float(self.env_steps) if m else None,
                float(m["updates"]) if m else None]


#: The columns after the per-agent returns (:meth:`Row.cells`).
COLUMNS = [report.Column("expert trans", 0), report.Column("reward corr", 3),
           report.Column("held-out KL", 3), report.Column("action acc", 3),
           report.Column("wall s", 0), report.Column("env steps", 0),
           report.Column("updates", 0)]


@dataclass
class Results:
    """What :func:`reproduce` measured: rows by domain, the calibrations of the
    reward measure, the config and the time taken."""

    config: ReproduceConfig
    rows: dict[str, list[Row]] = field(default_factory=dict)
    calibration: dict[str, dict] = field(default_factory=dict)
    agents: dict[str, list[str]] = field(default_factory=dict)
    wall_s: float = 0.0

    def table(self, domain: str) -> str:
        """The domain's rows as a text table (``mairl.report.format_table``)."""
        rows = {_label(r): [*r.returns, *r.cells()] for r in self.rows[domain]}
        columns = [*report.agent_columns("return", self.agents[domain]), *COLUMNS]
        over = {_label(r): r.over for r in self.rows[domain]}
        return report.format_table(rows, columns, over=over, title=f"== {domain}")

    @property
    def text(self) -> str:
        """Every domain's table, one after another, as printed."""
        return "\n\n".join(self.table(d) for d in self.rows)


def _label(row: Row) -> str:
    return f"{row.source}/{row.size} {row.algo}"


# -- the pieces ------------------------------------------------------------------------------------
def sizes_of(spec: DomainSpec, budget: Budget) -> tuple[int, ...]:
    """The sizes a budget runs on a domain."""
    sizes = spec.sizes if budget.sizes is None else spec.sizes[: budget.sizes]
    if budget.size_cap is not None:
        sizes = tuple(sorted({min(s, budget.size_cap) for s in sizes}))
    return sizes


def episodes_for(lengths: np.ndarray, size: int, heldout_fraction: float) -> int:
    """The number of first episodes (at least 2) whose transitions reach
    ``size / (1 - heldout_fraction)``, or every episode if they do not."""
    need = size / (1.0 - heldout_fraction)
    cum = np.cumsum(lengths)
    k = int(np.searchsorted(cum, need) + 1)
    return int(min(max(k, 2), len(lengths)))


def record_expert_demos(domain: str, out: Path, transitions: int, *,
                        log: Callable[[str], None] = print) -> Path:
    """The domain's expert demonstrations with at least ``transitions`` transitions,
    recorded once into ``out / domain / expert_demos.npz`` (kept when already
    large enough)."""
    from mairl.data import collect
    from mairl.experts import expert_alpha_gamma, make_expert

    spec = DOMAIN_SPECS[domain]
    path = out / domain / "expert_demos.npz"
    env = runs.make_env(spec.env)
    if path.is_file() and runs.load_demos(path, env).num_transitions >= transitions:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {} if spec.expert_params is None else {"params_path": spec.expert_params}
    expert = make_expert(env, spec.expert, **kwargs)
    alpha, gamma = expert_alpha_gamma(spec.expert, **kwargs)
    from mairl.data import concatenate

    t0 = time.perf_counter()
    parts, total, mean_len = [], 0, env.max_steps / 2  # a first guess of the episode length
    while total < transitions:  # rounds of whole episodes until there are enough
        episodes = max(2, math.ceil(1.1 * (transitions - total) / mean_len))
        part = collect(jax.random.key(len(parts)), env, expert, episodes,
                       num_envs=spec.record_envs, expert_alpha=alpha, expert_gamma=gamma)
        parts.append(part)
        total += part.num_transitions
        mean_len = total / sum(p.num_episodes for p in parts)
    demos = parts[0] if len(parts) == 1 else concatenate(parts)
    demos.save(path)
    log(f"{domain}: recorded {demos.num_episodes} expert episodes, {demos.num_transitions} "
        f"transitions in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


def row_config(domain: str, algo: str, demos: Path, episodes: int, budget: Budget, *,
               expert_params: Path | None) -> runs.RunConfig:
    """The run of one row: the paper's preset for ``domain`` (:mod:`mairl.presets`),
    the budget's batch, updates and environments, checkpoints after every evaluation."""
    from mairl.algos import ALGOS

    settings = presets.paper_settings(domain)
    names = {f.name for f in dataclasses.fields(ALGOS[algo].config)}
    overrides: dict[str, Any] = {}
    if budget.batch_size is not None:
        overrides["batch_size"] = budget.batch_size
        if "reward_batch_size" in names:
            overrides["reward_batch_size"] = budget.batch_size
    if "num_envs" in names:
        overrides["num_envs"] = budget.online_envs
    if algo == "iq-joint":
        overrides["mode"] = "online"  # the paper's "IQL MA" learns online
    config = presets.paper_config(algo, domain, **overrides)
    online = algo not in ("mamql-offline", "bc")
    updates = budget.online_updates if online else budget.updates
    every = max(updates // budget.evaluations, 1)
    updates = every * budget.evaluations
    return runs.RunConfig(
        algo=config,
        env=runs.EnvConfig(DOMAIN_SPECS[domain].env, view=settings.view),
        data=runs.DataConfig(demos=str(demos), max_demo_episodes=episodes),
        schedule=runs.ScheduleConfig(seeds=budget.seeds, updates=updates, eval_every=every,
                                     checkpoint_every=every),
        eval=runs.EvalConfig(eval_episodes=budget.eval_episodes,
                             final_episodes=budget.final_episodes,
                             expert=None if expert_params is None else str(expert_params)),
    )


def env_steps(config: runs.RunConfig, env: Any) -> int:
    """Environment steps one seed of the run takes while training (the
    warm-up of the soft-Q based learners included)."""
    needs = runs.build_algo(config, env).needs
    warmup = getattr(config.algo, "warmup_steps", 0)
    return int(needs.num_envs * (config.schedule.updates + warmup))


def run_row(config: runs.RunConfig, out: Path) -> tuple[dict, str]:
    """Train the row into ``out`` or pick it up where it is: ``(metrics, status)``.

    A finished row (``metrics.json`` written) is read back, once its saved config
    is checked to be ``config``; one with checkpoints and no result resumes.

    Raises:
        ValueError: the directory holds a run of another config (names the fields).
    """
    metrics_path = out / "metrics.json"
    if (out / "config.json").is_file():
        diffs = runs.config_differences(runs.read_config(out), config)
        if diffs:
            raise ValueError(f"reproduce: {out} holds a run of another config ("
                             + "; ".join(diffs) + "); remove it or choose another --out")
    if metrics_path.is_file():
        return json.loads(metrics_path.read_text()), "done"
    ckpt = out / "checkpoints"
    if ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir()):
        return runs.resume(out, config).metrics, "resumed"
    return runs.run(config, out, overwrite=True).metrics, "trained"


def _returns(metrics: dict) -> list[tuple[float, float]]:
    per_seed = np.asarray(metrics["return_per_agent"]["per_seed"])  # (seed, agent)
    return report.per_agent(per_seed)


def gems_reward_corr(env: Any, demos: Any, runs_by_algo: dict[str, Path], states: int,
                     expert_params: Path) -> tuple[dict[str, float], dict]:
    """The calibrated fitted shaping-aware correlation (``mairl.metrics.simulated``)
    of every run's critic on ``states`` demonstrated states: per algorithm the mean
    over seeds and agents, and the calibration (``MetricCalibration.to_dict``)."""
    from mairl.evaluation import calibrate_game

    learned = {}
    for algo, out in runs_by_algo.items():
        run = runs.load_run(out)
        fns = []
        for s in range(run.config.schedule.seeds):
            params = run.seed_params(s)
            fns.append((lambda obs, p=params, a=run.algo: a.q_values(p, obs), run.algo.alpha))
        learned[algo] = fns
    cal = calibrate_game(env, demos=demos, expert=expert_params, states=states,
                         learned=learned)
    (metric,) = cal.values()
    return ({algo: float(np.mean(metric.scores[algo])) for algo in learned},
            metric.to_dict())


# -- the whole -------------------------------------------------------------------------------------
def reproduce(config: ReproduceConfig, *, log: Callable[[str], None] = print) -> Results:
    """Run (or pick up) every row of the comparison and write ``results.json``
    (and ``reproduction.md`` with its figures where ``config.docs``)."""
    from mairl.data import episode_returns

    t_start = time.perf_counter()
    budget = BUDGETS[config.budget]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(config)
    heldout = runs.DataConfig().heldout_fraction
    for domain in config.domains:
        spec = DOMAIN_SPECS[domain]
        env = runs.make_env(spec.env)
        results.agents[domain] = list(env.agents)
        sizes = sizes_of(spec, budget)
        sources: list[tuple[str, Path, Path | None, tuple[str, ...]]] = []
        expert_path = record_expert_demos(domain, out, math.ceil(max(sizes) / (1 - heldout)) + 1,
                                          log=log)
        sources.append(("expert", expert_path, spec.expert_params,
                        budget.algos_for(domain, tuple(config.algos))))
        if domain == "gems" and config.authors_file is not None:
            chosen = tuple(a for a in config.algos
                           if budget.authors_algos is None or a in budget.authors_algos)
            sources.append(("authors", Path(config.authors_file), None, chosen))
        rows: list[Row] = []
        for source, path, expert_params, algos in sources:
            demos = runs.load_demos(path, env)
            ep_returns = episode_returns(demos)  # (episode, agent)
            rows.append(Row(domain, source, demos.num_transitions, "expert",
                            report.per_agent(ep_returns), status="expert",
                            over=f"{len(ep_returns)} demonstrated episodes"))
            for size in sizes:
                episodes = episodes_for(demos.episode_lengths(), size, heldout)
                trained: dict[str, Path] = {}
                for algo in algos:
                    cfg = row_config(domain, algo, path, episodes, budget,
                                     expert_params=expert_params)
                    where = out / domain / source / str(size) / algo
                    t0 = time.perf_counter()
                    metrics, status = run_row(cfg, where)
                    log(f"{domain}/{source}/{size} {algo}: {status} "
                        f"({time.perf_counter() - t0:.0f} s)")
                    trained[algo] = where
                    rows.append(Row(domain, source, size, algo, _returns(metrics), where,
                                    metrics, status, int(metrics["expert_transitions"]),
                                    env_steps(cfg, env),
                                    over=f"{cfg.schedule.seeds} seed(s) x "
                                         f"{cfg.eval.final_episodes} episodes"))
                if domain == "gems" and source == "expert" and trained:
                    rest = demos.select_episodes(slice(episodes, None))
                    sample = rest if rest.num_transitions >= 8 else demos
                    t0 = time.perf_counter()
                    corr, cal = gems_reward_corr(env, sample, trained, budget.reward_states,
                                                 spec.expert_params)
                    cal["learners"] = corr
                    results.calibration[f"{domain}/{source}/{size}"] = cal
                    for row in rows:  # a number only where its calibration says it can be read
                        if (row.source == source and row.size == size and row.algo in corr
                                and cal["informative"]):
                            row.reward_corr = corr[row.algo]
                    log(f"{domain}/{source}/{size}: reward measure in "
                        f"{time.perf_counter() - t0:.0f} s")
        results.rows[domain] = rows
    results.wall_s = time.perf_counter() - t_start
    write_results(results, out / "results.json")
    if config.docs is not None:
        from mairl.plots import plot_reproduction

        figures = plot_reproduction(results, Path(config.docs) / "reproduction")
        write_markdown(results, Path(config.docs) / "reproduction.md", figures)
    return results


def write_results(results: Results, path: Path) -> None:
    """``results.json``: the config, every row's numbers and run directory, the
    calibrations and the total time."""
    def row(r: Row) -> dict:
        return {"domain": r.domain, "source": r.source, "size": r.size, "algo": r.algo,
                "returns": r.returns, "dir": None if r.dir is None else str(r.dir),
                "status": r.status, "expert_transitions": r.expert_transitions,
                "env_steps": r.env_steps, "reward_corr": r.reward_corr,
                "cells": r.cells(), "over": r.over}

    cfg = {k: str(v) for k, v in dataclasses.asdict(results.config).items()}
    path.write_text(json.dumps({
        "config": cfg, "budget": dataclasses.asdict(BUDGETS[results.config.budget]),
        "rows": {d: [row(r) for r in rows] for d, rows in results.rows.items()},
        "calibration": results.calibration, "wall_s": results.wall_s}, indent=2) + "\n")


def write_markdown(results: Results, path: Path, figures: list[Path]) -> None:
    """``reproduction.md``: how it was run, the tables, the figures, and what the
    numbers can and cannot say."""
    from mairl.utils import machine

    cfg = results.config
    budget = BUDGETS[cfg.budget]
    lines = ["# Reproducing the MAMQL comparison", ""]
    if cfg.budget != "full":
        lines += [f"!!! warning \"budget {cfg.budget}: not the paper's comparison\"",
                  f"    One seed, the smallest data size, {budget.updates} offline and "
                  f"{budget.online_updates} online updates, minibatch {budget.batch_size}. "
                  "These rows check that every learner runs end to end on every domain; "
                  "they say nothing about which method is better.", ""]
    lines += [f"Measured on {time.strftime('%Y-%m-%d', time.gmtime())}, {machine()}, "
              f"{results.wall_s / 60:.1f} minutes in all.", "", "```", cfg.command or
              f"mairl reproduce mamql --budget {cfg.budget}", "```", ""]
    for domain in results.rows:
        lines += [f"## {domain}", "", "```", results.table(domain), "```", ""]
    lines += [
        "Columns: `return <agent>`: the true per-agent return of the learned Boltzmann "
        "policies, mean ± 95% t-interval over seeds (blank interval with one seed); for the "
        "expert, over its demonstrated episodes. `expert trans`: transitions the learner "
        "trained on (the held-out tenth of the episodes excluded). `reward corr`: the "
        "calibrated fitted shaping-aware correlation of the critic's expected-form reward "
        "with the true marginal reward (Gems with the shipped expert only; blank where no "
        "calibrated measure exists: the authors' file, whose expert policy is unknown, "
        "Overcooked and the intersection). `held-out KL`: KL(expert || learner) on "
        "held-out demonstrated states (soft-Q experts only). `action acc`: greedy action "
        "equals the demonstrated one on held-out states. `env steps`, `updates`: per seed.",
        ""]
    for key, cal in results.calibration.items():
        scores = ", ".join(f"{a} {v:.3f}" for a, v in cal.get("learners", {}).items())
        verdict = ("informative: the column shows it" if cal["informative"] else
                   "not informative on this sample, so the column is left blank; the "
                   f"learners' scores, not to be read as reward recovery: {scores}")
        lines.append(f"Calibration of `reward corr` on {key}: ceiling {cal['ceiling']:.3f} "
                     f"(the worst score of the true reward up to shaping), floor "
                     f"{cal['floor']:.3f} (random rewards); {verdict}.")
    lines.append("")
    for fig in figures:
        lines += [f"![{fig.stem}](reproduction/{fig.name})", ""]
    lines += ["## Settings", "",
              "The paper's settings per domain are `mairl.presets.PAPER` (critic, Adam 1e-3, "
              "minibatch 256, gamma 0.99, replay 16,600; Gems: the `gems-paper` critic with "
              "dropout 0.2 after each convolution and L2 1e-5). What the paper leaves open "
              "and this library chose is listed in `mairl.presets`. Online learners step "
              f"{budget.online_envs} games per seed per update; MA-GAIL, MA-AIRL and ML-IRL "
              "get the same updates and environment steps as online MAMQL and IQ-Learn.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


__all__ = ["ALGORITHMS", "BUDGETS", "Budget", "DOMAIN_SPECS", "DomainSpec", "ReproduceConfig",
           "Results", "Row", "episodes_for", "record_expert_demos", "reproduce", "row_config",
           "run_row", "sizes_of", "write_markdown", "write_results"]
