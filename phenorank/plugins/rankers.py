"""Built-in rankers: turn embeddings into one score per image (higher = further from the reference)."""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
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
    """Distance of each image to the mean embedding of the reference class (seed 000, strategy 2)."""

    name = "centroid"
    defaults = {"label": "condition"}

    def fit(self, embeddings, samples, metric: Metric, reference):
        mask = reference_mask(samples, self.params["label"], reference)
        self.metric = metric
        self.centroid = embeddings[mask].mean(axis=0, keepdims=True)
        return self

    def score(self, embeddings):
        return self.metric.distance(embeddings, self.centroid)[:, 0]


@hookimpl
def register_rankers(register):
    register(CentroidRanker)
