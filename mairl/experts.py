"""Expert policies for recording demonstrations: ``policy_fn(key, obs) -> actions``.

Kinds (``make_expert``):

- ``soft-vi``: the exact logit equilibrium of a tabular game.
- ``soft-q``: a deep soft-Q expert (``mairl.algos.soft_q``) loaded from a parameter
  file; the shipped one, ``mairl/assets/gems_soft_q.npz``, plays Gems on its map
  observations (see :func:`gems_agent_features` and ``experiments/train_gems_expert.py``).
  ``mairl/assets/overcooked_cramped_room.npz`` plays Overcooked on the raw
  observations (``features = "identity"``): a PPO policy whose logits are stored
  as soft-Q values at ``alpha = 1`` (``experiments/train_overcooked_expert.py``).
- ``scripted``: the game's own hand-written expert, where it has one
  (``env.scripted_policy()``, e.g. the mpe2 particle games and the intersection).
- ``run``: the policy of a finished run directory (``mairl.runs``), e.g. a
  forward learner trained on the true rewards such as the multi-agent SAC expert
  of ``experiments/train_brax_expert.py`` on the Brax games
  (:func:`load_run_expert`).
- ``random``: uniform actions.

Library code: errors are ``ValueError`` / ``FileNotFoundError`` naming the
expert and the problem; the ``mairl demos`` command turns them into one-line
``error:`` exits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]

#: The shipped Gems soft-Q expert (written by ``experiments/train_gems_expert.py``).
GEMS_SOFT_Q_PARAMS = Path(__file__).resolve().parent / "assets" / "gems_soft_q.npz"
#: ``format`` metadata entry of a soft-Q expert file.
SOFT_Q_FORMAT = "mairl-soft-q-expert"

#: Gem cells read per colour, and the scale of offsets: cells are divided by
#: ``GEMS_REACH`` (the largest offset on the 15 x 15 grid) on every grid size,
#: so features mean the same distances on smaller training grids.
GEMS_SLOTS = 3
GEMS_REACH = 14.0
#: Length of one agent's feature vector (see :func:`gems_agent_features`).
GEMS_NUM_FEATURES = 2 + 7 * GEMS_SLOTS + 4 * GEMS_SLOTS


#: Expert kinds :func:`make_expert` builds.
EXPERT_KINDS = ("soft-vi", "soft-q", "scripted", "random", "run")


def make_expert(
    env,
    kind: str,
    *,
    alpha: float | None = None,
    gamma: float = 0.99,
    params_path: str | os.PathLike | None = None,
) -> PolicyFn:
    """Build an expert for ``env``.

    ``soft-vi``: the exact logit equilibrium of a tabular game, each agent sampling
    from its Boltzmann policy ``pi_i(a_i | s)`` at ``alpha`` (default 1) and
    discount ``gamma``. ``soft-q``: the soft-Q critics of ``params_path`` (default
    :data:`GEMS_SOFT_Q_PARAMS`), each agent sampling ``pi_i ∝ exp(Q_i / alpha)``
    at ``alpha`` (default: the temperature the file was trained at).
    ``scripted``: the game's hand-written expert (:func:`scripted_policy_fn`).
    ``random``: uniform actions. ``run``: the policy of the finished run in the
    directory ``params_path`` (:func:`load_run_expert`).

    Raises:
        ValueError: naming the expert kind: an unknown ``kind``, a game the
            expert cannot play (``scripted`` without a scripted expert,
            ``soft-vi`` on a non-tabular game), or a ``soft-q`` parameter file
            of another kind, game or shape.
        FileNotFoundError: ``soft-q`` with no file at ``params_path``, ``run`` with
            no run directory there.
    """
    if kind == "random":
        return lambda key, obs: env.sample_actions(key)
    if kind == "scripted":
        return scripted_policy_fn(env)
    if kind == "soft-vi":
        if not hasattr(env, "transitions"):
            raise ValueError(
                f"expert 'soft-vi': needs a tabular game; {env.name} is not one "
                "(use a tabular env, tabular:PATH.npz, or the 'random' expert)"
            )
        from mairl.solvers import soft_value_iteration

        solution = soft_value_iteration(env, alpha=1.0 if alpha is None else alpha, gamma=gamma)
        return tabular_policy_fn(env, solution.policy)
    if kind == "soft-q":
        path = GEMS_SOFT_Q_PARAMS if params_path is None else Path(params_path)
        try:
            return load_soft_q_expert(path, env, alpha=alpha)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"expert 'soft-q': params_path {err}") from None
        except ValueError as err:
            raise ValueError(f"expert 'soft-q': {err}") from None
    if kind == "run":
        if params_path is None:
            raise ValueError("expert 'run': params_path must name a finished run directory")
        try:
            return load_run_expert(params_path, env)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"expert 'run': params_path {err}") from None
        except ValueError as err:
            raise ValueError(f"expert 'run': {err}") from None
    raise ValueError(f"expert {kind!r}: unknown kind; expected one of {list(EXPERT_KINDS)}")


def load_run_expert(path: str | os.PathLike, env, *, greedy: bool = False) -> PolicyFn:
    """The policy of the finished run in directory ``path`` (``mairl.runs.load_run``:
    its first seed; a continuous learner's actors draw actions, a discrete one's
    Boltzmann policies sample them; ``greedy``: their modes), for ``env``.

    Raises:
        FileNotFoundError: no run directory at ``path`` (no ``config.json``).
        ValueError: an unfinished or damaged run, or one trained on a game whose
            agents, observations or actions differ from ``env``'s (naming both).
    """
    from mairl.runs import load_run

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
    run = load_run(path)
    for field in ("num_agents", "obs_shape", "action_spaces"):
        trained, wanted = getattr(run.env, field, None), getattr(env, field, None)
        if trained != wanted:
            raise ValueError(f"{path}: a run on env {run.env.name!r} with {field} {trained}; "
                             f"env {env.name!r} has {field} {wanted}")
    return run.policy_fn(greedy=greedy)


def expert_alpha_gamma(
    kind: str,
    *,
    alpha: float | None = None,
    gamma: float = 0.99,
    params_path: str | os.PathLike | None = None,
) -> tuple[float | None, float | None]:
    """The temperature and discount of the expert :func:`make_expert` builds with the
    same arguments, for demonstration files to record (``None`` where the expert
    has none: ``scripted``, ``random``)."""
    if kind == "soft-vi":
        return (1.0 if alpha is None else float(alpha)), float(gamma)
    if kind == "soft-q":
        from mairl.params import load_params

        meta = load_params(GEMS_SOFT_Q_PARAMS if params_path is None else Path(params_path))[1]
        return (float(meta["alpha"]) if alpha is None else float(alpha)), float(meta["gamma"])
    if kind == "run" and params_path is not None:
        from mairl.runs import read_config

        algo = read_config(params_path).algo
        return getattr(algo, "alpha", None), getattr(algo, "gamma", None)
    return None, None


def scripted_policy_fn(env) -> PolicyFn:
    """The game's own hand-written expert, ``env.scripted_policy()``.

    Raises:
        ValueError: ``env`` has no scripted expert.
    """
    if not hasattr(env, "scripted_policy"):
        raise ValueError(f"expert 'scripted': {env.name} has no scripted expert")
    return env.scripted_policy()


def tabular_policy_fn(env, policy: jax.Array) -> PolicyFn:
    """Sample joint actions from per-agent tabular policies ``policy (agent, state, action)``."""
    logits = jnp.log(jnp.asarray(policy, jnp.float32))

    def policy_fn(key: jax.Array, obs: jax.Array) -> jax.Array:
        s = env.state_from_obs(obs)[0]
        return jax.random.categorical(key, logits[:, s]).astype(jnp.int32)

    return policy_fn


# -- Gems features --------------------------------------------------------------------------------
def _cells(channel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first ``GEMS_SLOTS`` occupied cells of a ``(x, y)`` map, row-major.

    Returns ``cells (slot, xy)`` float32 and ``valid (slot,)`` bool; a slot is
    invalid where fewer cells are occupied (gems sharing a cell show as one).
    """
    size = channel.shape[-1]
    value, flat = jax.lax.top_k(channel.reshape(-1), GEMS_SLOTS)
    cells = jnp.stack([flat // size, flat % size], axis=-1).astype(jnp.float32)
    return cells, value > 0


def _agent_features(row: jax.Array, agent: jax.Array) -> jax.Array:
    """One agent's features from its map ``row (channel=5, x, y)``; ``agent`` 0 or 1."""
    size = row.shape[-1]
    flat = jnp.argmax(row[:2].reshape(2, -1), axis=-1)  # (agent,)
    positions = jnp.stack([flat // size, flat % size], axis=-1).astype(jnp.float32)
    me, other = positions[agent], positions[1 - agent]  # (xy,)
    purple, purple_ok = _cells(row[4])
    own, own_ok = _cells(jnp.take(row, 2 + agent, axis=0))

    to_me = purple - me  # (slot, xy)
    to_other = purple - other
    d_me = jnp.abs(to_me).sum(-1)  # (slot,)
    d_other = jnp.abs(to_other).sum(-1)
    purple_rows = jnp.concatenate(
        [purple_ok[:, None], to_me / GEMS_REACH, to_other / GEMS_REACH,
         d_me[:, None] / (2 * GEMS_REACH), d_other[:, None] / (2 * GEMS_REACH)],
        axis=-1,
    ) * purple_ok[:, None]  # (slot, 7)
    order = jnp.argsort(jnp.where(purple_ok, jnp.maximum(d_me, d_other), jnp.inf), stable=True)

    own_to_me = own - me
    own_d = jnp.abs(own_to_me).sum(-1)
    own_rows = jnp.concatenate(
        [own_ok[:, None], own_to_me / GEMS_REACH, own_d[:, None] / (2 * GEMS_REACH)], axis=-1
    ) * own_ok[:, None]  # (slot, 4)
    own_order = jnp.argsort(jnp.where(own_ok, own_d, jnp.inf), stable=True)
    return jnp.concatenate(
        [(other - me) / GEMS_REACH, purple_rows[order].reshape(-1), own_rows[own_order].reshape(-1)]
    )


def gems_agent_features(row: jax.Array, agent: jax.Array) -> jax.Array:
    """Agent ``agent``'s exact features of its Gems map observation: its view
    ``obs_transform(row, agent)`` for soft-Q critics (``mairl.algos.common``).

    Args:
        row: float ``(channel=5, x=size, y=size)``, the agent's row of one env's
            map observation (channels agent 0, agent 1, blue, red, purple gems).
        agent: 0 or 1 (int, may be traced).

    Returns:
        float32 ``(GEMS_NUM_FEATURES=35,)``. With ``p`` the agent's cell (argmax
        of channel ``agent``), ``q`` the other agent's, ``R = 14`` and distances
        in the L1 norm:

        ``(q - p) / R`` (2); then 3 purple slots, each ``valid, (g - p) / R,
        (g - q) / R, |g - p| / 2R, |g - q| / 2R`` (7), ordered by
        ``max(|g - p|, |g - q|)``; then 3 slots of its own gems (channel
        ``2 + i``), each ``valid, (g - p) / R, |g - p| / 2R`` (4), ordered by
        ``|g - p|``.

        Gem cells are the occupied cells of the channel (``lax.top_k``); empty
        slots, where gems share a cell, are zeros and come last. The other
        agent's gems are left out.
    """
    row = jnp.asarray(row, jnp.float32)
    if row.ndim != 3 or row.shape[0] != 5 or row.shape[1] != row.shape[2]:
        raise ValueError(
            f"gems_agent_features: expected one agent's Gems map observation (5, size, size), "
            f"got {row.shape}"
        )
    return _agent_features(row, agent)


def gems_features(obs: jax.Array) -> jax.Array:
    """:func:`gems_agent_features` of both agents of one env's map observation
    ``(agent=2, channel=5, size, size)``: float32 ``(agent=2, GEMS_NUM_FEATURES)``."""
    obs = jnp.asarray(obs, jnp.float32)
    if obs.ndim != 4 or obs.shape[:2] != (2, 5) or obs.shape[2] != obs.shape[3]:
        raise ValueError(
            f"gems_features: expected a Gems map observation (2, 5, size, size), got {obs.shape}"
        )
    return jax.vmap(_agent_features)(obs, jnp.arange(2))


def identity_features(row: jax.Array, agent: jax.Array) -> jax.Array:
    """The agent's raw observation as float32: critics that read the env's own
    observations."""
    return jnp.asarray(row, jnp.float32)


#: Per-agent views ``f(obs_row, agent)`` a soft-Q expert file may name in its
#: ``features`` entry.
FEATURES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "gems": gems_agent_features,
    "identity": identity_features,
}


# -- soft-Q experts from files ------------------------------------------------------------------
def soft_q_expert_config(metadata: dict, alpha: float | None = None):
    """The ``mairl.algos.SoftQConfig`` whose critics a file's metadata describes."""
    from mairl.algos.soft_q import SoftQConfig

    hidden = tuple(int(h) for h in str(metadata["hidden"]).split(",") if h)
    return SoftQConfig(
        alpha=float(metadata["alpha"]) if alpha is None else float(alpha),
        gamma=float(metadata["gamma"]),
        critic=str(metadata["critic"]),
        hidden=hidden,
    )


def load_soft_q_critics(path: str | os.PathLike, env, *, alpha: float | None = None):
    """The soft-Q algorithm and parameters saved at ``path``, checked against ``env``.

    The file (``mairl.params.save_params``: the critics stacked on the agent
    axis and scalar metadata) names each agent's view (``features``, a key of
    :data:`FEATURES`), critic and temperature; its parameter shapes are checked
    against the critics of ``mairl.algos.soft_q`` that ``env`` needs.

    Returns:
        ``(algo, params)``; ``algo.alpha`` is ``alpha`` or the file's temperature.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming ``path``, for a file of another kind, another game,
            or parameters of the wrong shapes.
    """
    from mairl.algos.base import Batch
    from mairl.algos.soft_q import make_soft_q
    from mairl.params import check_params, load_params

    path = Path(path)
    params, metadata = load_params(path)
    if metadata.get("format") != SOFT_Q_FORMAT:
        raise ValueError(f"{path}: not a soft-Q expert file (format {metadata.get('format')!r})")
    missing = [k for k in ("features", "critic", "hidden", "alpha", "gamma") if k not in metadata]
    if missing:
        raise ValueError(f"{path}: metadata entries missing: {missing}")
    trained_on = metadata.get("env_id")
    if trained_on is not None:
        _check_expert_env(path, str(trained_on), env)
    name = str(metadata["features"])
    if name not in FEATURES:
        raise ValueError(f"{path}: unknown features {name!r}; expected one of {sorted(FEATURES)}")
    num_agents = int(metadata.get("num_agents", env.num_agents))
    if num_agents != env.num_agents:
        raise ValueError(
            f"{path}: trained for {num_agents} agents, {env.name} has {env.num_agents}"
        )
    try:
        algo = make_soft_q(soft_q_expert_config(metadata, alpha), num_agents=env.num_agents,
                           obs_shape=tuple(env.obs_shape), num_actions=env.num_actions,
                           env=env, obs_transform=FEATURES[name])
    except ValueError as err:
        raise ValueError(f"{path}: features {name!r} do not fit {env.name}: {err}") from None
    template = jax.eval_shape(algo.init, jax.random.key(0), Batch(None)).params
    try:
        check_params(params, template)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return algo, jax.tree.map(jnp.asarray, params)


def _check_expert_env(path: Path, trained_on: str, env) -> None:
    """An expert file's game (its ``env_id``) and ``env`` must be of one family
    (``envs.family_of``: Gems experts serve every Gems variant, whose shapes are then
    checked); ``ValueError`` naming both otherwise."""
    import envs

    here = getattr(env, "env_id", None) or getattr(env, "name", None)
    if here is None:
        return
    ours, theirs = envs.family_of(str(here)), envs.family_of(trained_on)
    if ours is None or theirs is None or ours == theirs:
        return
    raise ValueError(f"{path}: an expert for env {trained_on!r} (family {theirs}); "
                     f"env {here!r} is of family {ours}")


def load_soft_q_expert(
    path: str | os.PathLike, env, *, alpha: float | None = None, greedy: bool = False
) -> PolicyFn:
    """The Boltzmann policy of the soft-Q critics saved at ``path``, for ``env``
    (the file and its errors: :func:`load_soft_q_critics`)."""
    from mairl.evaluation import policy_fn_of

    algo, params = load_soft_q_critics(path, env, alpha=alpha)
    return policy_fn_of(algo, params, greedy)


def soft_q_expert_logits(path: str | os.PathLike, env) -> Callable[[jax.Array], jax.Array]:
    """``logits(obs (agent, B, *obs_shape)) -> (agent, B, A)``: the saved expert's
    policy logits ``Q_E / alpha_E`` at the file's own temperature (errors:
    :func:`load_soft_q_critics`)."""
    algo, params = load_soft_q_critics(path, env)

    def logits(obs: jax.Array) -> jax.Array:
        return algo.q_values(params, obs) / algo.alpha

    return logits
