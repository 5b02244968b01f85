"""Named tabular games: repeated 2x2 matrix games, small grid games and random games.

Every factory returns a ``TabularGame`` and has defaults for all its arguments, so
``envs.make(name)`` builds it (``prisoners-dilemma``, ``stag-hunt``, ``chicken``,
``battle-of-the-sexes``, ``grid-rendezvous``, ``grid-crossing``, ``random-game``,
``random-team-game``).

Matrix games are repeated one-state games: ``S = 1``, ``P[0, a_0, a_1, 0] = 1`` and
``R[i, 0, a_0, a_1]`` the payoff of player ``i`` (agent 0 is the row player).

Grid games place two agents on a ``height x width`` grid. A cell is
``c = row * width + col`` (row 0 at the top) and the joint state is
``s = c_0 * (width * height) + c_1``. Actions (both agents):
``0 stay, 1 up, 2 down, 3 left, 4 right``; a move into the outer wall stays put.
With probability ``slip`` an agent's action is replaced by one drawn uniformly
from the five, independently for each agent. Agents move simultaneously and may
share a cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from envs.tabular.game import TabularGame

STAY, UP, DOWN, LEFT, RIGHT = range(5)
GRID_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col) per action

# -- repeated 2x2 matrix games ------------------------------------------------------------
#: Payoffs ``(N=2, a_0, a_1)``; see each factory for the meaning of the actions.
PRISONERS_DILEMMA_PAYOFFS = np.array(
    [
        [[3.0, 0.0], [5.0, 1.0]],  # agent 0
        [[3.0, 5.0], [0.0, 1.0]],  # agent 1
    ]
)
STAG_HUNT_PAYOFFS = np.array(
    [
        [[4.0, 0.0], [3.0, 3.0]],
        [[4.0, 3.0], [0.0, 3.0]],
    ]
)
CHICKEN_PAYOFFS = np.array(
    [
        [[0.0, -1.0], [1.0, -10.0]],
        [[0.0, 1.0], [-1.0, -10.0]],
    ]
)
BATTLE_OF_THE_SEXES_PAYOFFS = np.array(
    [
        [[3.0, 0.0], [0.0, 2.0]],
        [[2.0, 0.0], [0.0, 3.0]],
    ]
)


def matrix_game(
    payoffs: np.ndarray, *, max_steps: int = 100, obs_mode: str = "onehot"
) -> TabularGame:
    """Repeated one-state game from ``payoffs (N, A_1, ..., A_N)``."""
    payoffs = np.asarray(payoffs, np.float64)
    num_agents = payoffs.ndim - 1
    actions = payoffs.shape[1:]
    transitions = np.ones((1, *actions, 1))
    return TabularGame(
        transitions,
        payoffs[:, None],
        np.ones(1),
        max_steps=max_steps,
        obs_mode=obs_mode,
        agents=tuple(f"agent_{i}" for i in range(num_agents)),
    )


def prisoners_dilemma(*, max_steps: int = 100, obs_mode: str = "onehot") -> TabularGame:
    """Repeated prisoner's dilemma. Actions ``0 cooperate, 1 defect``.

    Payoffs (agent 0, agent 1): both cooperate ``(3, 3)``; 0 cooperates and
    1 defects ``(0, 5)``; 0 defects and 1 cooperates ``(5, 0)``; both defect
    ``(1, 1)``. Defecting dominates; mutual cooperation is better for both.
    """
    return matrix_game(PRISONERS_DILEMMA_PAYOFFS, max_steps=max_steps, obs_mode=obs_mode)


def stag_hunt(*, max_steps: int = 100, obs_mode: str = "onehot") -> TabularGame:
    """Repeated stag hunt. Actions ``0 stag, 1 hare``.

    Payoffs (agent 0, agent 1): both stag ``(4, 4)``; 0 stag and 1 hare
    ``(0, 3)``; 0 hare and 1 stag ``(3, 0)``; both hare ``(3, 3)``. Hunting hare
    is safe; stag pays more but only together.
    """
    return matrix_game(STAG_HUNT_PAYOFFS, max_steps=max_steps, obs_mode=obs_mode)


def chicken(*, max_steps: int = 100, obs_mode: str = "onehot") -> TabularGame:
    """Repeated game of chicken. Actions ``0 swerve, 1 straight``.

    Payoffs (agent 0, agent 1): both swerve ``(0, 0)``; 0 swerves and 1 goes
    straight ``(-1, 1)``; 0 straight and 1 swerves ``(1, -1)``; both straight
    (crash) ``(-10, -10)``.
    """
    return matrix_game(CHICKEN_PAYOFFS, max_steps=max_steps, obs_mode=obs_mode)


def battle_of_the_sexes(*, max_steps: int = 100, obs_mode: str = "onehot") -> TabularGame:
    """Repeated battle of the sexes. Actions ``0 opera, 1 football``.

    Payoffs (agent 0, agent 1): both opera ``(3, 2)``; both football ``(2, 3)``;
    any mismatch ``(0, 0)``. Agent 0 prefers opera, agent 1 football, and both
    prefer going together.
    """
    return matrix_game(BATTLE_OF_THE_SEXES_PAYOFFS, max_steps=max_steps, obs_mode=obs_mode)


# -- grid games ------------------------------------------------------------------------------
def grid_cell_transitions(width: int, height: int, slip: float) -> np.ndarray:
    """One agent's move kernel ``T[c, a, c']`` ``(C, 5, C)`` with ``C = width * height``."""
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip: expected a probability in [0, 1], got {slip}")
    num_cells = width * height
    intended = np.zeros((num_cells, len(GRID_MOVES), num_cells))
    for c in range(num_cells):
        row, col = divmod(c, width)
        for a, (dr, dc) in enumerate(GRID_MOVES):
            r2, c2 = row + dr, col + dc
            if not (0 <= r2 < height and 0 <= c2 < width):
                r2, c2 = row, col
            intended[c, a, r2 * width + c2] = 1.0
    slipped = intended.mean(axis=1, keepdims=True)
    return (1.0 - slip) * intended + slip * slipped


def grid_game(
    width: int,
    height: int,
    starts: tuple[tuple[int, int], tuple[int, int]],
    state_rewards: np.ndarray,
    *,
    slip: float,
    move_cost: float,
    max_steps: int,
    obs_mode: str,
) -> TabularGame:
    """Two-agent grid game (layout in the module docstring).

    Args:
        starts: ``(row, col)`` of each agent's first cell (a deterministic start).
        state_rewards: ``(2, C, C)``: reward of agent ``i`` when agent 0 is in
            cell ``c_0`` and agent 1 in cell ``c_1``, for the state the joint
            action is taken in.
        move_cost: subtracted from an agent's reward whenever its action is not
            ``stay``.
    """
    num_cells = width * height
    cell = grid_cell_transitions(width, height, slip)  # (C, A, C')
    num_actions = cell.shape[1]
    joint = np.einsum("xaz,ybw->xyabzw", cell, cell)
    transitions = joint.reshape(num_cells**2, num_actions, num_actions, num_cells**2)
    moving = (np.arange(num_actions) != STAY).astype(np.float64)
    rewards = np.broadcast_to(
        state_rewards.reshape(2, num_cells**2, 1, 1), (2, num_cells**2, num_actions, num_actions)
    ).copy()
    rewards[0] -= move_cost * moving[None, :, None]
    rewards[1] -= move_cost * moving[None, None, :]
    initial = np.zeros(num_cells**2)
    (r0, c0), (r1, c1) = starts
    initial[(r0 * width + c0) * num_cells + (r1 * width + c1)] = 1.0
    return TabularGame(transitions, rewards, initial, max_steps=max_steps, obs_mode=obs_mode)


def grid_rendezvous(
    *,
    width: int = 3,
    height: int = 3,
    slip: float = 0.1,
    goal_reward: float = 1.0,
    meet_bonus: float = 2.0,
    move_cost: float = 0.05,
    max_steps: int = 50,
    obs_mode: str = "onehot",
) -> TabularGame:
    """Rendezvous: each agent has its own goal, and both gain more by meeting.

    Agent 0 starts bottom-left, agent 1 bottom-right. Agent 0's goal is the
    top-left corner, agent 1's the top-right corner: each step spent on its own
    goal pays the agent ``goal_reward``. When both agents stand on the meeting
    cell (the centre, ``(height // 2, width // 2)``) each gains ``meet_bonus``.
    Meeting pays more than a goal but needs the other agent to come too (a
    stag hunt on a grid).
    """
    meet = (height // 2) * width + width // 2
    return _goal_grid_game(
        width, height, starts=((height - 1, 0), (height - 1, width - 1)), goals=(0, width - 1),
        goal_reward=goal_reward, together=[meet], together_reward=meet_bonus,
        slip=slip, move_cost=move_cost, max_steps=max_steps, obs_mode=obs_mode,
    )


def grid_crossing(
    *,
    width: int = 3,
    height: int = 3,
    slip: float = 0.1,
    goal_reward: float = 1.0,
    collision_cost: float = 2.0,
    move_cost: float = 0.05,
    max_steps: int = 50,
    obs_mode: str = "onehot",
) -> TabularGame:
    """Crossing: the agents' shortest paths cross; sharing a cell costs both.

    Agent 0 starts at the left end of the middle row and its goal is the right
    end; agent 1 starts at the top of the middle column and its goal is the
    bottom. Each step on its own goal pays an agent ``goal_reward``; each step
    the two share a cell costs each ``collision_cost``. One must wait or detour
    to let the other through the centre.
    """
    mid_row, mid_col = height // 2, width // 2
    return _goal_grid_game(
        width, height, starts=((mid_row, 0), (0, mid_col)),
        goals=(mid_row * width + width - 1, (height - 1) * width + mid_col),
        goal_reward=goal_reward, together=np.arange(width * height),
        together_reward=-collision_cost,
        slip=slip, move_cost=move_cost, max_steps=max_steps, obs_mode=obs_mode,
    )


def _goal_grid_game(
    width: int,
    height: int,
    *,
    starts: tuple[tuple[int, int], tuple[int, int]],
    goals: tuple[int, int],
    goal_reward: float,
    together: Sequence[int],
    together_reward: float,
    **options,
) -> TabularGame:
    """A :func:`grid_game` in which agent ``i`` earns ``goal_reward`` on its goal
    cell ``goals[i]`` and both earn ``together_reward`` whenever they share one of
    the cells ``together``; ``options``: ``grid_game``'s keywords."""
    num_cells = width * height
    rewards = np.zeros((2, num_cells, num_cells))
    rewards[0, goals[0], :] += goal_reward
    rewards[1, :, goals[1]] += goal_reward
    rewards[:, together, together] += together_reward
    return grid_game(width, height, starts, rewards, **options)


# -- random games ----------------------------------------------------------------------------
def random_game(
    key: jax.Array,
    num_states: int,
    num_actions: int | Sequence[int],
    num_agents: int,
    *,
    max_steps: int = 100,
    concentration: float = 1.0,
    reward_scale: float = 1.0,
    num_terminal: int = 0,
    obs_mode: str = "onehot",
) -> TabularGame:
    """Random general-sum game, a deterministic function of ``key``.

    Every ``P[s, a, :]`` is drawn from ``Dirichlet(concentration)`` (small values
    give sparse, nearly deterministic transitions), rewards are i.i.d.
    ``Normal(0, reward_scale**2)`` per agent and ``(s, a)``, and the initial
    distribution is drawn from ``Dirichlet(1)``. The key's bits seed a NumPy
    generator: sampling on the host is much cheaper than compiling JAX's gamma
    sampler for every shape.

    Args:
        key: a typed key, ``jax.random.key(seed)``.
        num_actions: one count for all agents or one per agent.
        num_terminal: the last ``num_terminal`` states are terminal (entering
            one ends the episode, ``terminated``); they never start an episode.
    """
    if isinstance(num_actions, int):
        num_actions = (num_actions,) * num_agents
    num_actions = tuple(int(n) for n in num_actions)
    if len(num_actions) != num_agents:
        raise ValueError(
            f"num_actions: expected one count per agent ({num_agents}), got {num_actions}"
        )
    if num_states < 1 or num_agents < 1 or min(num_actions) < 1:
        raise ValueError(
            f"random_game: need num_states, num_agents and every action count >= 1, got "
            f"num_states={num_states}, num_agents={num_agents}, num_actions={num_actions}"
        )
    if concentration <= 0:
        raise ValueError(f"concentration: expected a positive number, got {concentration}")
    if not 0 <= num_terminal < num_states:
        raise ValueError(f"num_terminal: expected 0 .. num_states - 1 = {num_states - 1}, "
                         f"got {num_terminal}")
    rng = np.random.default_rng(_key_words(key))
    joint_shape = (num_states, *num_actions)
    transitions = _normalize_rows(rng.gamma(concentration, size=(*joint_shape, num_states)))
    rewards = reward_scale * rng.normal(size=(num_agents, *joint_shape))
    initial = rng.gamma(1.0, size=num_states)
    terminal = None
    if num_terminal:
        terminal = np.arange(num_states) >= num_states - num_terminal
        initial[terminal] = 0.0
    initial = _normalize_rows(initial)
    return TabularGame(transitions, rewards, initial, terminal=terminal, max_steps=max_steps,
                       obs_mode=obs_mode)


def random_game_env(
    seed: int = 0,
    num_states: int = 20,
    num_actions: int = 3,
    num_agents: int = 2,
    max_steps: int = 100,
    num_terminal: int = 0,
) -> TabularGame:
    """``random_game(jax.random.key(seed), ...)`` with registry-friendly arguments."""
    return random_game(
        jax.random.key(seed), num_states, num_actions, num_agents, max_steps=max_steps,
        num_terminal=num_terminal,
    )


def team_game(game: TabularGame, agent: int = 0) -> TabularGame:
    """The cooperative version of ``game``: every agent receives agent ``agent``'s
    reward (one team reward ``R[i] = R[agent]``), same dynamics, start and ends."""
    if not 0 <= agent < game.num_agents:
        raise ValueError(f"agent: expected 0 .. {game.num_agents - 1}, got {agent}")
    rewards = np.broadcast_to(game.rewards[agent], game.rewards.shape).copy()
    return TabularGame(game.transitions, rewards, game.initial, max_steps=game.max_steps,
                       obs_mode=game.obs_mode, agents=game.agents,
                       terminal=game.terminal)


def random_team_game_env(seed: int = 0, num_states: int = 20, num_actions: int = 3,
                         num_agents: int = 2, max_steps: int = 100) -> TabularGame:
    """:func:`random_game_env` made cooperative (:func:`team_game`): one shared reward."""
    return team_game(random_game_env(seed, num_states, num_actions, num_agents, max_steps))


def random_goal_game_env(seed: int = 0, num_states: int = 20, num_actions: int = 3,
                         num_agents: int = 2, max_steps: int = 100) -> TabularGame:
    """:func:`random_game_env` whose last 2 states are terminal (episodes end there)."""
    return random_game_env(seed, num_states, num_actions, num_agents, max_steps, num_terminal=2)


def _key_words(key: jax.Array) -> list[int]:
    """The raw words of a typed (or legacy ``uint32``) JAX key."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).ravel().tolist()


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (last axis) scaled to sum to one; all-zero rows become uniform."""
    sums = x.sum(axis=-1, keepdims=True)
    return np.where(sums > 0, x / np.where(sums > 0, sums, 1.0), 1.0 / x.shape[-1])
