"""Point masses on a plane: a small continuous general-sum game in pure JAX.

``N`` agents (default 2) move point masses in the square ``[-1, 1]^2``. Each
agent has its own target, drawn uniformly in the square at every reset, as are
the starting positions. Agent ``i`` sends a velocity command ``a_i`` in
``[-1, 1]^2`` (``Box(-1, 1, (2,))``, ``actions (agent, 2)``); the dynamics are a
single integrator with a speed limit,

    p_i' = clip(p_i + speed * a_i, -1, 1),

deterministic given the actions. Every agent observes the whole state (fully
observed, every row the same): ``[p_1, ..., p_N, g_1, ..., g_N]``, ``4 N``
numbers, positions then targets, each ``(x, y)``.

Rewards (general-sum: each agent is paid for its own target), after the move:

    r_i = -|p_i' - g_i| - collision_cost * #{j != i : |p_i' - p_j'| < collision_radius}.

Episodes **terminate** when every agent is within ``goal_radius`` of its
target at once (reaching it early pays, since every step costs the remaining
distance), and are **truncated** at ``max_steps`` (25) otherwise. A terminal
transition does not bootstrap: its successor's value is zero for every agent.

``scripted_policy()`` is the demonstrating expert: agent ``i`` sends
``a_i = tanh(gain (g_i - p_i) / speed + noise * eps)``, ``eps ~ N(0, I)``: a
tanh-squashed Gaussian whose mean heads for its own target at full speed when
far and slows down near it, blind to the other agents (so it sometimes pays the
collision cost). The learners' actors are of the same family, so behaviour
cloning can represent it exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs.core import Environment
from envs.spaces import Box


@struct.dataclass
class PointMassState:
    """Positions ``pos (agent, 2)``, targets ``goal (agent, 2)``, steps ``time``."""

    pos: jax.Array
    goal: jax.Array
    time: jax.Array


class PointMasses(Environment):
    """Point masses that each reach their own target (module docstring).

    Args:
        num_agents: number of agents (>= 1).
        max_steps: truncation horizon.
        speed: largest move per step along each axis.
        goal_radius: an agent within this distance of its target has reached it;
            the episode terminates when all have.
        collision_cost: cost per other agent closer than ``collision_radius``.
        collision_radius: distance under which two agents collide.
        expert_gain, expert_noise: the scripted expert's gain and the standard
            deviation of its Gaussian before the tanh.
    """

    def __init__(self, num_agents: int = 2, max_steps: int = 25, speed: float = 0.1,
                 goal_radius: float = 0.1, collision_cost: float = 0.5,
                 collision_radius: float = 0.15, expert_gain: float = 1.0,
                 expert_noise: float = 0.3):
        checks = [("num_agents", num_agents >= 1, ">= 1"),
                  ("max_steps", max_steps >= 1, ">= 1"),
                  ("speed", speed > 0, "> 0"),
                  ("goal_radius", goal_radius > 0, "> 0"),
                  ("collision_cost", collision_cost >= 0, ">= 0"),
                  ("collision_radius", collision_radius >= 0, ">= 0"),
                  ("expert_gain", expert_gain > 0, "> 0"),
                  ("expert_noise", expert_noise >= 0, ">= 0")]
        values = locals()
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"PointMasses.{name}: expected {expected}, got {values[name]!r}")
        self.num_agents = int(num_agents)
        self.agents = tuple(f"agent_{i}" for i in range(self.num_agents))
        self.obs_shape = (4 * self.num_agents,)
        self.action_spaces = (Box(-1.0, 1.0, (2,)),) * self.num_agents
        self.max_steps = int(max_steps)
        self.speed = float(speed)
        self.goal_radius = float(goal_radius)
        self.collision_cost = float(collision_cost)
        self.collision_radius = float(collision_radius)
        self.expert_gain = float(expert_gain)
        self.expert_noise = float(expert_noise)

    def _params(self) -> tuple:
        return (self.num_agents, self.max_steps, self.speed, self.goal_radius,
                self.collision_cost, self.collision_radius, self.expert_gain, self.expert_noise)

    def __hash__(self) -> int:
        return hash((type(self), self._params()))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._params() == self._params()

    def observe(self, state: PointMassState) -> jax.Array:
        """``obs (agent, 4 N)``: every agent sees ``[positions, targets]``."""
        row = jnp.concatenate([state.pos.reshape(-1), state.goal.reshape(-1)])
        return jnp.broadcast_to(row, (self.num_agents, row.shape[0])).astype(jnp.float32)

    def reset_env(self, key: jax.Array):
        key_pos, key_goal = jax.random.split(key)
        shape = (self.num_agents, 2)
        state = PointMassState(
            pos=jax.random.uniform(key_pos, shape, jnp.float32, -1.0, 1.0),
            goal=jax.random.uniform(key_goal, shape, jnp.float32, -1.0, 1.0),
            time=jnp.int32(0),
        )
        return self.observe(state), state

    def rewards(self, pos: jax.Array, goal: jax.Array) -> jax.Array:
        """``r (agent,)`` at positions ``pos (agent, 2)`` (module docstring)."""
        dist = jnp.linalg.norm(pos - goal, axis=-1)
        gap = jnp.linalg.norm(pos[:, None, :] - pos[None, :, :] + 1e-12, axis=-1)
        close = (gap < self.collision_radius) & ~jnp.eye(self.num_agents, dtype=bool)
        return -dist - self.collision_cost * jnp.sum(close, axis=1)

    def step_env(self, key: jax.Array, state: PointMassState, actions: jax.Array):
        a = jnp.clip(jnp.asarray(actions, jnp.float32).reshape(self.num_agents, 2), -1.0, 1.0)
        pos = jnp.clip(state.pos + self.speed * a, -1.0, 1.0)
        reward = self.rewards(pos, state.goal)
        reached = jnp.linalg.norm(pos - state.goal, axis=-1) < self.goal_radius
        nxt = state.replace(pos=pos, time=state.time + 1)
        return self.observe(nxt), nxt, reward, jnp.all(reached), {}

    def scripted_policy(self, greedy: bool = False):
        """The demonstrating expert (module docstring): ``policy_fn(key, obs) -> (agent, 2)``;
        ``greedy``: without its noise (the tanh of the mean)."""
        n = self.num_agents
        noise = 0.0 if greedy else self.expert_noise

        def policy_fn(key: jax.Array, obs: jax.Array) -> jax.Array:
            row = obs[0]
            pos, goal = row[: 2 * n].reshape(n, 2), row[2 * n:].reshape(n, 2)
            mean = self.expert_gain * (goal - pos) / self.speed
            eps = jax.random.normal(key, (n, 2), jnp.float32)
            return jnp.tanh(mean + noise * eps)

        return policy_fn
