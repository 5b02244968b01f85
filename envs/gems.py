"""Gems: the two-agent gridworld of the MAMQL paper (Haynam et al. 2025).

Faithful to the authors' reference dynamics (``gems/env.py`` of USC-Lira/ma-mql):

- A ``size x size`` grid (15 x 15), 2 agents and 9 gems: 0-2 blue (agent 0's),
  3-5 red (agent 1's), 6-8 purple (shared). Reset draws the 22 coordinates
  (agents, then gems, each ``(x, y)``) uniformly from ``0 .. size - 1`` with
  replacement, so anything may overlap.
- Actions: 0 ``y + 1``, 1 ``x + 1``, 2 ``y - 1``, 3 ``x - 1``, 4 stay; a move off
  the grid leaves the agent where it is.
- Agents move in turn (agent 0, then agent 1). An agent is *on purple* if its
  cell equals a purple gem before or after its move, and it remembers the
  purple gem matched last: the checks run before, then after the move, each
  over the purple gems in index order, later matches overwriting earlier ones,
  so the highest matching index after the move wins, else the highest before.
  After its move, its own gems on its cell give reward 1 (once, however many
  overlap); each counts as one collected gem and respawns uniformly in
  ``1 .. size - 1`` on both axes.
- After both moved: if both agents are on purple, both get +6, and each
  distinct remembered purple gem respawns and counts as collected (one gem
  when both remembered the same one).
- ``max_steps`` (45) truncates.

Two rules for where an episode ends (``terminated``), chosen by ``end_rule``:

- ``"gems"`` (default): once more than ``gems_to_end`` (6) gems were collected
  in the episode. This is the rule of the authors' ``env.py``.
- ``"joint-return"``: once the joint return of both agents in the episode
  exceeds ``return_to_end`` (20); the gem count is kept but ends nothing. This
  is the rule of the authors' published demonstrations
  (``expert_data/gem_dataset.csv``, read by ``mairl.data.from_mamql_gems``):
  they follow the rules above in every transition (rewards and moves), but
  all 864 of their terminated episodes end at the first step where the joint
  return exceeds 20 (joint returns 21 to 32), and at least 126 of them run on
  after the step where the gem rule would have ended them.
  ``envs.make("gems-authors")`` is Gems under this rule.

Demonstrations compared with one another, or with a learner's returns, should
come from the same rule: :attr:`Gems.episode_rule` names it, and
``mairl.data`` records it in demonstration files.

No rule of one agent's turn reads the other agent's cell or gems, and purple
gems only move after both turns, so the two turns are computed at once on the
agent axis: the result is the same as moving agent 0 first.

Randomness of a step: ``step_randomness(key)`` draws, up front, one candidate
respawn cell per gem, ``(gem=9, xy=2)`` in ``1 .. size - 1``, and the cells of
the reset state for auto-reset, ``(object=11, xy=2)`` in ``0 .. size - 1``,
from one call of ``jax.random.bits``. Gem ``g`` respawns at ``candidates[g]``:
within one step a gem respawns at most once (own gems only on their owner's
turn, which checks each gem once; purple gems only at the end, once per
distinct gem), so one candidate per gem has the reference's distribution, and
a test can replay a step exactly. ``step_env(key, ...)`` uses the candidates of
``step_randomness(key)``; ``step(key, ...)`` uses both parts, so with the same
key it makes the same transition as ``step_env`` and, when the episode ends,
resets to ``state_from_cells(reset_cells)``.

Observations, the same row for both agents (the game is fully observed):

- ``obs_mode="map"``: uint8 ``(agent=2, channel=5, x=size, y=size)``, the
  reference encoding: channels agent 0, agent 1, blue, red, purple gems; a cell
  is 1 where at least one such object lies, else 0 (overlaps do not add up).
  The map is binary, so it travels as one byte per cell (``obs_dtype``): the
  environment writes 2,250 bytes per step instead of 9,000, and a replay buffer
  of 100,000 transitions (``obs`` and ``next_obs`` of both agents) holds 450 MB
  instead of 1.8 GB. Networks read it as float32 (``mairl.networks``), so every
  number computed from it is the same as from a float32 map.
- ``obs_mode="compact"``: float32 ``(agent=2, 22)``: ``x, y`` of agent 0,
  agent 1, gems 0..8, each divided by ``size - 1``. Unlike the map it keeps
  the identity of each gem and overlapping gems.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete
from envs.views import egocentric_map

NUM_AGENTS = 2
NUM_GEMS = 9
NUM_OBJECTS = NUM_AGENTS + NUM_GEMS
NUM_CHANNELS = 5
PURPLE_BONUS = 6.0
OBS_MODES = ("map", "compact")
#: Where an episode ends: ``"gems"`` (the authors' ``env.py``) or
#: ``"joint-return"`` (the authors' published demonstrations).
END_RULES = ("gems", "joint-return")

#: Displacement ``(dx, dy)`` of actions 0..4: y+1, x+1, y-1, x-1, stay.
MOVES = np.array([[0, 1], [1, 0], [0, -1], [-1, 0], [0, 0]], np.int32)


#: Channel order of each agent's view: self, other agent, own gems, other's gems, purple.
_VIEW_ORDER = np.array([[0, 1, 2, 3, 4], [1, 0, 3, 2, 4]])


@struct.dataclass
class GemsState(EnvState):
    """Gems state; cells are ``(x, y)``.

    Attributes:
        time: int32 ``()``, steps taken in the episode.
        agents: int32 ``(agent=2, xy=2)``.
        gems: int32 ``(gem=9, xy=2)``: 0-2 blue, 3-5 red, 6-8 purple.
        collected: int32 ``()``, gems collected in the episode.
        joint_return: float32 ``()``, the sum of both agents' rewards in the
            episode so far (the ``"joint-return"`` end rule reads it).
    """

    agents: jax.Array
    gems: jax.Array
    collected: jax.Array
    joint_return: jax.Array = struct.field(default_factory=lambda: jnp.zeros((), jnp.float32))


class Gems(Environment):
    """The MAMQL Gems gridworld; the rules are in the module docstring.

    Args:
        obs_mode: ``"map"`` (``(5, size, size)`` per agent) or ``"compact"``
            (``(22,)`` per agent).
        max_steps: truncation horizon.
        size: side of the square grid.
        end_rule: where an episode ends: ``"gems"`` (more than ``gems_to_end``
            gems collected) or ``"joint-return"`` (the joint return exceeds
            ``return_to_end``); see the module docstring.
        gems_to_end: under ``"gems"``, the episode terminates once more than
            this many gems were collected.
        return_to_end: under ``"joint-return"``, the episode terminates once
            the sum of both agents' rewards in the episode exceeds this.
        view_radius: half-width of the egocentric window of ``agent_view``
            (``size - 1`` sees the whole grid).
    """

    def __init__(
        self,
        obs_mode: str = "map",
        max_steps: int = 45,
        size: int = 15,
        gems_to_end: int = 6,
        view_radius: int = 7,
        end_rule: str = "gems",
        return_to_end: float = 20.0,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if size < 2:
            raise ValueError(f"size must be at least 2, got {size}")
        if end_rule not in END_RULES:
            raise ValueError(f"end_rule must be one of {END_RULES}, got {end_rule!r}")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        if not np.isfinite(return_to_end):
            raise ValueError(f"return_to_end must be finite, got {return_to_end}")
        self.obs_mode = obs_mode
        self.max_steps = int(max_steps)
        self.size = int(size)
        self.end_rule = end_rule
        self.gems_to_end = int(gems_to_end)
        self.return_to_end = float(return_to_end)
        self.view_radius = int(view_radius)
        self.num_agents = NUM_AGENTS
        self.agents = ("agent_0", "agent_1")
        self.action_spaces = (Discrete(5), Discrete(5))
        if obs_mode == "map":
            self.obs_shape = (NUM_CHANNELS, self.size, self.size)
            self.obs_dtype = np.dtype(np.uint8)
        else:
            self.obs_shape = (2 * NUM_OBJECTS,)
            self.obs_dtype = np.dtype(np.float32)

    @property
    def episode_rule(self) -> dict[str, Any]:
        """The keyword arguments that decide where an episode ends: ``end_rule``,
        its threshold (``gems_to_end`` or ``return_to_end``) and ``max_steps``.

        ``Gems(**rule)`` (or ``envs.make("gems", **rule)``) ends episodes
        the same way; demonstration files record it (``mairl.data``).
        """
        if self.end_rule == "gems":
            threshold = {"gems_to_end": self.gems_to_end}
        else:
            threshold = {"return_to_end": self.return_to_end}
        return {"end_rule": self.end_rule, **threshold, "max_steps": self.max_steps}

    # -- randomness -------------------------------------------------------------------
    def step_randomness(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Everything random in a step, from one ``jax.random.bits`` draw.

        The draw is rounded up to a power-of-two number of words (11 to 16 on
        a 15 x 15 grid): XLA's CPU code for the hash is faster on such shapes.

        Returns:
            candidates: int32 ``(gem=9, xy=2)`` in ``1 .. size - 1``, where each
                gem respawns if collected in this step.
            reset_cells: int32 ``(object=11, xy=2)`` in ``0 .. size - 1``,
                agents then gems of the auto-reset state.
        """
        num_candidate_words = words_for_cells(NUM_GEMS, self.size - 1)
        num_words = num_candidate_words + words_for_cells(NUM_OBJECTS, self.size)
        words = jax.random.bits(key, (1 << (num_words - 1).bit_length(),), jnp.uint32)
        candidates = cells_from_words(words[:num_candidate_words], NUM_GEMS, 1, self.size)
        reset_cells = cells_from_words(
            words[num_candidate_words:num_words], NUM_OBJECTS, 0, self.size
        )
        return candidates, reset_cells

    def respawn_candidates(self, key: jax.Array) -> jax.Array:
        """The candidate respawn cells ``step_env(key, ...)`` uses, ``(gem=9, xy=2)``."""
        return self.step_randomness(key)[0]

    # -- dynamics ---------------------------------------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, GemsState]:
        """Draw a fresh grid (each agent and gem on an independent uniform cell); observe it."""
        words = jax.random.bits(key, (words_for_cells(NUM_OBJECTS, self.size),), jnp.uint32)
        state = state_from_cells(cells_from_words(words, NUM_OBJECTS, 0, self.size))
        return self.get_obs(state), state

    def step_env(
        self, key: jax.Array, state: GemsState, actions: jax.Array
    ) -> tuple[jax.Array, GemsState, jax.Array, jax.Array, dict]:
        state, reward, terminated = self.transition(state, actions, self.respawn_candidates(key))
        return self.get_obs(state), state, reward, terminated, {}

    def transition(
        self, state: GemsState, actions: jax.Array, candidates: jax.Array
    ) -> tuple[GemsState, jax.Array, jax.Array]:
        """The rules with given respawn cells.

        Args:
            state: the current state.
            actions: int ``(agent=2,)`` in ``0 .. 4``.
            candidates: int32 ``(gem=9, xy=2)``, where each gem respawns.

        Returns:
            ``(state, reward, terminated)``: the next state (``time`` + 1),
            float32 ``(agent,)`` rewards and a scalar bool.
        """
        actions = jnp.asarray(actions, jnp.int32)  # (agent,)
        before = state.agents  # (agent, xy)
        after = jnp.clip(before + jnp.asarray(MOVES)[actions], 0, self.size - 1)

        purple = state.gems[6:]  # (purple, xy)
        index = jnp.arange(3, dtype=jnp.int32)
        on_before = jnp.all(before[:, None, :] == purple[None], axis=-1)  # (agent, purple)
        on_after = jnp.all(after[:, None, :] == purple[None], axis=-1)
        last_before = jnp.max(jnp.where(on_before, index, -1), axis=-1)  # (agent,)
        last_after = jnp.max(jnp.where(on_after, index, -1), axis=-1)
        remembered = jnp.where(last_after >= 0, last_after, last_before)  # (agent,), -1: none
        bonus = jnp.all(remembered >= 0)
        respawn = bonus & jnp.any(remembered[:, None] == index, axis=0)  # (purple,)
        purple = jnp.where(respawn[:, None], candidates[6:], purple)

        own = state.gems[:6].reshape(NUM_AGENTS, 3, 2)  # (agent, gem, xy)
        hit = jnp.all(own == after[:, None, :], axis=-1)  # (agent, gem)
        own = jnp.where(hit[..., None], candidates[:6].reshape(NUM_AGENTS, 3, 2), own)

        reward = jnp.any(hit, axis=-1).astype(jnp.float32) + PURPLE_BONUS * bonus
        gained = jnp.sum(hit, dtype=jnp.int32) + jnp.sum(respawn, dtype=jnp.int32)
        collected = state.collected + gained
        joint_return = state.joint_return + jnp.sum(reward)
        state = GemsState(
            time=state.time + 1,
            agents=after,
            gems=jnp.concatenate([own.reshape(6, 2), purple]),
            collected=collected,
            joint_return=joint_return,
        )
        if self.end_rule == "gems":
            terminated = collected > self.gems_to_end
        else:
            terminated = joint_return > self.return_to_end
        return state, reward, terminated

    def step(self, key: jax.Array, state: GemsState, actions: jax.Array):
        """One step with truncation at ``max_steps`` and auto-reset.

        The same contract as ``Environment.step``; the reset and continuing
        states are selected before the observation is built, so one map is
        built for ``obs`` (and one for ``info["next_obs"]``, which XLA drops
        when unused), and the randomness is one draw (``step_randomness``).
        """
        candidates, reset_cells = self.step_randomness(key)
        state_next, reward, terminated = self.transition(state, actions, candidates)
        truncated = jnp.logical_and(state_next.time >= self.max_steps, ~terminated)
        done = terminated | truncated
        state_out = jax.tree.map(
            lambda r, s: jnp.where(done, r, s), state_from_cells(reset_cells), state_next
        )
        info = {"next_obs": self.get_obs(state_next)}
        return self.get_obs(state_out), state_out, reward, terminated, truncated, info

    # -- observations -----------------------------------------------------------------
    def get_obs(self, state: GemsState) -> jax.Array:
        """Observation of ``state``: ``(agent=2, *obs_shape)`` of ``obs_dtype`` (uint8
        maps, float32 compact coordinates), rows identical."""
        if self.obs_mode == "compact":
            return jnp.broadcast_to(encode_compact(state, self.size), (NUM_AGENTS, 2 * NUM_OBJECTS))
        return map_from_flat(
            jnp.broadcast_to(flat_cells(state, self.size), (NUM_AGENTS, NUM_OBJECTS)), self.size
        )

    def render(self, state: GemsState) -> str:
        """ASCII picture of one unbatched state (see the module-level ``render``)."""
        return render(state, self.size)

    def agent_view(self, obs: jax.Array, agent: jax.Array) -> jax.Array:
        """Agent ``agent``'s egocentric view of one map observation ``(5, X, Y)``.

        Channels reordered to (self, other agent, own gems, other's gems, purple),
        plus a channel marking the grid, in a ``(6, 2r + 1, 2r + 1)`` window centred
        on the agent, ``r = view_radius`` (``envs.views.egocentric_map``). Critics
        that read it learn "a gem up and to the left" once for every cell. Map
        observations only.
        """
        if self.obs_mode != "map":
            raise ValueError("Gems.agent_view needs obs_mode='map'")
        return egocentric_map(obs, agent, _VIEW_ORDER, self.view_radius)


def words_for_cells(num: int, span: int) -> int:
    """How many uint32 words ``cells_from_words`` needs for ``num`` cells of a side ``span``."""
    return -(-num // 2) if span * span <= 256 else num


def cells_from_words(words: jax.Array, num: int, low: int, high: int) -> jax.Array:
    """``num`` cells uniform on ``[low, high) x [low, high)`` from uniform uint32 words.

    With ``n = (high - low) ** 2`` cells on the square, a word ``w`` gives the
    cells ``w % n**2 % n`` and ``w % n**2 // n`` when ``n <= 256`` (squares up
    to 16 x 16), else one cell ``w % n``. The relative bias of these
    reductions is below ``n**2 / 2**32`` (``1.2e-5`` on a 15 x 15 grid), with
    a quarter to an eighth of the random bits ``jax.random.randint`` draws.

    Args:
        words: uint32 ``(words_for_cells(num, high - low),)``.

    Returns:
        int32 ``(num, xy=2)``.
    """
    span = high - low
    n = span * span
    if n <= 256:
        pairs = words % jnp.uint32(n * n)
        flat = jnp.concatenate([pairs % jnp.uint32(n), pairs // jnp.uint32(n)])[:num]
    else:
        flat = words % jnp.uint32(n)
    flat = flat.astype(jnp.int32)
    return jnp.stack([flat // span, flat % span], axis=-1) + low


def state_from_cells(cells: jax.Array) -> GemsState:
    """A fresh episode's state from int32 ``(object=11, xy=2)`` cells (agents, gems)."""
    return GemsState(
        time=jnp.zeros((), jnp.int32),
        agents=cells[:NUM_AGENTS],
        gems=cells[NUM_AGENTS:],
        collected=jnp.zeros((), jnp.int32),
        joint_return=jnp.zeros((), jnp.float32),
    )


def flat_cells(state: GemsState, size: int = 15) -> jax.Array:
    """Row-major cell index ``x * size + y`` of each object, int32 ``(object=11,)``."""
    cells = jnp.concatenate([state.agents, state.gems])  # (object, xy)
    return cells[:, 0] * size + cells[:, 1]


def map_from_flat(flat: jax.Array, size: int = 15) -> jax.Array:
    """Maps from flat cell indices: ``(..., object=11)`` to uint8 ``(..., 5, size, size)``.

    Compares each object's index with ``arange(size * size)`` (as uint8 on
    grids up to 16 x 16, so the comparisons vectorize four times wider); a gem
    colour is the OR of its three gems' comparisons. Cells are 0 or 1.
    """
    lead = flat.shape[:-1]
    num_cells = size * size
    index_dtype = jnp.uint8 if num_cells <= 256 else jnp.int32
    flat = flat.astype(index_dtype)
    hits = flat[..., None] == jnp.arange(num_cells, dtype=index_dtype)  # (..., object, cell)
    gems = hits[..., NUM_AGENTS:, :].reshape(*lead, 3, 3, num_cells)  # (..., colour, gem, cell)
    channels = jnp.concatenate([hits[..., :NUM_AGENTS, :], jnp.any(gems, axis=-2)], axis=-2)
    shape = (*lead, NUM_CHANNELS, size, size)
    return channels.astype(jnp.uint8).reshape(shape)


def encode_map(state: GemsState, size: int = 15) -> jax.Array:
    """The reference map, uint8 ``(channel=5, x=size, y=size)``.

    Channels: agent 0, agent 1, blue gems, red gems, purple gems; a cell is 1
    where at least one object of the channel lies, else 0.
    """
    return map_from_flat(flat_cells(state, size), size)


def encode_compact(state: GemsState, size: int = 15) -> jax.Array:
    """Cells scaled to ``[0, 1]``, float32 ``(22,)``: ``x, y`` of agents 0, 1, gems 0..8."""
    cells = jnp.concatenate([state.agents, state.gems])  # (object, xy)
    return cells.reshape(-1).astype(jnp.float32) / (size - 1)


def render(state: GemsState, size: int = 15) -> str:
    """ASCII picture of one unbatched state, ``y`` growing upwards, ``x`` rightwards.

    Legend: ``0`` / ``1`` agent 0 / 1, ``&`` both agents, ``b`` blue, ``r`` red,
    ``p`` purple gem, ``*`` gems of several colours, ``.`` empty. Agents hide
    the gems beneath them.
    """
    agents = np.asarray(state.agents)
    gems = np.asarray(state.gems)
    grid = [["."] * size for _ in range(size)]  # [y][x]
    for g, (x, y) in enumerate(gems):
        mark = "brp"[g // 3]
        grid[y][x] = mark if grid[y][x] in (".", mark) else "*"
    for i, (x, y) in enumerate(agents):
        grid[y][x] = "&" if grid[y][x] in ("0", "1") else str(i)
    header = f"t={int(state.time)} collected={int(state.collected)}"
    return "\n".join([header, *(" ".join(row) for row in reversed(grid))])
