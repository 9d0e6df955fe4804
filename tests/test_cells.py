"""Cell images: loaders (class folders, channels joined from files, multi-channel TIFF), object
crops, aggregation, clustering scores, robustness, multi-view positives, and the cell demo."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from conftest import rows

from phenorank.core.aggregate import combine
from phenorank.core.synthetic_cells import CellSpec, draw_field, generate_cells
from phenorank.plugins.evaluators.clustering import clustering_scores
from phenorank.plugins.corruptions import SEVERITIES
from phenorank.plugins.evaluators.robustness import Robustness
from phenorank.registry import PluginError, Samples, Subject, get_registry

RADII = (10, 13, 7, 10, 10)


def discs(side=120, centres=((25, 25), (25, 90), (90, 25), (85, 80), (85, 101))):
    """A bright-on-dark image with three separate discs and one pair of touching discs."""
    yy, xx = np.mgrid[0:side, 0:side]
    image = np.zeros((side, side), np.float32)
    for (cy, cx), radius in zip(centres, RADII):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 0.6
    return image + 0.02


# -- loaders -----------------------------------------------------------------------------------
def test_class_folders_of_png_files_give_condition_and_file_name_fields(invoke, tmp_path):
    root = tmp_path / "cells"
    rng = np.random.default_rng(0)
    for kind in ("a", "b"):
        (root / kind).mkdir(parents=True)
        for sample in (1, 2):
            for field in (1, 2):
                image = (rng.uniform(0, 0.2, (40, 50, 3)) * 65535).astype(np.uint16)
                cv2.imwrite(str(root / kind / f"s{kind}{sample}_f{field}.png"), image)
    (root / "a" / "notes.txt").write_text("not an image")
    invoke("ingest", root, "--folders", "--pattern", "{sample}_f{field}.png", "--loader", "image-file")
    stored = rows(invoke.db, "SELECT condition, extra->>'sample', extra->>'field', n_layers, height, width, well, day "
                             "FROM images ORDER BY path")
    assert len(stored) == 8
    assert stored[0] == ("a", "sa1", "1", 3, 40, 50, None, None)
    assert {r[0] for r in stored} == {"a", "b"}
    assert rows(invoke.db, "SELECT count(*) FROM rejects")[0][0] == 0


def test_one_file_per_channel_is_joined_in_channel_order(invoke, tmp_path):
    root = tmp_path / "cells" / "treated"
    root.mkdir(parents=True)
    for field in (1, 2):
        for channel, value in ((1, 1000), (2, 2000), (3, 3000)):
            cv2.imwrite(str(root / f"x_f{field}_ch{channel}.png"), np.full((32, 48), value * field, np.uint16))
    invoke("ingest", root.parent, "--folders", "--pattern", "{sample}_f{field}_ch{channel}.png", "--loader", "image-file",
           "--size", "16")
    stored = rows(invoke.db, "SELECT i.path, i.n_layers, c.pixels FROM images i JOIN crops c USING (image_id) ORDER BY i.path")
    assert len(stored) == 2
    path, layers, pixels = stored[0]
    assert path.count("|") == 2 and path.endswith("x_f1_ch3.png") and layers == 3
    crop = np.frombuffer(pixels, "<u2").reshape(3, 16, 16)
    assert [int(crop[c, 0, 0]) for c in range(3)] == [1000, 2000, 3000]
    # --channels picks and orders channels
    invoke("ingest", root.parent, "--folders", "--pattern", "{sample}_f{field}_ch{channel}.png", "--loader",
           "image-file", "--size", "16", "--channels", "2,0")
    crops = rows(invoke.db, "SELECT c.pixels FROM crops c JOIN crop_sets s USING (preprocess_key) "
                            "WHERE s.params->>'channel_order' IS NOT NULL ORDER BY c.image_id")
    values = np.frombuffer(crops[0][0], "<u2").reshape(3, 16, 16)[:, 0, 0]
    assert sorted(values.tolist()) in ([0, 1000, 3000], [0, 2000, 6000])
    assert values[2] == 0 and values[0] == 3 * values[1]


def test_channel_files_that_disagree_are_rejected_with_the_reason(invoke, tmp_path):
    root = tmp_path / "cells" / "c"
    root.mkdir(parents=True)
    cv2.imwrite(str(root / "s_ch1.png"), np.full((32, 32), 9, np.uint16))
    cv2.imwrite(str(root / "s_ch2.png"), np.full((30, 32), 9, np.uint16))
    cv2.imwrite(str(root / "t_ch1.png"), np.full((32, 32), 9, np.uint16))
    result = invoke("ingest", root.parent, "--folders", "--pattern", "{sample}_ch{channel}.png", "--loader",
                    "image-file", ok=False)
    assert result.exit_code == 1 and "1 channel file(s), but other images have 2" in result.output
    (root / "t_ch1.png").unlink()
    invoke("ingest", root.parent, "--folders", "--pattern", "{sample}_ch{channel}.png", "--loader", "image-file")
    assert rows(invoke.db, "SELECT reason FROM rejects")[0][0] == "channel files differ in size: s_ch1.png 32x32, s_ch2.png 30x32"


def test_multichannel_tiff_reads_channels_first_from_cyx_and_rgb(tmp_path):
    loader = get_registry().create("loader", "tiff-channels")
    cyx = np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9)
    tifffile.imwrite(tmp_path / "cyx.tif", cyx, photometric="minisblack", metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(cyx, 0, -1), photometric="rgb")
    assert np.array_equal(loader.read(str(tmp_path / "cyx.tif")), cyx)
    assert np.array_equal(loader.read(str(tmp_path / "rgb.tif")), cyx)
    with pytest.raises(ValueError, match="not a readable TIFF"):
        (tmp_path / "bad.tif").write_bytes(b"II*\0garbage")
        loader.read(str(tmp_path / "bad.tif"))


# -- objects -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in get_registry().names("segmenter") if n != "cellpose"])  # needs a model file
def test_every_segmenter_labels_objects_and_leaves_an_empty_image_empty(name):
    segmenter = get_registry().create("segmenter", name)
    image = np.stack([discs()] * 3)
    labels = segmenter.segment(image)
    assert labels.shape == image.shape[1:] and labels[0, 0] == 0 and labels.max() >= 3
    assert segmenter.segment(np.full((3, 40, 40), 0.1, np.float32)).max() == 0


@pytest.mark.parametrize("threshold", ["otsu", "gmm"])
def test_watershed_splits_touching_cells(threshold):
    segmenter = get_registry().create("segmenter", "watershed", {"threshold": threshold})
    labels = segmenter.segment(np.stack([discs()] * 3))
    assert len(np.unique(labels)) - 1 == 5  # 3 apart + 2 touching, split
    assert labels[85, 80] != labels[85, 101] and labels[85, 80] and labels[85, 101]


def test_objects_command_stores_one_crop_per_cell_with_its_parent(invoke, tmp_path, monkeypatch):
    root = tmp_path / "cells" / "c"
    root.mkdir(parents=True)
    image = np.stack([discs(), discs() * 0.5, discs()])
    tifffile.imwrite(root / "s1.tif", np.round(image * 65535).astype(np.uint16), photometric="minisblack",
                     metadata={"axes": "CYX"})
    blank = np.full((3, 120, 120), 2000, np.uint16)
    tifffile.imwrite(root / "s2.tif", blank, photometric="minisblack", metadata={"axes": "CYX"})
    invoke("ingest", root.parent, "--folders", "--loader", "tiff-channels")
    result = invoke("objects", "--side", "32", "--min-area", "50")
    assert "5 objects kept" in result.output
    objects = rows(invoke.db, "SELECT o.image_id, o.area, i.path FROM objects o JOIN images i USING (image_id)")
    assert len(objects) == 5 and all(p.endswith("s1.tif") for _, _, p in objects)
    areas = sorted(area for _, area, _ in objects)
    assert np.allclose(areas, sorted(np.pi * np.square(RADII)), rtol=0.12)
    assert sorted(rows(invoke.db, "SELECT n_objects FROM segmented")) == [(0,), (5,)]
    crops = rows(invoke.db, "SELECT c.size, c.pixels FROM crops c JOIN crop_sets s USING (preprocess_key) "
                            "WHERE s.kind = 'object'")
    crop = np.frombuffer(crops[0][1], "<u2").reshape(3, 96, 96)
    assert crop[:, 48, 48].tolist() == [int(round(0.62 * 65535)), int(round(0.31 * 65535)), int(round(0.62 * 65535))]
    items = rows(invoke.db, "SELECT level, condition, parent_id FROM items WHERE level = 'object'")
    assert len(items) == 5 and items[0][:2] == ("object", "c")
    again = invoke("objects", "--side", "32", "--min-area", "50")
    assert "segmented 0 image(s) now (2 already)" in again.output
    assert rows(invoke.db, "SELECT count(*) FROM objects")[0][0] == 5
    invoke("objects", "--side", "32", "--min-area", "50", "--area-quantiles", "0.5,1")  # a new crop set
    assert rows(invoke.db, "SELECT count(*) FROM objects")[0][0] == 5 + 3  # the median and above

    # the report draws the masks the crops were cut from: the image segmented again, the same objects
    from phenorank.core.store import open_store
    from phenorank.report import segmentation

    drawn = []
    monkeypatch.setattr(segmentation, "overlay", lambda image, labels, boxes, title: drawn.append(
        (image.shape, len(np.unique(labels)) - 1, [b[0] for b in boxes], title)) or b"png")
    with open_store(invoke.db) as store:
        sections = segmentation.segmentation_sections(store)
    assert len(sections) == 2 and all("Segmentation: what the object crops were cut from" in s for s in sections)
    assert len(drawn) == 2 and all(title.endswith("s1.tif") for *_, title in drawn)  # s2 has no objects
    (shape, found, kept_latest, _), (_, _, kept_first, _) = drawn
    assert shape == (3, 120, 120) and found == 5 and len(kept_latest) == 3 and len(kept_first) == 5
    assert set(kept_latest) < set(kept_first)  # the area quantiles left out the two smallest


# -- aggregation ---------------------------------------------------------------------------------
def test_combine_mean_median_and_trimmed_mean_by_hand():
    x = np.array([[0.0, 5], [1, 5], [2, 5], [3, 5], [100, 0]])
    assert combine(x, "mean").tolist() == [21.2, 4.0]
    assert combine(x, "median").tolist() == [2.0, 5.0]
    assert combine(x, "trimmed-mean", 0.2).tolist() == [2.0, 5.0]  # 0 and 100 cut, then the mean of 1, 2, 3


@pytest.fixture(scope="module")
def cell_store(tmp_path_factory):
    """Tiny generated cells: ingested, objects found, raw embeddings, aggregated to images and samples."""
    from click.testing import CliRunner

    from phenorank.cli import cli

    folder = tmp_path_factory.mktemp("cells")
    generate_cells(folder / "images", CellSpec(samples_per_class=2, fields=2, side=96, cells_per_field=4, seed=1))
    db = str(folder / "store.duckdb")
    runner = CliRunner()
    for args in (["ingest", folder / "images", "--folders", "--pattern", "{sample}_f{field}.tif", "--loader",
                  "tiff-channels", "--size", "32"],
                 ["objects", "--size", "32", "--side", "40", "-p", "watershed.channel=0"],
                 ["embed", "--encoder", "raw", "--crops", "objects", "--size", "32"],
                 ["aggregate", "--encoder", "raw", "--to", "image"],
                 ["aggregate", "--encoder", "raw", "--from", "image:mean", "--to", "sample", "--how", "median"]):
        result = runner.invoke(cli, ["--db", db, *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return db


def vectors(db, level):
    found = rows(db, f"SELECT e.image_id, e.vector FROM embeddings e JOIN embedding_sets s USING (embedding_set_id) "
                     f"WHERE s.level = '{level}' ORDER BY e.image_id")
    return {k: np.array(v) for k, v in found}


def test_aggregates_are_the_mean_of_objects_and_the_median_of_images(cell_store):
    objects, images, samples = (vectors(cell_store, level) for level in ("object", "image:mean", "sample:median"))
    parents = dict(rows(cell_store, "SELECT object_id, image_id FROM objects"))
    assert len(images) == len(set(parents.values())) == 12
    some_image = next(iter(images))
    members = [v for k, v in objects.items() if parents[k] == some_image]
    assert np.allclose(images[some_image], np.mean(members, axis=0), atol=1e-6)
    groups = dict(rows(cell_store, "SELECT group_id, n_members FROM groups"))
    assert len(samples) == 6 and set(groups.values()) == {2}
    sample_of = dict(rows(cell_store, "SELECT image_id, extra->>'sample' FROM images"))
    first = sorted(samples)[0]  # sample=S01
    fields = [v for k, v in images.items() if f"sample={sample_of[k]}" == first]
    assert np.allclose(samples[first], np.median(fields, axis=0), atol=1e-6)
    shared = rows(cell_store, f"SELECT condition, extra->>'sample', extra->>'field' FROM groups WHERE group_id = '{first}'")
    assert shared == [("round", "S01", None)]  # the class is shared by the fields, the field number is not


def test_clustering_evaluators_on_the_aggregates(invoke, cell_store):
    result = invoke("--db", cell_store, "evaluate", "--evaluator", "clustering-kmeans,clustering-agglomerative,clustering-gmm",
                    "--level", "image:mean,sample:median")
    found = rows(cell_store, "SELECT level, evaluator, name, value FROM comparison WHERE name = 'ari'")
    assert len(found) == 6 and {r[0] for r in found} == {"image:mean", "sample:median"}
    assert all(-1 <= r[3] <= 1 for r in found)
    assert "clustering" in result.output


def test_choosing_k_and_the_dendrogram_of_samples_land_in_the_store_and_the_report(invoke, cell_store, tmp_path):
    invoke("--db", cell_store, "evaluate", "--evaluator", "choose-k,clustering-agglomerative", "--level", "sample:median",
           "-p", "choose-k.k_max=5")
    ks = rows(cell_store, "SELECT group_key, name, value FROM group_results WHERE evaluator = 'choose-k' "
                          "AND name = 'k' ORDER BY value")
    assert [r[0] for r in ks] == ["k=2", "k=3", "k=4", "k=5"]  # 6 samples: k up to 5
    chosen = dict(rows(cell_store, "SELECT name, value FROM comparison WHERE evaluator = 'choose-k'"))
    assert 2 <= chosen["elbow_k"] <= 5 and 2 <= chosen["silhouette_k"] <= 5 and chosen["n_classes"] == 3
    invoke("--db", cell_store, "report", "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    start = page.index(">How many clusters?</h2>")
    assert page[start:].count("<img") >= 2 and "Hierarchical clustering" in page[start:]
    assert 'alt="raw/' in page and "ward clustering of 6 items" in page


def test_grouped_svm_and_classification_report_on_the_cells(invoke, cell_store):
    invoke("--db", cell_store, "evaluate", "--evaluator", "svm,classification", "--level", "object",
           "-p", "svm.folds=3", "-p", "classification.folds=3")
    found = dict(rows(cell_store, "SELECT evaluator || ':' || name, value FROM comparison "
                                  "WHERE evaluator IN ('svm', 'classification')"))
    assert found["svm:n_groups"] == found["classification:n_groups"] == 6  # grouped by sample, not by cell
    assert all(0 <= found[f"{e}:{m}"] <= 1 for e in ("svm", "classification") for m in ("accuracy", "f1", "auc"))
    per_class = rows(cell_store, "SELECT DISTINCT group_key FROM group_results WHERE evaluator = 'svm'")
    assert sorted(r[0] for r in per_class) == ["elongated", "enlarged", "round"]


# -- clustering scores ---------------------------------------------------------------------------
def test_clustering_scores_on_a_hand_made_case():
    space = np.array([[0.0], [1.0], [10.0], [11.0]])
    perfect = clustering_scores(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), space, "euclidean")
    assert perfect["ari"] == 1 and perfect["nmi"] == 1 and perfect["accuracy"] == 1 and perfect["v_measure"] == 1
    # silhouette: a = 1 for every point; b = 10.5, 9.5, 9.5, 10.5 -> mean of 1 - 1/b
    assert perfect["silhouette"] == pytest.approx(np.mean([1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5]))
    assert perfect["davies_bouldin"] == pytest.approx((0.5 + 0.5) / 10)
    poor = clustering_scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), space, "euclidean")
    # contingency [[1, 1], [0, 2]]: sum C(n_ij, 2) = 1 = its expectation 2 * 3 / 6, so ARI = 0
    assert poor["ari"] == pytest.approx(0.0, abs=1e-12)
    assert poor["accuracy"] == 0.75
    h_class, h_cluster = np.log(2), -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    mutual = 0.25 * np.log(2) + 0.25 * np.log(2 / 3) + 0.5 * np.log(4 / 3)
    assert poor["nmi"] == pytest.approx(mutual / ((h_class + h_cluster) / 2))


def blobs(n=10, seed=0):
    rng = np.random.default_rng(seed)
    # three directions, so euclidean and cosine geometry both separate them
    x = np.concatenate([rng.normal(0, 0.3, (n, 4)) + 5 * np.eye(4)[c] for c in range(3)])
    labels = np.repeat(["a", "b", "c"], n).astype(object)
    return x, Samples(np.arange(len(x)).astype(str), {"condition": labels})


@pytest.mark.parametrize("name,params", [("clustering-kmeans", {}), ("clustering-kmeans", {"metric": "cosine"}),
                                         ("clustering-agglomerative", {"linkage": "average", "metric": "cosine"}),
                                         ("clustering-agglomerative", {}), ("clustering-gmm", {}),
                                         ("clustering-kmeans", {"reduce": "pca", "components": 2})])
def test_clustering_evaluators_find_well_separated_classes(name, params):
    x, samples = blobs()
    values = get_registry().create("evaluator", name, params).evaluate(Subject(samples, embeddings=x)).values
    assert values["ari"] == pytest.approx(1.0) and values["accuracy"] == 1.0 and values["silhouette"] > 0.5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kmeans_in_the_span_of_the_items_finds_the_clusters_of_the_full_space(metric):
    from sklearn.cluster import KMeans

    from phenorank.core.statistics import unit_rows

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5000))  # far more dimensions than items, as raw pixels of a few crops
    x[:20, :3] += 3
    x[20:40, 3:6] += 3
    found = get_registry().create("evaluator", "clustering-kmeans", {"metric": metric}).cluster(x, 3)
    points = unit_rows(x) if metric == "cosine" else x
    assert found.tolist() == KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(points).tolist()


def test_ward_linkage_refuses_cosine():
    x, samples = blobs()
    with pytest.raises(PluginError, match="ward linkage needs the euclidean metric"):
        get_registry().create("evaluator", "clustering-agglomerative", {"metric": "cosine"}).evaluate(
            Subject(samples, embeddings=x))


# -- robustness ----------------------------------------------------------------------------------
def test_stronger_corruption_moves_embeddings_further():
    rng = np.random.default_rng(0)
    fields = [draw_field(kind, 48, 2, rng)[0] for kind in ("round", "elongated", "enlarged") for _ in range(6)]
    images = np.stack(fields).astype(np.float32)
    samples = Samples(np.arange(len(images)).astype(str),
                      {"condition": np.repeat(["round", "elongated", "enlarged"], 6).astype(object)})
    subject = Subject(samples, embeddings=images.reshape(len(images), -1), images=lambda r: images[r],
                      encode=lambda batch: batch.reshape(len(batch), -1))
    values = Robustness(max_images=18).evaluate(subject).values
    for kind in SEVERITIES:
        moves = [values[f"{kind}_{level}_movement"] for level in range(1, 6)]
        assert all(b > a for a, b in zip(moves, moves[1:])), (kind, moves)
        assert moves[0] > 0
    drops = [v for k, v in values.items() if k.endswith("_drop")]
    assert len(drops) == 5 * len(SEVERITIES) and values["drop_max"] == max(drops)
    # An encoder that sees only each image's mean: contrast about that mean does not move it
    means = Subject(samples, images=lambda r: images[r], encode=lambda batch: batch.mean(axis=(1, 2, 3))[:, None])
    values = Robustness(max_images=18, corruptions=["contrast_down"], evaluator="").evaluate(means).values
    assert values["contrast_down_5_movement"] < 1e-5


def test_robustness_refuses_aggregates(invoke, cell_store):
    result = invoke("--db", cell_store, "evaluate", "--evaluator", "robustness", "--level", "image:mean", "-p", "robustness.max_images=20")
    assert "re-embeds images; image:mean is an aggregate" in result.output
    invoke("--db", cell_store, "evaluate", "--evaluator", "robustness", "--level", "object", "-p", "robustness.max_images=20",
           "-p", "robustness.corruptions=noise")
    moves = rows(cell_store, "SELECT name, value FROM evaluations WHERE evaluator = 'robustness' "
                             "AND name LIKE 'noise_%_movement' ORDER BY name")
    assert len(moves) == 5 and [v for _, v in moves] == sorted(v for _, v in moves)


# -- multi-view positives ------------------------------------------------------------------------
def test_group_views_pair_different_images_of_one_group():
    import torch

    from phenorank.plugins.encoders.training import GroupViews

    images = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 2).clone()
    dataset = GroupViews(images, lambda t: t, np.array(["a", "a", "b", "b", "c"]))
    partners = {i: {int(dataset[i][1][0, 0, 0]) for _ in range(10)} for i in range(5)}
    assert partners == {0: {1}, 1: {0}, 2: {3}, 3: {2}, 4: {4}}
    assert all(int(dataset[i][0][0, 0, 0]) == i for i in range(5))
    assert [dataset[i][2] for i in range(5)] == [0, 0, 1, 1, 2]  # the group, so the loss spares its members


# -- the demo ------------------------------------------------------------------------------------
def test_cells_demo_runs_end_to_end_and_prints_the_table(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("phenorank.core.synthetic_cells.CellSpec.__init__.__defaults__", (2, 2, 96, 4, 0))
    result = invoke("demo", "--kind", "cells", "--epochs", "1")
    assert "Adjusted Rand index" in result.output and "robustness" in result.output
    levels = rows(invoke.db, "SELECT encoder, head, level FROM embedding_sets ORDER BY ALL")
    # raw, morphometrics, simclr (2 heads), classifier (2), dim (2) x object, image:mean, sample:median
    assert len(levels) == 24
    assert ("simclr", "projection", "sample:median") in levels and ("dim", "global", "image:mean") in levels
    trained = rows(invoke.db, "SELECT encoder, train_config->>'positives', train_config->>'label' FROM models ORDER BY 1")
    assert trained == [("classifier", None, "condition"), ("dim", "sample", None), ("simclr", "sample", None)]
    ari = rows(invoke.db, "SELECT count(*) FROM comparison WHERE name = 'ari'")[0][0]
    assert ari == 24 * 3
    # seed 001's table 6.1: every embedding with k-means' five scores and the SVM per image
    assert "table 6.1" in result.output
    svm = rows(invoke.db, "SELECT count(*) FROM comparison WHERE evaluator = 'svm' AND name = 'accuracy' "
                          "AND level = 'object'")[0][0]
    assert svm == 8  # per image, the tiny test set's 4 images per class cannot fill 5 folds: skipped, said
    assert Path(tmp_path / "phenorank-cells" / "round").is_dir()
    page = (tmp_path / "phenorank-cells" / "report.html").read_text()
    # the image-quality histograms, 4 segmentation overlays, 3 projections, robustness curves, the
    # dendrograms of the two aggregate levels (agglomerative clustering judged them), and the
    # histories of the 3 trained models
    assert "Robustness to corruptions" in page and page.count("<img") == 1 + 4 + 3 + 1 + 2 + 3
    assert "training history of classifier" in page and "training history of dim" in page
    assert page.count('alt="segmentation ') == 4  # and segmentation overlays: one per class, then the fullest
