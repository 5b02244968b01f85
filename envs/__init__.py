"""mairl's environments: JAX games and adapters, behind one functional protocol.

``envs.make(name, **kwargs)`` builds a registered game; ``envs.registered()``
lists them. Game modules are imported on first use, so ``import envs`` is cheap.
"""

from envs.core import Environment, EnvState
from envs.registry import EnvSpec, make, register, register_prefix, registered, spec
from envs.spaces import Box, Discrete

__all__ = [
    "Box",
    "Discrete",
    "EnvSpec",
    "EnvState",
    "Environment",
    "make",
    "register",
    "register_prefix",
    "registered",
    "spec",
]

# -- Gems: the MAMQL paper's gridworld -------------------------------------------------
register(
    "gems",
    "envs.gems:Gems",
    family="gems",
    description="MAMQL Gems gridworld, 2 agents, 5x15x15 map observations",
)
register(
    "gems-compact",
    "envs.gems:Gems",
    family="gems",
    description="Gems with compact coordinate observations (22 numbers per agent)",
    obs_mode="compact",
)

# -- tabular general-sum Markov games ----------------------------------------------------
_TABULAR = "envs.tabular.games"
for _name, _fn, _doc in [
    ("prisoners-dilemma", "prisoners_dilemma", "repeated prisoner's dilemma (one state)"),
    ("stag-hunt", "stag_hunt", "repeated stag hunt (one state)"),
    ("chicken", "chicken", "repeated game of chicken (one state)"),
    ("battle-of-the-sexes", "battle_of_the_sexes", "repeated battle of the sexes (one state)"),
    ("grid-rendezvous", "grid_rendezvous", "2-agent grid game: cooperative bonus for meeting"),
    ("grid-crossing", "grid_crossing", "2-agent grid game: agents cross, collisions cost"),
    ("random-game", "random_game_env", "random general-sum game (20 states, 3 actions, 2 agents)"),
]:
    register(_name, f"{_TABULAR}:{_fn}", family="tabular", description=_doc)
register_prefix("tabular", "envs.tabular.game:load_game")

# -- highway-env: the MAMQL multi-agent intersection (envs/intersection.py) ---------------
register(
    "intersection",
    "envs.intersection:Intersection",
    family="highway",
    jittable=False,
    description="highway-env intersection, 4 vehicles, 3x7 kinematics, slower/idle/faster",
)
register(
    "intersection-speed",
    "envs.intersection:Intersection",
    family="highway",
    jittable=False,
    description="intersection with informative velocity features (vx, vy over [-20, 20] m/s)",
    speed_range=(-20.0, 20.0),
)
