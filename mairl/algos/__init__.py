"""Every learner, inverse and forward alike: ``init`` / ``update`` pure functions
plus read-outs (:class:`Algo`), one frozen config class per algorithm.

- ``mamql``: marginal soft-Q critics, online (``mamql``) or from demonstrations
  alone (``mamql-offline``: ``value_expert`` / ``v0``);
- ``iq-joint``: IQ-Learn with a joint-action critic per agent;
- ``fiq``: factorized IQ-Learn for cooperative games: per-agent critics mixed
  into one team critic (VDN, a state-weighted sum or QMIX), from demonstrations;
- ``bc``: behaviour cloning;
- ``soft-q``: forward multi-agent soft Q-learning on the true rewards;
- ``ppo``: forward PPO on the true rewards;
- ``ma-gail``, ``ma-airl``: adversarial imitation / IRL with one discriminator
  per agent, on the soft-Q learner as policy optimiser;
- ``ml-irl``: single-loop maximum-likelihood IRL, per-agent rewards (this
  library's multi-agent extension).

:data:`ALGOS` maps each name to its config class and factory; :func:`make_algo`
builds an algorithm from its config alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from mairl.algos.adversarial import (
    MAAIRLConfig,
    MAGAILConfig,
    MLIRLConfig,
    RewardLearnerConfig,
    make_ma_airl,
    make_ma_gail,
    make_ml_irl,
)
from mairl.algos.base import Algo, Batch, Needs, Transition
from mairl.algos.bc import BCConfig, make_bc
from mairl.algos.factorized import FIQConfig, make_fiq
from mairl.algos.iq import IQConfig, IQState
from mairl.algos.iq_joint import IQJointConfig, make_iq_joint
from mairl.algos.mamql import MAMQLConfig, MAMQLOfflineConfig, make_mamql
from mairl.algos.ppo import PPOConfig, make_ppo
from mairl.algos.soft_q import SoftQConfig, make_soft_q


class AlgoSpec(NamedTuple):
    """A registered algorithm: its config class, factory and a one-line summary."""

    config: type
    make: Callable[..., Algo]
    summary: str


ALGOS: dict[str, AlgoSpec] = {
    "mamql": AlgoSpec(MAMQLConfig, make_mamql,
                      "MAMQL, online: marginal soft-Q critics, value term on own rollouts"),
    "mamql-offline": AlgoSpec(MAMQLOfflineConfig, make_mamql,
                              "MAMQL from demonstrations alone (value_expert or v0)"),
    "iq-joint": AlgoSpec(IQJointConfig, make_iq_joint,
                         "IQ-Learn with joint-action critics (the paper's IQL MA)"),
    "fiq": AlgoSpec(FIQConfig, make_fiq,
                    "factorized IQ-Learn (cooperative): per-agent critics, a mixer, a team "
                    "critic, from demonstrations"),
    "bc": AlgoSpec(BCConfig, make_bc, "behaviour cloning"),
    "soft-q": AlgoSpec(SoftQConfig, make_soft_q,
                       "forward: multi-agent soft Q-learning on the true rewards"),
    "ppo": AlgoSpec(PPOConfig, make_ppo, "forward: PPO on the true rewards"),
    "ma-gail": AlgoSpec(MAGAILConfig, make_ma_gail,
                        "MA-GAIL: a discriminator per agent, soft-Q policy step"),
    "ma-airl": AlgoSpec(MAAIRLConfig, make_ma_airl,
                        "MA-AIRL: f = g + gamma h(s') - h(s) per agent, soft-Q policy step"),
    "ml-irl": AlgoSpec(MLIRLConfig, make_ml_irl,
                       "ML-IRL (multi-agent, single loop): soft-Q step, likelihood step on r_i"),
}

#: Any registered algorithm's config.
AlgoConfig = (MAMQLConfig | MAMQLOfflineConfig | IQJointConfig | FIQConfig | BCConfig
              | SoftQConfig | PPOConfig | MAGAILConfig | MAAIRLConfig | MLIRLConfig)


def algo_name(config: Any) -> str:
    """The registry name of ``config``'s algorithm."""
    for name, spec in ALGOS.items():
        if type(config) is spec.config:
            return name
    raise ValueError(f"algo config: {type(config).__name__} is not a registered algorithm's "
                     f"config; expected one of {[s.config.__name__ for s in ALGOS.values()]}")


#: Defaults per environment family, for the IQ-Learn-objective learners (``IQConfig``:
#: ``mamql``, ``mamql-offline``, ``iq-joint``, ``fiq``). Tabular games: a table of Q-values
#: per agent (one-hot states, nothing to generalise), a chi-squared coefficient of
#: 0.5 and a larger step and batch, the settings of ``experiments/tabular_mamql.py``.
#: With the generic defaults (an MLP critic, coefficient 1, Adam 3e-4, batch 256),
#: offline MAMQL on a 3-agent random game (20 states, 3 actions, 50,000
#: demonstrated transitions, gamma 0.99, 10,000 updates, 3 seeds) reached policy
#: KL 0.008-0.010 but a shaping-aware correlation of only 0.85-0.94; with these,
#: KL 0.001-0.002 and 0.988-0.995 (``mairl train --algo mamql-offline --env
#: tabular:GAME --demos FILE`` and nothing else).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "tabular": {"critic": "tabular", "chi2_coef": 0.5, "learning_rate": 3e-3,
                "batch_size": 1024},
}


#: Defaults per environment family for MA-GAIL, MA-AIRL and ML-IRL
#: (``RewardLearnerConfig``). Tabular games: tables for the critics and rewards,
#: large batches and small reward steps (Adam moves each table entry by about its
#: step size, so the step sets the noise floor of the recovered reward). With
#: these, on ``random-game`` (gamma 0.99, 50,000 demonstrated transitions), ML-IRL
#: and MA-AIRL reach policy KL <= 0.004 and a shaping-aware correlation >= 0.98
#: for both agents in 20,000 updates (``docs/algorithms.md``).
REWARD_LEARNER_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "tabular": {"critic": "tabular", "learning_rate": 0.02, "tau": 0.02, "batch_size": 1024,
                "num_envs": 8, "buffer_size": 20_000, "warmup_steps": 8,
                "reward_learning_rate": 5e-4, "reward_batch_size": 1024,
                "policy_window": 4096},
}


def family_config(name: str, family: str | None) -> Any:
    """The default config of algorithm ``name`` on an environment of ``family``
    (``envs.family_of``): :data:`FAMILY_DEFAULTS` applied to the IQ-Learn-objective
    learners, :data:`REWARD_LEARNER_FAMILY_DEFAULTS` to MA-GAIL, MA-AIRL and
    ML-IRL, the plain defaults otherwise."""
    spec = ALGOS[name]
    if issubclass(spec.config, IQConfig):
        overrides = FAMILY_DEFAULTS.get(family or "", {})
    elif issubclass(spec.config, RewardLearnerConfig):
        overrides = REWARD_LEARNER_FAMILY_DEFAULTS.get(family or "", {})
    else:
        overrides = {}
    return spec.config(**overrides)


#: Algorithms whose update can be data-parallel (``data_axis``, ``mairl.sharding``).
DATA_PARALLEL = ("mamql", "mamql-offline", "iq-joint")


def make_algo(config: Any, *, num_agents: int, obs_shape: tuple[int, ...], num_actions: int,
              env: Any = None, obs_transform: Any = None, data_axis: str | None = None) -> Algo:
    """The algorithm that ``config`` configures (``env`` where it steps one);
    ``data_axis``: its update data-parallel over that mesh axis (the algorithms of
    :data:`DATA_PARALLEL`)."""
    name = algo_name(config)
    spec = ALGOS[name]
    extra = {}
    if data_axis is not None:
        if name not in DATA_PARALLEL:
            raise ValueError(f"batch_shards: {name} has no data-parallel update; expected 1 "
                             f"shard, or one of {list(DATA_PARALLEL)}")
        extra["data_axis"] = data_axis
    return spec.make(config, num_agents=num_agents, obs_shape=tuple(obs_shape),
                     num_actions=num_actions, env=env, obs_transform=obs_transform, **extra)


__all__ = ["ALGOS", "Algo", "AlgoConfig", "AlgoSpec", "BCConfig", "Batch", "FIQConfig",
           "IQConfig", "IQJointConfig", "IQState", "MAAIRLConfig", "MAGAILConfig", "MAMQLConfig",
           "MAMQLOfflineConfig", "MLIRLConfig", "Needs", "FAMILY_DEFAULTS", "PPOConfig",
           "REWARD_LEARNER_FAMILY_DEFAULTS", "RewardLearnerConfig",
           "SoftQConfig", "Transition", "algo_name", "family_config", "make_algo", "make_bc",
           "make_fiq", "make_iq_joint", "make_ma_airl", "make_ma_gail", "make_mamql",
           "make_ml_irl", "make_ppo", "make_soft_q"]
