"""Bulk embedding I/O through the phenorank store vs bare DuckDB, measured in the same run.

    .venv/bin/python benchmarks/store.py [--n 100000] [--dim 512]

Writes N x D float32 vectors and reads them back (a) with a bare DuckDB Arrow insert/select (the
baseline, the only SQL outside the store module) and
(b) through ``Store.write_embeddings`` / ``Store.load_embeddings`` (transaction, replace-by-id,
join with images). Prints seconds and the phenorank / bare ratio (1.0 = no overhead).

Then how embed reads the crops: one scan of the store (``Store.stream_crops``) against looking
each chunk of 1024 up by id (``Store.iter_crops``, what embed did before), at two store sizes:
the lookups scan the crops table each time. ``Store.load_crops`` (the images a ranker or
evaluator reads, in its rows' order, as float32) is timed on the ids shuffled, against the
lookups concatenated (what it replaced).

Then the write path of ``phenorank embed`` itself: ``pipeline.embed`` with an encoder that hands
back precomputed vectors (so the encoder costs nothing), against the same crops read the same way
plus one ``pyarrow.parquet.write_table`` of the vectors; the rounds alternate. Target (issue 23):
throughput at least 0.8 of the Parquet baseline's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from phenorank.core.store import EmbeddingSet, open_store


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def vector_table(ids, vectors):
    flat = pa.array(vectors.reshape(-1))
    return pa.table({"embedding_set_id": pa.array(["s"] * len(ids)), "image_id": pa.array(ids),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]).cast(pa.list_(pa.float32()))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.random((args.n, args.dim), dtype=np.float32)
    ids = [f"{i:016x}" for i in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bare.duckdb"))
        con.execute("CREATE TABLE embeddings (embedding_set_id VARCHAR, image_id VARCHAR, vector FLOAT[])")

        def bare_write():
            batch = vector_table(ids, vectors)  # noqa: F841  (read by DuckDB by name)
            con.execute("INSERT INTO embeddings SELECT * FROM batch")

        bare_w, _ = timed(bare_write)

        def bare_read():
            t = con.sql("SELECT image_id, vector FROM embeddings ORDER BY image_id").to_arrow_table()
            return t.column("vector").combine_chunks().flatten().to_numpy().reshape(args.n, -1)

        bare_r, back = timed(bare_read)
        assert np.array_equal(back, vectors)
        con.close()

        store = open_store(Path(tmp) / "phenorank.duckdb")
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "bench")
        es = EmbeddingSet("s", "bench", "backbone", {}, "k", args.dim)
        ours_w, _ = timed(lambda: store.write_embeddings([(es, None, ids, vectors)], "bench"))
        ours_r, (_, back) = timed(lambda: store.load_embeddings("s"))
        assert np.array_equal(back, vectors)
        store.close()
    print(f"{args.n} x {args.dim} float32 embeddings")
    print(f"{'step':<8}{'bare duckdb s':>15}{'phenorank s':>14}{'ratio':>8}")
    print(f"{'write':<8}{bare_w:>15.2f}{ours_w:>14.2f}{ours_w / bare_w:>8.2f}")
    print(f"{'read':<8}{bare_r:>15.2f}{ours_r:>14.2f}{ours_r / bare_r:>8.2f}")
    crop_reading((10_000, 40_000), side=64)
    embed_path(args.n, args.dim)


def crop_reading(sizes: tuple[int, ...], side: int) -> None:
    print(f"\nreading every crop (3 x {side} x {side}), crops per second")
    print(f"{'crops':>8}{'lookups by id':>15}{'one scan':>10}{'ratio':>8}"
          f"{'in given order: lookups':>25}{'load_crops':>12}{'ratio':>8}")
    rng = np.random.default_rng(2)
    for n in sizes:
        ids = [f"{i:016x}" for i in range(n)]
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "crops.duckdb")
            for start in range(0, n, 5000):
                chunk = ids[start:start + 5000]
                pixels = rng.integers(0, 65535, (len(chunk), 3, side, side), dtype=np.uint16)
                made = pa.table({"image_id": pa.array(chunk), "preprocess_key": pa.array(["k"] * len(chunk)),  # noqa: F841
                                  "size": pa.array([side] * len(chunk)),
                                  "pixels": pa.array([p.tobytes() for p in pixels], pa.binary())})
                store.con.execute("INSERT INTO crops BY NAME SELECT * FROM made")
            store.con.execute("CHECKPOINT")
            lookups, _ = timed(lambda: sum(len(b) for b, _ in store.iter_crops(ids, "k", 1024)))
            scan, _ = timed(lambda: sum(len(b) for b, _ in store.stream_crops(ids, "k", 1024)))
            shuffled = list(rng.permutation(ids))  # what a ranker reading images asks for: its rows' order
            before, _ = timed(lambda: np.concatenate([b for _, b in store.iter_crops(shuffled, "k", 1024)]))
            ordered, _ = timed(lambda: store.load_crops(shuffled, "k"))
            store.close()
        print(f"{n:>8}{n / lookups:>15.0f}{n / scan:>10.0f}{lookups / scan:>8.1f}"
              f"{n / before:>25.0f}{n / ordered:>12.0f}{before / ordered:>8.1f}")


def embed_path(n: int, dim: int, rounds: int = 2) -> None:
    import pyarrow.parquet as pq

    from phenorank.core.pipeline import embed
    from phenorank.registry import Encoder

    rng = np.random.default_rng(1)
    vectors = rng.random((n, dim), dtype=np.float32)
    ids = [f"{i:016x}" for i in range(n)]
    row = {i: r for r, i in enumerate(ids)}

    class Precomputed(Encoder):
        name, heads, defaults = "precomputed", ("backbone",), {"round": 0}

        def embed(self, images):
            return {"backbone": vectors[[row[i] for i in self.batch_ids]]}

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "embed.duckdb")
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "bench")
        tiny = np.zeros((1, 1, 8, 8), dtype=np.uint16).tobytes()
        crop_table = pa.table({"image_id": pa.array(ids), "preprocess_key": pa.array(["k"] * n),  # noqa: F841
                          "size": pa.array([8] * n), "pixels": pa.array([tiny] * n, pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_table")  # 1x8x8 crops: the reading is cheap
        times = {"parquet": [], "phenorank": []}
        for round_ in range(rounds):
            def baseline():
                got = [batch_ids for batch_ids, _ in store.stream_crops(ids, "k", 1024)]
                assert sum(map(len, got)) == n
                pq.write_table(vector_table(ids, vectors), Path(tmp) / f"v{round_}.parquet")

            def ours():
                encoder = Precomputed(round=round_)  # a new set each round
                original = store.stream_crops

                def remembering(*a, **k):  # the encoder is told the ids it embeds
                    for batch_ids, images in original(*a, **k):
                        encoder.batch_ids = batch_ids
                        yield batch_ids, images
                store.stream_crops = remembering
                try:
                    embed(store, encoder, "k", "bench")
                finally:
                    store.stream_crops = original
            for name, fn in (("parquet", baseline), ("phenorank", ours)):
                times[name].append(timed(fn)[0])
        store.close()
    parquet, ours = min(times["parquet"]), min(times["phenorank"])
    print(f"\nembed's write path, {n} x {dim} (best of {rounds}): crops read + Parquet {parquet:.2f} s, "
          f"phenorank embed {ours:.2f} s, throughput ratio {parquet / ours:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
