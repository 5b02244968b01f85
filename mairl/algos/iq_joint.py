"""IQ-Learn with a joint-action critic per agent (the MAMQL paper's "IQL MA").

Each agent ``i`` learns ``Q_i(s, a_1, ..., a_N)`` over joint actions with the same
IQ-Learn objective as MAMQL (``mairl.algos.iq``); its policy is the marginal of
its joint Boltzmann distribution. The output layer grows as ``A^N``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mairl.algos.base import Algo
from mairl.algos.iq import IQConfig, make_iq


@dataclass(frozen=True)
class IQJointConfig(IQConfig):
    """IQ-Learn with joint-action critics, online by default; the fields are
    :class:`mairl.algos.iq.IQConfig`'s."""

    name: ClassVar[str] = "iq-joint"


def make_iq_joint(config: IQConfig, **problem: Any) -> Algo:
    """IQ-Learn with joint-action critics; ``problem``: the keywords of
    :func:`mairl.algos.iq.make_iq` (``num_agents``, ``obs_shape``, ``num_actions``,
    ``env``, ``obs_transform``)."""
    return make_iq(config, head="joint", name="iq-joint", **problem)
