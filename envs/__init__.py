"""mairl's environments: JAX games and adapters, behind one functional protocol.

``envs.make(name, **kwargs)`` builds a registered game; ``envs.registered()``
lists them. Game modules are imported on first use, so ``import envs`` is cheap.
"""

from envs.core import Environment, EnvState
from envs.registry import (
    EnvSpec,
    close_matches,
    family_of,
    known,
    make,
    prefixes,
    register,
    register_prefix,
    registered,
    spec,
)
from envs.spaces import Box, Discrete

__all__ = [
    "Box",
    "Discrete",
    "EnvSpec",
    "EnvState",
    "Environment",
    "close_matches",
    "family_of",
    "known",
    "make",
    "prefixes",
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
register(
    "gems-authors",
    "envs.gems:Gems",
    family="gems",
    description="Gems under the authors' data rule: ends when the joint return exceeds 20",
    end_rule="joint-return",
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
    ("random-team-game", "random_team_game_env",
     "cooperative random game: one team reward (20 states, 3 actions, 2 agents)"),
    ("random-goal-game", "random_goal_game_env",
     "random general-sum game whose last 2 of 20 states are terminal"),
]:
    register(_name, f"{_TABULAR}:{_fn}", family="tabular", description=_doc)
register_prefix("tabular", "envs.tabular.game:load_game")
# "host:NAME": a jittable game behind the host-side interface (tests, comparisons)
register_prefix("host", "envs.host:make_host")

# -- JaxMARL: Overcooked and the discrete MPE games (envs/jaxmarl.py) --------------------
register(
    "overcooked",
    "envs.jaxmarl:overcooked",
    family="jaxmarl",
    description="JaxMARL Overcooked, cramped_room, 2 cooks, 400 steps, sparse 20 per soup",
)
for _layout in ("cramped_room", "asymm_advantages", "coord_ring", "forced_coord",
                "counter_circuit"):
    register(f"overcooked-{_layout}", "envs.jaxmarl:overcooked", family="jaxmarl",
             description=f"JaxMARL Overcooked, layout {_layout}", layout=_layout)
for _scenario, _doc in [
    ("simple", "1 agent reaches a landmark"),
    ("simple_spread", "3 agents cover 3 landmarks, collisions cost"),
    ("simple_tag", "3 predators chase 1 prey among obstacles"),
    ("simple_push", "adversary pushes the agent off its landmark"),
    ("simple_adversary", "2 agents guard the target landmark from 1 adversary"),
    ("simple_crypto", "alice and bob talk past eve (4 actions)"),
    ("simple_reference", "2 agents guide each other to landmarks (50 actions)"),
]:
    register(f"jaxmarl-mpe-{_scenario.replace('_', '-')}", "envs.jaxmarl:mpe",
             family="jaxmarl", description=f"JaxMARL MPE {_scenario}: {_doc}",
             scenario=_scenario)

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

register(
    "intersection-jax",
    "envs.intersection_jax:IntersectionJax",
    family="highway",
    description="the intersection in pure JAX (jittable, vmappable), same observations",
)
register(
    "intersection-jax-speed",
    "envs.intersection_jax:IntersectionJax",
    family="highway",
    description="intersection-jax with informative velocity features (vx, vy over [-20, 20])",
    speed_range=(-20.0, 20.0),
)

# -- mpe2: PettingZoo's particle games through envs.pettingzoo (envs/mpe2_games.py) -------
for _name, _cls, _doc in [
    ("mpe2-simple", "Simple", "mpe2 simple_v3: 1 agent reaches a landmark (scripted expert)"),
    ("mpe2-simple-spread", "SimpleSpread",
     "mpe2 simple_spread_v3: 3 agents cover 3 landmarks, 25 steps (scripted expert)"),
    ("mpe2-simple-tag", "SimpleTag",
     "mpe2 simple_tag_v3: 3 adversaries chase 1 prey, obs 16/14 padded (scripted expert)"),
    ("mpe2-simple-adversary", "SimpleAdversary",
     "mpe2 simple_adversary_v3: 2 agents hide the goal from 1 adversary (scripted expert)"),
    ("mpe2-simple-push", "SimplePush", "mpe2 simple_push_v3: adversary pushes the agent away"),
]:
    register(_name, f"envs.mpe2_games:{_cls}", family="mpe2", jittable=False, description=_doc)

# -- multi-agent Brax: bodies shared by agents, each driving its joints (envs/brax_games.py)
for _name, _doc in [
    ("ant-4x2", "MaMuJoCo ant 4x2 on brax: one leg per agent, team reward"),
    ("halfcheetah-6x1", "MaMuJoCo halfcheetah 6x1 on brax: one joint per agent, team reward"),
    ("walker2d-2x3", "MaMuJoCo walker2d 2x3 on brax: one leg per agent, team reward"),
    ("hopper-3x1", "MaMuJoCo hopper 3x1 on brax: one joint per agent, team reward"),
    ("ant-2x4-xy", "general-sum ant on brax: legs 1-2 paid for +x, legs 3-4 for +y velocity"),
    ("ant-4x2-effort", "general-sum ant on brax: one leg per agent, each paid for the body's "
                       "progress less its own effort"),
]:
    register(_name, "envs.brax_games:brax_game", family="brax", description=_doc, game=_name)

# -- continuous control in pure JAX (envs/point_masses.py) --------------------------------
register(
    "point-masses",
    "envs.point_masses:PointMasses",
    family="continuous",
    description="2 point masses on a plane, each paid for reaching its own target "
                "(general-sum, Box actions, 25 steps, scripted expert)",
)
