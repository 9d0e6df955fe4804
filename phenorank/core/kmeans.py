"""k-means (euclidean and spherical) from many k-means++ starts at once.

Seed 000 scores an embedding by k-means from 400 starts. One scikit-learn fit at a time spent
0.2 s per start on 20k x 512 (320 s for both geometries at 100k items); here a block of starts
shares each Lloyd iteration: every start's centres are stacked, so assigning points is one matrix
product and the new centres another (a one-hot matrix times the points). Starts that converged
leave the block, so the rest do not pay for them.

Euclidean k-means is scikit-learn's Lloyd algorithm step for step (its k-means++ start for the
same seed, its tolerance ``tol`` x the mean feature variance, its relocation of an empty cluster
to the points furthest from their centres, its final assignment), so the labels are KMeans's:
tested against it. ``geometry="cosine"`` is spherical k-means (scikit-learn has none): points of
unit length join the centre of highest cosine similarity, a centre is the normalized sum of its
points; it stops by the same rule (no label changes, or the centres moved less than ``tol`` x the
points' mean variance).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .statistics import unit_rows

GEOMETRIES = ("euclidean", "cosine")


def kmeans(x: np.ndarray, k: int, geometry: str = "euclidean", seed: int = 0, max_iter: int = 300
           ) -> tuple[np.ndarray, np.ndarray]:
    """One k-means run from one k-means++ start; returns (labels, centres)."""
    labels, centres = kmeans_starts(np.asarray(x, dtype=np.float64), k, [seed], geometry, max_iter)
    return labels[0], centres[0]


def kmeans_starts(x: np.ndarray, k: int, seeds: Sequence[int], geometry: str = "euclidean",
                  max_iter: int = 300, tol: float = 1e-4, block_entries: int = 1 << 24
                  ) -> tuple[np.ndarray, np.ndarray]:
    """k-means from one k-means++ start per seed; returns labels (starts, n) and centres
    (starts, k, d). Computes in ``x``'s floating type (float32 halves the time; ties may then
    fall otherwise than in float64). Starts run in blocks whose point-to-centre matrix holds at
    most ``block_entries`` values (64 MB in float32)."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be 'euclidean' or 'cosine', got {geometry!r}")
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    points = unit_rows(x).astype(x.dtype) if geometry == "cosine" else x
    n, d = points.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means: k={k} needs 1..{n} points")
    # scikit-learn's tolerance, in both geometries: relative to the points' mean variance (spherical
    # k-means with only "no label changes" ran 70 iterations a start, some the full 300, flipping a
    # point or two back and forth in float32)
    tolerance = float(np.mean(np.var(points, axis=0))) * tol
    seeds = [int(s) for s in seeds]
    labels = np.empty((len(seeds), n), dtype=np.int64)
    centres = np.empty((len(seeds), k, d), dtype=points.dtype)
    per_block = max(1, block_entries // (n * k))
    for start in range(0, len(seeds), per_block):
        block = seeds[start:start + per_block]
        init = _plusplus(points, k, block)
        if geometry == "cosine":
            init = unit_rows(init.reshape(-1, d)).astype(points.dtype).reshape(init.shape)
        got_labels, got_centres = _lloyd(points, init, geometry, max_iter, tolerance)
        labels[start:start + len(block)], centres[start:start + len(block)] = got_labels, got_centres
    return labels, centres


def _plusplus(points: np.ndarray, k: int, seeds: Sequence[int]) -> np.ndarray:
    """scikit-learn's greedy k-means++ start (``kmeans_plusplus``: 2 + log k candidates per centre,
    the one that lowers the potential most kept), for many seeds at once: the same random numbers
    from each seed's RandomState, the candidates' distances of all starts in one product. Returns
    centres (starts, k, d)."""
    n = len(points)
    trials = 2 + int(np.log(k))
    states = [np.random.RandomState(seed) for seed in seeds]
    norms = np.einsum("ij,ij->i", points, points)
    rows = np.arange(len(states))

    def squared_distances(ids: np.ndarray) -> np.ndarray:
        out = points[ids] @ points.T
        out *= -2
        out += norms[ids][:, None]
        out += norms[None, :]
        return np.maximum(out, 0, out=out)

    chosen = [np.array([state.choice(n, p=np.full(n, 1 / n)) for state in states])]
    closest = squared_distances(chosen[0])
    potential = closest.sum(axis=1, dtype=np.float64)
    for _ in range(1, k):
        targets = np.stack([state.uniform(size=trials) for state in states]) * potential[:, None]
        cumulative = np.cumsum(closest, axis=1, dtype=np.float64)
        candidates = np.minimum(np.stack([np.searchsorted(c, t) for c, t in zip(cumulative, targets)]), n - 1)
        distances = squared_distances(candidates.ravel()).reshape(len(states), trials, n)
        np.minimum(closest[:, None, :], distances, out=distances)
        potentials = distances.sum(axis=2, dtype=np.float64)
        best = potentials.argmin(axis=1)
        potential, closest = potentials[rows, best], distances[rows, best]
        chosen.append(candidates[rows, best])
    return points[np.stack(chosen, axis=1)]


def _assign(points: np.ndarray, centres: np.ndarray, geometry: str) -> np.ndarray:
    """Labels (starts, n) of each point under each start's centres (starts, k, d)."""
    s, k, d = centres.shape
    flat = centres.reshape(s * k, d)
    score = flat @ points.T  # (s*k, n): a start's k scores of a point lie k rows apart, n contiguous
    if geometry == "euclidean":  # argmin |x - c|^2 = argmax x.c - |c|^2 / 2
        score -= 0.5 * np.einsum("ij,ij->i", flat, flat)[:, None]
    score = score.reshape(s, k, -1)
    # argmax over k by k contiguous passes (argmax along a short strided axis was half the time)
    labels, best = np.zeros((s, score.shape[2]), dtype=np.int64), score[:, 0].copy()
    for cluster in range(1, k):
        better = score[:, cluster] > best
        labels[better] = cluster
        np.maximum(best, score[:, cluster], out=best)
    return labels


def _sums(points: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each start's per-cluster sums of points (starts, k, d) and counts (starts, k): one product
    of a one-hot matrix with the points."""
    one_hot = (labels[:, None, :] == np.arange(k)[None, :, None]).astype(points.dtype)  # (s, k, n)
    counts = one_hot.sum(axis=2, dtype=np.float64).astype(np.int64)
    sums = (one_hot.reshape(-1, labels.shape[1]) @ points).reshape(len(labels), k, -1)
    return sums, counts


def _lloyd(points: np.ndarray, centres: np.ndarray, geometry: str, max_iter: int, tolerance: float
           ) -> tuple[np.ndarray, np.ndarray]:
    s, k, _ = centres.shape
    centres = centres.copy()
    labels = np.full((s, len(points)), -1, dtype=np.int64)
    active = np.arange(s)
    for _ in range(max_iter):
        if not len(active):
            break
        new = _assign(points, centres[active], geometry)
        sums, counts = _sums(points, new, k)
        if geometry == "euclidean":
            moved = sums / np.maximum(counts, 1)[..., None]
        else:
            moved = unit_rows(sums.reshape(-1, sums.shape[-1])).astype(points.dtype).reshape(sums.shape)
        for row in np.flatnonzero((counts == 0).any(axis=1)):
            _relocate_empty(points, centres[active[row]], moved[row], new[row], counts[row], geometry)
        strict = (new == labels[active]).all(axis=1)
        shift = ((moved - centres[active]) ** 2).sum(axis=(1, 2))
        centres[active] = moved
        active = active[~(strict | (shift <= tolerance))]
    return _assign(points, centres, geometry), centres  # scikit-learn: the labels of the final centres


def _relocate_empty(points, old, moved, labels, counts, geometry) -> None:
    """An empty cluster restarts at a point far from its centre (scikit-learn's rule: the points
    furthest from the centres they were assigned to, one per empty cluster, taken from the
    cluster they leave). ``moved`` (and, spherical, ``labels``) change in place."""
    empty = np.flatnonzero(counts == 0)
    if geometry == "euclidean":
        distance = ((points - old[labels]) ** 2).sum(axis=1)
    else:
        distance = -np.einsum("ij,ij->i", points, old[labels])
    far = np.argsort(distance, kind="stable")[::-1][:len(empty)]
    for cluster, point in zip(empty, far):
        donor = labels[point]
        if geometry == "euclidean" and counts[donor] > 1:
            moved[donor] = (moved[donor] * counts[donor] - points[point]) / (counts[donor] - 1)
            counts[donor] -= 1
        moved[cluster] = points[point]
        counts[cluster] = 1
        if geometry == "cosine":
            labels[point] = cluster
