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


def leave_glibc_alone() -> None:
    """In this process, phenorank's ``keep_large_blocks`` changes nothing (as if it had run and
    glibc had refused): the baseline of an allocator comparison."""
    import phenorank.core.allocator as allocator

    allocator._state["set"] = False


def allocator_ab(script: str, child_args: list[str], processes: int = 2) -> dict[str, float]:
    """Best seconds over fresh processes of ``script --child <setting> *child_args`` (which prints
    its best seconds as the last line), glibc's allocator as it comes ("default") against large
    blocks kept ("kept", what phenorank sets), the two settings taking turns."""
    import subprocess
    import sys

    best = {"default": float("inf"), "kept": float("inf")}
    for _ in range(processes):
        for setting in best:
            out = subprocess.run([sys.executable, script, "--child", setting, *map(str, child_args)],
                                 check=True, capture_output=True, text=True).stdout
            best[setting] = min(best[setting], float(out.strip().splitlines()[-1]))
    return best


def store_with_crops(path, pixels: np.ndarray):
    """A new store at ``path`` holding ``pixels`` (N, 3, S, S) uint16 as crops of preprocess key
    "k", ids img000000...; returns the open store (close it) and the ids."""
    from phenorank.core.store import open_store

    ids = [f"img{i:06d}" for i in range(len(pixels))]
    store = open_store(path)
    store.write_images([{"image_id": i, "path": f"/x/{i}.tif", "day": 10} for i in ids],
                       [{"image_id": i, "preprocess_key": "k", "size": pixels.shape[-1], "crop_x": 0, "crop_y": 0,
                         "crop_side": pixels.shape[-1], "layers_used": [0, 1, 2],
                         "pixels": p.astype("<u2").tobytes()} for i, p in zip(ids, pixels)], "bench", fresh=True)
    return store, ids
