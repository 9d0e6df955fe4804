import duckdb
import numpy as np
import pyarrow as pa
import pytest

from phenorank.core.store import SCHEMA_VERSION, EmbeddingSet, StoreError, open_store


def test_schema_is_created_once_and_recorded(tmp_path):
    path = tmp_path / "s.duckdb"
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with open_store(path) as store:  # reopening applies nothing twice
        assert store.query("SELECT count(*) FROM schema_migrations")[1] == [(SCHEMA_VERSION,)]


def test_read_only_opening_refuses_missing_or_foreign_files(tmp_path):
    with pytest.raises(StoreError, match="no phenorank store"):
        open_store(tmp_path / "absent.duckdb", read_only=True)
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()
    with pytest.raises(StoreError, match="not a phenorank store"):
        open_store(foreign, read_only=True)


def test_embeddings_of_several_heads_land_together_or_not_at_all(tmp_path):
    good = EmbeddingSet("set-a", "enc", "a", {}, "k", 2)
    other = EmbeddingSet("set-b", "enc", "b", {}, "k", 2)
    with open_store(tmp_path / "s.duckdb") as store:
        with pytest.raises(Exception):
            store.write_embeddings([(good, None, ["i1", "i2"], np.ones((2, 2))),
                                    (other, None, ["i1", "i2"], np.ones((3, 2)))], "run")
        assert store.table_counts()["embeddings"] == 0 and store.table_counts()["embedding_sets"] == 0
        store.write_embeddings([(good, ["x", "y"], ["i1", "i2"], np.arange(4.0).reshape(2, 2))], "run")
        store.write_embeddings([(good, ["x", "y"], ["i2"], np.array([[7.0, 8.0]]))], "run")  # replaces i2
        store.con.execute("INSERT INTO images (image_id, day) VALUES ('i1', 10), ('i2', 10)")
        ids, vectors = store.load_embeddings("set-a")
    assert list(ids) == ["i1", "i2"]
    assert vectors.tolist() == [[0.0, 1.0], [7.0, 8.0]]


def test_a_version_1_store_is_migrated_and_its_images_kept(tmp_path, tiny_plate):
    from phenorank.core.ingest import ingest
    from phenorank.core.manifest import read_manifest
    from phenorank.core.preprocess import PreprocessParams
    from phenorank.core.schema import MIGRATIONS
    from phenorank.plugins.loaders import TiffStackLoader

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # what phenorank 0.1.0 left behind: schema 1, one image
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)")
    con.execute(MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_migrations VALUES (1, 'initial schema', now())")
    con.execute("INSERT INTO images (image_id, path, plate, well, day, condition) VALUES "
                "('0123456789abcdef', ?, 'synthetic-plate-1', 'B02', 7, 'control')",
                [str(tiny_plate / "images" / "synthetic-plate-1_B02_day7.tif")])
    con.execute("INSERT INTO runs (run_id, status) VALUES ('r1', 'running')")
    con.close()
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.query("SELECT status FROM runs")[1] == [("interrupted",)]
        assert store.query("SELECT image_id, edge FROM images")[1] == [("0123456789abcdef", None)]
        report = ingest(read_manifest(tiny_plate / "manifest.csv", tiny_plate), TiffStackLoader(), store, "r2",
                        PreprocessParams(size=32))
        counts = store.table_counts()
    assert report.ingested == 120 and counts["images"] == 120 and counts["pairs"] == 60  # the old id is replaced


def test_a_version_10_store_finds_its_cae_models_under_their_new_name(tmp_path):
    from phenorank.core.schema import MIGRATIONS

    path = tmp_path / "v10.duckdb"
    con = duckdb.connect(str(path))  # a store of phenorank before the rename: schema 10
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)")
    for version, name, sql in MIGRATIONS[:10]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute("INSERT INTO models (model_id, encoder) VALUES ('m1', 'cae'), ('m2', 'simclr')")
    con.execute("INSERT INTO embedding_sets (embedding_set_id, encoder, head) VALUES ('e1', 'cae', 'pooled')")
    con.close()
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.query("SELECT model_id, encoder FROM models ORDER BY 1")[1] == [
            ("m1", "reconstruction-cae"), ("m2", "simclr")]
        assert store.query("SELECT encoder FROM embedding_sets")[1] == [("reconstruction-cae",)]


def test_embed_writes_large_batches_and_completes_a_head_that_has_some_rows_already(tmp_path):
    from phenorank.core.pipeline import embed, embedding_set_for
    from phenorank.registry import Encoder

    class TwoHeads(Encoder):
        name, heads = "two-heads", ("a", "b")

        def embed(self, images):
            mean = images.reshape(len(images), -1).mean(axis=1, keepdims=True)
            return {"a": np.hstack([mean, mean]), "b": 2 * mean}

    ids = [f"{i:04d}" for i in range(3000)]
    encoder = TwoHeads()
    with open_store(tmp_path / "s.duckdb") as store:
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        pixels = np.arange(3000, dtype=np.uint16).repeat(4).reshape(3000, 1, 2, 2)
        crop_rows = pa.table({"image_id": ids, "preprocess_key": ["k"] * 3000, "size": [2] * 3000,  # noqa: F841
                              "pixels": pa.array([p.astype("<u2").tobytes() for p in pixels], pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_rows")
        head_b = embedding_set_for(encoder, "b", "k").embedding_set_id
        store.write_embeddings([(embedding_set_for(encoder, "b", "k", 1), None, ids[:10], np.zeros((10, 1)))], "run")
        sets, computed = embed(store, encoder, "k", "run")  # head a lacks all, b all but 10: the DELETE path
        assert computed == 3000 and {s.head for s in sets} == {"a", "b"}
        counts = dict(store.query("SELECT embedding_set_id, count(*) FROM embeddings GROUP BY 1")[1])
        assert sorted(counts.values()) == [3000, 3000]  # no row twice
        got_ids, vectors = store.load_embeddings(head_b)
        assert list(got_ids) == ids and vectors[:, 0] == pytest.approx(2 * np.arange(3000) / 65535, rel=1e-5)
        store.con.execute("DELETE FROM embeddings WHERE image_id >= '2000'")  # both heads lack the same rows
        assert embed(store, encoder, "k", "run")[1] == 1000
        assert store.query("SELECT count(*), count(DISTINCT (embedding_set_id, image_id)) FROM embeddings")[1] == \
            [(6000, 6000)]


def test_embed_keeps_the_chunks_computed_before_a_bad_one(tmp_path):
    from phenorank.core.pipeline import PipelineError, embed
    from phenorank.registry import Encoder

    class BreaksLate(Encoder):
        name, heads = "breaks-late", ("a",)
        seen = 0

        def embed(self, images):
            BreaksLate.seen += len(images)
            value = np.nan if BreaksLate.seen > 1024 else 1.0  # the second chunk of 1024 is bad
            return {"a": np.full((len(images), 2), value)}

    ids = [f"{i:04d}" for i in range(1500)]
    with open_store(tmp_path / "s.duckdb") as store:
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        crop_rows = pa.table({"image_id": ids, "preprocess_key": ["k"] * 1500, "size": [2] * 1500,  # noqa: F841
                              "pixels": pa.array([np.zeros(4, "<u2").tobytes()] * 1500, pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_rows")
        with pytest.raises(PipelineError, match="NaN"):
            embed(store, BreaksLate(), "k", "run")
        assert store.query("SELECT count(*) FROM embeddings")[1] == [(1024,)]  # the good chunk is stored


def test_embed_commits_once_per_so_many_megabytes_of_vectors():
    from phenorank.core.pipeline import _VectorWriter

    class Counting:
        commits: list[int] = []

        def write_embeddings(self, batches, run_id, new_ids=False):
            self.commits.append(sum(len(ids) for _, _, ids, _ in batches))

    store = Counting()
    writer = _VectorWriter(store, "run", new_ids=True, megabytes=1, seconds=3600)
    for start in range(0, 12_000, 1000):  # 1000 rows x 64 float32 = 256,000 bytes a chunk
        ids = [str(i) for i in range(start, start + 1000)]
        writer.add([("set", None, ids, np.zeros((1000, 64), np.float32))])
    writer.flush()
    assert store.commits == [5000, 5000, 2000]  # 1 MiB (1,048,576 bytes) passed at the 5th chunk; the rest at the end


def test_stream_crops_gives_the_stored_pixels_while_the_caller_writes(tmp_path):
    ids = [f"{i:04d}" for i in range(2500)]
    sizes = [3] * 2500  # one preprocessing, one crop size
    rng = np.random.default_rng(0)
    pixels = {i: rng.integers(0, 65535, (2, s, s), dtype=np.uint16) for i, s in zip(ids, sizes)}
    with open_store(tmp_path / "s.duckdb") as store:
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        crop_rows = pa.table({"image_id": ids, "preprocess_key": ["k"] * 2500, "size": sizes,  # noqa: F841
                              "pixels": pa.array([pixels[i].astype("<u2").tobytes() for i in ids], pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_rows")
        es = EmbeddingSet("s", "enc", "a", {}, "k", 1)
        wanted = ids[1:]  # not every stored crop
        seen = []
        for batch_ids, batch in store.stream_crops(wanted, "k", 1024):
            assert batch.dtype == np.uint16 and batch.shape == (len(batch_ids), 2, 3, 3)
            for image_id, image in zip(batch_ids, batch):
                assert np.array_equal(image, pixels[image_id])
            store.write_embeddings([(es, None, batch_ids, np.ones((len(batch_ids), 1)))], "run", new_ids=True)
            seen += batch_ids
        assert sorted(seen) == wanted
        assert store.query("SELECT count(*) FROM embeddings")[1] == [(2499,)]
        with pytest.raises(StoreError, match="1 images have no crop"):
            list(store.stream_crops(["missing", *ids[:3]], "k"))


def test_a_bulk_write_of_vectors_lands_whole_and_restores_duckdbs_settings(tmp_path):
    from phenorank.core.store import BULK_VECTORS

    n = BULK_VECTORS // (512 * 4) + 100
    ids = [f"{i:06d}" for i in range(n)]
    vectors = np.random.default_rng(1).random((n, 512), dtype=np.float32)
    with open_store(tmp_path / "s.duckdb") as store:
        before = store.query("SELECT current_setting('threads'), current_setting('checkpoint_threshold')")[1]
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        store.write_embeddings([(EmbeddingSet("s", "enc", "a", {}, "k", 512), None, ids, vectors)], "run")
        assert store.query("SELECT current_setting('threads'), current_setting('checkpoint_threshold')")[1] == before
    with open_store(tmp_path / "s.duckdb") as store:  # reopened: the bulk commit reached the file
        got_ids, got = store.load_embeddings("s")
        assert list(got_ids) == ids and np.array_equal(got, vectors)


def test_load_crops_gives_the_crops_in_the_order_asked_repeats_included(tmp_path):
    ids = [f"{i:04d}" for i in range(1500)]
    pixels = np.arange(1500 * 4, dtype=np.uint16).reshape(1500, 1, 2, 2)
    with open_store(tmp_path / "s.duckdb") as store:
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        crop_rows = pa.table({"image_id": ids, "preprocess_key": ["k"] * 1500, "size": [2] * 1500,  # noqa: F841
                              "pixels": pa.array([p.astype("<u2").tobytes() for p in pixels], pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_rows")
        asked = [ids[1400], ids[3], ids[1400], *ids[::-7]]
        got = store.load_crops(asked, "k")
        expected = np.concatenate([batch for _, batch in store.iter_crops(asked, "k", 1024)])
        assert got.dtype == np.float32 and np.array_equal(got, expected)
        assert np.array_equal(got[0], pixels[1400] / np.float32(65535.0))
        with pytest.raises(StoreError, match="1 images have no crop"):
            store.load_crops(["missing", ids[0]], "k")


def test_closing_the_store_ends_a_crop_scan_left_mid_way(tmp_path):
    ids = [f"{i:04d}" for i in range(3000)]
    path = tmp_path / "s.duckdb"
    with open_store(path) as store:
        store.write_images([{"image_id": i, "day": 10} for i in ids], [], "run")
        crop_rows = pa.table({"image_id": ids, "preprocess_key": ["k"] * 3000, "size": [2] * 3000,  # noqa: F841
                              "pixels": pa.array([np.zeros(4, "<u2").tobytes()] * 3000, pa.binary())})
        store.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_rows")
        scan = store.stream_crops(ids, "k", 1024)
        next(scan)  # a caller that fails here keeps the generator (and its cursor) alive
    con = duckdb.connect(str(path), read_only=True)  # the file is free again in this process
    assert con.execute("SELECT count(*) FROM crops").fetchall() == [(3000,)]
    con.close()
    del scan
