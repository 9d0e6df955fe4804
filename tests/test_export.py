"""Embeddings out of the store as Parquet (one file per plate) and AnnData, and back in: the values,
the metadata and the set's key survive the round trip; other tools (DuckDB, pycytominer, anndata)
read the files as they are."""

import json

import numpy as np
import pytest
from conftest import rows

from phenorank.core.store import open_store


@pytest.fixture
def embedded(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    invoke("embed", "--encoder", "morphometrics")
    set_id = rows(invoke.db, "SELECT embedding_set_id FROM embedding_sets WHERE encoder = 'morphometrics'")[0][0]
    return set_id


def test_parquet_export_is_one_file_per_plate_with_metadata_columns_and_the_key(invoke, embedded, tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    from phenorank.io.export import read_export

    result = invoke("export", embedded, "--out", tmp_path / "out")
    assert embedded in result.output
    folder = tmp_path / "out" / embedded
    assert sorted(p.name for p in folder.iterdir()) == ["Metadata_Plate=synthetic-plate-1"]
    counted = duckdb.sql(f"SELECT Metadata_Plate, Metadata_Day, count(*) FROM read_parquet('{folder}/*/*.parquet', "
                         "hive_partitioning = true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert counted == [("synthetic-plate-1", 7, 60), ("synthetic-plate-1", 10, 60)]
    key = json.loads(pq.read_schema(next(folder.glob("*/*.parquet"))).metadata[b"phenorank"])
    assert key["embedding_set_id"] == embedded and key["encoder"] == "morphometrics" and key["code"]
    frame, read_key = read_export(folder)
    assert read_key == key and list(frame.columns[:3]) == ["Metadata_ItemId", "Metadata_Level", "Metadata_Plate"]
    with open_store(invoke.db) as store:
        ids, vectors = store.load_embeddings(embedded)
        names = store.feature_names(embedded)
    assert list(frame["Metadata_ItemId"]) == list(ids)
    assert np.array_equal(frame[names].to_numpy(np.float32), vectors)
    assert {"Metadata_Treatment", "Metadata_Concentration", "Metadata_Well", "Metadata_effect"} <= set(frame.columns)
    control = frame[frame["Metadata_Condition"] == "control"]
    assert control["Metadata_Treatment"].isna().all() and len(control) > 0


def test_anndata_export_holds_the_same_matrix_and_metadata(invoke, embedded, tmp_path):
    import anndata

    invoke("export", "--encoder", "morphometrics", "--format", "anndata", "--out", tmp_path)
    adata = anndata.read_h5ad(tmp_path / f"{embedded}.h5ad")
    with open_store(invoke.db) as store:
        ids, vectors = store.load_embeddings(embedded)
        names = store.feature_names(embedded)
    assert adata.shape == vectors.shape and np.array_equal(adata.X, vectors)
    assert list(adata.obs_names) == list(ids) and list(adata.var_names) == names
    assert adata.obs["Metadata_Plate"].astype(str).unique().tolist() == ["synthetic-plate-1"]
    assert json.loads(adata.uns["phenorank"])["embedding_set_id"] == embedded


def test_export_import_export_round_trip_is_lossless(invoke, embedded, tmp_path):
    from phenorank.io.export import read_export

    invoke("export", embedded, "--out", tmp_path / "first")
    imported = invoke("import-profiles", tmp_path / "first" / embedded, "--name", "again")
    assert "120 image rows x 11 features" in imported.output  # the export's level, not "well"
    again = rows(invoke.db, "SELECT embedding_set_id FROM embedding_sets WHERE head = 'again'")[0][0]
    invoke("export", again, "--out", tmp_path / "second")
    first, _ = read_export(tmp_path / "first" / embedded)
    second, key = read_export(tmp_path / "second" / again)
    assert key["encoder"] == "profiles" and len(second) == len(first)
    second = second.set_index("Metadata_Original_ItemId").loc[first["Metadata_ItemId"]].reset_index(drop=True)
    features = [c for c in first.columns if not c.startswith("Metadata_")]
    assert np.array_equal(second[features].to_numpy(), first[features].to_numpy())
    for column in ("Metadata_Plate", "Metadata_Well", "Metadata_Day", "Metadata_Condition", "Metadata_Treatment",
                   "Metadata_Concentration", "Metadata_Replicate", "Metadata_effect"):
        a, b = first[column].astype(str).tolist(), second[column].astype(str).tolist()
        assert a == b, column
    # read twice: nothing new stored
    assert "already stored" in invoke("import-profiles", tmp_path / "first" / embedded, "--name", "again").output


def test_pycytominer_takes_an_export_as_it_is(invoke, embedded, tmp_path):
    from pycytominer import normalize

    from phenorank.io.export import read_export

    invoke("export", embedded, "--out", tmp_path)
    frame, _ = read_export(tmp_path / embedded)
    # pycytominer infers only CellProfiler's compartment names; other features are named, as its docs say
    features = [c for c in frame.columns if not c.startswith("Metadata_")]
    normalized = normalize(profiles=frame, features=features, meta_features=[c for c in frame if c not in features],
                           samples="Metadata_Condition == 'control'", method="standardize")
    controls = normalized[normalized["Metadata_Condition"] == "control"][features]
    assert normalized.shape == frame.shape and np.allclose(controls.mean(), 0, atol=1e-5)  # float32


def test_exporting_an_unknown_set_names_it(invoke, embedded, tmp_path):
    result = invoke("export", "no-such-set", "--out", tmp_path, ok=False)
    assert result.exit_code != 0 and "no embedding set 'no-such-set'" in result.output
    assert not any(tmp_path.glob("no-such-set*"))
