"""Replicate-retrieval average precision against controls, exact, in blocks of queries.

copairs lists every (treated, control) negative pair before it ranks them: 90k treated wells
and 10k controls are 900M pairs, which no memory holds. Here the ranks come from counts instead:
a query's j-th most similar replicate ranks j + (controls more similar than it), so one block of
queries x all controls of similarities at a time is all there is, and the AP is exactly copairs'
(same similarity, same ranks; tested against it). The result has copairs' columns, so its
``mean_average_precision`` (permutation null per configuration, Benjamini-Hochberg) takes it
unchanged.
"""

from __future__ import annotations

import numpy as np

SIMILARITIES = ("cosine", "correlation", "abs_cosine", "euclidean")


def _prepare(feats: np.ndarray, similarity: str) -> np.ndarray:
    x = np.asarray(feats, dtype=np.float64)
    if similarity == "correlation":
        x = x - x.mean(axis=1, keepdims=True)
    if similarity in ("cosine", "correlation", "abs_cosine"):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return x


def _similarity(a: np.ndarray, b: np.ndarray, similarity: str) -> np.ndarray:
    """Larger = more alike; for euclidean the negative distance, which orders as copairs'
    1 / (1 + distance)."""
    if similarity == "euclidean":
        squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
        return -np.sqrt(np.maximum(squared, 0))
    product = a @ b.T
    return np.abs(product) if similarity == "abs_cosine" else product


def activity_average_precision(feats: np.ndarray, groups: np.ndarray, control: np.ndarray,
                               similarity: str = "cosine", block_elements: int = 1 << 23):
    """Per treated row: AP of its replicates (same ``groups`` value, itself excluded) among them
    and every control; ``n_pos_pairs`` and ``n_total_pairs`` as copairs counts them for treated
    rows. Rows with no replicate and control rows get NaN. Memory: ``block_elements`` similarities at a time."""
    import pandas as pd
    from copairs.map.average_precision import normalize_ap

    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}")
    x = _prepare(feats, similarity)
    controls = x[control]
    n_neg = len(controls)
    treated = np.flatnonzero(~control)
    _, codes = np.unique(np.asarray(groups)[treated].astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ap = np.full(len(x), np.nan)
    n_pos = np.zeros(len(x), dtype=np.int64)
    per_block = max(1, block_elements // max(n_neg, 1))
    # queries in group order, so a block holds whole groups and their replicate similarities
    blocks, current, filled = [], [], 0
    for g in np.flatnonzero(sizes >= 2):
        current.append(g)
        filled += sizes[g]
        if filled >= per_block:
            blocks.append(current)
            current, filled = [], 0
    if current:
        blocks.append(current)
    for block in blocks:
        members = [treated[order[starts[g]:starts[g] + sizes[g]]] for g in block]
        queries = np.concatenate(members)
        negatives = _similarity(x[queries], controls, similarity)  # (queries, controls)
        row = 0
        for rows in members:
            m = len(rows) - 1
            positives = _similarity(x[rows], x[rows], similarity)
            positives = positives[~np.eye(len(rows), dtype=bool)].reshape(len(rows), m)
            positives = -np.sort(-positives, axis=1)  # most similar first
            block_negatives = negatives[row:row + len(rows)]
            above = (block_negatives[:, None, :] > positives[:, :, None]).sum(axis=2)  # (rows, m)
            ranks = np.arange(1, m + 1)[None, :] + above
            ap[rows] = (np.arange(1, m + 1)[None, :] / ranks).mean(axis=1)
            n_pos[rows] = m
            row += len(rows)
    paired = n_pos > 0
    total = np.where(control, 0, n_pos + n_neg)  # controls are no queries here
    normalized = np.full(len(x), np.nan)
    normalized[paired] = normalize_ap(ap[paired], n_pos[paired], total[paired] - n_pos[paired])
    return pd.DataFrame({"average_precision": ap, "n_pos_pairs": n_pos, "n_total_pairs": total,
                         "normalized_average_precision": normalized})
