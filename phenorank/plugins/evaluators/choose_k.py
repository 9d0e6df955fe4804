"""How many clusters do the embeddings hold, without being told the classes? Seed 001 chose k for
its patient clustering by the elbow of the within-cluster sum of squares and by the silhouette;
this evaluator sweeps k and reports both."""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import unit_rows
from phenorank.registry import Evaluation, PluginError, Subject

from .clustering import COMMON, ClusteringEvaluator


def elbow(ks: np.ndarray, inertia: np.ndarray) -> int:
    """The k farthest below the straight line from the first to the last point of the inertia
    curve, both axes scaled to [0, 1] (the "kneedle" rule): where adding clusters stops paying."""
    if len(ks) < 3:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    span = inertia[0] - inertia[-1]
    y = (inertia - inertia[-1]) / span if span > 0 else np.zeros(len(ks))
    return int(ks[int(np.argmax((1 - x) - y))])


class ChooseK(ClusteringEvaluator):
    """k-means (``restarts`` starts; cosine = spherical) for every k from ``k_min`` to ``k_max``
    (fewer than the items), after the optional ``reduce``. Per k (table ``evaluation_groups``,
    group ``k=K``): inertia (within-cluster sum of squares) and silhouette. Values: ``elbow_k``,
    ``silhouette_k`` (the k of the highest silhouette), ``silhouette_best``, and ``n_classes``
    (the classes' count, for comparison when a label is known)."""

    name = "choose-k"
    defaults = {**COMMON, "k_min": 2, "k_max": 10, "restarts": 10}

    def evaluate(self, subject: Subject) -> Evaluation:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        index, _, names = self.selected(subject)
        n_classes = len(names)
        x = self.space(subject.embeddings[index])
        points = unit_rows(x) if self.params["metric"] == "cosine" else x
        k_min, k_max = max(2, int(self.params["k_min"])), min(int(self.params["k_max"]), len(index) - 1)
        if k_max < k_min:
            raise PluginError(f"{self.name}: {len(index)} items leave no k between {k_min} and {self.params['k_max']}")
        ks = np.arange(k_min, k_max + 1)
        inertia, silhouette = [], []
        for k in ks:
            model = KMeans(n_clusters=int(k), n_init=int(self.params["restarts"]),
                           random_state=int(self.params["seed"])).fit(points)
            inertia.append(float(model.inertia_))
            silhouette.append(float(silhouette_score(x, model.labels_, metric=self.params["metric"]))
                              if len(set(model.labels_)) > 1 else float("nan"))
        inertia, silhouette = np.array(inertia), np.array(silhouette)
        best = int(np.nanargmax(silhouette)) if np.isfinite(silhouette).any() else 0
        values = {"elbow_k": float(elbow(ks, inertia)), "silhouette_k": float(ks[best]),
                  "silhouette_best": float(silhouette[best]), "n_classes": float(n_classes)}
        groups = {f"k={k}": {"k": float(k), "inertia": i, "silhouette": s}
                  for k, i, s in zip(ks, inertia, silhouette)}
        return Evaluation(values=values, groups=groups,
                          details={"n": len(index), "reduce": self.params["reduce"], "k": [int(k) for k in ks]})
