"""The DuckDB store: the one module that reads and writes phenorank's tables.

Every result lands in one DuckDB file. The schema lives in ``schema.py`` as ordered migrations
recorded in ``schema_migrations``; opening an older file applies the missing ones. Writes of one
logical result (an ingest batch, an embedding batch, a ranking with its scores) happen in one
transaction, so an interrupted command leaves either the whole result or none of it. Writing the
same result again replaces it rather than adding rows.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from ..registry.contracts import Samples
from .schema import MIGRATIONS, SCHEMA_VERSION
from .store_access import CHECKPOINT_EVERY, Connection, StoreError, connect, refuse_foreign
from .store_comparison import ComparisonQueries
from .store_objects import ObjectTables, as_column as _as_column
from .store_analysis import AnalysisTables
from .store_profiles import ProfileTables
from .store_quality import QualityTables

DEFAULT_PATH = "phenorank.duckdb"
BULK_VECTORS = 16 << 20  # bytes of vectors in one write from which it is written as a bulk load

IMAGE_COLUMNS = (
    "image_id", "path", "plate", "well", "row", "col", "day", "condition", "treatment",
    "concentration", "replicate", "n_layers", "height", "width", "dtype", "edge",
)
METADATA_COLUMNS = ("path", "plate", "well", "row", "col", "edge", "day", "condition", "treatment",
                    "concentration", "replicate")
SHAPE_COLUMNS = ("n_layers", "height", "width", "dtype")
CROP_COLUMNS = (
    "image_id", "preprocess_key", "size", "crop_x", "crop_y", "crop_side", "layers_used", "pixels",
)



def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class EmbeddingSet:
    embedding_set_id: str
    encoder: str
    head: str
    params: dict
    preprocess_key: str
    dim: int
    level: str = "image"  # what one vector stands for: image, object, or an aggregate such as sample:median
    source_id: str | None = None  # an aggregate's source embedding set
    code: str = ""  # the encoder's code identity (distribution version + source hash)
    transforms: str | None = None  # the chain that made it from source_id, e.g. robustize,spherize
    transform_reference: str | None = None  # the reference wells the chain was fitted on


@dataclass(frozen=True)
class Ranking:
    ranking_id: str
    embedding_set_id: str
    ranker: str
    metric: str
    reference: str
    day: int | None
    fingerprint: str
    ranker_code: str = ""
    metric_code: str = ""


class Store(ObjectTables, ProfileTables, AnalysisTables, QualityTables, ComparisonQueries):
    """A phenorank DuckDB file. Open with :func:`open_store`."""

    def __init__(self, con: duckdb.DuckDBPyConnection | Connection, path: str, read_only: bool):
        self._connection = con if isinstance(con, Connection) else Connection(con)
        self.con = self._connection.con
        self.path = path
        self.read_only = read_only
        self.notice = self._connection.notice  # e.g. "store busy: ... showing a snapshot"
        self._checkpointed = time.monotonic()
        self._scans: dict[int, list] = {}  # crop scans not read to their end: their cursor, then reader

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        # a scan left mid-way (its caller failed, and a traceback holds the generator) would keep
        # the database open in this process after the store is closed
        for handles in list(self._scans.values()):
            for handle in reversed(handles):  # the reader holds the database too, not only its cursor
                handle.close()
        self._scans.clear()
        self._connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.begin()
        try:
            yield
        except BaseException:
            self.con.rollback()
            raise
        self.con.commit()
        if time.monotonic() - self._checkpointed > CHECKPOINT_EVERY:  # readers of a busy store see this far
            self.con.execute("CHECKPOINT")
            self._checkpointed = time.monotonic()

    @contextmanager
    def threads(self, count: int) -> Iterator[None]:
        """Let DuckDB use at most ``count`` threads for a while (e.g. while other threads of this
        process keep the cores busy)."""
        with self._setting("threads", int(count)):
            yield

    def memory_limit(self, limit: str):
        """Cap DuckDB's memory (its cache of file blocks included) for a while, e.g. while a long
        scan streams a store larger than memory."""
        return self._setting("memory_limit", limit)

    @contextmanager
    def _setting(self, name: str, value) -> Iterator[None]:
        before = self._one(f"SELECT current_setting('{name}')")[0]
        self.con.execute(f"SET {name} = '{value}'")
        try:
            yield
        finally:
            self.con.execute(f"SET {name} = '{before}'")

    def _one(self, sql: str, params: list | None = None) -> tuple | None:
        """The first row of a query (DuckDB 2 wants every result read to its end)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def schema_version(self) -> int:
        return self._one("SELECT max(version) FROM schema_migrations")[0] or 0

    # -- runs ------------------------------------------------------------------------------
    def mark_interrupted_runs(self) -> int:
        """Runs still 'running' when the file is opened for writing died mid-way (DuckDB lets
        one process write at a time): say so."""
        count = self._one("SELECT count(*) FROM runs WHERE status = 'running'")[0]
        if count:
            self.con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        return count

    def start_run(self, command: str, params: dict, config_hash: str, code_version: str) -> str:
        run_id = uuid.uuid4().hex[:16]
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, NULL, 'running', NULL)",
            [run_id, command, _json(params), config_hash, code_version, _now()],
        )
        return run_id

    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        self.con.execute(
            "UPDATE runs SET ended_at = ?, status = ?, message = ? WHERE run_id = ?",
            [_now(), status, message, run_id],
        )

    # -- images, crops, rejects --------------------------------------------------------------
    def image_records(self, preprocess_key: str) -> dict[str, dict]:
        """Every stored image: its metadata (as ``ManifestEntry.metadata()`` gives it), its shape
        fields, and whether its crop for these preprocessing parameters (``has_crop``) and its
        artifact statistics (``has_stats``) exist."""
        result = self.con.execute(
            f"SELECT i.image_id, {', '.join(f'i.{_quoted(c)}' for c in METADATA_COLUMNS)}, "
            f"i.extra, {', '.join(f'i.{c}' for c in SHAPE_COLUMNS)}, "
            "i.image_id IN (SELECT image_id FROM image_stats) AS has_stats, c.image_id IS NOT NULL AS has_crop "
            "FROM images i LEFT JOIN crops c ON c.image_id = i.image_id AND c.preprocess_key = ?",
            [preprocess_key]).fetchall()
        records = {}
        n_meta = len(METADATA_COLUMNS)
        for row in result:
            metadata = dict(zip(METADATA_COLUMNS, row[1:1 + n_meta]))
            metadata["extra"] = json.loads(row[1 + n_meta] or "{}")
            shape = dict(zip(SHAPE_COLUMNS, row[2 + n_meta:2 + n_meta + len(SHAPE_COLUMNS)]))
            records[row[0]] = {"metadata": metadata, "shape": shape, "has_crop": row[-1], "has_stats": row[-2]}
        return records

    def rejected_paths(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT path FROM rejects").fetchall()}

    def write_images(self, images: list[dict], crops: list[dict], run_id: str,
                     rejects: Sequence[tuple[str, str]] = (), fresh: bool = False, pairs: bool = False,
                     stats: Sequence[dict] = ()) -> None:
        """Insert or replace image metadata, their preprocessed crops, their layers' artifact
        statistics (``stats``) and rejected files (path, reason[, place: a dict with the plate,
        well and day the file's metadata gave]), all in one transaction.

        A stored row with the same image id, or (for images) the same path, is replaced: an image
        stored earlier under that path with other content means the file changed. A path that is
        now ingested leaves ``rejects``. ``fresh=True`` says the caller knows none of the ids and
        paths is stored or rejected yet, which saves the look-ups. ``pairs=True`` also rebuilds the
        ``pairs`` table in the same transaction (one commit, not two, at the end of an ingest).
        """
        self.forget_samples()
        if not (images or crops or rejects or pairs or stats):
            return
        now = _now()
        image_table = pa.table({  # noqa: F841  (tables are read by name in the SQL below)
            **{c: [img.get(c) for img in images] for c in IMAGE_COLUMNS},
            "extra": [_json(img.get("extra") or {}) for img in images],
            "run_id": [run_id] * len(images),
            "ingested_at": [now] * len(images),
        })
        crop_table = pa.table({  # noqa: F841
            c: pa.array([crop[c] for crop in crops], type=pa.binary() if c == "pixels" else None)
            for c in CROP_COLUMNS
        }) if crops else None
        # a reject may carry a third element, the place its metadata gave it (plate, well, day)
        places = [reject[2] if len(reject) > 2 and reject[2] else {} for reject in rejects]
        reject_table = pa.table({  # noqa: F841
            "path": pa.array([r[0] for r in rejects], pa.string()), "reason": [r[1] for r in rejects],
            "run_id": [run_id] * len(rejects), "rejected_at": [now] * len(rejects),
            "plate": pa.array([p.get("plate") for p in places], pa.string()),
            "well": pa.array([p.get("well") for p in places], pa.string()),
            "day": pa.array([p.get("day") for p in places], pa.int32()),
        })
        with self.transaction():
            if images:
                if not fresh:
                    for table in ("crops", "image_stats", "image_flags"):  # the file changed: its old content goes
                        self.con.execute(f"DELETE FROM {table} WHERE image_id IN (SELECT i.image_id FROM images i "
                                         "JOIN image_table t ON i.path = t.path AND i.image_id <> t.image_id)")
                    self.con.execute("DELETE FROM images WHERE image_id IN (SELECT image_id FROM image_table) "
                                     "OR path IN (SELECT path FROM image_table)")
                    self.con.execute("DELETE FROM rejects WHERE path IN (SELECT path FROM image_table)")
                self.con.execute("INSERT INTO images BY NAME SELECT * FROM image_table")
            if crops:
                if not fresh:
                    self.con.execute("DELETE FROM crops WHERE (image_id, preprocess_key) IN "
                                     "(SELECT (image_id, preprocess_key) FROM crop_table)")
                self.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_table")
            self._write_image_stats(list(stats))
            if rejects:
                self.con.execute("DELETE FROM rejects WHERE path IN (SELECT path FROM reject_table)")
                self.con.execute("INSERT INTO rejects BY NAME SELECT * FROM reject_table")
            if pairs:
                self._rebuild_pairs()

    def _rebuild_pairs(self) -> None:
        """Pair each well's images on consecutive days (day 7 -> day 10 in seed 000's design);
        a well with more than one image on a day is left out there, as which of them continues
        which would be a guess."""
        self.con.execute("DELETE FROM pairs")
        self.con.execute("""
            INSERT INTO pairs
            WITH per_day AS (
                SELECT plate, well, day, count(*) AS n, min(image_id) AS image_id
                FROM images WHERE well IS NOT NULL AND day IS NOT NULL GROUP BY plate, well, day),
            steps AS (
                SELECT *, lead(day) OVER w AS next_day, lead(image_id) OVER w AS next_id,
                       lead(n) OVER w AS next_n
                FROM per_day WINDOW w AS (PARTITION BY plate, well ORDER BY day))
            SELECT plate, well, day, next_day, image_id, next_id FROM steps
            WHERE next_day IS NOT NULL AND n = 1 AND next_n = 1""")

    def pair_counts(self) -> tuple[int, int]:
        """(pairs, wells left unpaired because they have several images on one day)."""
        pairs = self._one("SELECT count(*) FROM pairs")[0]
        skipped = self._one("SELECT count(DISTINCT (plate, well)) FROM (SELECT plate, well FROM images "
                            "WHERE well IS NOT NULL AND day IS NOT NULL GROUP BY plate, well, day HAVING count(*) > 1)")[0]
        return pairs, skipped

    def load_samples(self, image_ids: Sequence[str]) -> Samples:
        """Metadata of the given items (images, objects, aggregates) in the order given, with the
        manifest's extra columns as columns of their own (numeric where every value is).

        A grid asks for the same items' metadata for every ranking and evaluator: the last few
        answers are kept (each caller gets its own ``Samples``), and forgotten on any write of
        items (``forget_samples``)."""
        key = tuple(map(str, image_ids))
        cache = self.__dict__.setdefault("_samples_cache", {})
        if key in cache:
            found = cache[key]
            return Samples(found.image_ids, dict(found.columns))
        samples = self._load_samples(image_ids)
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        cache[key] = samples
        return Samples(samples.image_ids, dict(samples.columns))

    def forget_samples(self) -> None:
        self.__dict__.pop("_samples_cache", None)

    def _load_samples(self, image_ids: Sequence[str]) -> Samples:
        wanted = pa.table({"image_id": pa.array(list(image_ids), pa.string()),  # noqa: F841
                           "position": pa.array(np.arange(len(image_ids)))})
        table = self.con.sql(
            "SELECT i.* FROM items i JOIN wanted USING (image_id) ORDER BY position").to_arrow_table()
        if table.num_rows != len(image_ids):
            raise StoreError(f"{len(image_ids) - table.num_rows} ids are in none of the images, objects and groups")
        columns = {name: table.column(name).to_numpy(zero_copy_only=False)
                   for name in (*IMAGE_COLUMNS[1:], "level", "parent_id")}
        extras = [json.loads(e or "{}") for e in table.column("extra").to_pylist()]
        for key in sorted({k for e in extras for k in e} - set(columns)):  # measured fields win
            columns[key] = _as_column([e.get(key) for e in extras])
        columns.update(self.flag_columns(wanted))
        ids = table.column("image_id").to_numpy(zero_copy_only=False)
        return Samples(ids, columns)

    def stream_crops(self, image_ids: Sequence[str], preprocess_key: str, batch_size: int = 1024
                     ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Like :meth:`iter_crops`, but in one scan, in the store's order rather than the ids'
        (one pass over a store of any size, where ``iter_crops`` looks up each batch), and the
        pixels as stored: uint16 (N, C, S, S). The scan has a connection of its own, so the
        caller may write to the store between batches."""
        wanted = pa.table({"image_id": pa.array(list(image_ids), pa.string())})  # noqa: F841
        cursor = self.con.cursor()
        handles = self._scans[id(cursor)] = [cursor]
        try:
            # sql() streams the rows; execute() would first materialize them all (6 GB at 100k crops)
            reader = cursor.sql(
                "SELECT c.image_id, c.size, c.pixels FROM crops c SEMI JOIN wanted USING (image_id) "
                "WHERE c.preprocess_key = $1", params=[preprocess_key]).to_arrow_reader(batch_size)
            handles.append(reader)
            found = 0
            for batch in reader:
                if not batch.num_rows:
                    continue
                found += batch.num_rows
                yield batch.column("image_id").to_pylist(), _arrow_crop_pixels(batch.column("pixels"),
                                                                              batch.column("size"))
        finally:
            self._scans.pop(id(cursor), None)
            for handle in reversed(handles):
                handle.close()
        _check_found(len(image_ids), found, preprocess_key)

    def load_crops(self, image_ids: Sequence[str], preprocess_key: str) -> np.ndarray:
        """The crops of ``image_ids`` (repeats allowed) as float32 (N, C, S, S) in [0, 1], in their
        order, read in one scan of the store and put in place (where ``iter_crops`` would look up
        every batch: 2.4x faster at 10k crops, 7x at 40k, ``benchmarks/store.py``)."""
        wanted = [str(i) for i in image_ids]
        unique = list(dict.fromkeys(wanted))
        row = {image_id: i for i, image_id in enumerate(unique)}
        out = None
        with closing(self.stream_crops(unique, preprocess_key)) as crops:
            for batch_ids, batch in crops:
                if out is None:
                    out = np.empty((len(unique), *batch.shape[1:]), np.float32)
                out[[row[i] for i in batch_ids]] = batch.astype(np.float32) / 65535.0
        if out is None:
            return np.zeros((0, 0, 0, 0), np.float32)
        return out if len(unique) == len(wanted) else out[[row[i] for i in wanted]]

    def iter_crops(self, image_ids: Sequence[str], preprocess_key: str, batch_size: int = 64
                   ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield (ids, images) in the order of ``image_ids``, with images as float32
        (N, C, S, S) in [0, 1]. Each batch is a lookup that scans the crops table, so phenorank
        itself reads through :meth:`load_crops` and :meth:`stream_crops`; this stays as the plain
        reference that the tests and ``benchmarks/store.py`` hold them against."""
        for start in range(0, len(image_ids), batch_size):
            chunk = list(image_ids[start:start + batch_size])
            wanted = pa.table({"image_id": pa.array(chunk, pa.string()),  # noqa: F841
                               "position": pa.array(np.arange(len(chunk)))})
            rows = self.con.execute(
                "SELECT c.image_id, c.size, c.pixels FROM crops c JOIN wanted USING (image_id) "
                "WHERE c.preprocess_key = ? ORDER BY position", [preprocess_key],
            ).fetchall()
            _check_found(len(chunk), len(rows), preprocess_key)
            images = _crop_pixels([r[2] for r in rows], [r[1] for r in rows])
            yield [r[0] for r in rows], images.astype(np.float32) / 65535.0

    def crop_ids(self, preprocess_key: str) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT image_id FROM crops WHERE preprocess_key = ? ORDER BY image_id", [preprocess_key]
        ).fetchall()]

    # -- embeddings ------------------------------------------------------------------------
    def ensure_embedding_set(self, es: EmbeddingSet, feature_names: list[str] | None, run_id: str) -> None:
        self.con.execute(
            "INSERT INTO embedding_sets (embedding_set_id, encoder, head, params, preprocess_key, dim, feature_names, "
            "run_id, created_at, level, source_id, code, transforms, transform_reference) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [es.embedding_set_id, es.encoder, es.head, _json(es.params), es.preprocess_key, es.dim,
             feature_names, run_id, _now(), es.level, es.source_id, es.code, es.transforms, es.transform_reference],
        )

    def embedded_ids(self, embedding_set_id: str) -> set[str]:
        return {r[0] for r in self.con.execute(
            "SELECT image_id FROM embeddings WHERE embedding_set_id = ?", [embedding_set_id]).fetchall()}

    def write_embeddings(self, batches: list[tuple[EmbeddingSet, list[str] | None, list[str], np.ndarray]],
                         run_id: str, replace: bool = False, new_ids: bool = False) -> None:
        """Store (set, feature names, image ids, vectors) for several sets at once, atomically:
        the heads of one encoder batch land together or not at all. ``replace``: the sets' earlier
        vectors go first. ``new_ids``: the caller knows none of the ids is stored in its set, so
        there is nothing to replace (no DELETE)."""
        with ExitStack() as bulk:
            if sum(np.asarray(b[3]).nbytes for b in batches) >= BULK_VECTORS:
                # 100k x 512 measured: DuckDB's parallel Arrow scan inserted at half the speed of
                # one thread (0.47 against 0.23 s), and a commit this large is cheaper as a direct
                # checkpoint than through the WAL, which wrote every byte twice (1.07 against 1.45 s).
                bulk.enter_context(self._setting("threads", 1))
                bulk.enter_context(self._setting("checkpoint_threshold", "1MB"))
            with self.transaction():
                for es, feature_names, ids, vectors in batches:
                    self._put_vectors(es, feature_names, ids, vectors, run_id, wipe=replace, new_ids=new_ids)

    def _put_vectors(self, es: EmbeddingSet, feature_names: list[str] | None, ids: Sequence[str],
                     vectors: np.ndarray, run_id: str, wipe: bool, new_ids: bool = False) -> None:
        """Inside a caller's transaction: store one set's vectors. ``wipe``: the set's earlier rows
        go first; else rows of the same ids are replaced, unless the caller knows there are none
        (``new_ids``)."""
        if wipe:
            self.con.execute("DELETE FROM embeddings WHERE embedding_set_id = ?", [es.embedding_set_id])
            self.con.execute("DELETE FROM embedding_sets WHERE embedding_set_id = ?", [es.embedding_set_id])
        self.ensure_embedding_set(es, feature_names, run_id)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.reshape(-1))
        vector_table = pa.table({  # noqa: F841
            "embedding_set_id": pa.array([es.embedding_set_id] * len(ids), pa.string()),
            "image_id": pa.array(list(ids), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]).cast(pa.list_(pa.float32())),
        })
        if not (wipe or new_ids):
            self.con.execute(
                "DELETE FROM embeddings WHERE embedding_set_id = ? AND image_id IN (SELECT image_id FROM vector_table)",
                [es.embedding_set_id])
        self.con.execute("INSERT INTO embeddings SELECT * FROM vector_table")

    def replace_embeddings(self, es: EmbeddingSet, feature_names: list[str] | None, ids: Sequence[str],
                           vectors: np.ndarray, run_id: str) -> None:
        """Make ``es`` hold exactly these vectors (a derived set, recomputed as a whole), atomically."""
        self.write_embeddings([(es, feature_names, list(ids), vectors)], run_id, replace=True)

    def feature_names(self, embedding_set_id: str) -> list[str] | None:
        row = self._one("SELECT feature_names FROM embedding_sets WHERE embedding_set_id = ?", [embedding_set_id])
        return row[0] if row else None

    def embedding_sets(self, encoder: str | None = None, head: str | None = None) -> list[EmbeddingSet]:
        rows = self.con.execute(
            "SELECT embedding_set_id, encoder, head, params, preprocess_key, dim, level, source_id, code, transforms, "
            "transform_reference FROM embedding_sets WHERE (? IS NULL OR encoder = ?) AND (? IS NULL OR head = ?) "
            "ORDER BY encoder, head, level, transforms NULLS FIRST, created_at",
            [encoder, encoder, head, head],
        ).fetchall()
        return [EmbeddingSet(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6] or "image", r[7], r[8] or "",
                             r[9], r[10]) for r in rows]

    def embedding_set(self, embedding_set_id: str) -> EmbeddingSet | None:
        """One stored embedding set by its id (None when there is none)."""
        return next((s for s in self.embedding_sets() if s.embedding_set_id == embedding_set_id), None)

    def load_embeddings(self, embedding_set_id: str, day: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image ids sorted, vectors (N, D) float32) of one set, optionally one day's images."""
        table = self.con.sql(
            "SELECT e.image_id, e.vector FROM embeddings e JOIN items i USING (image_id) "
            "WHERE e.embedding_set_id = $1 AND ($2 IS NULL OR i.day = $2) ORDER BY e.image_id",
            params=[embedding_set_id, day],
        ).to_arrow_table()
        ids = table.column("image_id").to_numpy(zero_copy_only=False)
        vectors = table.column("vector").combine_chunks()
        if len(ids) == 0:
            return ids, np.zeros((0, 0), np.float32)
        flat = vectors.flatten().to_numpy(zero_copy_only=False)
        return ids, flat.reshape(len(ids), -1).astype(np.float32, copy=False)

    def paired_embeddings(self, embedding_set_id: str, late_ids: Sequence[str]) -> np.ndarray:
        """For each given (late-day) image, the embedding of the same well's image on the day
        before it in ``pairs``; NaN rows where there is none."""
        wanted = pa.table({"image_id": pa.array(list(late_ids), pa.string()),  # noqa: F841
                           "position": pa.array(np.arange(len(late_ids)))})
        table = self.con.sql(
            "SELECT w.position, e.vector FROM wanted w "
            "JOIN pairs p ON p.late_image_id = w.image_id "
            "JOIN embeddings e ON e.image_id = p.early_image_id AND e.embedding_set_id = $1",
            params=[embedding_set_id]).to_arrow_table()
        dim = self._one("SELECT dim FROM embedding_sets WHERE embedding_set_id = ?", [embedding_set_id])[0]
        out = np.full((len(late_ids), dim), np.nan, dtype=np.float32)
        if table.num_rows:
            flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[table.column("position").to_numpy()] = flat.reshape(table.num_rows, -1)
        return out

    def paired_image_ids(self, late_ids: Sequence[str]) -> np.ndarray:
        """For each given (late-day) image, the id of the same well's image on the day before it
        in ``pairs``; "" where there is none."""
        wanted = pa.table({"image_id": pa.array(list(late_ids), pa.string()),  # noqa: F841
                           "position": pa.array(np.arange(len(late_ids)))})
        table = self.con.sql("SELECT w.position, p.early_image_id FROM wanted w "
                             "JOIN pairs p ON p.late_image_id = w.image_id").to_arrow_table()
        out = np.full(len(late_ids), "", dtype=object)
        out[table.column("position").to_numpy()] = table.column("early_image_id").to_pylist()
        return out

    # -- trained models --------------------------------------------------------------------
    def write_model(self, record: dict) -> None:
        model_table = pa.table({k: [_json(v) if isinstance(v, (dict, list)) else v]  # noqa: F841
                                for k, v in {**record, "created_at": _now()}.items()})
        with self.transaction():
            self.con.execute("DELETE FROM models WHERE model_id = ?", [record["model_id"]])
            self.con.execute("INSERT INTO models BY NAME SELECT * FROM model_table")

    def model(self, model_id: str) -> dict | None:
        found = [m for m in self.models() if m["model_id"] == model_id]
        return found[0] if found else None

    def models(self, encoder: str | None = None, augmentation: str | None = None) -> list[dict]:
        """Trained models, newest first."""
        columns, rows = self.query(
            "SELECT model_id, encoder, augmentation, encoder_params, train_config, n_images, checkpoint, device, "
            "seconds, history, created_at::VARCHAR AS created_at FROM models ORDER BY models.created_at DESC")
        found = [dict(zip(columns, row)) for row in rows]
        return [m for m in found if encoder in (None, m["encoder"]) and augmentation in (None, m["augmentation"])]

    # -- rankings and scores ---------------------------------------------------------------
    def ranking_fingerprint(self, ranking_id: str) -> str | None:
        row = self._one("SELECT fingerprint FROM rankings WHERE ranking_id = ?", [ranking_id])
        return row[0] if row else None

    def write_ranking(self, ranking: Ranking, ranker_params: dict, metric_params: dict,
                      image_ids: np.ndarray, scores: np.ndarray, run_id: str) -> None:
        """Replace a ranking with its scores; its earlier evaluations go too, as they judged
        scores that no longer exist."""
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(len(scores), dtype=np.int32)
        ranks[order] = np.arange(1, len(scores) + 1)
        score_table = pa.table({  # noqa: F841  (the ranking's id is added by DuckDB, not 100k times here)
            "image_id": pa.array(np.asarray(image_ids), pa.string()),
            "score": pa.array(scores.astype(np.float64)),
            "rank": pa.array(ranks),
        })
        with self.transaction():
            for stmt in ("DELETE FROM scores WHERE ranking_id = ?", "DELETE FROM rankings WHERE ranking_id = ?",
                         "DELETE FROM evaluations WHERE subject_kind = 'ranking' AND subject_id = ?"):
                self.con.execute(stmt, [ranking.ranking_id])
            self.con.execute(
                "INSERT INTO rankings (ranking_id, embedding_set_id, ranker, ranker_params, metric, metric_params, "
                "reference, day, n_images, fingerprint, run_id, created_at, ranker_code, metric_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [ranking.ranking_id, ranking.embedding_set_id, ranking.ranker, _json(ranker_params),
                 ranking.metric, _json(metric_params), ranking.reference, ranking.day, len(scores),
                 ranking.fingerprint, run_id, _now(), ranking.ranker_code, ranking.metric_code],
            )
            self.con.execute("INSERT INTO scores (ranking_id, image_id, score, rank) "
                             "SELECT ?, image_id, score, rank FROM score_table", [ranking.ranking_id])

    def rankings(self, ranking_ids: Sequence[str] | None = None) -> list[Ranking]:
        rows = self.con.sql(
            "SELECT ranking_id, embedding_set_id, ranker, metric, reference, day, fingerprint, "
            "coalesce(ranker_code, ''), coalesce(metric_code, '') FROM rankings ORDER BY created_at").fetchall()
        found = [Ranking(*r) for r in rows]
        return found if ranking_ids is None else [r for r in found if r.ranking_id in set(ranking_ids)]

    def load_scores(self, ranking_id: str) -> tuple[np.ndarray, np.ndarray]:
        table = self.con.sql(
            "SELECT image_id, score FROM scores WHERE ranking_id = ? ORDER BY image_id", params=[ranking_id]
        ).to_arrow_table()
        return (table.column("image_id").to_numpy(zero_copy_only=False),
                table.column("score").to_numpy())

    # -- evaluations -----------------------------------------------------------------------
    def has_evaluation(self, subject_id: str, evaluator: str, params_hash: str) -> bool:
        return self._one(
            "SELECT count(*) FROM evaluations WHERE subject_id = ? AND evaluator = ? AND params_hash = ?",
            [subject_id, evaluator, params_hash])[0] > 0

    def write_evaluation(self, subject_kind: str, subject_id: str, evaluator: str, params: dict,
                         params_hash: str, values: dict[str, float], details: dict, run_id: str,
                         intervals: dict[str, tuple[float, float]] | None = None, code: str = "",
                         groups: dict[str, dict[str, float]] | None = None) -> None:
        """Replace one evaluation: its values (with intervals) and its per-group results."""
        now = _now()
        intervals = intervals or {}
        group_rows = [(key, name, value) for key, named in (groups or {}).items() for name, value in named.items()]
        group_table = pa.table({  # noqa: F841
            "subject_kind": pa.array([subject_kind] * len(group_rows), pa.string()),
            "subject_id": pa.array([subject_id] * len(group_rows), pa.string()),
            "evaluator": pa.array([evaluator] * len(group_rows), pa.string()),
            "params_hash": pa.array([params_hash] * len(group_rows), pa.string()),
            "group_key": pa.array([str(r[0]) for r in group_rows], pa.string()),
            "name": pa.array([r[1] for r in group_rows], pa.string()),
            "value": pa.array([float(r[2]) for r in group_rows], pa.float64())})
        names = list(values)
        value_table = pa.table({  # noqa: F841
            "subject_kind": pa.array([subject_kind] * len(names), pa.string()),
            "subject_id": pa.array([subject_id] * len(names), pa.string()),
            "evaluator": pa.array([evaluator] * len(names), pa.string()),
            "params": pa.array([_json(params)] * len(names), pa.string()),
            "params_hash": pa.array([params_hash] * len(names), pa.string()),
            "name": pa.array(names, pa.string()),
            "value": pa.array([float(values[n]) for n in names], pa.float64()),
            "details": pa.array([_json(details)] * len(names), pa.string()),
            "run_id": pa.array([run_id] * len(names), pa.string()),
            "created_at": pa.array([now] * len(names), pa.timestamp("us", tz="UTC")),
            "ci_low": pa.array([intervals.get(n, (None, None))[0] for n in names], pa.float64()),
            "ci_high": pa.array([intervals.get(n, (None, None))[1] for n in names], pa.float64()),
            "code": pa.array([code] * len(names), pa.string())})
        with self.transaction():
            for table in ("evaluations", "evaluation_groups"):
                self.con.execute(f"DELETE FROM {table} WHERE subject_id = ? AND evaluator = ? AND params_hash = ?",
                                 [subject_id, evaluator, params_hash])
            if group_rows:
                self.con.execute("INSERT INTO evaluation_groups SELECT * FROM group_table")
            if names:
                self.con.execute("INSERT INTO evaluations BY NAME SELECT * FROM value_table")

    # -- reading back ----------------------------------------------------------------------
    def days(self) -> list[int]:
        return [r[0] for r in self.con.sql("SELECT DISTINCT day FROM images WHERE day IS NOT NULL ORDER BY day").fetchall()]

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        result = self.con.sql(sql)
        if result is None:  # a statement without a result set
            return [], []
        return result.columns, result.fetchall()

    def table_counts(self) -> dict[str, int]:
        tables = ("images", "crops", "rejects", "pairs", "objects", "groups", "profiles", "runs", "models",
                  "embedding_sets", "embeddings", "rankings", "scores", "evaluations", "evaluation_groups", "dose_response",
                  "hits", "plate_qc", "image_qc", "image_stats", "image_flags")
        return {t: self._one(f"SELECT count(*) FROM {t}")[0] for t in tables}


def _crop_pixels(blobs: Sequence[bytes], sizes: Sequence[int]) -> np.ndarray:
    """Stored crop blobs -> uint16 (N, C, S, S)."""
    return np.stack([np.frombuffer(blob, dtype="<u2").reshape(-1, size, size) for blob, size in zip(blobs, sizes)])


def _arrow_crop_pixels(pixels: pa.Array, sizes: pa.Array) -> np.ndarray:
    """A non-empty Arrow column of crop blobs -> uint16 (N, C, S, S), straight from Arrow's buffer
    when the crops are all of one shape (one preprocessing makes one shape)."""
    pixels = pixels.combine_chunks() if isinstance(pixels, pa.ChunkedArray) else pixels
    sizes = sizes.to_numpy(zero_copy_only=False)
    width = np.int64 if pa.types.is_large_binary(pixels.type) else np.int32
    offsets = np.frombuffer(pixels.buffers()[1], dtype=width)[pixels.offset:pixels.offset + len(pixels) + 1]
    lengths = np.diff(offsets)
    if pixels.null_count or (sizes != sizes[0]).any() or (lengths != lengths[0]).any():
        return _crop_pixels(pixels.to_pylist(), sizes.tolist())
    start = int(offsets[0])
    data = np.frombuffer(pixels.buffers()[2], dtype="<u2", count=int(offsets[-1] - start) // 2, offset=start)
    return data.reshape(len(pixels), -1, int(sizes[0]), int(sizes[0])).copy()


def _check_found(wanted: int, found: int, preprocess_key: str) -> None:
    if found != wanted:
        raise StoreError(f"{wanted - found} images have no crop for preprocessing {preprocess_key}")


def _quoted(column: str) -> str:
    return f'"{column}"'


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ)")
    done = {r[0] for r in con.sql("SELECT version FROM schema_migrations").fetchall()}
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        con.begin()
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, _now()])
        except BaseException:
            con.rollback()
            raise
        con.commit()


def open_store(path: str | Path = DEFAULT_PATH, read_only: bool = False, wait: float = 0.0,
               config: dict | None = None) -> Store:
    """Open (creating and migrating when needed) the store at ``path``.

    A store that another process is writing is read from a snapshot (``Store.notice`` says so);
    for writing, it is waited for up to ``wait`` seconds. ``config``: DuckDB settings of the
    connection (the SQL console's sandbox)."""
    path = str(path)
    if read_only:
        if not Path(path).exists():
            raise StoreError(f"no phenorank store at {path}: run `phenorank ingest` or `phenorank demo` first")
        store = Store(connect(path, True, wait, config), path, read_only=True)
        try:
            version = store.schema_version()
        except duckdb.CatalogException:
            store.close()
            raise StoreError(f"{path} is a DuckDB file but not a phenorank store") from None
        if version < SCHEMA_VERSION:
            store.close()
            raise StoreError(f"{path} has schema version {version}; open it once for writing to migrate it "
                             f"to version {SCHEMA_VERSION}")
        return store
    connection = connect(path, False, wait, config)
    try:
        refuse_foreign(connection.con, path)
        _migrate(connection.con)
    except BaseException:
        connection.close()
        raise
    store = Store(connection, path, read_only=False)
    store.mark_interrupted_runs()
    return store
