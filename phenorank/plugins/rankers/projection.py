"""Ranking strategy 4 of seed 000 (section 9.4): a 1-D projection of the embeddings as the scale."""

from __future__ import annotations

import warnings

import numpy as np

from phenorank.core.fingerprint import array_key
from phenorank.core.statistics import unit_rows
from phenorank.registry import PluginError, Ranker

from .centroid import reference_mask


def geometry(x: np.ndarray, metric_name: str, dtype=np.float64) -> np.ndarray:
    """Rows prepared so that euclidean distance between them follows the metric: unit length for
    cosine, centred on their own mean and unit length for pearson. Computed in float64 a block
    of rows at a time and stored as ``dtype``: UMAP takes float32, and at 100k x 512 a float64
    copy of the whole set is 400 MB that the projection never needs."""
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=dtype)
    for start in range(0, len(x), 8192):
        rows = np.asarray(x[start:start + 8192], dtype=np.float64)
        if metric_name == "cosine":
            rows = unit_rows(rows)
        elif metric_name == "pearson":
            rows = unit_rows(rows - rows.mean(axis=1, keepdims=True))
        out[start:start + 8192] = rows
    return out


class _ProjectionRanker(Ranker):
    defaults = {"label": "condition", "seed": 0}
    shares_fit = True
    dtype = np.float64  # of the rows the projection is fitted on

    def project_fit(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def project(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _model(self):
        raise NotImplementedError

    def _restore(self, model) -> None:
        raise NotImplementedError

    def fit(self, embeddings, samples, metric, reference):
        self.metric_name = metric.name
        x = geometry(embeddings, metric.name, self.dtype)
        # The projection does not depend on the reference, only its orientation does: a grid
        # fits it once per embedding set and metric, not once per reference class.
        key = (metric.name, array_key(x))
        cache = self.__dict__.setdefault("_fits", {})
        if key not in cache:
            cache.clear()  # the last fit only: a grid goes through one embedding set at a time
            cache[key] = (self.project_fit(x), self._model())
        coordinate, model = cache[key]
        self._restore(model)
        mask = reference_mask(samples, self.params["label"], reference)
        if mask.all():
            raise PluginError(f"{self.name}: every image is of the reference class; nothing to orient against")
        # A projection's sign is arbitrary: flip it so the reference class sits at the low end,
        # like every other ranker (higher = further from the reference).
        self.sign = -1.0 if coordinate[mask].mean() > coordinate[~mask].mean() else 1.0
        self.fitted_ids = {str(i): k for k, i in enumerate(samples.image_ids)}
        self.fitted_coordinate = coordinate  # UMAP scores its fitted images by these
        return self

    def score(self, embeddings, samples=None):
        return self.sign * self.project(geometry(embeddings, self.metric_name, self.dtype))


class PCARanker(_ProjectionRanker):
    """First principal component of the embeddings (fitted on every image the ranking fits on, the
    hold-out set excluded), oriented so the reference class scores low. The metric picks the
    geometry PCA sees: euclidean as is, cosine on unit-length rows, pearson on centred unit rows."""

    name = "pca"
    metrics = ("euclidean", "cosine", "pearson")

    def project_fit(self, x):
        from sklearn.decomposition import PCA

        self.pca = PCA(n_components=1, random_state=int(self.params["seed"])).fit(x)
        return self.pca.transform(x)[:, 0]

    def _model(self):
        return self.pca

    def _restore(self, model):
        self.pca = model

    def project(self, x):
        out = np.empty(len(x))
        for start in range(0, len(x), 8192):
            out[start:start + 8192] = self.pca.transform(x[start:start + 8192])[:, 0]
        return out


class UMAPRanker(_ProjectionRanker):
    """The single coordinate of a 1-D UMAP (umap-learn) in the chosen metric, oriented so the
    reference class scores low. Fitted images keep their fitted coordinate; others (the hold-out
    set) are placed with UMAP's ``transform``."""

    name = "umap"
    metrics = ("euclidean", "cosine", "l1", "pearson")
    defaults = {"label": "condition", "seed": 0, "n_neighbors": 15, "min_dist": 0.1}
    UMAP_METRIC = {"euclidean": "euclidean", "cosine": "cosine", "l1": "manhattan", "pearson": "correlation"}
    dtype = np.float32  # what umap-learn converts its input to anyway

    def warm_up(self):
        """umap-learn compiles its numba functions on first use, per metric: about 10 s that a
        grid can spend while other rankers work."""
        rng = np.random.default_rng(0)
        x = rng.normal(size=(40, 6))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import umap

            for metric in self.UMAP_METRIC.values():
                model = umap.UMAP(n_components=1, n_neighbors=5, metric=metric, random_state=0, n_epochs=5)
                model.fit_transform(x)
                model.transform(x[:3])

    def project_fit(self, x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import umap

            neighbours = max(2, min(int(self.params["n_neighbors"]), len(x) - 1))
            self.umap = umap.UMAP(n_components=1, n_neighbors=neighbours, min_dist=float(self.params["min_dist"]),
                                  metric=self.UMAP_METRIC[self.metric_name], random_state=int(self.params["seed"]))
            return self.umap.fit_transform(x)[:, 0]

    def _model(self):
        return self.umap

    def _restore(self, model):
        self.umap = model

    def score(self, embeddings, samples=None):
        if samples is None:
            return super().score(embeddings)
        position = np.array([self.fitted_ids.get(str(i), -1) for i in samples.image_ids])
        known = position >= 0
        out = np.empty(len(embeddings))
        out[known] = self.sign * self.fitted_coordinate[position[known]]
        if (~known).any():
            out[~known] = super().score(embeddings[~known])
        return out

    def project(self, x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.umap.transform(x)[:, 0]
