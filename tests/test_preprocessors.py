"""Seed 001's preprocessing as plugins: each step against scikit-image's own output or an
independent computation, illumination correction against a known vignette, and a chain through
ingest as its own crop set next to the plain one."""

import numpy as np
import pytest
import tifffile

from phenorank.core.preprocess_chain import Chain, fit_chain
from phenorank.registry import get_registry
from tests.conftest import rows

SCALE = 65535.0


def step(name, **params):
    return get_registry().create("preprocessor", name, {k: str(v) for k, v in params.items()})


def textured(seed=0, shape=(2, 64, 80)):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 20000 + 10000).astype(np.float32)


def test_rolling_ball_median_tv_and_clahe_are_scikit_images():
    from skimage.exposure import equalize_adapthist
    from skimage.filters import median
    from skimage.morphology import disk
    from skimage.restoration import denoise_tv_chambolle, rolling_ball

    x = textured()
    out = step("rolling-ball", radius=5).apply(x, SCALE)
    assert np.allclose(out, np.stack([c - rolling_ball(c, radius=5) for c in x]), atol=1e-3)
    out = step("median", radius="1,3").apply(x, SCALE)  # one radius per channel
    assert np.allclose(out[0], median(x[0], disk(1))) and np.allclose(out[1], median(x[1], disk(3)))
    out = step("tv", weight=0.2).apply(x, SCALE)
    assert np.allclose(out, np.stack([denoise_tv_chambolle(c / SCALE, weight=0.2) * SCALE for c in x]), rtol=1e-5)
    out = step("clahe").apply(x, SCALE)
    assert np.allclose(out, np.stack([equalize_adapthist(c / SCALE, clip_limit=0.01) * SCALE for c in x]), rtol=1e-5)


def test_outliers_replace_only_pixels_far_from_their_local_median():
    x = np.full((2, 40, 40), 1000, np.float32)
    x[:, 20, 20] = 5000  # a hot pixel
    x[:, 5, 5] = 1030  # a small deviation, kept
    out = step("outliers", radius=2, deviation="50,10000").apply(x, SCALE)
    assert out[0, 20, 20] == 1000 and out[0, 5, 5] == 1030  # channel 0: deviation 50
    assert out[1, 20, 20] == 5000  # channel 1: deviation 10000 leaves it
    dark = x.copy()
    dark[:, 10, 10] = 0
    assert step("outliers", radius=2, deviation=50).apply(dark, SCALE)[0, 10, 10] == 0  # bright only by default
    assert step("outliers", radius=2, deviation=50, which="both").apply(dark, SCALE)[0, 10, 10] == 1000


def test_centre_crop_and_zscore():
    x = textured(shape=(1, 60, 100))
    out = step("centre-crop", side=40).apply(x, SCALE)
    assert out.shape == (1, 40, 40) and np.array_equal(out[0], x[0, 10:50, 30:70])
    assert step("centre-crop", side=1536).apply(x, SCALE).shape == x.shape  # smaller images stay whole
    z = step("zscore").apply(x, SCALE)
    assert z.mean() == pytest.approx(0.5 * SCALE, rel=1e-4) and z.std() == pytest.approx(SCALE / 10, rel=1e-3)


def vignetted_plate(n=10, side=128, strength=0.4, seed=0):
    """Cells (bright spots) on a flat background, times a radial vignette: 1 in the centre,
    1 - strength in the corners."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    r2 = ((yy - side / 2) ** 2 + (xx - side / 2) ** 2) / (2 * (side / 2) ** 2)
    vignette = 1 - strength * r2
    truths, stacks = [], []
    for _ in range(n):
        spots = np.zeros((side, side))
        spots[rng.integers(0, side, 25), rng.integers(0, side, 25)] = 1
        truth = 8000 + 60000 * gaussian_filter(spots, 2.5) + rng.normal(0, 100, (side, side))
        truths.append(truth)
        stacks.append(np.clip(truth * vignette, 0, 65535).astype(np.uint16)[None])
    return stacks, truths, vignette


def test_illumination_correction_removes_a_known_vignette():
    stacks, truths, vignette = vignetted_plate()
    entries = [type("E", (), {"location": str(i), "metadata": lambda self: {"plate": "P1"}})() for i in range(10)]
    chain = fit_chain([step("illumination")], entries, lambda location: stacks[int(location)])
    correction = chain.states[(0, "P1")][0]
    # the correction is the inverse vignette up to one constant: within 2% on 95% of the pixels,
    # 6% at worst (the far corners, where the Gaussian of 5% of the side flattens the fall-off)
    product = correction * vignette
    error = np.abs(product / np.median(product) - 1)
    assert np.percentile(error, 95) < 0.02 and error.max() < 0.06
    corrected = chain.apply(stacks[0], "P1")[0].astype(float)
    ratio = corrected / truths[0]
    centre, corner = ratio[54:74, 54:74].mean(), ratio[:16, :16].mean()
    assert abs(corner / centre - 1) < 0.02  # before: the corners were 40% darker
    raw = stacks[0][0] / truths[0]
    assert raw[:16, :16].mean() / raw[54:74, 54:74].mean() < 0.7


def test_a_chain_through_ingest_is_its_own_crop_set(invoke, tmp_path):
    from conftest import write_manifest

    stacks, _, _ = vignetted_plate(n=8)
    folder = tmp_path / "plate"
    (folder / "images").mkdir(parents=True)
    manifest = []
    for i, stack in enumerate(stacks):
        name = f"images/P1_B{i + 2:02d}_day10.tif"
        tifffile.imwrite(folder / name, stack[0])
        manifest.append({"path": name, "plate": "P1", "well": f"B{i + 2:02d}", "day": 10,
                         "condition": "control" if i < 4 else "treated"})
    write_manifest(folder, manifest)
    invoke("ingest", folder, "--size", "32")
    result = invoke("ingest", folder, "--size", "32", "--preprocess", "illumination,median", "-p", "median.radius=1")
    assert "preprocessing illumination -> median" in result.output
    sets = rows(invoke.db, "SELECT preprocess_key, params->>'chain' FROM crop_sets WHERE kind = 'image' ORDER BY 2")
    assert len(sets) == 2 and sets[0][1] == '' and sets[1][1]  # the plain set, then the chain's
    assert rows(invoke.db, "SELECT count(*) FROM crops GROUP BY preprocess_key") == [(8,), (8,)]
    assert rows(invoke.db, "SELECT count(*) FROM images")[0][0] == 8  # one image each, two crops
    again = invoke("ingest", folder, "--size", "32", "--preprocess", "illumination,median", "-p", "median.radius=1")
    assert "unchanged 8" in again.output  # the same files fit the same correction: the same crop set
    for key, _ in sets:
        invoke("embed", "--encoder", "morphometrics", "--crops", key, "--size", "32")
    invoke("evaluate", "--evaluator", "clustering-kmeans", "--level", "image", "-p", "clustering-kmeans.k=2")
    table = invoke("compare", "--format", "csv").stdout
    assert "crop_set" in table.splitlines()[0] and sets[0][0] in table and sets[1][0] in table
    invoke("report", "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    start = page.index(">Preprocessing: before and after</h2>")
    assert page[start:].count("<img") >= 1 and "illumination -&gt; median" in page[start:]
    bad = invoke("ingest", folder, "--preprocess", "no-such-step", ok=False)
    assert bad.exit_code != 0 and "no-such-step" in bad.output


def test_objects_segment_the_preprocessed_images_of_a_preprocessed_crop_set(invoke, tmp_path):
    from phenorank.core.synthetic_cells import CellSpec, generate_cells

    generate_cells(tmp_path / "cells", CellSpec(samples_per_class=1, fields=2, side=96, cells_per_field=4, seed=2))
    common = ["--folders", "--pattern", "{sample}_f{field}.tif", "--loader", "tiff-channels", "--size", "32"]
    invoke("ingest", tmp_path / "cells", *common, "--preprocess", "zscore")
    result = invoke("objects", "--size", "32", "--side", "40", "-p", "watershed.channel=0")
    assert "was preprocessed (zscore)" in result.output
    again = invoke("objects", "--size", "32", "--side", "40", "-p", "watershed.channel=0")
    assert "segmented 0 image(s) now" in again.output  # nothing left to read: no chain needed
    keys = rows(invoke.db, "SELECT preprocess_key, params->>'images' FROM crop_sets WHERE kind = 'object'")
    image_key = rows(invoke.db, "SELECT preprocess_key FROM crop_sets WHERE kind = 'image'")[0][0]
    assert keys[0][1] == image_key
    # a z-scored image puts its mean at half scale: the crops' background sits near 0.5, where the
    # raw fluorescence background is near 0
    pixels = rows(invoke.db, f"SELECT pixels FROM crops WHERE preprocess_key = '{keys[0][0]}'")
    values = np.concatenate([np.frombuffer(p, "<u2") for (p,) in pixels]) / 65535
    assert 0.4 < np.median(values) < 0.6, np.median(values)
