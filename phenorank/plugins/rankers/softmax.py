"""Ranking strategy 3 of seed 000 (section 9.2): a classifier between two anchor classes; the score
is the probability of the second, so a class the classifier never saw lands somewhere between."""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Ranker

from ..classifier import SOLVERS, Standardizer, fit_logistic, train_linear
from .centroid import reference_mask


class SoftmaxRanker(Ranker):
    """Logistic regression (one linear layer, softmax) trained on the reference class against the
    ``towards`` class; score = probability of ``towards``, in [0, 1].

    ``towards=auto`` takes the class after the reference in ``classes`` (cyclically): control ->
    single_dose, single_dose -> exploded, exploded -> control: the seed's three pairings.
    ``solver=lbfgs`` (default) fits it with scikit-learn to convergence (penalty 1/``C``);
    ``solver=adam`` runs the seed's loop with its best settings: 750 epochs, batch 16, Adam lr 5e-4,
    MultiStepLR x0.1 at 60% / 80%, and at least ``min_steps`` optimizer steps (small plates).
    ``balance`` draws the larger class down to the smaller one's size (the seed's table 9.10:
    class imbalance cost most of the accuracy). ``standardize=false`` feeds the raw features, as the
    seed did. The metric is not used.
    """

    name = "softmax"
    metrics = ()
    defaults = {"towards": "auto", "classes": ["control", "single_dose", "exploded"], "label": "condition",
                "solver": "lbfgs", "C": 1.0, "epochs": 750, "batch_size": 16, "lr": 5e-4, "min_steps": 3000, "balance": True,
                "standardize": True, "seed": 0}

    def towards(self, reference: str) -> str:
        if self.params["towards"] != "auto":
            return str(self.params["towards"])
        classes = list(self.params["classes"])
        if reference not in classes:
            raise PluginError(f"softmax: reference {reference!r} is not in classes {classes}; "
                              f"name the second anchor with -p softmax.towards=CLASS")
        return classes[(classes.index(reference) + 1) % len(classes)]

    def fit(self, embeddings, samples, metric, reference):
        label = self.params["label"]
        first = np.flatnonzero(reference_mask(samples, label, reference))
        other = self.towards(reference)
        if other == reference:
            raise PluginError("softmax: the two anchor classes must differ")
        second = np.flatnonzero(reference_mask(samples, label, other))
        rng = np.random.default_rng(int(self.params["seed"]))
        if str(self.params["balance"]).lower() not in ("false", "0", "no"):
            size = min(len(first), len(second))
            first, second = (np.sort(rng.choice(ix, size, replace=False)) for ix in (first, second))
        rows = np.concatenate([first, second])
        x = np.asarray(embeddings[rows], dtype=np.float64)
        y = np.concatenate([np.zeros(len(first), int), np.ones(len(second), int)])
        self.scale = Standardizer.choose(x, self.params["standardize"])
        solver = str(self.params["solver"])
        if solver not in SOLVERS:
            raise PluginError(f"softmax: solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
        if solver == "lbfgs":
            self.model = fit_logistic(self.scale(x), y, 2, int(self.params["seed"]), float(self.params["C"]))
        else:
            self.model = train_linear(self.scale(x), y, 2, int(self.params["epochs"]), int(self.params["batch_size"]),
                                      float(self.params["lr"]), int(self.params["seed"]),
                                      min_steps=int(self.params["min_steps"]))
        self.anchors = (reference, other)
        return self

    def score(self, embeddings, samples=None):
        out = np.empty(len(embeddings))
        for start in range(0, len(embeddings), 8192):  # bounded memory for 100k x 512
            chunk = self.scale(np.asarray(embeddings[start:start + 8192], dtype=np.float64))
            out[start:start + len(chunk)] = self.model.probabilities(chunk)[:, 1]
        return out
