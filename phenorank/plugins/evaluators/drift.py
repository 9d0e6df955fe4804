"""Acquisition drift between plates (seed 003 section 4.3): the maximum mean discrepancy (MMD)
between a plate's embeddings and a reference plate's, with a permutation p-value per plate.

A plate imaged out of focus, with another exposure or another batch of cells lands elsewhere in
embedding space; MMD with a Gaussian kernel measures how far apart the two clouds are as a
whole (zero when they are drawn from one distribution), and the permutation test says whether
the distance is larger than shuffling the plate labels gives.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import Evaluation, Evaluator, PluginError, Subject


def gaussian_kernel(z: np.ndarray, bandwidth: float | None = None) -> tuple[np.ndarray, float]:
    """exp(-|a - b|^2 / (2 bandwidth^2)) over all rows of ``z``; the bandwidth defaults to the
    median distance between two rows (the usual median heuristic)."""
    squared = np.square(z).sum(axis=1)
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2 * z @ z.T, 0.0)
    if bandwidth is None:
        upper = d2[np.triu_indices(len(z), 1)]
        bandwidth = float(np.sqrt(np.median(upper))) if len(upper) and np.median(upper) > 0 else 1.0
    return np.exp(-d2 / (2 * bandwidth ** 2)), bandwidth


def mmd2_permutations(kernel: np.ndarray, n_first: int, permutations: int, seed: int) -> tuple[float, np.ndarray]:
    """The unbiased MMD^2 of the first ``n_first`` rows against the rest, and its values under
    ``permutations`` random relabellings (one matrix product for all of them)."""
    total = len(kernel)
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, total))
    labels[0, :n_first] = 1
    for row in labels[1:]:
        row[rng.choice(total, n_first, replace=False)] = 1
    diagonal = np.diag(kernel)
    n, m = n_first, total - n_first
    first, second = labels, 1 - labels
    k_first = first @ kernel
    within_first = ((k_first * first).sum(axis=1) - first @ diagonal) / (n * (n - 1))
    within_second = (((second @ kernel) * second).sum(axis=1) - second @ diagonal) / (m * (m - 1))
    between = (k_first * second).sum(axis=1) / (n * m)
    values = within_first + within_second - 2 * between
    return float(values[0]), values[1:]


class PlateDrift(Evaluator):
    """MMD^2 of each plate against ``reference_plate`` (default: the first plate in sort order),
    with a permutation p-value (``permutations`` relabellings) and Benjamini-Hochberg q-values
    over plates. ``rows``: the condition or treatment whose wells are compared (default the
    controls, which should look alike on every plate; ``all`` compares every well). Features
    are z-scored with the reference plate's rows first; at most ``max_items`` rows per plate are
    drawn. Per plate (table ``evaluation_groups``): mmd2, p_value, q_value, n."""

    name = "drift-mmd"
    needs = "embeddings"
    defaults = {"by": "plate", "reference_plate": "", "rows": "control", "permutations": 500, "max_items": 300,
                "standardize": True, "seed": 0}

    def evaluate(self, subject: Subject) -> Evaluation:
        from statsmodels.stats.multitest import multipletests

        samples, p = subject.samples, self.params
        x = np.asarray(subject.embeddings, dtype=np.float64)
        plates = samples[p["by"]].astype(str)
        keep = np.ones(len(samples), bool) if p["rows"] == "all" else samples.matching(str(p["rows"]))
        if not keep.any():
            raise PluginError(f"drift-mmd: no rows with condition or treatment {p['rows']!r} (rows=all compares all)")
        names = sorted(set(plates[keep]))
        reference = str(p["reference_plate"]) or names[0]
        if reference not in names:
            raise PluginError(f"drift-mmd: reference plate {reference!r} has no such rows; plates: {', '.join(names)}")
        if len(names) < 2:
            raise PluginError(f"drift-mmd needs 2 or more values of {p['by']!r}; there is {len(names)}")
        rng = np.random.default_rng(int(p["seed"]))

        def rows_of(plate: str) -> np.ndarray:
            rows = np.flatnonzero(keep & (plates == plate))
            cap = int(p["max_items"])
            return np.sort(rng.choice(rows, cap, replace=False)) if len(rows) > cap else rows

        base = rows_of(reference)
        if p["standardize"]:
            mean, std = x[base].mean(axis=0), x[base].std(axis=0)
            x = (x - mean) / np.where(std > 0, std, 1.0)
        groups, p_values = {}, []
        for plate in names:
            if plate == reference:
                continue
            other = rows_of(plate)
            if len(base) < 2 or len(other) < 2:
                raise PluginError(f"drift-mmd: plates {reference} and {plate} need 2 or more rows each")
            kernel, _ = gaussian_kernel(np.concatenate([x[base], x[other]]))
            value, null = mmd2_permutations(kernel, len(base), int(p["permutations"]), int(p["seed"]))
            p_value = (1 + int((null >= value).sum())) / (len(null) + 1)
            groups[plate] = {"mmd2": value, "p_value": p_value, "n": float(len(other))}
            p_values.append(p_value)
        q_values = multipletests(p_values, method="fdr_bh")[1]
        for group, q in zip(groups.values(), q_values):
            group["q_value"] = float(q)
        values = {"mmd2_max": max(g["mmd2"] for g in groups.values()),
                  "drifted_plates": float(sum(g["q_value"] < 0.05 for g in groups.values())),
                  "plates": float(len(groups))}
        return Evaluation(values=values, groups=groups,
                          details={"reference_plate": reference, "rows": p["rows"], "n_reference": len(base)})
