"""Choosing which images an evaluator looks at: class filters and balanced subsampling, so the
four data set variants of seed 000 table 8.5 are parameters:

    full (unbalanced)   classes=control,single_dose,exploded
    40 subset           ... balance=min            (every class drawn down to the smallest)
    curated full        ... where=debris!=true     (a manifest column marks debris controls)
    curated 40 subset   ... where=debris!=true balance=min
"""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import truthy
from phenorank.registry import PluginError, Samples


def as_list(value) -> list[str]:
    """A list parameter given in Python (a list) or on the command line ("a,b,c")."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


def where_mask(samples: Samples, conditions) -> np.ndarray:
    """``column=value`` / ``column!=value`` conditions, all of which must hold (comma- or list-
    separated). A value of true/false compares the column read as booleans."""
    mask = np.ones(len(samples), dtype=bool)
    for condition in as_list(conditions or []):
        negate = "!=" in condition
        column, _, value = condition.partition("!=" if negate else "=")
        column, value = column.strip(), value.strip()
        if not column or not _:
            raise PluginError(f"where: {condition!r} is not COLUMN=VALUE or COLUMN!=VALUE")
        values = samples[column]
        if value.lower() in ("true", "false"):
            hit = truthy(values) == (value.lower() == "true")
        else:
            hit = values.astype(str) == value
        mask &= ~hit if negate else hit
    return mask


def class_indices(samples: Samples, label: str, classes: list[str], where=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images of the given classes passing ``where``, and their class numbers.
    ``classes`` ``all`` (or empty) takes every value of the label column, sorted."""
    labels = samples[label].astype(str)
    if not classes or list(classes) == ["all"]:
        classes = sorted(set(labels[where_mask(samples, where)]) - {"", "None", "nan"})
    keep = np.isin(labels, classes) & where_mask(samples, where)
    index = np.flatnonzero(keep)
    codes = np.array([classes.index(v) for v in labels[index]], dtype=int)
    missing = [c for i, c in enumerate(classes) if not (codes == i).any()]
    if missing:
        raise PluginError(f"no images of class(es) {', '.join(missing)} (column {label!r}"
                          + (f", where {where}" if where else "") + ")")
    return index, codes


def balanced(codes: np.ndarray, balance, rng: np.random.Generator) -> np.ndarray:
    """Positions into ``codes`` keeping at most n per class: n = the smallest class (``min``) or a
    number; ``none`` keeps all."""
    if balance in (None, "none", "", False, "false"):
        return np.arange(len(codes))
    counts = np.bincount(codes)
    size = int(counts[counts > 0].min()) if balance == "min" else int(balance)
    picked = [rng.choice(np.flatnonzero(codes == c), min(size, counts[c]), replace=False)
              for c in range(len(counts)) if counts[c]]
    return np.sort(np.concatenate(picked))
