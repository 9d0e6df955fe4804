"""Tiled time-lapse ingest and EfficientNet-Lite0 embedding through phenorank vs bare loops.

    .venv/bin/python benchmarks/tiles.py [--frames 20] [--side 1024] [--tile 128] [--images 1024]

1. Ingest: a generated CTYX time-lapse (2 picture channels + 2 label masks, uint16) cut into
   tiles with per-tile truth. Baseline: read the whole file with tifffile, slice every tile,
   area-resize each picture channel to 96 px and compute coverage and centroid counts with the
   same NumPy code, all in memory. phenorank adds hashing, the store and its transactions.
   Target: phenorank (2 workers) within 1.5x of the bare loop.
2. Embedding: ImageNet EfficientNet-Lite0 over stored 96 px crops (DuckDB in, DuckDB out) vs the
   same model and input preparation over preloaded tensors. Target: at least 0.9x the bare rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks_common import synthetic_crops  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def write_movie(path: Path, frames: int, side: int, seed: int = 0) -> None:
    import tifffile

    rng = np.random.default_rng(seed)
    data = np.empty((4, frames, side, side), np.uint16)
    y, x = np.indices((side, side))
    for t in range(frames):
        data[0, t] = rng.integers(300, 12000, (side, side), dtype=np.uint16)
        data[1, t] = rng.integers(4000, 13000, (side, side), dtype=np.uint16)
        labels = ((y // 24) * (side // 24) + x // 24 + 1).astype(np.uint16)
        labels[rng.random((side, side)) < 0.3 + 0.02 * t] = 0
        data[2, t] = labels
        data[3, t] = np.where(labels > 0, labels, 0)
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "CTYX"})


def bare_tiles(path: Path, tile: int, size: int) -> int:
    import cv2
    import tifffile

    from phenorank.plugins.tiled import _mask_truth

    data = tifffile.imread(path)
    origins = list(range(0, data.shape[2] - tile + 1, tile))
    n = 0
    for t in range(data.shape[1]):
        for c in (2, 3):
            _mask_truth(data[c, t], origins, origins, tile)
        for y0 in origins:
            for x0 in origins:
                for c in (0, 1):
                    cv2.resize(data[c, t, y0:y0 + tile, x0:x0 + tile], (size, size), interpolation=cv2.INTER_AREA)
                n += 1
    return n


def ingest_case(args, tmp: Path) -> None:
    from phenorank.core.ingest import expand_entries, ingest
    from phenorank.core.manifest import entries_from_pattern
    from phenorank.core.preprocess import PreprocessParams
    from phenorank.core.store import open_store
    from phenorank.registry import get_registry

    folder = tmp / "movies"
    folder.mkdir()
    path = folder / "movie.tif"
    write_movie(path, args.frames, args.side)
    start = time.perf_counter()
    n = bare_tiles(path, args.tile, 96)
    bare = time.perf_counter() - start
    print(f"ingest: {args.frames} frames of {args.side}x{args.side} x 4 channels "
          f"({path.stat().st_size / 2 ** 20:.0f} MB) -> {n} tiles of {args.tile} px")
    print(f"  bare read + slice + resize + truth, in memory : {bare:6.2f} s   1.00x")
    loader = get_registry().create("loader", "tiff-tiles", {"channels": "0,1", "masks": "nuclei=2,cytoplasm=3",
                                                            "tile": args.tile, "condition": "t{time:02d}"})
    for workers in (1, 2):
        with open_store(tmp / f"tiles{workers}.duckdb") as store:
            start = time.perf_counter()
            entries, _ = entries_from_pattern(folder, "{name}.tif", defaults={"condition": "x"})
            expanded, rejected = expand_entries(entries, loader)
            report = ingest(expanded, loader, store, "bench", PreprocessParams(stack="channels"), workers)
            ours = time.perf_counter() - start
            assert report.ingested == n and not rejected, (report, n)
        print(f"  phenorank ingest, {workers} worker{'s' * (workers > 1)}              : {ours:6.2f} s   "
              f"{ours / bare:4.2f}x (target <= 1.5x with 2 workers)")


def embed_case(args, tmp: Path) -> None:
    import torch

    from phenorank.core.pipeline import embed
    from phenorank.core.store import open_store
    from phenorank.plugins.encoders.training import best_device
    from phenorank.registry import get_registry

    pixels = synthetic_crops(args.images, 96)
    encoder = get_registry().create("encoder", "imagenet-efficientnet-lite0", {"channels": "0,1"})
    images = pixels.astype(np.float32) / 65535.0
    encoder.embed(images[:4])  # builds the model; warm-up for both
    batch = 16 if best_device().type == "cpu" else 256
    device = best_device()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            encoder._features(torch.from_numpy(images[i:i + batch]).to(device)).cpu()
    bare = time.perf_counter() - start
    with open_store(tmp / "embed.duckdb") as store:
        ids = [f"img{i:06d}" for i in range(len(pixels))]
        store.write_images([{"image_id": i, "path": f"/x/{i}.tif"} for i in ids],
                           [{"image_id": i, "preprocess_key": "k", "size": 96, "crop_x": 0, "crop_y": 0,
                             "crop_side": 96, "layers_used": [0, 1, 2], "pixels": p.astype("<u2").tobytes()}
                            for i, p in zip(ids, pixels)], "bench", fresh=True)
        start = time.perf_counter()
        _, computed = embed(store, encoder, "k", "bench")
        ours = time.perf_counter() - start
        assert computed == len(ids)
    print(f"embed: imagenet-efficientnet-lite0, channels 0,1 (2 x 224 px passes per crop), {len(ids)} crops, "
          f"{device}, torch threads {torch.get_num_threads()}")
    print(f"  bare model over preloaded tensors : {len(ids) / bare:7.1f} crops/s   1.00x")
    print(f"  phenorank (DuckDB in, DuckDB out) : {len(ids) / ours:7.1f} crops/s   {bare / ours:4.2f}x (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ingest_case(args, Path(tmp))
        embed_case(args, Path(tmp))


if __name__ == "__main__":
    main()
