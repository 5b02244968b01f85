"""Expert policies for recording demonstrations: ``policy_fn(key, obs) -> actions``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]


def make_expert(env, kind: str, *, alpha: float = 1.0, gamma: float = 0.99) -> PolicyFn:
    """Build an expert for ``env``.

    ``soft-vi``: the exact logit equilibrium of a tabular game, each agent sampling
    from its Boltzmann policy ``pi_i(a_i | s)``. ``random``: uniform actions.
    """
    if kind == "random":
        return lambda key, obs: env.sample_actions(key)
    if kind == "soft-vi":
        if not hasattr(env, "transitions"):
            raise SystemExit(
                f"error: --expert soft-vi needs a tabular game; {env.name} is not one "
                "(use a tabular env, tabular:PATH.npz, or --expert random)"
            )
        from mairl.solvers import soft_value_iteration

        solution = soft_value_iteration(env, alpha=alpha, gamma=gamma)
        return tabular_policy_fn(env, solution.policy)
    raise SystemExit(f"error: unknown --expert {kind!r}")


def tabular_policy_fn(env, policy: jax.Array) -> PolicyFn:
    """Sample joint actions from per-agent tabular policies ``policy (agent, state, action)``."""
    logits = jnp.log(jnp.asarray(policy, jnp.float32))

    def policy_fn(key: jax.Array, obs: jax.Array) -> jax.Array:
        s = env.state_from_obs(obs)[0]
        return jax.random.categorical(key, logits[:, s]).astype(jnp.int32)

    return policy_fn
