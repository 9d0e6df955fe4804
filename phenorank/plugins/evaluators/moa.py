"""Mechanism-of-action evaluators at the field's standard (Ljosa et al. 2013 on BBBC021): treatment
profiles (the consensus of a treatment's wells) are matched to their nearest neighbour among the
other treatments, never among the same compound's other doses (not-same-compound, NSC) and,
for NSCB, never within the same batch either; the match is right when the mechanisms agree."""

from __future__ import annotations

import numpy as np

from phenorank.registry import Evaluation, Evaluator, PluginError, Samples, Subject

from .selection import as_list


def consensus(x: np.ndarray, samples: Samples, columns: list[str], how: str = "median"
              ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One profile per distinct value of ``columns`` (e.g. treatment + concentration): the median
    or mean of its rows. Returns (group keys, profiles, each group's row indices)."""
    if how not in ("mean", "median"):
        raise PluginError(f"consensus must be 'mean' or 'median', got {how!r}")
    keys = np.array(["|".join(str(samples[c][i]) for c in columns) for i in range(len(samples))], dtype=object)
    names, inverse = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    reduce = np.median if how == "median" else np.mean
    return names, np.stack([reduce(x[rows], axis=0) for rows in members]), members


def group_values(samples: Samples, column: str, members: list[np.ndarray], what: str) -> np.ndarray:
    """The value of ``column`` shared by each group's rows; a group whose rows disagree is an error
    (a treatment with two mechanisms cannot be scored)."""
    values = samples[column].astype(str)
    out = []
    for rows in members:
        distinct = set(values[rows])
        if len(distinct) != 1:
            raise PluginError(f"{what}: a group's rows disagree on {column} ({', '.join(sorted(distinct)[:4])})")
        out.append(distinct.pop())
    return np.array(out, dtype=object)


class NotSameCompoundAccuracy(Evaluator):
    """1-nearest-neighbour mechanism accuracy over treatment profiles, the same compound excluded.

    Rows (wells) are reduced to one profile per ``group`` (treatment and concentration) by
    ``consensus`` (median); controls (``control`` as label, condition or treatment) are left out.
    Each profile's neighbours, by the metric plugin ``metric``, exclude profiles sharing the
    ``exclude`` column (the compound); NSCB also excludes those sharing ``batch`` (any of its
    rows' batches, e.g. plate), when ``batch`` is set. Values: nsc_accuracy, nsc_top{k} (the
    label among the k nearest), nscb_accuracy, and not_excluded_accuracy (the same compound
    allowed: the leakage NSC guards against). The interval bootstraps the treatments."""

    name = "nsc-accuracy"
    needs = "embeddings"
    defaults = {"label": "Metadata_MoA", "exclude": "treatment", "batch": "", "group": ["treatment", "concentration"],
                "consensus": "median", "control": "DMSO", "metric": "cosine", "k": 5, "seed": 0, "bootstrap": 1000}

    def evaluate(self, subject: Subject) -> Evaluation:
        from phenorank.registry import get_registry

        samples, p = subject.samples, self.params
        keep = ~samples.matching(p["control"], (p["label"], "condition", "treatment"))
        if keep.sum() < 2:
            raise PluginError(f"nsc-accuracy: fewer than 2 non-control rows (control {p['control']!r})")
        samples = samples.subset(keep)
        x = np.asarray(subject.embeddings, np.float64)[keep]
        names, profiles, members = consensus(x, samples, as_list(p["group"]), p["consensus"])
        labels = group_values(samples, p["label"], members, self.name)
        compounds = group_values(samples, p["exclude"], members, self.name)
        if len(set(compounds)) < 2:
            raise PluginError(f"nsc-accuracy: one {p['exclude']} only; nothing left after excluding it")
        metric = get_registry().create("metric", p["metric"])
        distance = metric.distance(profiles, profiles)
        np.fill_diagonal(distance, np.inf)
        same_compound = compounds[:, None] == compounds[None, :]
        k = int(p["k"])
        values, details, intervals, groups = {}, {"n_treatments": len(names), "labels": sorted(set(labels))}, {}, {}
        nsc = np.where(same_compound, np.inf, distance)
        hit, hit_k = self._matches(nsc, labels, k)
        free, _ = self._matches(distance, labels, 1)
        values["nsc_accuracy"], values[f"nsc_top{k}"] = float(np.nanmean(hit)), float(np.nanmean(hit_k))
        values["not_excluded_accuracy"] = float(np.nanmean(free))
        if p["batch"]:
            batches = [set(samples[p["batch"]].astype(str)[rows]) for rows in members]
            shared = np.array([[bool(a & b) for b in batches] for a in batches])
            nscb, _ = self._matches(np.where(same_compound | shared, np.inf, distance), labels, k)
            if np.isfinite(nscb).any():
                values["nscb_accuracy"] = float(np.nanmean(nscb))
                details["nscb_treatments"] = int(np.isfinite(nscb).sum())
            else:
                details["nscb"] = f"every other treatment shares a {p['batch']} with each treatment: NSCB is undefined"
        scored = np.isfinite(hit)
        rng = np.random.default_rng(int(p["seed"]))
        draws = [np.mean(hit[scored][rng.integers(scored.sum(), size=scored.sum())]) for _ in range(int(p["bootstrap"]))]
        if draws:
            intervals["nsc_accuracy"] = tuple(float(v) for v in np.percentile(draws, [2.5, 97.5]))
        for i, name in enumerate(names):
            if np.isfinite(hit[i]):
                groups[str(name)] = {"nsc_correct": float(hit[i]), f"nsc_top{k}_correct": float(hit_k[i])}
        per_label = {str(lab): float(np.nanmean(hit[labels == lab])) for lab in sorted(set(labels))}
        details["per_label_accuracy"] = per_label
        return Evaluation(values=values, details=details, intervals=intervals, groups=groups)

    @staticmethod
    def _matches(distance: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query: does its nearest (and any of its k nearest) allowed neighbour share its label
        (NaN where no neighbour is allowed)."""
        order = np.argsort(distance, axis=1, kind="stable")
        allowed = np.isfinite(np.take_along_axis(distance, order, axis=1))
        same = labels[order] == labels[:, None]
        top1 = np.where(allowed[:, 0], same[:, 0], np.nan)
        top_k = np.where(allowed[:, 0], (same[:, :k] & allowed[:, :k]).any(axis=1), np.nan)
        return top1.astype(float), top_k.astype(float)
