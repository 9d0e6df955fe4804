"""Built-in evaluators of rankings."""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Evaluation, Evaluator, PluginError, Subject


def ranking_accuracy(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> Evaluation:
    """Seed 000 chapter 9: do three classes lie in separate bands of the score scale?

    The classes are ordered by their mean score. Errors are the points of the low class scoring
    above the middle class's minimum plus the points of the high class scoring below the middle
    class's maximum; accuracy = (N - errors) / N over the three classes' points.
    """
    if len(classes) != 3:
        raise PluginError(f"ranking-accuracy needs exactly 3 classes, got {len(classes)}: {classes}")
    groups = {}
    for cls in classes:
        values = scores[labels == cls]
        if len(values) == 0:
            raise PluginError(f"ranking-accuracy: class {cls!r} has no scored images "
                              f"(present: {', '.join(sorted(set(labels.tolist())))})")
        groups[cls] = values
    low, middle, high = sorted(classes, key=lambda c: groups[c].mean())
    middle_min, middle_max = groups[middle].min(), groups[middle].max()
    error_low = int((groups[low] > middle_min).sum())
    error_high = int((groups[high] < middle_max).sum())
    total = sum(len(v) for v in groups.values())
    return Evaluation(
        values={"accuracy": (total - error_low - error_high) / total},
        details={"order": [low, middle, high], "means": {c: float(groups[c].mean()) for c in classes},
                 "counts": {c: len(groups[c]) for c in classes}, "errors_low": error_low,
                 "errors_high": error_high},
    )


class RankingAccuracy(Evaluator):
    """Seed 000's three-class separation accuracy of a score scale (1 = no overlap)."""

    name = "ranking-accuracy"
    needs = "scores"
    defaults = {"classes": ["control", "single_dose", "exploded"], "label": "condition"}

    def evaluate(self, subject: Subject) -> Evaluation:
        labels = subject.samples[self.params["label"]].astype(str)
        return ranking_accuracy(np.asarray(subject.scores), labels, list(self.params["classes"]))


class RankCorrelation(Evaluator):
    """Spearman correlation of the scores with a known order (a truth column such as effect or dose)."""

    name = "rank-correlation"
    needs = "scores"
    defaults = {"truth": "effect"}

    def evaluate(self, subject: Subject) -> Evaluation:
        from scipy.stats import spearmanr

        column = self.params["truth"]
        truth = subject.samples[column]
        try:
            truth = truth.astype(np.float64)
        except (TypeError, ValueError):
            raise PluginError(f"rank-correlation: column {column!r} is not numeric") from None
        keep = np.isfinite(truth)
        if keep.sum() < 3 or np.ptp(truth[keep]) == 0:
            raise PluginError(f"rank-correlation: column {column!r} needs at least 3 images with "
                              f"differing values (has {int(keep.sum())})")
        result = spearmanr(np.asarray(subject.scores)[keep], truth[keep])
        return Evaluation(values={"spearman": float(result.statistic), "p_value": float(result.pvalue)},
                          details={"truth": column, "n": int(keep.sum())})


@hookimpl
def register_evaluators(register):
    register(RankingAccuracy)
    register(RankCorrelation)
