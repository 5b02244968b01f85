"""Calibration of reward-recovery metrics: what the right answer scores, and a wrong one.

A reward-recovery number means something only beside its ceiling and floor. For
a metric ``m(r_hat) -> (N,)`` (one score per agent, against the true reward) a
calibration scores a fixed set of candidate rewards:

- ``true``: the true reward itself;
- ``true + V_E shaping`` and ``true + 10 V_E shaping``: shaped by the expert's
  soft value, the shaping a learned ``Q - gamma V(s')`` carries;
- ``true + random shaping xK``: shaped by random potentials whose standard
  deviation is ``K`` times the reward's (``K`` in ``shaping_scales``), the
  worst of ``draws`` draws;
- ``alpha log pi_E``: the reward read off the expert's own policy, the true
  reward shaped by ``Phi = V_E``;
- ``random reward``: independent normal rewards, the mean of ``draws`` draws
  (the floor);
- ``random critic``: the reward of a randomly initialised critic (the negative
  control a learner starts from), where one is given.

The *ceiling* is the worst score of the candidates that are the true reward up
to shaping (the first five), the *floor* the mean score of random rewards. A
metric is reported as reward recovery only when it is *informative*: for a
similarity (a correlation, best 1) ceiling ``>= 0.95`` and floor ``<= 0.1``;
for a distance (EPIC, best 0) the same thresholds through
``D = sqrt((1 - rho) / 2)``: ceiling ``<= 0.158`` and floor ``>= 0.671``.

:func:`calibrate_tabular` runs this on a tabular game with its exact oracle;
the sampled measure of large games is calibrated by
:func:`mairl.metrics.simulated.calibrate_simulated`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mairl.metrics import reward as reward_metrics

__all__ = [
    "CEILING",
    "FLOOR",
    "MetricCalibration",
    "calibrate",
    "calibrate_tabular",
    "format_calibration",
    "tabular_metrics",
]

#: Thresholds of an informative similarity metric (ceiling at least, floor at most).
CEILING, FLOOR = 0.95, 0.1

#: Candidates that equal the true reward up to shaping (they define the ceiling).
EQUIVALENT = ("true", "true + V_E shaping", "true + 10 V_E shaping", "alpha log pi_E")


def _distance(rho: float) -> float:
    return math.sqrt((1.0 - rho) / 2.0)


@dataclass(frozen=True)
class MetricCalibration:
    """Scores of the calibration candidates under one metric.

    Attributes:
        metric: the metric's name.
        kind: ``"similarity"`` (best 1) or ``"distance"`` (best 0).
        scores: candidate name -> per-agent score (random candidates: the mean
            over draws, except random shapings: the worst draw).
        spread: candidate name -> per-agent standard deviation over draws, for
            the random candidates.
        ceiling: the worst score among the candidates equal to the true reward
            up to shaping.
        floor: the mean score of random rewards (over draws and agents).
        informative: whether the ceiling and the floor pass the thresholds of
            the module docstring.
    """

    metric: str
    kind: str
    scores: dict[str, list[float]]
    spread: dict[str, list[float]] = field(default_factory=dict)
    ceiling: float = float("nan")
    floor: float = float("nan")
    informative: bool = False

    def to_dict(self) -> dict:
        """JSON-ready: ``metrics.json`` stores this beside the metric's numbers."""
        return {"metric": self.metric, "kind": self.kind, "ceiling": self.ceiling,
                "floor": self.floor, "informative": self.informative,
                "thresholds": self.thresholds(), "scores": self.scores, "spread": self.spread}

    def thresholds(self) -> dict[str, float]:
        """The ceiling and floor an informative metric of this kind must reach."""
        if self.kind == "distance":
            return {"ceiling_at_most": round(_distance(CEILING), 3),
                    "floor_at_least": round(_distance(FLOOR), 3)}
        return {"ceiling_at_least": CEILING, "floor_at_most": FLOOR}


def _verdict(kind: str, scores: Mapping[str, np.ndarray]) -> tuple[float, float, bool]:
    eq = [np.asarray(scores[k], np.float64) for k in scores
          if k in EQUIVALENT or k.startswith("true + random shaping")]
    eq = np.concatenate([e.reshape(-1) for e in eq])
    floor = float(np.mean(scores["random reward"]))
    if kind == "distance":
        ceiling = float(np.max(eq)) if not np.any(np.isnan(eq)) else float("nan")
        ok = ceiling <= _distance(CEILING) and floor >= _distance(FLOOR)
    else:
        ceiling = float(np.min(eq)) if not np.any(np.isnan(eq)) else float("nan")
        ok = ceiling >= CEILING and floor <= FLOOR
    return ceiling, floor, bool(ok)


def calibrate(
    metrics: Mapping[str, tuple[str, Callable[[Any], Any]]],
    candidates: Mapping[str, Sequence[Any]],
) -> dict[str, MetricCalibration]:
    """Score every candidate reward under every metric.

    Args:
        metrics: name -> ``(kind, fn)``; ``fn(r_hat)`` returns per-agent scores
            ``(N,)`` against the true reward; ``kind`` is ``"similarity"`` or
            ``"distance"``.
        candidates: candidate name -> list of rewards (one per draw). Must hold
            ``"true"`` and ``"random reward"``; names of the module docstring
            decide which candidates form the ceiling. Random shapings
            (``"true + random shaping ..."``) keep their worst draw, other
            candidates the mean over draws.

    Returns:
        name -> :class:`MetricCalibration`.
    """
    for need in ("true", "random reward"):
        if need not in candidates:
            raise ValueError(f"candidates: need a {need!r} entry, got {sorted(candidates)}")
    out = {}
    for name, (kind, fn) in metrics.items():
        if kind not in ("similarity", "distance"):
            raise ValueError(f"metrics[{name!r}]: kind must be 'similarity' or 'distance', "
                             f"got {kind!r}")
        scores, spread = {}, {}
        for cand, draws in candidates.items():
            vals = np.stack([np.asarray(fn(r), np.float64) for r in draws])  # (draw, N)
            if cand.startswith("true + random shaping"):
                worst = vals.max(axis=0) if kind == "distance" else vals.min(axis=0)
                scores[cand] = worst.tolist()
            else:
                scores[cand] = vals.mean(axis=0).tolist()
            if len(draws) > 1:
                spread[cand] = vals.std(axis=0).tolist()
        ceiling, floor, ok = _verdict(kind, scores)
        out[name] = MetricCalibration(name, kind, scores, spread, ceiling, floor, ok)
    return out


def _shape(r, transitions, gamma, phi, terminal):
    """``r + gamma P (1 - terminal) Phi - Phi``; ``r (N, S, A)``, ``P (N, S, A, S')``,
    ``Phi (N, S)``."""
    nxt = phi if terminal is None else jnp.where(jnp.asarray(terminal)[None, :], 0.0, phi)
    return r + gamma * jnp.einsum("nsat,nt->nsa", transitions, nxt) - phi[:, :, None]


def tabular_metrics(oracle: Any, gamma: float, terminal: Any = None) -> dict:
    """The reward-recovery metrics a tabular run reports, as ``name -> (kind, fn)``.

    All compare an expected-form reward ``r_hat (N, S, A)`` with the true
    marginal reward ``oracle.marginal_rewards`` under the expert's marginal
    dynamics:

    - ``reward_shaping_corr``: :func:`~mairl.metrics.shaping_aware_correlation`
      weighted by the expert occupancy, terminal-aware;
    - ``reward_pearson``, ``reward_spearman``: plain correlations over all
      ``(s, a)`` (shaping-sensitive);
    - ``reward_epic``: EPIC distance of the expected-form rewards read as
      ``R(s, a, s')`` constant in ``s'``; not invariant to state-action
      shaping under stochastic dynamics, which its calibration shows.
    """
    true = jnp.asarray(oracle.marginal_rewards, jnp.float32)
    trans = jnp.asarray(oracle.marginal_transitions, jnp.float32)
    occ = jnp.asarray(oracle.occupancy, jnp.float32)
    term = None if terminal is None else jnp.asarray(terminal, bool)
    return {
        "reward_shaping_corr": ("similarity", lambda r: (
            reward_metrics.shaping_aware_correlation_per_agent(r, true, trans, gamma, occ,
                                                               terminal=term))),
        "reward_pearson": ("similarity", lambda r: reward_metrics.pearson(r, true)),
        "reward_spearman": ("similarity", lambda r: reward_metrics.spearman(r, true)),
        "reward_epic": ("distance", lambda r: reward_metrics.epic_distance(r, true, trans, gamma)),
    }


def calibrate_tabular(
    oracle: Any,
    alpha: float,
    gamma: float,
    *,
    terminal: Any = None,
    key: jax.Array | None = None,
    random_critic: Callable[[jax.Array], Any] | None = None,
    draws: int = 8,
    shaping_scales: Sequence[float] = (1.0, 10.0, 100.0),
) -> dict[str, MetricCalibration]:
    """Calibrate :func:`tabular_metrics` on a tabular game's exact oracle.

    Args:
        oracle: ``mairl.solvers.soft_value_iteration``'s result for the game at
            ``alpha`` and ``gamma`` (the expert).
        alpha, gamma: the expert's temperature and discount.
        terminal: the game's optional terminal mask ``(S,)``.
        key: randomness of the random candidates (default ``key(0)``).
        random_critic: optional ``fn(key) -> r_hat (N, S, A)``, the expected-form
            reward of a freshly initialised critic (see
            ``mairl.evaluation.tabular_reward``).
        draws: draws of each random candidate.
        shaping_scales: standard deviations of the random potentials, in units
            of the true reward's standard deviation.
    """
    if draws < 1:
        raise ValueError(f"draws: expected at least 1, got {draws}")
    key = jax.random.key(0) if key is None else key
    true = jnp.asarray(oracle.marginal_rewards, jnp.float32)
    trans = jnp.asarray(oracle.marginal_transitions, jnp.float32)
    v = jnp.asarray(oracle.v, jnp.float32)
    n, num_states, _ = true.shape
    scale = jnp.std(true, axis=(1, 2), keepdims=True)[..., 0]  # (N, 1)
    scale = jnp.where(scale > 0, scale, 1.0)
    cands: dict[str, list] = {"true": [true]}
    cands["true + V_E shaping"] = [_shape(true, trans, gamma, v, terminal)]
    cands["true + 10 V_E shaping"] = [_shape(true, trans, gamma, 10 * v, terminal)]
    k_shape, k_rand, k_critic = jax.random.split(key, 3)
    for i, c in enumerate(shaping_scales):
        ks = jax.random.split(jax.random.fold_in(k_shape, i), draws)
        cands[f"true + random shaping x{c:g}"] = [
            _shape(true, trans, gamma, c * scale * jax.random.normal(k, (n, num_states)), terminal)
            for k in ks]
    policy = jnp.asarray(oracle.policy, jnp.float32)
    cands["alpha log pi_E"] = [alpha * jnp.log(jnp.maximum(policy, 1e-30))]
    cands["random reward"] = [jax.random.normal(k, true.shape) for k in
                              jax.random.split(k_rand, draws)]
    if random_critic is not None:
        cands["random critic"] = [random_critic(k) for k in jax.random.split(k_critic, draws)]
    return calibrate(tabular_metrics(oracle, gamma, terminal), cands)


def format_calibration(table: Mapping[str, MetricCalibration]) -> str:
    """A plain-text table: one row per candidate, one column per metric, then the
    ceiling, floor and verdict of each metric (mean over agents)."""
    names = list(table)
    cands: list[str] = []
    for cal in table.values():
        cands += [c for c in cal.scores if c not in cands]
    width = max(len(c) for c in [*cands, "informative"]) + 2
    cols = [max(len(m), 8) + 2 for m in names]
    lines = ["".ljust(width) + "".join(m.rjust(w) for m, w in zip(names, cols, strict=True))]
    for c in cands:
        row = c.ljust(width)
        for m, w in zip(names, cols, strict=True):
            s = table[m].scores.get(c)
            row += (f"{np.mean(s):.3f}" if s is not None else "-").rjust(w)
        lines.append(row)
    for label, attr in (("ceiling", "ceiling"), ("floor", "floor")):
        lines.append(label.ljust(width) + "".join(
            f"{getattr(table[m], attr):.3f}".rjust(w) for m, w in zip(names, cols, strict=True)))
    verdicts = ["yes" if table[m].informative else "NO" for m in names]
    lines.append("informative".ljust(width) + "".join(
        v.rjust(w) for v, w in zip(verdicts, cols, strict=True)))
    return "\n".join(lines)
