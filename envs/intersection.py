"""highway-env's multi-agent intersection in the MAMQL setting, as a host-side mairl env.

Four controlled vehicles approach an unsignalled four-way crossing, one from
each side, with no other traffic (``initial_vehicle_count`` 0,
``spawn_probability`` 0). The game is highway-env's
``MultiAgentIntersectionEnv`` (version 1.12), stepped on the host through
:class:`envs.host.HostEnvironment`; ``highway_env`` is imported when an
:class:`Intersection` is built, never by ``import envs``.

Observations, ``obs (agent=4, vehicle=3, feature=7)`` float32: row ``i`` is
what vehicle ``i`` sees, highway-env's ``Kinematics`` observation with
``vehicles_count=3``, absolute coordinates and features
``presence, x, y, vx, vy, cos_h, sin_h``:

- vehicle row 0 is the observer itself; rows 1 and 2 are the two nearest other
  vehicles (by distance along the observer's lane) that are within 200 m and
  not more than 10 m behind it in its lane's coordinates; missing rows are all
  zeros (``presence`` 0);
- ``x, y`` are metres from the centre of the crossing (``x`` east, ``y``
  south, highway-env's screen axes), ``vx, vy`` the velocity in m/s; each is
  mapped linearly from its range to ``[-1, 1]`` and clipped there:
  ``lmap(v, [lo, hi], [-1, 1]) = -1 + 2 (v - lo) / (hi - lo)``. The MAMQL
  ranges are ``x, y`` in ``[-100, 100]`` m (``x / 100``) and ``vx, vy`` in
  ``[20, 40]`` m/s. Vehicles here drive at 0 to 10 m/s, so with that speed
  range ``vx`` and ``vy`` read ``-1`` always (``lmap`` gives ``v / 10 - 3``,
  at most ``-2``, before the clip): the velocity features carry no
  information. ``speed_range=(-20, 20)`` (highway-env's own default, the
  ``intersection-speed`` registration) keeps them informative:
  ``vx = v_x / 20``;
- ``cos_h, sin_h``: the heading's direction, unscaled.

Actions, per agent ``Discrete(3)``: highway-env's longitudinal meta-actions
(``DiscreteMetaAction`` with ``lateral=False`` inside ``MultiAgentAction``):
``0`` SLOWER, ``1`` IDLE, ``2`` FASTER. They move a target speed between
``0, 4.5, 9`` m/s that a P-controller tracks; vehicles start at 10 m/s with
target 9 m/s, so IDLE and FASTER both keep full speed until a SLOWER. Steering
follows the vehicle's route: each vehicle turns left, goes straight or turns
right (``turns="random"``: uniformly, drawn from the episode's seed) and its
route is not observed.

Rewards, per agent: highway-env's per-vehicle ``_agent_reward``, returned in
``info["agents_rewards"]`` (not its shared mean): ``collision_reward`` (-4) on
the step a vehicle crashes, ``arrived_reward`` (+2) on every step a vehicle
has arrived (25 m into an exit lane), 0 otherwise; ``high_speed_reward`` is 0
(highway-env's default of 1 would add up to 1 per step for speeds near 9 m/s),
a vehicle that has arrived gets +2 even on the step it is hit, and a vehicle off
the road gets 0. One step is 1 s (15 simulator frames).

Episodes: ``terminated`` as highway-env says: when any vehicle crashes, or
when every vehicle has arrived; truncated at ``duration`` (13 s, so
``max_steps`` 13). Vehicles that arrive early keep driving along their exit
lane, observe as before and collect +2 per step until the episode ends; a
crash ends the episode for all (``info["agents_terminated"]`` says who crashed
or arrived). Episodes are seeded from ``reset_host(seed)``: highway-env's
``np_random`` draws the start positions (65 +- 5 m along each approach, about
46 m from the centre) and the turns.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

import numpy as np

from envs.host import HostEnvironment
from envs.spaces import Discrete

#: Kinematics features of each observed vehicle, in order.
FEATURES = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")
#: Meaning of each agent's action index.
ACTIONS = ("SLOWER", "IDLE", "FASTER")
SLOWER, IDLE, FASTER = 0, 1, 2
#: Vehicles in each agent's observation (itself first).
VEHICLES_OBSERVED = 3

Turns = Literal["random", "left", "straight", "right"]
#: Exit of the vehicle entering from side ``c`` is side ``(c + offset) % 4``.
_TURN_OFFSETS = {"right": 3, "straight": 2, "left": 1}


class IntersectionSettings:
    """The settings both intersection games take (:class:`Intersection` on
    highway-env, ``envs.intersection_jax.IntersectionJax`` in JAX), checked, and the
    spaces they imply. Bad values raise ``ValueError`` naming the game and the setting.

    Args:
        num_agents: controlled vehicles, 1 to 4, one per approach.
        duration: episode length in seconds (= steps).
        collision_reward: per-agent reward for a crashed vehicle (when: the game's
            docstring).
        arrived_reward: per-agent reward on each step after its vehicle arrived.
        high_speed_reward: weight of highway-env's speed term (0 in MAMQL).
        position_range: ``[lo, hi]`` in metres mapped to ``[-1, 1]`` for ``x, y``.
        speed_range: ``[lo, hi]`` in m/s mapped to ``[-1, 1]`` for ``vx, vy``.
        turns: ``"random"`` (each vehicle's turn drawn per episode) or one turn
            for all vehicles.
    """

    def __init__(
        self,
        num_agents: int = 4,
        *,
        duration: int = 13,
        collision_reward: float = -4.0,
        arrived_reward: float = 2.0,
        high_speed_reward: float = 0.0,
        position_range: tuple[float, float] = (-100.0, 100.0),
        speed_range: tuple[float, float] = (20.0, 40.0),
        turns: Turns = "random",
    ):
        name = type(self).__name__
        if not 1 <= int(num_agents) <= 4:
            raise ValueError(f"{name}: num_agents must be in 1..4 (one vehicle per approach), "
                             f"got {num_agents}")
        if int(duration) < 1:
            raise ValueError(f"{name}: duration must be >= 1 s, got {duration}")
        if turns not in ("random", *_TURN_OFFSETS):
            raise ValueError(f"{name}: turns must be 'random', 'left', 'straight' or 'right', "
                             f"got {turns!r}")
        for field, rng in (("position_range", position_range), ("speed_range", speed_range)):
            if len(rng) != 2 or not float(rng[0]) < float(rng[1]):
                raise ValueError(f"{name}: {field} must be [lo, hi] with lo < hi, got {rng}")
        for field, value in (("collision_reward", collision_reward),
                             ("arrived_reward", arrived_reward),
                             ("high_speed_reward", high_speed_reward)):
            if not np.isfinite(float(value)):
                raise ValueError(f"{name}: {field} must be finite, got {value}")
        self.num_agents = int(num_agents)
        self.agents = tuple(f"agent_{i}" for i in range(self.num_agents))
        self.obs_shape = (VEHICLES_OBSERVED, len(FEATURES))
        self.action_spaces = (Discrete(len(ACTIONS)),) * self.num_agents
        self.max_steps = int(duration)
        self.collision_reward = float(collision_reward)
        self.arrived_reward = float(arrived_reward)
        self.high_speed_reward = float(high_speed_reward)
        self.position_range = (float(position_range[0]), float(position_range[1]))
        self.speed_range = (float(speed_range[0]), float(speed_range[1]))
        self.turns = turns


class Intersection(IntersectionSettings, HostEnvironment):
    """highway-env's multi-agent intersection (see the module docstring).

    Args:
        num_agents, **settings: :class:`IntersectionSettings`; a crashed
            vehicle's agent gets ``collision_reward`` on the step it crashes.
        fast_observations: compute highway-env's Kinematics observation with
            NumPy (equal values, about 3x faster steps) rather than its pandas
            implementation.
    """

    def __init__(self, num_agents: int = 4, *, fast_observations: bool = True,
                 **settings: Any):
        super().__init__(num_agents, **settings)
        self.config = highway_config(
            num_agents=self.num_agents, duration=self.max_steps,
            collision_reward=self.collision_reward, arrived_reward=self.arrived_reward,
            high_speed_reward=self.high_speed_reward, position_range=self.position_range,
            speed_range=self.speed_range,
        )
        cls = _game_class()
        self.game = cls(config=self.config, render_mode="rgb_array", turns=self.turns,
                        fast_observations=fast_observations)

    # -- HostEnvironment ------------------------------------------------------------------
    def reset_host(self, seed: int) -> np.ndarray:
        obs, _ = self.game.reset(seed=int(seed))
        return np.stack(obs).astype(np.float32)

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool, dict]:
        obs, _, terminated, truncated, info = self.game.step(tuple(int(a) for a in actions))
        vehicles = self.game.controlled_vehicles
        info = {
            "agents_rewards": np.asarray(info["agents_rewards"], np.float32),
            "agents_terminated": np.asarray(info["agents_terminated"], bool),
            "crashed": np.array([v.crashed for v in vehicles]),
            "arrived": np.array([self.game.has_arrived(v) for v in vehicles]),
        }
        return (np.stack(obs).astype(np.float32), info["agents_rewards"], bool(terminated),
                bool(truncated), info)

    def render(self) -> np.ndarray:
        """The current scene as an ``(height, width, 3)`` uint8 image, without a display.

        Draws through SDL's ``offscreen`` video driver: highway-env draws nothing
        under the ``dummy`` driver, so that one is replaced too.
        """
        if os.environ.get("SDL_VIDEODRIVER") in (None, "dummy"):
            os.environ["SDL_VIDEODRIVER"] = "offscreen"
        return self.game.render()

    def close(self) -> None:
        self.game.close()

    # -- helpers --------------------------------------------------------------------------
    def positions(self, obs: np.ndarray) -> np.ndarray:
        """Metres from the centre of each agent's own vehicle: ``(agent, xy)``."""
        lo, hi = self.position_range
        return (np.asarray(obs)[:, 0, 1:3] + 1.0) * (hi - lo) / 2.0 + lo

    def scripted_policy(self, **kwargs: Any):
        """A scripted expert for this env; see :func:`make_scripted_policy`."""
        return make_scripted_policy(self, **kwargs)


def highway_config(
    *,
    num_agents: int,
    duration: int,
    collision_reward: float,
    arrived_reward: float,
    high_speed_reward: float,
    position_range: tuple[float, float],
    speed_range: tuple[float, float],
) -> dict:
    """The highway-env configuration of :class:`Intersection` (every key it relies on)."""
    return {
        "observation": {
            "type": "MultiAgentObservation",
            "observation_config": {
                "type": "Kinematics",
                "vehicles_count": VEHICLES_OBSERVED,
                "features": list(FEATURES),
                "features_range": {"x": list(position_range), "y": list(position_range),
                                   "vx": list(speed_range), "vy": list(speed_range)},
                "absolute": True,
                "normalize": True,
                "clip": True,
                "see_behind": False,
                "order": "sorted",
                "flatten": False,
                "observe_intentions": False,
            },
        },
        "action": {
            "type": "MultiAgentAction",
            "action_config": {"type": "DiscreteMetaAction", "lateral": False,
                              "longitudinal": True, "target_speeds": [0, 4.5, 9]},
        },
        "controlled_vehicles": num_agents,
        "initial_vehicle_count": 0,
        "spawn_probability": 0.0,
        "duration": duration,
        "policy_frequency": 1,
        "simulation_frequency": 15,
        "destination": "o1",  # replaced per vehicle by ``turns`` after each reset
        "collision_reward": float(collision_reward),
        "arrived_reward": float(arrived_reward),
        "high_speed_reward": float(high_speed_reward),
        "normalize_reward": False,
        "offroad_terminal": False,
    }


@functools.cache
def _game_class():
    """``MultiAgentIntersectionEnv`` with per-vehicle turns and NumPy observations."""
    from highway_env import utils
    from highway_env.envs.intersection_env import MultiAgentIntersectionEnv

    class FastKinematics:
        """highway-env's Kinematics observation of every controlled vehicle, in NumPy.

        Same rows, order, normalization and clipping as ``KinematicObservation``
        with ``absolute=True``, ``see_behind=False``, ``order="sorted"``.
        """

        def __init__(self, env, slow):
            self.env, self.slow = env, slow
            cfg = env.config["observation"]["observation_config"]
            self.count = cfg["vehicles_count"]
            self.ranges = cfg["features_range"]

        def space(self):
            return self.slow.space()

        def _row(self, v) -> list[float]:
            vx, vy = v.velocity
            cos_h, sin_h = v.direction
            return [1.0, v.position[0], v.position[1], vx, vy, cos_h, sin_h]

        def observe(self) -> tuple[np.ndarray, ...]:
            out = []
            road = self.env.road
            for ego in self.env.controlled_vehicles:
                others = road.close_objects_to(ego, self.env.PERCEPTION_DISTANCE,
                                               count=self.count - 1, see_behind=False,
                                               sort=True)
                rows = np.array([self._row(v) for v in [ego, *others[-self.count + 1:]]])
                for j, name in ((1, "x"), (2, "y"), (3, "vx"), (4, "vy")):
                    lo, hi = self.ranges[name]
                    rows[:, j] = np.clip(utils.lmap(rows[:, j], [lo, hi], [-1, 1]), -1, 1)
                obs = np.zeros((self.count, len(FEATURES)))
                obs[: len(rows)] = rows
                out.append(obs.astype(np.float32))
            return tuple(out)

    class Game(MultiAgentIntersectionEnv):
        def __init__(self, *args, turns: str = "random", fast_observations: bool = True,
                     **kwargs):
            self.turns, self.fast_observations = turns, fast_observations
            super().__init__(*args, **kwargs)

        def define_spaces(self) -> None:
            super().define_spaces()
            if self.fast_observations:
                self.observation_type = FastKinematics(self, self.observation_type)

        def _reset(self) -> None:
            super()._reset()
            for side, vehicle in enumerate(self.controlled_vehicles):
                if self.turns == "random":
                    offset = int(self.np_random.integers(1, 4))
                else:
                    offset = _TURN_OFFSETS[self.turns]
                vehicle.plan_route_to(f"o{(side + offset) % 4}")

    return Game


# -- scripted expert ----------------------------------------------------------------------------
def make_scripted_policy(env: Intersection, *, gap: float = 14.0, box: float = 14.0):
    """A yield-by-arrival-order expert: ``policy_fn(key, obs) -> actions (agent,)`` int32.

    Reads every vehicle's own position and heading (row 0 of each agent's
    observation, so it is centralized and memoryless; ``key`` is unused).
    A vehicle's *progress* is its distance to the centre while it approaches
    and minus that distance once it heads away. Vehicles still within ``box``
    metres of the centre, or approaching it, are *active*; the active vehicle
    with the least progress goes first (FASTER). Each other active vehicle
    goes FASTER only while it trails every active vehicle ahead of it by at
    least ``gap`` metres of progress, and SLOWER otherwise; vehicles past the
    crossing go FASTER. ``policy_fn.host`` is ``True``: it runs as NumPy on the
    host.
    """
    lo, hi = env.position_range

    def policy_fn(key: Any, obs: Any) -> np.ndarray:
        obs = np.asarray(obs, np.float64)
        pos = (obs[:, 0, 1:3] + 1.0) * (hi - lo) / 2.0 + lo  # (agent, xy) metres
        heading = obs[:, 0, 5:7]  # (agent, cos sin)
        dist = np.linalg.norm(pos, axis=-1)
        approaching = (pos * heading).sum(-1) < 0.0
        progress = np.where(approaching, dist, -dist)
        active = approaching | (dist < box)
        actions = np.full(len(obs), FASTER, np.int32)
        for i in np.flatnonzero(active):
            ahead = active & (progress < progress[i])
            ahead[i] = False
            if ahead.any() and (progress[i] - progress[ahead]).min() < gap:
                actions[i] = SLOWER
        return actions

    policy_fn.host = True
    return policy_fn


__all__ = ["ACTIONS", "FEATURES", "Intersection", "highway_config", "make_scripted_policy"]
