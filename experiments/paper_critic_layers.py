"""Where the paper critic's update spends its time on a CPU: its layers alone.

Times the ``gems-paper`` critic's two convolutions and its first dense layer at
the shapes of one batch-256 MAMQL update (``mairl.bench.paper_critic_layer_cases``:
2 agents, 1,024 maps per agent, vmapped over the agents), forward and with the
gradients an update takes, for each way of computing a convolution, each as a
fraction of the float32 matmul peak sampled right after it.

XLA's CPU options apply as usual, so a flag's effect is measured by running the
script under it, e.g. ``XLA_FLAGS=--xla_cpu_use_onednn=true``.

Usage (nothing else running on the machine)::

    .venv/bin/python experiments/paper_critic_layers.py
    .venv/bin/python experiments/paper_critic_layers.py --samples 512 --repeats 3
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import tyro

from mairl.bench import make_matmul_peak, paper_critic_layer_cases
from mairl.utils import machine


@dataclass(frozen=True)
class Args:
    """The paper critic's layers against the matmul peak.

    Attributes:
        samples: maps per agent through each layer (1,024: ``s`` and ``s'`` of
            a batch of 256 online, which also passes the policy's samples).
        agents: agents, each with its own weights (vmapped).
        repeats: timed calls of each program; the fastest is reported.
    """

    samples: int = 1024
    agents: int = 2
    repeats: int = 5


def main(args: Args) -> None:
    print(f"machine: {machine()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    rows = paper_critic_layer_cases(make_matmul_peak(), agents=args.agents,
                                    samples=args.samples, repeats=args.repeats)
    print(f"{'layer':20s} {'implementation':15s} {'forward':>10s} {'of peak':>8s} "
          f"{'training':>10s} {'of peak':>8s} {'max diff':>9s}")
    for r in rows:
        print(f"{r['layer']:20s} {r['impl']:15s} {r['forward_s'] * 1e3:8.1f} ms "
              f"{r['forward_fraction']:8.2f} {r['training_s'] * 1e3:8.1f} ms "
              f"{r['training_fraction']:8.2f} {r['max_abs_diff']:9.1e}")
    peaks = {r["layer"]: r["peak"] for r in rows}
    print("matmul peak sampled after each layer: "
          + ", ".join(f"{p / 1e9:.0f}" for p in peaks.values()) + " GFLOP/s")


if __name__ == "__main__":
    main(tyro.cli(Args))
