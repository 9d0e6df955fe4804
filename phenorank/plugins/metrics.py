"""Built-in metrics: the eight of seed 000 section 9.1.

``pairwise`` gets float64 row blocks (the base class does the chunking) and returns either a
distance or a similarity, as ``kind`` says; rankers call ``distance``, where a similarity is
negated, so larger always means further apart. Each docstring says what the metric does to
real-valued embeddings.
"""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Metric, PluginError


class CosineMetric(Metric):
    """Cosine distance 1 - a.b / (|a| |b|), in [0, 2]: compares directions, ignores length."""

    name = "cosine"
    kind = "distance"

    def pairwise(self, a, b):
        from sklearn.metrics.pairwise import cosine_distances

        return cosine_distances(a, b)


class EuclideanMetric(Metric):
    """Euclidean distance |a - b|: every dimension counts in its own units."""

    name = "euclidean"
    kind = "distance"

    def pairwise(self, a, b):
        from sklearn.metrics.pairwise import euclidean_distances

        return euclidean_distances(a, b)


class MSEMetric(Metric):
    """Mean squared difference |a - b|^2 / D: the squared euclidean distance per dimension, so it
    orders pairs exactly as euclidean does (seed 000 tables 9.2 and 9.3 are equal for that reason)."""

    name = "mse"
    kind = "distance"

    def pairwise(self, a, b):
        from sklearn.metrics.pairwise import euclidean_distances

        return euclidean_distances(a, b, squared=True) / a.shape[1]


class L1Metric(Metric):
    """L1 (Manhattan, city-block) distance sum |a_i - b_i|: less dominated by a few large differences."""

    name = "l1"
    kind = "distance"

    def pairwise(self, a, b):
        from scipy.spatial.distance import cdist

        return cdist(a, b, "cityblock")


class PearsonMetric(Metric):
    """Pearson correlation of the two vectors' components, in [-1, 1] (a similarity): cosine after
    centring each vector on its own mean, so an offset or a scale of the whole vector is ignored."""

    name = "pearson"
    kind = "similarity"

    def pairwise(self, a, b):
        def unit(x):
            x = x - x.mean(axis=1, keepdims=True)
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

        return unit(a) @ unit(b).T


class DotMetric(Metric):
    """Dot product a.b (a similarity): grows with vector length, so long vectors look "close" to
    everything; seed 000 found it separates classes least. Kept as a baseline."""

    name = "dot"
    kind = "similarity"

    def pairwise(self, a, b):
        return a @ b.T


def binarize(x: np.ndarray, threshold) -> np.ndarray:
    """Real-valued vectors -> 0/1: a component is 1 where it exceeds the threshold. ``"mean"``
    (default) uses each vector's own mean, so the code says which dimensions stand out in that
    vector; a number is one fixed threshold for all (0 suits ReLU features: "active or not")."""
    if threshold == "mean":
        cut = x.mean(axis=1, keepdims=True)
    else:
        try:
            cut = float(threshold)
        except (TypeError, ValueError):
            raise PluginError(f"threshold must be 'mean' or a number, got {threshold!r}") from None
    return (x > cut).astype(np.float64)


def binary_overlap(a: np.ndarray, b: np.ndarray, threshold):
    """(components set in both, set in a, set in b) of the binarized rows, each (len(a), len(b))."""
    ba, bb = binarize(a, threshold), binarize(b, threshold)
    return ba @ bb.T, ba.sum(axis=1)[:, None], bb.sum(axis=1)[None, :]


class JaccardMetric(Metric):
    """Jaccard similarity |A and B| / |A or B| of the binarized vectors (see ``threshold``), in [0, 1];
    two vectors with no component above threshold count as identical (1)."""

    name = "jaccard"
    kind = "similarity"
    defaults = {"threshold": "mean"}

    def pairwise(self, a, b):
        both, in_a, in_b = binary_overlap(a, b, self.params["threshold"])
        either = in_a + in_b - both
        return np.divide(both, either, out=np.ones_like(both), where=either > 0)


class HammingMetric(Metric):
    """Hamming distance of the binarized vectors (see ``threshold``): the fraction of components
    on different sides of their threshold, in [0, 1]."""

    name = "hamming"
    kind = "distance"
    defaults = {"threshold": "mean"}

    def pairwise(self, a, b):
        both, in_a, in_b = binary_overlap(a, b, self.params["threshold"])
        return (in_a + in_b - 2 * both) / a.shape[1]


@hookimpl
def register_metrics(register):
    for metric in (CosineMetric, EuclideanMetric, MSEMetric, L1Metric, PearsonMetric, DotMetric,
                   JaccardMetric, HammingMetric):
        register(metric)
