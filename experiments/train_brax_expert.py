"""Train a multi-agent SAC expert on a Brax game and record its demonstrations.

Multi-agent soft actor-critic (``mairl.algos.sac``: one marginal critic
``Q_i(s, a_i)`` and one tanh-Gaussian actor per agent, on the global
observation, each agent trained on its own true reward) on a game of
``envs.brax_games`` (default ``ant-4x2``), run by ``mairl.runs.run`` (a run
directory with curves and a checkpoint every ``--eval-every`` updates;
``--resume`` goes on from the last one after an interruption). At the end the
script measures the per-agent undiscounted return of the expert (actions drawn
from its actors), of its greedy actions (the tanh of the actors' means), of
uniformly random actions and of zero actions (the body left alone: on the ant
this collects the healthy bonus without any control cost, the floor that a
learner must beat to have learned anything beyond "do nothing"), over
``--final-episodes`` episodes, and records ``--demo-episodes`` episodes of the
expert's sampled actions to ``--demos`` (the input of the continuous learners,
``experiments/continuous_mamql.py --env ant-4x2 --demos FILE``).

The run directory is the expert: ``mairl.runs.load_run(run_dir).policy_fn()``
acts with it, and ``mairl demos --expert run --expert-params RUN_DIR`` records
more of its episodes.

    python experiments/train_brax_expert.py --env ant-4x2 --updates 60000
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

from mairl import report, runs
from mairl.algos import SACConfig


@dataclass(frozen=True)
class Args(report.ExpertArgs):
    """Multi-agent SAC on a Brax game (and the fields of ``mairl.report.ExpertArgs``).

    Attributes:
        env: the game (``envs.brax_games``).
        algo: the SAC learner (each update steps ``algo.num_envs`` games once).
        demo_episodes: expert episodes recorded to ``demos``.
        demos: where to write the expert's demonstrations (``.npz``).
    """

    env: str = "ant-4x2"
    algo: SACConfig = SACConfig(alpha=0.05, num_envs=4, hidden=(256, 256), buffer_size=400_000,
                                warmup_steps=1000)
    updates: int = 60_000
    eval_every: int = 2000
    run_dir: Path = Path("runs/brax_expert")
    demo_episodes: int = 20
    demos: Path = Path("runs/brax_expert_demos.npz")


def main(args: Args) -> None:
    t0 = time.perf_counter()
    env = runs.make_env(args.env)
    print(f"SAC on {env.name}: {env.num_agents} agents, obs {env.obs_shape}, "
          f"{args.updates} updates x {args.algo.num_envs} env steps", flush=True)

    def line(m: dict[str, float]) -> str:
        return (f"return {m['return']:8.1f}  replayed reward {m['train/reward']:6.3f}  "
                f"critic loss {m['train/loss']:8.3f}")

    run = report.train_forward(args.algo, args.env, args, [report.CurvePrinter(line, t0)])
    print(f"trained in {time.perf_counter() - t0:.1f} s (run in {args.run_dir})", flush=True)

    expert = run.policy_fn()
    zero = jnp.zeros((env.num_agents,) + env.action_spaces[0].shape, jnp.float32)
    policies = report.baselines(env, expert, greedy=run.policy_fn(greedy=True),
                                zero=lambda key, obs: zero)
    measured = report.compare(report.returns_measure(env), policies, {},
                              episodes=args.final_episodes, seed_episodes=args.final_episodes)
    rows = {name: report.per_agent(m.stats["returns"]) for name, m in measured.items()}
    print(report.format_table(rows, report.agent_columns("return", env.agents, precision=1),
                              title=f"{env.name}: per-agent return over {args.final_episodes} "
                                    "episodes, mean ± 95% t-interval"))
    report.record_demos(jax.random.key(args.seed + 1), env, expert, args.demo_episodes,
                        args.demos, num_envs=min(args.demo_episodes, 20))
    report.write_summary(args.run_dir / "expert_summary.json", args,
                         rows={name: {"return_per_agent": r} for name, r in rows.items()})
    print(f"demonstrations in {args.demos}; total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
