"""Ingest and objects on a real Dask LocalCluster of 2 worker processes (started by the tests
through --cluster local:2): the same rows as in this process, bad files rejected, a file that
kills its workers rejected instead of retried forever, and workers without a plugin refused up
front. (The client killed mid-run: test_ingest's killed-ingest test, its "cluster" case.)"""

import os
import sys

import numpy as np
import pytest
import tifffile
from conftest import rows

from phenorank.plugins.loaders import TiffStackLoader

IMAGE_ROWS = ("SELECT image_id, path, plate, well, day, condition, treatment, n_layers, height, width, dtype "
              "FROM images ORDER BY image_id")
CROP_ROWS = "SELECT image_id, preprocess_key, crop_x, crop_y, crop_side, layers_used, md5(pixels) FROM crops ORDER BY 1"


class PoisonLoader(TiffStackLoader):
    """Reads TIFF stacks; a file named *poison* kills the process that reads it (a reader segfault)."""

    name = "poison-stack"

    def read(self, path):
        if "poison" in str(path):
            os._exit(1)
        return super().read(path)


def test_ingest_on_a_cluster_stores_exactly_the_rows_of_the_in_process_path(invoke, tiny_plate, tmp_path):
    (tiny_plate / "images" / "synthetic-plate-1_C05_day10.tif").write_bytes(b"not a tiff")  # a bad file
    invoke("ingest", tiny_plate, "--workers", "1")
    local = invoke.db
    clustered = str(tmp_path / "clustered.duckdb")
    result = invoke("--db", clustered, "ingest", tiny_plate, "--cluster", "local:2")
    assert "2 Dask worker(s)" in result.output and "rejected 1 of 120" in result.output
    assert rows(clustered, IMAGE_ROWS) == rows(local, IMAGE_ROWS) and len(rows(local, IMAGE_ROWS)) == 119
    assert rows(clustered, CROP_ROWS) == rows(local, CROP_ROWS)
    assert rows(clustered, "SELECT path, reason, well FROM rejects") == rows(local, "SELECT path, reason, well FROM rejects")
    again = invoke("--db", clustered, "ingest", tiny_plate, "--cluster", "local:2")
    assert "ingested 0, unchanged 119" in again.output  # a re-run does only what is missing


def test_objects_on_a_cluster_find_the_same_cells(invoke, tmp_path):
    from test_cells import discs

    root = tmp_path / "cells" / "c"
    root.mkdir(parents=True)
    image = np.stack([discs(), discs() * 0.5, discs()])
    for i, flipped in enumerate((image, image[:, :, ::-1], image[:, ::-1, :])):  # three different images
        tifffile.imwrite(root / f"s{i}.tif", np.round(flipped * 65535).astype(np.uint16), photometric="minisblack",
                         metadata={"axes": "CYX"})
    invoke("ingest", root.parent, "--folders", "--loader", "tiff-channels")
    clustered = str(tmp_path / "clustered.duckdb")
    invoke("--db", clustered, "ingest", root.parent, "--folders", "--loader", "tiff-channels")
    invoke("objects", "--side", "32", "--min-area", "50")
    result = invoke("--db", clustered, "objects", "--side", "32", "--min-area", "50", "--cluster", "local:2")
    assert "15 objects kept" in result.output
    query = "SELECT object_id, image_id, label, x, y, width, height, area FROM objects ORDER BY 1"
    assert rows(clustered, query) == rows(invoke.db, query) and len(rows(invoke.db, query)) == 15
    assert rows(clustered, CROP_ROWS) == rows(invoke.db, CROP_ROWS)


def test_a_file_that_kills_its_workers_is_rejected_and_the_others_are_stored(invoke, tiny_plate, monkeypatch):
    import dask

    from phenorank.api import register

    register(PoisonLoader)
    (tiny_plate / "images" / "synthetic-plate-1_C05_day10.tif").rename(tiny_plate / "images" / "poison.tif")
    manifest = tiny_plate / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("synthetic-plate-1_C05_day10.tif", "poison.tif"))
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # two dead workers, not four
        result = invoke("ingest", tiny_plate, "--loader", "poison-stack", "--cluster", "local:2")
    assert "ingested 119" in result.output and "rejected 1 of 120" in result.output
    (path, reason), = rows(invoke.db, "SELECT path, reason FROM rejects")
    assert path.endswith("poison.tif") and "killed every Dask worker that read it" in reason
    assert rows(invoke.db, "SELECT count(*) FROM crops") == [(119,)]


def test_workers_that_cannot_load_a_plugin_stop_the_command_before_any_file(tmp_path):
    from distributed import Client, LocalCluster

    from phenorank.core.pipeline import PipelineError
    from phenorank.distributed import ClusterExecutor

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        # a plugin package that only this process has (the workers started before it existed)
        (tmp_path / "lab_only_loader.py").write_text(
            "from phenorank.plugins.loaders import TiffStackLoader\n\n"
            "class LabLoader(TiffStackLoader):\n    name = 'lab-loader'\n")
        sys.path.insert(0, str(tmp_path))
        try:
            import lab_only_loader

            executor = ClusterExecutor(client)
            executor.check(loader=TiffStackLoader())  # installed everywhere: fine
            with pytest.raises(PipelineError, match="cannot load loader plugin 'lab-loader'.*lab_only_loader"):
                executor.check(loader=lab_only_loader.LabLoader())
        finally:
            sys.path.remove(str(tmp_path))


def test_the_cluster_comes_from_the_option_or_the_environment(monkeypatch):
    from phenorank.core.pipeline import PipelineError
    from phenorank.distributed import ENV, cluster_from

    monkeypatch.delenv(ENV, raising=False)
    assert cluster_from(None) is None and cluster_from("local:3") == "local:3"
    monkeypatch.setenv(ENV, "tcp://10.0.0.5:8786")
    assert cluster_from(None) == "tcp://10.0.0.5:8786" and cluster_from("none") is None
    with pytest.raises(PipelineError, match="use local, local:N"):
        cluster_from("my-cluster")


def test_embed_and_run_on_a_cluster_give_the_vectors_and_scores_of_the_in_process_path(invoke, tiny_plate, tmp_path):
    invoke("ingest", tiny_plate)
    clustered = str(tmp_path / "clustered.duckdb")
    invoke("--db", clustered, "ingest", tiny_plate)
    invoke("embed", "--encoder", "raw,morphometrics")
    result = invoke("--db", clustered, "embed", "--encoder", "raw,morphometrics", "--cluster", "local:2")
    assert "2 Dask worker(s)" in result.output or "2 worker(s)" in result.output
    query = "SELECT embedding_set_id, image_id, vector FROM embeddings ORDER BY 1, 2"
    here, there = rows(invoke.db, query), rows(clustered, query)
    assert [r[:2] for r in here] == [r[:2] for r in there] and len(here) == 2 * 120
    assert all(np.allclose(a[2], b[2], atol=1e-6) for a, b in zip(here, there))
    # run: its embedding step on the cluster too (a new encoder), and its cells (rankings and
    # evaluations, of scores and of embeddings) on the workers: the rows of this process
    args = ("run", "--encoders", "raw,morphometrics,imagenet-efficientnet-lite0", "--metrics", "euclidean",
            "--rankers", "centroid,softmax", "--evaluators", "ranking-accuracy,kmeans-accuracy",
            "-p", "kmeans-accuracy.restarts=5", "-p", "kmeans-accuracy.bootstrap=20")
    invoke(*args)
    result = invoke("--db", clustered, *args, "--cluster", "local:2")
    assert "computed 6 rankings and 9 evaluations" in result.output
    scores = "SELECT r.ranking_id, s.image_id, s.score FROM scores s JOIN rankings r USING (ranking_id) ORDER BY 1, 2"
    here, there = rows(invoke.db, scores), rows(clustered, scores)
    assert [r[:2] for r in here] == [r[:2] for r in there] and len({r[0] for r in here}) == 6
    assert np.allclose([r[2] for r in here], [r[2] for r in there], atol=1e-5)
    evaluations = "SELECT subject_id, evaluator, params_hash, name, value FROM evaluations ORDER BY 1, 2, 3, 4"
    here, there = rows(invoke.db, evaluations), rows(clustered, evaluations)
    assert [r[:4] for r in here] == [r[:4] for r in there] and {r[1] for r in here} == {"ranking-accuracy",
                                                                                          "kmeans-accuracy"}
    assert np.allclose([r[4] for r in here], [r[4] for r in there], atol=1e-5, equal_nan=True)
    again = invoke("--db", clustered, *args, "--cluster", "local:2")  # all stored: nothing goes to the workers
    assert "computed 0 rankings and 0 evaluations" in again.output


def test_files_named_by_url_are_the_same_images_in_process_and_on_the_cluster(invoke, tiny_plate, tmp_path):
    import fsspec

    invoke("ingest", tiny_plate)
    manifest = (tiny_plate / "manifest.csv").read_text()
    # the same files as file:// URLs (a shared file system by URL), read by the workers themselves
    urls = tiny_plate / "manifest_urls.csv"
    urls.write_text(manifest.replace("\nimages/", f"\nfile://{tiny_plate}/images/"))
    by_url = str(tmp_path / "by_url.duckdb")
    result = invoke("--db", by_url, "ingest", tiny_plate, "--manifest", urls, "--allow-outside", "--cluster", "local:2")
    assert "ingested 120" in result.output
    same = "SELECT image_id, plate, well, day, condition, n_layers, height, width FROM images ORDER BY 1"
    assert rows(by_url, same) == rows(invoke.db, same)
    assert rows(by_url, CROP_ROWS) == rows(invoke.db, CROP_ROWS)
    assert rows(by_url, "SELECT min(path) FROM images")[0][0].startswith("file:///")
    # any fsspec file system: here one in memory (this process only, so no cluster)
    memory = fsspec.filesystem("memory")
    lines = manifest.splitlines()
    for line in lines[1:7]:
        relative = line.split(",")[0]
        memory.pipe(f"/plate/{relative}", (tiny_plate / relative).read_bytes())
    (tiny_plate / "manifest_memory.csv").write_text(
        "\n".join([lines[0]] + [line.replace("images/", "memory://plate/images/", 1) for line in lines[1:7]]) + "\n")
    in_memory = str(tmp_path / "memory.duckdb")
    invoke("--db", in_memory, "ingest", tiny_plate, "--manifest", tiny_plate / "manifest_memory.csv",
           "--allow-outside")
    found = rows(in_memory, same)
    assert len(found) == 6 and set(found) <= set(rows(invoke.db, same))
    # a URL in someone else's manifest is outside the image folder: refused unless allowed
    refused = invoke("--db", str(tmp_path / "refused.duckdb"), "ingest", tiny_plate, "--manifest", urls, ok=False)
    assert refused.exit_code != 0 and "leaves the image folder" in refused.output


def test_a_folder_given_by_url_is_listed_and_read_like_a_local_one(invoke, tiny_plate, tmp_path):
    import fsspec

    invoke("ingest", tiny_plate)
    same = "SELECT image_id, plate, well, day, condition FROM images ORDER BY 1"
    # the folder and its manifest by URL: the manifest's paths lie inside the URL, nothing to allow
    by_manifest = str(tmp_path / "manifest.duckdb")
    invoke("--db", by_manifest, "ingest", f"file://{tiny_plate}", "--cluster", "local:2")
    assert rows(by_manifest, same) == rows(invoke.db, same)
    # file names parsed by --pattern, the folder listed through fsspec
    by_pattern = str(tmp_path / "pattern.duckdb")
    invoke("--db", by_pattern, "ingest", f"file://{tiny_plate}/images", "--pattern", "{plate}_{well}_day{day}.tif",
           "--condition", "screen")
    assert [r[:4] for r in rows(by_pattern, same)] == [r[:4] for r in rows(invoke.db, same)]
    # class folders in an in-memory file system
    memory = fsspec.filesystem("memory")
    for i, name in enumerate(sorted((tiny_plate / "images").iterdir())[:4]):
        memory.pipe(f"/classes/{'ab'[i % 2]}/{name.name}", name.read_bytes())
    in_memory = str(tmp_path / "memory.duckdb")
    invoke("--db", in_memory, "ingest", "memory://classes", "--folders")
    assert rows(in_memory, "SELECT condition, count(*) FROM images GROUP BY 1 ORDER BY 1") == [("a", 2), ("b", 2)]


def test_a_cluster_fits_a_projection_once_for_all_references_of_a_set(invoke, tiny_plate, monkeypatch):
    """Cells differing only in reference reach one worker together, on one ranker object, so the
    projection that does not depend on the reference is fitted once there too (units pickled as a
    cluster pickles them; scores equal to this process's)."""
    import pickle

    from phenorank.core.grid import GridSpec, run_grid
    from phenorank.core.store import open_store
    from phenorank.plugins.rankers.projection import PCARanker
    from phenorank.registry import get_registry

    invoke("ingest", tiny_plate)
    invoke("embed", "--encoder", "morphometrics")
    fits = []
    original = PCARanker.project_fit
    monkeypatch.setattr(PCARanker, "project_fit", lambda self, x: fits.append(len(x)) or original(self, x))
    units = []

    def cluster(tasks, work, failed):
        for unit in tasks:
            units.append(len(unit))
            yield work(pickle.loads(pickle.dumps(unit)))

    def scores(store):
        return store.con.execute("SELECT r.metric, r.reference, s.image_id, s.score FROM scores s JOIN rankings r "
                                 "USING (ranking_id) ORDER BY 1, 2, 3").fetchall()

    results = []
    for executor in (None, cluster):
        with open_store(invoke.db) as store:
            spec = GridSpec(encoders=[], metrics=["euclidean", "cosine"], rankers=["pca"],
                            references=["control", "single_dose", "exploded"], evaluators=[], preprocess_key="",
                            stored_sets=store.embedding_sets("morphometrics"), force=True)
            report = run_grid(store, get_registry(), spec, f"run-{len(results)}", executor=executor)
            assert report.ranked == 6 and not report.problems
            results.append(scores(store))
    assert len(fits) == 4 and units == [3, 3]  # once per metric in this process, and once per metric away
    assert [r[:3] for r in results[0]] == [r[:3] for r in results[1]] and len(results[0]) == 6 * 120
    assert np.allclose([r[3] for r in results[0]], [r[3] for r in results[1]])
