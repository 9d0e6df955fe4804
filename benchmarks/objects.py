"""Object crops and aggregation at real sizes.

1. Objects: 12 fields of view of 2048 x 2048 x 3 channels, 16-bit (seed 001's acquisition size),
   about 300 cells each. Baseline, same run: a bare loop that reads each file with tifffile and
   runs the same segmenter and crop function, no store. phenorank: `find_objects` with 1 and 2
   workers (reads through the loader, writes objects and crops to DuckDB). Targets: 1 worker
   within 1.2x of the bare loop, 2 workers faster than 1. Measured (2 cores): 1.42x and 0.96x;
   the 1-worker gap is writing the crops (3 x 96 x 96 uint16 each, ~200 MB) into DuckDB.
2. Aggregation: 100k object embeddings of 512-d into 1000 images (mean) through the store
   (load, group, write an embedding set) vs NumPy alone on the same arrays already in memory
   (sort, then `np.add.reduceat` group means). Target: below 3x of the arithmetic; measured 1.24x.

    .venv/bin/python benchmarks/objects.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

SIDE, FIELDS, CELLS = 2048, 12, 300


def make_fields(folder: Path) -> list[Path]:
    import tifffile

    from phenorank.core.synthetic_cells import CLASSES, draw_field

    rng = np.random.default_rng(0)
    paths = []
    for i in range(FIELDS):
        kind = CLASSES[i % len(CLASSES)]
        (folder / kind).mkdir(parents=True, exist_ok=True)
        path = folder / kind / f"S{i:02d}_f1.tif"
        if not path.exists():
            image, _ = draw_field(kind, SIDE, CELLS, rng)
            tifffile.imwrite(path, np.round(image * 65535).astype(np.uint16), photometric="minisblack",
                             metadata={"axes": "CYX"})
        paths.append(path)
    return paths


def bench_objects(folder: Path) -> None:
    import tifffile

    from phenorank.core.ingest import ingest
    from phenorank.core.manifest import entries_from_folders
    from phenorank.core.objects import CropParams, channels_of, find_objects, object_crops
    from phenorank.core.preprocess import PreprocessParams
    from phenorank.core.store import open_store
    from phenorank.registry import get_registry

    paths = make_fields(folder / "fields")
    registry = get_registry()
    segmenter = registry.create("segmenter", "watershed", {"channel": 0})
    crop = CropParams()
    started = time.perf_counter()
    n_bare = 0
    for path in paths:
        image = channels_of(tifffile.imread(path), {})
        n_bare += len(object_crops(image, segmenter.segment(image), crop))
    bare = time.perf_counter() - started
    print(f"objects: {FIELDS} fields of {SIDE}x{SIDE}x3, {n_bare} cells")
    print(f"  bare loop (read, segment, crop)       {bare:6.1f} s  1.00x")
    loader = registry.create("loader", "tiff-channels")
    times = {}
    for workers in (1, 2):
        db = folder / f"objects-{workers}.duckdb"
        db.unlink(missing_ok=True)
        with open_store(db) as store:
            entries, _ = entries_from_folders(folder / "fields", "{sample}_f{field}.tif")
            params = PreprocessParams(stack="channels")
            ingest(entries, loader, store, "bench", params, workers=2)
            started = time.perf_counter()
            _, report = find_objects(store, params.key, loader, segmenter, crop, "bench", workers)
            times[workers] = time.perf_counter() - started
        print(f"  phenorank, {workers} worker(s)              {times[workers]:6.1f} s  {times[workers] / bare:.2f}x"
              f"  ({report.objects} objects stored)")
    print(f"  2 workers vs 1: {times[1] / times[2]:.2f}x faster")


def bench_aggregate(folder: Path, n: int = 100_000, dim: int = 512, images: int = 1000) -> None:
    from phenorank.core.aggregate import aggregate
    from phenorank.core.store import EmbeddingSet, open_store

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    parent = rng.integers(images, size=n)
    started = time.perf_counter()
    order = np.argsort(parent, kind="stable")
    starts = np.searchsorted(parent[order], np.arange(images))
    means = np.add.reduceat(vectors[order].astype(np.float64), starts) / np.diff(np.append(starts, n))[:, None]
    bare = time.perf_counter() - started
    db = folder / "aggregate.duckdb"
    db.unlink(missing_ok=True)
    with open_store(db) as store:
        image_ids = [f"img{i:05d}" for i in range(images)]
        object_ids = [f"img{p:05d}:k:{i}" for i, p in enumerate(parent)]
        store.write_images([{"image_id": i, "path": f"{i}.tif", "condition": "c", "plate": "p"} for i in image_ids],
                           [], "bench")
        store.write_objects("k", [(i, 0) for i in image_ids], [
            {"object_id": o, "image_id": image_ids[p], "preprocess_key": "k", "label": i, "x": 0, "y": 0,
             "width": 1, "height": 1, "area": 1} for i, (o, p) in enumerate(zip(object_ids, parent))], [])
        source = EmbeddingSet("source", "bench", "head", {}, "k", dim, "object")
        store.write_embeddings([(source, None, object_ids, vectors)], "bench")
        started = time.perf_counter()
        target, count = aggregate(store, source, "image", "mean", "bench")
        through_store = time.perf_counter() - started
        _, stored = store.load_embeddings(target.embedding_set_id)
    assert count == images and np.allclose(stored, means, atol=1e-4)
    print(f"aggregate: {n} x {dim} object embeddings -> {images} image means")
    print(f"  NumPy sort + reduceat (in memory)     {bare:6.2f} s  1.00x")
    print(f"  phenorank (store in, store out)       {through_store:6.2f} s  {through_store / bare:.2f}x")


if __name__ == "__main__":
    here = Path(__file__).parent / ".data"
    here.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=here) as scratch:
        bench_aggregate(Path(scratch))
    bench_objects(here / "objects")
