"""Average precision without pair lists, exact, in blocks of queries: replicate retrieval against
controls (``activity``), and treatments' retrieval of their mechanism (``consistency``).

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


def _replicates(x: np.ndarray, block: np.ndarray, similarity: str) -> np.ndarray:
    """For groups of one size (``block``: groups x size row numbers), each member's similarity to
    the other members, most similar first: (groups x size, size - 1)."""
    groups, size = block.shape
    a = x[block]  # (groups, size, features)
    if similarity == "euclidean":
        squared = (a * a).sum(axis=2)
        values = -np.sqrt(np.maximum(squared[:, :, None] + squared[:, None, :] - 2 * a @ a.transpose(0, 2, 1), 0))
    else:
        values = a @ a.transpose(0, 2, 1)
        values = np.abs(values) if similarity == "abs_cosine" else values
    others = values[:, ~np.eye(size, dtype=bool)].reshape(groups * size, size - 1)
    return -np.sort(-others, axis=1)


def _ap(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """AP per row: ``positives`` sorted most similar first (queries x m), ``negatives`` (queries x
    n). The j-th positive ranks j + (negatives more similar than it); a tie goes to the positive.
    Few positives (replicates): counted against every negative; many: one sort per row."""
    m = positives.shape[1]
    if m <= 16:
        above = np.stack([(negatives > positives[:, [j]]).sum(axis=1) for j in range(m)], axis=1)
        ranks = np.arange(1, m + 1)[None, :] + above
        return (np.arange(1, m + 1)[None, :] / ranks).mean(axis=1)
    # many: each negative's place among the row's positives (a binary search), then for every
    # positive the negatives above it by a cumulative count; a full argsort of each row was 36 s
    # for 20k profiles of 50 mechanisms
    above = np.empty(positives.shape, dtype=np.int64)
    for row, (ranked, against) in enumerate(zip(positives, negatives)):
        place = np.searchsorted(ranked[::-1], against, side="left")  # positives (ascending) below it
        beaten = np.cumsum(np.bincount(place, minlength=m + 1)[::-1])[::-1]  # [a]: negatives above a-1 positives
        above[row] = beaten[1:][::-1]
    ranks = np.arange(1, m + 1)[None, :] + above
    return (np.arange(1, m + 1)[None, :] / ranks).mean(axis=1)


def activity_average_precision(feats: np.ndarray, groups: np.ndarray, control: np.ndarray,
                               similarity: str = "cosine", block_elements: int = 1 << 23):
    """Per treated row: AP of its replicates (same ``groups`` value, itself excluded) among them
    and every control; ``n_pos_pairs`` and ``n_total_pairs`` as copairs counts them for treated
    rows. Rows with no replicate and control rows get NaN. Memory: ``block_elements``
    similarities at a time."""
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
    for size in np.unique(sizes[sizes >= 2]):
        members = np.stack([treated[order[starts[g]:starts[g] + size]] for g in np.flatnonzero(sizes == size)])
        n_pos[members.ravel()] = size - 1
        if size <= 17:  # replicates: many groups of one size at once
            per_block = max(1, block_elements // (size * max(n_neg, 1)))
            for first in range(0, len(members), per_block):
                block = members[first:first + per_block]  # (groups, size)
                ap[block.ravel()] = _ap(_replicates(x, block, similarity),
                                        _similarity(x[block.ravel()], controls, similarity))
            continue
        for rows in members:  # a large group: its queries a block at a time
            chunk = max(1, block_elements // (max(n_neg, 1) + size))
            for first in range(0, size, chunk):
                queries = rows[first:first + chunk]
                ap[queries] = _ap(_others_first(_similarity(x[queries], x[rows], similarity), first),
                                  _similarity(x[queries], controls, similarity))
    return _frame(ap, n_pos, np.where(control, 0, n_pos + n_neg))  # controls are no queries here


def consistency_average_precision(feats: np.ndarray, groups: np.ndarray, similarity: str = "cosine",
                                  block_elements: int = 1 << 23):
    """Per row (a treatment's consensus profile): AP of the other rows of its group (the same
    mechanism) among every row, those of other groups being the negatives; copairs' consistency
    pairs (positives same group, negatives different group) without listing them. Rows alone in
    their group get NaN. Memory: ``block_elements`` similarities at a time."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}")
    x = _prepare(feats, similarity)
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    sizes = np.bincount(codes)
    ap = np.full(len(x), np.nan)
    n_pos = np.where(sizes[codes] >= 2, sizes[codes] - 1, 0)
    chunk = max(1, block_elements // max(len(x), 1))
    for group in np.flatnonzero(sizes >= 2):
        rows = np.flatnonzero(codes == group)
        others = codes != group
        for first in range(0, len(rows), chunk):
            queries = rows[first:first + chunk]
            values = _similarity(x[queries], x, similarity)
            ap[queries] = _ap(_others_first(values[:, rows], first), values[:, others])
    return _frame(ap, n_pos, np.full(len(x), len(x) - 1))


def _others_first(positives: np.ndarray, first: int) -> np.ndarray:
    """Each query's similarities to the other members of its group, most similar first:
    ``positives`` (queries x members) holds query i's row against every member, query i being
    member ``first + i``; its own entry is left out (set to NaN in place, which sorts last, then
    cut)."""
    positives[np.arange(len(positives)), np.arange(first, first + len(positives))] = np.nan
    return -np.sort(-positives, axis=1)[:, :positives.shape[1] - 1]


def _frame(ap: np.ndarray, n_pos: np.ndarray, total: np.ndarray):
    """copairs' columns, with its normalized AP (0 = chance for the row's configuration)."""
    import pandas as pd
    from copairs.map.normalization import expected_ap

    paired = n_pos > 0
    normalized = np.full(len(ap), np.nan)
    # copairs' normalize_ap sums a harmonic number in Python for every row (100 s for 90k rows of
    # 10k controls); its expected AP once per (positives, negatives) configuration is the same
    configurations, where = np.unique(np.stack([n_pos[paired], total[paired] - n_pos[paired]], axis=1), axis=0,
                                      return_inverse=True)
    mu0 = np.array([expected_ap(int(m), int(n)) for m, n in configurations])[where.ravel()]
    normalized[paired] = np.clip((ap[paired] - mu0) / np.maximum(1 - mu0, 1e-10), -1.0, 1.0)
    return pd.DataFrame({"average_precision": ap, "n_pos_pairs": n_pos, "n_total_pairs": total,
                         "normalized_average_precision": normalized})
