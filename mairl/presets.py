"""The MAMQL paper's settings per domain, as one named preset per domain.

Haynam et al. 2025 ("Multi-Agent Marginal Q-Learning from Demonstrations")
train every learner with Adam at step 1e-3, minibatches of 256 transitions,
discount 0.99 and a replay capacity of 16,600 transitions, with one critic
network per domain:

- **Gems** (``gems-paper``): conv 5->64 kernel 5, conv 64->64 kernel 3 (valid,
  ReLU, dropout 0.2 after each convolution), dense 1024, 1024 (ELU), linear
  output; an L2 penalty of 1e-5 on the parameters. The critic reads the global
  ``(channel, x, y)`` map (``EnvConfig.view = "global"``).
- **Overcooked** (``overcooked-paper``): an MLP 2048, 4096, 2048 (ELU) on the
  flattened observation. The authors' code puts dropout 0.5 after each hidden
  layer; whether their reported runs used it the paper does not say, so the
  preset leaves it at ``overcooked_dropout`` (0 by default, stated).
- **Intersection** (``intersection-paper``): an MLP 256, 256 (ELU).

What could not be determined from the paper and is a choice of this library,
stated where the reproduction reports its rows: the temperature (``alpha = 1``,
the library's default; the authors' configuration files use other values per
domain), the environments stepped per update by online learners
(``num_envs``), the L2 weight outside Gems (0), Overcooked's dropout (above),
and the settings of the baselines' own parts (MA-GAIL's and MA-AIRL's
discriminator step, ML-IRL's reward step: the library's defaults, with the
paper's critic, step size and batch for their policy step). The authors'
published configuration files differ from the paper's text in places (e.g.
Gems: batch 128, step 4e-4, gamma 0.95, capacity 1,660; Overcooked: batch 16,
step 1e-4; intersection: batch 1024); the preset follows the paper.

:func:`paper_config` builds any registered algorithm's config from a domain's
preset: the preset's values go to the fields that algorithm has (behaviour
cloning has no replay, soft-Q based learners no dropout), ``overrides`` last.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from mairl.algos import ALGOS

Domain = Literal["gems", "overcooked", "intersection"]
DOMAINS: tuple[str, ...] = ("gems", "overcooked", "intersection")


@dataclass(frozen=True)
class PaperSettings:
    """One domain's paper hyperparameters.

    Attributes:
        critic: network preset (``mairl.networks.make_critic``).
        dropout: training-time dropout of the critic (learners that support it).
        l2: weight of the squared-parameter penalty.
        learning_rate: Adam step size.
        batch_size: minibatch of expert (and policy) transitions per update.
        gamma: discount.
        buffer_size: replay capacity of the online learners, in transitions.
        view: what each critic reads (``mairl.runs.EnvConfig.view``).
    """

    critic: str
    dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 256
    gamma: float = 0.99
    buffer_size: int = 16_600
    view: Literal["agent", "global"] = "global"

    def fields_for(self, algo: str) -> dict[str, Any]:
        """The preset's values for the fields algorithm ``algo``'s config has
        (``view`` is the run's, not the algorithm's)."""
        names = {f.name for f in dataclasses.fields(ALGOS[algo].config)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "view"}
        return {k: v for k, v in values.items() if k in names}


#: The paper's settings per domain (module docstring).
PAPER: dict[str, PaperSettings] = {
    "gems": PaperSettings(critic="gems-paper", dropout=0.2, l2=1e-5),
    "overcooked": PaperSettings(critic="overcooked-paper"),
    "intersection": PaperSettings(critic="intersection-paper"),
}


def paper_settings(domain: str) -> PaperSettings:
    """The preset of ``domain`` (one of :data:`DOMAINS`)."""
    if domain not in PAPER:
        raise ValueError(f"domain: expected one of {DOMAINS}, got {domain!r}")
    return PAPER[domain]


def paper_config(algo: str, domain: str, **overrides: Any) -> Any:
    """Algorithm ``algo``'s config (``mairl.algos.ALGOS``) with ``domain``'s paper
    settings, then ``overrides`` (fields of that config; an unknown one is an
    error naming it)."""
    if algo not in ALGOS:
        raise ValueError(f"algo: expected one of {sorted(ALGOS)}, got {algo!r}")
    cls = ALGOS[algo].config
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"overrides: {cls.__name__} has no fields {unknown}")
    return cls(**{**paper_settings(domain).fields_for(algo), **overrides})


__all__ = ["DOMAINS", "PAPER", "Domain", "PaperSettings", "paper_config", "paper_settings"]
