"""Profiles made elsewhere into the store: CSV (plain or gzipped), Parquet, or a CellProfiler
SQLite export, one row per well, image or cell.

Metadata columns are those prefixed ``Metadata_`` / ``Image_Metadata_``, CellProfiler's row
identifiers (``ImageNumber``, ``ObjectNumber``, ``TableNumber``) and bookkeeping (``FileName_``,
``PathName_``, ``URL_``, ``ExecutionTime_``, ...), and any named with ``metadata``; every other column is a feature and must be numeric. Each metadata column is kept
under its own name (``Metadata_MoA``), and the usual ones also fill phenorank's fields (plate,
well, treatment, concentration, condition), so rankers, evaluators and aggregation name them
like any manifest column. The rows become items without images (table ``profiles``) and the
features one embedding set (encoder ``profiles``, head = the dataset's name).

Nothing is stored until the whole table has passed its checks; a failed check names the column
or the file's row numbers.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.pipeline import digest
from ..core.store import EmbeddingSet, Store
from ..registry.code import source_hash

ENCODER = "profiles"  # the encoder name of imported sets: `--encoders profiles` selects them
PREFIXES = ("Metadata_", "Image_Metadata_")
IDENTIFIERS = ("ImageNumber", "ObjectNumber", "TableNumber")
# CellProfiler's bookkeeping columns: file names, paths, timings, sizes; never features
BOOKKEEPING = tuple(p + k for p in ("", "Image_") for k in (
    "FileName_", "PathName_", "URL_", "ExecutionTime_", "ModuleError_", "Group_", "Height_", "Width_",
    "MD5Digest_", "Scaling_", "Series_", "Frame_", "Channel_", "ProcessingStatus"))
LEVELS = ("well", "image", "cell")
# phenorank field <- the first metadata column (prefix stripped, any case) of these names
FIELD_NAMES = {
    "plate": ("plate", "plate_map_name", "platebarcode", "barcode"),
    "well": ("well", "well_position", "wellposition"),
    "treatment": ("compound", "treatment", "broad_sample", "pert_iname", "drug", "perturbation"),
    "concentration": ("concentration", "dose", "mmoles_per_liter", "conc", "concentration_um"),
    "condition": ("condition", "control_type", "pert_type"),
    "replicate": ("replicate", "rep"),
    "day": ("day", "timepoint", "time"),
}


class ProfileError(ValueError):
    """A profile table that cannot be imported as it is; the message names the file and the
    column or rows."""


@dataclass
class ProfileTable:
    """A checked table: metadata (text columns, file order), features (float64), names."""

    path: str
    metadata: pd.DataFrame
    features: np.ndarray
    feature_names: list[str]
    fields: dict[str, str]  # phenorank field -> the metadata column it comes from
    dropped: list[str] = field(default_factory=list)  # features left out by drop_bad_features, with why


def read_table(path: str | Path, table: str | None = None) -> pd.DataFrame:
    """The file as a DataFrame: CSV (any delimiter, optionally gzipped), Parquet, or one table
    of a CellProfiler SQLite export (default ``Per_Image``; an object table such as
    ``Per_Cells`` gets its image's ``Image_Metadata_`` columns by ImageNumber)."""
    path = Path(path)
    if path.is_dir():  # a Parquet export (one folder per plate) or any hive-partitioned Parquet folder
        from .export import read_export

        try:
            return read_export(path)[0]
        except (OSError, ValueError) as exc:
            raise ProfileError(f"{path}: a folder that cannot be read as Parquet files ({exc})") from None
    if not path.is_file():
        raise ProfileError(f"{path}: no such file")
    head = path.open("rb").read(16)
    try:
        if head.startswith(b"SQLite format 3"):
            return _read_sqlite(path, table)
        if head.startswith(b"PAR1"):
            return pd.read_parquet(path)
        opener = gzip.open if head.startswith(b"\x1f\x8b") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            sample = handle.read(65536)
        try:
            delimiter = csv.Sniffer().sniff(sample.splitlines()[0] if sample else "", delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
        return pd.read_csv(path, sep=delimiter, compression="gzip" if opener is gzip.open else None,
                           encoding="utf-8-sig", low_memory=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, sqlite3.Error) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"{path}: cannot be read as CSV, Parquet or CellProfiler SQLite ({exc})") from None


def _read_sqlite(path: Path, table: str | None) -> pd.DataFrame:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
        name = table or ("Per_Image" if "Per_Image" in tables else None)
        if name not in tables:
            raise ProfileError(f"{path}: no table {table or 'Per_Image'!r}; tables: {', '.join(tables)} (--table)")
        frame = pd.read_sql_query(f'SELECT * FROM "{name}"', con)
        if name != "Per_Image" and "Per_Image" in tables and "ImageNumber" in frame.columns:
            image = pd.read_sql_query('SELECT * FROM "Per_Image"', con)
            keep = ["ImageNumber"] + [c for c in image.columns if c.startswith("Image_Metadata_")]
            frame = frame.merge(image[keep], on="ImageNumber", how="left", validate="many_to_one")
    return frame


def _canonical(column: str) -> str:
    for prefix in PREFIXES:
        if column.startswith(prefix):
            column = column[len(prefix):]
            break
    return column.lower()


def check_table(frame: pd.DataFrame, path: str, metadata: list[str] = (), fields: dict[str, str] | None = None,
                drop_bad_features: bool = False) -> ProfileTable:
    """Split and check a table: metadata vs numeric features, no NaN/inf or constant feature (or
    drop them with ``drop_bad_features``), no duplicated row, a treatment on every row."""
    if frame.empty:
        raise ProfileError(f"{path}: no rows")
    duplicated_names = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated_names:
        raise ProfileError(f"{path}: column(s) {', '.join(map(str, duplicated_names))} appear more than once")
    missing = [c for c in metadata if c not in frame.columns]
    if missing:
        raise ProfileError(f"{path}: no column {', '.join(missing)} (given with --metadata)")
    meta_columns = [c for c in frame.columns
                    if str(c).startswith(PREFIXES + BOOKKEEPING) or c in IDENTIFIERS or c in metadata]
    feature_columns = [c for c in frame.columns if c not in meta_columns]
    if not feature_columns:
        raise ProfileError(f"{path}: no feature columns (every column is metadata)")
    text = [c for c in feature_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        column = text[0]
        unreadable = (pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()).to_numpy()
        bad = int(np.argmax(unreadable))  # the first unreadable row (0 when only missing values)
        raise ProfileError(f"{path}: column {column!r} is not numeric (row {bad + 2}: {frame[column].iloc[bad]!r}); "
                           f"prefix it Metadata_ or name it with --metadata" +
                           (f" ({len(text) - 1} more such column(s))" if len(text) > 1 else ""))
    features = frame[feature_columns].to_numpy(dtype=np.float64)
    names = [str(c) for c in feature_columns]
    dropped: list[str] = []
    finite = np.isfinite(features)
    finite_columns = finite.all(axis=0)
    if not finite_columns.all():
        bad_columns = np.flatnonzero(~finite_columns)
        if not drop_bad_features:
            first = bad_columns[0]
            rows = np.flatnonzero(~finite[:, first])
            raise ProfileError(
                f"{path}: feature {names[first]!r} is NaN or infinite on {len(rows)} row(s) (file rows "
                f"{', '.join(str(r + 2) for r in rows[:5])}{', ...' if len(rows) > 5 else ''}); "
                f"{len(bad_columns)} feature(s) have such values. --drop-bad-features leaves them out")
        dropped += [f"{names[i]} (NaN or infinite)" for i in bad_columns]
    with np.errstate(invalid="ignore"):  # inf - inf in a column refused or dropped above
        constant = np.flatnonzero((np.ptp(features, axis=0) == 0) & finite_columns)
    if len(constant):
        if not drop_bad_features:
            raise ProfileError(f"{path}: feature(s) {', '.join(names[i] for i in constant[:5])}"
                               f"{' ...' if len(constant) > 5 else ''} have one value on every row and tell nothing; "
                               "--drop-bad-features leaves them out")
        dropped += [f"{names[i]} (constant)" for i in constant]
    if dropped:
        keep = finite_columns.copy()
        keep[constant] = False
        if not keep.any():
            raise ProfileError(f"{path}: every feature is NaN, infinite or constant")
        features, names = features[:, keep], [n for n, k in zip(names, keep) if k]
    meta = frame[meta_columns].astype("string").fillna("")
    fields = resolve_fields(meta_columns, fields or {}, path)
    if "treatment" not in fields:
        raise ProfileError(f"{path}: no treatment column among the metadata ({', '.join(meta_columns) or 'none'}); "
                           "name it with --treatment")
    blank = meta[fields["treatment"]].str.strip().to_numpy() == ""
    if "condition" in fields:  # a control well names its condition, not a treatment (a phenorank export)
        blank &= meta[fields["condition"]].str.strip().to_numpy() == ""
    empty = np.flatnonzero(blank)
    if len(empty):
        raise ProfileError(f"{path}: {len(empty)} row(s) have no {fields['treatment']} (file rows "
                           f"{', '.join(str(r + 2) for r in empty[:5])})")
    both = pd.concat([meta.reset_index(drop=True), pd.DataFrame(features)], axis=1)
    repeated = np.flatnonzero(both.duplicated(keep=False).to_numpy())
    if len(repeated):
        raise ProfileError(f"{path}: {len(repeated)} rows repeat another row exactly (file rows "
                           f"{', '.join(str(r + 2) for r in repeated[:6])}); remove the duplicates")
    return ProfileTable(path, meta, features, names, fields, dropped)


def resolve_fields(meta_columns: list[str], given: dict[str, str], path: str) -> dict[str, str]:
    """phenorank field -> metadata column: as given (``--plate``, ``--treatment``, ...), else by name."""
    fields = {}
    for name, column in given.items():
        if column:
            if column not in meta_columns:
                raise ProfileError(f"{path}: --{name} {column!r} is not a metadata column "
                                   f"({', '.join(meta_columns) or 'none'})")
            fields[name] = column
    by_name = {}
    for column in meta_columns:
        by_name.setdefault(_canonical(column), column)
    for name, candidates in FIELD_NAMES.items():
        if name not in fields:
            found = next((by_name[c] for c in candidates if c in by_name), None)
            if found:
                fields[name] = found
    return fields


def items_table(table: ProfileTable, dataset: str, level: str) -> pa.Table:
    """One item per row: a stable id (dataset + metadata + the row's place among rows with the same
    metadata), phenorank's fields, and every metadata column under its own name."""
    meta, fields = table.metadata, table.fields
    keys = meta.astype(str).agg("\x1f".join, axis=1) if len(meta.columns) else pd.Series([""] * len(meta))
    occurrence = keys.groupby(keys).cumcount().to_numpy()
    ids = [digest("profile", dataset, key, int(n)) for key, n in zip(keys.to_numpy(), occurrence)]

    def column(name: str, kind=str):
        source = fields.get(name)
        if source is None:
            return [None] * len(meta)
        values = meta[source].to_numpy()
        if kind is str:
            return [v if v != "" else None for v in values]
        return [_number(v, kind, source, i, table.path) for i, v in enumerate(values)]

    well = column("well")
    rows, cols = zip(*[_row_col(w) for w in well]) if len(well) else ((), ())
    condition = column("condition")
    treatment = column("treatment")
    extra = meta.to_dict(orient="records")
    return pa.table({
        "item_id": pa.array(ids, pa.string()),
        "dataset": pa.array([dataset] * len(meta), pa.string()),
        "level": pa.array([level] * len(meta), pa.string()),
        "plate": pa.array(column("plate"), pa.string()),
        "well": pa.array(well, pa.string()),
        "row": pa.array(list(rows), pa.string()),
        "col": pa.array(list(cols), pa.int32()),
        "day": pa.array(column("day", int), pa.int32()),
        # without a condition column, a row's condition is its treatment: --references DMSO works
        "condition": pa.array([c if c is not None else t for c, t in zip(condition, treatment)], pa.string()),
        "treatment": pa.array(treatment, pa.string()),
        "concentration": pa.array(column("concentration", float), pa.float64()),
        "replicate": pa.array(column("replicate", int), pa.int32()),
        "edge": pa.array([None] * len(meta), pa.bool_()),
        "extra": pa.array([json.dumps(e) for e in extra], pa.string()),
    })


def _number(value: str, kind, column: str, index: int, path: str):
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"{path}: row {index + 2}: {column} {value!r} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise ProfileError(f"{path}: row {index + 2}: {column} {value!r} is not a whole number")
        return int(number)
    return number


_WELL = re.compile(r"^([A-Pa-p]{1,2})0*([0-9]{1,2})$")


def _row_col(well: str | None) -> tuple[str | None, int | None]:
    match = _WELL.match(well or "")
    return (match.group(1).upper(), int(match.group(2))) if match else (None, None)


@dataclass
class ImportReport:
    dataset: str
    rows: int
    features: int
    plates: int
    treatments: int
    fields: dict[str, str]
    dropped: list[str]
    embedding_set: EmbeddingSet
    stored: bool  # False: the same table was imported already, nothing written


def import_profiles(store: Store, path: str | Path, dataset: str | None = None, level: str | None = None,
                    metadata: list[str] = (), fields: dict[str, str] | None = None, table: str | None = None,
                    drop_bad_features: bool = False, run_id: str = "") -> ImportReport:
    """Read, check and store one profile table as dataset ``dataset`` (default: the file's stem).
    ``level``: what a row is; default: a phenorank export's own level, else well."""
    path = Path(path)
    frame = read_table(path, table)
    if level is None:
        exported = frame["Metadata_Level"].dropna().unique() if "Metadata_Level" in frame else []
        level = {"object": "cell"}.get(str(exported[0]), str(exported[0])) if len(exported) == 1 else "well"
        level = level if level in LEVELS else "well"
    if level not in LEVELS:
        raise ProfileError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    dataset = dataset or re.sub(r"\.(csv|tsv|txt|parquet|sqlite|db)(\.gz)?$", "", path.name, flags=re.I)
    checked = check_table(frame, str(path), list(metadata), fields, drop_bad_features)
    items = items_table(checked, dataset, level)
    vectors = checked.features.astype(np.float32)
    content = digest(items.column("item_id").to_pylist(), items.column("extra").to_pylist(),
                     checked.feature_names, _hash_array(vectors))
    code = source_hash((__name__,))
    es = EmbeddingSet(digest("profiles", dataset, level, content, code), ENCODER, dataset,
                      {"dataset": dataset, "file": path.name, "content": content}, f"profiles:{dataset}",
                      vectors.shape[1], level, code=code)
    stored = len(store.embedded_ids(es.embedding_set_id)) == len(vectors)
    if not stored:
        store.write_profiles(items, es, checked.feature_names, vectors, run_id)
    treatment = checked.metadata[checked.fields["treatment"]]
    plates = checked.metadata[checked.fields["plate"]].nunique() if "plate" in checked.fields else 0
    return ImportReport(dataset, len(vectors), vectors.shape[1], int(plates), int(treatment.nunique()),
                        checked.fields, checked.dropped, es, not stored)


def _hash_array(array: np.ndarray) -> str:
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=8).hexdigest()
