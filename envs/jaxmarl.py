"""JaxMARL's Overcooked and MPE games behind mairl's environment protocol.

:class:`JaxMARLEnv` wraps any discrete-action JaxMARL ``MultiAgentEnv`` (a
dict per agent at its boundary) into a mairl :class:`~envs.core.Environment`:

- ``obs``: float32 ``(agent, *obs_shape)``, agents in the order of the JaxMARL
  env's ``agents``. Where agents see vectors of different lengths, each row is
  zero-padded at the end to the longest one and ``obs_sizes`` keeps the true
  lengths (the MPE games with adversaries).
- ``actions``: int32 ``(agent,)``; ``reward``: float32 ``(agent,)``.
- The JaxMARL env's raw ``reset`` and ``step_env`` are called; its own
  auto-reset (``step``) is not, so mairl's base class resets, and with the same
  key the wrapper's ``step`` splits it as JaxMARL's ``step`` does
  (``key_step, key_reset = split(key)``).
- ``terminated`` / ``truncated``: JaxMARL's ``dones["__all__"]`` mixes both. The
  wrapper truncates at ``max_steps`` (the JaxMARL env's own) and reports
  ``terminated = dones["__all__"]`` only where the JaxMARL env ends an episode
  before that limit. Overcooked and MPE end only on their time limit, so for them
  ``terminated`` is always ``False`` and every episode is truncated.
- State: :class:`JaxMARLState`, the JaxMARL state under ``inner`` and an int32
  step counter ``time``.
- ``info``: entries that JaxMARL keys by agent are stacked on the agent axis;
  ``info["next_obs"]`` as in every mairl env.

**MPE** (``mpe(scenario)``, registered as ``jaxmarl-mpe-<scenario>``): the
discrete-action scenarios whose agents share one action count: ``simple``,
``simple_spread``, ``simple_tag``, ``simple_push``, ``simple_adversary``
(5 actions each), ``simple_crypto`` (4) and ``simple_reference`` (50, move and
speak combined). Left out: ``simple_speaker_listener`` (speaker 3 actions,
listener 5), ``simple_world_comm`` (leader 20, the others 5) and the
``simple_facmac`` family (continuous actions only). MPE episodes are truncated
after ``max_steps = 25`` steps, the episode length of the PettingZoo MPE
(``max_cycles=25``). JaxMARL's own ``step_env`` sets ``done`` from the step
count *before* incrementing it, so its ``step`` would auto-reset one step later,
after 26 steps; within an episode the two agree transition by transition.
The rules are those of mpe2's NumPy MPE (same reset distribution, physics
constants, action decoding and rewards; ``simple_spread`` returns of random
agents agree in distribution, ``tests/envs/test_jaxmarl.py``). JaxMARL's
``simple_crypto`` encodes goal and key as RGB colours (entries up to 255) and
compares them with one-hot messages, so its observations and rewards (of order
``1e4``) are on another scale than mpe2's; it is wrapped as JaxMARL ships it.

**Overcooked** (``overcooked(layout)``, registered as ``overcooked`` and
``overcooked-<layout>`` for every layout JaxMARL ships): two cooks, six actions
(up, down, right, left, stay, interact), 400 steps per episode. Observations are
JaxMARL's 26 binary-or-count channels of the whole kitchen, each agent's own
channels first, transposed from JaxMARL's ``(y, x, channel)`` to mairl's map
convention ``(channel, x, y)``. Rewards, per agent ``i``:

- ``sparse`` (default, JaxMARL's ``rewards``): 20 for every soup delivered in the
  step by *either* cook, the same number for both agents;
- ``shaped``: the sparse reward plus ``shaping_coef`` times agent ``i``'s own
  shaping reward (JaxMARL's ``info["shaped_reward"]``): 3 for putting an onion
  into a pot that is not yet cooking, 3 for picking up a plate from the pile
  while no plate lies on a counter and fewer plates are held than pots are
  non-empty, 5 for scooping a ready soup onto a plate.

``info`` always holds, whatever the mode: ``sparse_reward (agent,)``,
``shaped_reward (agent,)`` (unscaled) and ``delivery ()`` int32, the soups
delivered in the step, so returns can be reported in soups.

JaxMARL is imported only when a game is built: ``import envs`` stays cheap.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs.core import Environment, EnvState
from envs.spaces import Discrete

#: Overcooked layouts of JaxMARL 0.2 (``jaxmarl.environments.overcooked.overcooked_layouts``).
OVERCOOKED_LAYOUTS = (
    "cramped_room",
    "asymm_advantages",
    "coord_ring",
    "forced_coord",
    "counter_circuit",
)
#: JaxMARL's MPE classes of the stackable discrete scenarios (module docstring).
MPE_SCENARIOS = {
    "simple": "SimpleMPE",
    "simple_spread": "SimpleSpreadMPE",
    "simple_tag": "SimpleTagMPE",
    "simple_push": "SimplePushMPE",
    "simple_adversary": "SimpleAdversaryMPE",
    "simple_crypto": "SimpleCryptoMPE",
    "simple_reference": "SimpleReferenceMPE",
}
REWARD_MODES = ("sparse", "shaped")
#: JaxMARL's Overcooked delivery reward, per soup.
DELIVERY_REWARD = 20.0


@contextlib.contextmanager
def _quiet():
    """Silence JaxMARL's import banner and its Overcooked deprecation warning.

    JaxMARL prints a banner on import, and its MABrax module sets ``sys.stdout``
    and ``sys.stderr`` back to ``sys.__stdout__`` / ``sys.__stderr__``, which would
    undo any redirection (and a test runner's capture): both streams, and
    ``sys.__stdout__``, are restored afterwards.
    """
    saved = sys.stdout, sys.stderr, sys.__stdout__
    sink = io.StringIO()
    sys.stdout = sys.__stdout__ = sink
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__ = saved


@struct.dataclass
class JaxMARLState(EnvState):
    """Wrapper state.

    Attributes:
        time: int32 ``()``, steps taken in the episode.
        inner: the JaxMARL env's own state.
    """

    inner: Any


class JaxMARLEnv(Environment):
    """A discrete-action JaxMARL ``MultiAgentEnv`` as a mairl environment.

    Args:
        env: the JaxMARL environment (an instance).
        max_steps: truncation horizon; default the JaxMARL env's ``max_steps``.

    Raises:
        ValueError: naming the agent, where an action space is not discrete,
            agents have different action counts, or observations are not vectors
            of one rank that zero-padding can stack.
    """

    def __init__(self, env: Any, max_steps: int | None = None):
        self.inner = env
        self.agents = tuple(env.agents)
        self.num_agents = len(self.agents)
        spaces = []
        for a in self.agents:
            space = env.action_spaces[a]
            n = getattr(space, "n", None)
            if n is None or getattr(space, "shape", ()) not in ((), None):
                raise ValueError(
                    f"JaxMARLEnv: action space of {a!r} must be discrete, got {space!r}"
                )
            spaces.append(Discrete(int(n)))
        if any(sp.n != spaces[0].n for sp in spaces):
            counts = {a: sp.n for a, sp in zip(self.agents, spaces, strict=True)}
            raise ValueError(f"JaxMARLEnv: agents must share one action count, got {counts}")
        self.action_spaces = tuple(spaces)
        shapes = [tuple(env.observation_space(a).shape) for a in self.agents]
        if all(s == shapes[0] for s in shapes):
            self.obs_shape = shapes[0]
        elif all(len(s) == 1 for s in shapes):
            self.obs_shape = (max(s[0] for s in shapes),)
        else:
            by_agent = dict(zip(self.agents, shapes, strict=True))
            raise ValueError(
                f"JaxMARLEnv: observations of different shapes must be vectors, got {by_agent}"
            )
        #: True length of each agent's observation vector (before zero-padding).
        self.obs_sizes = tuple(int(s[0]) if len(s) == 1 else None for s in shapes)
        self.max_steps = int(env.max_steps if max_steps is None else max_steps)
        if self.max_steps < 1:
            raise ValueError(f"JaxMARLEnv: max_steps must be >= 1, got {self.max_steps}")

    # -- dict per agent <-> agent axis -------------------------------------------------
    def batchify_obs(self, obs: dict) -> jax.Array:
        """``{agent: obs}`` -> float32 ``(agent, *obs_shape)``, zero-padded rows."""
        rows = []
        for a in self.agents:
            row = jnp.asarray(obs[a], jnp.float32)
            if row.shape != self.obs_shape:
                row = jnp.pad(row, (0, self.obs_shape[0] - row.shape[0]))
            rows.append(row)
        return jnp.stack(rows)

    def unbatchify_actions(self, actions: jax.Array) -> dict:
        """int ``(agent,)`` -> ``{agent: action}``."""
        actions = jnp.asarray(actions, jnp.int32)
        return {a: actions[i] for i, a in enumerate(self.agents)}

    def _batchify_info(self, info: dict) -> dict:
        out = {}
        for name, value in info.items():
            if isinstance(value, dict) and set(value) == set(self.agents):
                value = jnp.stack([jnp.asarray(value[a], jnp.float32) for a in self.agents])
            out[name] = value
        return out

    # -- dynamics ----------------------------------------------------------------------
    def reset_env(self, key: jax.Array) -> tuple[jax.Array, JaxMARLState]:
        """Reset the JaxMARL game and stack its per-agent observations on the agent axis."""
        obs, inner = self.inner.reset(key)
        return self.batchify_obs(obs), JaxMARLState(time=jnp.int32(0), inner=inner)

    def step_env(self, key: jax.Array, state: JaxMARLState, actions: jax.Array):
        obs, inner, rewards, dones, info = self.inner.step_env(
            key, state.inner, self.unbatchify_actions(actions)
        )
        time = state.time + 1
        reward = jnp.stack([jnp.asarray(rewards[a], jnp.float32) for a in self.agents])
        # JaxMARL's done mixes both ends; only an end before the time limit is terminal.
        terminated = jnp.logical_and(jnp.asarray(dones["__all__"], jnp.bool_),
                                     time < self.max_steps)
        return (self.batchify_obs(obs), JaxMARLState(time=time, inner=inner), reward,
                terminated, self._batchify_info(info))


class Overcooked(JaxMARLEnv):
    """JaxMARL's Overcooked with the rewards of the module docstring.

    Args:
        layout: a key of JaxMARL's ``overcooked_layouts`` (:data:`OVERCOOKED_LAYOUTS`).
        reward_mode: ``"sparse"`` (20 per soup, shared) or ``"shaped"`` (plus
            ``shaping_coef`` times each agent's own shaping reward).
        shaping_coef: weight of the shaping reward in ``"shaped"`` mode.
        max_steps: episode length.
        random_reset: JaxMARL's option to randomize positions, inventories and
            pots at reset (default: only the agents' orientations are random).
    """

    def __init__(
        self,
        layout: str = "cramped_room",
        reward_mode: str = "sparse",
        shaping_coef: float = 1.0,
        max_steps: int = 400,
        random_reset: bool = False,
    ):
        if layout not in OVERCOOKED_LAYOUTS:
            raise ValueError(f"layout must be one of {OVERCOOKED_LAYOUTS}, got {layout!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if not shaping_coef >= 0:
            raise ValueError(f"shaping_coef must be >= 0, got {shaping_coef!r}")
        with _quiet():
            from flax.core.frozen_dict import FrozenDict
            from jaxmarl.environments.overcooked import Overcooked as _Overcooked
            from jaxmarl.environments.overcooked import overcooked_layouts

            env = _Overcooked(layout=FrozenDict(overcooked_layouts[layout]),
                              random_reset=bool(random_reset), max_steps=int(max_steps))
        super().__init__(env)
        self.layout = layout
        self.reward_mode = reward_mode
        self.shaping_coef = float(shaping_coef)
        self.width, self.height = int(env.width), int(env.height)
        channels = env.obs_shape[2]
        self.obs_shape = (channels, self.width, self.height)

    def batchify_obs(self, obs: dict) -> jax.Array:
        """``{agent: (y, x, channel) uint8}`` -> float32 ``(agent, channel, x, y)``."""
        return jnp.stack([jnp.asarray(obs[a], jnp.float32).transpose(2, 1, 0)
                          for a in self.agents])

    def step_env(self, key: jax.Array, state: JaxMARLState, actions: jax.Array):
        obs, state, sparse, terminated, info = super().step_env(key, state, actions)
        shaped = info["shaped_reward"]  # (agent,)
        reward = sparse
        if self.reward_mode == "shaped":
            reward = sparse + self.shaping_coef * shaped
        info = {
            "sparse_reward": sparse,
            "shaped_reward": shaped,
            "delivery": jnp.round(sparse[0] / DELIVERY_REWARD).astype(jnp.int32),
        }
        return obs, state, reward, terminated, info


def overcooked(layout: str = "cramped_room", **kwargs: Any) -> Overcooked:
    """``envs.make("overcooked", ...)``: see :class:`Overcooked`."""
    return Overcooked(layout, **kwargs)


def mpe(scenario: str = "simple_spread", max_steps: int | None = None,
        **kwargs: Any) -> JaxMARLEnv:
    """JaxMARL's MPE ``scenario`` with discrete actions (module docstring).

    ``kwargs`` go to the JaxMARL scenario class (e.g. ``num_agents``,
    ``local_ratio`` of ``simple_spread``); ``max_steps`` sets both its horizon and
    the wrapper's.
    """
    if scenario not in MPE_SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(MPE_SCENARIOS)}, got {scenario!r}")
    with _quiet():
        from jaxmarl.environments import mpe as jaxmarl_mpe

        cls = getattr(jaxmarl_mpe, MPE_SCENARIOS[scenario])
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    env = JaxMARLEnv(cls(action_type="Discrete", **kwargs))
    env.scenario = scenario
    return env
