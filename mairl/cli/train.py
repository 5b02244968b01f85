"""``mairl train`` and ``mairl eval``: one jitted run per configuration, vmapped over seeds.

A run directory holds ``config.json``, ``metrics.json`` (final values per seed and
their mean), ``curves.csv`` (every metric after every chunk of updates, per seed
and agent), ``params.npz`` (the learned parameters, seeds stacked first) and
plots (``curves.png``, and a recovered-reward heatmap where the game allows).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from mairl.metrics.returns import mean_half_width
from mairl.params import load_params, save_params

AlgoName = Literal["mamql", "mamql-offline", "bc", "iq-joint"]
OfflineMode = Literal["value_expert", "v0"]
ViewName = Literal["agent", "global"]
CONFIG_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (written to ``config.json``)."""

    algo: AlgoName
    env: str
    demos: str
    seeds: int = 3
    updates: int = 10_000
    eval_every: int = 1_000
    seed: int = 0
    alpha: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    batch_size: int = 256
    critic: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    chi2_coef: float = 1.0
    l2: float = 0.0
    target_tau: float | None = None
    offline_mode: OfflineMode = "value_expert"
    num_envs: int = 8
    buffer_size: int = 100_000
    eval_episodes: int = 64
    final_episodes: int = 1000
    heldout_fraction: float = 0.1
    max_demo_episodes: int | None = None
    view: ViewName = "agent"
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self):
        for name, ok, expected in [
            ("seeds", self.seeds >= 1, ">= 1"),
            ("updates", self.updates >= 1, ">= 1"),
            ("eval_every", 1 <= self.eval_every <= self.updates, "in [1, updates]"),
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
            ("final_episodes", self.final_episodes >= 2, ">= 2"),
            ("heldout_fraction", 0 < self.heldout_fraction < 1, "in (0, 1)"),
        ]:
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')}: expected {expected}, "
                                 f"got {getattr(self, name)}")
        if self.updates % self.eval_every:
            raise ValueError(f"--updates: expected a multiple of --eval-every "
                             f"({self.eval_every}), got {self.updates}")


def build_algo(cfg: RunConfig, env):
    from mairl.algos import BCConfig, MAMQLConfig, make_bc, make_iq_joint, make_mamql

    transform = getattr(env, "agent_view", None) if cfg.view == "agent" else None
    dims = dict(num_agents=env.num_agents, obs_shape=tuple(env.obs_shape),
                num_actions=env.num_actions, obs_transform=transform)
    if cfg.algo == "bc":
        bc = BCConfig(alpha=cfg.alpha, gamma=cfg.gamma, learning_rate=cfg.learning_rate,
                      batch_size=cfg.batch_size, l2=cfg.l2, critic=cfg.critic, hidden=cfg.hidden)
        return make_bc(bc, **dims)
    mode = cfg.offline_mode if cfg.algo == "mamql-offline" else "online"
    online_env = env if mode == "online" else None
    iq = MAMQLConfig(mode=mode, alpha=cfg.alpha, gamma=cfg.gamma,
                     learning_rate=cfg.learning_rate, batch_size=cfg.batch_size,
                     chi2_coef=cfg.chi2_coef, l2=cfg.l2, target_tau=cfg.target_tau,
                     critic=cfg.critic, hidden=cfg.hidden, num_envs=cfg.num_envs,
                     buffer_size=cfg.buffer_size)
    make = make_iq_joint if cfg.algo == "iq-joint" else make_mamql
    return make(iq, env=online_env, **dims)


def load_demos(path: str | Path, env=None):
    """A mairl ``.npz`` file, or the MAMQL authors' Gems file (gzip pickle)."""
    from mairl import data

    path = Path(path)
    if not path.exists():
        raise SystemExit(f"error: --demos: no such file {path}")
    with open(path, "rb") as f:
        magic = f.read(2)
    try:
        if magic == b"\x1f\x8b":
            demos = data.from_mamql_gems(path)
            if env is not None and demos.obs.shape[2:] != tuple(env.obs_shape):
                raise ValueError(f"{path}: observations {demos.obs.shape[2:]} do not match "
                                 f"{env.name}'s obs_shape {env.obs_shape}")
            return demos
        return data.load(path, env=env)
    except ValueError as err:
        raise SystemExit(f"error: --demos: {err}") from None


def oracle_for(env, alpha: float, gamma: float):
    """The exact logit equilibrium of a tabular game (``None`` for other games)."""
    if not hasattr(env, "transitions"):
        return None
    from mairl.solvers import soft_value_iteration

    return soft_value_iteration(env, alpha=alpha, gamma=gamma)


def run(cfg: RunConfig, out: Path, *, quiet: bool = False) -> dict:
    """Train ``cfg.seeds`` seeds at once, evaluate, and write the run directory."""
    from mairl import data
    from mairl.cli.commands import _make_env, progress_bar
    from mairl.evaluation import heldout_batch, make_eval_fn
    from mairl.train import TrainConfig, make_train, train_data, train_host

    env = _make_env(cfg.env)
    demos = load_demos(cfg.demos, env)
    if cfg.max_demo_episodes is not None:
        demos = demos.select_episodes(slice(0, cfg.max_demo_episodes))
    train_demos, heldout = data.split_by_episode(
        demos, cfg.heldout_fraction, key=jax.random.key(cfg.seed + 1_000_003)
    )
    oracle = oracle_for(env, cfg.alpha, cfg.gamma)
    algo = build_algo(cfg, env)
    eval_fn = make_eval_fn(algo, env, oracle=oracle, episodes=cfg.eval_episodes)
    held = heldout_batch(heldout)
    tcfg = TrainConfig(num_updates=cfg.updates, eval_every=cfg.eval_every)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    with progress_bar(tcfg.num_chunks, "chunks") as update:
        seen = [0]

        def progress(done):
            seen[0] = max(seen[0], int(np.max(done)))
            update(seen[0])

        keys = jax.random.split(jax.random.key(cfg.seed), cfg.seeds)
        tdata = train_data(train_demos, held)
        if algo.act is not None:  # online on a host-side env: a host loop, compiled lazily
            t1 = time.perf_counter()
            result = train_host(algo, tcfg, lambda: _make_env(cfg.env), keys, tdata, eval_fn,
                                progress=None if quiet else update)
            jax.block_until_ready(result)
            compile_s, run_s = 0.0, time.perf_counter() - t1
        else:
            train_fn = make_train(algo, tcfg, eval_fn, progress=None if quiet else progress)
            t0 = time.perf_counter()
            compiled = jax.jit(jax.vmap(train_fn, in_axes=(0, None))).lower(keys, tdata)
            compiled = compiled.compile()
            compile_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = compiled(keys, tdata)
            jax.block_until_ready(result)
            run_s = time.perf_counter() - t1

    final = final_evaluation(cfg, env, algo, result.state.params, eval_fn, held)
    curves = jax.tree.map(np.asarray, result.curves)
    summary = summarize(cfg, final, curves, compile_s, run_s, train_demos, demos)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_curves(out / "curves.csv", curves, np.asarray(result.updates[0]), cfg.batch_size,
                 env.agents)
    save_params(out / "params.npz", result.state.params)
    try:
        from mairl.plots import plot_curves, plot_reward_heatmap

        plot_curves(out / "curves.png", curves, np.asarray(result.updates[0]), env.agents,
                    title=f"{cfg.algo} on {cfg.env}")
        plot_reward_heatmap(out / "reward.png", algo, jax.tree.map(lambda x: x[0],
                            result.state.params), env, heldout, oracle)
    except ImportError as err:  # pragma: no cover - matplotlib is a core dependency
        print(f"plots skipped: {err}")
    return summary


def final_evaluation(cfg: RunConfig, env, algo, params, eval_fn, held) -> dict:
    """Final metrics per seed: ``eval_fn`` plus returns over ``final_episodes`` episodes."""
    from mairl import metrics
    from mairl.evaluation import policy_fn_of

    keys = jax.random.split(jax.random.key(cfg.seed + 7), cfg.seeds)

    class _S:  # eval_fn reads ``state.params`` only
        def __init__(self, params):
            self.params = params

    jittable = getattr(env, "jittable", True)

    def one(params, key, held):
        key_eval, key_ret = jax.random.split(key)
        out = eval_fn(_S(params), key_eval, held)
        if jittable:
            out["returns"] = metrics.evaluate_returns(key_ret, env, policy_fn_of(algo, params),
                                                      cfg.final_episodes)
        return out

    final = jax.tree.map(np.asarray, jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(params, keys,
                                                                                  held))
    if not jittable:  # host-side env: the same episodes, one seed after another on the host
        final["returns"] = np.stack([
            np.asarray(metrics.evaluate_returns(
                jax.random.split(keys[s])[1], env,
                policy_fn_of(algo, jax.tree.map(lambda x, s=s: x[s], params)),
                cfg.final_episodes,
            ))
            for s in range(cfg.seeds)
        ])
    return final


def summarize(cfg, final, curves, compile_s, run_s, train_demos, demos) -> dict:
    per_seed: dict[str, Any] = {}
    if "returns" in final:
        per_seed["return_per_agent"] = final["returns"].mean(axis=1)  # (seed, agent)
        per_seed["return_mean"] = final["returns"].mean(axis=(1, 2))
    names = {
        "reward_shaping_corr": "reward_shaping_corr",
        "reward_pearson": "reward_pearson",
        "reward_spearman": "reward_spearman",
        "reward_epic": "reward_epic",
        "policy_kl": "policy_kl",
        "action_accuracy": "action_accuracy",
        "imitation_mse": "imitation_mse",
        "reward_pearson_sampled": "reward_pearson_sampled",
        "reward_shaping_corr_sampled": "reward_shaping_corr_sampled",
    }
    if "reward_shaping_corr" not in final and "reward_shaping_corr_sampled" in final:
        names["reward_shaping_corr_sampled"] = "reward_shaping_corr"
        names["reward_pearson_sampled"] = "reward_pearson"
    for key, name in names.items():
        if key in final:
            per_seed[name] = final[key]  # (seed, agent)
    summary: dict[str, Any] = {"algo": cfg.algo, "env": cfg.env, "seeds": cfg.seeds}
    for name, value in per_seed.items():
        value = np.asarray(value, np.float64)
        summary[name] = {
            "per_seed": value.tolist(),
            "mean": value.mean(axis=0).tolist() if value.ndim > 1 else float(value.mean()),
        }
    if "returns" in final:
        mean, half = mean_half_width(final["returns"].mean(axis=1).mean(axis=1))
        summary["return_mean"]["ci95_half_width_over_seeds"] = half
        agent_ci = [mean_half_width(final["returns"].mean(axis=1)[:, i])[1]
                    for i in range(final["returns"].shape[2])]
        summary["return_per_agent"]["ci95_half_width_over_seeds"] = agent_ci
        summary["return_per_agent"]["episodes_per_seed"] = int(final["returns"].shape[1])
    summary.update({
        "updates": cfg.updates,
        "expert_transitions": int(train_demos.num_transitions),
        "expert_transitions_total": int(demos.num_transitions),
        "compile_time_s": compile_s,
        "run_time_s": run_s,
        "wall_time_s": compile_s + run_s,
        "updates_per_s": cfg.updates / run_s,
        "seed_updates_per_s": cfg.seeds * cfg.updates / run_s,
        "device": str(jax.devices()[0]),
    })
    return summary


def write_curves(path: Path, curves: dict, updates: np.ndarray, batch_size: int,
                 agents) -> None:
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
                                    agent, f"{float(v):.6g}"])


def train(
    algo: AlgoName,
    env: str,
    demos: Path,
    out: Path,
    seeds: int = 3,
    updates: int = 10_000,
    eval_every: int = 1_000,
    seed: int = 0,
    alpha: float = 1.0,
    gamma: float = 0.99,
    learning_rate: float = 3e-4,
    batch_size: int = 256,
    critic: str = "mlp",
    hidden: tuple[int, ...] = (256, 256),
    chi2_coef: float = 1.0,
    l2: float = 0.0,
    target_tau: float | None = None,
    offline_mode: OfflineMode = "value_expert",
    num_envs: int = 8,
    buffer_size: int = 100_000,
    eval_episodes: int = 64,
    final_episodes: int = 1000,
    heldout_fraction: float = 0.1,
    max_demo_episodes: int | None = None,
    view: ViewName = "agent",
) -> None:
    """Train an IRL algorithm on demonstrations, several seeds at once.

    Args:
        algo: ``mamql`` (online), ``mamql-offline``, ``bc`` or ``iq-joint``.
        env: environment name (``mairl envs``) or ``tabular:PATH.npz``.
        demos: a mairl ``.npz`` file or the MAMQL authors' Gems file.
        out: run directory to write.
        seeds: seeds trained side by side (vmapped).
        updates: gradient updates per seed.
        eval_every: updates between evaluations.
        seed: base random seed.
        alpha: Boltzmann temperature.
        gamma: discount.
        learning_rate: Adam step size.
        batch_size: expert (and policy) transitions per update.
        critic: ``mlp``, ``cnn``, ``gems-paper`` or ``tabular``.
        hidden: hidden widths of the ``mlp`` critic.
        chi2_coef: chi-squared regularizer coefficient.
        l2: squared-parameter penalty.
        target_tau: Polyak rate of a target critic (none by default).
        offline_mode: value term of ``mamql-offline``: expert states or initial states.
        num_envs: environments stepped per update in online training.
        buffer_size: replay capacity (transitions) of online training.
        eval_episodes: episodes per evaluation during training.
        final_episodes: episodes per seed in the final evaluation.
        heldout_fraction: share of demonstrated episodes held out for evaluation.
        max_demo_episodes: use only the first episodes of the demonstrations.
        view: ``agent``: each critic sees the env's per-agent view of the
            observation where the env defines one (``env.agent_view``; Gems:
            egocentric maps); ``global``: the raw observation.
    """
    try:
        cfg = RunConfig(algo=algo, env=env, demos=str(demos), seeds=seeds, updates=updates,
                        eval_every=eval_every, seed=seed, alpha=alpha, gamma=gamma,
                        learning_rate=learning_rate, batch_size=batch_size, critic=critic,
                        hidden=tuple(hidden), chi2_coef=chi2_coef, l2=l2, target_tau=target_tau,
                        offline_mode=offline_mode, num_envs=num_envs, buffer_size=buffer_size,
                        eval_episodes=eval_episodes, final_episodes=final_episodes,
                        heldout_fraction=heldout_fraction, max_demo_episodes=max_demo_episodes,
                        view=view)
        summary = run(cfg, Path(out))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print_summary(summary)
    print(f"run written to {out}")


def print_summary(summary: dict) -> None:
    def fmt(entry):
        mean = entry["mean"]
        return ", ".join(f"{m:.3f}" for m in mean) if isinstance(mean, list) else f"{mean:.3f}"

    print(f"{summary['algo']} on {summary['env']}, {summary['seeds']} seeds, "
          f"{summary['updates']} updates: {summary['updates_per_s']:.0f} updates/s per seed, "
          f"wall {summary['wall_time_s']:.1f} s (compile {summary['compile_time_s']:.1f} s)")
    for key in ("return_per_agent", "return_mean", "reward_shaping_corr", "reward_pearson",
                "reward_epic", "policy_kl", "action_accuracy", "imitation_mse"):
        if key in summary:
            print(f"  {key:<20} {fmt(summary[key])}")


def evaluate_run(run: Path, episodes: int | None = None) -> None:
    """Re-evaluate a finished run from its directory.

    Args:
        run: the run directory written by ``mairl train``.
        episodes: episodes per seed (default: the run's ``final_episodes``).
    """
    from mairl import data
    from mairl.cli.commands import _make_env
    from mairl.evaluation import heldout_batch, make_eval_fn
    from mairl.train import sample_batch, train_data

    config_path = run / "config.json"
    if not config_path.exists():
        raise SystemExit(f"error: --run: {config_path} not found (not a run directory?)")
    raw = json.loads(config_path.read_text())
    raw["hidden"] = tuple(raw.get("hidden", (256, 256)))
    try:
        cfg = RunConfig(**raw)
    except TypeError as err:
        raise SystemExit(f"error: {config_path}: {err}") from None
    if episodes is not None:
        cfg = RunConfig(**{**asdict(cfg), "final_episodes": episodes})
    env = _make_env(cfg.env)
    demos = load_demos(cfg.demos, env)
    if cfg.max_demo_episodes is not None:
        demos = demos.select_episodes(slice(0, cfg.max_demo_episodes))
    train_demos, heldout = data.split_by_episode(
        demos, cfg.heldout_fraction, key=jax.random.key(cfg.seed + 1_000_003)
    )
    algo = build_algo(cfg, env)
    example = sample_batch(jax.random.key(0), train_data(train_demos), cfg.batch_size,
                           cfg.offline_mode == "v0" and cfg.algo == "mamql-offline")
    like = algo.init(jax.random.key(0), example).params
    try:
        params, _ = load_params(run / "params.npz", like, leading=1)
        params = jax.tree.map(jnp.asarray, params)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from None
    eval_fn = make_eval_fn(algo, env, oracle=oracle_for(env, cfg.alpha, cfg.gamma),
                           episodes=cfg.eval_episodes)
    final = final_evaluation(cfg, env, algo, params, eval_fn, heldout_batch(heldout))
    old = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    summary = summarize(cfg, final, {}, old.get("compile_time_s", 0.0),
                        old.get("run_time_s", float("nan")), train_demos, demos)
    (run / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    print(f"written {run / 'eval.json'}")
