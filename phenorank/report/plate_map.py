"""Plate maps: a readout laid out like the plate, with every well's state told apart.

A well on the map is one of: scored (coloured by its value; screen wells labelled with their
treatment and dose on plates of up to 96 wells), control / positive (C / E), an image without a
value here (grey, "–"), a file rejected at ingest (hatched, "x"), or empty (white: nothing was
imaged there). The edge ring lies outside the dashed line; a red square marks a QC-flagged
image, a red frame a plate that failed QC.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.plate import PLATE_FORMATS
from ..core.store import Store
from .plots import _png, _pyplot

MARKS = {"control": "C", "single_dose": "S", "exploded": "E"}


def plate_shape(rows, cols) -> tuple[int, int]:
    """(rows, columns) of the smallest standard plate holding these wells."""
    last_row = max((str(r) for r in rows), default="A")
    last_col = max((int(c) for c in cols), default=1)
    for plate in sorted(PLATE_FORMATS.values(), key=lambda p: p.wells):
        if last_row <= plate.last_row and last_col <= plate.cols:
            return plate.rows, plate.cols
    return ord(last_row) - ord("A") + 1, last_col


def well_states(store: Store, plate: str, day, scored_wells: set[str]) -> dict[str, set[str]]:
    """Wells of ``plate`` (on ``day`` when given) that hold an image without a value in this
    readout ("absent") and wells whose file was rejected at ingest ("rejected")."""
    day = None if day is None or day != day else int(day)
    day_filter = "AND day = ?" if day is not None else "AND ? IS NULL"
    imaged = {w for (w,) in store.con.execute(
        f"SELECT DISTINCT well FROM images WHERE plate = ? AND well IS NOT NULL {day_filter}",
        [plate, day]).fetchall()}
    rejected = {w for (w,) in store.con.execute(
        f"SELECT DISTINCT well FROM rejects WHERE plate = ? AND well IS NOT NULL {day_filter}",
        [plate, day]).fetchall()}
    return {"absent": imaged - scored_wells, "rejected": rejected - imaged - scored_wells}


def _short_names(treatments) -> dict[str, str]:
    """Treatment names short enough for a well: their common prefix dropped, four characters
    (the last four when the first four would not tell them apart)."""
    names = sorted({str(t) for t in treatments if t not in (None, "", "None")})
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    rest = [n[len(prefix):] or n for n in names]
    short = [r[:4] for r in rest]
    if len(set(short)) < len(short):
        short = [r[-4:] for r in rest]
    return dict(zip(names, short))


def plate_heatmap(samples, values: np.ndarray, title: str, value: str = "score", states: dict | None = None,
                  flagged: np.ndarray | None = None, failed: bool = False) -> bytes:
    """One plate's map; ``samples``: the plate's wells (row, col, well, condition, treatment,
    concentration columns), ``values``: their readout; ``states``: from :func:`well_states`."""
    plt = _pyplot()
    from matplotlib.patches import Patch, Rectangle

    rows = np.asarray(samples["row"]).astype(str)
    cols = np.asarray(samples["col"]).astype(int)
    states = states or {"absent": set(), "rejected": set()}
    every_row = list(rows) + [w[0] for s in states.values() for w in s]
    every_col = list(cols) + [int(w[1:]) for s in states.values() for w in s]
    n_rows, n_cols = plate_shape(every_row, every_col)
    grid = np.full((n_rows, n_cols), np.nan)
    y, x = np.array([ord(r) - ord("A") for r in rows], int), cols - 1
    grid[y, x] = values
    fig, ax = plt.subplots(figsize=(0.55 * n_cols + 1.7, 0.5 * n_rows + 1.3))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    low, high = image.get_clim()
    labelled = n_rows * n_cols <= 96
    conditions = np.asarray(samples["condition"]).astype(str)
    screen = ~np.isin(conditions, list(MARKS))
    short = _short_names(np.asarray(samples["treatment"])[screen]) if labelled and "treatment" in samples else {}
    for i in range(len(rows)):
        dark = not np.isfinite(values[i]) or (values[i] - low) / ((high - low) or 1) < 0.6
        colour = "white" if dark else "black"
        if conditions[i] in MARKS:
            ax.text(x[i], y[i], MARKS[conditions[i]], ha="center", va="center", fontsize=7, color=colour,
                    fontweight="bold")
        elif short and str(samples["treatment"][i]) in short:
            dose = samples["concentration"][i] if "concentration" in samples else None
            dose = f"\n{float(dose):.2g}" if dose is not None and dose == dose else ""
            ax.text(x[i], y[i], short[str(samples["treatment"][i])] + dose, ha="center", va="center",
                    fontsize=4.5, color=colour, linespacing=0.9)
    for state, (face, hatch, text) in {"absent": ("#d9d9d9", None, "–"), "rejected": ("#fbe3e3", "xxx", "")}.items():
        for well in states.get(state, ()):
            r, c = ord(well[0]) - ord("A"), int(well[1:]) - 1
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=face, hatch=hatch, edgecolor="#c0392b"
                                   if state == "rejected" else "#bbbbbb", lw=0.3))
            if text:
                ax.text(c, r, text, ha="center", va="center", fontsize=7, color="#555555")
    for r, c in zip(y[flagged], x[flagged]) if flagged is not None else ():
        ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor="red", lw=1.8))
    if n_rows > 2 and n_cols > 2:  # the inner wells; the edge ring lies outside
        ax.add_patch(Rectangle((0.5, 0.5), n_cols - 2, n_rows - 2, fill=False, edgecolor="#333333", lw=1,
                               ls=(0, (4, 3))))
    if failed:
        for side in ax.spines.values():
            side.set_edgecolor("red")
            side.set_linewidth(3)
    ax.set_xticks(range(n_cols), [str(i + 1) for i in range(n_cols)], fontsize=7)
    ax.set_yticks(range(n_rows), [chr(ord("A") + i) for i in range(n_rows)], fontsize=7)
    fig.colorbar(image, ax=ax, label=value)
    ax.set_title(title, fontsize=9, loc="left", color="red" if failed else "black")
    handles = [Patch(facecolor="white", edgecolor="#bbbbbb", label="empty"),
               Patch(facecolor="#d9d9d9", edgecolor="#bbbbbb", label="– no value"),
               Patch(facecolor="#fbe3e3", hatch="xxx", edgecolor="#c0392b", label="rejected file"),
               Patch(facecolor="none", edgecolor="#333333", ls="--", label="edge ring outside")]
    if flagged is not None and flagged.any():
        handles.append(Patch(facecolor="none", edgecolor="red", lw=1.8, label="QC flag"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.06), ncol=len(handles), fontsize=6,
              frameon=False, handlelength=1.2, columnspacing=0.8)
    return _png(fig)
