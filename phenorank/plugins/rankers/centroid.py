"""Ranking strategy 2 of seed 000 (section 9.3): distance to the centre of a reference class."""

from __future__ import annotations

import numpy as np

from phenorank.core.kmeans import kmeans
from phenorank.core.statistics import unit_rows
from phenorank.registry import Metric, PluginError, Ranker, Samples


def reference_mask(samples: Samples, label: str, reference: str) -> np.ndarray:
    """The images whose ``label`` is ``reference``; a numeric column matches by value (time 0 = "0")."""
    values = samples[label]
    labels = values.astype(str)
    mask = labels == reference
    if not mask.any() and np.asarray(values).dtype.kind in "iuf":
        try:
            mask = np.asarray(values, dtype=np.float64) == float(reference)
        except ValueError:
            pass
    if not mask.any():
        present = ", ".join(sorted(set(labels)))
        raise PluginError(f"no images of reference {label} {reference!r} among {len(labels)} images "
                          f"(present: {present})")
    return mask


class CentroidRanker(Ranker):
    """Distance of each image to the centre of the reference class, by the chosen metric.

    ``centre=mean``: the class's mean embedding. ``centre=kmeans``: the seed's k-means centroid of
    the reference class, ``k`` clusters (score = distance to the nearest), in the geometry of
    ``kmeans_geometry``: euclidean, or cosine (spherical k-means: unit-length points and centres).
    With k = 1 the euclidean centroid is the mean, the cosine one the mean direction.

    ``group`` names a metadata column (``plate``, or ``sample`` for the places of a tiled
    time-lapse): each group then gets its own reference centre and each image is scored against
    its group's, so plate effects, or what a place looked like at the first time point, drop out.
    Images of a group without reference images are left unscored.
    """

    name = "centroid"
    defaults = {"label": "condition", "centre": "mean", "k": 1, "kmeans_geometry": "euclidean", "seed": 0,
                "group": ""}
    partial = True  # with ``group``: a group without reference images cannot be scored

    def fit(self, embeddings, samples, metric: Metric, reference):
        mask = reference_mask(samples, self.params["label"], reference)
        self.metric = metric
        if self.params["centre"] not in ("mean", "kmeans"):
            raise PluginError(f"centroid: centre must be 'mean' or 'kmeans', got {self.params['centre']!r}")
        column = self.params["group"]
        self.centres, self.group_centres = None, {}
        if not column:
            self.centres = self._centres(np.asarray(embeddings[mask], dtype=np.float64))
            return self
        groups = samples[column].astype(str)
        self.group_centres = {g: self._centres(np.asarray(embeddings[mask & (groups == g)], dtype=np.float64))
                              for g in np.unique(groups[mask])}
        return self

    def _centres(self, points: np.ndarray) -> np.ndarray:
        if self.params["centre"] == "mean":
            return points.mean(axis=0, keepdims=True)
        k = int(self.params["k"])
        if not 1 <= k <= len(points):
            raise PluginError(f"centroid: k={k} needs 1..{len(points)} (the reference class's size"
                              f"{' in each group' if self.params['group'] else ''})")
        geometry = self.params["kmeans_geometry"]
        if geometry not in ("euclidean", "cosine"):
            raise PluginError(f"centroid: kmeans_geometry must be euclidean or cosine, got {geometry!r}")
        if k == 1:
            mean = points.mean(axis=0, keepdims=True)
            return mean if geometry == "euclidean" else unit_rows(unit_rows(points).mean(axis=0, keepdims=True))
        return kmeans(points, k, geometry, int(self.params["seed"]))[1]

    def score(self, embeddings, samples=None):
        if self.centres is not None:
            return self.metric.distance(embeddings, self.centres).min(axis=1)
        if samples is None:
            raise PluginError("centroid: scoring with group needs the images' metadata")
        groups = samples[self.params["group"]].astype(str)
        scores = np.full(len(embeddings), np.nan)
        for group, centres in self.group_centres.items():
            rows = groups == group
            if rows.any():
                scores[rows] = self.metric.distance(embeddings[rows], centres).min(axis=1)
        return scores
