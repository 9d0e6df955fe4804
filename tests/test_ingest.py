import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from conftest import save_stack, spheroid_stack, write_manifest
from phenorank.core.ingest import WRITE_EVERY, ingest
from phenorank.core.manifest import read_manifest
from phenorank.core.preprocess import PreprocessParams
from phenorank.core.store import open_store
from phenorank.plugins.loaders import TiffStackLoader

PARAMS = PreprocessParams(size=32)


class CountingLoader(TiffStackLoader):
    reads = 0

    def read(self, path):
        CountingLoader.reads += 1
        return super().read(path)


def make_folder(tmp_path, stacks: dict[str, np.ndarray], start=0):
    rows = []
    for i, (name, stack) in enumerate(stacks.items(), start=start):
        save_stack(tmp_path / name, stack)
        rows.append({"path": name, "well": f"{'BCDEFG'[i // 10]}{i % 10 + 2:02d}", "day": 10, "condition": "control"})
    return rows


def run_ingest(tmp_path, rows, db="store.duckdb", params=PARAMS, workers=1, loader=None):
    entries = read_manifest(write_manifest(tmp_path, rows))
    with open_store(tmp_path / db) as store:
        report = ingest(entries, loader or TiffStackLoader(), store, "test-run", params, workers)
        counts = store.table_counts()
        reasons = dict(store.query("SELECT path, reason FROM rejects")[1])
    return report, counts, {k.rsplit("/", 1)[-1]: v for k, v in reasons.items()}


def snapshot(db):
    with open_store(db, read_only=True) as store:
        return (store.query("SELECT * EXCLUDE (run_id, ingested_at) FROM images ORDER BY image_id")[1],
                store.query("SELECT * FROM crops ORDER BY image_id, preprocess_key")[1])


def test_one_three_and_five_layer_stacks_become_three_channel_crops(tmp_path):
    rows = make_folder(tmp_path, {f"l{n}.tif": spheroid_stack(n_layers=n, seed=n) for n in (1, 3, 5)})
    report, counts, _ = run_ingest(tmp_path, rows)
    assert (report.ingested, report.rejected) == (3, [])
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        _, found = store.query("SELECT n_layers, height, width, dtype, len(layers_used) FROM images "
                               "JOIN crops USING (image_id) ORDER BY n_layers")
        ids = store.crop_ids(PARAMS.key)
        (_, images), = list(store.iter_crops(ids, PARAMS.key))
    assert found == [(1, 60, 72, "uint16", 3), (3, 60, 72, "uint16", 3), (5, 60, 72, "uint16", 3)]
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0


def write_bad_inputs(folder):
    """Every kind of unusable file a plate folder can hold, with the words its reason must contain."""
    good = spheroid_stack(seed=1)
    save_stack(folder / "good.tif", good)
    data = (folder / "good.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(data[:len(data) // 2])
    (folder / "header_only.tif").write_bytes(data[:300])
    (folder / "empty.tif").write_bytes(b"")
    (folder / "text.tif").write_text("not an image\n")
    save_stack(folder / "copy.tif", good)
    save_stack(folder / "int32.tif", spheroid_stack(seed=2).astype(np.int32))
    save_stack(folder / "four_d.tif", np.stack([spheroid_stack(seed=3)] * 2))
    save_stack(folder / "two.tif", spheroid_stack(n_layers=2, seed=4))
    save_stack(folder / "seven.tif", spheroid_stack(n_layers=7, seed=5))
    save_stack(folder / "white.tif", np.full((3, 60, 72), 65535, np.uint16))
    save_stack(folder / "black.tif", np.zeros((3, 60, 72), np.uint16))
    nan = spheroid_stack(dtype=np.float32, seed=6)
    nan[1, 5, 5] = np.nan
    save_stack(folder / "nan.tif", nan)
    tifffile.imwrite(folder / "rgb.tif", np.zeros((60, 72, 3), np.uint8), photometric="rgb")
    return {
        "truncated.tif": "truncated file: the image data needs",
        "header_only.tif": "truncated file",
        "empty.tif": "empty file",
        "text.tif": "not a readable TIFF",
        "copy.tif": "same content as",
        "int32.tif": "unsupported pixel type int32",
        "four_d.tif": "4-D image",
        "two.tif": "2 focal layers",
        "seven.tif": "7 focal layers",
        "white.tif": "uniform",
        "black.tif": "uniform",
        "nan.tif": "1 NaN or infinite values",
        "rgb.tif": "colour image",
        "missing.tif": "file not found",
    }


def test_every_bad_input_is_rejected_with_its_reason_and_the_batch_goes_on(tmp_path):
    expected = write_bad_inputs(tmp_path)
    names = ["good.tif", *expected]
    rows = [{"path": n, "well": f"{'BCDEF'[i // 10]}{i % 10 + 2:02d}", "day": 10, "condition": "x"}
            for i, n in enumerate(names)]
    report, counts, reasons = run_ingest(tmp_path, rows)
    assert report.ingested == 1 and counts["images"] == 1 and counts["crops"] == 1
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    assert "good.tif" in reasons["copy.tif"]
    assert f"manifest.csv line {names.index('missing.tif') + 2}" in reasons["missing.tif"]


def test_bad_files_never_change_what_is_stored(tmp_path):
    good = {f"s{i}.tif": spheroid_stack(seed=10 + i) for i in range(3)}
    rows = make_folder(tmp_path, good)
    run_ingest(tmp_path, rows)
    before = snapshot(tmp_path / "store.duckdb")
    expected = write_bad_inputs(tmp_path)
    (tmp_path / "s0.tif").write_bytes((tmp_path / "s0.tif").read_bytes()[:1000])  # a stored file breaks
    rows += [{"path": n, "well": f"{'DEF'[i // 10]}{i % 10 + 2:02d}", "day": 10, "condition": "x"}
             for i, n in enumerate(["good.tif", *expected])]
    report, counts, reasons = run_ingest(tmp_path, rows)
    assert report.ingested == 1 and report.cached == 2  # good.tif is new; s1, s2 only hashed
    assert "truncated" in reasons["s0.tif"]
    after = snapshot(tmp_path / "store.duckdb")
    assert all(row in after[0] for row in before[0]) and all(row in after[1] for row in before[1])
    assert counts["images"] == 4


def test_reingest_costs_only_the_hash_and_applies_metadata_fixes(tmp_path):
    rows = make_folder(tmp_path, {f"s{i}.tif": spheroid_stack(seed=i) for i in range(4)})
    CountingLoader.reads = 0
    first, counts1, _ = run_ingest(tmp_path, rows, loader=CountingLoader())
    assert (first.ingested, first.cached, CountingLoader.reads) == (4, 0, 4)
    before = snapshot(tmp_path / "store.duckdb")
    rows[0]["condition"] = "single_dose"  # a metadata fix is applied on re-ingest
    second, counts2, _ = run_ingest(tmp_path, rows, loader=CountingLoader())
    assert (second.ingested, second.cached, second.updated, CountingLoader.reads) == (0, 3, 1, 4)
    assert counts1 == {**counts2, "runs": counts1["runs"]}
    after = snapshot(tmp_path / "store.duckdb")
    assert after[1] == before[1]  # crops untouched
    assert [r for r in after[0] if r not in before[0]][0][7] == "single_dose"
    third, _, _ = run_ingest(tmp_path, rows, loader=CountingLoader())
    assert (third.ingested, third.cached, third.updated, CountingLoader.reads) == (0, 4, 0, 4)


def test_cache_is_keyed_by_preprocessing_parameters(tmp_path):
    rows = make_folder(tmp_path, {f"s{i}.tif": spheroid_stack(seed=i) for i in range(3)})
    run_ingest(tmp_path, rows)
    other, counts, _ = run_ingest(tmp_path, rows, params=PreprocessParams(size=48))
    assert other.ingested == 3 and counts["crops"] == 6 and counts["images"] == 3
    again, _, _ = run_ingest(tmp_path, rows, params=PreprocessParams(size=48))
    assert again.cached == 3


def test_a_changed_file_replaces_its_old_version(tmp_path):
    rows = make_folder(tmp_path, {"a.tif": spheroid_stack(seed=1), "b.tif": spheroid_stack(seed=2)})
    run_ingest(tmp_path, rows)
    save_stack(tmp_path / "a.tif", spheroid_stack(seed=3, center=(25, 30)))
    report, counts, _ = run_ingest(tmp_path, rows)
    assert (report.ingested, report.cached) == (1, 1)
    assert counts["images"] == 2 and counts["crops"] == 2


def test_a_fixed_file_leaves_the_rejects_table(tmp_path):
    rows = make_folder(tmp_path, {"a.tif": np.zeros((3, 30, 30), np.uint16)})
    _, counts, _ = run_ingest(tmp_path, rows)
    assert counts["rejects"] == 1 and counts["images"] == 0
    save_stack(tmp_path / "a.tif", spheroid_stack())
    _, counts, _ = run_ingest(tmp_path, rows)
    assert counts["rejects"] == 0 and counts["images"] == 1


def test_tiff_flavours_and_pixel_types_are_read(tmp_path):
    stack = spheroid_stack(n_layers=3, seed=7)
    tifffile.imwrite(tmp_path / "ome.ome.tif", stack, ome=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "ome5d.ome.tif", stack[np.newaxis, :, np.newaxis], ome=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "zlib.tif", stack, photometric="minisblack", compression="zlib")
    tifffile.imwrite(tmp_path / "bigendian.tif", stack, photometric="minisblack", byteorder=">")
    tifffile.imwrite(tmp_path / "pages.tif", stack[:1], photometric="minisblack")
    tifffile.imwrite(tmp_path / "plain2d.tif", stack[1], photometric="minisblack")
    save_stack(tmp_path / "eight.tif", spheroid_stack(n_layers=3, seed=7, dtype=np.uint8))
    save_stack(tmp_path / "float.tif", (stack / 65535).astype(np.float32))
    loader = TiffStackLoader()
    for name in ("ome.ome.tif", "ome5d.ome.tif", "zlib.tif", "bigendian.tif"):
        assert np.array_equal(loader.read(str(tmp_path / name)), stack), name
    assert loader.read(str(tmp_path / "plain2d.tif")).shape == (1, 60, 72)
    names = ["ome.ome.tif", "ome5d.ome.tif", "zlib.tif", "bigendian.tif", "plain2d.tif", "eight.tif", "float.tif"]
    rows = [{"path": n, "well": f"B{i + 2:02d}", "day": 7, "condition": "x"} for i, n in enumerate(names)]
    report, _, reasons = run_ingest(tmp_path, rows)
    assert report.ingested == 7 and reasons == {}
    with open_store(tmp_path / "store.duckdb", read_only=True) as store:
        _, found = store.query("SELECT path, dtype, n_layers, crop_x, pixels FROM images JOIN crops USING (image_id)")
    found = {p.rsplit("/", 1)[-1]: rest for p, *rest in found}
    assert found["eight.tif"][:2] == ["uint8", 3] and found["float.tif"][:2] == ["float32", 3]
    assert found["plain2d.tif"][:2] == ["uint16", 1] and found["bigendian.tif"][:2] == ["uint16", 3]
    same_pixels = {found[n][3] for n in ("ome.ome.tif", "ome5d.ome.tif", "zlib.tif", "bigendian.tif")}
    assert len(same_pixels) == 1  # one image, four ways of storing it


def test_workers_give_the_same_crops_as_one_process(tmp_path):
    stacks = {f"s{i}.tif": spheroid_stack(n_layers=(1, 3, 5)[i % 3], seed=20 + i, center=(25 + i, 30 + i))
              for i in range(12)}
    rows = make_folder(tmp_path, stacks)
    save_stack(tmp_path / "bad.tif", np.zeros((2, 10, 10), np.uint16))
    rows.append({"path": "bad.tif", "well": "H02", "day": 10, "condition": "x"})
    one, _, reasons_one = run_ingest(tmp_path, rows, db="one.duckdb", workers=1)
    two, _, reasons_two = run_ingest(tmp_path, rows, db="two.duckdb", workers=3)
    assert (one.ingested, len(one.rejected)) == (two.ingested, len(two.rejected)) == (12, 1)
    assert reasons_one == reasons_two
    assert snapshot(tmp_path / "one.duckdb") == snapshot(tmp_path / "two.duckdb")


def test_pairs_join_each_wells_consecutive_days(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    with open_store(invoke.db, read_only=True) as store:
        _, rows = store.query(
            "SELECT p.well, p.early_day, p.late_day, e.well, e.day, l.well, l.day FROM pairs p "
            "JOIN images e ON e.image_id = p.early_image_id JOIN images l ON l.image_id = p.late_image_id")
    assert len(rows) == 60
    assert all(w == ew == lw and (d7, d10, ed, ld) == (7, 10, 7, 10) for w, d7, d10, ew, ed, lw, ld in rows)


def test_wells_with_two_images_on_a_day_are_not_paired(tmp_path):
    stacks = {f"s{i}.tif": spheroid_stack(seed=30 + i) for i in range(5)}
    rows = make_folder(tmp_path, stacks)
    days_wells = [(7, "B02"), (10, "B02"), (7, "B03"), (10, "B03"), (10, "B03")]
    for row, (day, well) in zip(rows, days_wells):
        row.update(day=day, well=well)
    report, counts, _ = run_ingest(tmp_path, rows)
    assert (report.pairs, report.unpaired_wells, counts["pairs"]) == (1, 1, 1)


KILLED_INGEST = """
import os, signal, sys
from phenorank.core.ingest import ingest
from phenorank.core.manifest import read_manifest
from phenorank.core.preprocess import PreprocessParams
from phenorank.core.store import open_store
from phenorank.plugins.loaders import TiffStackLoader


def advance(n=1):
    global done
    done += n
    if done == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    plate, db, workers, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    executor = None
    if workers == "cluster":  # the client of a LocalCluster of 2 workers is what gets killed
        from distributed import Client, LocalCluster
        from phenorank.distributed import ClusterExecutor

        # workers whose scheduler vanishes with this process give up after 5 s
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", death_timeout=5)
        executor, workers = ClusterExecutor(Client(cluster)), 1
    store = open_store(db)
    run_id = store.start_run("ingest", {}, "x", "test")
    done = 0
    ingest(read_manifest(plate + "/manifest.csv", plate), TiffStackLoader(), store, run_id,
           PreprocessParams(size=32), int(workers), advance, executor=executor)
"""


@pytest.mark.parametrize("workers", [1, 2, "cluster"])
def test_ingest_killed_mid_way_leaves_a_consistent_store_and_a_rerun_finishes(tmp_path, tiny_plate, workers):
    db = tmp_path / "killed.duckdb"
    kill_after = WRITE_EVERY + 7  # one batch committed, the next one half done
    script = tmp_path / "killed_ingest.py"
    script.write_text(textwrap.dedent(KILLED_INGEST))
    with open(tmp_path / "stderr.txt", "w") as stderr:
        done = subprocess.run([sys.executable, str(script), str(tiny_plate), str(db), str(workers),
                               str(kill_after)], stderr=stderr, timeout=120)
    assert done.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    with open_store(db) as store:
        counts = store.table_counts()
        _, runs = store.query("SELECT status FROM runs")
        _, orphans = store.query("SELECT count(*) FROM images LEFT JOIN crops USING (image_id) "
                                 "WHERE crops.image_id IS NULL")
    assert counts["images"] == counts["crops"] == WRITE_EVERY and orphans == [(0,)]
    assert runs == [("interrupted",)]
    entries = read_manifest(tiny_plate / "manifest.csv", tiny_plate)
    with open_store(db) as store:
        report = ingest(entries, TiffStackLoader(), store, "rerun", PreprocessParams(size=32),
                        2 if workers == "cluster" else workers)
        counts = store.table_counts()
    assert (report.cached, report.ingested) == (WRITE_EVERY, 120 - WRITE_EVERY)
    assert counts["images"] == counts["crops"] == 120 and counts["pairs"] == 60


def test_ingest_tells_glibc_to_keep_large_blocks_once():
    import platform

    from phenorank.core.allocator import keep_large_blocks

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_large_blocks() is True and keep_large_blocks() is True  # accepted (256 MB is in range), then kept


def test_embedding_and_network_inference_keep_large_blocks_too(monkeypatch):
    """A network's activations are made and freed every batch: embed (in this process or on a
    cluster worker) and ``predict`` both tell glibc to keep them (benchmarks/embed.py --allocator)."""
    import torch

    import phenorank.core.allocator as allocator
    from phenorank.core.pipeline import _embed_chunk
    from phenorank.plugins.encoders.training import predict

    class Mean:
        def embed(self, images):
            return {"backbone": images.mean(axis=(2, 3))}

    for run in (lambda: _embed_chunk((["a"], np.full((1, 3, 4, 4), 65535, np.uint16)), Mean()),
                lambda: predict(lambda x: {"out": x.mean(dim=(2, 3))}, torch.nn.Identity(), np.zeros((2, 3, 4, 4), np.float32))):
        monkeypatch.setattr(allocator, "_state", {})
        result = run()
        assert "set" in allocator._state
    assert np.array_equal(_embed_chunk((["a"], np.full((1, 3, 4, 4), 65535, np.uint16)), Mean())["outputs"]["backbone"],
                          np.ones((1, 3), np.float32)) and result["out"].shape == (2, 3)
