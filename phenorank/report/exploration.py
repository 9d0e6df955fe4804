"""Exploring embeddings without the labels (seed 001): how many clusters (the elbow of the
within-cluster sum of squares and the silhouette, per k, from the ``choose-k`` evaluator) and the
dendrogram of hierarchical clustering over samples or donors (seed 001's patient dendrogram)."""

from __future__ import annotations

import html

import numpy as np

from . import plots
from .page import figure

MAX_LEAVES = 150  # more leaves than this make a dendrogram nobody can read


def choose_k_figure(curves: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = curves[:6]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.0), squeeze=False)
    for ax, curve in zip(axes[0], shown):
        groups = sorted(curve["groups"].values(), key=lambda g: g["k"])
        ks = [g["k"] for g in groups]
        ax.plot(ks, [g["inertia"] for g in groups], marker="o", color="#455a64", label="within-cluster SS")
        ax.set_xlabel("k")
        ax.set_ylabel("within-cluster sum of squares", fontsize=8)
        right = ax.twinx()
        right.plot(ks, [g["silhouette"] for g in groups], marker="s", color="#d95f02", label="silhouette")
        right.set_ylabel("silhouette", fontsize=8, color="#d95f02")
        values = curve.get("values", {})
        for key, colour, text in (("elbow_k", "#455a64", "elbow"), ("silhouette_k", "#d95f02", "best silhouette")):
            if values.get(key) is not None:
                ax.axvline(values[key], color=colour, linestyle="--", linewidth=1)
                ax.annotate(f"{text} k={int(values[key])}", (values[key], 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, color=colour, ha="left", va="top", rotation=90)
        ax.set_title(curve["label"], fontsize=9)
        ax.tick_params(labelsize=7)
        right.tick_params(labelsize=7)
    fig.tight_layout()
    return plots._png(fig)


def dendrogram_figure(vectors: np.ndarray, labels: np.ndarray, names: np.ndarray, title: str) -> bytes:
    """Ward linkage (scipy) on the embeddings; each leaf named and coloured by its class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram, linkage

    tree = linkage(np.asarray(vectors, np.float64), method="ward")
    colours = plots.colour_of(sorted(set(labels)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(labels) + 2), 4.0))
    drawn = dendrogram(tree, labels=[str(n) for n in names], ax=ax, color_threshold=0, above_threshold_color="#607d8b",
                       leaf_font_size=7)
    by_name = dict(zip(map(str, names), labels))
    for tick in ax.get_xticklabels():
        tick.set_color(colours[by_name[tick.get_text()]])
    handles = [plt.Line2D([], [], color=colours[c], marker="s", linestyle="", label=c) for c in sorted(set(labels))]
    ax.legend(handles=handles[:12], fontsize=7, frameon=False, loc="upper right")
    ax.set_ylabel("ward distance")
    ax.set_title(title, fontsize=9)
    del drawn
    fig.tight_layout()
    return plots._png(fig)


def leaf_names(samples, ids) -> np.ndarray:
    """The sample (donor, patient) when each leaf is one; else the file name; else the id."""
    for column in ("sample", "donor", "path"):
        if column in samples:
            names = np.array([str(v).rsplit("/", 1)[-1] for v in samples[column]])
            if len(set(names)) == len(names) and "None" not in names:
                return names
    return np.asarray(ids, str)


def exploration_sections(store) -> list[str]:
    sections = []
    curves = store.group_curves("choose-k")
    if curves:
        sections.append(
            "<h2>How many clusters?</h2><p class=note>k-means for each k (evaluator <code>choose-k</code>): the "
            "within-cluster sum of squares falls as k grows, and its elbow is where more clusters stop paying; the "
            "silhouette peaks at the k whose clusters are both tight and apart (seed 001 chose its k both ways).</p>"
            + figure(choose_k_figure(curves), "within-cluster sum of squares and silhouette by k"))
    trees = []
    for set_id in store.evaluated_sets("clustering-agglomerative", min_items=3, max_items=MAX_LEAVES):
        es = store.embedding_set(set_id)
        if es is None:
            continue
        ids, vectors = store.load_embeddings(set_id)
        samples = store.load_samples(ids)
        labels = samples["condition"].astype(str)
        names = leaf_names(samples, ids)
        title = f"{es.encoder}/{es.head} {es.level}: ward clustering of {len(ids)} items"
        trees.append(figure(dendrogram_figure(vectors, labels, names, title), html.escape(title)))
        if len(trees) == 2:
            break
    if trees:
        sections.append("<h2>Hierarchical clustering</h2><p class=note>Ward linkage on the embeddings of each set "
                        "judged by <code>clustering-agglomerative</code> (up to "
                        f"{MAX_LEAVES} items: samples or donors, as seed 001's patient dendrogram); leaf names coloured "
                        "by class. Items of one class joining low in the tree share a phenotype.</p>" + "".join(trees))
    return sections
