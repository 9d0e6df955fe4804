"""Feature selection as pycytominer's ``feature_select`` defines it: drop features with too many
missing values, near-constant ones, one of each highly correlated pair, and a block list."""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Transform

from .grouped import fit_rows

OPERATIONS = ("drop_na_columns", "variance_threshold", "frequency_threshold", "correlation_threshold", "blocklist")


def correlated_features(x: np.ndarray, threshold: float) -> np.ndarray:
    """Columns pycytominer's ``correlation_threshold`` excludes: of every pair with Pearson
    correlation above ``threshold``, the one with the larger summed absolute correlation to all
    features."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    corr = np.atleast_2d(corr)
    order = np.argsort(np.nansum(np.abs(corr), axis=0), kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    a, b = np.nonzero(np.tril(corr > threshold, k=-1))
    return np.unique(np.where(position[a] > position[b], a, b))


def frequency_features(x: np.ndarray, freq_cut: float, unique_cut: float) -> np.ndarray:
    """Columns whose second most common value is rare next to the most common (ratio < freq_cut),
    or with few distinct values (distinct / rows < unique_cut)."""
    out = []
    for j in range(x.shape[1]):
        column = x[:, j][~np.isnan(x[:, j])]
        _, counts = np.unique(column, return_counts=True)
        counts = np.sort(counts)[::-1]
        ratio = counts[1] / counts[0] if len(counts) >= 2 else 0.0
        if ratio < freq_cut or len(counts) / len(x) < unique_cut:
            out.append(j)
    return np.array(out, dtype=int)


class Select(Transform):
    """Keeps the informative features. ``operations`` (applied in order, each on what the earlier
    ones kept): drop_na_columns (NaN in more than ``na_cutoff`` of rows), variance_threshold
    (variance <= ``min_variance``), frequency_threshold (``freq_cut``, ``unique_cut``),
    correlation_threshold (Pearson > ``corr_threshold``), blocklist (names in ``blocklist``, or
    containing one of its entries that ends in ``*``). Fitted on every row by default
    (``fit_on=all``, pycytominer's ``samples="all"``)."""

    name = "select"
    defaults = {"operations": ["drop_na_columns", "variance_threshold", "correlation_threshold", "blocklist"],
                "na_cutoff": 0.05, "min_variance": 1e-6, "freq_cut": 0.05, "unique_cut": 0.01,
                "corr_threshold": 0.9, "blocklist": [], "fit_on": "all"}

    def fit(self, embeddings, samples, reference):
        x = np.asarray(embeddings, np.float64)[fit_rows(self, reference, len(embeddings))]
        self.names = getattr(self, "input_names", None)  # set by the pipeline before fit
        keep = np.arange(x.shape[1])
        for operation in _as_list(self.params["operations"]):
            if operation not in OPERATIONS:
                raise PluginError(f"select: unknown operation {operation!r}; choose from {', '.join(OPERATIONS)}")
            part = x[:, keep]
            if operation == "drop_na_columns":
                drop = np.flatnonzero(np.isnan(part).mean(axis=0) > float(self.params["na_cutoff"]))
            elif operation == "variance_threshold":
                drop = np.flatnonzero(~(np.nanvar(part, axis=0) > float(self.params["min_variance"])))
            elif operation == "frequency_threshold":
                drop = frequency_features(part, float(self.params["freq_cut"]), float(self.params["unique_cut"]))
            elif operation == "correlation_threshold":
                drop = correlated_features(part, float(self.params["corr_threshold"]))
            else:
                drop = self._blocked(keep)
            keep = np.delete(keep, drop)
        if len(keep) == 0:
            raise PluginError("select: every feature was dropped")
        self.keep = keep
        return self

    def _blocked(self, keep: np.ndarray) -> np.ndarray:
        entries = [e for e in _as_list(self.params["blocklist"]) if e]
        if not entries:
            return np.array([], dtype=int)
        if self.names is None:
            raise PluginError("select: a blocklist needs feature names, and this embedding set has none")
        names = [self.names[j] for j in keep]
        return np.array([i for i, name in enumerate(names)
                         if any(name == e or (e.endswith("*") and e[:-1] in name) for e in entries)], dtype=int)

    def transform(self, embeddings, samples):
        return np.asarray(embeddings, np.float64)[:, self.keep]

    def feature_names(self, names, width):
        return [names[j] for j in self.keep] if names is not None else None


def _as_list(value) -> list[str]:
    return [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
