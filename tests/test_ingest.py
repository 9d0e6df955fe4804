import numpy as np
import pytest

from conftest import save_stack, spheroid_stack, write_manifest
from phenorank.core.ingest import ingest
from phenorank.core.manifest import read_manifest
from phenorank.core.preprocess import PreprocessParams
from phenorank.core.store import open_store
from phenorank.plugins.loaders import TiffStackLoader


def make_folder(tmp_path, stacks: dict[str, np.ndarray]):
    rows = []
    for i, (name, stack) in enumerate(stacks.items()):
        save_stack(tmp_path / name, stack)
        rows.append({"path": name, "well": f"B{i + 2:02d}", "day": 10, "condition": "control"})
    return rows


def run_ingest(tmp_path, rows, db="store.duckdb"):
    entries = read_manifest(write_manifest(tmp_path, rows))
    with open_store(tmp_path / db) as store:
        report = ingest(entries, TiffStackLoader(), store, "test-run", PreprocessParams(size=32))
        counts = store.table_counts()
        reasons = dict(store.query("SELECT path, reason FROM rejects")[1])
    return report, counts, reasons


def test_one_three_and_five_layer_stacks_become_three_channel_crops(tmp_path):
    rows = make_folder(tmp_path, {f"l{n}.tif": spheroid_stack(n_layers=n, seed=n) for n in (1, 3, 5)})
    report, counts, _ = run_ingest(tmp_path, rows)
    assert (report.ingested, report.rejected) == (3, [])
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        _, found = store.query("SELECT n_layers, height, width, dtype, len(layers_used) FROM images JOIN crops USING (image_id) ORDER BY n_layers")
        ids = store.crop_ids(PreprocessParams(size=32).key)
        (_, images), = list(store.iter_crops(ids, PreprocessParams(size=32).key))
    assert found == [(1, 60, 72, "uint16", 3), (3, 60, 72, "uint16", 3), (5, 60, 72, "uint16", 3)]
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_bad_files_are_rejected_with_reasons_and_the_batch_goes_on(tmp_path):
    stacks = {"good.tif": spheroid_stack(seed=1), "eight_bit.tif": spheroid_stack(dtype=np.uint8, seed=2),
              "white.tif": np.full((3, 40, 40), 65000, np.uint16), "two.tif": spheroid_stack(n_layers=2)}
    rows = make_folder(tmp_path, stacks)
    (tmp_path / "truncated.tif").write_bytes((tmp_path / "good.tif").read_bytes()[:300])
    save_stack(tmp_path / "copy.tif", stacks["good.tif"])
    rows += [{"path": "truncated.tif", "well": "C02", "day": 10, "condition": "x"},
             {"path": "missing.tif", "well": "C03", "day": 10, "condition": "x"},
             {"path": "copy.tif", "well": "C04", "day": 10, "condition": "x"}]
    report, counts, reasons = run_ingest(tmp_path, rows)
    assert report.ingested == 2 and counts["images"] == 2 and counts["crops"] == 2
    reasons = {k.rsplit("/", 1)[-1]: v for k, v in reasons.items()}
    assert set(reasons) == {"white.tif", "two.tif", "truncated.tif", "missing.tif", "copy.tif"}
    assert "uniform" in reasons["white.tif"]
    assert "2 focal layers" in reasons["two.tif"]
    assert "file not found (manifest line 7)" in reasons["missing.tif"]
    assert "duplicate" in reasons["copy.tif"] and "good.tif" in reasons["copy.tif"]
    assert reasons["truncated.tif"]  # tifffile's own explanation


def test_eight_bit_file_keeps_its_dtype_record_and_is_scaled(tmp_path):
    rows = make_folder(tmp_path, {"a16.tif": spheroid_stack(seed=5), "a8.tif": spheroid_stack(dtype=np.uint8, seed=5)})
    run_ingest(tmp_path, rows)
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        _, dtypes = store.query("SELECT path, dtype FROM images ORDER BY path")
        key = PreprocessParams(size=32).key
        ids = [r[0] for r in store.query("SELECT image_id FROM images ORDER BY path")[1]]
        (_, images), = list(store.iter_crops(ids, key))
    assert [d for _, d in dtypes] == ["uint16", "uint8"]
    assert abs(images[0].mean() - images[1].mean()) < 0.005


def test_reingest_is_idempotent_and_only_hashes_known_files(tmp_path):
    rows = make_folder(tmp_path, {f"s{i}.tif": spheroid_stack(seed=i) for i in range(4)})
    first, counts1, _ = run_ingest(tmp_path, rows)
    rows[0]["condition"] = "single_dose"  # a metadata fix is applied on re-ingest
    second, counts2, _ = run_ingest(tmp_path, rows)
    assert (first.ingested, first.cached) == (4, 0)
    assert (second.ingested, second.cached) == (0, 4)
    assert counts1 == {**counts2, "runs": counts2["runs"]}
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM images WHERE condition = 'single_dose'")[1] == [(1,)]


def test_a_fixed_file_leaves_the_rejects_table(tmp_path):
    rows = make_folder(tmp_path, {"a.tif": np.zeros((3, 30, 30), np.uint16)})
    _, counts, _ = run_ingest(tmp_path, rows)
    assert counts["rejects"] == 1 and counts["images"] == 0
    save_stack(tmp_path / "a.tif", spheroid_stack())
    _, counts, _ = run_ingest(tmp_path, rows)
    assert counts["rejects"] == 0 and counts["images"] == 1


@pytest.mark.parametrize("shape, message", [((2, 3, 20, 20), "4-D"), ((20, 20, 3), "colour")])
def test_loader_refuses_shapes_it_cannot_use(tmp_path, shape, message):
    import tifffile

    path = tmp_path / "odd.tif"
    data = np.zeros(shape, np.uint16)
    tifffile.imwrite(path, data, photometric="rgb" if shape[-1] == 3 else "minisblack")
    with pytest.raises(ValueError, match=message):
        TiffStackLoader().read(str(path))
