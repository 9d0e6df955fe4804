"""Ranking strategy 2 of seed 000 (section 9.3): distance to the centre of a reference class."""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import kmeans, unit_rows
from phenorank.registry import Metric, PluginError, Ranker, Samples


def reference_mask(samples: Samples, label: str, reference: str) -> np.ndarray:
    labels = samples[label].astype(str)
    mask = labels == reference
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
    """

    name = "centroid"
    defaults = {"label": "condition", "centre": "mean", "k": 1, "kmeans_geometry": "euclidean", "seed": 0}

    def fit(self, embeddings, samples, metric: Metric, reference):
        mask = reference_mask(samples, self.params["label"], reference)
        points = np.asarray(embeddings[mask], dtype=np.float64)
        self.metric = metric
        centre = self.params["centre"]
        if centre == "mean":
            self.centres = points.mean(axis=0, keepdims=True)
        elif centre == "kmeans":
            k = int(self.params["k"])
            if not 1 <= k <= len(points):
                raise PluginError(f"centroid: k={k} needs 1..{len(points)} (the reference class's size)")
            geometry = self.params["kmeans_geometry"]
            if geometry not in ("euclidean", "cosine"):
                raise PluginError(f"centroid: kmeans_geometry must be euclidean or cosine, got {geometry!r}")
            if k == 1:
                mean = points.mean(axis=0, keepdims=True)
                self.centres = mean if geometry == "euclidean" else unit_rows(unit_rows(points).mean(axis=0, keepdims=True))
            else:
                self.centres = kmeans(points, k, geometry, int(self.params["seed"]))[1]
        else:
            raise PluginError(f"centroid: centre must be 'mean' or 'kmeans', got {centre!r}")
        return self

    def score(self, embeddings, samples=None):
        return self.metric.distance(embeddings, self.centres).min(axis=1)
