"""IQ-Learn with a joint-action critic per agent (the MAMQL paper's "IQL MA").

Each agent ``i`` learns ``Q_i(s, a_1, ..., a_N)`` over joint actions with the same
IQ-Learn objective as MAMQL (``mairl.algos.iq``); its policy is the marginal of
its joint Boltzmann distribution. The output layer grows as ``A^N``.
"""

from __future__ import annotations

from typing import Any

from mairl.algos.base import Algo
from mairl.algos.iq import IQConfig, make_iq

IQJointConfig = IQConfig


def make_iq_joint(
    config: IQJointConfig,
    *,
    num_agents: int,
    obs_shape: tuple[int, ...],
    num_actions: int,
    env: Any = None,
    obs_transform: Any = None,
) -> Algo:
    return make_iq(config, num_agents=num_agents, obs_shape=obs_shape,
                   num_actions=num_actions, head="joint", env=env, name="iq-joint",
                   obs_transform=obs_transform)
