"""Built-in metrics. Rankers call ``distance``; larger always means further apart."""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Metric


class CosineMetric(Metric):
    """Cosine distance 1 - a.b / (|a| |b|): compares directions, ignores vector length."""

    name = "cosine"
    kind = "distance"

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from sklearn.metrics.pairwise import cosine_distances

        return cosine_distances(a, b)


class EuclideanMetric(Metric):
    """Euclidean distance |a - b|: sensitive to every dimension's scale."""

    name = "euclidean"
    kind = "distance"

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from sklearn.metrics.pairwise import euclidean_distances

        return euclidean_distances(a, b)


@hookimpl
def register_metrics(register):
    register(CosineMetric)
    register(EuclideanMetric)
