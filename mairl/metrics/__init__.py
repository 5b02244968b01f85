"""Metrics of multi-agent inverse RL that respect what IRL can and cannot recover.

Reward recovery (:mod:`mairl.metrics.reward`), per agent, agent axis first:

- :func:`pearson`, :func:`spearman`: plain (weighted) correlations over all
  ``(s, a)``; they penalize potential shaping, which no IRL method can undo.
- :func:`shaping_aware_correlation` / :func:`shaping_aware_correlation_per_agent`:
  exact on tabular games, correlation after projecting out potential shaping
  ``gamma E[Phi(s')] - Phi(s)`` and constants under a coverage weighting.
- :func:`shaping_aware_correlation_sampled`: the same on sampled transitions with
  a linear potential over state features (an approximation for stochastic
  dynamics).
- :func:`epic_distance`: EPIC (Gleave et al. 2020), invariant to shaping of
  rewards over transitions ``R(s, a, s')``; :func:`epic_canonicalize`.
- :func:`shaping_residual`, :func:`weighted_ranks`: building blocks.

Calibration (:mod:`mairl.metrics.calibration`): what the true reward, its
shapings and random rewards score under each metric, and whether the metric is
informative (:func:`calibrate_tabular`, :func:`calibrate`,
:func:`format_calibration`, :func:`tabular_metrics`). Only informative metrics
are reported as reward recovery.

Behaviour (:mod:`mairl.metrics.behaviour`):

- :func:`policy_kl`: ``E_{d_E}[KL(pi_E || pi)]`` where the expert policy is known;
  :func:`heldout_kl`: the same on sampled (held-out) states.
- :func:`action_accuracy`, :func:`log_likelihood`: on held-out demonstrations.

Returns (:mod:`mairl.metrics.returns`):

- :func:`evaluate_returns` / :func:`make_evaluate_returns`: per-episode true
  returns ``(E, N)`` of a policy on vmapped, jitted environments.
- :func:`episode_info_sums`: per-episode sums of ``info`` fields (Overcooked
  deliveries, sparse and shaped returns) over fixed-length episodes.
- :func:`mean_confidence_interval`: mean and Student-t interval per agent;
  :func:`student_t_quantile`.
- :func:`imitation_mse`: the MAMQL reference code's "imitation loss".
"""

from mairl.metrics.behaviour import action_accuracy, heldout_kl, log_likelihood, policy_kl
from mairl.metrics.calibration import (
    MetricCalibration,
    calibrate,
    calibrate_tabular,
    format_calibration,
    tabular_metrics,
)
from mairl.metrics.returns import (
    ReturnSummary,
    episode_info_sums,
    evaluate_returns,
    imitation_mse,
    make_evaluate_returns,
    mean_confidence_interval,
    mean_half_width,
    student_t_quantile,
)
from mairl.metrics.reward import (
    epic_canonicalize,
    epic_distance,
    pearson,
    shaping_aware_correlation,
    shaping_aware_correlation_per_agent,
    shaping_aware_correlation_sampled,
    shaping_residual,
    spearman,
    weighted_ranks,
)

__all__ = [
    "MetricCalibration",
    "ReturnSummary",
    "calibrate",
    "calibrate_tabular",
    "format_calibration",
    "heldout_kl",
    "tabular_metrics",
    "action_accuracy",
    "epic_canonicalize",
    "epic_distance",
    "episode_info_sums",
    "evaluate_returns",
    "imitation_mse",
    "log_likelihood",
    "make_evaluate_returns",
    "mean_confidence_interval",
    "mean_half_width",
    "pearson",
    "policy_kl",
    "shaping_aware_correlation",
    "shaping_aware_correlation_per_agent",
    "shaping_aware_correlation_sampled",
    "shaping_residual",
    "spearman",
    "student_t_quantile",
    "weighted_ranks",
]
