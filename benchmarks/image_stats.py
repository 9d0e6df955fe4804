"""What seed 001's per-file QC statistics add to ingest.

    .venv/bin/python benchmarks/image_stats.py [--side 2054] [--rounds 5]

On full-size synthetic focal stacks of 1, 3 and 5 layers (uint16, the seed's 2054 px), the time of
`layer_statistics` (log-log power-spectrum slope on the central 512 px, exact histogram
quantiles, percent at the maximum, per layer) against the crop it rides along with
(`preprocess_stack`: layer selection, object location, crop, resize) on the same stack, rounds
alternated. Prints both and the ratio statistics / crop; reading the file comes on top of both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from phenorank.core.image_quality import layer_statistics
from phenorank.core.preprocess import PreprocessParams, preprocess_stack
from phenorank.core.synthetic_plate import focal_stack


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2054)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:args.side, 0:args.side]
    disk = ((yy - args.side / 2) ** 2 + (xx - args.side / 2) ** 2) < (args.side / 5) ** 2
    image = np.clip(np.where(disk, 0.3, 0.8) + rng.normal(0, 0.02, disk.shape), 0, 1).astype(np.float32)
    for layers in (1, 3, 5):
        stack = focal_stack(rng, image, layers)
        crop, stats = [], []
        for _ in range(args.rounds):  # alternated, so a slow moment of the machine hits both
            crop.append(timed(lambda: preprocess_stack(stack, PreprocessParams())))
            stats.append(timed(lambda: layer_statistics(stack)))
        c, s = float(np.median(crop)), float(np.median(stats))
        print(f"{layers} layer(s) of {args.side} px: crop {c * 1000:7.1f} ms, statistics {s * 1000:7.1f} ms, "
              f"statistics / crop {s / c:.2f}")


if __name__ == "__main__":
    main()
