"""Embeddings and profiles out of the store, for the tools the field uses: Parquet (one folder
per embedding set, partitioned by plate) for pycytominer, polars, Spark and DuckDB itself, and
AnnData (``.h5ad``: obs = metadata, X = features) for scanpy-style tools.

Columns follow pycytominer's convention: metadata as ``Metadata_*`` (``Metadata_Plate``,
``Metadata_Well``, ``Metadata_Treatment``, ... and every manifest field as ``Metadata_<field>``),
every other column a feature (named as the encoder names them, else ``<head>_<index>``). The
embedding set's key (encoder, head, parameters, code, crop set) travels in the files' metadata
(Parquet schema metadata ``phenorank``; AnnData ``uns["phenorank"]``), and
``phenorank import-profiles`` reads a Parquet export back (a folder or a file).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..core.store import Store, StoreError

FORMATS = ("parquet", "anndata")
NULL_PLATE = "__HIVE_DEFAULT_PARTITION__"  # hive's name for a null partition value
# phenorank field -> pycytominer-style metadata column
FIELDS = {"image_id": "Metadata_ItemId", "level": "Metadata_Level", "plate": "Metadata_Plate",
          "well": "Metadata_Well", "row": "Metadata_Row", "col": "Metadata_Col", "day": "Metadata_Day",
          "condition": "Metadata_Condition", "treatment": "Metadata_Treatment",
          "concentration": "Metadata_Concentration", "replicate": "Metadata_Replicate", "edge": "Metadata_Edge",
          "path": "Metadata_Path"}


@dataclass
class Exported:
    embedding_set_id: str
    items: int
    features: int
    path: str


def feature_names(store: Store, embedding_set_id: str, head: str, dim: int) -> list[str]:
    names = store.feature_names(embedding_set_id) or []
    if len(names) == dim and len(set(names)) == dim:
        return [str(n) for n in names]
    return [f"{head}_{i:0{len(str(dim - 1))}d}" for i in range(dim)]


def metadata_table(store: Store, ids: np.ndarray) -> pa.Table:
    """The items' metadata as Metadata_* columns, in the order of ``ids``; manifest extras too."""
    samples = store.load_samples(ids)
    columns = {"Metadata_ItemId": pa.array(ids.astype(str), pa.string())}
    for field, name in FIELDS.items():
        if field != "image_id" and field in samples:
            columns[name] = _arrow(samples[field])
    for field in samples.columns:
        if field in FIELDS or field in ("parent_id", "n_layers", "height", "width", "dtype"):
            continue
        # a field that is a Metadata_ column already (imported profiles) keeps its name
        name = re.sub(r"\W", "_", str(field))
        name = name if name.startswith("Metadata_") else "Metadata_" + name
        values = _arrow(samples[field])
        if name in columns:  # the same as phenorank's own field (an export read back): said once
            if columns[name].cast(pa.string()).equals(values.cast(pa.string())):
                continue
            name = "Metadata_Original_" + name.removeprefix("Metadata_")
        columns[name] = values
    return pa.table(columns)


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "fiub":
        return pa.array(values)
    return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], pa.string())


def export_set(store: Store, embedding_set_id: str, out: str | Path, fmt: str = "parquet") -> Exported:
    """Write one embedding set: ``out`` is a folder (Parquet, one file per plate) or an .h5ad file."""
    if fmt not in FORMATS:
        raise StoreError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    es = store.embedding_set(embedding_set_id)
    if es is None:
        raise StoreError(f"no embedding set {embedding_set_id!r} in {store.path}: see `phenorank sql \"select "
                         "embedding_set_id, encoder, head, level from embedding_sets\"`")
    ids, vectors = store.load_embeddings(embedding_set_id)
    if len(ids) == 0:
        raise StoreError(f"embedding set {embedding_set_id} holds no embeddings")
    names = feature_names(store, embedding_set_id, es.head, vectors.shape[1])
    meta = metadata_table(store, ids)
    key = {"embedding_set_id": embedding_set_id, **{k: v for k, v in asdict(es).items() if k != "embedding_set_id"}}
    out = Path(out)
    if fmt == "anndata":
        _write_anndata(meta, vectors, names, key, out)
    else:
        _write_parquet(meta, vectors, names, key, out)
    return Exported(embedding_set_id, len(ids), vectors.shape[1], str(out))


def _write_parquet(meta: pa.Table, vectors: np.ndarray, names: list[str], key: dict, out: Path) -> None:
    """One Parquet file per plate under ``out`` (hive layout: Metadata_Plate=P1/), written to a
    temporary folder and moved into place, so a crash leaves no half export under the name."""
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = np.ascontiguousarray(vectors.T)  # one contiguous column per feature: no copy per column
    table = pa.Table.from_arrays([*meta.columns, *(pa.array(c) for c in columns)], names=[*meta.column_names, *names])
    table = table.replace_schema_metadata({b"phenorank": json.dumps(key, default=str).encode()})
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    plates = table.column("Metadata_Plate") if "Metadata_Plate" in table.column_names else None
    values = [None] if plates is None else pc.unique(plates).to_pylist()
    for plate in sorted(values, key=lambda v: (v is None, str(v))):
        part = table if plates is None else table.filter(
            pc.is_null(plates) if plate is None else pc.equal(plates, plate)).drop_columns(["Metadata_Plate"])
        # the plate is in the folder's name (hive layout, as Spark, DuckDB and pyarrow read it)
        folder = partial / f"Metadata_Plate={_safe(plate)}" if plates is not None else partial
        folder.mkdir(exist_ok=True)
        pq.write_table(part, folder / "part-0.parquet", compression="zstd")
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)


def _safe(value) -> str:
    from urllib.parse import quote

    return NULL_PLATE if value is None else quote(str(value), safe="")  # hive folder names are URI-encoded


def _write_anndata(meta: pa.Table, vectors: np.ndarray, names: list[str], key: dict, out: Path) -> None:
    import anndata
    import pandas as pd

    obs = meta.to_pandas()
    obs.index = pd.Index(obs.pop("Metadata_ItemId").astype(str), name="Metadata_ItemId")
    for column in obs.columns:  # text as categories, as scanpy keeps obs (missing values stay missing)
        if obs[column].dtype == object or str(obs[column].dtype).startswith(("string", "str")):
            obs[column] = pd.Categorical(obs[column])
    adata = anndata.AnnData(X=vectors.astype(np.float32, copy=False), obs=obs,
                            var=pd.DataFrame(index=pd.Index(names, name="feature")))
    adata.uns["phenorank"] = json.dumps(key, default=str)
    partial = out.with_name(out.name + ".partial")
    adata.write_h5ad(partial)
    os.replace(partial, out)


def read_export(path: str | Path):
    """A Parquet export (folder or file) as a pandas DataFrame with the plate column restored as
    text, and the key of the set it came from (None for other Parquet files)."""
    import pyarrow.dataset as ds

    path = Path(path)
    partitioning = ds.HivePartitioning.discover(infer_dictionary=False, null_fallback=NULL_PLATE)
    dataset = ds.dataset(path, format="parquet", partitioning=partitioning if path.is_dir() else None)
    table = dataset.to_table()
    if "Metadata_Plate" in table.column_names:
        plates = table.column("Metadata_Plate").cast(pa.string())
        index = table.column_names.index("Metadata_Plate")
        table = table.set_column(index, "Metadata_Plate", plates)
    first = next(iter(dataset.files), None)
    key = None
    if first:
        import pyarrow.parquet as pq

        raw = (pq.read_schema(first).metadata or {}).get(b"phenorank")
        key = json.loads(raw) if raw else None
    meta = [c for c in table.column_names if c.startswith("Metadata_")]
    if "Metadata_Plate" in meta:  # back where the export had it, after the item's id and level
        meta.remove("Metadata_Plate")
        meta.insert(min(2, len(meta)), "Metadata_Plate")
    table = table.select(meta + [c for c in table.column_names if not c.startswith("Metadata_")])
    frame = table.to_pandas()
    if "Metadata_Plate" in frame:
        frame["Metadata_Plate"] = frame["Metadata_Plate"].replace(NULL_PLATE, None)
    # the file order: by item id, as the export wrote each plate
    if "Metadata_ItemId" in frame:
        frame = frame.sort_values("Metadata_ItemId", kind="stable").reset_index(drop=True)
    return frame, key
