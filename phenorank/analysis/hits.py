"""Hit calling: each treatment (and dose) against the negative control with a non-parametric test
(Mann-Whitney U; Kruskal-Wallis across a drug's doses), effect sizes (Cohen's d, Cliff's delta)
and multiple-testing corrections (Benjamini-Hochberg and Holm, from statsmodels)."""

from __future__ import annotations

import numpy as np


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) - P(a < b) over all pairs: -1..1, robust to outliers and scale."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    greater = np.searchsorted(b, a, side="left").sum()  # pairs with b < a
    less = (len(b) - np.searchsorted(b, a, side="right")).sum()  # pairs with b > a
    return float((greater - less) / (len(a) * len(b)))


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Difference of means over the pooled standard deviation (ddof 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def mean_interval(values: np.ndarray, seed: int = 0) -> tuple[float | None, float | None]:
    """95% percentile bootstrap interval of the mean (scipy.stats.bootstrap); None for fewer than
    two values or no spread."""
    from scipy.stats import bootstrap

    values = np.asarray(values, np.float64)
    if len(values) < 2 or np.ptp(values) == 0:
        return None, None
    result = bootstrap((values,), np.mean, n_resamples=2000, method="percentile", random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def call_hits(values: np.ndarray, samples, control: str = "control", fdr: float = 0.05,
              alternative: str = "two-sided", by: tuple[str, ...] = ("treatment", "concentration")) -> list[dict]:
    """One row per treatment group (``by``) that is not the control: n, median, mean with its 95%
    bootstrap interval (a growth fold change per treatment, for instance), the test's p, BH
    q and Holm-adjusted p over all groups, Cohen's d, Cliff's delta, and ``hit`` (q < ``fdr``);
    plus each drug's Kruskal-Wallis p across its doses. Strongest evidence first."""
    from scipy.stats import kruskal, mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    values = np.asarray(values, np.float64)
    treatment = samples["treatment"].astype(str)
    condition = samples["condition"].astype(str) if "condition" in samples else treatment
    is_control = samples.matching(control)
    if is_control.sum() < 2:
        raise ValueError(f"hits need at least 2 {control!r} wells to compare against; found {int(is_control.sum())}")
    reference = values[is_control]
    keys = np.array(["|".join(_text(samples[c][i]) for c in by) for i in range(len(values))], dtype=object)
    rows = []
    for key in sorted(set(keys[~is_control])):
        members = (keys == key) & ~is_control
        group = values[members]
        p = float(mannwhitneyu(group, reference, alternative=alternative).pvalue) if len(group) >= 1 else np.nan
        low, high = mean_interval(group)
        rows.append({"group": key, "treatment": treatment[members][0], "condition": condition[members][0],
                     "n": int(members.sum()), "n_control": int(is_control.sum()), "median": float(np.median(group)),
                     "mean": float(group.mean()), "ci_low": low, "ci_high": high,
                     "control_median": float(np.median(reference)), "p_value": p,
                     "cohens_d": cohens_d(group, reference) if len(group) > 1 else float("nan"),
                     "cliffs_delta": cliffs_delta(group, reference)})
    if not rows:
        return []
    p = np.array([r["p_value"] for r in rows])
    q = multipletests(p, alpha=fdr, method="fdr_bh")[1]
    holm = multipletests(p, alpha=fdr, method="holm")[1]
    drugs = {}
    for name in {r["treatment"] for r in rows}:
        doses = [values[(treatment == name) & (keys == r["group"])] for r in rows if r["treatment"] == name]
        doses = [d for d in doses if len(d)]
        if len(doses) >= 2 and len(np.unique(np.concatenate(doses))) > 1:
            drugs[name] = float(kruskal(*doses).pvalue)
    for row, q_value, holm_p in zip(rows, q, holm):
        row.update(q_value=float(q_value), holm_p=float(holm_p), hit=bool(q_value < fdr),
                   kruskal_p=drugs.get(row["treatment"], float("nan")))
    return sorted(rows, key=lambda r: (r["q_value"], -abs(r["cliffs_delta"]), r["group"]))


def _text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{float(value):g}"
    return "" if value is None else str(value)
