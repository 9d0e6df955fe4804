"""Supervised probes of embeddings with cross-validation grouped by the biological unit: seed
001's SVM (5 folds, grouped by sample, accuracy / precision / recall / F1) and seed 004's
classification report (per-class precision, recall, F1, the confusion matrix and one-vs-rest
ROC AUC per class, optionally with classes weighted against imbalance).

Folds are scikit-learn's ``StratifiedGroupKFold``: every item of one group (donor, sample, well,
or the parent image of a cell) lands in the same fold, so cells of one image are never on both
sides. Each item is predicted once, by the model of the fold that held it out; the measures pool
those out-of-fold predictions. Intervals resample whole groups.
"""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import bootstrap_interval, split_units
from phenorank.core.threads import single_threaded_blas
from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

from .selection import as_list, class_indices


def group_keys(samples, column: str) -> np.ndarray:
    """The unit of the split (``split_units``): ``column``, or donor, sample, well, parent image."""
    try:
        return split_units(samples, column)
    except KeyError as exc:
        raise PluginError(exc.args[0]) from None


def out_of_fold(model_factory, x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int,
                standardize: bool) -> tuple[np.ndarray, np.ndarray | None, list[dict]]:
    """Predicted class and (when the model gives them) class scores of each item, from the fold
    that held it out; and per fold its sizes, for the record."""
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise PluginError(f"{n_groups} groups cannot fill {folds} folds; lower folds or choose a finer group column")
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < folds:  # scikit-learn's own refusal names no class
        raise PluginError(f"the smallest class has {smallest} item(s), fewer than the {folds} folds; lower folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.empty(len(y), dtype=int)
    scores = np.zeros((len(y), int(y.max()) + 1))
    record = []
    for train, test in splitter.split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            raise PluginError("a training fold holds a single class; lower folds")
        model = model_factory()
        pipeline = make_pipeline(StandardScaler(), model) if standardize else model
        with single_threaded_blas():  # the same fit in this process and on a Dask worker
            pipeline.fit(x[train], y[train])
        predicted[test] = pipeline.predict(x[test])
        seen = pipeline.classes_
        if hasattr(pipeline, "predict_proba"):
            scores[np.ix_(test, seen)] = pipeline.predict_proba(x[test])
        else:
            decision = pipeline.decision_function(x[test])
            decision = np.column_stack([-decision, decision]) if decision.ndim == 1 else decision
            scores[np.ix_(test, seen)] = decision
        record.append({"train": int(len(train)), "test": int(len(test)), "test_groups": int(len(np.unique(groups[test])))})
    return predicted, scores, record


class GroupedClassification(Evaluator):
    """Cross-validated classification of ``label`` from the embeddings, folds grouped by
    ``group`` (``auto``: donor, sample, well or parent image). Values: accuracy, balanced
    accuracy, macro precision / recall / F1, macro one-vs-rest ROC AUC; per class (table
    ``evaluation_groups``): precision, recall, F1, AUC, support. Details: the confusion matrix
    (rows: true class, columns: predicted) and the folds."""

    needs = "embeddings"
    defaults = {"label": "condition", "classes": ["all"], "where": [], "group": "auto", "folds": 5,
                "standardize": True, "class_weight": "none", "seed": 0, "bootstrap": 1000}

    def model(self):
        raise NotImplementedError

    def evaluate(self, subject: Subject) -> Evaluation:
        from sklearn import metrics

        index, codes = class_indices(subject.samples, self.params["label"], as_list(self.params["classes"]),
                                     self.params["where"])
        names = sorted(set(subject.samples[self.params["label"]].astype(str)[index]))
        if len(names) < 2:
            raise PluginError(f"{self.name}: needs at least two classes of {self.params['label']!r}, found {names}")
        groups = group_keys(subject.samples, str(self.params["group"]))[index]
        x = np.asarray(subject.embeddings[index], dtype=np.float64)
        seed = int(self.params["seed"])
        predicted, scores, folds = out_of_fold(self.model, x, codes, groups, int(self.params["folds"]), seed,
                                               str(self.params["standardize"]).lower() not in ("false", "0", "no"))
        labels = np.arange(len(names))
        precision, recall, f1, support = metrics.precision_recall_fscore_support(codes, predicted, labels=labels,
                                                                                 zero_division=0)
        auc = np.full(len(names), np.nan)
        for c in labels:  # one-vs-rest: binary relevance, as seed 004's multi-label scores
            truth = codes == c
            if 0 < truth.sum() < len(truth):
                auc[c] = metrics.roc_auc_score(truth, scores[:, c])
        values = {"accuracy": float(np.mean(predicted == codes)),
                  "balanced_accuracy": float(metrics.balanced_accuracy_score(codes, predicted)),
                  "precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean()),
                  "auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
                  "n_groups": float(len(np.unique(groups)))}
        correct = predicted == codes
        intervals = {}
        accuracy = bootstrap_interval(lambda ix: correct[ix].mean(), groups, int(self.params["bootstrap"]), seed)
        if accuracy:
            intervals["accuracy"] = accuracy
        f1_interval = bootstrap_interval(
            lambda ix: metrics.f1_score(codes[ix], predicted[ix], labels=labels, average="macro", zero_division=0),
            groups, min(int(self.params["bootstrap"]), 200), seed)
        if f1_interval:
            intervals["f1"] = f1_interval
        per_class = {name: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                            "auc": float(auc[c]), "support": float(support[c])} for c, name in enumerate(names)}
        confusion = metrics.confusion_matrix(codes, predicted, labels=labels)
        return Evaluation(values=values, intervals=intervals, groups=per_class,
                          details={"classes": names, "confusion": confusion.tolist(), "folds": folds,
                                   "group": str(self.params["group"]), "n": len(index)})

    def _class_weight(self):
        weight = str(self.params["class_weight"])
        if weight not in ("none", "balanced"):
            raise PluginError(f"{self.name}: class_weight must be none or balanced, got {weight!r}")
        return None if weight == "none" else "balanced"


class SVMProbe(GroupedClassification):
    """Seed 001's SVM probe: scikit-learn's ``SVC`` (``kernel`` rbf by default, ``C``) on
    standardized embeddings, 5 folds grouped by sample; AUC from its decision function."""

    name = "svm"
    defaults = {**GroupedClassification.defaults, "kernel": "rbf", "C": 1.0}

    def model(self):
        from sklearn.svm import SVC

        return SVC(kernel=str(self.params["kernel"]), C=float(self.params["C"]), class_weight=self._class_weight(),
                   random_state=int(self.params["seed"]))


class ClassificationReport(GroupedClassification):
    """Seed 004's classification report: multinomial logistic regression (penalty 1/``C``) on the
    embeddings, ``class_weight=balanced`` against imbalance as seed 004 weighted its classes;
    per-class precision / recall / F1, one-vs-rest ROC AUC from the class probabilities and the
    confusion matrix."""

    name = "classification"
    defaults = {**GroupedClassification.defaults, "C": 1.0, "class_weight": "balanced"}

    def model(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(self.params["C"]), class_weight=self._class_weight(), max_iter=2000)
