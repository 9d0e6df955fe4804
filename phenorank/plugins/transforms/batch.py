"""Batch correction with Harmony (harmonypy): the embedding is adjusted so that batches (plates,
days, sites) mix, while structure shared across batches stays."""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Transform

from .grouped import group_labels


class Harmony(Transform):
    """Harmony (Korsunsky et al. 2019, the ``harmonypy`` package) over the batch column ``by``.
    Harmony corrects the rows it is fitted on (it learns no map for new rows), so fit and
    transform take the same rows; ``theta`` is the diversity penalty (2 in the paper),
    ``max_iter`` Harmony's rounds. Commonly run after ``pca``."""

    name = "harmony"
    defaults = {"by": "plate", "theta": 2.0, "max_iter": 10, "seed": 0}

    def fit(self, embeddings, samples, reference):
        import logging

        import pandas as pd
        from harmonypy import run_harmony

        logging.getLogger("harmonypy").setLevel(logging.WARNING)
        x = np.asarray(embeddings, np.float64)
        batches = group_labels(samples, self.params["by"])
        if len(set(batches)) < 2:
            raise PluginError(f"harmony: one {self.params['by']} only; nothing to correct")
        result = run_harmony(x, pd.DataFrame({"batch": batches}), ["batch"], theta=float(self.params["theta"]),
                             max_iter_harmony=int(self.params["max_iter"]), random_state=int(self.params["seed"]),
                             verbose=False)
        corrected = np.asarray(result.Z_corr)
        self.corrected = corrected if corrected.shape == x.shape else corrected.T
        self.fitted_ids = np.asarray(samples.image_ids)
        return self

    def transform(self, embeddings, samples):
        if not np.array_equal(np.asarray(samples.image_ids), self.fitted_ids):
            raise PluginError("harmony corrects the rows it was fitted on and cannot map other rows")
        return self.corrected
