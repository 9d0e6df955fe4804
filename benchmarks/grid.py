"""A grid cell at screen scale: `run`'s own path against the ranker's own time, same run.

    .venv/bin/python benchmarks/grid.py [--n 100000] [--dim 512] [--rounds 2]

A store holds N x D embeddings of N images (10% controls, 10% single dose). ``run_grid`` ranks
them with the centroid ranker by every metric against two references (16 cells, no evaluators,
``force`` so every round computes): it reads the set, plans each cell, fits, scores and writes
100k scores per cell. The baseline is the same 16 fits and scores on arrays already in memory.
Rounds alternate. Target (issue 23): a grid cell <= 2x the ranker's own time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ["cosine", "euclidean", "mse", "l1", "pearson", "dot", "jaccard", "hamming"]
REFERENCES = ["control", "single_dose"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from phenorank.core.grid import GridSpec, run_grid
    from phenorank.core.pipeline import load_set
    from phenorank.core.store import EmbeddingSet, open_store
    from phenorank.registry import get_registry

    n, registry = args.n, get_registry()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, args.dim), dtype=np.float32)
    condition = np.array(["control"] * (n // 10) + ["single_dose"] * (n // 10) + ["screen"] * (n - n // 5))
    vectors[condition == "single_dose", :8] += 2
    ids = [f"{i:016x}" for i in range(n)]
    times = {"grid": [], "ranker": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "grid.duckdb")
        store.write_images([{"image_id": i, "day": 10, "condition": c, "well": f"w{k}", "plate": "p"}
                            for k, (i, c) in enumerate(zip(ids, condition))], [], "bench", fresh=True)
        es = EmbeddingSet("bench-set", "bench", "backbone", {}, "", args.dim)
        store.write_embeddings([(es, None, ids, vectors)], "bench")
        es = store.embedding_sets("bench")[0]
        loaded = load_set(store, es, None)
        spec = GridSpec(encoders=[], metrics=METRICS, rankers=["centroid"], references=REFERENCES, evaluators=[],
                        preprocess_key="", stored_sets=[es], force=True)

        def grid():
            report = run_grid(store, registry, spec, "bench")
            assert report.ranked == len(METRICS) * len(REFERENCES) and not report.problems, report.problems

        def ranker_alone():
            for metric in METRICS:
                for reference in REFERENCES:
                    ranker = registry.create("ranker", "centroid")
                    scores = ranker.fit(loaded.vectors, loaded.samples, registry.create("metric", metric),
                                        reference).score(loaded.vectors, loaded.samples)
                    assert scores.shape == (n,)

        for _ in range(args.rounds):
            for name, work in (("ranker", ranker_alone), ("grid", grid)):
                start = time.perf_counter()
                work()
                times[name].append(time.perf_counter() - start)
        store.close()
    cells = len(METRICS) * len(REFERENCES)
    grid_s, ranker_s = min(times["grid"]) / cells, min(times["ranker"]) / cells
    print(f"{n} x {args.dim}, {cells} cells (centroid, {len(METRICS)} metrics x {len(REFERENCES)} references), "
          f"best of {args.rounds} rounds")
    print(f"per cell: run's path {grid_s:.2f} s (read once, fit, score, write {n} scores), ranker alone "
          f"{ranker_s:.2f} s, ratio {grid_s / ranker_s:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
