"""Normalization against reference wells, per plate by default: ``standardize`` (mean and standard
deviation, as pycytominer's ``normalize(method="standardize")``) and ``robustize`` (median and
MAD scaled to a normal's standard deviation, as ``method="mad_robustize"``)."""

from __future__ import annotations

import numpy as np

from phenorank.registry import Transform

from .grouped import apply_per_group, fit_per_group, fit_rows

MAD_TO_SD = 1.4826  # MAD x this = the standard deviation of a normal distribution


class Standardize(Transform):
    """(x - mean) / standard deviation, both from the reference rows of each ``by`` group
    (``plate``, any metadata column, or ``none``); a feature without spread keeps scale 1."""

    name = "standardize"
    defaults = {"by": "plate", "fit_on": "reference"}

    def fit(self, embeddings, samples, reference):
        rows = fit_rows(self, reference, len(embeddings))
        self.fitted = fit_per_group(self.name, np.asarray(embeddings, np.float64), samples, rows, self.params["by"],
                                    lambda x: (x.mean(axis=0), _nonzero(x.std(axis=0))))
        return self

    def transform(self, embeddings, samples):
        return apply_per_group(np.asarray(embeddings, np.float64), samples, self.params["by"], self.fitted,
                               lambda x, f: (x - f[0]) / f[1])


class Robustize(Transform):
    """(x - median) / (1.4826 MAD + epsilon) from the reference rows of each ``by`` group: one
    outlying control well moves the centre and scale far less than with ``standardize``.
    ``epsilon`` is pycytominer's ``mad_robustize_epsilon``."""

    name = "robustize"
    defaults = {"by": "plate", "fit_on": "reference", "epsilon": 1e-18}

    def fit(self, embeddings, samples, reference):
        rows = fit_rows(self, reference, len(embeddings))

        def centre_scale(x):
            median = np.median(x, axis=0)
            return median, MAD_TO_SD * np.median(np.abs(x - median), axis=0) + float(self.params["epsilon"])

        self.fitted = fit_per_group(self.name, np.asarray(embeddings, np.float64), samples, rows, self.params["by"],
                                    centre_scale)
        return self

    def transform(self, embeddings, samples):
        return apply_per_group(np.asarray(embeddings, np.float64), samples, self.params["by"], self.fitted,
                               lambda x, f: (x - f[0]) / f[1])


def _nonzero(scale: np.ndarray) -> np.ndarray:
    return np.where(scale == 0, 1.0, scale)
