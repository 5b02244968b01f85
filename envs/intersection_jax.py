"""highway-env's multi-agent intersection in the MAMQL setting, in pure JAX.

The same game as :mod:`envs.intersection` (which steps highway-env 1.12's
``MultiAgentIntersectionEnv`` on the host), rewritten as a jittable,
vmappable mairl environment: the same observations (both velocity scalings),
actions, rewards, terminations and episode length; see that module's
docstring for what an agent sees and does. The rules below were read from
highway-env's source (MIT licence) and written anew; each names where it
comes from (``highway_env.<module>.<Class>.<method>``).

Road (``envs.intersection_env.IntersectionEnv._make_road``): 20 lanes, 4 m
wide, five per corner ``c`` (rotated by ``90 c`` degrees), stored as arrays in
the order highway-env's ``RoadNetwork.graph`` lists them (which decides ties
of the closest-lane search): ``5c + 0`` the approach ``o_c -> ir_c`` (a
straight lane, 100 m, ending 11 m from the centre), ``5c + 1`` the right turn
``ir_c -> il_(c-1)`` (a circular lane, radius 9 m), ``5c + 2`` the left turn
``ir_c -> il_(c+1)`` (radius 13 m, anticlockwise), ``5c + 3`` straight across
``ir_c -> il_(c+2)`` (22 m) and ``5c + 4`` the exit ``il_(c-1) -> o_(c-1)``
(100 m). Lane geometry (``road.lane.StraightLane`` and ``CircularLane``:
``position``, ``local_coordinates``, ``heading_at``, ``on_lane``,
``after_end``, ``distance_with_heading``) is computed for every lane at once.

Vehicles (``road.road.Road``, ``vehicle.controller.MDPVehicle``): one per
approach, ``num_agents`` of them, 5 m x 2 m. Reset
(``IntersectionEnv._make_vehicles``): vehicle ``c`` starts on approach ``c`` at
``60 + 5 N(1, 1)`` m along it, centred, heading along it, at 10 m/s with
target speed 9 m/s; its route is approach, turn, exit, the turn drawn
uniformly from right / straight / left (``turns="random"``) or fixed. The
other-traffic draws of highway-env's reset place no vehicle in this
configuration and are not reproduced.

A step is one second: the meta-action sets the target speed
(``MDPVehicle.act``: FASTER / SLOWER move one index up / down from the index
nearest the *current speed*, among ``0, 4.5, 9`` m/s; IDLE keeps the target),
then 15 frames of ``dt = 1/15`` s (``envs.common.abstract.AbstractEnv._simulate``),
each:

1. ``ControlledVehicle.follow_road``: when the vehicle is past ``length - 2.5``
   m of its target lane, the target becomes the next lane of its route
   (``RoadNetwork.next_lane``); past the route's end, the lane highway-env
   picks without a route (nearest next lane to the lane's end point), which
   no vehicle reaches within the 13 s episode.
2. ``ControlledVehicle.steering_control`` (pure pursuit 0.1 s ahead on the
   target lane, lateral P-gain ``1/0.6``, heading P-gain ``1/0.2``, through the
   bicycle model's slip angle, steering clipped to ``pi/3``) and
   ``speed_control`` (acceleration ``(target - speed) / 0.6``).
3. ``vehicle.kinematics.Vehicle.step`` (with ``clip_actions``): the kinematic
   bicycle model, slip ``beta = arctan(tan(delta) / 2)``; a crashed vehicle
   steers 0 and brakes with ``-speed``; a pending impact displaces the vehicle
   and marks it crashed.
4. ``Road.step`` -> ``vehicle.objects.RoadObject.handle_collisions`` for every
   pair ``i < j`` in order: a spherical pre-check, then
   ``utils.are_polygons_intersecting`` (separating axes of the two rectangles,
   with the relative displacement over ``dt``): intersecting rectangles crash
   both vehicles; a predicted intersection sets each vehicle's impact to half
   the minimal translation (later pairs overwrite earlier ones).

``road.regulation.RegulatedRoad.enforce_road_rules`` only acts on vehicles
that are not ``MDPVehicle``\\ s, so it changes nothing here.

After the frames, each vehicle's current lane is the closest one by
``AbstractLane.distance_with_heading`` (``RoadNetwork.get_closest_lane_index``).
Rewards (``IntersectionEnv._agent_reward``): ``arrived_reward`` if the vehicle
has arrived (its lane is an exit and it is at least 25 m along it,
``IntersectionEnv.has_arrived``), else ``collision_reward`` if crashed plus
``high_speed_reward * clip((speed - 7) / 2, 0, 1)``; times 0 when the vehicle
is off its lane (``on_road``). ``terminated`` when any vehicle crashed or every
vehicle arrived (``IntersectionEnv._is_terminated``); truncated at
``duration`` steps.

Observations (``envs.common.observation.KinematicObservation`` with
``Road.close_objects_to``): for each observer, the other vehicles within 200 m
that are less than 10 m behind it along its current lane, sorted by the
absolute distance along that lane (ties by vehicle order), the first two.

Numbers are float32 (highway-env computes in float64): positions, headings
and speeds agree to about 1e-4 over an episode, except near a standstill,
where highway-env's steering swings between its limits and amplifies rounding
to centimetres (``tests/envs/test_intersection_jax.py``,
``experiments/intersection_fidelity.py``).

Speed (4,096 vmapped envs on two CPU cores; ``experiments/intersection_fidelity.py
--parts speed``): the frames, the closest-lane search and the observation run on
arrays ``(vehicle, *batch)``, kept batch-minor under ``jax.vmap`` by
``jax.custom_batching.custom_vmap`` (:func:`_batch_minor`), so each vehicle's
values over the batch are contiguous; the rectangles' pair quantities are
evaluated once (:func:`_materialize`); ``arctan2`` is a polynomial and the slip
angle needs no inverse trigonometry (XLA:CPU calls scalar library functions for
those); each frame selects its target lanes' geometry among the route's three
lanes instead of gathering it from the lane table.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Environment, EnvState
from envs.intersection import (
    FASTER,
    IDLE,
    SLOWER,
    VEHICLES_OBSERVED,
    IntersectionSettings,
)

#: Turn lane of corner ``c`` is lane ``5 c + TURN_LANE[turn]``; its exit side
#: is ``(c + TURN_OFFSET[turn]) % 4`` (as in :mod:`envs.intersection`).
TURN_LANE = {"right": 1, "left": 2, "straight": 3}
TURN_OFFSET = {"right": 3, "straight": 2, "left": 1}

# -- road (highway_env.envs.intersection_env.IntersectionEnv._make_road) -------------------------
LANE_WIDTH = 4.0  # road.lane.AbstractLane.DEFAULT_WIDTH
RIGHT_TURN_RADIUS = LANE_WIDTH + 5.0
LEFT_TURN_RADIUS = RIGHT_TURN_RADIUS + LANE_WIDTH
OUTER_DISTANCE = RIGHT_TURN_RADIUS + LANE_WIDTH / 2
ACCESS_LENGTH = 50.0 + 50.0
SPEED_LIMIT = 10.0
LANE_VEHICLE_LENGTH = 5.0  # road.lane.AbstractLane.VEHICLE_LENGTH (on_lane, after_end)
EXIT_DISTANCE = 25.0  # IntersectionEnv.has_arrived

# -- vehicles (vehicle.kinematics.Vehicle, vehicle.controller.ControlledVehicle) -----------------
LENGTH, WIDTH = 5.0, 2.0
MAX_SPEED, MIN_SPEED = 40.0, -40.0
TAU_ACC, TAU_HEADING, TAU_LATERAL = 0.6, 0.2, 0.6
TAU_PURSUIT = 0.5 * TAU_HEADING
MAX_STEERING_ANGLE = np.pi / 3
TARGET_SPEEDS = (0.0, 4.5, 9.0)  # the MAMQL DiscreteMetaAction target_speeds
PERCEPTION_DISTANCE = 5.0 * MAX_SPEED  # envs.common.abstract.AbstractEnv
SIMULATION_FREQUENCY = 15
START_LONGITUDINAL = 60.0  # IntersectionEnv._make_vehicles: 60 + 5 N(1, 1) m along the approach
START_DEVIATION = 5.0

NUM_LANES = 20


def _lane_table() -> dict[str, np.ndarray]:
    """The 20 lanes as float64 arrays (see the module docstring for the order)."""
    rows = []  # (name, kind, start, end, center, radius, start_phase, end_phase, clockwise)
    for corner in range(4):
        angle = np.radians(90 * corner)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        c_prev, c_next, c_opp = (corner - 1) % 4, (corner + 1) % 4, (corner + 2) % 4
        rows.append(((f"o{corner}", f"ir{corner}"), "straight",
                     rot @ [LANE_WIDTH / 2, ACCESS_LENGTH + OUTER_DISTANCE],
                     rot @ [LANE_WIDTH / 2, OUTER_DISTANCE]))
        rows.append(((f"ir{corner}", f"il{c_prev}"), "circle",
                     rot @ [OUTER_DISTANCE, OUTER_DISTANCE], RIGHT_TURN_RADIUS,
                     angle + np.radians(180), angle + np.radians(270), True))
        rows.append(((f"ir{corner}", f"il{c_next}"), "circle",
                     rot @ [-LEFT_TURN_RADIUS + LANE_WIDTH / 2, LEFT_TURN_RADIUS - LANE_WIDTH / 2],
                     LEFT_TURN_RADIUS, angle, angle + np.radians(-90), False))
        rows.append(((f"ir{corner}", f"il{c_opp}"), "straight",
                     rot @ [LANE_WIDTH / 2, OUTER_DISTANCE],
                     rot @ [LANE_WIDTH / 2, -OUTER_DISTANCE]))
        rows.append(((f"il{c_prev}", f"o{c_prev}"), "straight",
                     rot @ [OUTER_DISTANCE, LANE_WIDTH / 2],
                     rot @ [ACCESS_LENGTH + OUTER_DISTANCE, LANE_WIDTH / 2]))
    t = {k: np.zeros((NUM_LANES, 2) if k in ("start", "direction", "center") else NUM_LANES)
         for k in ("circular", "start", "direction", "heading", "center", "radius",
                   "start_phase", "sense", "length", "exit")}
    names = []
    for i, (name, kind, *geo) in enumerate(rows):
        names.append(name)
        t["exit"][i] = name[0].startswith("il") and name[1].startswith("o")
        if kind == "straight":
            start, end = np.asarray(geo[0], float), np.asarray(geo[1], float)
            t["start"][i] = start
            t["length"][i] = np.linalg.norm(end - start)
            t["direction"][i] = (end - start) / t["length"][i]
            t["heading"][i] = np.arctan2(end[1] - start[1], end[0] - start[0])
            t["radius"][i], t["sense"][i] = 1.0, 1.0
        else:
            center, radius, phase0, phase1, clockwise = geo
            sense = 1.0 if clockwise else -1.0
            t["circular"][i] = 1.0
            t["center"][i], t["radius"][i], t["start_phase"][i] = center, radius, phase0
            t["sense"][i] = sense
            t["length"][i] = radius * (phase1 - phase0) * sense
    t["phase_cos"], t["phase_sin"] = np.cos(t["start_phase"]), np.sin(t["start_phase"])
    for k in ("start", "direction", "center"):
        t[f"{k}_x"], t[f"{k}_y"] = t[k][:, 0].copy(), t[k][:, 1].copy()
    t["names"] = names
    return t


def _next_without_route(table: dict) -> np.ndarray:
    """``RoadNetwork.next_lane`` with no route left: of the lanes leaving a lane's end
    node, the first nearest (``AbstractLane.distance``) to the point where
    ``after_end`` starts. Only reached after the route's last lane ends."""
    names = table["names"]
    out = np.zeros(NUM_LANES, np.int32)
    for i, (_, to) in enumerate(names):
        s = table["length"][i] - LANE_VEHICLE_LENGTH / 2
        point = _np_position(table, i, s)
        options = [j for j, (frm, _) in enumerate(names) if frm == to]
        dists = [_np_distance(table, j, point) for j in options]
        out[i] = options[int(np.argmin(dists))]
    return out


def _np_position(t: dict, i: int, s: float) -> np.ndarray:
    if t["circular"][i]:
        phi = t["sense"][i] * s / t["radius"][i] + t["start_phase"][i]
        return t["center"][i] + t["radius"][i] * np.array([np.cos(phi), np.sin(phi)])
    return t["start"][i] + s * t["direction"][i]


def _np_distance(t: dict, i: int, point: np.ndarray) -> float:
    s, r = (float(x) for x in _local(_jnp_table(t, np, np.float64), np, i, point))
    return float(abs(r) + max(s - t["length"][i], 0) + max(-s, 0))


def _jnp_table(t: dict, xp: Any = jnp, dtype: Any = np.float32) -> dict:
    return {k: xp.asarray(v, dtype) for k, v in t.items() if k != "names"}


# -- lane geometry, vectorized (road.lane) -----------------------------------------------------
def _wrap_to_pi(x):
    """``utils.wrap_to_pi``: ``x`` minus the multiple of ``2 pi`` that lands in ``[-pi, pi)``
    (``floor``, not ``jnp.mod``, which XLA:CPU evaluates as a scalar ``fmod`` call)."""
    return x - 2 * jnp.pi * jnp.floor((x + jnp.pi) / (2 * jnp.pi))


def _atan2(y, x):
    """``arctan2`` as a polynomial: Cephes ``atanf`` (relative error below 2e-7) after
    reducing ``|y| / |x|`` to ``[0, tan(pi / 8)]``. XLA:CPU evaluates ``arctan2``,
    ``arcsin`` and ``arctan`` as scalar library calls, 20 times slower than this."""
    ax, ay = jnp.abs(x), jnp.abs(y)
    num, den = jnp.minimum(ax, ay), jnp.maximum(ax, ay)
    big = num > 0.41421356237309503 * den  # ratio above tan(pi / 8): atan(t) = pi/4 + atan(t')
    t = jnp.where(big, num - den, num) / jnp.where(big, num + den, jnp.where(den > 0, den, 1.0))
    z = t * t
    a = ((((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
          - 3.33329491539e-1) * z * t + t)
    a = jnp.where(big, a + np.pi / 4, a)
    a = jnp.where(ay > ax, np.pi / 2 - a, a)
    a = jnp.where(jnp.signbit(x), np.pi - a, a)
    return jnp.where(jnp.signbit(y), -a, a)


def _materialize(x):
    """``x``, evaluated once. XLA:CPU fuses a cheap elementwise value into every
    consumer, recomputing it, and drops ``optimization_barrier``; it never duplicates
    a division, and dividing by one is exact (booleans and small integers pass as
    float32)."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return _materialize(x.astype(jnp.float32)).astype(x.dtype)
    return x / jnp.where(x != x, 2.0, 1.0)


def _batch_minor(fn):
    """``fn`` over arrays ``(vehicle, *batch)`` (elementwise over ``batch``), kept in that
    layout under ``jax.vmap``: the mapped axis goes last, so each vehicle's values over
    the batch are contiguous (4x faster on CPU than vmap's ``(batch, vehicle)``)."""
    fn = jax.custom_batching.custom_vmap(fn)

    @fn.def_vmap
    def rule(axis_size, in_batched, *args):
        args = [jnp.moveaxis(a if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a))), 0, -1)
                for a, b in zip(args, in_batched, strict=True)]
        out = fn(*args)
        return (jax.tree.map(lambda o: jnp.moveaxis(o, -1, 0), out),
                jax.tree.map(lambda _: True, out))

    return fn


#: The lane fields the kinematics read.
LANE_FIELDS = ("start_x", "start_y", "direction_x", "direction_y", "center_x", "center_y",
               "radius", "sense", "phase_cos", "phase_sin", "start_phase", "circular", "heading",
               "length")


def _lane_geometry(t: dict, lane) -> dict:
    """The :data:`LANE_FIELDS` of lanes ``lane`` (any shape), from the table ``t``."""
    return {k: t[k][lane] for k in LANE_FIELDS}


def _local(t: dict, xp: Any, lane, position):
    """``local_coordinates`` of ``position (..., 2)`` on lanes ``lane (...)``: ``(s, r)``."""
    return _local_xy(_lane_geometry(t, lane), xp, position[..., 0], position[..., 1])


def _local_xy(g: dict, xp: Any, x, y):
    """``local_coordinates`` of the points ``x, y`` on lanes of geometry ``g``
    (:func:`_lane_geometry`, same shapes): ``(s, r)``.

    Straight: projections on the lane's direction and its left normal;
    circular: the arc length from the start phase (the angle of the point seen from
    the centre, relative to the start phase, within pi of it) and
    ``sense * (radius - distance to the centre)``.
    """
    atan2 = _atan2 if xp is jnp else np.arctan2
    dx, dy = x - g["start_x"], y - g["start_y"]
    ux, uy = g["direction_x"], g["direction_y"]
    s_straight = dx * ux + dy * uy
    r_straight = -dx * uy + dy * ux
    radius, sense = g["radius"], g["sense"]
    cx, cy = x - g["center_x"], y - g["center_y"]
    c0, s0 = g["phase_cos"], g["phase_sin"]
    # utils.wrap_to_pi(arctan2(c) - start_phase) as one angle: c rotated by -start_phase
    angle = atan2(c0 * cy - s0 * cx, c0 * cx + s0 * cy)
    s_circle = sense * angle * radius
    r_circle = sense * (radius - xp.sqrt(cx * cx + cy * cy))
    circular = g["circular"] > 0
    return xp.where(circular, s_circle, s_straight), xp.where(circular, r_circle, r_straight)


def _heading_at(g: dict, s):
    """``heading_at`` on lanes of geometry ``g``: the straight lane's heading, or the
    circle's tangent."""
    sense = g["sense"]
    psi = sense * s / g["radius"] + g["start_phase"] + jnp.pi / 2 * sense
    return jnp.where(g["circular"] > 0, psi, g["heading"])


def _closest_lane(x, y, heading):
    """``RoadNetwork.get_closest_lane_index`` of vehicles at ``x, y`` with ``heading``
    (any shape): int32, the first minimum of ``AbstractLane.distance_with_heading``
    over the 20 lanes, each lane's geometry a constant (no gathers)."""
    table = _jnp_table(LANES, np)
    best = lane = None
    for i in range(NUM_LANES):
        g = _lane_geometry(table, i)
        s, r = _local_xy(g, jnp, x, y)
        angle = jnp.abs(_wrap_to_pi(heading - _heading_at(g, s)))
        dist = jnp.abs(r) + jnp.maximum(s - table["length"][i], 0) + jnp.maximum(-s, 0) + angle
        if best is None:
            best, lane = dist, jnp.zeros(jnp.shape(x), jnp.int32)
        else:
            closer = dist < best
            best, lane = jnp.where(closer, dist, best), jnp.where(closer, i, lane)
    return _materialize(lane)


LANES = _lane_table()
#: ``(from, to)`` node names of each lane, as highway-env names them.
LANE_NAMES: tuple[tuple[str, str], ...] = tuple(LANES["names"])
NEXT_WITHOUT_ROUTE = _next_without_route(LANES)


def lane_index(name: tuple) -> int:
    """Index of highway-env's lane ``(from, to[, id])`` among the 20 lanes."""
    try:
        return LANE_NAMES.index((name[0], name[1]))
    except ValueError:
        raise ValueError(f"lane_index: no lane {name!r} in the intersection") from None


# -- the state ---------------------------------------------------------------------------------
@struct.dataclass
class IntersectionState(EnvState):
    """The vehicles of :class:`IntersectionJax`; axes ``(vehicle,)`` = agents.

    Attributes:
        time: int32 ``()``, steps taken in the episode.
        position: float32 ``(vehicle, xy)``, metres from the centre (x east, y south).
        heading: float32 ``(vehicle,)``, radians (not wrapped, as in highway-env).
        speed: float32 ``(vehicle,)``, m/s.
        target_speed: float32 ``(vehicle,)``, m/s, the speed controller's set-point.
        target_lane: int32 ``(vehicle,)``, the lane the steering controller follows.
        route: int32 ``(vehicle, 3)``: approach, turn and exit lanes.
        route_index: int32 ``(vehicle,)``: position of ``target_lane`` in ``route``
            (3 once the route is used up).
        lane: int32 ``(vehicle,)``: the closest lane (highway-env's ``lane_index``).
        crashed: bool ``(vehicle,)``.
        impact: float32 ``(vehicle, xy)``: displacement applied at the next frame
            where ``has_impact`` (highway-env's ``Vehicle.impact``).
        has_impact: bool ``(vehicle,)``.
    """

    position: jax.Array
    heading: jax.Array
    speed: jax.Array
    target_speed: jax.Array
    target_lane: jax.Array
    route: jax.Array
    route_index: jax.Array
    lane: jax.Array
    crashed: jax.Array
    impact: jax.Array
    has_impact: jax.Array


class IntersectionJax(IntersectionSettings, Environment):
    """highway-env's MAMQL intersection in JAX (rules in the module docstring).

    Args:
        num_agents, **settings: ``envs.intersection.IntersectionSettings``; a
            crashed vehicle's agent gets ``collision_reward`` on each step from
            its crash on.
        unroll: simulation frames unrolled per step (1 to 15; speed only).
    """

    def __init__(self, num_agents: int = 4, *, unroll: int = 1, **settings: Any):
        super().__init__(num_agents, **settings)
        if not 1 <= int(unroll) <= SIMULATION_FREQUENCY:
            raise ValueError(f"{type(self).__name__}: unroll must be in "
                             f"1..{SIMULATION_FREQUENCY}, got {unroll}")
        self.unroll = int(unroll)
        self._simulate = _make_simulate(self.unroll)
        self._observe = _make_observe(self.position_range, self.speed_range)

    # -- reset (IntersectionEnv._make_vehicles) ------------------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, IntersectionState]:
        """Place each vehicle at its own corner with a random turn and start offset, and observe."""
        key_turn, key_start = jax.random.split(key)
        n = self.num_agents
        corner = jnp.arange(n, dtype=jnp.int32)
        if self.turns == "random":
            turn = jax.random.randint(key_turn, (n,), 1, 4)  # 1 right, 2 left, 3 straight
        else:
            turn = jnp.full((n,), TURN_LANE[self.turns], jnp.int32)
        longitudinal = START_LONGITUDINAL + START_DEVIATION * (
            1.0 + jax.random.normal(key_start, (n,), jnp.float32))
        return self.reset_from(corner, turn, longitudinal)

    def reset_from(self, corner: jax.Array, turn: jax.Array,
                   longitudinal: jax.Array) -> tuple[jax.Array, IntersectionState]:
        """The start state with given draws: each vehicle on approach ``corner``,
        ``longitudinal`` metres along it, taking turn lane ``5 corner + turn``
        (``turn``: 1 right, 2 left, 3 straight)."""
        t = _jnp_table(LANES)
        corner = jnp.asarray(corner, jnp.int32)
        approach = 5 * corner
        turn_lane = approach + jnp.asarray(turn, jnp.int32)
        exit_side = (corner + jnp.where(turn == 1, 3, jnp.where(turn == 2, 1, 2))) % 4
        exit_lane = 5 * ((exit_side + 1) % 4) + 4
        longitudinal = jnp.asarray(longitudinal, jnp.float32)
        position = t["start"][approach] + longitudinal[:, None] * t["direction"][approach]
        heading = t["heading"][approach]
        n = self.num_agents
        state = IntersectionState(
            time=jnp.zeros((), jnp.int32),
            position=position,
            heading=heading,
            speed=jnp.full((n,), SPEED_LIMIT, jnp.float32),
            target_speed=jnp.full((n,), self._speed_of_index(self._index_of_speed(
                jnp.float32(SPEED_LIMIT))), jnp.float32),
            target_lane=approach,
            route=jnp.stack([approach, turn_lane, exit_lane], axis=-1),
            route_index=jnp.zeros((n,), jnp.int32),
            lane=_closest_lane_batch_minor(position[:, 0], position[:, 1], heading),
            crashed=jnp.zeros((n,), jnp.bool_),
            impact=jnp.zeros((n, 2), jnp.float32),
            has_impact=jnp.zeros((n,), jnp.bool_),
        )
        return self.observe(state), state

    # -- step ----------------------------------------------------------------------------------
    def step_env(self, key: jax.Array, state: IntersectionState, actions: jax.Array):
        """One second: set target speeds, then 15 frames; see the module docstring."""
        state = self.transition(state, actions)
        reward, terminated, info = self.outcome(state)
        return self.observe(state), state, reward, terminated, info

    def transition(self, state: IntersectionState, actions: jax.Array) -> IntersectionState:
        """The next state (``time`` + 1) after the joint meta-action ``actions (agent,)``."""
        actions = jnp.asarray(actions, jnp.int32)
        # vehicle.controller.MDPVehicle.act: the index nearest the current speed, +-1
        index = self._index_of_speed(state.speed) + jnp.where(
            actions == FASTER, 1, jnp.where(actions == SLOWER, -1, 0))
        target_speed = jnp.where(actions == IDLE, state.target_speed,
                                 self._speed_of_index(jnp.clip(index, 0, len(TARGET_SPEEDS) - 1)))
        (x, y, heading, speed, target_lane, route_index, lane, crashed, impact_x, impact_y,
         has_impact) = self._simulate(
            state.position[:, 0], state.position[:, 1], state.heading, state.speed, target_speed,
            state.target_lane, state.route[:, 0], state.route[:, 1], state.route[:, 2],
            state.route_index,
            state.crashed, state.impact[:, 0], state.impact[:, 1], state.has_impact)
        return state.replace(
            time=state.time + 1, position=jnp.stack([x, y], axis=-1), heading=heading,
            speed=speed, target_speed=target_speed, target_lane=target_lane,
            route_index=route_index, lane=lane, crashed=crashed,
            impact=jnp.stack([impact_x, impact_y], axis=-1), has_impact=has_impact)

    # -- outcome (IntersectionEnv._agent_reward, has_arrived, _is_terminated) -----------------
    def outcome(self, state: IntersectionState) -> tuple[jax.Array, jax.Array, dict]:
        """``reward (agent,)``, ``terminated`` and ``info`` of a state after a step."""
        t = _jnp_table(LANES)
        s, r = _local(t, jnp, state.lane, state.position)
        length = t["length"][state.lane]
        arrived = (t["exit"][state.lane] > 0) & (s >= EXIT_DISTANCE)
        on_road = (jnp.abs(r) <= LANE_WIDTH / 2) & (-LANE_VEHICLE_LENGTH <= s) & (
            s < length + LANE_VEHICLE_LENGTH)
        high_speed = jnp.clip((state.speed - 7.0) / 2.0, 0.0, 1.0)  # reward_speed_range [7, 9]
        reward = jnp.where(arrived, self.arrived_reward,
                           self.collision_reward * state.crashed
                           + self.high_speed_reward * high_speed)
        reward = jnp.where(on_road, reward, 0.0).astype(jnp.float32)
        terminated = jnp.any(state.crashed) | jnp.all(arrived)
        info = {"crashed": state.crashed, "arrived": arrived,
                "agents_terminated": state.crashed | arrived}
        return reward, terminated, info

    # -- observation (KinematicObservation, Road.close_objects_to) -----------------------------
    def observe(self, state: IntersectionState) -> jax.Array:
        """``obs (agent, vehicle=3, feature=7)`` float32, as :mod:`envs.intersection`."""
        return self._observe(state.position[:, 0], state.position[:, 1], state.heading,
                             state.speed, state.lane)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _index_of_speed(speed):
        """``MDPVehicle.speed_to_index``: the nearest target-speed index (half to even)."""
        lo, hi, count = TARGET_SPEEDS[0], TARGET_SPEEDS[-1], len(TARGET_SPEEDS)
        x = (speed - lo) / (hi - lo)
        return jnp.clip(jnp.round(x * (count - 1)), 0, count - 1).astype(jnp.int32)

    @staticmethod
    def _speed_of_index(index):
        return jnp.asarray(TARGET_SPEEDS, jnp.float32)[index]

    def positions(self, obs: Any) -> np.ndarray:
        """Metres from the centre of each agent's own vehicle: ``(agent, xy)``."""
        lo, hi = self.position_range
        return (np.asarray(obs)[:, 0, 1:3] + 1.0) * (hi - lo) / 2.0 + lo

    def scripted_policy(self, **kwargs: Any):
        """A scripted expert for this env; see :func:`make_scripted_policy`."""
        return make_scripted_policy(self, **kwargs)

    def state_from_highway_env(self, game: Any) -> IntersectionState:
        """This env's state from a highway-env ``MultiAgentIntersectionEnv``'s vehicles.

        Reads each controlled vehicle's position, heading, speed, target speed,
        target lane, remaining route, current lane, ``crashed`` and pending
        impact (nothing of highway-env is imported). For fidelity checks: the
        game must be in this env's configuration with no other traffic.
        """
        vehicles = game.controlled_vehicles
        if len(vehicles) != self.num_agents or len(game.road.vehicles) != self.num_agents:
            raise ValueError(f"state_from_highway_env: game has {len(vehicles)} controlled and "
                             f"{len(game.road.vehicles)} vehicles, expected {self.num_agents} "
                             "of each")
        route, route_index = [], []
        for v in vehicles:
            left = [lane_index(x) for x in (v.route or [])]
            if left and left[0] != lane_index(v.target_lane_index):
                raise ValueError("state_from_highway_env: a vehicle's route does not start at "
                                 "its target lane")
            route_index.append(3 - len(left))
            route.append(([left[0]] * (3 - len(left)) + left) if left else
                         [lane_index(v.target_lane_index)] * 3)
        return IntersectionState(
            time=jnp.asarray(round(game.time), jnp.int32),
            position=jnp.asarray([v.position for v in vehicles], jnp.float32),
            heading=jnp.asarray([v.heading for v in vehicles], jnp.float32),
            speed=jnp.asarray([v.speed for v in vehicles], jnp.float32),
            target_speed=jnp.asarray([v.target_speed for v in vehicles], jnp.float32),
            target_lane=jnp.asarray([lane_index(v.target_lane_index) for v in vehicles],
                                    jnp.int32),
            route=jnp.asarray(route, jnp.int32),
            route_index=jnp.asarray(route_index, jnp.int32),
            lane=jnp.asarray([lane_index(v.lane_index) for v in vehicles], jnp.int32),
            crashed=jnp.asarray([v.crashed for v in vehicles], jnp.bool_),
            impact=jnp.asarray([np.zeros(2) if v.impact is None else v.impact
                                for v in vehicles], jnp.float32),
            has_impact=jnp.asarray([v.impact is not None for v in vehicles], jnp.bool_),
        )


def _make_observe(position_range: tuple[float, float], speed_range: tuple[float, float]):
    """``KinematicObservation`` of every vehicle, as one function of arrays
    ``(vehicle, *batch)`` kept batch-minor under ``jax.vmap`` (:func:`_batch_minor`):
    ``x, y, heading, speed, lane`` give ``obs (observer, slot=3, feature=7, *batch)``."""

    def scale(value, lo, hi):  # utils.lmap to [-1, 1], clipped
        return jnp.clip(-1.0 + (value - lo) * 2.0 / (hi - lo), -1.0, 1.0)

    def observe(x, y, heading, speed, lane):
        n = x.shape[0]
        column = (1, n) + (1,) * (x.ndim - 1)  # (vehicle,) against (observer, vehicle, *batch)
        cos_h, sin_h = jnp.cos(heading), jnp.sin(heading)
        rows = jnp.stack([jnp.ones_like(x), scale(x, *position_range), scale(y, *position_range),
                          scale(speed * cos_h, *speed_range), scale(speed * sin_h, *speed_range),
                          cos_h, sin_h], axis=1)  # (vehicle, feature, *batch)
        rows = _materialize(rows)
        # along the observer's lane: s[i, j] of vehicle j on observer i's lane
        s, _ = _local_xy(_lane_geometry(_jnp_table(LANES), lane[:, None]), jnp, x[None, :],
                         y[None, :])
        s = _materialize(s)
        along = s - jnp.stack([s[i, i] for i in range(n)])[:, None]
        dist = jnp.sqrt((x[None, :] - x[:, None]) ** 2 + (y[None, :] - y[:, None]) ** 2)
        others = ~np.eye(n, dtype=bool).reshape((n,) + column[1:])
        visible = _materialize(others & (dist < PERCEPTION_DISTANCE) & (-2 * LENGTH < along))
        key = jnp.abs(along)  # (observer, vehicle, *batch): sorted by it, ties by vehicle order
        order = np.arange(n).reshape(column)
        rank = sum((((key[:, k:k + 1] < key) | ((key[:, k:k + 1] == key) & (k < order)))
                    & visible[:, k:k + 1]).astype(jnp.int32) for k in range(n))
        rank = _materialize(rank)
        slots = [rows]
        for k in range(VEHICLES_OBSERVED - 1):
            pick = visible & (rank == k)  # (observer, vehicle, *batch), at most one per row
            slots.append(sum(jnp.where(pick[:, j:j + 1], rows[j][None], 0.0) for j in range(n)))
        obs = jnp.stack(slots, axis=1).astype(jnp.float32)  # (observer, slot, feature, *batch)
        return _materialize(obs)

    return _batch_minor(observe)


#: ``sin`` of the largest slip angle: the bicycle model's ``beta = arctan(tan(delta) / 2)`` at
#: the steering limit ``delta = pi / 3`` (``sqrt(3 / 7)``).
MAX_SIN_SLIP = float(np.sin(np.arctan(np.tan(MAX_STEERING_ANGLE) / 2)))


def _make_simulate(unroll: int):
    """The 15 frames of a step and the closest lanes after them, as one function of
    arrays ``(vehicle, *batch)`` kept batch-minor under ``jax.vmap``
    (:func:`_batch_minor`); ``unroll`` frames per loop iteration.

    Arguments: ``x, y, heading, speed, target_speed, target_lane``, the route's
    approach, turn and exit lanes, ``route_index, crashed, impact_x, impact_y,
    has_impact``.
    Returns ``x, y, heading, speed, target_lane, route_index, lane, crashed,
    impact_x, impact_y, has_impact``.
    """

    def simulate(x, y, heading, speed, target_speed, target_lane, approach_lane, turn_lane,
                 exit_lane, route_index, crashed, impact_x, impact_y, has_impact):
        t = _jnp_table(LANES)
        next_free = jnp.asarray(NEXT_WITHOUT_ROUTE)
        route = [_lane_geometry(t, lane) for lane in (approach_lane, turn_lane, exit_lane)]

        def geometry(lane, route_index):
            """Each target lane's geometry: its route's lane ``route_index`` (selected, not
            gathered: 40% of a frame's time) unless a vehicle of the batch is past its
            route's end (no vehicle reaches it in an episode)."""
            def on_route():
                return {k: jnp.where(route_index == 0, route[0][k],
                                     jnp.where(route_index == 1, route[1][k], route[2][k]))
                        for k in LANE_FIELDS}

            return jax.lax.cond(jnp.any(route_index > 2), lambda: _lane_geometry(t, lane),
                                on_route)

        def frame(carry, _):
            return _frame(geometry, next_free, turn_lane, exit_lane, target_speed, carry), None

        carry = (x, y, heading, _materialize(jnp.cos(heading)), _materialize(jnp.sin(heading)),
                 speed, target_lane, route_index, crashed, impact_x, impact_y, has_impact)
        carry, _ = jax.lax.scan(frame, carry, None, length=SIMULATION_FREQUENCY, unroll=unroll)
        (x, y, heading, _, _, speed, target_lane, route_index, crashed, impact_x, impact_y,
         has_impact) = carry
        lane = _closest_lane(x, y, heading)
        return (x, y, heading, speed, target_lane, route_index, lane, crashed, impact_x,
                impact_y, has_impact)

    return _batch_minor(simulate)


@_batch_minor
def _closest_lane_batch_minor(x, y, heading):
    """:func:`_closest_lane`, batch-minor under ``jax.vmap``."""
    return _closest_lane(x, y, heading)


def _frame(geometry, next_free, turn_lane, exit_lane, target_speed, carry):
    """One simulation frame of ``dt = 1 / 15`` s (steps 1-4 of the module docstring) on
    arrays ``(vehicle, *batch)``. ``geometry(target_lane, route_index)`` gives the
    target lanes' :func:`_lane_geometry`; ``carry`` holds ``cos`` and ``sin`` of the
    heading after ``heading``, computed once per frame."""
    (x, y, heading, cos_h, sin_h, speed, target_lane, route_index, crashed, impact_x, impact_y,
     has_impact) = carry
    dt = 1.0 / SIMULATION_FREQUENCY
    # 1. ControlledVehicle.follow_road / RoadNetwork.next_lane
    g = geometry(target_lane, route_index)
    s_target, _ = _local_xy(g, jnp, x, y)
    after_end = s_target > g["length"] - LANE_VEHICLE_LENGTH / 2
    on_route = route_index < 2
    route_next = jnp.where(route_index == 0, turn_lane, exit_lane)
    target_lane = jnp.where(after_end, jnp.where(on_route, route_next, next_free[target_lane]),
                            target_lane)
    route_index = jnp.where(after_end, jnp.where(on_route, route_index + 1, 3), route_index)
    # 2. ControlledVehicle.steering_control and speed_control
    not_zero = jnp.where(jnp.abs(speed) > 1e-2, speed, jnp.where(speed >= 0, 1e-2, -1e-2))
    g = geometry(target_lane, route_index)
    s, r = _local_xy(g, jnp, x, y)
    future_heading = _heading_at(g, s + speed * TAU_PURSUIT)
    lateral_speed = -(1 / TAU_LATERAL) * r
    z = jnp.clip(lateral_speed / not_zero, -1, 1)
    heading_command = _atan2(z, jnp.sqrt((1 - z) * (1 + z)))  # arcsin(z)
    heading_ref = future_heading + jnp.clip(heading_command, -jnp.pi / 4, jnp.pi / 4)
    heading_rate = (1 / TAU_HEADING) * _wrap_to_pi(heading_ref - heading)
    # steering = arctan(2 tan(arcsin(slip))) clipped to pi/3, then the bicycle model's
    # beta = arctan(tan(steering) / 2): beta = arcsin(slip) with sin(beta) clipped to
    # MAX_SIN_SLIP (the same angle, without the four inverse trigonometric functions)
    slip = jnp.clip(LENGTH / 2 / not_zero * heading_rate, -1, 1)
    acceleration = (1 / TAU_ACC) * (target_speed - speed)
    # 3. Vehicle.clip_actions and Vehicle.step (a crashed vehicle steers 0, brakes -speed)
    sin_beta = jnp.where(crashed, 0.0, jnp.clip(slip, -MAX_SIN_SLIP, MAX_SIN_SLIP))
    cos_beta = jnp.sqrt(1 - sin_beta * sin_beta)
    acceleration = jnp.where(crashed, -speed, acceleration)
    acceleration = jnp.where(speed > MAX_SPEED, jnp.minimum(acceleration, MAX_SPEED - speed),
                             jnp.where(speed < MIN_SPEED,
                                       jnp.maximum(acceleration, MIN_SPEED - speed),
                                       acceleration))
    travel = speed * dt  # along the course heading + beta
    x = x + travel * (cos_h * cos_beta - sin_h * sin_beta)
    y = y + travel * (sin_h * cos_beta + cos_h * sin_beta)
    x = x + jnp.where(has_impact, impact_x, 0.0)
    y = y + jnp.where(has_impact, impact_y, 0.0)
    crashed = crashed | has_impact
    heading = heading + speed * sin_beta / (LENGTH / 2) * dt
    speed = speed + acceleration * dt
    cos_h, sin_h = _materialize(jnp.cos(heading)), _materialize(jnp.sin(heading))
    # 4. Road.step -> RoadObject.handle_collisions, pairs i < j in order
    crashed, impact_x, impact_y, has_impact = _collisions(x, y, cos_h, sin_h, speed, crashed, dt)
    return (x, y, heading, cos_h, sin_h, speed, target_lane, route_index, crashed, impact_x,
            impact_y, has_impact)


def _collisions(x, y, cos_h, sin_h, speed, crashed, dt):
    """Every pair's ``handle_collisions`` on arrays ``(vehicle, *batch)``; returns
    ``crashed, impact_x, impact_y, has_impact``.

    Pairs ``i < j`` on one axis, in ``Road.step``'s order; a vehicle's impact is half
    the translation of the last pair (in that order) predicting an intersection.
    """
    n = x.shape[0]
    zero = jnp.zeros_like(x)
    if n < 2:
        return crashed, zero, zero, jnp.zeros_like(crashed)
    first, second = np.triu_indices(n, 1)
    intersecting, will, tx, ty = _polygons_intersecting(
        x[first] - x[second], y[first] - y[second], cos_h[first], sin_h[first], speed[first],
        cos_h[second], sin_h[second], speed[second], dt)
    # RoadObject._is_colliding's spherical pre-check (with the first vehicle's speed)
    diagonal = float(np.sqrt(LENGTH**2 + WIDTH**2))
    gap = jnp.sqrt((x[second] - x[first]) ** 2 + (y[second] - y[first]) ** 2)
    near = ~(gap > diagonal + speed[first] * dt)
    flags = _materialize(jnp.where(intersecting & near, 1.0, 0.0)
                         + jnp.where(will & near, 2.0, 0.0))
    intersecting, will = (flags == 1.0) | (flags == 3.0), flags >= 2.0
    tx, ty = _materialize(0.5 * tx), _materialize(0.5 * ty)
    crashed = [crashed[k] for k in range(n)]
    impact_x, impact_y = [zero[k] for k in range(n)], [zero[k] for k in range(n)]
    has_impact = [will[0] & False for _ in range(n)]
    for p, (i, j) in enumerate(zip(first, second, strict=True)):
        for k, sign in ((i, 1.0), (j, -1.0)):
            crashed[k] = crashed[k] | intersecting[p]
            impact_x[k] = jnp.where(will[p], sign * tx[p], impact_x[k])
            impact_y[k] = jnp.where(will[p], sign * ty[p], impact_y[k])
            has_impact[k] = has_impact[k] | will[p]
    return tuple(jnp.stack(v) for v in (crashed, impact_x, impact_y, has_impact))


def _polygons_intersecting(dx, dy, cos_a, sin_a, speed_a, cos_b, sin_b, speed_b, dt):
    """``utils.are_polygons_intersecting`` of two ``RoadObject.polygon`` rectangles.

    Elementwise over any shape: ``a``'s centre minus ``b``'s ``dx, dy``, each one's
    heading's ``cos, sin`` and speed; returns ``intersecting, will_intersect,
    translation_x, translation_y``.

    Separating axes in highway-env's order: the edge normals of ``a``
    (``-u_a, n_a, u_a, -n_a`` for its heading ``u`` and left normal ``n``), then
    of ``b``. A rectangle projects on a unit axis ``k`` to ``centre . k -+ (L/2
    |u . k| + W/2 |n . k|)`` (its corners' extremes); ``a``'s interval is
    stretched by the relative displacement ``(v_a - v_b) dt`` for
    ``will_intersect``. ``utils.interval_distance`` on ``-k`` picks between the
    same two gaps as on ``k`` (with the opposite test), so four projections
    serve the eight axes. The translation is the first smallest ``|distance|``
    along its axis, pointing from ``b``'s centre to ``a``'s.
    """
    ua, ub = (cos_a, sin_a), (cos_b, sin_b)
    na, nb = (-ua[1], ua[0]), (-ub[1], ub[0])
    cos_rel = ua[0] * ub[0] + ua[1] * ub[1]  # u_a . u_b = n_a . n_b
    sin_rel = ua[0] * ub[1] - ua[1] * ub[0]  # u_a . n_b = -(n_a . u_b)
    across = LENGTH / 2 * jnp.abs(cos_rel) + WIDTH / 2 * jnp.abs(sin_rel)
    along = LENGTH / 2 * jnp.abs(sin_rel) + WIDTH / 2 * jnp.abs(cos_rel)
    centre = (dx, dy)
    rel = ((speed_a * ua[0] - speed_b * ub[0]) * dt, (speed_a * ua[1] - speed_b * ub[1]) * dt)

    def dot(p, k):
        return p[0] * k[0] + p[1] * k[1]

    intersecting = will = jnp.ones(jnp.shape(dx), bool)
    distances, axes = [None] * 8, [None] * 8
    # (axis k, half-extent of a on k, of b on k, slot of k, slot of -k)
    for k, half_a, half_b, plus, minus in (
            (ua, LENGTH / 2, across, 2, 0), (na, WIDTH / 2, along, 1, 3),
            (ub, across, LENGTH / 2, 6, 4), (nb, along, WIDTH / 2, 5, 7)):
        c = dot(centre, k)  # centre_a . k - centre_b . k
        gap_b_a = -c - half_a - half_b  # min_b - max_a
        gap_a_b = c - half_a - half_b  # min_a - max_b
        # utils.interval_distance > 0 means disjoint, on k and -k alike
        disjoint = jnp.where(c < half_a - half_b, gap_b_a, gap_a_b) > 0
        intersecting = intersecting & ~disjoint
        shift = dot(rel, k)
        low, high = jnp.minimum(shift, 0), jnp.maximum(shift, 0)
        # a's interval [c - half_a + low, c + half_a + high] against b's [-half_b, half_b]
        gap_b_a = -c - half_a - high - half_b
        gap_a_b = c - half_a + low - half_b
        distances[plus] = jnp.where(c - half_a + low < -half_b, gap_b_a, gap_a_b)
        # on -k: a's interval [-c - half_a - high, -c + half_a - low], b's the same
        distances[minus] = jnp.where(-c - half_a - high < -half_b, gap_a_b, gap_b_a)
        will = will & ~(distances[plus] > 0)
        axes[plus], axes[minus] = k, (-k[0], -k[1])
    depths = [jnp.abs(d) for d in distances]
    best = depths[0]
    for depth in depths[1:]:
        best = jnp.minimum(best, depth)
    tx = ty = jnp.zeros(jnp.shape(dx), jnp.float32)
    for depth, k in zip(depths[::-1], axes[::-1], strict=True):  # the first minimum wins
        tx = jnp.where(depth == best, k[0], tx)
        ty = jnp.where(depth == best, k[1], ty)
    sign = jnp.where(centre[0] * tx + centre[1] * ty > 0, best, -best)
    return intersecting, will, sign * tx, sign * ty


def lockstep(host: Any, env: IntersectionJax, seed: int, policy: Any,
             step_fn: Any = None) -> dict[str, np.ndarray]:
    """Play one episode of a highway-env game and of ``env`` side by side.

    ``host`` is an :class:`envs.intersection.Intersection` in ``env``'s
    configuration. It is reset from ``seed``; ``env`` starts from its vehicles
    (:meth:`IntersectionJax.state_from_highway_env`); both then take the same
    joint actions, ``policy(t, obs) -> actions (agent,)`` of the host's
    observation, until either episode ends or ``max_steps``.

    Returns per-step arrays (step axis first): the largest absolute
    differences ``position`` (m), ``heading`` (rad), ``speed`` (m/s) and ``obs``;
    ``crashed``, ``arrived`` (agent axis), ``reward`` and ``terminated`` of each
    side (``host_*``, ``jax_*``); and ``obs0``, the reset observations'
    largest difference.
    """
    step = step_fn or jax.jit(env.step_env)
    obs_host = host.reset_host(int(seed))
    state = env.state_from_highway_env(host.game)
    out: dict[str, list] = {k: [] for k in (
        "position", "heading", "speed", "obs", "host_crashed", "jax_crashed", "host_arrived",
        "jax_arrived", "host_reward", "jax_reward", "host_terminated", "jax_terminated")}
    obs0 = float(np.abs(np.asarray(env.observe(state)) - obs_host).max())
    key = jax.random.key(0)
    for t in range(env.max_steps):
        actions = np.asarray(policy(t, obs_host), np.int32)
        obs_host, r_host, term_host, _, info = host.step_host(actions)
        obs_jax, state, r_jax, term_jax, info_jax = step(key, state, jnp.asarray(actions))
        vehicles = host.game.controlled_vehicles
        out["position"].append(np.abs(np.array([v.position for v in vehicles])
                                      - np.asarray(state.position)).max())
        out["heading"].append(np.abs(np.array([v.heading for v in vehicles])
                                     - np.asarray(state.heading)).max())
        out["speed"].append(np.abs(np.array([v.speed for v in vehicles])
                                   - np.asarray(state.speed)).max())
        out["obs"].append(np.abs(obs_host - np.asarray(obs_jax)).max())
        for side, crashed, arrived, reward, term in (
                ("host", info["crashed"], info["arrived"], r_host, term_host),
                ("jax", info_jax["crashed"], info_jax["arrived"], r_jax, term_jax)):
            out[f"{side}_crashed"].append(np.asarray(crashed, bool))
            out[f"{side}_arrived"].append(np.asarray(arrived, bool))
            out[f"{side}_reward"].append(np.asarray(reward, np.float32))
            out[f"{side}_terminated"].append(bool(term))
        if term_host or bool(term_jax):
            break
    result = {k: np.asarray(v) for k, v in out.items()}
    result["obs0"] = np.asarray(obs0)
    return result


# -- scripted expert ----------------------------------------------------------------------------
def make_scripted_policy(env: IntersectionJax, *, gap: float = 14.0, box: float = 14.0):
    """:func:`envs.intersection.make_scripted_policy` in JAX: ``policy_fn(key, obs)``.

    The same yield-by-arrival-order rule (``key`` unused), jittable and
    vmappable over ``obs (agent, vehicle, feature)``; ``policy_fn.host`` is
    ``False``.
    """
    if not (np.isfinite(gap) and np.isfinite(box)):
        raise ValueError(f"make_scripted_policy: gap and box must be finite, got {gap}, {box}")
    lo, hi = env.position_range

    def policy_fn(key: Any, obs: jax.Array) -> jax.Array:
        obs = jnp.asarray(obs, jnp.float32)
        pos = (obs[:, 0, 1:3] + 1.0) * (hi - lo) / 2.0 + lo  # (agent, xy) metres
        heading = obs[:, 0, 5:7]  # (agent, cos sin)
        dist = jnp.linalg.norm(pos, axis=-1)
        approaching = jnp.sum(pos * heading, -1) < 0.0
        progress = jnp.where(approaching, dist, -dist)
        active = approaching | (dist < box)
        n = obs.shape[0]
        ahead = active[None, :] & (progress[None, :] < progress[:, None]) & ~jnp.eye(n, dtype=bool)
        lead = jnp.min(jnp.where(ahead, progress[:, None] - progress[None, :], jnp.inf), axis=1)
        slower = active & (lead < gap)
        return jnp.where(slower, SLOWER, FASTER).astype(jnp.int32)

    policy_fn.host = False
    return policy_fn


__all__ = ["IntersectionJax", "IntersectionState", "LANE_NAMES", "lane_index", "lockstep",
           "make_scripted_policy"]
