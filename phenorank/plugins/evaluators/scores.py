"""Evaluators of rankings (``needs = "scores"``). Each gives a 95% interval by bootstrap over
wells (``bootstrap`` resamples; 0 turns it off)."""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import bootstrap_interval, truthy, well_keys
from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

from .selection import as_list


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


def ranking_accuracy_rows(scores: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """:func:`ranking_accuracy` of many resamples at once: ``scores`` (resamples, items), each
    row holding the same classes in the same columns (``blocks``: each class's columns)."""
    groups = [scores[:, b] for b in blocks]
    means = np.stack([g.mean(axis=1) for g in groups], axis=1)
    order = np.argsort(means, axis=1, kind="stable")
    low, middle, high = order[:, 0], order[:, 1], order[:, 2]
    rows = np.arange(len(scores))
    mins = np.stack([g.min(axis=1) for g in groups], axis=1)
    maxs = np.stack([g.max(axis=1) for g in groups], axis=1)
    above = np.stack([np.stack([(g > mins[:, m:m + 1]).sum(axis=1) for m in range(3)], axis=1) for g in groups], 1)
    below = np.stack([np.stack([(g < maxs[:, m:m + 1]).sum(axis=1) for m in range(3)], axis=1) for g in groups], 1)
    errors = above[rows, low, middle] + below[rows, high, middle]
    total = sum(len(b) for b in blocks)
    return (total - errors) / total


class RankingAccuracy(Evaluator):
    """Seed 000's three-class separation accuracy of a score scale (1 = no overlap). The interval
    resamples wells within each class."""

    name = "ranking-accuracy"
    needs = "scores"
    defaults = {"classes": ["control", "single_dose", "exploded"], "label": "condition", "bootstrap": 1000,
                "seed": 0}

    def evaluate(self, subject: Subject) -> Evaluation:
        labels = subject.samples[self.params["label"]].astype(str)
        scores, classes = np.asarray(subject.scores), as_list(self.params["classes"])
        result = ranking_accuracy(scores, labels, classes)
        keep = np.isin(labels, classes)
        s, lab, wells = scores[keep], labels[keep], well_keys(subject.samples)[keep]
        def rows(ix: np.ndarray) -> np.ndarray:  # a resample keeps each class's wells in its own columns
            first = lab[ix[0]]
            return ranking_accuracy_rows(s[ix], [np.flatnonzero(first == c) for c in classes])

        interval = bootstrap_interval(lambda ix: ranking_accuracy(s[ix], lab[ix], classes).values["accuracy"],
                                      wells, int(self.params["bootstrap"]), int(self.params["seed"]), strata=lab,
                                      batch=rows)
        if interval:
            result.intervals["accuracy"] = interval
        return result


class RankCorrelation(Evaluator):
    """Spearman correlation of the scores with a known order (a truth column such as effect or dose).

    ``truth`` may name several columns (``time,cytoplasm_coverage``): each gets ``spearman_<column>``
    and ``p_value_<column>``; a single column gives ``spearman`` and ``p_value``."""

    name = "rank-correlation"
    needs = "scores"
    defaults = {"truth": "effect", "bootstrap": 1000, "seed": 0}

    def evaluate(self, subject: Subject) -> Evaluation:
        columns = as_list(self.params["truth"])
        if not columns:
            raise PluginError("rank-correlation: truth names no column")
        result = Evaluation(values={}, details={"truth": columns[0] if len(columns) == 1 else columns, "n": {}})
        for column in columns:
            suffix = f"_{column}" if len(columns) > 1 else ""
            rho, p_value, n, interval = self._correlate(subject, column)
            result.values[f"spearman{suffix}"], result.values[f"p_value{suffix}"] = rho, p_value
            result.details["n"][column] = n
            if interval:
                result.intervals[f"spearman{suffix}"] = interval
        if len(columns) == 1:
            result.details["n"] = result.details["n"][columns[0]]
        return result

    def _correlate(self, subject: Subject, column: str):
        from scipy.stats import rankdata, spearmanr

        truth = subject.samples[column]
        try:
            truth = truth.astype(np.float64)
        except (TypeError, ValueError):
            raise PluginError(f"rank-correlation: column {column!r} is not numeric") from None
        keep = np.isfinite(truth)
        if keep.sum() < 3 or np.ptp(truth[keep]) == 0:
            raise PluginError(f"rank-correlation: column {column!r} needs at least 3 images with "
                              f"differing values (has {int(keep.sum())})")
        s, t = np.asarray(subject.scores)[keep], truth[keep]
        result = spearmanr(s, t)

        def rho(ix):  # Spearman = Pearson of the ranks; spearmanr itself is 10x slower per call
            if np.ptp(t[ix]) == 0 or np.ptp(s[ix]) == 0:
                return float("nan")
            return np.corrcoef(rankdata(s[ix]), rankdata(t[ix]))[0, 1]

        def rho_rows(ix):  # the same over many resamples: ranks per row, then Pearson per row
            rs, rt = rankdata(s[ix], axis=1), rankdata(t[ix], axis=1)
            rs, rt = rs - rs.mean(axis=1, keepdims=True), rt - rt.mean(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (rs * rt).sum(axis=1) / np.sqrt((rs * rs).sum(axis=1) * (rt * rt).sum(axis=1))

        interval = bootstrap_interval(rho, well_keys(subject.samples)[keep], int(self.params["bootstrap"]),
                                      int(self.params["seed"]), batch=rho_rows)
        return float(result.statistic), float(result.pvalue), int(keep.sum()), interval


class HoldoutRange(Evaluator):
    """Seed 000 table 10.1: of the hold-out images (scored by a ranking fitted without them), how
    many fall outside the score range [min, max] of the class they should resemble (``within``)?

    The hold-out set is the images whose ``column`` is true (a manifest column; the demo marks the
    screen wells whose true effect lies in the single-dose range). Fewer outside = better.
    """

    name = "holdout-range"
    needs = "scores"
    defaults = {"column": "holdout", "within": "single_dose", "label": "condition", "bootstrap": 1000, "seed": 0}

    def evaluate(self, subject: Subject) -> Evaluation:
        column, within = self.params["column"], self.params["within"]
        held = truthy(subject.samples[column])
        labels = subject.samples[self.params["label"]].astype(str)
        inside_class = (labels == within) & ~held
        if not held.any():
            raise PluginError(f"holdout-range: no image has {column}=true")
        if not inside_class.any():
            raise PluginError(f"holdout-range: no scored images of class {within!r}")
        scores = np.asarray(subject.scores)

        def count(ix):
            ref, test = scores[ix][inside_class[ix]], scores[ix][held[ix]]
            if len(ref) == 0 or len(test) == 0:
                return None
            low, high = ref.min(), ref.max()
            return int((test < low).sum()), int((test > high).sum()), len(test), (float(low), float(high))

        below, above, n, (low, high) = count(np.arange(len(scores)))
        relevant = held | inside_class
        strata = np.where(held, "holdout", "within")[relevant]
        positions = np.flatnonzero(relevant)

        def fraction(ix):
            found = count(positions[ix])
            return float("nan") if found is None else (found[0] + found[1]) / found[2]

        def fractions(ix):  # every resample at once: the strata keep the same columns in each row
            rows = positions[ix]
            held_columns = held[rows[0]]
            test, ref = scores[rows[:, held_columns]], scores[rows[:, ~held_columns]]
            low, high = ref.min(axis=1, keepdims=True), ref.max(axis=1, keepdims=True)
            return ((test < low) | (test > high)).sum(axis=1) / test.shape[1]

        interval = bootstrap_interval(fraction, well_keys(subject.samples)[relevant], int(self.params["bootstrap"]),
                                      int(self.params["seed"]), strata=strata, batch=fractions)
        return Evaluation(
            values={"outside": below + above, "fraction_outside": (below + above) / n, "n_holdout": n},
            details={"below": below, "above": above, "range": [low, high], "within": within, "column": column},
            intervals={"fraction_outside": interval} if interval else {})
