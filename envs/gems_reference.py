"""Gems in plain Python: the reference rules with lists and ints, no JAX.

An independent implementation of the rules stated in :mod:`envs.gems` (and in
words in ``shared/data/README.md``, "Gems reference dynamics"), written the
way the rules read rather than the way :class:`envs.gems.Gems` vectorizes
them: the agents move in turn, agent 0 first; each agent checks the purple
gems before and after its move, over the purple gems in index order, later
matches overwriting the remembered gem; after its move it collects its own
gems on its cell (reward 1 however many overlap, each gem collected counts
and respawns); after both moves, if both agents are on purple, both get +6
and every distinct remembered purple gem respawns and counts as collected.
The episode terminates under the ``"gems"`` rule once more than
``gems_to_end`` gems were collected, under the ``"joint-return"`` rule once
the joint return of the episode exceeds ``return_to_end``, and is truncated
at ``max_steps`` when not terminated; :meth:`GemsReference.step` then resets.

It serves two purposes:

- **a test oracle**: given the respawn cells the JAX environment drew
  (``Gems.step_randomness``), :meth:`GemsReference.step` must make the same
  transition, reward, ``terminated``/``truncated`` and observations
  (``tests/envs/test_gems.py``);
- **the plain-Python baseline** of ``mairl bench all``
  (:func:`mairl.bench.bench_all`): the steps per second a NumPy/Python
  implementation of the same rules reaches in the same process.

Without given cells the randomness comes from :class:`random.Random`: a reset
draws the 22 coordinates uniformly from ``0 .. size - 1``, a collected gem
respawns uniformly in ``1 .. size - 1`` on both axes, drawn when it is
collected (the same distribution as the JAX environment, not the same numbers).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from envs.gems import END_RULES, NUM_AGENTS, NUM_CHANNELS, NUM_GEMS, NUM_OBJECTS, OBS_MODES

Cell = list[int]


def transition(agents: list[Cell], gems: list[Cell], collected: int, actions: Any,
               candidates: Any, size: int = 15) -> tuple[list[Cell], list[Cell], int,
                                                         list[float]]:
    """One step of the rules (module docstring) with given respawn cells.

    Args:
        agents: ``[[x, y], [x, y]]``.
        gems: 9 cells ``[x, y]``: 0-2 blue (agent 0's), 3-5 red, 6-8 purple.
        collected: gems collected in the episode so far.
        actions: two ints in ``0 .. 4`` (y + 1, x + 1, y - 1, x - 1, stay).
        candidates: 9 cells, or a callable ``candidates(g) -> [x, y]``: where
            gem ``g`` respawns if collected in this step.
        size: side of the grid.

    Returns:
        ``(agents, gems, collected, reward)``: new lists, reward ``[r0, r1]``.
    """
    where = candidates if callable(candidates) else (lambda g: list(candidates[g]))
    agents = [list(p) for p in agents]
    gems = [list(g) for g in gems]
    reward = [0.0, 0.0]
    on_purple = [False, False]
    remembered = [-1, -1]
    for name in (0, 1):
        for g in (6, 7, 8):
            if agents[name] == gems[g]:
                on_purple[name] = True
                remembered[name] = g
        x, y = agents[name]
        action = int(actions[name])
        if action == 0 and y < size - 1:
            y += 1
        elif action == 1 and x < size - 1:
            x += 1
        elif action == 2 and y > 0:
            y -= 1
        elif action == 3 and x > 0:
            x -= 1
        agents[name] = [x, y]
        for g in (6, 7, 8):
            if agents[name] == gems[g]:
                on_purple[name] = True
                remembered[name] = g
        gem_reward = 0.0
        for g in range(3 * name, 3 * name + 3):
            if agents[name] == gems[g]:
                gem_reward = 1.0
                collected += 1
                gems[g] = list(where(g))
        reward[name] += gem_reward
    if on_purple[0] and on_purple[1]:
        reward = [r + 6.0 for r in reward]
        for g in sorted(set(remembered)):
            collected += 1
            gems[g] = list(where(g))
    return agents, gems, collected, reward


def observe_map(agents: list[Cell], gems: list[Cell], size: int = 15) -> np.ndarray:
    """The map of one agent, uint8 ``(channel=5, x=size, y=size)``: agent 0, agent 1,
    blue, red, purple gems; 1 where at least one such object lies."""
    out = np.zeros((NUM_CHANNELS, size, size), np.uint8)
    for i, (x, y) in enumerate(agents):
        out[i, x, y] = 1
    for g, (x, y) in enumerate(gems):
        out[2 + g // 3, x, y] = 1
    return out


def observe_compact(agents: list[Cell], gems: list[Cell], size: int = 15) -> np.ndarray:
    """float32 ``(22,)``: ``x, y`` of agents 0, 1, then gems 0..8, over ``size - 1``."""
    return np.asarray([c for p in [*agents, *gems] for c in p], np.float32) / (size - 1)


class GemsReference:
    """Gems stepped on the host with the rules of :func:`transition`.

    The same episode rules and observations as :class:`envs.gems.Gems` with
    the same arguments: observations ``(agent=2, *obs_shape)`` (both rows the
    same), rewards ``(agent,)``, separate ``terminated`` and ``truncated``,
    auto-reset with ``info["next_obs"]`` holding the last observation of the
    finished episode.

    Args:
        obs_mode, max_steps, size, end_rule, gems_to_end, return_to_end: as
            :class:`envs.gems.Gems`.
        seed: seed of the :class:`random.Random` that draws cells not given.
    """

    def __init__(self, obs_mode: str = "map", max_steps: int = 45, size: int = 15,
                 end_rule: str = "gems", gems_to_end: int = 6, return_to_end: float = 20.0,
                 seed: int | None = 0):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"GemsReference: obs_mode must be one of {OBS_MODES}, "
                             f"got {obs_mode!r}")
        if end_rule not in END_RULES:
            raise ValueError(f"GemsReference: end_rule must be one of {END_RULES}, "
                             f"got {end_rule!r}")
        if int(size) < 2:
            raise ValueError(f"GemsReference: size must be at least 2, got {size}")
        if int(max_steps) < 1:
            raise ValueError(f"GemsReference: max_steps must be at least 1, got {max_steps}")
        self.obs_mode, self.max_steps, self.size = obs_mode, int(max_steps), int(size)
        self.end_rule, self.gems_to_end = end_rule, int(gems_to_end)
        self.return_to_end = float(return_to_end)
        self.num_agents = NUM_AGENTS
        self.rng = random.Random(seed)
        self.agents: list[Cell] = []
        self.gems: list[Cell] = []
        self.collected = 0
        self.time = 0
        self.joint_return = 0.0

    def observe(self) -> np.ndarray:
        """Both agents' observation of the current state, ``(agent=2, *obs_shape)``."""
        encode = observe_map if self.obs_mode == "map" else observe_compact
        row = encode(self.agents, self.gems, self.size)
        return np.stack([row, row])

    def reset(self, cells: Any = None) -> np.ndarray:
        """Start an episode at ``cells`` (11 cells: agents, then gems), else at cells
        drawn uniformly from ``0 .. size - 1``; return the observation."""
        if cells is None:
            draw = self.rng.randrange
            cells = [[draw(self.size), draw(self.size)] for _ in range(NUM_OBJECTS)]
        cells = [[int(x), int(y)] for x, y in cells]
        if len(cells) != NUM_OBJECTS:
            raise ValueError(f"GemsReference.reset: cells: expected {NUM_OBJECTS} cells, "
                             f"got {len(cells)}")
        self.agents, self.gems = cells[:NUM_AGENTS], cells[NUM_AGENTS:]
        self.collected, self.time, self.joint_return = 0, 0, 0.0
        return self.observe()

    def _respawn(self, g: int) -> Cell:
        draw = self.rng.randrange
        return [1 + draw(self.size - 1), 1 + draw(self.size - 1)]

    def step(self, actions: Any, candidates: Any = None, reset_cells: Any = None
             ) -> tuple[np.ndarray, list[float], bool, bool, dict]:
        """One step, then a reset where the episode ended.

        Args:
            actions: two ints in ``0 .. 4``.
            candidates: 9 respawn cells (``Gems.step_randomness``'s first part);
                default: drawn from :attr:`rng` for the gems collected.
            reset_cells: the 11 cells of the next episode if this one ends;
                default: drawn from :attr:`rng`.

        Returns:
            ``(obs, reward, terminated, truncated, info)``, ``info["next_obs"]``
            the observation before any reset.
        """
        if len(actions) != NUM_AGENTS or any(not 0 <= int(a) <= 4 for a in actions):
            raise ValueError(f"GemsReference.step: actions: expected 2 ints in 0..4, "
                             f"got {list(actions)}")
        if candidates is not None and len(candidates) != NUM_GEMS:
            raise ValueError(f"GemsReference.step: candidates: expected {NUM_GEMS} cells, "
                             f"got {len(candidates)}")
        self.agents, self.gems, self.collected, reward = transition(
            self.agents, self.gems, self.collected, actions,
            self._respawn if candidates is None else candidates, self.size)
        self.time += 1
        self.joint_return += reward[0] + reward[1]
        if self.end_rule == "gems":
            terminated = self.collected > self.gems_to_end
        else:
            terminated = self.joint_return > self.return_to_end
        truncated = self.time >= self.max_steps and not terminated
        next_obs = self.observe()
        obs = self.reset(reset_cells) if terminated or truncated else next_obs
        return obs, reward, terminated, truncated, {"next_obs": next_obs}
