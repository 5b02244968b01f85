"""PettingZoo both ways: mairl games as ``ParallelEnv``, PettingZoo games as mairl envs.

- :func:`to_pettingzoo` wraps any mairl environment (jittable JAX games,
  tabular games, host-side games) as a PettingZoo ``ParallelEnv`` with
  gymnasium spaces, dicts keyed by agent name, and the ``agents`` list emptied
  when the episode ends. It passes PettingZoo's ``parallel_api_test`` and
  ``parallel_seed_test``.
- :func:`from_pettingzoo` turns any PettingZoo ``ParallelEnv`` (or ``AECEnv``,
  through ``aec_to_parallel``) into a :class:`~envs.host.HostEnvironment`:
  agents stacked on the first axis in ``possible_agents`` order, NumPy in and
  out, auto-reset, so mairl's collection, evaluation and training use it like
  any other game.

Dicts keyed by agent name exist only at this boundary; inside mairl every
per-agent value is an array with the agent axis first.

This module imports PettingZoo and gymnasium; ``import envs`` does not import it.
"""

from __future__ import annotations

import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from pettingzoo.utils.env import ParallelEnv

from envs.host import HostEnvironment
from envs.spaces import Box, Discrete

# -- mairl -> PettingZoo ----------------------------------------------------------------------


def observation_bounds(env: Any) -> tuple[float, float]:
    """Scalar bounds ``(low, high)`` of every observation entry of ``env``.

    An environment may declare them as a static fact ``obs_bounds``; the Gems
    and tabular games are known (Gems maps and compact coordinates lie in
    ``[0, 1]``; tabular one-hot states in ``[0, 1]``, state indices in
    ``[0, S - 1]``). Otherwise ``(-inf, inf)``.
    """
    bounds = getattr(env, "obs_bounds", None)
    if bounds is not None:
        low, high = bounds
        return float(low), float(high)
    from envs.gems import Gems
    from envs.tabular.game import TabularGame

    if isinstance(env, Gems):
        return 0.0, 1.0
    if isinstance(env, TabularGame):
        if env.obs_mode == "onehot":
            return 0.0, 1.0
        return 0.0, float(env.num_states - 1)
    return -np.inf, np.inf


def _gym_space(space: Discrete | Box):
    """The gymnasium space of a mairl action space."""
    from gymnasium import spaces

    if isinstance(space, Discrete):
        return spaces.Discrete(space.n)
    if isinstance(space, Box):
        return spaces.Box(np.float32(space.low), np.float32(space.high), tuple(space.shape),
                          np.float32)
    raise TypeError(f"unsupported action space {space!r}; expected envs.spaces.Discrete or Box")


#: Jitted ``(reset, step)`` of each wrapped jittable env: compiled once per env object,
#: however many wrappers are built around it.
_JITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _strong(tree):
    """``tree`` with weakly typed leaves made strong, so reset and step states share one type."""
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, jnp.result_type(x)), tree)


def _jitted(env: Any):
    try:
        return _JITTED[env]
    except (KeyError, TypeError):
        pass

    @jax.jit
    def reset(key):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset_env(key_reset)
        return key, obs, _strong(state)

    @jax.jit
    def step(key, state, actions):
        key, key_step = jax.random.split(key)
        obs, state, reward, terminated, _ = env.step_env(key_step, state, actions)
        return (key, obs, _strong(state), reward.astype(jnp.float32),
                jnp.asarray(terminated, jnp.bool_))

    try:
        _JITTED[env] = (reset, step)
    except TypeError:  # not weak-referenceable or unhashable: compile per wrapper
        pass
    return reset, step


def to_pettingzoo(env: Any, seed: int | None = None, render_mode: str | None = None):
    """Wrap a mairl environment as a PettingZoo ``ParallelEnv``.

    Args:
        env: any mairl environment: a jittable game (``envs.make("gems")``,
            tabular games) or a host-side one (:class:`~envs.host.HostEnvironment`).
        seed: seed of the episodes started by ``reset()`` without a seed (and of
            the action spaces' own samplers); ``None`` draws fresh entropy.
        render_mode: ``None`` or one of ``metadata["render_modes"]``. Jittable
            games with a ``render(state)`` method render as text (``"ansi"``);
            host games render in the mode they were built with
            (``envs.make(name, render_mode=...)``).

    Returns:
        A :class:`MairlParallelEnv`; see its docstring for the semantics. A
        host game keeps its state in the game object: give each wrapper its
        own game (``to_pettingzoo(envs.make(name))``); jittable games are
        stateless and one env may back many wrappers, which share its
        compiled steps.
    """
    return MairlParallelEnv(env, seed=seed, render_mode=render_mode)


class MairlParallelEnv(ParallelEnv):
    """A mairl environment behind PettingZoo's ``ParallelEnv`` API.

    - ``possible_agents`` are the env's ``agents``; ``agents`` holds them all
      while an episode runs and is emptied when it ends: every mairl game ends
      an episode for all agents at once.
    - ``reset(seed=s)`` makes the episode a function of ``s``: jittable games
      draw all their randomness from ``jax.random.key(s)``, host games are
      reset with seed ``s``. ``reset()`` continues the wrapper's own stream.
    - ``step(actions)`` takes one action per live agent (ints for discrete
      games, float32 arrays for continuous ones) and returns ``observations,
      rewards, terminations, truncations, infos`` keyed by agent. Jittable
      games step their raw dynamics (``step_env``, jitted once per env), so
      nothing resets behind the caller's back; a
      :class:`~envs.host.HostEnvironment` steps ``step_host``; any other
      host-side env steps its public ``step`` and the last observation of an
      episode is its ``info["next_obs"]``.
    - The episode ends when the game terminates (``terminations`` all true)
      or after ``max_cycles`` steps (``truncations`` all true). ``max_cycles``
      defaults to the env's ``max_steps`` and may be set (PettingZoo's tests
      do); host games also end where their own time limit does (and envs
      stepped through the public ``step`` at ``max_steps``).
    - ``observation_space(agent)`` is a ``Box`` of ``obs_shape`` and the env's
      ``obs_dtype`` (float32, uint8 for Gems maps) with the bounds of
      :func:`observation_bounds`; ``action_space(agent)`` is a
      gymnasium ``Discrete`` or ``Box``. Each call returns the same object.
    """

    def __init__(self, env: Any, seed: int | None = None, render_mode: str | None = None):
        from gymnasium import spaces

        self.env = env
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        if getattr(env, "jittable", True):
            self._mode = "jit"
        elif isinstance(env, HostEnvironment):
            self._mode = "host"
        else:
            self._mode = "protocol"
        if self._mode == "host":
            modes = list(getattr(env, "render_modes", ()) or ())
            own = getattr(env, "render_mode", None)
            if render_mode is None:
                render_mode = own
            elif render_mode != own:
                raise ValueError(
                    f"render_mode: {env.name} renders in the mode it was built with ({own!r}), "
                    f"got {render_mode!r}; build it with envs.make(..., "
                    f"render_mode={render_mode!r})")
        else:
            modes = list(getattr(env, "render_modes", ("ansi",) if hasattr(env, "render")
                                 else ()))
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"render_mode: expected None or one of {modes} for {env.name}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {"name": env.name, "is_parallelizable": True, "render_modes": modes}
        self.max_cycles = int(env.max_steps)

        low, high = observation_bounds(env)
        self._obs_dtype = np.dtype(getattr(env, "obs_dtype", np.float32))
        self._obs_spaces = {
            agent: spaces.Box(low, high, tuple(env.obs_shape), self._obs_dtype)
            for agent in self.possible_agents
        }
        self._action_spaces = {agent: _gym_space(space) for agent, space
                               in zip(self.possible_agents, env.action_spaces, strict=True)}
        self._rng = np.random.default_rng(seed)
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self._action_spaces[agent].seed(seed + i)
                self._obs_spaces[agent].seed(seed + i)
        self._key = None
        self._state = None
        self._time = 0
        if self._mode == "jit":
            self._reset_fn, self._step_fn = _jitted(env)

    # -- spaces ----------------------------------------------------------------------------
    def observation_space(self, agent: str):
        return self._obs_spaces[self._known(agent)]

    def action_space(self, agent: str):
        return self._action_spaces[self._known(agent)]

    def _known(self, agent: str) -> str:
        if agent not in self._obs_spaces:
            raise KeyError(f"{self.env.name}: unknown agent {agent!r}; possible agents are "
                           f"{self.possible_agents}")
        return agent

    # -- episodes --------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode: ``(observations, infos)`` keyed by agent.

        Args:
            seed: makes the episode a function of ``seed``; ``None`` continues
                the wrapper's stream.
            options: accepted for the PettingZoo API; mairl games take none.
        """
        if self._mode == "host":
            if seed is None:
                seed = int(self._rng.integers(2**31 - 1))
            obs = self.env._check_obs(self.env.reset_host(int(seed)), "reset")
        else:
            if seed is not None:
                key = jax.random.key(int(seed))
            elif self._key is None:
                key = jax.random.key(int(self._rng.integers(2**31 - 1)))
            else:
                key = self._key
            if self._mode == "jit":
                self._key, obs, self._state = self._reset_fn(key)
            else:
                self._key, key_reset = jax.random.split(key)
                obs, self._state = self.env.reset(key_reset)
        self._time = 0
        self.agents = list(self.possible_agents)
        return self._per_agent(obs), {agent: {} for agent in self.agents}

    def step(self, actions: dict):
        """One step of all live agents: five dicts keyed by agent (see the class docstring)."""
        if not self.agents:
            raise RuntimeError(f"{self.env.name}: step called with no live agents; "
                               "call reset() to start an episode")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"{self.env.name}: actions: missing for live agents {missing}")
        joint = self._stack_actions(actions)
        if self._mode == "host":
            obs, reward, terminated, game_truncated, _ = self.env.step_host(
                self.env.check_actions(joint))
            obs = self.env._check_obs(obs, "step")
        elif self._mode == "jit":
            self._key, obs, self._state, reward, terminated = self._step_fn(
                self._key, self._state, jnp.asarray(joint))
            game_truncated = False
        else:
            self._key, key_step = jax.random.split(self._key)
            _, self._state, reward, terminated, game_truncated, info = self.env.step(
                key_step, self._state, joint)
            obs = info["next_obs"]
        self._time += 1
        terminated = bool(terminated)
        truncated = not terminated and (bool(game_truncated) or self._time >= self.max_cycles)
        agents = self.agents
        reward = np.asarray(reward)
        rewards = {agent: float(reward[i]) for i, agent in enumerate(agents)}
        terminations = dict.fromkeys(agents, terminated)
        truncations = dict.fromkeys(agents, truncated)
        infos = {agent: {} for agent in agents}
        observations = self._per_agent(obs)
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _stack_actions(self, actions: dict) -> np.ndarray:
        rows = []
        for agent in self.possible_agents:
            space = self._action_spaces[agent]
            value = np.asarray(actions[agent])
            if not self.env.discrete:
                value = value.astype(np.float32)
            if not space.contains(value):
                raise ValueError(f"{self.env.name}: action of agent {agent!r} is {value!r}, "
                                 f"expected an element of {space}")
            rows.append(value)
        if self.env.discrete:
            return np.asarray(rows, np.int32)
        return np.stack(rows).astype(np.float32)

    def _per_agent(self, obs) -> dict[str, np.ndarray]:
        obs = np.asarray(obs, self._obs_dtype)
        return {agent: obs[i] for i, agent in enumerate(self.possible_agents)}

    # -- rendering and the rest ---------------------------------------------------------------
    def render(self):
        """The game's picture in ``render_mode``; ``None`` with a warning without one."""
        if self.render_mode is None:
            import gymnasium

            gymnasium.logger.warn(
                f"{self.env.name}: render called without a render_mode; build the wrapper with "
                f"render_mode (one of {self.metadata['render_modes']})")
            return None
        if self._mode == "host":
            return self.env.render()
        if self._state is None:
            raise RuntimeError(f"{self.env.name}: call reset() before render()")
        return self.env.render(self._state)

    def close(self) -> None:
        if hasattr(self.env, "close"):
            self.env.close()

    @property
    def unwrapped(self):
        return self

    def __str__(self) -> str:
        return f"to_pettingzoo({self.env.name})"


# -- PettingZoo -> mairl ------------------------------------------------------------------------


def _describe(spaces: dict[str, Any]) -> str:
    return ", ".join(f"{agent}: {space}" for agent, space in spaces.items())


class PettingZooEnv(HostEnvironment):
    """A PettingZoo ``ParallelEnv`` as a mairl host environment.

    Agents are stacked on the first axis in ``possible_agents`` order.

    Observations: every agent's space must be a gymnasium ``Box`` (flattened
    where shapes differ) or ``Discrete`` (one-hot). Where all agents share one
    ``Box`` shape it is kept as ``obs_shape``; otherwise each agent's
    observation is flattened and zero-padded at the end to the largest size,
    ``obs_shape = (max size,)``, and ``obs_sizes`` keeps each agent's true size
    (mpe2 ``simple_tag``: adversaries 16, the prey 14). ``obs_bounds`` holds
    scalar bounds over all agents (0 included where padding or one-hot applies).

    Actions: either every agent has a ``Discrete`` space with the same number
    of actions (mairl action ``a`` is PettingZoo action ``start + a``), or every
    agent has a ``Box`` of one shape with the same scalar bounds. Anything else
    cannot be stacked and raises ``ValueError`` naming the agents.

    Episodes: the live agents are those in the game's ``agents`` after reset.
    An agent that finishes early (terminated, truncated, or dropped from
    ``agents``) gets zero observations and zero rewards, and its action is
    ignored, until the episode ends, which is when no live agent is left. The
    mairl flags at that step: ``terminated`` if every agent that finished at
    that step was terminated and none truncated (no bootstrap: the game is
    over), else ``truncated``; an early finisher's own flag is not kept, but
    ``info["live"]`` (``(N,)`` bool) tells who acted in each step. mairl's
    ``max_steps`` (default: the game's ``max_cycles``) truncates too. Agents
    that appear in the middle of an episode, or that are not in
    ``possible_agents``, raise ``ValueError``.

    Seeds: ``reset_host(seed)`` calls ``parallel_env.reset(seed=seed)``, so a
    game that is deterministic given its seed replays the same episode for the
    same JAX key. ``render()`` and ``close()`` forward to the game.

    Args:
        parallel_env: a PettingZoo ``ParallelEnv`` or ``AECEnv``.
        max_steps: truncation horizon (default: the game's ``max_cycles``).
        name: the env's name (default: ``metadata["name"]``).
    """

    def __init__(self, parallel_env: Any, *, max_steps: int | None = None,
                 name: str | None = None):
        from pettingzoo.utils.conversions import aec_to_parallel
        from pettingzoo.utils.env import AECEnv, ParallelEnv

        if isinstance(parallel_env, AECEnv):
            parallel_env = aec_to_parallel(parallel_env)
        elif not isinstance(parallel_env, ParallelEnv):
            raise TypeError(f"from_pettingzoo: expected a PettingZoo ParallelEnv or AECEnv, "
                            f"got {type(parallel_env).__name__}")
        self.parallel_env = parallel_env
        metadata = getattr(parallel_env, "metadata", None) or {}
        label = name or metadata.get("name") or type(parallel_env.unwrapped).__name__
        self._label = str(label)
        possible = list(getattr(parallel_env, "possible_agents", []) or [])
        if not possible:
            raise ValueError(f"from_pettingzoo({self._label}): possible_agents is empty or "
                             "missing; mairl needs the full list of agents up front")
        self.agents = tuple(possible)
        self.num_agents = len(possible)
        self._index = {agent: i for i, agent in enumerate(possible)}
        self._setup_observations({a: parallel_env.observation_space(a) for a in possible})
        self._setup_actions({a: parallel_env.action_space(a) for a in possible})
        if max_steps is None:
            max_steps = getattr(parallel_env.unwrapped, "max_cycles", None)
            if max_steps is None:
                max_steps = getattr(parallel_env, "max_cycles", None)
            if max_steps is None:
                raise ValueError(f"from_pettingzoo({self._label}): max_steps: the game has no "
                                 "max_cycles attribute; pass max_steps (every mairl episode "
                                 "must end within max_steps steps)")
        if int(max_steps) < 1:
            raise ValueError(f"from_pettingzoo({self._label}): max_steps: expected >= 1, "
                             f"got {max_steps}")
        self.max_steps = int(max_steps)
        self._live: list[str] = []

    @property
    def name(self) -> str:
        """The registry id this game was made with, else the wrapped game's label."""
        return self.env_id or self._label

    # -- static facts from the spaces ----------------------------------------------------------
    def _setup_observations(self, obs_spaces: dict[str, Any]) -> None:
        from gymnasium import spaces

        bad = {a: type(sp).__name__ for a, sp in obs_spaces.items()
               if not isinstance(sp, (spaces.Box, spaces.Discrete))}
        if bad:
            raise ValueError(f"from_pettingzoo({self._label}): observation spaces must be Box or "
                             f"Discrete to stack on the agent axis; got {bad}")
        sizes, shapes, lows, highs = [], set(), [], []
        for sp in obs_spaces.values():
            if isinstance(sp, spaces.Box):
                sizes.append(int(np.prod(sp.shape)))
                shapes.add(tuple(sp.shape))
                lows.append(float(np.min(sp.low)) if sp.low.size else 0.0)
                highs.append(float(np.max(sp.high)) if sp.high.size else 0.0)
            else:
                sizes.append(int(sp.n))
                shapes.add(("onehot", int(sp.n)))
                lows.append(0.0)
                highs.append(1.0)
        self._obs_kinds = tuple("box" if isinstance(sp, spaces.Box) else "discrete"
                                for sp in obs_spaces.values())
        self.obs_sizes = tuple(sizes)
        box_only = all(kind == "box" for kind in self._obs_kinds)
        self.obs_padded = not (box_only and len(shapes) == 1)
        if self.obs_padded:
            self.obs_shape = (max(sizes),)
        else:
            self.obs_shape = next(iter(shapes))
        low, high = min(lows), max(highs)
        if self.obs_padded or not box_only:
            low, high = min(low, 0.0), max(high, 0.0)
        self.obs_bounds = (low, high)

    def _setup_actions(self, action_spaces: dict[str, Any]) -> None:
        from gymnasium import spaces

        discrete = {a: sp for a, sp in action_spaces.items() if isinstance(sp, spaces.Discrete)}
        box = {a: sp for a, sp in action_spaces.items() if isinstance(sp, spaces.Box)}
        other = {a: type(sp).__name__ for a, sp in action_spaces.items()
                 if a not in discrete and a not in box}
        where = f"from_pettingzoo({self._label}): action spaces"
        if other:
            raise ValueError(f"{where}: every agent needs a Discrete or Box action space; "
                             f"unsupported: {other}")
        if discrete and box:
            raise ValueError(f"{where}: continuous and discrete actions are mixed (discrete: "
                             f"{sorted(discrete)}, continuous: {sorted(box)}); mairl stacks "
                             "one kind of action on the agent axis")
        if discrete:
            counts = {a: int(sp.n) for a, sp in discrete.items()}
            if len(set(counts.values())) > 1:
                raise ValueError(f"{where}: agents have different numbers of discrete actions "
                                 f"{counts}; mairl needs one common count")
            n = next(iter(counts.values()))
            self.action_spaces = tuple(Discrete(n) for _ in action_spaces)
            self._action_start = np.array([int(sp.start) for sp in discrete.values()], np.int64)
            return
        shapes = {a: tuple(sp.shape) for a, sp in box.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"{where}: continuous actions of different shapes {shapes}")
        bounds = {}
        for a, sp in box.items():
            lo, hi = np.unique(sp.low), np.unique(sp.high)
            if lo.size != 1 or hi.size != 1:
                raise ValueError(f"{where}: agent {a!r} has per-entry action bounds {sp}; mairl "
                                 "Box actions need one scalar low and high")
            bounds[a] = (float(lo[0]), float(hi[0]))
        if len(set(bounds.values())) > 1:
            raise ValueError(f"{where}: continuous action bounds differ between agents {bounds}")
        low, high = next(iter(bounds.values()))
        shape = next(iter(shapes.values()))
        self.action_spaces = tuple(Box(low, high, shape) for _ in action_spaces)
        self._action_start = None

    # -- dict <-> stacked arrays -----------------------------------------------------------------
    def _stack_obs(self, obs: dict[str, Any], agents: list[str]) -> np.ndarray:
        """``(N, *obs_shape)`` float32: rows of ``agents`` from ``obs``, zeros elsewhere."""
        out = np.zeros((self.num_agents, *self.obs_shape), np.float32)
        flat = out.reshape(self.num_agents, -1)
        for agent in agents:
            if agent not in obs:
                raise ValueError(f"{self.name}: the game gave no observation for live agent "
                                 f"{agent!r}")
            i = self._index[agent]
            if self._obs_kinds[i] == "discrete":
                flat[i, int(obs[agent])] = 1.0
                continue
            value = np.asarray(obs[agent], np.float32).reshape(-1)
            if value.size != self.obs_sizes[i]:
                raise ValueError(f"{self.name}: observation of agent {agent!r} has "
                                 f"{value.size} entries, expected {self.obs_sizes[i]}")
            flat[i, : value.size] = value
        return out

    def _check_agents(self, agents, where: str) -> None:
        unknown = [a for a in agents if a not in self._index]
        if unknown:
            raise ValueError(f"{self.name}: {where}: agents {unknown} are not in possible_agents "
                             f"{list(self.agents)}")

    # -- HostEnvironment ------------------------------------------------------------------------
    def reset_host(self, seed: int) -> np.ndarray:
        obs, _ = self.parallel_env.reset(seed=int(seed))
        live = list(self.parallel_env.agents)
        self._check_agents(live, "reset")
        self._live = [a for a in self.agents if a in set(live)]
        return self._stack_obs(obs, self._live)

    def step_host(self, actions: np.ndarray):
        live = self._live
        if self._action_start is not None:
            joint = {a: int(actions[self._index[a]]) + int(self._action_start[self._index[a]])
                     for a in live}
        else:
            joint = {a: np.asarray(actions[self._index[a]], np.float32) for a in live}
        obs, rewards, terminations, truncations, infos = self.parallel_env.step(joint)
        now = list(self.parallel_env.agents)
        self._check_agents(list(obs) + list(rewards) + now, "step")
        appeared = sorted(set(now) - set(live))
        if appeared:
            raise ValueError(f"{self.name}: agents {appeared} appeared in the middle of an "
                             "episode; mairl stacks a fixed set of agents from reset on")
        reward = np.zeros(self.num_agents, np.float32)
        for a in live:
            reward[self._index[a]] = float(rewards.get(a, 0.0))
        ended = [a for a in live if terminations.get(a, False) or truncations.get(a, False)
                 or a not in now]
        stacked = self._stack_obs(obs, [a for a in live if a in obs])
        info = {"live": np.array([a in set(live) for a in self.agents]), "infos": infos}
        self._live = [a for a in live if a not in set(ended)]
        done = not self._live
        terminated = done and all(bool(terminations.get(a, False))
                                  and not bool(truncations.get(a, False)) for a in ended)
        return stacked, reward, terminated, done and not terminated, info

    def render(self) -> Any:
        """The game's ``render()`` (in the ``render_mode`` it was built with)."""
        return self.parallel_env.render()

    @property
    def render_mode(self) -> str | None:
        """The wrapped game's render mode (``None`` when it has none)."""
        return getattr(self.parallel_env, "render_mode", None)

    @property
    def render_modes(self) -> tuple[str, ...]:
        """The render modes the wrapped game's metadata declares."""
        metadata = getattr(self.parallel_env, "metadata", None) or {}
        return tuple(metadata.get("render_modes", ()))

    def close(self) -> None:
        self.parallel_env.close()


def from_pettingzoo(parallel_env: Any, *, max_steps: int | None = None,
                    name: str | None = None) -> PettingZooEnv:
    """A PettingZoo ``ParallelEnv`` (or ``AECEnv``) as a mairl host environment.

    See :class:`PettingZooEnv` for stacking, padding, episode ends and seeds.

    Args:
        parallel_env: the game; ``AECEnv`` inputs go through
            ``pettingzoo.utils.conversions.aec_to_parallel``.
        max_steps: truncation horizon (default: the game's ``max_cycles``).
        name: the env's name (default: the game's ``metadata["name"]``).

    Raises:
        ValueError: naming the agents, where their spaces cannot be stacked.
    """
    return PettingZooEnv(parallel_env, max_steps=max_steps, name=name)


__all__ = ["PettingZooEnv", "from_pettingzoo", "observation_bounds", "to_pettingzoo"]
