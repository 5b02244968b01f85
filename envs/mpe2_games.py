"""mpe2's particle games (the maintained PettingZoo MPE) as mairl host environments.

Each game is mpe2's ``parallel_env`` behind :func:`envs.pettingzoo.from_pettingzoo`:
agents stacked in mpe2's order, observations of different sizes zero-padded
(``obs_sizes`` keeps the true ones), discrete actions ``0`` no-op, ``1`` left
(``-x``), ``2`` right (``+x``), ``3`` down (``-y``), ``4`` up (``+y``), episodes
of ``max_cycles`` (25) steps, truncated. mpe2 is imported when a game is built.

Scripted experts (``env.scripted_policy()``, NumPy, ``policy_fn.host = True``)
for ``simple``, ``simple_spread``, ``simple_tag`` and ``simple_adversary``:
each agent reads its own row of the joint observation only, so the experts are
decentralized. They steer with :func:`steer`, which knows mpe2's physics: an
action adds ``accel * dt`` to the velocity along one axis, then velocities
decay by ``1 - damping = 0.75`` per step (``dt = 0.1``).
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import numpy as np

from envs.pettingzoo import PettingZooEnv

#: mpe2 world constants (``mpe2._mpe_utils.core.World``).
DT = 0.1
DAMPING = 0.25


def steer(vel: np.ndarray, desired: np.ndarray, deadband: Any) -> np.ndarray:
    """Discrete actions that bring velocities toward desired velocities.

    Args:
        vel: ``(agent, 2)`` current velocities.
        desired: ``(agent, 2)`` desired velocities.
        deadband: no-op where every component of ``desired - vel`` is smaller
            (about half an action's velocity change, ``accel * dt / 2``);
            scalar or ``(agent,)``.

    Returns:
        int32 ``(agent,)``: the push along the axis with the larger error
        (``1 + 2 * axis + (error > 0)``: 1 left, 2 right, 3 down, 4 up), or 0.
    """
    error = desired - vel
    axis = np.argmax(np.abs(error), axis=-1)
    big = np.take_along_axis(error, axis[:, None], axis=-1)[:, 0]
    action = 1 + 2 * axis + (big > 0)
    return np.where(np.abs(big) < deadband, 0, action).astype(np.int32)


def arrive(pos: np.ndarray, vel: np.ndarray, target: np.ndarray, accel: float = 5.0,
           gain: float = 2.0) -> np.ndarray:
    """Actions that move agents to ``target`` and stop there.

    The desired velocity is ``gain * (target - pos)``, capped at the speed a
    constant push reaches, ``accel * dt / damping``. Where ``vel`` is the
    observed velocity the push reverses to brake, so high gains arrive
    sooner (5 does best on simple_spread). Where velocities are not observed
    (pass zeros), ``gain <= 2.5`` keeps the distance coasted after the last
    push, ``v * dt / damping``, within the distance to the target.

    Args:
        pos, vel, target: ``(agent, 2)``.
        accel: the agents' acceleration (mpe2's default sensitivity is 5).
        gain: desired speed per unit of distance (1/s).
    """
    desired = gain * (target - pos)
    vmax = accel * DT / DAMPING
    norm = np.linalg.norm(desired, axis=-1, keepdims=True)
    desired = desired * np.minimum(1.0, vmax / np.maximum(norm, 1e-9))
    return steer(vel, desired, deadband=0.5 * accel * DT)


def pursue(vel: np.ndarray, direction: np.ndarray, accel: Any, speed: Any) -> np.ndarray:
    """Actions that run along ``direction`` at top speed.

    Args:
        vel: ``(agent, 2)`` current velocities.
        direction: ``(agent, 2)``, any length.
        accel: each agent's acceleration, scalar or ``(agent,)``.
        speed: each agent's desired speed, scalar or ``(agent,)``.
    """
    accel = np.broadcast_to(np.asarray(accel, np.float64), vel.shape[:1])
    speed = np.broadcast_to(np.asarray(speed, np.float64), vel.shape[:1])
    norm = np.linalg.norm(direction, axis=-1, keepdims=True)
    desired = speed[:, None] * direction / np.maximum(norm, 1e-9)
    return steer(vel, desired, deadband=0.5 * accel * DT)


def best_assignment(cost: np.ndarray) -> np.ndarray:
    """``perm`` minimizing ``sum_i cost[i, perm[i]]`` (exhaustive up to 7, then greedy)."""
    n = cost.shape[0]
    if n <= 7:
        perms = np.array(list(itertools.permutations(range(n))))
        totals = cost[np.arange(n), perms].sum(axis=1)
        return perms[int(np.argmin(totals))]
    perm = -np.ones(n, np.int64)
    taken = np.zeros(cost.shape[1], bool)
    for flat in np.argsort(cost, axis=None):
        i, j = divmod(int(flat), cost.shape[1])
        if perm[i] < 0 and not taken[j]:
            perm[i], taken[j] = j, True
    return perm


def _vectors(row: np.ndarray, start: int, *counts: int) -> list[np.ndarray]:
    """Consecutive blocks of 2-D vectors in one agent's observation row, from
    ``start``: ``(count, 2)`` for each of ``counts``, then the rest of the row."""
    blocks = []
    for count in counts:
        blocks.append(row[start: start + 2 * count].reshape(count, 2))
        start += 2 * count
    return [*blocks, row[start:]]


def _each_agent(choose, obs: np.ndarray) -> np.ndarray:
    """``(agent, 2)``: ``choose(i, obs[i])`` for every agent ``i``, each reading its own
    row of the joint observation only (a decentralized expert)."""
    return np.stack([choose(i, row) for i, row in enumerate(obs)])


def _host(policy_fn):
    policy_fn.host = True
    return policy_fn


class MPE2Game(PettingZooEnv):
    """An mpe2 particle game as a mairl host environment.

    Args:
        scenario: mpe2 module name, e.g. ``"simple_spread_v3"``.
        render_mode: ``None``, ``"rgb_array"`` or ``"human"`` (needs a display).
        **kwargs: the game's own arguments (``N``, ``max_cycles``,
            ``continuous_actions``, ...), passed to mpe2's ``parallel_env``.
    """

    def __init__(self, scenario: str, render_mode: str | None = None, **kwargs: Any):
        try:
            module = importlib.import_module(f"mpe2.{scenario}")
        except ImportError as err:
            raise ImportError(f"mpe2 games need the mpe2 package (pip install 'mairl[mpe]'): "
                              f"{err}") from None
        self.scenario = scenario
        self.game_kwargs = dict(kwargs)
        super().__init__(module.parallel_env(render_mode=render_mode, **kwargs), name=scenario)

    def _check_discrete(self) -> None:
        if not self.discrete:
            raise ValueError(f"{self.name}: the scripted expert plays discrete actions; build "
                             "the game with continuous_actions=False")


class Simple(MPE2Game):
    """``simple_v3``: one agent reaches one landmark (reward: minus squared distance).

    Observation: ``[vel (2), landmark - pos (2)]``. The expert moves to the landmark.
    """

    def __init__(self, **kwargs: Any):
        super().__init__("simple_v3", **kwargs)

    def scripted_policy(self, gain: float = 5.0):
        """Move to the landmark (:func:`arrive` with ``gain``)."""
        self._check_discrete()

        def policy_fn(key, obs):
            obs = np.asarray(obs, np.float64)
            vel, rel = obs[:, 0:2], obs[:, 2:4]
            return arrive(np.zeros_like(rel), vel, rel, gain=gain)

        return _host(policy_fn)


class SimpleSpread(MPE2Game):
    """``simple_spread_v3``: ``N`` agents cover ``N`` landmarks, collisions cost.

    Observation of agent ``i``: ``[vel (2), pos (2), landmark - pos (2N),
    other - pos (2(N-1)), comm (2(N-1))]``, others in agent order without ``i``.

    The expert: every agent rebuilds all positions from its own row, computes
    the assignment of agents to distinct landmarks with the least total
    distance (:func:`best_assignment`; ties in floating point aside, all agents
    compute the same one) and moves to its landmark with :func:`arrive`.
    """

    def __init__(self, **kwargs: Any):
        super().__init__("simple_spread_v3", **kwargs)

    def scripted_policy(self, gain: float = 5.0):
        """The expert of the class docstring; ``gain`` as in :func:`arrive`."""
        self._check_discrete()
        n = self.num_agents

        def target(i, row):
            pos = row[2:4]
            landmarks, others, _ = _vectors(row, 4, n, n - 1)
            landmarks = pos + landmarks
            agents = np.insert(pos + others, i, pos, axis=0)  # (agent, 2), agent order
            cost = np.linalg.norm(agents[:, None] - landmarks[None], axis=-1)
            return landmarks[best_assignment(cost)[i]]

        def policy_fn(key, obs):
            obs = np.asarray(obs, np.float64)
            return arrive(obs[:, 2:4], obs[:, 0:2], _each_agent(target, obs), gain=gain)

        return _host(policy_fn)


class SimpleTag(MPE2Game):
    """``simple_tag_v3``: adversaries (slower) chase the good agents around obstacles.

    Agents: ``adversary_0 .. adversary_{A-1}`` then ``agent_0 ..``. Observation:
    ``[vel (2), pos (2), obstacle - pos (2L), other - pos (2(N-1)), good agents'
    vel (2G, not one's own)]``: adversaries see 16 numbers, the prey 14 with the
    defaults (A = 3, G = 1, L = 2).

    The expert: each adversary runs at full speed toward where the nearest good
    agent will be in ``lead`` seconds; each good agent runs away from the
    adversaries (inverse-square repulsion), pushed back from the border (mpe2
    penalizes ``|x| > 0.9``) and around obstacles.
    """

    def __init__(self, **kwargs: Any):
        super().__init__("simple_tag_v3", **kwargs)
        unwrapped = self.parallel_env.unwrapped
        world = unwrapped.world
        self.num_adversaries = sum(bool(a.adversary) for a in world.agents)
        self.num_obstacles = sum(not lm.boundary for lm in world.landmarks)
        self.accels = np.array([a.accel for a in world.agents], np.float64)
        self.max_speeds = np.array([a.max_speed for a in world.agents], np.float64)

    def scripted_policy(self, lead: float = 0.3, margin: float = 0.6):
        """The expert of the class docstring.

        Args:
            lead: seconds ahead an adversary aims, along the prey's velocity.
            margin: distance from the centre beyond which a good agent is
                pushed back inward (mpe2 penalizes ``|x| > 0.9``).
        """
        self._check_discrete()
        n, a_num, num_l = self.num_agents, self.num_adversaries, self.num_obstacles
        accels, speeds = self.accels, self.max_speeds

        def direction(i, row):
            pos = row[2:4]
            obstacles, others, rest = _vectors(row, 4, num_l, n - 1)
            kinds = np.delete(np.arange(n) < a_num, i)  # adversary flags of the others
            if i < a_num:  # adversary: chase the nearest good agent
                prey = others[~kinds]
                prey_vel = rest.reshape(-1, 2)
                k = int(np.argmin(np.linalg.norm(prey, axis=-1)))
                return prey[k] + lead * prey_vel[k] + 0.3 * _avoid(obstacles, 0.35)
            # good agent: flee
            threats = others[kinds]
            dist2 = np.maximum((threats ** 2).sum(-1, keepdims=True), 1e-4)
            away = -(threats / dist2).sum(0)
            inward = -np.sign(pos) * np.maximum(np.abs(pos) - margin, 0.0) * 20.0
            return away + inward + 2.0 * _avoid(obstacles, 0.35)

        def policy_fn(key, obs):
            obs = np.asarray(obs, np.float64)
            return pursue(obs[:, 0:2], _each_agent(direction, obs), accels, speeds)

        return _host(policy_fn)


def _avoid(relative: np.ndarray, radius: float) -> np.ndarray:
    """Push away from objects at ``relative`` positions closer than ``radius``."""
    dist = np.linalg.norm(relative, axis=-1, keepdims=True)
    weight = np.maximum(radius - dist, 0.0) / np.maximum(dist, 1e-6)
    return -(relative * weight).sum(0)


class SimpleAdversary(MPE2Game):
    """``simple_adversary_v3``: good agents guard a goal landmark the adversary cannot see.

    Agents: ``adversary_0`` then ``agent_0 .. agent_{N-1}`` (N = 2), N
    landmarks, one of them the goal. Observations: the adversary ``[landmark -
    pos (2N), other - pos (2N)]`` (8 numbers); a good agent ``[goal - pos (2),
    landmark - pos (2N), other - pos (2N)]`` (10). Rewards: the adversary
    ``-|adversary - goal|``; good agents ``-min_j |agent_j - goal| + |adversary - goal|``.

    The expert: good agents cover every landmark, the one nearest the goal
    taking the goal (so the adversary cannot tell which one it is), assigned by
    least total distance; the adversary heads for the landmark nearest to any
    good agent.
    """

    def __init__(self, **kwargs: Any):
        super().__init__("simple_adversary_v3", **kwargs)
        world = self.parallel_env.unwrapped.world
        self.num_adversaries = sum(bool(a.adversary) for a in world.agents)
        self.num_landmarks = len(world.landmarks)

    def scripted_policy(self, gain: float = 1.0):
        """The expert of the class docstring; ``gain`` as in :func:`arrive`."""
        self._check_discrete()
        n, a_num, num_l = self.num_agents, self.num_adversaries, self.num_landmarks

        def target(i, row):  # relative to agent i
            landmarks, others, _ = _vectors(row, 0 if i < a_num else 2, num_l, n - 1)
            kinds = np.delete(np.arange(n) < a_num, i)
            if i < a_num:
                good = others[~kinds]  # (good, 2)
                gap = np.linalg.norm(landmarks[:, None] - good[None], axis=-1).min(1)
                return landmarks[int(np.argmin(gap))]
            goal = row[0:2]
            g = int(np.argmin(np.linalg.norm(landmarks - goal, axis=-1)))
            team = np.insert(others[~kinds], i - a_num, np.zeros(2), axis=0)  # (good, 2)
            cost = np.linalg.norm(team[:, None] - landmarks[None], axis=-1)
            # the goal must be covered: weight it so the nearest agent always takes it
            cost[:, g] *= 0.5
            perm = best_assignment(cost)
            return landmarks[perm[i - a_num]]

        def policy_fn(key, obs):
            obs = np.asarray(obs, np.float64)
            # no velocities are observed: steer on positions alone, gently
            return arrive(np.zeros((n, 2)), np.zeros((n, 2)), _each_agent(target, obs), gain=gain)

        return _host(policy_fn)


class SimplePush(MPE2Game):
    """``simple_push_v3``: an adversary pushes the agent off its goal landmark (no expert)."""

    def __init__(self, **kwargs: Any):
        super().__init__("simple_push_v3", **kwargs)


__all__ = ["MPE2Game", "Simple", "SimpleAdversary", "SimplePush", "SimpleSpread", "SimpleTag",
           "arrive", "best_assignment", "pursue", "steer"]
