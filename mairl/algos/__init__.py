"""Every learner, inverse and forward alike: ``init`` / ``update`` pure functions
plus read-outs (:class:`Algo`), one frozen config class per algorithm.

- ``mamql``: marginal soft-Q critics, online (``mamql``) or from demonstrations
  alone (``mamql-offline``: ``value_expert`` / ``v0``);
- ``iq-joint``: IQ-Learn with a joint-action critic per agent;
- ``fiq``: factorized IQ-Learn for cooperative games: per-agent critics mixed
  into one team critic (VDN, a state-weighted sum or QMIX), offline or online;
- ``bc``: behaviour cloning;
- ``mamql-continuous``, ``mamql-continuous-offline``: MAMQL for continuous
  (``Box``) actions: marginal critics ``Q_i(s, a_i)`` and tanh-Gaussian actors;
- ``bc-continuous``: behaviour cloning of tanh-Gaussian actors;
- ``sac``: forward multi-agent soft actor-critic on the true rewards (continuous);
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
from mairl.algos.bc_continuous import BCContinuousConfig, make_bc_continuous
from mairl.algos.factorized import FIQConfig, make_fiq
from mairl.algos.iq import IQConfig, IQState
from mairl.algos.iq_joint import IQJointConfig, make_iq_joint
from mairl.algos.mamql import MAMQLConfig, MAMQLOfflineConfig, make_mamql
from mairl.algos.mamql_continuous import (
    MAMQLContinuousConfig,
    MAMQLContinuousOfflineConfig,
    make_mamql_continuous,
)
from mairl.algos.ppo import PPOConfig, make_ppo
from mairl.algos.sac import SACConfig, make_sac
from mairl.algos.soft_q import SoftQConfig, make_soft_q


class AlgoSpec(NamedTuple):
    """A registered algorithm: its config class, factory, a one-line summary and the
    actions it handles (``discrete``: ``Discrete`` spaces, built with ``num_actions``;
    ``continuous``: ``Box`` spaces, built with ``action_dim``)."""

    config: type
    make: Callable[..., Algo]
    summary: str
    actions: str = "discrete"


ALGOS: dict[str, AlgoSpec] = {
    "mamql": AlgoSpec(MAMQLConfig, make_mamql,
                      "MAMQL, online: marginal soft-Q critics, value term on own rollouts"),
    "mamql-offline": AlgoSpec(MAMQLOfflineConfig, make_mamql,
                              "MAMQL from demonstrations alone (value_expert or v0)"),
    "iq-joint": AlgoSpec(IQJointConfig, make_iq_joint,
                         "IQ-Learn with joint-action critics (the paper's IQL MA)"),
    "fiq": AlgoSpec(FIQConfig, make_fiq,
                    "factorized IQ-Learn (cooperative): per-agent critics, a mixer, a team "
                    "critic; offline or online (--mode)"),
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
    "mamql-continuous": AlgoSpec(
        MAMQLContinuousConfig, make_mamql_continuous,
        "MAMQL, continuous actions, online: critics Q_i(s, a_i), tanh-Gaussian actors",
        "continuous"),
    "mamql-continuous-offline": AlgoSpec(
        MAMQLContinuousOfflineConfig, make_mamql_continuous,
        "MAMQL, continuous actions, from demonstrations alone (value_expert or v0)",
        "continuous"),
    "bc-continuous": AlgoSpec(BCContinuousConfig, make_bc_continuous,
                              "behaviour cloning of tanh-Gaussian actors (continuous actions)",
                              "continuous"),
    "sac": AlgoSpec(SACConfig, make_sac,
                    "forward: multi-agent soft actor-critic on the true rewards (continuous)",
                    "continuous"),
}

#: Any registered algorithm's config.
AlgoConfig = (MAMQLConfig | MAMQLOfflineConfig | IQJointConfig | FIQConfig | BCConfig
              | SoftQConfig | PPOConfig | MAGAILConfig | MAAIRLConfig | MLIRLConfig
              | MAMQLContinuousConfig | MAMQLContinuousOfflineConfig | BCContinuousConfig
              | SACConfig)


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


def make_algo(config: Any, *, num_agents: int, obs_shape: tuple[int, ...],
              num_actions: int | None = None, action_dim: int | None = None, env: Any = None,
              obs_transform: Any = None, data_axis: str | None = None) -> Algo:
    """The algorithm that ``config`` configures (``env`` where it steps one):
    discrete learners take ``num_actions``, continuous ones ``action_dim``
    (:class:`AlgoSpec`); ``data_axis``: its update data-parallel over that mesh
    axis (the algorithms of :data:`DATA_PARALLEL`)."""
    name = algo_name(config)
    spec = ALGOS[name]
    if spec.actions == "continuous":
        if action_dim is None:
            raise ValueError(f"algo: {name} acts in continuous (Box) action spaces; the game "
                             f"has discrete actions (use {_discrete_twin(name)})")
        if data_axis is not None:
            raise ValueError(f"batch_shards: {name} has no data-parallel update; expected 1 "
                             f"shard, or one of {list(DATA_PARALLEL)}")
        return spec.make(config, num_agents=num_agents, obs_shape=tuple(obs_shape),
                         action_dim=int(action_dim), env=env, obs_transform=obs_transform)
    if num_actions is None:
        continuous = [n for n, s in ALGOS.items() if s.actions == "continuous"]
        raise ValueError(f"algo: {name} needs discrete actions; the game's actions are "
                         f"continuous (Box); expected one of {continuous}")
    extra = {}
    if data_axis is not None:
        if name not in DATA_PARALLEL:
            raise ValueError(f"batch_shards: {name} has no data-parallel update; expected 1 "
                             f"shard, or one of {list(DATA_PARALLEL)}")
        extra["data_axis"] = data_axis
    return spec.make(config, num_agents=num_agents, obs_shape=tuple(obs_shape),
                     num_actions=num_actions, env=env, obs_transform=obs_transform, **extra)


def _discrete_twin(name: str) -> str:
    twin = name.replace("-continuous", "")
    return twin if twin in ALGOS else "a discrete learner"


__all__ = ["ALGOS", "Algo", "AlgoConfig", "AlgoSpec", "BCConfig", "BCContinuousConfig", "Batch",
           "FAMILY_DEFAULTS", "FIQConfig", "IQConfig", "IQJointConfig", "IQState", "MAAIRLConfig",
           "MAGAILConfig", "MAMQLConfig", "MAMQLContinuousConfig", "MAMQLContinuousOfflineConfig",
           "MAMQLOfflineConfig", "MLIRLConfig", "Needs", "PPOConfig",
           "REWARD_LEARNER_FAMILY_DEFAULTS", "RewardLearnerConfig", "SACConfig", "SoftQConfig",
           "Transition",
           "algo_name", "family_config", "make_algo", "make_bc", "make_bc_continuous", "make_fiq",
           "make_iq_joint", "make_ma_airl", "make_ma_gail", "make_mamql", "make_mamql_continuous",
           "make_ml_irl", "make_ppo", "make_sac", "make_soft_q"]
