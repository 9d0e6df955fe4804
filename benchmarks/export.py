"""`phenorank export` of N x D profiles to Parquet against pyarrow alone, measured in the same run.

    .venv/bin/python benchmarks/export.py [--n 100000] [--dim 512] [--plates 20]

A store holds N profile rows on P plates with D float32 features (imported as a table would be).
(a) baseline: pyarrow writes the same values and metadata columns from memory, one file per
plate (``pq.write_table`` per plate, zstd): the work of writing alone;
(b) ``export_set``: reads the set and its metadata from the store, builds the table and writes one
file per plate into a temporary folder moved into place.
Rounds alternate (a, b, a, b, ...) and the best of each is kept. Target: (b) / (a) < 2.
Also times reading the export back (``read_export``) and checks the values survive.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phenorank.core.store import EmbeddingSet, open_store
from phenorank.io.export import export_set, metadata_table, read_export


def fill(store, n: int, dim: int, plates: int) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    ids = [f"{i:016x}" for i in range(n)]
    plate = [f"plate-{i % plates:02d}" for i in range(n)]
    items = pa.table({
        "item_id": ids, "dataset": ["bench"] * n, "level": ["well"] * n, "plate": plate,
        "well": [f"{'ABCDEFGHIJKLMNOP'[i % 16]}{i % 24 + 1:02d}" for i in range(n)],
        "row": pa.array([None] * n, pa.string()), "col": pa.array([None] * n, pa.int32()),
        "day": pa.array([None] * n, pa.int32()), "condition": [f"c{i % 7}" for i in range(n)],
        "treatment": [f"drug-{i % 300}" for i in range(n)],
        "concentration": pa.array(rng.choice([0.1, 1.0, 10.0], n)), "replicate": pa.array([1] * n, pa.int32()),
        "edge": pa.array([None] * n, pa.bool_()), "extra": [json.dumps({"Metadata_Batch": f"b{i % 4}"}) for i in range(n)],
    })
    es = EmbeddingSet("bench-set", "profiles", "bench", {}, "profiles:bench", dim, "well")
    store.write_profiles(items, es, [f"f{i:03d}" for i in range(dim)], vectors, "bench")
    return es.embedding_set_id, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--plates", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_store(str(Path(tmp) / "bench.duckdb")) as store:
        set_id, vectors = fill(store, args.n, args.dim, args.plates)
        ids, stored = store.load_embeddings(set_id)
        meta = metadata_table(store, ids)
        names = [f"f{i:03d}" for i in range(args.dim)]
        table = pa.Table.from_arrays([*meta.columns, *(pa.array(c) for c in np.ascontiguousarray(stored.T))],
                                     names=[*meta.column_names, *names])

        def baseline(round_: int) -> None:
            folder = Path(tmp) / f"bare{round_}"
            plates = table.column("Metadata_Plate")
            for plate in pc.unique(plates).to_pylist():
                (folder / plate).mkdir(parents=True)
                pq.write_table(table.filter(pc.equal(plates, plate)).drop_columns(["Metadata_Plate"]),
                               folder / plate / "part-0.parquet", compression="zstd")

        def ours(round_: int) -> None:
            export_set(store, set_id, Path(tmp) / f"ours{round_}")

        best = {"pyarrow alone": np.inf, "phenorank export": np.inf}
        for round_ in range(args.rounds):
            for name, work in (("pyarrow alone", baseline), ("phenorank export", ours)):
                started = time.perf_counter()
                work(round_)
                best[name] = min(best[name], time.perf_counter() - started)
        started = time.perf_counter()
        frame, _ = read_export(Path(tmp) / "ours0")
        read = time.perf_counter() - started
        assert np.array_equal(frame[names].to_numpy(np.float32), vectors)
    ratio = best["phenorank export"] / best["pyarrow alone"]
    print(f"export {args.n} x {args.dim} on {args.plates} plates (best of {args.rounds} alternated rounds):")
    print(f"  pyarrow alone (write, one file per plate)   {best['pyarrow alone']:6.2f} s")
    print(f"  phenorank export (store read + write)       {best['phenorank export']:6.2f} s   "
          f"ratio {ratio:.2f}  target < 2")
    print(f"  read back (read_export), values identical   {read:6.2f} s")


if __name__ == "__main__":
    main()
