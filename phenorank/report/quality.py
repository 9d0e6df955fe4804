"""Image quality: seed 001's histograms of every image's focus and intensity, per layer (channel
or focal plane) with one colour per plate, the flagged images marked beneath, and the list of
flagged files with the reason; and each preprocessed crop set's images before and after its
preprocessing."""

from __future__ import annotations

import numpy as np

from . import plots
from .page import figure, table

MEASURES = (("focus_slope", "focus: log-log power spectrum slope", "blurred"),
            ("median", "median intensity", "intensity_outlier"),
            ("percent_maximal", "% of pixels at the maximum", "saturated"))
MAX_LAYERS = 5


def histogram_figure(rows: list[dict], flags: dict[str, dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    layers = sorted({int(r["layer"]) for r in rows})[:MAX_LAYERS]
    plates = sorted({str(r["plate"]) for r in rows})
    colours = plots.colour_of(plates)
    fig, axes = plt.subplots(len(MEASURES), len(layers), figsize=(2.9 * len(layers) + 0.6, 2.3 * len(MEASURES)),
                             squeeze=False)
    for i, (key, label, flag) in enumerate(MEASURES):
        flagged = {image for image, f in flags.items() if f[flag]}
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            here = [r for r in rows if int(r["layer"]) == layer and r[key] is not None and np.isfinite(r[key])]
            values = np.array([r[key] for r in here])
            if not len(values):
                ax.set_axis_off()
                continue
            edges = np.histogram_bin_edges(values, bins=min(30, max(5, len(values) // 4)))
            for plate in plates:
                mine = [r[key] for r in here if str(r["plate"]) == plate]
                if mine:
                    ax.hist(mine, bins=edges, histtype="step", color=colours[plate], label=plate, linewidth=1.3)
            marks = [r[key] for r in here if r["image_id"] in flagged]
            if marks:
                ax.plot(marks, np.zeros(len(marks)), "v", color="#c62828", markersize=7, clip_on=False,
                        label="flagged for this measure")
            ax.set_xlabel(label, fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=False)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=9)
            if j == 0:
                ax.set_ylabel("images", fontsize=8)
    legend: dict[str, object] = {}
    for ax in axes.ravel():
        for handle, text in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(text, handle)
    fig.legend(list(legend.values())[:12], list(legend)[:12], loc="upper right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return plots._png(fig)


def quality_sections(store) -> list[str]:
    rows = store.image_statistics()
    if not rows:
        return []
    flags = {f["image_id"]: f for f in store.image_flag_rows()}
    flagged = {image for image, f in flags.items() if f["flagged"]}
    paths = {r["image_id"]: r["path"] for r in rows}
    n_images = len(paths)
    if flags:
        status = (f"{len(flagged)} of {n_images} images flagged by <code>phenorank qc-images</code> (red marks); "
                  "evaluators leave them out with <code>-p EVALUATOR.where=qc_flagged!=true</code>.")
    else:
        status = "No flags drawn yet: <code>phenorank qc-images</code> flags blurred, saturated and outlying images."
    part = ("<h2>Image quality</h2><p class=note>Seed 001's artifact checks, on the full-resolution files at ingest: "
            "focus as the slope of the radially summed log-log power spectrum (more negative = blurrier), the "
            "median intensity and the share of pixels at the image's maximum (clipping), one histogram per layer "
            f"and a colour per plate. {status}</p>")
    part += figure(histogram_figure(rows, flags), "histograms of focus and intensity per layer and plate")
    if flagged:
        part += table(["file", "plate", "blurred", "saturated", "intensity outlier", "why"],
                      [(paths.get(f["image_id"]), f["plate"], "yes" if f["blurred"] else "",
                        "yes" if f["saturated"] else "", "yes" if f["intensity_outlier"] else "", f["reasons"])
                       for f in flags.values() if f["flagged"]], limit=30)
    return [part]


def before_after_figure(before: np.ndarray, after: np.ndarray, names: list[str], title: str) -> bytes:
    """Two rows of the same crops, plain and preprocessed, each stretched to its own 1-99 % range
    (a z-score or a background subtraction moves the levels; the picture is what is compared)."""
    plt = plots._pyplot()
    fig, axes = plt.subplots(2, len(names), figsize=(1.7 * len(names) + 0.8, 3.7), squeeze=False)
    for j, name in enumerate(names):
        pair = [np.asarray(x[j], np.float64).mean(axis=0) for x in (before, after)]
        for i, (gray, row) in enumerate(zip(pair, ("before", "after"))):
            low, high = np.percentile(gray, [1, 99])
            ax = axes[i][j]
            ax.imshow(np.clip((gray - low) / (high - low or 1), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row, fontsize=8)
            if i == 0:
                ax.set_title(name, fontsize=6)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return plots._png(fig)


def preprocessing_sections(store, shown: int = 5) -> list[str]:
    sets = store.crop_sets("image")
    figures = []
    for chained in (s for s in sets if s["params"].get("chain")):
        size = chained["params"].get("size")
        plain = next((s for s in sets if not s["params"].get("chain") and s["params"].get("size") == size
                      and s["params"].get("stack") == chained["params"].get("stack")), None)
        if plain is None:
            continue
        common = sorted(set(store.crop_ids(chained["preprocess_key"])) & set(store.crop_ids(plain["preprocess_key"])))
        ids = common[:: max(1, len(common) // shown)][:shown]
        if not ids:
            continue
        before, after = store.load_crops(ids, plain["preprocess_key"]), store.load_crops(ids, chained["preprocess_key"])
        paths = store.load_samples(ids)["path"].astype(str)
        steps = " -> ".join(p["name"] for p in chained["params"].get("preprocess", []))
        title = f"crop set {chained['preprocess_key']}: {steps} (before: crop set {plain['preprocess_key']})"
        figures.append(figure(before_after_figure(before, after, [p.rsplit('/', 1)[-1] for p in paths], title),
                              title))
    if not figures:
        return []
    return ["<h2>Preprocessing: before and after</h2><p class=note>The same images as crops of the plain crop set "
            "(top) and of the preprocessed one (bottom), each on its own gray scale: what the chain of "
            "<code>ingest --preprocess</code> changed.</p>" + "".join(figures)]
