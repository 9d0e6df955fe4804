"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Colours are fixed per class so that control, single dose and exploded look the same in every
figure; screen wells are grey, hold-out wells have a black edge.
"""

from __future__ import annotations

import io

import numpy as np

CLASS_COLOURS = {"control": "#1b9e77", "single_dose": "#7570b3", "exploded": "#d95f02", "screen": "#9e9e9e"}
TIME_WORDS = {"", "t", "time", "day", "d", "h", "hour", "frame", "week", "w", "timepoint"}
TIME_UNITS = {"", "h", "min", "s", "d", "days", "hours"}
OTHER_COLOURS = ["#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b15928"]


def time_order(classes: list[str]) -> list[str] | None:
    """Classes that are time points ("t00", "day 7", "3 h", "10"): in time order; otherwise None."""
    import re

    found = [re.fullmatch(r"\s*([A-Za-z_ -]*?)\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(c)) for c in classes]
    if len(classes) < 3 or not all(found):
        return None
    words = {(m.group(1).strip(" _-").lower(), m.group(3).lower()) for m in found}
    if len(words) > 1 or not ({w for w, _ in words} <= TIME_WORDS and {u for _, u in words} <= TIME_UNITS):
        return None
    return [c for _, c in sorted(zip((float(m.group(2)) for m in found), classes))]


def colour_of(classes: list[str]) -> dict[str, str]:
    """A distinct colour per class, for any number of classes: the fixed ones for the plate's
    reference classes, then the qualitative palettes, then evenly spaced hues; time points (t00,
    t01, ...) on a sequential map, early dark to late bright."""
    import matplotlib

    in_time = time_order(list(classes))
    if in_time:
        cmap = matplotlib.colormaps["viridis"]
        return {c: matplotlib.colors.to_hex(cmap(i / (len(in_time) - 1))) for i, c in enumerate(in_time)}
    palette = list(OTHER_COLOURS) + [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors]
    others = [c for c in classes if c not in CLASS_COLOURS]
    if len(others) > len(palette):
        hues = matplotlib.colormaps["hsv"]
        palette = [matplotlib.colors.to_hex(hues(i / len(others))) for i in range(len(others))]
    extra = iter(palette)
    return {c: CLASS_COLOURS.get(c) or next(extra) for c in classes}


def thumbnails(images: np.ndarray, labels: list[str], title: str, columns: int = 8) -> bytes:
    """Crops side by side, each with its label (well, treatment, score): the mean of its channels
    or focal layers in gray, contrast-stretched per crop."""
    plt = _pyplot()
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.35 * columns, 1.55 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels):
        gray = np.asarray(image, np.float64).mean(axis=0)
        low, high = np.percentile(gray, [1, 99])
        ax.imshow(np.clip((gray - low) / (high - low or 1), 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=6)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return _png(fig)


def class_order(labels: np.ndarray) -> list[str]:
    in_time = time_order(sorted(set(labels)))
    if in_time:
        return in_time
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


def _panel_grid(fig, axes, used: int, ylabel: str, xlabel: str) -> bytes:
    """A grid of panels finished: the unused ones hidden, axis labels on the outer edge."""
    for ax in axes.flat[used:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=7)
    fig.tight_layout()
    return _png(fig)


def dose_response_grid(panels: list[dict], ylabel: str, columns: int = 3) -> bytes:
    """One panel per treatment: the wells (dots) against log concentration, the fitted Hill curve,
    the EC50 with its 95% interval (shaded), the control's mean (dashed) and the fit's status.
    A panel: treatment, dose, y, status, and for a fit bottom/top/ec50/hill_slope/ec50_low/high."""
    from ..analysis.dose_response import hill

    plt = _pyplot()
    n_rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.3 * columns, 2.6 * n_rows), squeeze=False, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        dose = np.asarray(panel["dose"], np.float64)
        ax.scatter(dose, panel["y"], s=14, color="#444444", alpha=0.8, zorder=3)
        if panel.get("control") is not None:
            ax.axhline(panel["control"], color=CLASS_COLOURS["control"], ls="--", lw=1)
        if panel.get("positive") is not None:
            ax.axhline(panel["positive"], color=CLASS_COLOURS["exploded"], ls=":", lw=1)
        if panel.get("top") is not None and panel.get("hill_slope") is not None:
            grid = np.logspace(np.log10(dose.min()), np.log10(dose.max()), 200)
            log_ec50 = np.log10(panel["ec50"]) if panel.get("ec50") else np.log10(dose.max()) + 1
            colour = "#1f78b4" if panel["status"] == "ok" else "#999999"
            ax.plot(grid, hill(np.log10(grid), panel["bottom"], panel["top"], log_ec50, panel["hill_slope"]),
                    color=colour, lw=1.6)
        if panel.get("ec50"):
            low, high = panel.get("ec50_low") or dose.min(), panel.get("ec50_high") or dose.max()
            ax.axvspan(low, high, color="#1f78b4", alpha=0.12)
            ax.axvline(panel["ec50"], color="#1f78b4", lw=1)
        ax.set_xscale("log")
        ec50 = f"EC50 {panel['ec50']:.3g}" if panel.get("ec50") else panel["status"]
        ax.set_title(f"{panel['treatment']}: {ec50}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    return _panel_grid(fig, axes, len(panels), ylabel, "concentration")


def growth_plot(curves: dict[str, dict[float, tuple[list[int], list[float]]]], control: tuple[list[int], list[float]],
                ylabel: str, columns: int = 3) -> bytes:
    """One panel per drug: the mean size of its wells over the days, one line per dose (darker =
    higher), the control's line dashed."""
    plt = _pyplot()
    names = sorted(curves)
    n_rows = -(-len(names) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.3 * columns, 2.5 * n_rows), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis_r")
    for ax, name in zip(axes.flat, names):
        doses = sorted(curves[name])
        for i, dose in enumerate(doses):
            days, sizes = curves[name][dose]
            ax.plot(days, sizes, marker="o", ms=3, color=cmap(0.15 + 0.85 * i / max(1, len(doses) - 1)),
                    label=f"{dose:g}")
        ax.plot(*control, color=CLASS_COLOURS["control"], ls="--", lw=1.5, label="control")
        ax.set_xticks(control[0])
        ax.set_title(name, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=5.5, ncol=2, frameon=False)
    return _panel_grid(fig, axes, len(names), ylabel, "day")


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


def time_course_plot(times: np.ndarray, values: np.ndarray, places: np.ndarray, title: str, ylabel: str,
                     xlabel: str = "time") -> bytes:
    """One line per place over time (distinct colours up to 20 places, thin grey beyond), and
    the median over places with its interquartile band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    names = sorted(set(places), key=str)
    colours = colour_of([str(n) for n in names]) if len(names) <= 20 else {}
    for name in names:
        on = places == name
        order = np.argsort(times[on], kind="stable")
        ax.plot(times[on][order], values[on][order], lw=0.9, alpha=0.75 if colours else 0.3,
                color=colours.get(str(name), "#999999"))
    steps = np.unique(times)
    per_step = [values[times == t] for t in steps]
    ax.fill_between(steps, [np.percentile(v, 25) for v in per_step], [np.percentile(v, 75) for v in per_step],
                    color="black", alpha=0.12, lw=0)
    ax.plot(steps, [np.median(v) for v in per_step], color="black", lw=2.2, label="median of places (IQR band)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False, loc="best")
    ax.set_title(f"{title}\n{len(names)} places, one line each", fontsize=9, loc="left")
    ax.grid(alpha=0.25)
    return _png(fig)


def spatial_map(ys: np.ndarray, xs: np.ndarray, values: np.ndarray, times: np.ndarray, title: str, value: str,
                columns: int = 5) -> bytes:
    """Where in the field of view the readout is high: one panel per time point, each place a
    square at its position, one colour scale for all panels."""
    plt = _pyplot()
    steps = np.unique(times)
    n_rows = -(-len(steps) // columns)
    y_grid, x_grid = np.unique(ys), np.unique(xs)
    aspect = (np.ptp(y_grid) + 1) / (np.ptp(x_grid) + 1)  # the frame's height over its width
    fig, axes = plt.subplots(n_rows, min(columns, len(steps)), figsize=(
        2.3 * min(columns, len(steps)) + 1, (2.3 * min(aspect, 1.5) + 0.5) * n_rows + 0.4), squeeze=False)
    low, high = np.nanpercentile(values, [1, 99])
    image = None
    for ax, step in zip(axes.flat, steps):
        grid = np.full((len(y_grid), len(x_grid)), np.nan)
        on = times == step
        grid[np.searchsorted(y_grid, ys[on]), np.searchsorted(x_grid, xs[on])] = values[on]
        image = ax.imshow(grid, cmap="magma", vmin=low, vmax=high, aspect="equal",
                          extent=(x_grid[0], x_grid[-1] + (x_grid[1] - x_grid[0] if len(x_grid) > 1 else 1),
                                  y_grid[-1] + (y_grid[1] - y_grid[0] if len(y_grid) > 1 else 1), y_grid[0]))
        ax.set_title(f"time {step:g}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(steps):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, label=value, shrink=0.8)
    fig.suptitle(f"{title} (x, y in pixels of the frame)", fontsize=9, x=0.01, ha="left")
    return _png(fig)
