"""A run as a library object: configure, train, checkpoint, resume, reload and act.

::

    from mairl import runs
    from mairl.algos import MAMQLOfflineConfig

    config = runs.RunConfig(
        algo=MAMQLOfflineConfig(critic="tabular", gamma=0.9),
        env=runs.EnvConfig("stag-hunt"),
        data=runs.DataConfig(demos="demos.npz"),
        schedule=runs.ScheduleConfig(seeds=3, updates=2000, eval_every=500),
    )
    run = runs.run(config, "runs/stag")          # trains, evaluates, writes the directory
    run = runs.load_run("runs/stag")             # later, anywhere
    actions = run.policy(obs, key)               # obs (batch, agent, *obs_shape)

A run directory holds ``config.json`` (the :class:`RunConfig`), ``metrics.json``
(final values per seed and their mean), ``curves.csv`` (every metric after every
chunk of updates, per seed and agent), ``params.npz`` (the learned parameters,
seeds stacked first), plots (``curves.png``, and ``reward.png`` where the game
allows) and ``checkpoints/`` (orbax-checkpoint: the complete training state every
``checkpoint_every`` updates and at the end; :func:`resume` goes on from the last
complete one with exactly the numbers of an uninterrupted run).

Seeds train side by side in one jitted program (``jax.vmap``), sharded over the
devices (``mairl.sharding``); online learners on host-side games (PettingZoo,
highway-env) go through the host loop ``mairl.train.train_host``.

Several processes (hosts) run the same run together: every process calls
:func:`run` with the same arguments after ``mairl.sharding.initialize``; the
seeds and batches are sharded over the global mesh of all processes' devices,
checkpoints are written collectively (each process its shards), only process 0
writes the rest of the directory, reports progress and feeds trackers, and
every process returns the same :class:`Run`. The demonstrations and ``out``
must be reachable at the same path by every process (a shared filesystem).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from mairl.algos import ALGOS, AlgoConfig, algo_name, make_algo
from mairl.metrics.returns import mean_half_width

CONFIG_VERSION = 2


# -- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvConfig:
    """The game and what the learners see of it.

    Attributes:
        name: environment name (``mairl envs`` lists them), ``tabular:PATH.npz``
            or ``host:NAME``.
        view: ``agent``: each critic sees the env's per-agent view of the
            observation where the env defines one (``env.agent_view``; Gems:
            egocentric maps); ``global``: the raw observation.
        episode_rule: ``demonstrations``: where the demonstrations record the
            rule that ended their episodes (``Demonstrations.episode_rule``, e.g.
            the MAMQL authors' Gems file: the joint return exceeds 20), the run
            is trained and evaluated under that rule, so the expert's row and
            the learners' compare like with like; ``env``: the env's own rule.
    """

    name: Annotated[str, tyro.conf.arg(name="env")]
    view: Literal["agent", "global"] = "agent"
    episode_rule: Literal["demonstrations", "env"] = "demonstrations"

    def __post_init__(self):
        _check(self, [
            ("name", _env_known(self.name),
             _env_expected(self.name)),
            ("view", self.view in ("agent", "global"), "'agent' or 'global'"),
            ("episode_rule", self.episode_rule in ("demonstrations", "env"),
             "'demonstrations' or 'env'"),
        ])


def _env_known(name: Any) -> bool:
    import envs

    return isinstance(name, str) and envs.known(name)


def _env_expected(name: Any) -> str:
    """What :class:`EnvConfig` expects of ``name``, with the closest registered names."""
    import envs

    close = envs.close_matches(str(name))
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    forms = ", ".join(f"{p}:..." for p in envs.prefixes())
    return f"a registered environment (`mairl envs` lists them) or {forms}{hint}"


@dataclass(frozen=True)
class DataConfig:
    """The demonstrations and the held-out split.

    Attributes:
        demos: a mairl ``.npz`` file or the MAMQL authors' Gems file (gzip
            pickle); ``None`` for learners that need no demonstrations.
        heldout_fraction: share of demonstrated episodes held out for evaluation.
        max_demo_episodes: use only the first episodes of the demonstrations.
        heldout_transitions: held-out transitions read by each evaluation.
    """

    demos: str | None = None
    heldout_fraction: float = 0.1
    max_demo_episodes: int | None = None
    heldout_transitions: int = 2048

    def __post_init__(self):
        _check(self, [
            ("heldout_fraction", 0 < self.heldout_fraction < 1, "in (0, 1)"),
            ("max_demo_episodes", self.max_demo_episodes is None or self.max_demo_episodes >= 2,
             ">= 2 or None"),
            ("heldout_transitions", self.heldout_transitions >= 1, ">= 1"),
        ])


@dataclass(frozen=True)
class ScheduleConfig:
    """Seeds, updates, evaluations and checkpoints.

    Attributes:
        seeds: seeds trained side by side (vmapped).
        seed: base random seed.
        updates: gradient updates per seed.
        eval_every: updates between evaluations (one chunk).
        checkpoint_every: updates between checkpoints (a multiple of
            ``eval_every``); ``None``: at the end only.
        keep_checkpoints: how many of the latest checkpoints to keep.
    """

    seeds: int = 3
    seed: int = 0
    updates: int = 10_000
    eval_every: int = 1_000
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3

    def __post_init__(self):
        _check(self, [
            ("seeds", self.seeds >= 1, ">= 1"),
            ("updates", self.updates >= 1, ">= 1"),
            ("eval_every", 1 <= self.eval_every <= self.updates, f"in [1, updates={self.updates}]"),
            ("updates", self.updates % max(self.eval_every, 1) == 0,
             f"a multiple of eval_every={self.eval_every}"),
            ("checkpoint_every", self.checkpoint_every is None
             or (self.checkpoint_every >= 1
                 and self.checkpoint_every % max(self.eval_every, 1) == 0),
             f"a positive multiple of eval_every={self.eval_every}, or None"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, ">= 1"),
        ])


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during and after training.

    Attributes:
        eval_episodes: episodes per evaluation during training.
        final_episodes: episodes per seed in the final evaluation.
        expert: optional soft-Q expert file (``mairl.experts``) of the expert that
            made the demonstrations; with it the run reports ``heldout_kl``, the
            behavioural KL to the expert on held-out states.
    """

    eval_episodes: int = 64
    final_episodes: int = 1000
    expert: str | None = None

    def __post_init__(self):
        _check(self, [
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
            ("final_episodes", self.final_episodes >= 2, ">= 2"),
        ])


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (written to ``config.json``).

    Attributes:
        algo: the algorithm's own config; its class names the algorithm
            (``mairl.algos.ALGOS``).
        env: the game.
        data: demonstrations and held-out split.
        schedule: seeds, updates, evaluations, checkpoints.
        eval: evaluation settings.
    """

    algo: AlgoConfig
    env: EnvConfig
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        algo_name(self.algo)  # a registered algorithm's config

    @property
    def algo_name(self) -> str:
        """The registered name of the algorithm this config trains."""
        return algo_name(self.algo)


def _check(config: Any, checks: Sequence[tuple[str, bool, str]]) -> None:
    from mairl.algos.common import check_fields

    check_fields(config, checks)


def config_to_dict(config: RunConfig) -> dict:
    """JSON-ready form: each section a dict, the algorithm's tagged with its ``name``."""
    out = {"version": CONFIG_VERSION, "algo": {"name": config.algo_name,
                                               **dataclasses.asdict(config.algo)}}
    for section in ("env", "data", "schedule", "eval"):
        out[section] = dataclasses.asdict(getattr(config, section))
    return out


def _build(cls: type, values: dict, where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; expected some of {sorted(names)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**fixed)


def config_from_dict(raw: dict) -> RunConfig:
    """The inverse of :func:`config_to_dict`; errors name the field."""
    version = raw.get("version")
    if version is None:
        raise ValueError(f"config: no 'version' entry, expected version {CONFIG_VERSION}: not "
                         "a mairl run config, or one written before configs were versioned")
    if version != CONFIG_VERSION:
        raise ValueError(f"config: version {version!r}, expected {CONFIG_VERSION} (written by "
                         f"another mairl version)")
    try:
        algo = dict(raw["algo"])
        name = algo.pop("name")
        if name not in ALGOS:
            raise ValueError(f"config: algo.name {name!r}, expected one of {sorted(ALGOS)}")
        return RunConfig(
            algo=_build(ALGOS[name].config, algo, "config.algo"),
            env=_build(EnvConfig, raw["env"], "config.env"),
            data=_build(DataConfig, raw.get("data", {}), "config.data"),
            schedule=_build(ScheduleConfig, raw.get("schedule", {}), "config.schedule"),
            eval=_build(EvalConfig, raw.get("eval", {}), "config.eval"),
        )
    except KeyError as err:
        raise ValueError(f"config: missing section {err.args[0]!r}") from None


def config_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """``section.field: old -> new`` for every field that differs."""
    a, b = config_to_dict(old), config_to_dict(new)
    diffs = []
    for section in sorted(set(a) | set(b)):
        x, y = a.get(section), b.get(section)
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                if x.get(key) != y.get(key):
                    diffs.append(f"{section}.{key}: {x.get(key)!r} -> {y.get(key)!r}")
        elif x != y:
            diffs.append(f"{section}: {x!r} -> {y!r}")
    return diffs


# -- the pieces of a run --------------------------------------------------------------------------
def make_env(name: str):
    """``envs.make(name)`` with errors as ``ValueError`` naming the field."""
    import envs

    try:
        return envs.make(name)
    except KeyError as err:
        raise ValueError(f"env: {err.args[0]}") from None
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"env {name!r}: {err}") from None


#: The last demonstrations file read by :func:`load_demos`: ``(key, demos)``, so runs
#: of several algorithms on one file (``make demo``) decompress it once.
_LAST_DEMOS: list = []


def load_demos(path: str | Path, env: Any = None):
    """A mairl ``.npz`` file, or the MAMQL authors' Gems file (gzip pickle), checked
    against ``env``; errors are ``ValueError`` naming the file. The last file read
    is kept (keyed by its path, size and modification time) and not read again."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data.demos: no such file {path}")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _LAST_DEMOS and _LAST_DEMOS[0][0] == key:
        demos = _LAST_DEMOS[0][1]
        _check_demos_env(path, demos, env)
        return demos
    demos = _read_demos(path, env)
    _LAST_DEMOS[:] = [(key, demos)]
    return demos


def _check_demos_env(path: Path, demos: Any, env: Any) -> None:
    """The checks :func:`_read_demos` makes against ``env``, for a kept file."""
    from mairl.data.demonstrations import _check_against_env

    if env is None:
        return
    if demos.obs.shape[2:] != tuple(env.obs_shape):
        raise ValueError(f"data.demos: {path}: observations {demos.obs.shape[2:]} do not "
                         f"match {env.name}'s obs_shape {tuple(env.obs_shape)}")
    if not _is_gzip(path):
        try:
            _check_against_env(path, demos, env)
        except ValueError as err:
            raise ValueError(f"data.demos: {err}") from None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_demos(path: Path, env: Any = None):
    from mairl import data

    if _is_gzip(path):
        demos = data.from_mamql_gems(path)
        if env is not None and demos.obs.shape[2:] != tuple(env.obs_shape):
            raise ValueError(f"data.demos: {path}: observations {demos.obs.shape[2:]} do not "
                             f"match {env.name}'s obs_shape {tuple(env.obs_shape)}")
        return demos
    try:
        return data.load(path, env=env)
    except ValueError as err:
        raise ValueError(f"data.demos: {err}") from None


def _check_batch(config: RunConfig, batch: int, transitions: int) -> None:
    """An update's expert batch must fit in the training transitions (after the
    held-out split and ``max_demo_episodes``): a larger one would draw most
    transitions several times in every batch."""
    if batch <= transitions:
        return
    field_name = next((f for f in ("reward_batch_size", "batch_size")
                       if getattr(config.algo, f, None) == batch), "batch_size")
    raise ValueError(
        f"algo.{field_name}: expected at most the {transitions} training transitions of "
        f"data.demos ({config.data.demos}, less the held-out fraction "
        f"{config.data.heldout_fraction}), got {batch}")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def oracle_for(env: Any, alpha: float, gamma: float):
    """The exact logit equilibrium of a tabular game (``None`` for other games)."""
    if not hasattr(env, "transitions"):
        return None
    from mairl.solvers import soft_value_iteration

    return soft_value_iteration(env, alpha=alpha, gamma=gamma)


def action_sizes(env: Any) -> dict:
    """``make_algo``'s action keyword for ``env``: ``num_actions`` for discrete games,
    ``action_dim`` for continuous (``Box``) ones."""
    if getattr(env, "discrete", True):
        return {"num_actions": env.num_actions}
    return {"action_dim": env.action_dim}


def build_algo(config: RunConfig, env: Any, data_axis: str | None = None):
    """The run's algorithm on ``env`` (its per-agent view where ``env.view`` asks);
    ``data_axis``: with a data-parallel update (``mairl.sharding``)."""
    transform = getattr(env, "agent_view", None) if config.env.view == "agent" else None
    try:
        return make_algo(config.algo, num_agents=env.num_agents,
                         obs_shape=tuple(env.obs_shape), env=env, obs_transform=transform,
                         data_axis=data_axis, **action_sizes(env))
    except ValueError as err:
        if str(err).startswith("algo:"):
            raise ValueError(f"{err} ({env.name}: {env.action_spaces[0]})") from None
        raise


def example_batch(algo: Any, env: Any):
    """A batch of zeros shaped like the ones ``algo`` consumes (for ``init`` templates)."""
    from mairl.algos import Batch, Transition

    b = algo.needs.expert_batch
    if b == 0:
        return Batch(None)
    n, shape = env.num_agents, tuple(env.obs_shape)
    obs = jnp.zeros((n, b, *shape), getattr(env, "obs_dtype", jnp.float32))
    done = jnp.zeros((b,), bool)
    actions = (jnp.zeros((n, b, env.action_dim), jnp.float32) if algo.continuous
               else jnp.zeros((n, b), jnp.int32))
    expert = Transition(obs, actions, obs, done, done)
    return Batch(expert, obs if algo.needs.init_obs else None)


class Setup:
    """What a run needs beside its config: the env, the algorithm, the data, the
    evaluation. Built by :func:`run`, :func:`load_run` and :func:`evaluate_run`."""

    def __init__(self, config: RunConfig, *, with_data: bool = True):
        from mairl import data
        from mairl.evaluation import heldout_batch, make_eval_fn

        self.config = config
        self.env = make_env(config.env.name)
        self.algo = build_algo(config, self.env)
        self.demos = self.train_demos = self.heldout = self.held = None
        self.data_sha256 = None
        if config.data.demos is not None and with_data:
            demos = load_demos(config.data.demos, self.env)
            self.data_sha256 = file_sha256(config.data.demos)
            if config.data.max_demo_episodes is not None:
                demos = demos.select_episodes(slice(0, config.data.max_demo_episodes))
            self.demos = demos
            self._follow_rule(demos)
            self.train_demos, self.heldout = data.split_by_episode(
                demos, config.data.heldout_fraction,
                key=jax.random.key(config.schedule.seed + 1_000_003),
            )
            if self.heldout.rewards is not None:
                self.held = heldout_batch(self.heldout, config.data.heldout_transitions)
        if with_data and self.algo.needs.expert_batch and self.demos is None:
            raise ValueError(f"data.demos: {config.algo_name} learns from demonstrations; "
                             "give a demonstrations file")
        if with_data and self.train_demos is not None:
            _check_batch(config, self.algo.needs.expert_batch, self.train_demos.num_transitions)
        self.oracle = oracle_for(self.env, self.algo.alpha, self.algo.gamma)
        expert_logits = None
        if config.eval.expert is not None:
            from mairl.experts import soft_q_expert_logits

            try:
                expert_logits = soft_q_expert_logits(config.eval.expert, self.env)
            except (FileNotFoundError, ValueError) as err:
                raise ValueError(f"eval.expert: {err}") from None
        self.eval_fn = make_eval_fn(self.algo, self.env, oracle=self.oracle,
                                    episodes=config.eval.eval_episodes,
                                    expert_logits=expert_logits)
        self._calibration = None

    @property
    def calibration(self) -> dict:
        """``metric -> MetricCalibration`` of the reward metrics this run reports
        (tabular games; empty elsewhere). Computed once, on first use."""
        if self._calibration is None:
            self._calibration = {}
            if self.oracle is not None:
                from mairl.evaluation import tabular_reward
                from mairl.metrics.calibration import calibrate_tabular

                terminal = getattr(self.env, "terminal", None)
                algo, n = self.algo, self.env.num_agents
                batch = example_batch(algo, self.env)
                orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), self.oracle)

                # jitted once: an online learner's init also resets and warms up its envs
                fresh = jax.jit(lambda key: algo.init(key, batch).params)

                def random_critic(key):
                    return tabular_reward(algo, fresh(key), orc, n, terminal)[1]

                self._calibration = calibrate_tabular(
                    self.oracle, self.algo.alpha, self.algo.gamma, terminal=terminal,
                    random_critic=random_critic, key=jax.random.key(self.config.schedule.seed))
        return self._calibration

    def _follow_rule(self, demos) -> None:
        """Rebuild the env under the demonstrations' episode rule (``EnvConfig.episode_rule``)."""
        rule = getattr(demos, "episode_rule", None)
        own = getattr(self.env, "episode_rule", None)
        if self.config.env.episode_rule != "demonstrations" or rule is None or own is None:
            return
        rule = dict(rule)
        if rule == dict(own):
            return
        import envs

        try:
            self.env = envs.make(self.config.env.name, **rule)
        except (TypeError, ValueError) as err:
            raise ValueError(f"env.episode_rule: the demonstrations' rule {rule} does not fit "
                             f"{self.config.env.name}: {err}") from None
        self.algo = build_algo(self.config, self.env)

    @property
    def jittable(self) -> bool:
        """Whether the environment steps inside jit (host-side adapters do not)."""
        return getattr(self.env, "jittable", True)

    @property
    def host_loop(self) -> bool:
        """Online on a host-side game: trained by ``mairl.train.train_host``."""
        return self.algo.act is not None


# -- the run object ------------------------------------------------------------------------------
@dataclass
class Run:
    """A finished run: its config, results and learned agents.

    Attributes:
        config: the :class:`RunConfig`.
        metrics: the final metrics (``metrics.json``).
        curves: every metric after every chunk, ``name -> (seed, chunk, ...)``.
        updates: updates done at each evaluation, ``(chunk,)``.
        params: the learned parameters, seeds stacked first.
        algo: the algorithm (``q_values`` and friends).
        env: the game.
        dir: the run directory (``None`` if not written).

    Observations are given as environments give them: ``(batch, agent,
    *obs_shape)``, or one ``(agent, *obs_shape)``; ``seed`` picks the seed's agents.
    """

    config: RunConfig
    metrics: dict
    curves: dict
    updates: np.ndarray
    params: Any
    algo: Any
    env: Any
    dir: Path | None = None

    def seed_params(self, seed: int = 0) -> Any:
        """The parameters of one seed (the seed axis indexed away)."""
        if not 0 <= seed < self.config.schedule.seeds:
            raise ValueError(f"seed: expected in [0, {self.config.schedule.seeds}), got {seed}")
        return jax.tree.map(lambda x: x[seed], self.params)

    def _agent_major(self, obs: Any) -> tuple[jax.Array, bool]:
        obs = jnp.asarray(obs, jnp.float32)
        shape = (self.env.num_agents, *tuple(self.env.obs_shape))
        if obs.shape == shape:
            return obs, True
        if obs.shape[1:] != shape:
            raise ValueError(f"obs: expected (batch, {', '.join(map(str, shape))}) or {shape}, "
                             f"got {obs.shape}")
        return jnp.swapaxes(obs, 0, 1), False

    def q_values(self, obs: Any, seed: int = 0) -> jax.Array:
        """Each agent's marginal soft-Q: ``(batch, agent, action)`` (or ``(agent, action)``);
        discrete games only (continuous learners: :meth:`critic`)."""
        x, single = self._agent_major(obs)
        q = self.algo.q_values(self.seed_params(seed), x)  # (agent, [batch,] action)
        return q if single else jnp.swapaxes(q, 0, 1)

    def critic(self, obs: Any, actions: Any, seed: int = 0) -> jax.Array:
        """Continuous learners with a critic: ``Q_i(s, a_i)``, ``(batch, agent)`` for
        ``actions (batch, agent, action_dim)`` (or ``(agent,)`` for one state)."""
        if self.algo.critic is None:
            raise ValueError(f"{self.algo.name}: has no critic of continuous actions")
        x, single = self._agent_major(obs)
        a = jnp.asarray(actions, jnp.float32)
        q = self.algo.critic(self.seed_params(seed), x, a if single else jnp.swapaxes(a, 0, 1))
        return q if single else q.T

    def policy(self, obs: Any, key: jax.Array, seed: int = 0, greedy: bool = False) -> jax.Array:
        """Actions of the learned Boltzmann (or greedy) policies: ``(batch, agent)``;
        continuous learners: draws of their actors (or their modes), ``(batch, agent,
        action_dim)``."""
        from mairl.algos.common import sample_actions

        if self.algo.continuous:
            x, single = self._agent_major(obs)
            a = self.algo.policy(self.seed_params(seed), x, key, greedy)
            return a if single else jnp.swapaxes(a, 0, 1)
        return sample_actions(key, self.q_values(obs, seed), self.algo.alpha, greedy)

    def policy_fn(self, seed: int = 0, greedy: bool = False):
        """``policy_fn(key, obs (agent, *obs_shape)) -> actions (agent,)`` for the env
        protocol (``mairl.data.collect``, ``mairl.metrics.evaluate_returns``)."""
        from mairl.evaluation import policy_fn_of

        return policy_fn_of(self.algo, self.seed_params(seed), greedy)

    def reward(self, obs: Any, actions: Any, next_obs: Any, terminated: Any = None,
               seed: int = 0, key: jax.Array | None = None) -> jax.Array:
        """The recovered reward on transitions: ``(batch, agent)`` for ``obs (batch, agent,
        ...)``, ``actions (batch, agent)``, ``terminated (batch,)`` (default: none
        terminated). The algorithm's own learned reward ``r_i(s, a_i)`` where it has
        one (``algo.reward``: MA-AIRL's ``g_i``, ML-IRL's ``r_i``; ``next_obs`` and
        ``terminated`` are then unused), else ``Q_i(s, a_i) - gamma (1 - term) V_i(s')``.
        Continuous learners: ``actions (batch, agent, action_dim)``, ``V_i(s')``
        estimated from draws of the actor (``mairl.evaluation.continuous_reward``,
        with ``key``, default ``jax.random.key(0)``)."""
        from mairl.data import Transition
        from mairl.evaluation import continuous_reward, sampled_reward

        x, single = self._agent_major(obs)
        x_next, _ = self._agent_major(next_obs)
        if self.algo.continuous:
            a = jnp.asarray(actions, jnp.float32)
            a = a if single else jnp.swapaxes(a, 0, 1)
            term = jnp.zeros(a.shape[1:-1], bool) if terminated is None \
                else jnp.asarray(terminated)
            key = jax.random.key(0) if key is None else key
            r = continuous_reward(self.algo, self.seed_params(seed),
                                  Transition(x, a, x_next, term, term), key)
            return r if single else r.T
        a = jnp.asarray(actions, jnp.int32)
        a = a if single else a.T
        if self.algo.reward is not None:
            table = self.algo.reward(self.seed_params(seed), x)  # (agent, [batch,] action)
            r = jnp.take_along_axis(table, a[..., None], axis=-1)[..., 0]
            return r if single else r.T
        term = jnp.zeros(a.shape[1:], bool) if terminated is None else jnp.asarray(terminated)
        r, _, _ = sampled_reward(self.algo, self.seed_params(seed),
                                 Transition(x, a, x_next, term, term))
        return r if single else r.T


# -- training -------------------------------------------------------------------------------------
class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


class RunWriteError(OSError):
    """A file of a run could not be written (a full disk, a lost mount): the message
    says which, and what was kept. Checkpoints are written completely or not at
    all, and the other files by replacing the old one only when the new one is
    complete, so the last complete checkpoint survives and :func:`resume` goes on
    from it."""


#: What a run directory holds (written by :func:`run`): a directory that holds
#: any of these holds a run, replaced only with ``overwrite``.
RUN_FILES = ("config.json", "metrics.json", "curves.csv", "params.npz", "curves.png",
             "reward.png", "eval.json", "transfer.json", "checkpoints", "tensorboard", "wandb")


def run_files_in(out: str | Path) -> list[str]:
    """The entries of :data:`RUN_FILES` that ``out`` holds (an empty ``checkpoints/``
    does not count)."""
    out = Path(out)
    held = []
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and name == "checkpoints":
            if any(path.iterdir()):
                held.append(name + "/")
        elif path.exists():
            held.append(name + ("/" if path.is_dir() else ""))
    return held


def remove_run_files(out: str | Path) -> None:
    """Remove the entries of :data:`RUN_FILES` from ``out``; other files stay."""
    import shutil

    for name in RUN_FILES:
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: into a temporary file beside it, renamed
    over ``path`` once complete (a failed write leaves the old file, or none)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _checkpoint_steps(directory: Path) -> list[int]:
    """The complete checkpoints in ``directory`` (orbax names them by step)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _write_failed(err: OSError, what: str, out: Path, eval_every: int | None) -> RunWriteError:
    """The :class:`RunWriteError` for ``err`` while writing ``what`` of the run ``out``."""
    steps = _checkpoint_steps(out / "checkpoints")
    if eval_every is None:
        kept = ""
    elif steps:
        kept = (f"; the last complete checkpoint, after {steps[-1] * eval_every} updates, is "
                f"kept in {out / 'checkpoints'}: free space and resume with `mairl train "
                f"--resume {out}` (runs.resume)")
    else:
        kept = "; no checkpoint was complete before it"
    reason = err.strerror or str(err) or type(err).__name__
    error = RunWriteError(f"run: writing {what} failed ({reason}){kept}")
    error.errno = err.errno
    return error


ProgressFn = Callable[[int, int], None]


def _key_leaf(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _global(x: Any) -> bool:
    """A global array spread over several processes (orbax saves it collectively)."""
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def _to_saveable(tree: Any) -> dict:
    """Every leaf under a flat name; typed keys as their key data. Global arrays of
    a run over several processes stay global arrays: each process writes its own
    shards."""
    def leaf(x):
        x = jax.random.key_data(x) if _key_leaf(x) else x
        return x if _global(x) else np.asarray(x)

    return {f"l{i:05d}": leaf(x) for i, x in enumerate(jax.tree.leaves(tree))}


def _from_saved(saved: dict, template: Any) -> Any:
    leaves, treedef = jax.tree.flatten(template)
    out = []
    for i, like in enumerate(leaves):
        x = jnp.asarray(saved[f"l{i:05d}"])
        out.append(jax.random.wrap_key_data(x, impl=jax.random.key_impl(like))
                   if _key_leaf(like) else x.astype(like.dtype))
    return jax.tree.unflatten(treedef, out)


def _abstract_saveable(template: Any) -> dict:
    """What :meth:`Checkpoints.restore` reads: shapes and dtypes, and for global
    arrays their sharding on the global mesh (each process reads its shards)."""
    def spec(x):
        if _global(x):
            x = jax.random.key_data(x) if _key_leaf(x) else x
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if _key_leaf(x):
            x = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(x.shape, x.dtype)

    return {f"l{i:05d}": spec(x) for i, x in enumerate(jax.tree.leaves(template))}


class Checkpoints:
    """The run's ``checkpoints/`` (orbax-checkpoint), one step per chunk count.

    Each checkpoint holds the complete training state (every leaf of the
    seed-stacked learner state: parameters, optimizer states, replay buffers,
    environment states, counters), the chunk keys, the curves so far, the
    config and the demonstrations' SHA-256. orbax writes into a temporary
    directory and renames it when complete, so a checkpoint written halfway is
    never listed.

    With several processes every process calls :meth:`save` and :meth:`restore`
    (collectives): each writes and reads the shards of its own devices, and
    process 0 the metadata and the rename, in a directory all of them reach at
    the same path.
    """

    def __init__(self, directory: Path, keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest(self) -> int | None:
        """The chunk count of the newest complete checkpoint, or ``None`` when there is none."""
        return self.manager.latest_step()

    def save(self, chunks_done: int, tree: Any, meta: dict) -> None:
        """Write the checkpoint after ``chunks_done`` chunks, completely or not at all:
        on a failed write (``OSError``, e.g. a full disk) its temporary directory is
        removed and the error raised; the earlier checkpoints stay."""
        import shutil

        ocp = self._ocp
        try:
            self.manager.save(chunks_done, args=ocp.args.Composite(
                state=ocp.args.StandardSave(_to_saveable(tree)), meta=ocp.args.JsonSave(meta)))
            self.manager.wait_until_finished()
        except OSError:
            for tmp in self.directory.glob(f"{chunks_done}.orbax-checkpoint-tmp-*"):
                shutil.rmtree(tmp, ignore_errors=True)
            raise

    def meta(self, chunks_done: int) -> dict:
        """The metadata saved with a checkpoint (config, data hash, curves)."""
        ocp = self._ocp
        return self.manager.restore(chunks_done, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, chunks_done: int, template: Any) -> tuple[Any, dict]:
        """Read the checkpoint after ``chunks_done`` chunks into the structure of ``template``."""
        ocp = self._ocp
        out = self.manager.restore(chunks_done, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract_saveable(template)),
            meta=ocp.args.JsonRestore()))
        return _from_saved(out["state"], template), out["meta"]

    def close(self) -> None:
        """Wait for pending writes and release the checkpoint manager."""
        self.manager.close()


def _curves_to_json(curves: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in curves.items()}


def _first_non_finite(curves: dict) -> str | None:
    loss = curves.get("train/loss")
    if loss is None:
        return None
    loss = np.asarray(loss)  # (seed, chunk, agent)
    bad = np.argwhere(~np.isfinite(loss))
    if not len(bad):
        return None
    agent = f", agent {int(bad[0][2])}" if bad.shape[1] > 2 else ""
    return f"seed {int(bad[0][0])}{agent}"


def _views_of(obs: Any, transform: Any, ndim: int, rows: int = 8192) -> jax.Array:
    """Each agent's views of ``obs (T, agent, *obs_shape)``, ``rows`` at a time (one
    compiled program; the last block padded)."""
    from mairl.algos.common import stacked_views

    views = jax.jit(lambda o: jnp.swapaxes(stacked_views(jnp.swapaxes(o, 0, 1), transform,
                                                         ndim), 0, 1))
    obs = np.asarray(obs)
    out = []
    for start in range(0, obs.shape[0], rows):
        block = obs[start:start + rows]
        pad = rows - block.shape[0]
        if pad:
            block = np.concatenate([block, np.zeros((pad, *block.shape[1:]), block.dtype)])
        out.append(np.asarray(views(block))[:rows - pad])
    return jnp.asarray(np.concatenate(out)) if out else jnp.asarray(obs)


def _pre_viewed(s: Setup, tdata: Any, algo: Any = None,
                data_axis: str | None = None) -> tuple[Any, Any]:
    """The algorithm and data that training runs on.

    An offline learner whose critics read a per-agent view (``env.view = "agent"``)
    would recompute the same views of the same demonstrations in every update (a
    seventh of a Gems update's time). Its views are computed once here instead:
    the data hold each agent's views and training runs the same algorithm built on
    the view's shape without a transform, whose ``q_values`` applies the view to
    raw observations, so evaluation, checkpoints and the saved parameters are
    unchanged (the same parameters, the same numbers). Not for a learner that
    also reads the raw observations (``needs.raw_obs``: ``fiq``'s mixer).
    ``algo``: the run's algorithm (default ``s.algo``), built with ``data_axis``."""
    from mairl.algos.common import view_shape

    raw = s.algo if algo is None else algo
    transform = getattr(s.env, "agent_view", None) if s.config.env.view == "agent" else None
    needs = raw.needs
    if (transform is None or needs.num_envs or not needs.expert_batch or needs.raw_obs
            or tdata.demos is None):
        return raw, tdata
    shape = tuple(s.env.obs_shape)
    ndim = len(shape)
    inner = make_algo(s.config.algo, num_agents=s.env.num_agents,
                      obs_shape=view_shape(shape, transform), **action_sizes(s.env),
                      env=s.env, obs_transform=None, data_axis=data_axis)

    def q_values(params, obs):
        from mairl.algos.common import stacked_views

        return inner.q_values(params, stacked_views(obs, transform, ndim))

    demos = tdata.demos.replace(obs=_views_of(tdata.demos.obs, transform, ndim),
                                next_obs=_views_of(tdata.demos.next_obs, transform, ndim))
    init_obs = (None if tdata.init_obs is None
                else _views_of(tdata.init_obs, transform, ndim))
    return inner._replace(q_values=q_values, act=raw.act, store=raw.store), \
        tdata._replace(demos=demos, init_obs=init_obs)


def _train_jitted(s: Setup, out: Path, tdata, progress, resume: bool, log, *, mesh=None,
                  program: tuple | None = None) -> tuple:
    """``make_train``'s program one chunk per call (the same compiled chunk every
    time), with progress, trackers, the non-finite check and a checkpoint between
    calls; numbers equal those of the whole run in one call.

    The runs (seeds) are vmapped and sharded over ``mesh`` (``mairl.sharding``).
    ``program``: ``(train_of, extra, keys)``: run ``r`` trains
    ``train_of(extra[r])`` (a ``make_train`` result) from ``keys[r]``; by default
    the config's seeds of ``make_train(s.algo, ...)`` (``mairl.sweep`` passes a
    grid's points).
    """
    from mairl import sharding
    from mairl.train import TrainConfig, make_train

    cfg = s.config
    sched = cfg.schedule
    tcfg = TrainConfig(num_updates=sched.updates, eval_every=sched.eval_every)
    if program is None:
        axis = sharding.data_axis(mesh)
        algo = s.algo if axis is None else build_algo(cfg, s.env, data_axis=axis)
        algo, tdata = _pre_viewed(s, tdata, algo, data_axis=axis)
        train = make_train(algo, tcfg, s.eval_fn, data_axis=axis)
        program = (lambda _: train, None,
                   jax.random.split(jax.random.key(sched.seed), sched.seeds))
    train_of, extra, keys = program
    runs = keys.shape[0]
    size = sharding.padded(runs, mesh)
    init = jax.jit(sharding.seed_map(lambda x, k, d: train_of(x).init(k, d), mesh,
                                     (0, 0, None)))
    chunk = jax.jit(sharding.seed_map(lambda x, st, k, i, d: train_of(x).chunks(st, k, i, d),
                                      mesh, (0, 0, 0, None, None)), donate_argnums=1)
    per = (sched.checkpoint_every or sched.updates) // sched.eval_every
    ckpt = Checkpoints(out / "checkpoints", sched.keep_checkpoints)
    meta = {"config": config_to_dict(cfg), "data_sha256": s.data_sha256}

    t0 = time.perf_counter()
    extra, keys = sharding.put(sharding.pad_runs((extra, keys), size), mesh, sharded=True)
    tdata = sharding.put(tdata, mesh, sharded=False)
    state, chunk_keys = init(extra, keys, tdata)
    done, curves = 0, []
    latest = ckpt.latest() if resume else None
    if latest is not None:  # else: killed before its first checkpoint, start again
        template = sharding.take_runs((state, chunk_keys), runs)
        where = out / "checkpoints" / str(latest)
        try:
            written_by = ckpt.meta(latest).get("config")
        except Exception as err:  # orbax's errors for a damaged checkpoint vary
            ckpt.close()
            raise ValueError(f"resume: cannot read the checkpoint {where} "
                             f"({type(err).__name__}: {err})") from None
        if written_by != json.loads(json.dumps(meta["config"])):
            ckpt.close()
            try:
                diffs = "; ".join(config_differences(config_from_dict(written_by), cfg))
            except (ValueError, TypeError, KeyError):
                diffs = f"its config is {written_by!r}"
            raise ValueError(f"resume: the checkpoint {where} was written by another config "
                             f"than the run's config.json: {diffs}")
        try:
            (state, chunk_keys), saved = ckpt.restore(latest, template)
        except Exception as err:
            ckpt.close()
            raise ValueError(f"resume: the checkpoint {where} does not fit this run's state "
                             f"({type(err).__name__}: {' '.join(str(err).split())[:300]})"
                             ) from None
        state, chunk_keys = sharding.put(sharding.pad_runs((state, chunk_keys), size), mesh,
                                         sharded=True)
        if saved.get("data_sha256") != s.data_sha256:
            ckpt.close()
            raise ValueError(f"resume: the demonstrations changed since the checkpoint "
                             f"(SHA-256 {saved.get('data_sha256')} -> {s.data_sha256})")
        done = int(saved["chunks_done"])
        curves = [{k: np.asarray(v) for k, v in saved["curves"].items()}]
    if progress is not None:
        progress(done, tcfg.num_chunks)
    compiled = chunk.lower(extra, state, chunk_keys[:, :1], jnp.int32(0), tdata).compile()
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    while done < tcfg.num_chunks:
        state, c = compiled(extra, state, chunk_keys[:, done:done + 1], jnp.int32(done), tdata)
        c = sharding.take_runs(sharding.gather(c), runs)
        where = _first_non_finite(c)
        if where is not None:
            last = ckpt.latest()
            kept = (f"the last good checkpoint, after {last * sched.eval_every} updates, is kept "
                    f"in {out / 'checkpoints'}" if last is not None else "no checkpoint was "
                    "written before it")
            ckpt.close()
            raise NonFiniteLossError(
                f"{cfg.algo_name}: non-finite loss in updates {done * sched.eval_every}-"
                f"{(done + 1) * sched.eval_every} ({where}); {kept}")
        if log is not None:
            log(c, np.array([done + 1]) * sched.eval_every)
        curves.append(c)
        done += 1
        if progress is not None:
            progress(done, tcfg.num_chunks)
        if done % per == 0 or done == tcfg.num_chunks:
            curves = [{k: np.concatenate([x[k] for x in curves], axis=1) for k in curves[0]}]
            try:
                ckpt.save(done, sharding.take_runs((state, chunk_keys), runs),
                          {**meta, "chunks_done": done, "curves": _curves_to_json(curves[0])})
            except OSError as err:
                ckpt.close()
                raise _write_failed(err, f"the checkpoint after {done * sched.eval_every} "
                                    "updates", out, sched.eval_every) from err
    jax.block_until_ready(state)
    ckpt.close()
    run_s = time.perf_counter() - t1
    state = sharding.take_runs(state, runs)
    updates = (np.arange(tcfg.num_chunks) + 1) * sched.eval_every
    curves = {k: np.concatenate([x[k] for x in curves], axis=1) for k in curves[0]} if curves \
        else {}
    return state, curves, updates, compile_s, run_s


def _train_host(s: Setup, tdata, progress) -> tuple:
    from mairl.train import TrainConfig, train_host

    sched = s.config.schedule
    tcfg = TrainConfig(num_updates=sched.updates, eval_every=sched.eval_every)
    keys = jax.random.split(jax.random.key(sched.seed), sched.seeds)
    t1 = time.perf_counter()
    result = train_host(s.algo, tcfg, lambda: make_env(s.config.env.name), keys, tdata,
                        s.eval_fn, progress=progress)
    jax.block_until_ready(result)
    curves = jax.tree.map(np.asarray, result.curves)
    return result.state, curves, np.asarray(result.updates[0]), 0.0, time.perf_counter() - t1


def final_evaluation(s: Setup, params: Any, episodes: int, last: dict | None = None) -> dict:
    """Final metrics per seed (leading axis): ``eval_fn`` on the final parameters
    plus ``returns (seed, episode, agent)`` over ``episodes`` episodes.

    ``last``: the curves' values after the last chunk, which are ``eval_fn`` on
    the same final parameters already (only their short ``return`` differs):
    given, they are reused instead of compiling and running ``eval_fn`` again.
    """
    from mairl import metrics, sharding
    from mairl.evaluation import policy_fn_of

    seeds = s.config.schedule.seeds
    keys = jax.random.split(jax.random.key(s.config.schedule.seed + 7), seeds)

    def one(params, key, held):
        key_eval, key_ret = jax.random.split(key)
        out = s.eval_fn(params, key_eval, held) if last is None else {}
        if s.jittable:
            out["returns"] = metrics.evaluate_returns(key_ret, s.env, policy_fn_of(s.algo, params),
                                                      episodes)
        return out

    final = sharding.gather(jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(params, keys, s.held))
    if not s.jittable:  # host-side env: the same episodes, one seed after another on the host
        params = sharding.gather(params)
        final["returns"] = np.stack([
            np.asarray(metrics.evaluate_returns(
                jax.random.split(keys[i])[1], s.env,
                policy_fn_of(s.algo, jax.tree.map(lambda x, i=i: x[i], params)), episodes,
            ))
            for i in range(seeds)
        ])
    if last is not None:
        final = {**{k: v for k, v in last.items() if not k.startswith("train/")}, **final}
    return final


#: Final metrics written to ``metrics.json``, under their names there.
SUMMARY_METRICS = ("reward_shaping_corr", "reward_pearson", "reward_spearman", "reward_epic",
                   "policy_kl", "heldout_kl", "action_accuracy", "imitation_mse",
                   "heldout_log_likelihood", "action_mse")

#: What each reported number measures (``metrics.json["measures"]``).
MEASURES = {
    "reward_shaping_corr": "reward recovery: correlation with the true marginal reward after "
                           "projecting out potential shaping (exact, tabular), expert occupancy",
    "reward_pearson": "reward recovery: plain Pearson correlation with the true marginal reward",
    "reward_spearman": "reward recovery: Spearman correlation with the true marginal reward",
    "reward_epic": "reward recovery: EPIC distance of the expected-form rewards (0 best)",
    "policy_kl": "behaviour: KL(pi_E || pi) under the expert occupancy (exact, tabular)",
    "heldout_kl": "behaviour: KL(pi_E || pi) averaged over held-out demonstration states",
    "action_accuracy": "behaviour: greedy action = demonstrated action on held-out data",
    "imitation_mse": "the MAMQL reference code's imitation loss on held-out data",
    "heldout_log_likelihood": "behaviour (continuous actions): mean log pi_i(a^E|s) of the "
                              "held-out demonstrated actions (higher is better)",
    "action_mse": "behaviour (continuous actions): squared distance between the policy's "
                  "mode and the held-out demonstrated action (0 best)",
    "return_per_agent": "true return of the learned policies per agent",
    "return_mean": "true return of the learned policies, mean over agents",
}


def summarize(s: Setup, final: dict, compile_s: float, run_s: float) -> dict:
    """``metrics.json``: each metric per seed and its mean over seeds, returns with
    their 95% t-interval over seeds, data sizes and timings."""
    cfg = s.config
    per_seed: dict[str, Any] = {}
    if "returns" in final:
        per_seed["return_per_agent"] = final["returns"].mean(axis=1)  # (seed, agent)
        per_seed["return_mean"] = final["returns"].mean(axis=(1, 2))
    for name in SUMMARY_METRICS:
        if name in final:
            per_seed[name] = final[name]  # (seed, agent)
    summary: dict[str, Any] = {"algo": cfg.algo_name, "env": cfg.env.name,
                               "seeds": cfg.schedule.seeds}
    for name, value in per_seed.items():
        value = np.asarray(value, np.float64)
        summary[name] = {
            "per_seed": value.tolist(),
            "mean": value.mean(axis=0).tolist() if value.ndim > 1 else float(value.mean()),
        }
    if "returns" in final:
        returns = final["returns"].mean(axis=1)  # (seed, agent)
        summary["return_mean"]["ci95_half_width_over_seeds"] = mean_half_width(
            returns.mean(axis=1))[1]
        summary["return_per_agent"]["ci95_half_width_over_seeds"] = [
            mean_half_width(returns[:, i])[1] for i in range(returns.shape[1])]
        summary["return_per_agent"]["episodes_per_seed"] = int(final["returns"].shape[1])
    updates = cfg.schedule.updates
    summary.update({
        "updates": updates,
        "expert_transitions": 0 if s.train_demos is None else int(s.train_demos.num_transitions),
        "expert_transitions_total": 0 if s.demos is None else int(s.demos.num_transitions),
        "compile_time_s": compile_s,
        "run_time_s": run_s,
        "wall_time_s": compile_s + run_s,
        "updates_per_s": updates / run_s if run_s > 0 else float("nan"),
        "seed_updates_per_s": cfg.schedule.seeds * updates / run_s if run_s > 0 else float("nan"),
        "device": str(jax.devices()[0]),
        "devices": getattr(s, "devices", 1),
        "processes": jax.process_count(),
        "batch_shards": getattr(s, "batch_shards", 1),
    })
    summary["measures"] = measures(s, [k for k in per_seed])
    if s.algo.continuous:
        from mairl.evaluation import CONTINUOUS_NOT_REPORTED

        summary["not_reported"] = dict(CONTINUOUS_NOT_REPORTED)
    if s.demos is not None:
        demos = s.demos
        summary["demonstrations"] = {
            "expert_alpha": getattr(demos, "expert_alpha", None),
            "expert_gamma": getattr(demos, "expert_gamma", None),
            "episode_rule": (None if getattr(demos, "episode_rule", None) is None
                             else dict(demos.episode_rule)),
            "learner_alpha": s.algo.alpha, "learner_gamma": s.algo.gamma,
        }
    return summary


def measures(s: Setup, names: Sequence[str]) -> dict:
    """``metrics.json["measures"]``: for each reported number, what it measures and,
    for reward metrics, its calibration on this game and whether it counts as
    reward recovery (``mairl.metrics.calibration``)."""
    out = {}
    calibration = s.calibration
    for name in names:
        entry: dict[str, Any] = {"measures": MEASURES.get(name, name)}
        if name.startswith("reward_"):
            cal = calibration.get(name)
            entry["reward_recovery"] = bool(cal is not None and cal.informative)
            if cal is not None:
                entry["calibration"] = cal.to_dict()
        out[name] = entry
    return out


def write_curves(path: Path, curves: dict, updates: np.ndarray, batch_size: int,
                 agents: Sequence[str]) -> None:
    """Long-form CSV: ``seed, updates, expert_samples, metric, agent, value``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "updates", "expert_samples", "metric", "agent", "value"])
        for name, values in sorted(curves.items()):
            values = np.asarray(values)  # (seed, chunk, agent) or (seed, chunk)
            for s in range(values.shape[0]):
                for c in range(values.shape[1]):
                    row = np.atleast_1d(values[s, c])
                    for i, v in enumerate(row):
                        agent = agents[i] if row.size == len(agents) else str(i)
                        w.writerow([s, int(updates[c]), int(updates[c]) * batch_size, name,
                                    agent, repr(float(v))])


def read_curves(path: Path, agents: Sequence[str]) -> tuple[dict, np.ndarray]:
    """The inverse of :func:`write_curves`: ``(curves, updates)``."""
    rows = list(csv.DictReader(open(path, newline="")))
    updates = np.array(sorted({int(r["updates"]) for r in rows}), np.int64)
    chunk = {u: i for i, u in enumerate(updates)}
    seeds = 1 + max((int(r["seed"]) for r in rows), default=-1)
    values: dict[str, dict] = {}
    for r in rows:
        values.setdefault(r["metric"], {})[(int(r["seed"]), chunk[int(r["updates"])],
                                            r["agent"])] = float(r["value"])
    curves = {}
    for name, entries in values.items():
        cols = sorted({a for _, _, a in entries},
                      key=lambda a: list(agents).index(a) if a in agents else int(a))
        arr = np.full((seeds, len(updates), len(cols)), np.nan)
        for (s, c, a), v in entries.items():
            arr[s, c, cols.index(a)] = v
        curves[name] = arr[..., 0] if len(cols) == 1 and cols[0] not in agents else arr
    return curves, updates


def _write_outputs(s: Setup, out: Path, params: Any, curves: dict, updates: np.ndarray,
                   summary: dict, plots: bool = True) -> None:
    from mairl.params import save_params

    tmp = out / "curves.csv.tmp"
    try:
        write_curves(tmp, curves, updates, s.algo.needs.expert_batch, s.env.agents)
        tmp.replace(out / "curves.csv")
    finally:
        if tmp.exists():
            tmp.unlink()
    save_params(out / "params.npz", params)
    # last: a run directory with metrics.json is a finished one
    write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    if not plots:
        return
    from mairl.plots import plot_curves, plot_reward_heatmap

    if curves:
        plot_curves(out / "curves.png", curves, updates, s.env.agents,
                    title=f"{s.config.algo_name} on {s.config.env.name}")
    plot_reward_heatmap(out / "reward.png", s.algo, jax.tree.map(lambda x: x[0], params), s.env,
                        s.heldout, s.oracle)


def run(config: RunConfig, out: str | Path, *, progress: ProgressFn | None = None,
        trackers: Sequence[Any] = (), overwrite: bool = False,
        devices: int | Sequence[Any] | None = None, batch_shards: int = 1) -> Run:
    """Train ``config.schedule.seeds`` seeds at once, evaluate, write the directory ``out``.

    With several processes (``mairl.sharding.initialize``) every process calls
    it alike; see the module docstring.

    Args:
        progress: ``progress(chunks_done, num_chunks)``, called on the host (of
            process 0).
        devices: the devices the seeds are sharded over (``mairl.sharding``): a
            count of the first of ``jax.devices()`` (with several processes, the
            same number of each process's), a list, or ``None`` for all.
            The numbers do not depend on it beyond float rounding.
        batch_shards: devices that split each seed's batch (data-parallel
            updates, gradients averaged with ``pmean``); the devices are
            ``seed shards x batch_shards``.
        trackers: where curves stream as they come (:mod:`mairl.trackers`):
            ``"tensorboard"``, ``"wandb"``, or objects with ``log(curves,
            updates)`` and ``close()`` (process 0 only).
        overwrite: replace the run already in ``out`` (its files of
            :data:`RUN_FILES`, once the config, data and environment are
            checked); otherwise a directory that holds a run is refused.

    Raises:
        ValueError: a bad config, data or environment (the message names the field),
            or a directory that already holds a run (without ``overwrite``).
        NonFiniteLossError: the loss became non-finite (the last good checkpoint stays).
        RunWriteError: a file of the run could not be written (a full disk): the
            last complete checkpoint stays, and :func:`resume` goes on from it.
    """
    return _run(config, Path(out), progress=progress, trackers=trackers, resume=False,
                devices=devices, batch_shards=batch_shards, overwrite=overwrite)


def resume(out: str | Path, config: RunConfig | None = None, *,
           progress: ProgressFn | None = None, trackers: Sequence[Any] = (),
           devices: int | Sequence[Any] | None = None, batch_shards: int = 1) -> Run:
    """Go on with the run in ``out`` from its last complete checkpoint.

    The result equals that of the run never interrupted. ``config``, if given,
    must equal the saved one; a difference, or demonstrations changed since, is
    refused with a message that names it. ``devices`` and ``batch_shards`` as for
    :func:`run` (they may differ from the first part's).
    """
    out = Path(out)
    saved = read_config(out)
    if config is not None:
        diffs = config_differences(saved, config)
        if diffs:
            raise ValueError(f"resume: the config differs from the run in {out}: "
                             + "; ".join(diffs))
    return _run(saved, out, progress=progress, trackers=trackers, resume=True,
                devices=devices, batch_shards=batch_shards)


def read_config(out: str | Path) -> RunConfig:
    """The ``RunConfig`` saved in the run directory ``out`` (``config.json``)."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise ValueError(f"run: {path} not found (not a run directory?)")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"run: {path} is not valid JSON ({err}); the run directory is "
                         "damaged") from None
    if not isinstance(raw, dict):
        raise ValueError(f"run: {path} holds a {type(raw).__name__}, expected a JSON object")
    try:
        return config_from_dict(raw)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


def _run(config: RunConfig, out: Path, *, progress, trackers, resume: bool, devices=None,
         batch_shards: int = 1, overwrite: bool = False) -> Run:
    from mairl import sharding
    from mairl.trackers import make_trackers
    from mairl.train import train_data

    mesh = sharding.make_mesh(devices, batch_shards)
    s = Setup(config)
    if s.host_loop:  # host-side games step one seed after another: nothing to shard
        if batch_shards > 1:
            raise ValueError(f"batch_shards: {config.algo_name} on {config.env.name} trains "
                             "on the host and cannot split its batch; expected 1")
        if jax.process_count() > 1:
            raise ValueError(f"num_processes: {config.algo_name} on {config.env.name} trains "
                             "on the host of one process; expected a single process")
        mesh = None
    main = sharding.is_main()
    if not main:  # progress and trackers report from process 0
        progress, trackers = None, ()
    s.devices = 1 if mesh is None else mesh.size
    s.batch_shards = sharding.batch_shards(mesh)
    if not resume:
        held = run_files_in(out)
        if held and not overwrite:
            raise ValueError(f"run: {out} already holds a run ({', '.join(held)}); resume it "
                             "(mairl train --resume), replace it (--overwrite, overwrite=True) "
                             "or choose another directory")
    elif s.host_loop:
        raise ValueError(f"resume: {config.algo_name} steps {config.env.name} on the host; "
                         "those environments' state cannot be checkpointed, so the run cannot "
                         "be resumed exactly")
    sharding.barrier("mairl:run:checked")  # every process checked out before any writes
    if main:
        if not resume:
            remove_run_files(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(config_to_dict(config), indent=2) + "\n")
    sharding.barrier("mairl:run:prepared")  # the old run is gone before anyone writes
    tdata = train_data(s.train_demos, s.held)
    num_chunks = config.schedule.updates // config.schedule.eval_every

    def on_chunk(done):  # the host loop's progress
        if progress is not None:
            progress(int(done), num_chunks)

    sinks = [make_trackers(t, out, config_to_dict(config), s.env.agents) if isinstance(t, str)
             else [t] for t in trackers]
    sinks = [t for group in sinks for t in group]

    def log(curves, updates):
        for tracker in sinks:
            tracker.log(curves, updates)

    try:
        if s.host_loop:
            state, curves, updates, compile_s, run_s = _train_host(s, tdata, on_chunk)
            log(curves, updates)
        else:
            state, curves, updates, compile_s, run_s = _train_jitted(
                s, out, tdata, progress, resume, log if sinks else None, mesh=mesh)
    finally:
        for tracker in sinks:
            tracker.close()
    last = {k: np.asarray(v)[:, -1] for k, v in curves.items()}  # (seed, ...)
    final = final_evaluation(s, state.params, config.eval.final_episodes, last)
    summary = summarize(s, final, compile_s, run_s)
    params = sharding.gather(state.params)
    if main:
        try:
            _write_outputs(s, out, params, curves, updates, summary)
        except OSError as err:
            raise _write_failed(err, "the results (metrics.json, curves.csv, params.npz, plots)",
                                out, None if s.host_loop else config.schedule.eval_every) from err
    sharding.barrier("mairl:run:written")  # the directory is complete for every process
    return Run(config, summary, curves, updates, params, s.algo, s.env, out)


def load_run(out: str | Path, setup: Setup | None = None) -> Run:
    """A finished run from its directory: config, metrics, curves and parameters
    (``setup``: the run's :class:`Setup`, if already built)."""
    from mairl.params import load_params

    out = Path(out)
    config = read_config(out)
    s = Setup(config, with_data=False) if setup is None else setup
    missing = [name for name in ("params.npz", "metrics.json") if not (out / name).is_file()]
    if missing:
        hint = (f"resume it with `mairl train --resume {out}`"
                if _checkpoint_steps(out / "checkpoints") else "train it again")
        raise ValueError(f"run: {out} is incomplete: no {' or '.join(missing)} (the run did "
                         f"not finish); {hint}")
    template = jax.eval_shape(s.algo.init, jax.random.key(0), example_batch(s.algo, s.env)).params
    try:
        params, _ = load_params(out / "params.npz", template, leading=1)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"run: {err}") from None
    try:
        summary = json.loads((out / "metrics.json").read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"run: {out / 'metrics.json'} is not valid JSON ({err})") from None
    curves, updates = ({}, np.zeros(0, np.int64))
    if (out / "curves.csv").is_file():
        try:
            curves, updates = read_curves(out / "curves.csv", s.env.agents)
        except (KeyError, ValueError, IndexError, TypeError) as err:
            raise ValueError(f"run: {out / 'curves.csv'} is damaged "
                             f"({type(err).__name__}: {err})") from None
    params = jax.tree.map(jnp.asarray, params)
    return Run(config, summary, curves, updates, params, s.algo, s.env, out)


def evaluate_run(out: str | Path, episodes: int | None = None) -> dict:
    """Evaluate a finished run again (``episodes`` per seed, default the run's
    ``final_episodes``) and write ``eval.json``; returns the summary."""
    out = Path(out)
    s = Setup(read_config(out))
    loaded = load_run(out, s)
    final = final_evaluation(s, loaded.params, episodes or loaded.config.eval.final_episodes)
    summary = summarize(s, final, loaded.metrics.get("compile_time_s", 0.0),
                        loaded.metrics.get("run_time_s", float("nan")))
    write_text(out / "eval.json", json.dumps(summary, indent=2) + "\n")
    return summary
