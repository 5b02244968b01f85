"""What the experiment scripts share: their standard arguments, the learners they
train, the comparison of an expert and random play with the learned agents,
result tables with 95% intervals, and throughput timing.

A comparison script is configuration plus these calls::

    args = tyro.cli(Args)                                  # a subclass of ExperimentArgs
    env = runs.make_env(args.env)
    record_demos(jax.random.key(0), env, expert, args.demo_episodes, path)
    learners = train_learners(args, env, path)             # one mairl.runs.run per learner
    measured = compare(measure, baselines(env, expert), learners,
                       episodes=args.baseline_episodes, seed_episodes=args.final_episodes)
    rows = {name: per_agent(m.stats["returns"]) for name, m in measured.items()}
    print(format_table(rows, agent_columns("return", env.agents)))

Intervals are Student-t intervals of the mean (:func:`mairl.metrics.mean_half_width`)
over the first axis of what is measured: over episodes for a fixed policy
(``(episode, ...)``), over seeds for a learner (``(seed, episode, ...)``, each
seed averaged over its episodes first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import numpy as np

from mairl.metrics import mean_half_width

#: The learners every comparison script trains: offline MAMQL, IQ-Learn with
#: joint-action critics (online), behaviour cloning.
LEARNERS = ("mamql-offline", "iq-joint", "bc")
#: Learners an experiment may ask for with ``--algos`` (``mamql``: online MAMQL).
Learner = Literal["mamql", "mamql-offline", "iq-joint", "bc"]

#: A mean and the half-width of its 95% interval.
Interval = tuple[float, float]
#: ``measure(key, policy_fn, num_episodes) -> {name: (episode, ...)}``.
MeasureFn = Callable[[jax.Array, Callable, int], Mapping[str, Any]]

#: Key of fixed policy ``i`` of :func:`compare` is ``key(BASELINE_KEY + i)``, of a
#: learner's seed ``s`` is ``key(SEED_KEY + s)``.
BASELINE_KEY, SEED_KEY = 10_000, 20_000


# -- arguments ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentArgs:
    """The arguments of a script that compares an expert, random play and learners
    trained on the expert's demonstrations. Scripts subclass it, giving their own
    defaults and adding their own fields; ``tyro.cli`` builds it from flags.

    Attributes:
        out: directory of the runs (one per learner), demonstrations and ``summary.json``.
        seeds: training seeds per learner, trained side by side in one run.
        updates: gradient updates per seed.
        online_updates: updates of the learners that step the game online
            (``iq-joint``: each update steps ``online_envs`` games per seed);
            ``None``: ``updates``.
        online_envs: games each seed of an online learner steps per update.
        learning_rate: Adam step size of every learner.
        hidden: hidden widths of every learner's MLP critic.
        gamma: discount of every learner.
        demo_episodes: expert episodes recorded for training.
        baseline_episodes: episodes of the expert and random rows.
        final_episodes: episodes per seed played by each learned policy.
        algos: learners to train (none: only the expert and random rows).
    """

    out: Path = Path("runs/experiment")
    seeds: int = 3
    updates: int = 2000
    online_updates: int | None = None
    online_envs: int = 1
    learning_rate: float = 5e-4
    hidden: tuple[int, ...] = (128, 128)
    gamma: float = 0.99
    demo_episodes: int = 200
    baseline_episodes: int = 100
    final_episodes: int = 50
    algos: tuple[Learner, ...] = LEARNERS

    def updates_of(self, online: bool) -> int:
        """Updates of a learner, online (stepping the game) or not."""
        if online and self.online_updates is not None:
            return self.online_updates
        return self.updates


@dataclass(frozen=True)
class RandomGames:
    """A suite of random general-sum tabular games (``envs.tabular.random_game``) and
    demonstrations of an expert policy on each, for scripts that score learners
    against the games' exact oracle. Scripts subclass it with their own fields.

    Attributes:
        agents: agent counts to run, one set of games each.
        states: states of every random game.
        actions: actions of every agent.
        transitions: demonstrated transitions per game.
        episode_length: steps of every demonstrated episode (``transitions`` must
            be a multiple of it).
        games: random games per agent count (game ``g`` is ``random_game(key(g))``).
    """

    agents: tuple[int, ...] = (2, 3)
    states: int = 20
    actions: int = 3
    transitions: int = 50_000
    episode_length: int = 100
    games: int = 3

    def __post_init__(self):
        from mairl.algos.common import check_fields

        check_fields(self, [
            ("agents", all(n >= 1 for n in self.agents), "positive agent counts"),
            ("states", self.states >= 1, ">= 1"),
            ("actions", self.actions >= 1, ">= 1"),
            ("episode_length", self.episode_length >= 1, ">= 1"),
            ("transitions", self.transitions >= 1
             and self.transitions % max(self.episode_length, 1) == 0,
             f"a positive multiple of episode_length ({self.episode_length})"),
            ("games", self.games >= 0, ">= 0"),
        ])

    def game(self, num_agents: int, index: int):
        """Game ``index`` of ``num_agents`` agents: ``random_game(key(index), ...)``,
        its episodes ``episode_length`` steps long."""
        from envs.tabular import random_game

        return random_game(jax.random.key(index), self.states, self.actions, num_agents,
                           max_steps=self.episode_length)

    def demonstrations(self, key: jax.Array, game: Any, policy: jax.Array):
        """``transitions`` demonstrated transitions of the tabular ``policy (agent,
        state, action)`` on ``game``: complete episodes from its initial distribution
        (``mairl.data.collect``)."""
        from mairl.data import collect
        from mairl.experts import tabular_policy_fn

        return collect(key, game, tabular_policy_fn(game, policy),
                       self.transitions // self.episode_length)


def summary_args(args: Any) -> dict[str, str]:
    """A dataclass of arguments as ``{field: str(value)}`` for ``summary.json``."""
    return {f.name: str(getattr(args, f.name)) for f in dataclasses.fields(args)}


def write_summary(path: str | Path, args: Any, **results: Any) -> None:
    """``summary.json``: the arguments and ``results`` (NumPy values as lists)."""

    def plain(x):
        if isinstance(x, np.ndarray | np.generic | jax.Array):
            return np.asarray(x).tolist()
        raise TypeError(f"write_summary: {type(x).__name__} is not JSON-serializable")

    Path(path).write_text(json.dumps({"args": summary_args(args), **results}, indent=2,
                                     default=plain) + "\n")


# -- learners -------------------------------------------------------------------------------------
def learner_config(args: ExperimentArgs, name: str, env: str, demos: str | Path, *,
                   online: bool = False, evaluations: int = 1, eval_episodes: int = 1,
                   final_episodes: int | None = None, view: str = "global",
                   **algo_values: Any):
    """The :class:`mairl.runs.RunConfig` of learner ``name`` on ``env`` from ``demos``.

    Every learner gets the same critic (MLP of ``args.hidden`` on the observations
    of ``view``, by default the raw ones), step size (of the critics and, where
    there are any, the actors) and discount, and the further values
    ``algo_values`` (e.g. ``alpha``, ``batch_size``); the fields an algorithm's
    config lacks (``online_envs`` for behaviour cloning) are left out.
    ``online`` learners get ``args.updates_of(True)`` updates. Training is
    evaluated ``evaluations`` times (``eval_episodes`` each); the run's final
    evaluation plays ``final_episodes`` per seed (default ``args.final_episodes``).
    """
    from mairl import runs
    from mairl.algos import ALGOS

    spec = ALGOS[name].config
    fields = {f.name for f in dataclasses.fields(spec)}
    values = {"critic": "mlp", "hidden": tuple(args.hidden), "learning_rate": args.learning_rate,
              "actor_learning_rate": args.learning_rate, "gamma": args.gamma,
              "num_envs": args.online_envs, **algo_values}
    updates = args.updates_of(online)
    return runs.RunConfig(
        algo=spec(**{k: v for k, v in values.items() if k in fields}),
        env=runs.EnvConfig(env, view=view),
        data=runs.DataConfig(demos=str(demos)),
        schedule=runs.ScheduleConfig(seeds=args.seeds, updates=updates,
                                     eval_every=max(updates // evaluations, 1)),
        eval=runs.EvalConfig(
            eval_episodes=eval_episodes,
            final_episodes=args.final_episodes if final_episodes is None else final_episodes),
    )


def is_online(config: Any, env: Any) -> bool:
    """Whether the run's algorithm steps the game while it learns (``needs.num_envs``)."""
    from mairl.runs import build_algo

    return build_algo(config, env).needs.num_envs > 0


#: Algorithm fields read only by learners that step the game while they learn.
ONLINE_ONLY = ("num_envs", "buffer_size")


def run_config(args: ExperimentArgs, name: str, env: Any, demos: str | Path,
               **config_kwargs: Any):
    """The config :func:`train_learners` trains learner ``name`` with: that of
    :func:`learner_config`, with the online learners' updates where the learner
    steps ``env`` while it learns."""
    config = learner_config(args, name, env.name, demos, **config_kwargs)
    if is_online(config, env):
        config = learner_config(args, name, env.name, demos, online=True, **config_kwargs)
    return config


def reuse_learners(args: ExperimentArgs, env: Any, demos: str | Path, *,
                   out: Path | None = None, **config_kwargs: Any) -> dict[str, Any]:
    """The finished runs ``out / name`` (default ``args.out / name``) of the learners
    of ``args.algos`` that have one (a ``metrics.json``), for measuring them again
    instead of training them; a learner without one is left out.

    Each reused run must have been trained as :func:`train_learners` would train
    it now (the same ``args``, ``demos`` and ``config_kwargs``): its algorithm,
    game, demonstrations and schedule must equal those of :func:`run_config`
    (the demonstrations compared as resolved paths). Not compared: the
    evaluation settings (a comparison measures the runs afresh) and, for a
    learner that steps no game, the fields of :data:`ONLINE_ONLY` (e.g. the
    ``num_envs`` its config records from ``--online-envs`` but never reads).

    Raises:
        ValueError: a run differs, naming it and every field that differs
            (``section.field: the run's -> the flags'``).

    Returns:
        ``{name: mairl.runs.Run}``, in the order of ``args.algos``.
    """
    from mairl import runs

    out = Path(args.out if out is None else out)
    found = {}
    for name in args.algos:
        if not (out / name / "metrics.json").is_file():
            continue
        run = runs.load_run(out / name)
        expected = run_config(args, name, env, demos, **config_kwargs)
        saved = run.config
        if (saved.data.demos is not None and expected.data.demos is not None
                and Path(saved.data.demos).resolve() == Path(expected.data.demos).resolve()):
            expected = dataclasses.replace(
                expected, data=dataclasses.replace(expected.data, demos=saved.data.demos))
        expected = dataclasses.replace(expected, eval=saved.eval)
        if not is_online(saved, env):
            inert = {f: getattr(saved.algo, f) for f in ONLINE_ONLY if hasattr(saved.algo, f)}
            expected = dataclasses.replace(expected,
                                           algo=dataclasses.replace(expected.algo, **inert))
        diffs = runs.config_differences(saved, expected)
        if diffs:
            raise ValueError(f"reuse_runs: {out / name} was trained otherwise than these "
                             f"flags ask (the run's -> the flags'): {'; '.join(diffs)}; "
                             "give the flags it was trained with (its config.json), or "
                             "another --out")
        found[name] = run
    return found


def train_learners(args: ExperimentArgs, env: Any, demos: str | Path, *, out: Path | None = None,
                   progress: bool = True, **config_kwargs: Any) -> dict[str, Any]:
    """Train every learner of ``args.algos`` (``mairl.runs.run`` into ``out / name``,
    default ``args.out / name``, replacing an earlier run there); print a line
    before and after each. ``config_kwargs`` go to :func:`learner_config`.

    Returns:
        ``{name: mairl.runs.Run}``.
    """
    from mairl import runs
    from mairl.utils import progress_bar

    out = Path(args.out if out is None else out)
    trained = {}
    for name in args.algos:
        config = run_config(args, name, env, demos, **config_kwargs)
        online = is_online(config, env)
        sched = config.schedule
        steps = (f", {args.online_envs} game(s) per seed stepped per update" if online else "")
        print(f"\n== {name}: {sched.seeds} seeds x {sched.updates} updates{steps}", flush=True)
        bar = (progress_bar(sched.updates // sched.eval_every, "chunks") if progress
               else contextlib.nullcontext())
        with bar as update:
            run = runs.run(config, out / name, progress=update, overwrite=True)
        print(f"{name}: trained in {run.metrics['wall_time_s']:.0f} s; {heldout_line(run)}",
              flush=True)
        trained[name] = run
    return trained


def heldout_line(run: Any) -> str:
    """The held-out figures of a finished run, per agent (seed means): the action
    accuracy of a discrete learner; the log-likelihood and the action MSE of a
    continuous one."""
    found = run.metrics
    if "action_mse" in found and "action_accuracy" not in found:
        ll = np.round(found["heldout_log_likelihood"]["mean"], 2).tolist()
        mse = np.round(found["action_mse"]["mean"], 4).tolist()
        return f"held-out log-likelihood per agent {ll}, action MSE {mse}"
    acc = found.get("action_accuracy", {}).get("mean")
    acc = np.round(acc, 3).tolist() if acc is not None else "n/a"
    return f"held-out action accuracy per agent {acc}"


class CurvePrinter:
    """A ``mairl.runs`` tracker that prints one line per evaluation: the time since
    ``t0`` (``time.perf_counter``), the update, and ``line(means)``, with ``means``
    ``{curve: mean over the first seed's agents}`` at that evaluation."""

    def __init__(self, line: Callable[[dict[str, float]], str], t0: float | None = None):
        self.line = line
        self.t0 = time.perf_counter() if t0 is None else t0

    def log(self, curves: dict, updates: np.ndarray) -> None:
        """Print a line per evaluation of ``curves`` (``name -> (seed, eval, ...)``)."""
        for c, update in enumerate(updates):
            means = {name: float(np.mean(value[0, c])) for name, value in curves.items()}
            print(f"  {time.perf_counter() - self.t0:7.1f} s  update {int(update):6d}  "
                  f"{self.line(means)}", flush=True)

    def close(self) -> None:
        """Nothing to flush: every line is printed as it comes."""


@dataclass(frozen=True)
class ExpertArgs:
    """The arguments of a script that trains a forward learner on the true rewards
    as an expert (:func:`train_forward`); scripts subclass it, adding the
    learner's config and the game and giving their own defaults.

    Attributes:
        updates: updates of the learner.
        eval_every: updates between progress reports (and checkpoints).
        eval_episodes: episodes of each progress evaluation.
        final_episodes: episodes of each row of the final comparison.
        seed: random seed.
        run_dir: the run directory (``mairl.runs``), replaced by a new run.
        resume: go on with the interrupted run in ``run_dir`` instead.
    """

    updates: int = 1000
    eval_every: int = 100
    eval_episodes: int = 4
    final_episodes: int = 32
    seed: int = 0
    run_dir: Path = Path("runs/expert")
    resume: bool = False


def train_forward(algo: Any, env: str, args: ExpertArgs, trackers: Sequence[Any] = ()) -> Any:
    """Train a forward learner (``algo``, a config of ``mairl.algos`` trained on the
    true rewards) on ``env``'s raw observations, one seed, as ``args`` say: a
    ``mairl.runs.run`` into ``args.run_dir`` (replacing an earlier run there) with
    a checkpoint at every evaluation, or with ``args.resume`` the interrupted run
    there continued (``mairl.runs.resume``).

    Returns:
        the finished ``mairl.runs.Run``.
    """
    from mairl import runs

    config = runs.RunConfig(
        algo=algo,
        env=runs.EnvConfig(env, view="global"),
        schedule=runs.ScheduleConfig(seeds=1, seed=args.seed, updates=args.updates,
                                     eval_every=args.eval_every,
                                     checkpoint_every=args.eval_every),
        eval=runs.EvalConfig(eval_episodes=args.eval_episodes,
                             final_episodes=max(args.eval_episodes, 2)),
    )
    if args.resume:
        return runs.resume(args.run_dir, config, trackers=list(trackers))
    return runs.run(config, args.run_dir, trackers=list(trackers), overwrite=True)


# -- demonstrations and policies ------------------------------------------------------------------
def record_demos(key: jax.Array, env: Any, policy_fn: Callable, episodes: int, path: str | Path,
                 *, num_envs: int = 16):
    """Record ``episodes`` episodes of ``policy_fn`` (``mairl.data.collect``), save them
    to ``path`` and print their size and mean return per agent."""
    from mairl.data import collect, episode_returns

    t0 = time.perf_counter()
    demos = collect(key, env, policy_fn, episodes, num_envs=num_envs)
    demos.save(path)
    returns = np.round(episode_returns(demos).mean(axis=0), 2).tolist()
    print(f"demonstrations: {demos.num_episodes} episodes, {demos.num_transitions} transitions "
          f"in {time.perf_counter() - t0:.0f} s, mean return per agent {returns} -> {path}",
          flush=True)
    return demos


def baselines(env: Any, expert: Callable, **more: Callable) -> dict[str, Callable]:
    """``{"expert": expert, "random": uniform actions, **more}``. On host-side games
    (``env.jittable`` false) the random policy is marked ``host`` (NumPy, not jitted)."""
    from mairl.experts import make_expert

    uniform = make_expert(env, "random")
    if not getattr(env, "jittable", True):
        uniform.host = True
    return {"expert": expert, "random": uniform, **more}


class Measured(NamedTuple):
    """What :func:`compare` measured of one row: ``stats`` ``{name: (episode, ...)}``
    for a fixed policy, ``{name: (seed, episode, ...)}`` for a learner; ``over``
    says which (``"100 episodes"``, ``"3 seeds x 30 episodes"``)."""

    stats: dict[str, np.ndarray]
    over: str


def compare(measure: MeasureFn, policies: Mapping[str, Callable], learners: Mapping[str, Any],
            *, episodes: int, seed_episodes: int, greedy: bool = False) -> dict[str, Measured]:
    """Measure fixed policies and every seed of learned ones the same way.

    ``measure(key, policy_fn, num_episodes)`` returns per-episode values. Fixed
    policy ``i`` of ``policies`` plays ``episodes`` episodes from
    ``key(BASELINE_KEY + i)``; seed ``s`` of each run in ``learners``
    (``mairl.runs.Run``) plays ``seed_episodes`` from ``key(SEED_KEY + s)`` with its
    Boltzmann policy (argmax with ``greedy``). Rows keep the order of
    ``policies``, then ``learners``; a line is printed per row.
    """

    def host(stats):
        return {name: np.asarray(value) for name, value in jax.device_get(dict(stats)).items()}

    rows = {}
    for i, (name, policy_fn) in enumerate(policies.items()):
        t0 = time.perf_counter()
        rows[name] = Measured(host(measure(jax.random.key(BASELINE_KEY + i), policy_fn,
                                           episodes)), f"{episodes} episodes")
        print(f"{name}: {rows[name].over} in {time.perf_counter() - t0:.0f} s", flush=True)
    for name, run in learners.items():
        t0 = time.perf_counter()
        seeds = run.config.schedule.seeds
        per_seed = [host(measure(jax.random.key(SEED_KEY + s), run.policy_fn(s, greedy=greedy),
                                 seed_episodes)) for s in range(seeds)]
        stats = {k: np.stack([p[k] for p in per_seed]) for k in per_seed[0]}
        rows[name] = Measured(stats, f"{seeds} seeds x {seed_episodes} episodes")
        print(f"{name}: {rows[name].over} in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def returns_measure(env: Any) -> MeasureFn:
    """The ``measure`` of :func:`compare` by return: ``{"returns": (episode, agent)}``,
    each episode's undiscounted per-agent return (:func:`mairl.metrics.evaluate_returns`)."""
    from mairl.metrics import evaluate_returns

    def measure(key, policy_fn, episodes):
        return {"returns": evaluate_returns(key, env, policy_fn, episodes)}

    return measure


def compare_returns(env: Any, expert: Callable, learners: Mapping[str, Any],
                    args: ExperimentArgs, *, title: str,
                    more: Mapping[str, Callable] | None = None,
                    greedy: bool = False) -> dict[str, dict[str, Any]]:
    """Compare ``expert``, uniformly random play, the further fixed policies ``more``
    (``{row: policy_fn}``, e.g. a trivial policy that sets a floor) and ``learners``
    (``{name: mairl.runs.Run}``) by their per-agent return (:func:`compare` with
    :func:`returns_measure`: ``args.baseline_episodes`` episodes of each fixed
    policy, ``args.final_episodes`` of each learner's seed) and print the table.

    With ``greedy`` the learners play their greedy actions (the argmax; the
    actors' means for continuous actions): pass the expert's own greedy policy
    as ``expert``, so that both sides act by the same rule. The fixed rows keep
    their keys (the same episodes' starts as without ``greedy``); the random row
    stays uniform play.

    Returns:
        ``{row: {"return_per_agent": [(mean, half-width) per agent], "over": what
        the intervals are over}}``.
    """
    print()
    measured = compare(returns_measure(env), baselines(env, expert, **(more or {})), learners,
                       episodes=args.baseline_episodes,
                       seed_episodes=args.final_episodes, greedy=greedy)
    rows = {name: {"return_per_agent": per_agent(m.stats["returns"]), "over": m.over}
            for name, m in measured.items()}
    print("\n" + format_table({name: r["return_per_agent"] for name, r in rows.items()},
                              agent_columns("", env.agents),
                              over={name: r["over"] for name, r in rows.items()}, title=title))
    return rows


def normalized_returns(rows: Mapping[str, Mapping[str, Any]], *, floor: str,
                       expert: str = "expert") -> dict[str, list[float]]:
    """Each row's mean return per agent on the scale from the ``floor`` row (0) to
    the ``expert`` row (1): ``(R - R_floor) / (R_expert - R_floor)``.

    ``rows`` is :func:`compare_returns`' result. Where a trivial policy already
    scores most of the expert's return (an ant that stands still collects its
    healthy bonus), the plain fraction ``R / R_expert`` says little; this scale
    says how much of what the expert gains over ``floor`` a learner keeps. An
    agent whose expert does not beat the floor gets ``nan``: there is no such
    gain to keep. Point estimates: ratios of the rows' means.
    """
    for name in (floor, expert):
        if name not in rows:
            raise ValueError(f"rows: no row {name!r} to normalize by (rows: {sorted(rows)})")

    def means(name: str) -> np.ndarray:
        return np.array([float(m) for m, _ in rows[name]["return_per_agent"]])

    low, high = means(floor), means(expert)
    if low.shape != high.shape:
        raise ValueError(f"rows: {floor!r} has {low.size} agents, {expert!r} {high.size}")
    gain = high - low
    out = {}
    for name in rows:
        r = means(name)
        if r.shape != gain.shape:
            raise ValueError(f"rows: {name!r} has {r.size} agents, {expert!r} {gain.size}")
        out[name] = [float((x - lo) / g) if g > 0 else float("nan")
                     for x, lo, g in zip(r, low, gain, strict=True)]
    return out


def run_games(args: Any, run_game: Callable[[str, Any], dict], *, note: str) -> dict[str, dict]:
    """The body of a script that makes one comparison per game of ``args.games`` (an
    :class:`ExperimentArgs` with a ``games`` field): print the machine, create
    ``args.out``, call ``run_game(game, args)`` for each game, print ``note`` (what
    the tables' figures are), write ``summary.json`` (the arguments and ``games``:
    the results by game) and print the total time.

    Returns:
        ``{game: run_game(game, args)}``.
    """
    from mairl.utils import machine

    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {game: run_game(game, args) for game in args.games}
    print("\n" + note)
    write_summary(Path(args.out) / "summary.json", args, games=results)
    print(f"runs in {args.out}/; total {time.perf_counter() - t_start:.0f} s")
    return results


def heldout_calibration(learner: Any, expert: Any, key: jax.Array | None = None
                        ) -> dict[str, dict[str, np.ndarray]]:
    """The ceiling and floor of a continuous learner's held-out behaviour measures
    (``heldout_log_likelihood``, ``action_mse`` of ``metrics.json``), scored on the
    same held-out demonstrations as the learner (``learner``: a finished
    ``mairl.runs.Run`` of a continuous learner; ``expert``: the run whose policy
    recorded the demonstrations, e.g. ``experiments/train_brax_expert.py``'s).

    Rows, ``{measure: (agent,)}`` each:

    - ``expert``: the expert's own actors. Its mean log-density of its own actions
      estimates minus its conditional entropy, which no policy exceeds in
      expectation (Gibbs' inequality): the ceiling. Its mode's squared distance
      to the actions it drew is the spread of its own noise, the least
      ``action_mse`` a deterministic mode can expect.
    - ``uniform``: uniform actions on each agent's box, log-density
      ``-sum_d log(high - low)``; its ``action_mse`` is that of the box's centre
      (the zero action on ``[-1, 1]``): the floor.
    """
    from mairl import runs
    from mairl.evaluation import _continuous_eval_fn

    held = runs.Setup(learner.config).held
    if held is None:
        raise ValueError(f"heldout_calibration: run {learner.dir} has no held-out "
                         "demonstrations with rewards")
    if not (learner.algo.continuous and expert.algo.continuous):
        raise ValueError("heldout_calibration: needs continuous learner and expert runs")
    key = jax.random.key(0) if key is None else key
    # the expert scored by the learners' own held-out evaluation (no episodes played)
    scores = _continuous_eval_fn(expert.algo, learner.env, False, 0)(expert.seed_params(0),
                                                                      key, held)
    spaces = learner.env.action_spaces
    low = np.stack([np.broadcast_to(sp.low, sp.shape) for sp in spaces]).astype(np.float32)
    high = np.stack([np.broadcast_to(sp.high, sp.shape) for sp in spaces]).astype(np.float32)
    centre = (low + high) / 2
    acts = np.asarray(held.actions)  # (agent, B, action_dim)
    return {
        "expert": {name: np.asarray(value) for name, value in scores.items()},
        "uniform": {"heldout_log_likelihood": -np.sum(np.log(high - low), axis=-1),
                    "action_mse": np.mean(np.sum((acts - centre[:, None]) ** 2, axis=-1),
                                          axis=-1)},
    }


# -- tables ---------------------------------------------------------------------------------------
def per_agent(values: Any) -> list[Interval]:
    """Mean and 95% t half-width of each agent's value over the first axis.

    ``values (sample, ..., agent)``: samples are episodes of a fixed policy or the
    seeds of a learner; middle axes (a seed's episodes) are averaged first, so
    the interval has ``sample - 1`` degrees of freedom. One interval per agent,
    in the order of the last axis.
    """
    values = np.asarray(values, np.float64)
    if values.ndim < 2:
        raise ValueError(f"per_agent: expected (sample, ..., agent), got shape {values.shape}")
    return [mean_half_width(values[..., i]) for i in range(values.shape[-1])]


class Column(NamedTuple):
    """A table column: its title and the decimals of its numbers."""

    title: str
    precision: int = 2


#: A table cell: mean ± half-width, a plain number, or nothing.
Cell = tuple[float, float] | float | None
CELL_WIDTH = 17


def agent_columns(title: str, agents: Sequence[str], precision: int = 2) -> list[Column]:
    """One column per agent, ``"<title> <agent>"``, in the agents' order."""
    return [Column(f"{title} {a}".strip(), precision) for a in agents]


def format_cell(cell: Cell, precision: int = 2) -> str:
    """``"   mean ± half "`` (or the number alone, or blank), :data:`CELL_WIDTH` wide."""
    if cell is None:
        return " " * CELL_WIDTH
    if isinstance(cell, tuple):
        mean, half = cell
        return f"{mean:>9.{precision}f} ± {half:<5.{precision}f}"
    return f"{cell:>{CELL_WIDTH}.{precision}f}"


def format_table(rows: Mapping[str, Sequence[Cell]], columns: Sequence[Column | str], *,
                 over: Mapping[str, str] | None = None, title: str | None = None) -> str:
    """A text table: a row per entry of ``rows`` (its cells in the order of
    ``columns``), an ``over`` column where given (what the intervals are over)."""
    columns = [c if isinstance(c, Column) else Column(c) for c in columns]
    width = max([15, *(len(name) + 2 for name in rows)])
    head = f"{'':<{width}}" + "".join(f"{c.title:>{CELL_WIDTH}}" for c in columns)
    head += "  over" if over else ""
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for name, cells in rows.items():
        if len(cells) != len(columns):
            raise ValueError(f"format_table: row {name!r} has {len(cells)} cells for "
                             f"{len(columns)} columns")
        line = f"{name:<{width}}" + "".join(format_cell(cell, c.precision)
                                            for cell, c in zip(cells, columns, strict=True))
        lines.append(line + (f"  {over.get(name, '')}" if over else ""))
    return "\n".join(lines)


# -- timing ---------------------------------------------------------------------------------------
def steps_per_second(step_fn: Callable[[Any, int], Any], carry: Any = None, *, calls: int,
                     steps_per_call: int = 1, warmup: int = 0, repeats: int = 1) -> float:
    """Environment steps per second of ``carry = step_fn(carry, i)``.

    Calls ``0 .. warmup - 1`` run untimed (compilation); then ``repeats`` times
    ``calls`` calls are timed, waiting for JAX's results at the end
    (``jax.block_until_ready``), and the best time counts. Call ``i`` (numbered on
    across warm-up and repeats) does ``steps_per_call`` steps.
    """
    if calls < 1 or repeats < 1:
        raise ValueError(f"steps_per_second: calls and repeats must be >= 1, got {calls}, "
                         f"{repeats}")
    i = 0
    for _ in range(warmup):
        carry = step_fn(carry, i)
        i += 1
    jax.block_until_ready(carry)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            carry = step_fn(carry, i)
            i += 1
        jax.block_until_ready(carry)
        best = min(best, time.perf_counter() - t0)
    return calls * steps_per_call / best


def random_actions(env: Any, num_steps: int, seed: int = 0) -> np.ndarray:
    """Uniformly random discrete actions ``(step, agent)`` int32, from NumPy's ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, env.num_actions, (num_steps, env.num_agents)).astype(np.int32)


def env_steps_per_second(env: Any, actions: np.ndarray) -> float:
    """Steps/s of ``env.step`` (auto-reset included) playing ``actions (step, agent)``
    one step at a time from ``env.reset(key(0))``; the step keys are drawn first."""
    keys = list(jax.random.split(jax.random.key(1), len(actions)))

    def step(carry, t):
        return env.step(keys[t], carry[1], actions[t])[:2]

    return steps_per_second(step, env.reset(jax.random.key(0)), calls=len(actions))
