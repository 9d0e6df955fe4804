"""Data the benchmarks generate for themselves."""

from __future__ import annotations

import numpy as np


def synthetic_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n uint16 crops (3, size, size): a dark disk of random size and place on a bright field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, 3, size, size), np.uint16)
    for i in range(n):
        cy, cx, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.12, 0.3)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image = np.where(disk, rng.uniform(0.2, 0.5), 0.8) + rng.normal(0, 0.02, (3, size, size))
        out[i] = np.rint(np.clip(image, 0, 1) * 65535)
    return out
