"""``make demo``: the Gems reproduction of the MAMQL paper, on the CPU, in minutes.

Records Gems demonstrations from the shipped soft-Q expert (or reads the MAMQL
authors' own file with ``--demos``), trains MAMQL, IQ-Learn with joint-action
critics and behaviour cloning on them, several seeds each in one jitted run per
algorithm, and prints a table: per-agent return with a 95% interval over seeds,
the behavioural KL to the expert and the action accuracy on held-out
demonstrations, and wall time, next to the expert's row. Run directories with
metrics, curves and plots go under ``--out``.

Like for like: all three learn from the same fixed demonstrations (IQ-Learn in
its offline ``value_expert`` form), and on the shipped expert's data they learn
at the expert's own temperature and discount (``alpha`` 0.05, ``gamma`` 0.95,
read from its file), so an exact recovery is the expert's reward up to shaping.
Reward recovery on Gems is measured by ``mairl metrics calibrate`` and
``experiments/gems_reward.py`` (a plain or linear-potential correlation on
held-out transitions is not informative there: see
``mairl.metrics.calibration``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

AlgoName = Literal["mamql-offline", "iq-joint", "bc"]


@dataclass(frozen=True)
class DemoArgs:
    """The Gems reproduction of the MAMQL paper, on the CPU, in minutes.

    Attributes:
        demos: demonstrations: the MAMQL authors' Gems file or a mairl ``.npz``
            (default: recorded from the shipped expert).
        out: directory of the runs, curves and plots.
        seeds: seeds per algorithm, trained side by side.
        updates: gradient updates per seed.
        episodes: expert episodes to record when ``demos`` is not given.
        algos: algorithms to train.
    """

    demos: Path | None = None
    out: Path = Path("runs/demo")
    seeds: int = 3
    updates: int = 2000
    episodes: int = 1000
    algos: tuple[AlgoName, ...] = ("mamql-offline", "iq-joint", "bc")


def run_config(algo: str, demos: Path, args: DemoArgs, expert: Path | None = None):
    """The run of one algorithm in the demo: the MLP critic on the egocentric view,
    offline. With ``expert`` (the soft-Q file that recorded ``demos``) the learners
    use its ``alpha`` and ``gamma`` and report the held-out KL to it."""
    from mairl import runs
    from mairl.algos import ALGOS

    options = {"iq-joint": {"mode": "value_expert"}}.get(algo, {})
    if expert is not None:
        from mairl.params import load_params

        meta = load_params(expert)[1]
        options.update(alpha=float(meta["alpha"]), gamma=float(meta["gamma"]))
    return runs.RunConfig(
        algo=ALGOS[algo].config(learning_rate=5e-4, hidden=(128, 128), **options),
        env=runs.EnvConfig("gems"),
        data=runs.DataConfig(demos=str(demos)),
        schedule=runs.ScheduleConfig(seeds=args.seeds, updates=args.updates,
                                     eval_every=max(args.updates // 4, 1)),
        eval=runs.EvalConfig(eval_episodes=32, final_episodes=300,
                             expert=None if expert is None else str(expert)),
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m mairl.demo``: the Gems reproduction, configured from the command line."""
    import tyro

    args = tyro.cli(DemoArgs, args=argv, prog="python -m mairl.demo")
    # A second demo reuses the compiled programs (about 40 s of the first one's time).
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(args.out / ".jax-cache"))

    import jax

    import envs
    from mairl import data, runs
    from mairl.data import episode_returns
    from mairl.experts import GEMS_SOFT_Q_PARAMS, expert_alpha_gamma, make_expert
    from mairl.utils import machine, progress_bar

    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = envs.make("gems")
    expert_file = None
    if args.demos is None:
        expert_file = GEMS_SOFT_Q_PARAMS
        demos_path = args.out / "gems_expert_demos.npz"
        expert = make_expert(env, "soft-q")
        with progress_bar(args.episodes, "episodes") as update:
            demos = data.collect(jax.random.key(0), env, expert, args.episodes, num_envs=250,
                                 progress=update, **dict(zip(
                                     ("expert_alpha", "expert_gamma"),
                                     expert_alpha_gamma("soft-q"), strict=True)))
        demos.save(demos_path)
        source = f"shipped soft-Q expert, {args.episodes} episodes -> {demos_path}"
    else:
        demos_path = args.demos
        demos = runs.load_demos(demos_path, env)
        source = f"{demos_path}"
    expert_returns = episode_returns(demos)  # (episode, agent)
    print(f"demonstrations: {source}: {demos.num_transitions} transitions, "
          f"{demos.num_episodes} episodes")

    rows = []
    for algo in args.algos:
        print(f"\n== {algo}: {args.seeds} seeds x {args.updates} updates")
        config = run_config(algo, demos_path, args, expert_file)
        with progress_bar(config.schedule.updates // config.schedule.eval_every,
                          "chunks") as update:
            rows.append(runs.run(config, args.out / algo, progress=update,
                                 overwrite=True).metrics)

    print_table(expert_returns, rows)
    (args.out / "summary.json").write_text(json.dumps(
        {"expert_return_per_agent": expert_returns.mean(0).tolist(), "runs": rows}, indent=2))
    print(f"\nruns, curves and plots in {args.out}/; total {time.perf_counter() - t_start:.0f} s")


def print_table(expert_returns: np.ndarray, rows: list[dict]) -> None:
    """Print the expert's and each learner's per-agent returns, held-out KL, accuracy and time."""
    from mairl.metrics import mean_half_width

    head = (f"{'':<15}{'return agent_0':>18}{'return agent_1':>18}{'held-out KL':>13}"
            f"{'action acc':>12}{'wall s':>8}")
    print("\n" + head)
    print("-" * len(head))
    e0, e1 = (mean_half_width(expert_returns[:, i]) for i in range(2))
    print(f"{'expert':<15}{e0[0]:>10.2f} ± {e0[1]:<5.2f}{e1[0]:>10.2f} ± {e1[1]:<5.2f}"
          f"{0.0:>13.3f}{'':>12}{'':>8}")
    for r in rows:
        per_seed = np.asarray(r["return_per_agent"]["per_seed"])  # (seed, agent)
        a0, a1 = (mean_half_width(per_seed[:, i]) for i in range(2))
        kl = np.mean(r["heldout_kl"]["mean"]) if "heldout_kl" in r else float("nan")
        acc = np.mean(r["action_accuracy"]["mean"])
        print(f"{r['algo']:<15}{a0[0]:>10.2f} ± {a0[1]:<5.2f}{a1[0]:>10.2f} ± {a1[1]:<5.2f}"
              f"{kl:>13.3f}{acc:>12.3f}{r['wall_time_s']:>8.0f}")
    print("return: mean over seeds (300 episodes each) ± 95% t-interval over seeds; expert: "
          "over demonstrated episodes; both under the demonstrations' episode rule. held-out KL: "
          "KL(expert || learner) on held-out demonstrated states, mean over agents "
          "(nan: the expert that made the data is unknown); action acc: greedy action = "
          "demonstrated action.")


if __name__ == "__main__":
    main()
