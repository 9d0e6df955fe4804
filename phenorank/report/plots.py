"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Colours are fixed per class so that control, single dose and exploded look the same in every
figure; screen wells are grey, hold-out wells have a black edge.
"""

from __future__ import annotations

import io

import numpy as np

CLASS_COLOURS = {"control": "#1b9e77", "single_dose": "#7570b3", "exploded": "#d95f02", "screen": "#9e9e9e"}
OTHER_COLOURS = ["#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b15928"]


def colour_of(classes: list[str]) -> dict[str, str]:
    extra = iter(OTHER_COLOURS * 10)
    return {c: CLASS_COLOURS.get(c) or next(extra) for c in classes}


def class_order(labels: np.ndarray) -> list[str]:
    known = [c for c in CLASS_COLOURS if c in set(labels)]
    return known + sorted(set(labels) - set(known))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def strip_plot(scores: np.ndarray, labels: np.ndarray, held: np.ndarray, title: str) -> bytes:
    """Scores per class on one horizontal scale (the ranking scale), one row per class."""
    plt = _pyplot()
    classes = class_order(labels)
    colours = colour_of(classes)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(classes) + 1.2))
    rng = np.random.default_rng(0)
    for row, cls in enumerate(classes):
        mask = labels == cls
        y = row + rng.uniform(-0.18, 0.18, mask.sum())
        ax.scatter(scores[mask], y, s=22, color=colours[cls], alpha=0.85, linewidths=0)
        ring = held[mask]
        if ring.any():  # hold-out images: a black ring drawn over their dot
            ax.scatter(scores[mask][ring], y[ring], s=70, facecolors="none", edgecolors="black", linewidths=1.2)
        ax.plot([np.mean(scores[mask])] * 2, [row - 0.3, row + 0.3], color="black", lw=1.5)
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlabel("score (higher = further from the reference)")
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def projection_plot(points: np.ndarray, labels: np.ndarray, title: str, method: str) -> bytes:
    plt = _pyplot()
    classes = class_order(labels)
    colours = colour_of(classes)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for cls in classes:
        mask = labels == cls
        ax.scatter(points[mask, 0], points[mask, 1], s=24, color=colours[cls], label=f"{cls} ({mask.sum()})",
                   alpha=0.85, edgecolors="white", linewidths=0.4)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title(title, fontsize=9, loc="left")
    return _png(fig)


def plate_heatmap(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, labels: np.ndarray, title: str,
                  n_rows: int = 8, n_cols: int = 12) -> bytes:
    """Scores laid out like the plate; empty wells blank; C/S/E marks the reference classes."""
    plt = _pyplot()
    grid = np.full((n_rows, n_cols), np.nan)
    marks = {"control": "C", "single_dose": "S", "exploded": "E"}
    fig, ax = plt.subplots(figsize=(0.55 * n_cols + 1.5, 0.5 * n_rows + 0.8))
    for r, c, s in zip(rows, cols, scores):
        grid[ord(str(r)) - ord("A"), int(c) - 1] = s
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for r, c, label in zip(rows, cols, labels):
        if label in marks:
            ax.text(int(c) - 1, ord(str(r)) - ord("A"), marks[label], ha="center", va="center", fontsize=7,
                    color="white", fontweight="bold")
    ax.set_xticks(range(n_cols), [str(i + 1) for i in range(n_cols)], fontsize=7)
    ax.set_yticks(range(n_rows), [chr(ord("A") + i) for i in range(n_rows)], fontsize=7)
    fig.colorbar(image, ax=ax, label="score")
    ax.set_title(title, fontsize=9, loc="left")
    return _png(fig)


def treatment_plot(groups: list[dict], title: str,
                   xlabel: str = "mean score of the wells, 95% bootstrap interval") -> bytes:
    """A value per row (mean score per treatment and dose, or any measure) with its 95% interval."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(groups) + 1.2))
    for i, g in enumerate(groups):
        colour = CLASS_COLOURS.get(g["condition"], "#444444")
        if np.isfinite(g["low"]):
            ax.plot([g["low"], g["high"]], [i, i], color=colour, lw=2, alpha=0.6)
        ax.scatter([g["mean"]], [i], color=colour, s=28, zorder=3)
    ax.set_yticks(range(len(groups)), [g["label"] for g in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def robustness_plot(curves: dict[str, dict[str, list[float]]], title: str) -> bytes:
    """Movement of the embeddings against corruption strength (1..5), one panel per corruption,
    one line per embedding."""
    plt = _pyplot()
    kinds = sorted({kind for per_set in curves.values() for kind in per_set})
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds) + 1, 2.8), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for label, per_set in curves.items():
            if kind in per_set:
                ax.plot(range(1, len(per_set[kind]) + 1), per_set[kind], marker="o", ms=3, label=label)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("strength")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("movement (1 = a typical\nother item)")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(title, fontsize=9, x=0.01, y=1.04, ha="left")
    return _png(fig)
