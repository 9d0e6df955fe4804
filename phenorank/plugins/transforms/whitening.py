"""Whitening fitted on the reference wells (``spherize``: ZCA or PCA, on covariance or correlation,
as pycytominer's ``Spherize``) and dimension reduction (``pca``)."""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Transform

from .grouped import apply_per_group, fit_per_group, fit_rows

METHODS = ("ZCA", "ZCA-cor", "PCA", "PCA-cor")


def whitening_matrix(x: np.ndarray, method: str, epsilon: float, center: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, W) such that ((x - mean) / scale) @ W has identity covariance on ``x``.

    Kessy et al. 2016: from the SVD of the centred (for ``-cor``: also scaled) rows, W = V S^-1
    sqrt(n - 1), rotated back by V^T for ZCA. ``epsilon`` is added to the singular values (the
    regularization); with fewer rows than features the missing singular values take the
    smallest non-zero one, as pycytominer does."""
    n, d = x.shape
    if n < 2:
        raise PluginError(f"spherize: {n} reference row(s); whitening needs at least 2")
    mean = x.mean(axis=0) if center or method.endswith("-cor") else np.zeros(d)
    scale = np.ones(d)
    if method.endswith("-cor"):
        scale = x.std(axis=0)
        if (scale == 0).any():
            raise PluginError(f"spherize: {(scale == 0).sum()} feature(s) do not vary among the reference rows; "
                              "remove them first (transform select)")
    centred = (x - mean) / scale
    _, sigma, vt = np.linalg.svd(centred, full_matrices=True)
    rank = int((sigma > sigma.max() * max(n, d) * np.finfo(np.float64).eps).sum())  # np.linalg.matrix_rank's rule
    if n <= d:
        sigma = np.concatenate([sigma[:rank], np.repeat(sigma[rank - 1], d - rank)])
    w = (vt / (sigma + epsilon)[:, None]).T * np.sqrt(n - 1)
    if method.startswith("ZCA"):
        w = w @ vt
    return mean, scale, w


class Spherize(Transform):
    """Whitening (sphering) fitted on the reference rows: afterwards the controls' features are
    uncorrelated with unit variance, so a nuisance that moves many features together (cell
    density, focus) stops dominating distances. ``method`` ZCA, ZCA-cor (pycytominer's default in
    ``normalize``), PCA or PCA-cor; ``epsilon`` regularizes small eigenvalues; ``by`` fits one
    whitening per group (default: one for all)."""

    name = "spherize"
    defaults = {"method": "ZCA-cor", "epsilon": 1e-6, "center": True, "by": "none", "fit_on": "reference"}

    def fit(self, embeddings, samples, reference):
        method = self.params["method"]
        if method not in METHODS:
            raise PluginError(f"spherize: method must be one of {', '.join(METHODS)}, got {method!r}")
        rows = fit_rows(self, reference, len(embeddings))
        self.fitted = fit_per_group(self.name, np.asarray(embeddings, np.float64), samples, rows, self.params["by"],
                                    lambda x: whitening_matrix(x, method, float(self.params["epsilon"]),
                                                               bool(self.params["center"])))
        return self

    def transform(self, embeddings, samples):
        return apply_per_group(np.asarray(embeddings, np.float64), samples, self.params["by"], self.fitted,
                               lambda x, f: ((x - f[0]) / f[1]) @ f[2])

    def feature_names(self, names, width):
        if self.params["method"].startswith("PCA"):
            return [f"PC{i + 1}" for i in range(width)]
        return super().feature_names(names, width)


class Pca(Transform):
    """Principal components (scikit-learn), fitted on every row (``fit_on=all``) or the reference
    rows: ``components`` as a count, or ``variance`` (0..1) to keep the fewest components that
    explain that fraction (``components=0``)."""

    name = "pca"
    defaults = {"components": 50, "variance": 0.0, "fit_on": "all", "seed": 0}

    def fit(self, embeddings, samples, reference):
        from sklearn.decomposition import PCA

        x = np.asarray(embeddings, np.float64)[fit_rows(self, reference, len(embeddings))]
        variance = float(self.params["variance"])
        if variance:
            if not 0 < variance < 1:
                raise PluginError(f"pca: variance must lie between 0 and 1 (exclusive), got {variance}")
            wanted = variance
        else:
            wanted = min(int(self.params["components"]), *x.shape)
        self.model = PCA(n_components=wanted, random_state=int(self.params["seed"])).fit(x)
        return self

    def transform(self, embeddings, samples):
        return self.model.transform(np.asarray(embeddings, np.float64))

    def feature_names(self, names, width):
        return [f"PC{i + 1}" for i in range(width)]
