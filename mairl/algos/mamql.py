"""MAMQL: Multi-Agent Marginal Q-Learning from Demonstrations (Haynam et al. 2025).

One marginal soft-Q critic per agent, ``Q_i(s, a_i)``, conditioned on the state
and the agent's own action only; the other agents are marginalized under their
(demonstrated or current) policies. Each critic is trained with the IQ-Learn
objective and the chi-squared regularizer (see ``mairl.algos.iq``); the
recovered reward is ``r_i(s, a_i) = Q_i(s, a_i) - gamma E[V_i(s')]``.

    algo = make_mamql(MAMQLConfig(mode="value_expert"), num_agents=2,
                      obs_shape=(20,), num_actions=3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from mairl.algos.base import Algo
from mairl.algos.iq import IQConfig, IQState, iq_chi2_loss, make_iq

MAMQLState = IQState


@dataclass(frozen=True)
class MAMQLConfig(IQConfig):
    """MAMQL, online by default (``mode="online"``: the value term also reads the
    agents' own rollouts, kept in a replay buffer); the fields are
    :class:`mairl.algos.iq.IQConfig`'s."""

    name: ClassVar[str] = "mamql"


@dataclass(frozen=True)
class MAMQLOfflineConfig(IQConfig):
    """MAMQL from demonstrations alone: ``mode`` is ``value_expert`` (the value
    term on expert states) or ``v0`` (on initial states); no environment is
    stepped."""

    name: ClassVar[str] = "mamql-offline"
    modes: ClassVar[tuple[str, ...]] = ("value_expert", "v0")

    mode: Literal["value_expert", "v0"] = "value_expert"


def make_mamql(config: IQConfig, **problem: Any) -> Algo:
    """MAMQL with marginal critics; ``problem``: the keywords of
    :func:`mairl.algos.iq.make_iq` (``num_agents``, ``obs_shape``, ``num_actions``;
    ``env``, needed for ``mode="online"``; ``obs_transform(obs, agent)``, each
    agent's view of its observation)."""
    name = "mamql" if config.mode == "online" else f"mamql-{config.mode}"
    return make_iq(config, head="marginal", name=name, **problem)


__all__ = ["MAMQLConfig", "MAMQLOfflineConfig", "MAMQLState", "iq_chi2_loss", "make_mamql"]
