"""Plots of a run: learning curves and recovered-reward heatmaps (matplotlib, Agg).

Every figure explains itself without the code: a title, axes that name their
quantity and unit, and a legend for every line style and marker drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Axis label of each curve: the quantity and its unit.
CURVE_LABELS = {
    "return": "true return per episode (reward units)",
    "policy_kl": "KL(expert || learned) (nats)",
    "heldout_kl": "held-out KL(expert || learned) (nats)",
    "reward_shaping_corr": "shaping-aware correlation (-1 to 1)",
    "reward_pearson": "Pearson correlation (-1 to 1)",
    "reward_spearman": "Spearman correlation (-1 to 1)",
    "reward_epic": "EPIC distance (0 best, 1 worst)",
    "action_accuracy": "greedy action = expert's (fraction)",
    "imitation_mse": "imitation MSE (reward units squared)",
    "train/loss": "training loss (objective value)",
}

#: Names of the object channels of the Gems map, after the agents' channels.
GEMS_OBJECTS = (("blue gem (agent_0's)", "o", "tab:blue"),
                ("red gem (agent_1's)", "s", "tab:red"),
                ("purple gem (shared)", "*", "tab:purple"))


def curve_label(name: str) -> str:
    """The y-axis label of the curve ``name``: its quantity and unit."""
    return CURVE_LABELS.get(name, name.replace("train/", "training ").replace("_", " "))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(path: Path, curves: dict, updates: np.ndarray, agents, title: str = "") -> None:
    """One panel per evaluation metric against updates: the mean over seeds (thick
    line) and each seed (thin line), one colour per agent, explained in each
    panel's legend."""
    from matplotlib.lines import Line2D

    plt = _plt()
    names = [k for k in sorted(curves) if not k.startswith("train/")] + ["train/loss"]
    names = [k for k in names if k in curves]
    if not names:
        return
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = np.asarray(curves[name])  # (seed, chunk, agent)
        if values.ndim == 2:
            values = values[..., None]
        for i in range(values.shape[2]):
            label = agents[i] if values.shape[2] == len(agents) else f"output {i}"
            line, = ax.plot(updates, values[:, :, i].mean(0), lw=2, label=label)
            for s in range(values.shape[0]):
                ax.plot(updates, values[s, :, i], color=line.get_color(), alpha=0.25, lw=0.8)
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="k", lw=2, label=f"mean over {values.shape[0]} seeds"),
                    Line2D([], [], color="k", lw=0.8, alpha=0.4, label="one seed")]
        ax.legend(handles=handles, fontsize=7)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("updates (gradient steps per seed)")
        ax.set_ylabel(curve_label(name), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title or "learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reward_heatmap(path: Path, algo, params, env, heldout=None, oracle=None) -> bool:
    """Recovered reward next to the true one where the game has a picture for it.

    Tabular games: ``r_i(s, a)`` as a state x action image per agent, recovered
    (expected form) and true marginal reward. Map games ``(channel, x, y)`` with
    agents in the first channels (Gems): agent ``i`` placed on every cell of a
    held-out state, ``r_i`` averaged over its moves, where the next state is the
    map with only agent ``i`` moved (gems and the other agent left as they are).
    Returns whether a plot was written.
    """
    import jax
    import jax.numpy as jnp

    from mairl.algos.common import soft_value
    from mairl.evaluation import tabular_reward

    plt = _plt()
    n = env.num_agents
    if oracle is not None:
        orc = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), oracle)
        _, r_hat = tabular_reward(algo, params, orc, n, getattr(env, "terminal", None))
        fig, axes = plt.subplots(n, 2, figsize=(6, 2.2 + 0.12 * r_hat.shape[1] * n),
                                 squeeze=False)
        for i in range(n):
            for j, (img, label) in enumerate([(r_hat[i], "recovered"),
                                              (orc.marginal_rewards[i], "true")]):
                im = axes[i, j].imshow(np.asarray(img), aspect="auto", cmap="viridis")
                axes[i, j].set_title(f"{env.agents[i]}: {label} r(s, a)", fontsize=9)
                axes[i, j].set_xlabel(f"action a_{i} (index)")
                axes[i, j].set_ylabel("state s (index)")
                fig.colorbar(im, ax=axes[i, j]).set_label("reward per step", fontsize=8)
        fig.suptitle("recovered reward (Q - gamma E[V(s')]) beside the true marginal reward",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return True
    shape = tuple(env.obs_shape)
    if heldout is None or len(shape) != 3 or shape[0] < n:
        return False
    obs = np.asarray(heldout.obs[0, 0])  # one held-out map (channel, x, y)
    _, nx, ny = shape
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]  # Gems actions 0-3: y+1, x+1, y-1, x-1
    cells = [(x, y) for x in range(nx) for y in range(ny)]
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 5.2), squeeze=False)
    for i in range(n):
        base = np.repeat(obs[None], len(cells), axis=0)
        base[:, i] = 0.0
        nxt = np.repeat(base[:, None], len(moves), axis=1)  # (cell, move, *shape)
        for k, (x, y) in enumerate(cells):
            base[k, i, x, y] = 1.0
            for a, (dx, dy) in enumerate(moves):
                nxt[k, a, i, min(max(x + dx, 0), nx - 1), min(max(y + dy, 0), ny - 1)] = 1.0
        both = jnp.asarray(np.concatenate([base, nxt.reshape(-1, *shape)]))
        if algo.reward is not None:  # a learned reward of its own: r_i(s, a_i)
            r_all = jax.jit(algo.reward)(params, jnp.broadcast_to(base, (n, *base.shape)))[i]
            r = np.asarray(r_all[:, : len(moves)])
        else:
            q_both = jax.jit(algo.q_values)(params, jnp.broadcast_to(both, (n, *both.shape)))[i]
            q, q_next = q_both[: len(cells)], q_both[len(cells):]
            v_next = soft_value(q_next, algo.alpha).reshape(len(cells), len(moves))
            r = np.asarray(q[:, : len(moves)] - algo.gamma * v_next)
        grid = r.mean(axis=1).reshape(nx, ny)
        ax = axes[0, i]
        im = ax.imshow(grid.T, origin="lower", cmap="viridis")
        objects = (GEMS_OBJECTS if shape[0] - n == len(GEMS_OBJECTS)
                   else [(f"object channel {c}", "o", "w") for c in range(n, shape[0])])
        for c, (label, marker, colour) in enumerate(objects, start=n):
            gx, gy = np.nonzero(np.asarray(obs[c]))
            ax.scatter(gx, gy, marker=marker, c=colour, edgecolors="w", s=45, label=label)
        for j in range(n):
            ax_, ay_ = np.nonzero(np.asarray(obs[j]))
            who = "its cell in the held-out state" if j == i else "other agent"
            ax.scatter(ax_, ay_, marker="^" if j != i else "D", c="w", edgecolors="k", s=55,
                       label=f"{env.agents[j]} ({who})")
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
                  frameon=False)
        ax.set_title(f"{env.agents[i]}: recovered reward r(s, a) with the agent at (x, y)",
                     fontsize=9)
        ax.set_xlabel("x (cell)")
        ax.set_ylabel("y (cell)")
        fig.colorbar(im, ax=ax).set_label("mean over its 4 moves of r (reward per step)",
                                          fontsize=8)
    fig.suptitle("recovered reward on one held-out map: each agent placed on every cell, "
                 "gems and the other agent where they are", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_reproduction(results, directory: Path) -> list[Path]:
    """The figures of ``mairl.reproduce``: written into ``directory``, paths returned.

    - ``return_vs_transitions.png``: per domain, the mean over agents of each
      learner's return against the expert transitions it trained on (error bars:
      the mean over agents of the per-agent 95% half-widths over seeds), the
      expert's return as a dashed line;
    - ``curves_vs_updates.png``: per domain, for the smallest size, each learner's
      return during training and the reference code's imitation loss on held-out
      data, against updates (read from each row's ``curves.csv``).
    """
    from mairl.runs import read_curves

    plt = _plt()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    domains = list(results.rows)
    paths = []

    fig, axes = plt.subplots(1, len(domains), figsize=(4.8 * len(domains), 3.6), squeeze=False)
    for ax, domain in zip(axes.flat, domains, strict=True):
        rows = results.rows[domain]
        for source in dict.fromkeys(r.source for r in rows):
            mine = [r for r in rows if r.source == source]
            for r in mine:
                if r.algo == "expert":
                    ax.axhline(np.mean([m for m, _ in r.returns]), ls="--", c="k", lw=1,
                               label=f"expert ({source})")
            for algo in dict.fromkeys(r.algo for r in mine if r.algo != "expert"):
                pts = sorted((r.expert_transitions, np.mean([m for m, _ in r.returns]),
                              np.nanmean([h for _, h in r.returns]) if len(r.returns) else 0)
                             for r in mine if r.algo == algo)
                x, y, err = (np.asarray(v, np.float64) for v in zip(*pts, strict=True))
                err = np.where(np.isfinite(err), err, 0.0)
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3,
                            label=algo if source == "expert" else f"{algo} ({source})")
        ax.set_xscale("log")
        ax.set_title(domain)
        ax.set_xlabel("expert transitions")
        ax.set_ylabel("return (mean over agents)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(directory / "return_vs_transitions.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, len(domains), figsize=(4.8 * len(domains), 6.4), squeeze=False)
    for col, domain in enumerate(domains):
        rows = [r for r in results.rows[domain] if r.dir is not None and r.source == "expert"]
        if not rows:
            continue
        smallest = min(r.size for r in rows)
        for r in rows:
            if r.size != smallest or not (Path(r.dir) / "curves.csv").is_file():
                continue
            curves, updates = read_curves(Path(r.dir) / "curves.csv", results.agents[domain])
            for row, name in enumerate(("return", "imitation_mse")):
                if name in curves:
                    values = np.asarray(curves[name], np.float64)  # (seed, chunk[, agent])
                    axes[row, col].plot(updates, values.reshape(*values.shape[:2], -1)
                                        .mean(axis=(0, 2)), marker="o", label=r.algo)
        axes[0, col].set_title(f"{domain}: return during training")
        axes[1, col].set_title(f"{domain}: imitation MSE (reference's loss)")
        for row in range(2):
            axes[row, col].set_xlabel("updates")
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(directory / "curves_vs_updates.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
