"""Seed 004's crop pipeline: bounding boxes squared with black bars, the black-pixel filter, the
size filter per class, and the optional Cellpose segmenter."""

import sys

import numpy as np
import pytest
from conftest import rows

from phenorank.core.objects import CropParams, _area_filter, object_crops
from phenorank.core.synthetic_cells import CellSpec, generate_cells
from phenorank.registry import PluginError, get_registry


def rectangle(value=0.5):
    """A 10 x 20 object (rows 10-19, columns 5-24) in a 40 x 40 image of 3 channels."""
    labels = np.zeros((40, 40), np.int32)
    labels[10:20, 5:25] = 1
    image = np.full((3, 40, 40), 0.2, np.float32)
    image[:, 10:20, 5:25] = value
    return image, labels


def test_a_box_crop_is_the_bounding_box_between_black_bars():
    image, labels = rectangle()
    [(record, pixels)] = object_crops(image, labels, CropParams(crop="box", size=20, min_area=1))
    assert record["crop_side"] == 20 and (record["crop_y"], record["crop_x"]) == (5, 5)
    square = pixels[0] / 65535
    assert np.allclose(square[5:15], 0.5, atol=1e-4)  # the box, centred
    assert (square[:5] == 0).all() and (square[15:] == 0).all()  # 5 rows of black bar above and below
    assert record["black"] == pytest.approx(0.5)
    [(_, scaled)] = object_crops(image, labels, CropParams(crop="box", size=10, min_area=1))
    assert scaled.shape == (3, 10, 10) and (scaled[0, :2] == 0).all() and scaled[0, 5, 5] > 0


def test_a_centred_crop_beyond_the_image_is_black_there():
    image, labels = rectangle()
    [(record, pixels)] = object_crops(image, labels, CropParams(side=40, size=40, min_area=1, mask_outside=True))
    assert (record["crop_y"], record["crop_x"]) == (-6, -6)  # centroid (14.5, 14.5) rounds to 14; minus 20
    assert record["black"] == pytest.approx(1 - 200 / 1600)  # only the object's own 200 pixels are not black


def test_the_size_filter_takes_its_quantiles_per_class():
    areas = list(range(10, 30)) + list(range(100, 120))
    classes = ["small"] * 20 + ["large"] * 20
    keep = _area_filter(areas, (0.05, 0.95), classes)
    for name, values in (("small", np.arange(10, 30)), ("large", np.arange(100, 120))):
        lo, hi = np.quantile(values, (0.05, 0.95))
        expected = (values >= lo) & (values <= hi)
        assert keep[np.array(classes) == name].tolist() == expected.tolist()
    pooled = _area_filter(areas, (0.05, 0.95))
    assert pooled.sum() == keep.sum() and not (pooled == keep).all()  # pooled cuts the classes' extremes unevenly


def test_objects_in_boxes_per_class_filter_and_black_pixels_through_the_cli(invoke, tmp_path):
    generate_cells(tmp_path / "images", CellSpec(samples_per_class=2, fields=1, side=96, cells_per_field=4, seed=2))
    invoke("ingest", tmp_path / "images", "--folders", "--pattern", "{sample}_f{field}.tif", "--loader",
           "tiff-channels", "--size", "32")
    base = ("objects", "--size", "32", "-p", "watershed.channel=0")
    invoke(*base)
    everything = rows(invoke.db, "SELECT count(*) FROM objects")[0][0]
    result = invoke(*base, "--crop", "box", "--mask-outside", "--area-quantiles", "0.1,0.9", "--area-by", "condition")
    boxed = rows(invoke.db, "SELECT c.crop_side, o.width, o.height FROM crops c JOIN objects o ON c.image_id = "
                            "o.object_id WHERE c.crop_side <> 64")
    assert boxed and all(side == max(w, h) for side, w, h in boxed)
    assert 0 < len(boxed) < everything and "left out by area or black pixels" in result.output
    invoke(*base, "--crop", "box", "--mask-outside", "--max-black", "0.05")  # a masked cell leaves black corners
    key = rows(invoke.db, "SELECT preprocess_key FROM crop_sets WHERE params->>'max_black' = '0.05'")[0][0]
    assert rows(invoke.db, f"SELECT count(*) FROM crops WHERE preprocess_key = '{key}'")[0][0] == 0
    bad = invoke(*base, "--area-by", "nope", "--area-quantiles", "0.1,0.9", ok=False)
    assert bad.exit_code != 0 and "nope" in bad.output


# -- Cellpose ------------------------------------------------------------------------------------
def test_cellpose_says_what_is_missing(monkeypatch, tmp_path):
    segmenter = get_registry().create("segmenter", "cellpose", {"model": str(tmp_path / "none.pth")})
    monkeypatch.setitem(sys.modules, "cellpose", None)  # as if the extra were not installed
    with pytest.raises(PluginError, match=r"phenorank\[cellpose\]"):
        segmenter.segment(np.zeros((3, 32, 32), np.float32))
    monkeypatch.undo()
    pytest.importorskip("cellpose.models", reason="the cellpose extra is not installed")
    with pytest.raises(PluginError, match="does not exist"):
        segmenter.segment(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(PluginError, match="never downloads"):
        get_registry().create("segmenter", "cellpose").segment(np.zeros((3, 32, 32), np.float32))


def test_cellpose_runs_the_users_model_on_cytoplasm_and_nucleus(tmp_path):
    pytest.importorskip("cellpose.models", reason="the cellpose extra is not installed")
    from cellpose.resnet_torch import CPnet

    CPnet(nbase=[2, 32, 64, 128, 256], nout=3, sz=3).save_model(str(tmp_path / "model.pth"))
    segmenter = get_registry().create("segmenter", "cellpose", {"model": str(tmp_path / "model.pth"), "channel": 1,
                                                                "nucleus_channel": 2, "diameter": 15})
    model = segmenter.load()
    seen = {}
    real = model.eval

    def recording(planes, **options):
        seen.update(planes=planes, **options)
        return real(planes, **options)

    model.eval = recording
    image = np.random.default_rng(0).random((3, 48, 48)).astype(np.float32)
    labels = segmenter.segment(image)
    assert labels.shape == (48, 48) and labels.dtype == np.int32  # an untrained network finds nothing: 0s
    assert np.array_equal(seen["planes"], image[[1, 2]]) and seen["channels"] == [1, 2]
    assert seen["diameter"] == 15
