"""Every figure the library writes explains itself: a title, both axes labelled
(colour bars too), and a legend naming every marker and line style drawn.

The figures are caught at ``savefig`` (nothing is written) and inspected.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

import envs
from mairl.algos import MAMQLConfig, make_mamql
from mairl.plots import plot_curves, plot_reward_heatmap
from mairl.runs import example_batch
from mairl.solvers import soft_value_iteration
from mairl.sweep import plot_sweep


@pytest.fixture
def figures(monkeypatch):
    """The figures passed to ``savefig``, in order."""
    caught: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: caught.append(fig))
    return caught


def problems(fig: Figure) -> list[str]:
    """What a reader would miss in ``fig``."""
    found = []
    if not (fig._suptitle is not None and fig._suptitle.get_text()):
        found.append("figure: no title")
    for k, ax in enumerate(a for a in fig.axes if a.get_visible() and a.axison):
        where = f"axes {k} ({ax.get_title()!r})"
        if hasattr(ax, "_colorbar"):
            if not (ax.get_ylabel() or ax.get_xlabel()):
                found.append(f"{where}: colour bar without a label")
            continue
        if not ax.get_title():
            found.append(f"{where}: no title")
        if not ax.get_xlabel():
            found.append(f"{where}: no x label")
        if not ax.get_ylabel():
            found.append(f"{where}: no y label")
        drawn = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
        lines = [ln for ln in ax.lines if ln.get_visible()]
        if drawn or len(lines) > 1 or any(ln.get_marker() not in ("None", None, "")
                                          for ln in lines):
            legend = ax.get_legend()
            if legend is None:
                found.append(f"{where}: markers or several lines but no legend")
                continue
            texts = {t.get_text() for t in legend.get_texts()}
            for c in drawn:
                if c.get_label().startswith("_") or c.get_label() not in texts:
                    found.append(f"{where}: marker {c.get_label()!r} not in the legend")
    return found


def test_learning_curves_explain_themselves(figures):
    seeds, chunks = 3, 4
    curves = {"return": np.ones((seeds, chunks, 2)), "policy_kl": np.zeros((seeds, chunks, 2)),
              "train/loss": np.zeros((seeds, chunks, 2)), "train/other": np.zeros((seeds, chunks))}
    plot_curves(None, curves, np.arange(1, chunks + 1) * 10, ("agent_0", "agent_1"))
    (fig,) = figures
    assert problems(fig) == []
    legend = fig.axes[0].get_legend()
    assert {"agent_0", "agent_1", "mean over 3 seeds", "one seed"} <= {
        t.get_text() for t in legend.get_texts()}


def test_tabular_reward_heatmap_explains_itself(figures):
    game = envs.make("random-game")
    oracle = soft_value_iteration(game, alpha=1.0, gamma=0.9)
    algo = make_mamql(MAMQLConfig(mode="value_expert", critic="tabular", gamma=0.9),
                      num_agents=2, obs_shape=game.obs_shape, num_actions=game.num_actions)
    params = algo.init(jax.random.key(0), example_batch(algo, game)).params
    assert plot_reward_heatmap(None, algo, params, game, oracle=oracle)
    assert problems(figures[0]) == []


def test_gems_reward_heatmap_marks_and_explains_gems_and_agents(figures):
    env = envs.make("gems", size=6)
    obs, _ = env.reset(jax.random.key(1))
    algo = make_mamql(MAMQLConfig(mode="value_expert", hidden=(8,)), num_agents=2,
                      obs_shape=env.obs_shape, num_actions=env.num_actions)
    params = algo.init(jax.random.key(0), example_batch(algo, env)).params
    heldout = SimpleNamespace(obs=np.asarray(obs)[:, None])  # (agent, batch=1, *obs_shape)
    assert plot_reward_heatmap(None, algo, params, env, heldout=heldout)
    (fig,) = figures
    assert problems(fig) == []
    maps = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    texts = {t.get_text() for t in maps[0].get_legend().get_texts()}
    assert {"blue gem (agent_0's)", "red gem (agent_1's)", "purple gem (shared)",
            "agent_1 (other agent)"} <= texts
    # every agent is drawn where the held-out map has it
    other = next(c for c in maps[0].collections if c.get_label() == "agent_1 (other agent)")
    x, y = np.nonzero(np.asarray(obs)[0, 1])
    assert np.array_equal(other.get_offsets(), np.stack([x, y], axis=1))


def test_sweep_summary_explains_itself(figures):
    table = [{"point": f"00{k}_learning_rate={lr}", "learning_rate": lr, "return": 1.0 + k,
              "return_ci95": 0.1, "policy_kl": 0.01} for k, lr in enumerate((1e-3, 1e-2))]
    plot_sweep(None, table, ["learning_rate"])
    assert problems(figures[0]) == []
