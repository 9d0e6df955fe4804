"""Evaluators of embeddings (``needs = "embeddings"``): how well do the classes separate before any
ranking? Seed 000 chapter 8 (linear probe, k-means) and the field's replicate mAP (copairs)."""

from __future__ import annotations

import numpy as np

from phenorank.core.kmeans import kmeans_starts
from phenorank.core.statistics import GroupResampler, bootstrap_interval, holdout_mask, matched_accuracies, well_keys
from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

from ..classifier import SOLVERS, Standardizer, fit_logistic, train_linear
from .selection import as_list, balanced, class_indices

SELECTION = {"classes": ["control", "single_dose", "exploded"], "label": "condition", "where": [], "balance": "none"}


class LinearProbe(Evaluator):
    """Seed 000 section 8.1: one linear layer on frozen embeddings, trained to tell the classes
    apart on an 80/20 split of wells stratified by class; features standardized on the training
    wells (``standardize=false``: the raw features, as the seed). ``solver=lbfgs`` (default):
    multinomial logistic regression fitted by scikit-learn to convergence (penalty 1/``C``).
    ``solver=adam``: the seed's loop, cross entropy, Adam lr 5e-4, batch 8, 250 epochs, MultiStepLR
    x0.1 at 60% and 80%, at least ``min_steps`` optimizer steps (small plates, see ``train_linear``).

    Values: train and test accuracy; with ``adam`` also the best test accuracy over the epochs and
    the first epoch reaching it (the seed's "test epoch"). The interval bootstraps the test wells.

    Hold-out images (true in the ``holdout`` column: seed 000's 22 screen images that look like
    single dose, table 8.4) never train or test the probe; ``holdout_accuracy`` is the share of
    them it calls ``holdout_class``.
    """

    name = "linear-probe"
    needs = "embeddings"
    defaults = {**SELECTION, "solver": "lbfgs", "C": 1.0, "epochs": 250, "batch_size": 8, "lr": 5e-4,
                "min_steps": 3000, "test_fraction": 0.2, "seed": 0, "bootstrap": 1000, "standardize": True,
                "holdout": "holdout", "holdout_class": "single_dose"}

    def evaluate(self, subject: Subject) -> Evaluation:
        from sklearn.model_selection import train_test_split

        classes = as_list(self.params["classes"])
        seed = int(self.params["seed"])
        rng = np.random.default_rng(seed)
        index, codes = class_indices(subject.samples, self.params["label"], classes, self.params["where"])
        held = holdout_mask(subject.samples, self.params["holdout"])
        index, codes = index[~held[index]], codes[~held[index]]
        keep = balanced(codes, self.params["balance"], rng)
        index, codes = index[keep], codes[keep]
        wells = well_keys(subject.samples)[index]
        names, first = np.unique(wells, return_index=True)
        well_class = codes[first]
        stratify = well_class if np.bincount(well_class).min() >= 2 else None
        try:
            train_wells, test_wells = train_test_split(names, test_size=float(self.params["test_fraction"]),
                                                       random_state=seed, stratify=stratify)
        except ValueError as exc:
            raise PluginError(f"linear-probe: cannot split {len(names)} wells: {exc}") from None
        train = np.isin(wells, train_wells)
        x = np.asarray(subject.embeddings[index], dtype=np.float64)
        scale = Standardizer.choose(x[train], self.params["standardize"])
        solver = str(self.params["solver"])
        if solver not in SOLVERS:
            raise PluginError(f"linear-probe: solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
        if solver == "lbfgs":
            model = fit_logistic(scale(x[train]), codes[train], len(classes), seed, float(self.params["C"]))
        else:
            model = train_linear(scale(x[train]), codes[train], len(classes), int(self.params["epochs"]),
                                 int(self.params["batch_size"]), float(self.params["lr"]), seed,
                                 validation=(scale(x[~train]), codes[~train]), min_steps=int(self.params["min_steps"]))
        correct = model.logits(scale(x[~train])).argmax(axis=1) == codes[~train]
        values = {"train_accuracy": float((model.logits(scale(x[train])).argmax(axis=1) == codes[train]).mean()),
                  "test_accuracy": float(correct.mean())}
        if model.history:
            best = max(model.history, key=lambda h: (h["test_accuracy"], -h["epoch"]))
            best_train = max(model.history, key=lambda h: (h["train_accuracy"], -h["epoch"]))
            values.update(best_test_accuracy=best["test_accuracy"], best_test_epoch=best["epoch"],
                          best_train_epoch=best_train["epoch"])
        if held.any():
            expected = str(self.params["holdout_class"])
            if expected not in classes:
                raise PluginError(f"linear-probe: holdout_class {expected!r} is not one of the classes {classes}")
            called = model.logits(scale(np.asarray(subject.embeddings[held], dtype=np.float64))).argmax(axis=1)
            values.update(holdout_accuracy=float((called == classes.index(expected)).mean()),
                          holdout_n=float(held.sum()))
        interval = bootstrap_interval(lambda ix: correct[ix].mean(), wells[~train], int(self.params["bootstrap"]),
                                      seed, strata=codes[~train], batch=lambda ix: correct[ix].mean(axis=1))
        return Evaluation(
            values=values,
            details={"classes": classes, "n_train": int(train.sum()), "n_test": int((~train).sum()),
                     "test_wells": sorted(map(str, test_wells))},
            intervals={"test_accuracy": interval} if interval else {})


def span_coordinates(x: np.ndarray, geometry: str) -> np.ndarray:
    """The points in coordinates of the space they span (an SVD): every euclidean distance (for
    ``cosine``: every cosine, after scaling to unit length) stays exactly the same, and k-means
    centres, being means of points, live in that span too. So 27 648-d pixels of 600 images
    cluster in 600-d at the same result, 400 times over, in seconds."""
    from phenorank.core.statistics import unit_rows

    base = unit_rows(x) if geometry == "cosine" else x - x.mean(axis=0)
    if base.shape[1] <= base.shape[0]:
        return base
    u, s, _ = np.linalg.svd(base, full_matrices=False)
    return u * s


class KMeansAccuracy(Evaluator):
    """Seed 000 section 8.2: k-means with k = number of classes, run from ``restarts`` random
    k-means++ initialisations (the seed: 400), each scored by its accuracy after the Hungarian
    matching of clusters to classes; in euclidean and cosine (spherical k-means) geometry.

    Values per geometry: mean and standard deviation over restarts. With ``balance`` every restart
    draws its own balanced subsample. The interval of each mean bootstraps wells (within class)
    with every restart's clustering kept fixed.
    """

    name = "kmeans-accuracy"
    needs = "embeddings"
    defaults = {**SELECTION, "restarts": 400, "geometries": ["euclidean", "cosine"], "seed": 0, "bootstrap": 200}

    def evaluate(self, subject: Subject) -> Evaluation:
        classes = as_list(self.params["classes"])
        seed, restarts = int(self.params["seed"]), int(self.params["restarts"])
        index, codes = class_indices(subject.samples, self.params["label"], classes, self.params["where"])
        x = np.asarray(subject.embeddings[index], dtype=np.float64)
        wells = well_keys(subject.samples)[index]
        k = len(classes)
        values, intervals, details = {}, {}, {"classes": classes, "n": len(index), "restarts": restarts}
        for geometry in as_list(self.params["geometries"]):
            rng = np.random.default_rng(seed)
            points = span_coordinates(x, geometry).astype(np.float32)
            seeds = seed + np.arange(restarts)
            if self.params["balance"] in (None, "none", "", False, "false"):  # every start on the same points
                if len(points) < k:
                    raise PluginError(f"kmeans-accuracy: {len(points)} images for {k} clusters")
                cells = codes * k + kmeans_starts(points, k, seeds, geometry)[0]
            else:  # every start on its own balanced subsample; -1: not in it
                cells = np.full((restarts, len(points)), -1)
                for restart in range(restarts):
                    keep = balanced(codes, self.params["balance"], rng)
                    if len(keep) < k:
                        raise PluginError(f"kmeans-accuracy: {len(keep)} images for {k} clusters")
                    cells[restart, keep] = codes[keep] * k + kmeans_starts(points[keep], k, seeds[restart:restart + 1],
                                                                           geometry)[0][0]
            tables = np.stack([np.bincount(row[row >= 0], minlength=k * k) for row in cells]).reshape(-1, k, k)
            accuracies = matched_accuracies(tables)
            values[f"{geometry}_mean"] = float(accuracies.mean())
            values[f"{geometry}_std"] = float(accuracies.std())
            details[f"{geometry}_best"] = float(accuracies.max())
            interval = self._bootstrap(cells, codes, wells, k, seed)
            if interval:
                intervals[f"{geometry}_mean"] = interval
        return Evaluation(values=values, details=details, intervals=intervals)

    def _bootstrap(self, cells, codes, wells, k, seed, block_entries: int = 1 << 24):
        """Each draw's mean over restarts of the matched accuracy, every restart's clusters kept
        fixed. Vectorized: a draw is a vector of item multiplicities, and the weighted contingency
        tables of a block of draws x a block of restarts are one product of the multiplicities with
        the restarts' one-hot (class, cluster) cells; the matching is scored over all at once
        (``matched_accuracies``)."""
        n_resamples = int(self.params["bootstrap"])
        if n_resamples <= 0:
            return None
        draws = GroupResampler(wells, strata=codes).draws(np.random.default_rng(seed + 1), n_resamples)
        restarts, n = cells.shape
        per_block = max(1, block_entries // (n * k * k))  # restarts whose one-hot cells are held at once
        draw_block = max(1, block_entries // n)
        totals = np.zeros(len(draws))
        for first in range(0, restarts, per_block):
            block = cells[first:first + per_block]
            one_hot = np.zeros((n, len(block) * k * k), dtype=np.float32)
            rows, kept = np.nonzero(block.T >= 0)
            one_hot[rows, kept * k * k + block.T[rows, kept]] = 1
            for start in range(0, len(draws), draw_block):
                weight = np.stack([np.bincount(d, minlength=n) for d in draws[start:start + draw_block]])
                tables = (weight.astype(np.float32) @ one_hot).reshape(len(weight), len(block), k, k)
                totals[start:start + len(weight)] += matched_accuracies(tables).sum(axis=1)
        low, high = np.nanpercentile(totals / restarts, [2.5, 97.5])
        return float(low), float(high)


class MeanAveragePrecision(Evaluator):
    """Mean average precision (copairs), with a p-value per group from copairs' permutation null
    (``null_size``) and Benjamini-Hochberg q-values.

    ``mode=activity`` (replicate retrieval against controls): for every well of a treatment group
    (``group`` columns, default treatment and concentration), how highly do its replicates rank
    among the controls by similarity? Controls are the rows with ``control`` as their ``label``,
    condition or treatment (``control=DMSO``).

    ``mode=consistency``: the treatments' consensus profiles (``consensus`` of each group's wells)
    with the same ``moa`` value (a mechanism column, e.g. Metadata_MoA) are the positives, those
    of other mechanisms the negatives; one mAP per mechanism.

    Values: mean mAP over groups, the fraction with q < ``threshold``, the number of groups. The
    interval bootstraps the groups' mAPs. Per group (table ``evaluation_groups``): map, p_value,
    q_value.

    The average precisions are computed exactly without listing the pairs (``average_precision.py``:
    a block of queries x the controls, or x all profiles, at a time), equal to copairs' own;
    copairs' ``mean_average_precision`` then gives the null and the q-values.
    """

    name = "map"
    needs = "embeddings"
    defaults = {"mode": "activity", "label": "condition", "control": "control", "group": ["treatment", "concentration"],
                "moa": "Metadata_MoA", "consensus": "median", "distance": "cosine", "null_size": 10000,
                "threshold": 0.05, "seed": 0, "bootstrap": 1000}

    def evaluate(self, subject: Subject) -> Evaluation:
        import logging

        logging.getLogger("copairs").setLevel(logging.WARNING)
        mode = self.params["mode"]
        if mode not in ("activity", "consistency"):
            raise PluginError(f"map: mode must be 'activity' or 'consistency', got {mode!r}")
        samples, columns = subject.samples, as_list(self.params["group"])
        control = samples.matching(self.params["control"], (self.params["label"], "condition", "treatment"))
        feats = np.asarray(subject.embeddings, dtype=np.float64)
        if mode == "activity":
            meta, feats, sameby, query = self._activity(samples, columns, control, feats)
        else:
            meta, feats, sameby, query = self._consistency(samples, columns, control, feats)
        from copairs.map import average_precision, mean_average_precision

        from .average_precision import SIMILARITIES, activity_average_precision, consistency_average_precision

        if self.params["distance"] in SIMILARITIES:  # exact, without listing the pairs
            if mode == "activity":
                control_rows = meta["reference"].to_numpy() >= 0
                ap = meta.assign(**activity_average_precision(feats, meta["group"].to_numpy(), control_rows,
                                                              self.params["distance"]))
            else:
                ap = meta.assign(**consistency_average_precision(feats, meta["group"].to_numpy(),
                                                                 self.params["distance"]))
        else:  # a distance of copairs' own (a callable's name): its pair lists
            ap = average_precision(meta, feats, pos_sameby=sameby, pos_diffby=[], neg_sameby=[], neg_diffby=sameby,
                                   distance=self.params["distance"], progress_bar=False)
        ap = ap[query & ap["average_precision"].notna().to_numpy()]
        result = mean_average_precision(ap, sameby=["group"], null_size=int(self.params["null_size"]),
                                        threshold=float(self.params["threshold"]), seed=int(self.params["seed"]),
                                        progress_bar=False)
        maps = result["mean_average_precision"].to_numpy(dtype=np.float64)
        rng = np.random.default_rng(int(self.params["seed"]))
        boots = [maps[rng.integers(len(maps), size=len(maps))].mean() for _ in range(int(self.params["bootstrap"]))]
        intervals = {"mean_map": tuple(float(v) for v in np.percentile(boots, [2.5, 97.5]))} if boots else {}
        groups = {str(r.group): {"map": float(r.mean_average_precision), "p_value": float(r.p_value),
                                 "q_value": float(r.corrected_p_value)} for r in result.itertuples()}
        return Evaluation(
            values={"mean_map": float(maps.mean()), "fraction_significant": float(result["below_corrected_p"].mean()),
                    "n_groups": len(maps)},
            details={"mode": mode, "group_by": columns if mode == "activity" else [self.params["moa"]]},
            intervals=intervals, groups=groups)

    def _activity(self, samples, columns, control, feats):
        import pandas as pd

        if not control.any():
            raise PluginError(f"map: no {self.params['control']!r} rows to compare against "
                              f"(as {self.params['label']}, condition or treatment)")
        group = np.array(["|".join(str(samples[c][i]) for c in columns) for i in range(len(samples))], dtype=object)
        group[control] = "<control>"
        meta = pd.DataFrame({
            "group": group,
            # Each control gets its own index, so two controls never form a positive pair; every
            # treated row shares -1, so two treatments never form a negative pair.
            "reference": np.where(control, np.arange(len(samples)), -1),
        })
        sizes = meta[~control].groupby("group").size()
        if (sizes >= 2).sum() == 0:
            raise PluginError(f"map: no treatment group (by {', '.join(columns)}) has 2 or more replicates")
        return meta, feats, ["group", "reference"], ~control

    def _consistency(self, samples, columns, control, feats):
        import pandas as pd

        from .moa import consensus, group_values

        kept = samples.subset(~control)
        _, profiles, members = consensus(feats[~control], kept, columns, self.params["consensus"])
        moa = group_values(kept, self.params["moa"], members, self.name)
        counts = pd.Series(moa).value_counts()
        if (counts >= 2).sum() == 0:
            raise PluginError(f"map: no {self.params['moa']} value has 2 or more treatments")
        meta = pd.DataFrame({"group": moa})
        return meta, profiles, ["group"], np.ones(len(moa), dtype=bool)
