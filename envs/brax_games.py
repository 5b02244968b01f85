"""Multi-agent continuous control on Brax physics: MaMuJoCo splits and a general-sum game.

One robot body from ``brax.envs`` is shared by several agents; each agent drives
a disjoint subset of the body's actuators and observes a local view of the
body. The physics, the reward of the single-agent task and its fall rule are
the single-agent ``brax.envs`` environment's own: the wrapper only splits the
action vector, gathers observations and (for general-sum games) splits the
reward. ``brax`` is an optional extra (``pip install mairl[brax]``) and is
imported when a game is built, never by ``import envs``.

Partitions (agents in order; the Multi-Agent MuJoCo splits of Peng et al.,
"FACMAC: Factored Multi-Agent Centralised Policy Gradients", NeurIPS 2021):

- ``ant-4x2``: one leg each, ``(hip_1, ankle_1)``, ``(hip_2, ankle_2)``,
  ``(hip_3, ankle_3)``, ``(hip_4, ankle_4)``.
- ``halfcheetah-6x1``: one joint each, ``bthigh, bshin, bfoot, fthigh, fshin,
  ffoot``.
- ``walker2d-2x3``: one leg each, ``(thigh, leg, foot)`` right then left.
- ``hopper-3x1``: one joint each, ``thigh, leg, foot``.
- ``ant-2x4-xy`` (general-sum, see below): legs 1-2 and legs 3-4.
- ``ant-4x2-effort`` (general-sum, see below): one leg each, as ``ant-4x2``.

Actuators and observed joints are derived **by joint name** from the MuJoCo
model, never from index tables: an agent owns every actuator whose
transmission is one of its joints (``actuator_trnid``), in the order of its
joint list, and reads joint ``j``'s position at ``jnt_qposadr[j]`` and its
velocity at ``jnt_dofadr[j]`` (1 entry each for hinge and slide joints, 4/3 for
ball, 7/6 for free joints). The actuators of the model must be split exactly:
every actuator belongs to one agent, and every agent drives the same number of
them (the common action space).

Actions: agent ``i`` sends ``a_i`` in ``[-1, 1]^k`` (``k`` actuators, the
model's ``ctrlrange``), ``actions (agent, k)``; entry ``m`` drives the actuator
of the ``m``-th joint in the agent's joint list.

Observations (``obs_mode="local"``, default): agent ``i`` observes, in this
order, the positions ``q`` then the velocities ``qd`` of

1. the **root** joints (those of the body attached to the world: the ant's free
   joint, the planar bodies' ``rootx/rootz/rooty``), without the horizontal
   position coordinates (the free joint's x and y, a slide joint whose axis is
   horizontal), as in the single-agent brax observation;
2. its **own** joints, in the order of its joint list;
3. its **neighbour** joints up to graph distance ``obs_k`` (default 1), in
   model order: two non-root joints are adjacent when they sit on the same body,
   on bodies in a parent-child relation, or on sibling bodies (same parent).
   ``obs_k=0`` observes root and own joints only.

Positions and velocities are the raw generalized coordinates ``q`` and ``qd``
of the physics state. Agents whose views are shorter are zero-padded at the end
to the longest, ``obs_shape = (max_i obs_size_i,)``; ``obs_sizes`` gives each
agent's true size and ``observed_joints`` the joint names behind it. With the
default ``obs_k=1``:

- ``ant-4x2``: root z and quaternion (5), root velocity (6), then ``q`` and ``qd``
  of the own hip and ankle and of the three other hips (siblings on the torso):
  11 + 2 x 5 = 21 per agent.
- ``halfcheetah-6x1``: root z and pitch (2), root velocity (3); a thigh sees its
  shin and the other thigh (sibling on the torso), a shin its thigh and foot, a
  foot its shin: 5 + 2 x 3 = 11 for thighs and shins, 5 + 2 x 2 = 9 for feet.
- ``walker2d-2x3``: root (2 + 3), the own three joints and the other thigh:
  5 + 2 x 4 = 13.
- ``hopper-3x1``: root (2 + 3), the own joint and its parent and child joints:
  9, 11, 9.
- ``ant-2x4-xy``: root (11), the own four joints and the other two hips:
  11 + 2 x 6 = 23.
- ``ant-4x2-effort``: as ``ant-4x2``, 21 per agent.

``obs_mode="global"``: every agent's row is the single-agent brax
observation (the fully observed setting of the MAMQL critics ``Q_i(s, a_i)``).

Rewards. Team games (``reward="team"``) give every agent the single-agent
brax reward of the whole body, e.g. ant: forward velocity + 1 (healthy) - 0.5
|a|^2; halfcheetah: forward velocity - 0.1 |a|^2; walker2d and hopper:
forward velocity + 1 (healthy) - 0.001 |a|^2.

General-sum game ``ant-2x4-xy`` (``reward="xy"``): two agents share the ant,
agent ``x`` drives legs 1 and 2, agent ``y`` legs 3 and 4;

    r_x = v_x + h - c |a_x|^2,    r_y = v_y + h - c |a_y|^2,

with ``v`` the torso's velocity over the step (brax's ``x_velocity``,
``y_velocity``), ``h = 1`` the healthy bonus and ``c = 0.5`` the ant's control
cost weight, each agent paying for its own effort only. The agents want the
body to go in different directions: walking diagonally serves both partly,
walking along x serves one. Team ant reward = (r_x + r_y) + v_x - v_y - h
... is not a sum of the two, so the game is neither zero-sum nor a team game.

General-sum game ``ant-4x2-effort`` (``reward="effort"``): the four legs of
``ant-4x2``, each paid for the body's progress but only for its own effort,

    r_i = R + c |a|^2 - c |a_i|^2,

with ``R`` the body's reward (brax's: forward velocity, healthy bonus, minus
the control cost ``c |a|^2`` of the whole action ``a``, ``c = 0.5`` on the
ant) and ``a_i`` the leg's own action: every leg wants the body to walk, and
each would rather the others did the work. With one agent it is the body's
reward; the rewards differ whenever the legs' efforts do. The same rule
applies to any body whose brax environment has a control cost
(``_ctrl_cost_weight``, reported as the metric ``reward_ctrl = -c |a|^2``).

Episodes. ``terminated`` when the single-agent env says the body fell
(ant: torso height outside ``[0.2, 1.0]``; walker2d, hopper: height or
angle out of the healthy range; halfcheetah never falls); ``truncated`` at
``horizon`` steps (default 1000, brax's episode length). Both are never set
together.

Backend. ``backend="spring"`` (default) was chosen by measurement
(``experiments/brax_throughput.py``, 64 vmapped envs x 1,000 steps of random
actions with auto-reset, two CPU cores): it ran ``ant-4x2`` at 10,900 env
steps/s against 8,700 for ``mjx``, and ``walker2d-2x3`` at 22,000 against
about 1,800 for ``mjx`` (brax picks a cheap MuJoCo solver for the ant and the
humanoid only), with no non-finite state in either; the issue measured
``generalized`` (2,900) and ``positional`` (1,500) slower still on the ant.
``spring`` approximates joints by stiff springs, so its trajectories differ from
MuJoCo's; experts, demonstrations and learners all live in the same simulator,
so speed wins.
``backend="mjx"`` gives MuJoCo's own (maintained) dynamics where fidelity to
MaMuJoCo matters more than speed.

State. :class:`BraxGameState` holds the step count and the brax state. Its
leaves are cast to strong types after every step, so ``jax.jit(env.step)``
called in a Python loop compiles once (brax's ``step`` returns weakly typed
fields where ``reset`` returns strong ones).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Environment
from envs.spaces import Box

BACKENDS = ("spring", "mjx", "generalized", "positional")
REWARDS = ("team", "xy", "effort")
OBS_MODES = ("local", "global")


@dataclass(frozen=True)
class GameSpec:
    """A multi-agent split of one brax body.

    Attributes:
        body: ``brax.envs`` name of the body (``"ant"``, ``"halfcheetah"``, ...).
        partition: each agent's joint names; the agent drives these joints' actuators.
        agents: agent names, one per partition entry.
        reward: ``"team"`` (every agent gets the body's reward), ``"xy"`` or
            ``"effort"`` (the general-sum games of the module docstring).
    """

    body: str
    partition: tuple[tuple[str, ...], ...]
    agents: tuple[str, ...]
    reward: str = "team"


GAMES: dict[str, GameSpec] = {
    "ant-4x2": GameSpec(
        "ant",
        (("hip_1", "ankle_1"), ("hip_2", "ankle_2"), ("hip_3", "ankle_3"),
         ("hip_4", "ankle_4")),
        ("leg_1", "leg_2", "leg_3", "leg_4"),
    ),
    "halfcheetah-6x1": GameSpec(
        "halfcheetah",
        (("bthigh",), ("bshin",), ("bfoot",), ("fthigh",), ("fshin",), ("ffoot",)),
        ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"),
    ),
    "walker2d-2x3": GameSpec(
        "walker2d",
        (("thigh_joint", "leg_joint", "foot_joint"),
         ("thigh_left_joint", "leg_left_joint", "foot_left_joint")),
        ("right_leg", "left_leg"),
    ),
    "hopper-3x1": GameSpec(
        "hopper",
        (("thigh_joint",), ("leg_joint",), ("foot_joint",)),
        ("thigh", "leg", "foot"),
    ),
    "ant-2x4-xy": GameSpec(
        "ant",
        (("hip_1", "ankle_1", "hip_2", "ankle_2"), ("hip_3", "ankle_3", "hip_4", "ankle_4")),
        ("x", "y"),
        reward="xy",
    ),
    "ant-4x2-effort": GameSpec(
        "ant",
        (("hip_1", "ankle_1"), ("hip_2", "ankle_2"), ("hip_3", "ankle_3"),
         ("hip_4", "ankle_4")),
        ("leg_1", "leg_2", "leg_3", "leg_4"),
        reward="effort",
    ),
}

#: Control cost weight of the general-sum ant game (brax ant's default).
XY_CTRL_COST = 0.5
#: Healthy bonus of the general-sum ant game (brax ant's default).
XY_HEALTHY = 1.0


@struct.dataclass
class BraxGameState:
    """Steps taken in the episode and the single-agent brax state of the body."""

    time: jax.Array
    brax: Any


@dataclass(frozen=True)
class JointLayout:
    """Where agents act and what they see, derived from the MuJoCo model by joint name.

    Attributes:
        actuators: ``(agent, k)`` actuator index of each agent's action entry.
        obs_index: ``(agent, obs_dim)`` index into ``concat(q, qd, [0])`` of each
            observation entry; padding points at the trailing zero.
        obs_sizes: each agent's unpadded observation size.
        own_qpos, own_qvel: per agent, the ``q`` / ``qd`` indices of its own joints.
        observed_joints: per agent, the names of the joints in its view (root,
            own, neighbours).
    """

    actuators: np.ndarray
    obs_index: np.ndarray
    obs_sizes: tuple[int, ...]
    own_qpos: tuple[tuple[int, ...], ...]
    own_qvel: tuple[tuple[int, ...], ...]
    observed_joints: tuple[tuple[str, ...], ...]


_QPOS_SIZE = {0: 7, 1: 4, 2: 1, 3: 1}  # mjtJoint: free, ball, slide, hinge
_QVEL_SIZE = {0: 6, 1: 3, 2: 1, 3: 1}


def joint_layout(model: Any, partition: tuple[tuple[str, ...], ...], obs_k: int = 1
                 ) -> JointLayout:
    """Derive actuator ownership and observation indices from a ``mujoco.MjModel``.

    Args:
        model: the compiled MuJoCo model of the body.
        partition: each agent's joint names.
        obs_k: neighbourhood depth in the joint graph (module docstring).

    Raises:
        ValueError: naming the joint or actuator, when a joint name is unknown,
            a joint is given to two agents, an actuator drives no agent's joint
            or a non-joint transmission, or agents get different numbers of
            actuators.
    """
    import mujoco

    if obs_k < 0:
        raise ValueError(f"obs_k: expected >= 0, got {obs_k}")
    joint_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint_{j}"
                   for j in range(model.njnt)]
    by_name = {name: j for j, name in enumerate(joint_names)}
    owner: dict[int, int] = {}
    for agent, names in enumerate(partition):
        if not names:
            raise ValueError(f"partition: agent {agent} has no joints")
        for name in names:
            if name not in by_name:
                raise ValueError(f"partition: unknown joint {name!r}; the model has "
                                 f"{joint_names}")
            if by_name[name] in owner:
                raise ValueError(f"partition: joint {name!r} is given to agents "
                                 f"{owner[by_name[name]]} and {agent}")
            owner[by_name[name]] = agent

    # actuators: by the joint each one's transmission drives
    actuators: list[list[int]] = [[] for _ in partition]
    act_of_joint: dict[int, list[int]] = {}
    for a in range(model.nu):
        if int(model.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_JOINT):
            raise ValueError(f"actuator {a} has transmission type "
                             f"{int(model.actuator_trntype[a])}; only joint actuators "
                             "can be split by joint name")
        j = int(model.actuator_trnid[a, 0])
        if j not in owner:
            raise ValueError(f"partition: actuator {a} drives joint {joint_names[j]!r}, "
                             "which no agent owns; the partition must cover every actuator")
        act_of_joint.setdefault(j, []).append(a)
    for agent, names in enumerate(partition):
        for name in names:
            actuators[agent].extend(act_of_joint.get(by_name[name], []))
    counts = [len(acts) for acts in actuators]
    if len(set(counts)) != 1 or counts[0] == 0:
        raise ValueError(f"partition: agents drive {counts} actuators; every agent needs the "
                         "same positive number (one common action space)")

    # joint graph over non-root joints
    world = 0
    body_of = [int(model.jnt_bodyid[j]) for j in range(model.njnt)]
    parent = [int(p) for p in model.body_parentid]
    roots = [j for j in range(model.njnt) if parent[body_of[j]] == world]

    def adjacent(j: int, k: int) -> bool:
        b, c = body_of[j], body_of[k]
        return b == c or parent[b] == c or parent[c] == b or parent[b] == parent[c]

    limbs = [j for j in range(model.njnt) if j not in roots]

    def qpos(j: int) -> list[int]:
        start = int(model.jnt_qposadr[j])
        return list(range(start, start + _QPOS_SIZE[int(model.jnt_type[j])]))

    def qvel(j: int) -> list[int]:
        start = int(model.jnt_dofadr[j])
        return list(range(start, start + _QVEL_SIZE[int(model.jnt_type[j])]))

    root_q: list[int] = []
    for j in roots:
        kind = int(model.jnt_type[j])
        if kind == int(mujoco.mjtJoint.mjJNT_FREE):
            root_q.extend(qpos(j)[2:])  # drop world x, y
        elif kind == int(mujoco.mjtJoint.mjJNT_SLIDE) and abs(model.jnt_axis[j][2]) < 1e-9:
            continue  # horizontal slide: a world position
        else:
            root_q.extend(qpos(j))
    root_qd = [i for j in roots for i in qvel(j)]

    nq, nv = model.nq, model.nv
    rows, sizes, own_q, own_qd, seen = [], [], [], [], []
    for names in partition:
        own = [by_name[n] for n in names]
        near: set[int] = set()
        frontier = set(own)
        for _ in range(obs_k):
            frontier = {k for k in limbs for j in frontier if k not in own and k not in near
                        and adjacent(j, k)}
            near |= frontier
        joints = own + sorted(near)
        q_idx = root_q + [i for j in joints for i in qpos(j)]
        qd_idx = root_qd + [i for j in joints for i in qvel(j)]
        rows.append(q_idx + [nq + i for i in qd_idx])
        sizes.append(len(rows[-1]))
        own_q.append(tuple(i for j in own for i in qpos(j)))
        own_qd.append(tuple(i for j in own for i in qvel(j)))
        seen.append(tuple(joint_names[j] for j in roots + joints))
    pad = nq + nv
    width = max(sizes)
    obs_index = np.full((len(partition), width), pad, np.int32)
    for i, row in enumerate(rows):
        obs_index[i, : len(row)] = row
    return JointLayout(np.asarray(actuators, np.int32), obs_index, tuple(sizes),
                       tuple(own_q), tuple(own_qd), tuple(seen))


def _strong(tree: Any) -> Any:
    """``tree`` with every leaf strongly typed (weak types would retrace a jitted step)."""
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, jnp.result_type(x)), tree)


class BraxGame(Environment):
    """Agents sharing one brax body (see the module docstring for the maths).

    Args:
        game: a key of :data:`GAMES`, or ``None`` with ``spec`` given.
        spec: a custom :class:`GameSpec` (any brax body and joint partition).
        backend: brax physics pipeline, one of :data:`BACKENDS`.
        horizon: episode length; episodes are truncated after this many steps.
        obs_mode: ``"local"`` (each agent's own view) or ``"global"`` (every agent
            sees the single-agent brax observation).
        obs_k: neighbourhood depth of local views.
        **brax_kwargs: passed to the brax environment (``reset_noise_scale``, ...).
    """

    obs_bounds = (-np.inf, np.inf)

    def __init__(self, game: str | None = "ant-4x2", *, spec: GameSpec | None = None,
                 backend: str = "spring", horizon: int = 1000, obs_mode: str = "local",
                 obs_k: int = 1, **brax_kwargs: Any):
        if spec is None:
            if game not in GAMES:
                raise ValueError(f"game: expected one of {sorted(GAMES)}, got {game!r}")
            spec = GAMES[game]
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon: expected an int >= 1, got {horizon!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode: expected one of {OBS_MODES}, got {obs_mode!r}")
        if spec.reward not in REWARDS:
            raise ValueError(f"reward: expected one of {REWARDS}, got {spec.reward!r}")
        if spec.reward == "xy" and spec.body != "ant":
            raise ValueError(f"reward: 'xy' needs the ant body, got {spec.body!r}")
        if len(spec.agents) != len(spec.partition):
            raise ValueError(f"agents: {len(spec.agents)} names for {len(spec.partition)} "
                             "partition entries")
        self.spec = spec
        self.backend = backend
        self.obs_mode = obs_mode
        self.brax_env = make_brax_env(spec.body, backend, **brax_kwargs)
        if spec.reward == "effort" and not hasattr(self.brax_env, "_ctrl_cost_weight"):
            raise ValueError(f"reward: 'effort' needs a body with a control cost, "
                             f"{spec.body!r} has none")
        self.layout = joint_layout(self.brax_env.sys.mj_model, spec.partition, obs_k)
        self.num_agents = len(spec.partition)
        self.agents = tuple(spec.agents)
        self.max_steps = horizon
        k = self.layout.actuators.shape[1]
        self.action_spaces = tuple(Box(-1.0, 1.0, (k,)) for _ in self.agents)
        if obs_mode == "local":
            self.obs_shape = (self.layout.obs_index.shape[1],)
            self.obs_sizes = self.layout.obs_sizes
        else:
            shape = jax.eval_shape(self.brax_env.reset, jax.random.key(0)).obs.shape
            size = int(shape[-1])
            self.obs_shape = (size,)
            self.obs_sizes = (size,) * self.num_agents
        self.num_actuators = int(self.brax_env.sys.mj_model.nu)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def observed_joints(self) -> tuple[tuple[str, ...], ...]:
        """Per agent, the joints whose ``q`` and ``qd`` its local view holds."""
        return self.layout.observed_joints

    @property
    def dt(self) -> float:
        """Seconds of simulated time per environment step."""
        return float(self.brax_env.dt)

    def joint_action(self, actions: jax.Array) -> jax.Array:
        """``actions (agent, k)`` -> the body's action vector ``(num_actuators,)``."""
        index = jnp.asarray(self.layout.actuators.reshape(-1))
        flat = jnp.asarray(actions, jnp.float32).reshape(-1)
        return jnp.zeros(self.num_actuators, jnp.float32).at[index].set(flat)

    def observe(self, brax_state: Any) -> jax.Array:
        """``(agent, *obs_shape)`` observations of a brax state."""
        if self.obs_mode == "global":
            obs = brax_state.obs.astype(jnp.float32)
            return jnp.broadcast_to(obs, (self.num_agents, *obs.shape))
        pipe = brax_state.pipeline_state
        flat = jnp.concatenate([pipe.q, pipe.qd, jnp.zeros(1, pipe.q.dtype)])
        return flat[jnp.asarray(self.layout.obs_index)].astype(jnp.float32)

    def _rewards(self, brax_state: Any, actions: jax.Array) -> jax.Array:
        if self.spec.reward == "team":
            return jnp.broadcast_to(brax_state.reward, (self.num_agents,))
        metrics = brax_state.metrics
        if self.spec.reward == "effort":  # the body's reward with each agent's own effort only
            own = self.brax_env._ctrl_cost_weight * jnp.sum(jnp.square(actions), axis=-1)
            return brax_state.reward - metrics["reward_ctrl"] - own
        effort = XY_CTRL_COST * jnp.sum(jnp.square(actions), axis=-1)
        velocity = jnp.stack([metrics["x_velocity"], metrics["y_velocity"]])
        return velocity + XY_HEALTHY - effort

    # -- dynamics --------------------------------------------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, BraxGameState]:
        """Start an episode: Brax's own reset, then each agent's observation ``(N, obs_dim)``."""
        brax_state = _strong(self.brax_env.reset(key))
        state = BraxGameState(time=jnp.zeros((), jnp.int32), brax=brax_state)
        return self.observe(brax_state), state

    def step_env(self, key: jax.Array, state: BraxGameState, actions: jax.Array):
        del key  # the body's dynamics are deterministic
        actions = jnp.asarray(actions, jnp.float32)
        if actions.shape != self.action_shape:
            raise ValueError(f"{self.name}: actions: expected shape {self.action_shape}, "
                             f"got {actions.shape}")
        brax_state = _strong(self.brax_env.step(state.brax, self.joint_action(actions)))
        reward = self._rewards(brax_state, actions).astype(jnp.float32)
        terminated = brax_state.done > 0.5
        info = {"x_velocity": brax_state.metrics.get("x_velocity", jnp.zeros(()))}
        state = BraxGameState(time=state.time + 1, brax=brax_state)
        return self.observe(brax_state), state, reward, terminated, info


def make_brax_env(body: str, backend: str = "spring", **kwargs: Any) -> Any:
    """The single-agent ``brax.envs`` environment of ``body`` (brax imported here)."""
    try:
        from brax import envs as brax_envs
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the Brax games need brax: pip install 'mairl[brax]'") from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not actively being maintained.*")
        warnings.filterwarnings("ignore", message=".*JAXopt is no longer maintained.*")
        return brax_envs.get_environment(body, backend=backend, **kwargs)


def brax_game(game: str, **kwargs: Any) -> BraxGame:
    """Registry entry point: ``envs.make("ant-4x2", backend="spring", horizon=1000)``."""
    return BraxGame(game, **kwargs)


__all__ = ["BACKENDS", "GAMES", "BraxGame", "BraxGameState", "GameSpec", "JointLayout",
           "brax_game", "joint_layout", "make_brax_env"]
