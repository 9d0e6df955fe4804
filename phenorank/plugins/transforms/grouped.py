"""What the transforms share: the rows they are fitted on (reference or all), and fitting per
group of rows (per plate, per batch)."""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Samples, Transform


def group_labels(samples: Samples, by: str) -> np.ndarray:
    """Each row's group: the values of column ``by`` (``none``: one group of every row)."""
    if by in ("", "none"):
        return np.zeros(len(samples), dtype=object)
    values = samples[by]  # names the available columns when missing
    labels = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
                      dtype=object)
    if (labels == "").any():
        raise PluginError(f"{(labels == '').sum()} row(s) have no {by}; every row needs one to be fitted per {by} "
                          f"(or set by=none)")
    return labels


def fit_per_group(name: str, x: np.ndarray, samples: Samples, rows: np.ndarray, by: str, fit) -> dict:
    """``fit(x[rows of the group])`` for each group of ``by``; a group without fitting rows is an
    error naming it (its rows could not be transformed)."""
    labels = group_labels(samples, by)
    fitted = {}
    for group in np.unique(labels):
        members = rows & (labels == group)
        if not members.any():
            where = f"{by} {group!r}" if by not in ("", "none") else "the data"
            raise PluginError(f"{name}: {where} has no reference rows to fit on")
        fitted[group] = fit(x[members])
    return fitted


def apply_per_group(x: np.ndarray, samples: Samples, by: str, fitted: dict, apply) -> np.ndarray:
    labels = group_labels(samples, by)
    out = np.empty_like(x, dtype=np.float64)
    for group in np.unique(labels):
        if group not in fitted:
            raise PluginError(f"{by} {group!r} was not seen when fitting")
        members = labels == group
        out[members] = apply(x[members], fitted[group])
    return out


def fit_rows(transform: Transform, reference: np.ndarray | None, n: int) -> np.ndarray:
    """The rows a transform learns from: the reference rows, or every row (``fit_on=all``)."""
    fit_on = transform.params.get("fit_on", "reference")
    if fit_on == "all":
        return np.ones(n, dtype=bool)
    if fit_on != "reference":
        raise PluginError(f"{transform.name}: fit_on must be 'reference' or 'all', got {fit_on!r}")
    if reference is None or not np.any(reference):
        raise PluginError(f"{transform.name} is fitted on reference rows and got none: name them (--reference "
                          "DMSO, --normalize-to control) or set fit_on=all")
    return np.asarray(reference, dtype=bool)
