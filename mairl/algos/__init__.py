"""Multi-agent IRL algorithms: ``init`` / ``update`` pure functions plus read-outs.

- ``mamql``: marginal soft-Q critics (online, or offline ``value_expert`` / ``v0``);
- ``iq_joint``: IQ-Learn with a joint-action critic per agent;
- ``bc``: behaviour cloning.
"""

from mairl.algos.base import Algo, Batch, Transition
from mairl.algos.bc import BCConfig, make_bc
from mairl.algos.iq import IQConfig, IQState
from mairl.algos.iq_joint import make_iq_joint
from mairl.algos.mamql import MAMQLConfig, make_mamql

ALGOS = {
    "mamql": make_mamql,
    "mamql-offline": make_mamql,
    "iq-joint": make_iq_joint,
    "bc": make_bc,
}

__all__ = ["ALGOS", "Algo", "BCConfig", "Batch", "IQConfig", "IQState", "MAMQLConfig",
           "Transition", "make_bc", "make_iq_joint", "make_mamql"]
