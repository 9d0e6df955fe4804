"""Seed 001's image artifact checks: the focus slope equals CellProfiler's (centrosome's radial
power spectrum), the intensity statistics equal NumPy's, and ingest -> qc-images flags exactly the
damaged files of a plate, which evaluators can then leave out with `where`."""

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from phenorank.core.image_quality import intensity_statistics, layer_statistics, power_log_log_slope
from tests.conftest import rows


def cellprofiler_slope(image: np.ndarray) -> float:
    """MeasureImageQuality's PowerLogLogSlope: centrosome's rps, then a least-squares line."""
    from centrosome.radial_power_spectrum import rps

    class WithPtp(np.ndarray):  # centrosome calls img.ptp(), which NumPy 2 removed
        def ptp(self):
            return np.ptp(np.asarray(self))

    radii, magnitude, power = rps(np.asarray(image, np.float64).view(WithPtp))
    valid = np.asarray(magnitude) > 0
    radii, power = np.asarray(radii)[valid], np.asarray(power)[valid]
    return float(np.linalg.lstsq(np.c_[np.log(radii), np.ones(len(radii))], np.log(power), rcond=None)[0][0])


@pytest.mark.parametrize("shape", [(300, 260), (128, 128), (97, 141)])
def test_focus_slope_is_cellprofilers_and_falls_with_blur(shape):
    rng = np.random.default_rng(0)
    sharp = gaussian_filter(rng.random(shape), 1.5) * 1000 + rng.random(shape) * 40
    slopes = []
    for sigma in (0, 1, 2, 4):
        image = gaussian_filter(sharp, sigma) if sigma else sharp
        ours = power_log_log_slope(image, window=None)
        assert ours == pytest.approx(cellprofiler_slope(image), abs=1e-9)
        slopes.append(ours)
    assert slopes == sorted(slopes, reverse=True) and slopes[0] - slopes[-1] > 1
    assert power_log_log_slope(sharp * 7 + 100, window=None) == pytest.approx(slopes[0])  # brightness-free
    assert np.isnan(power_log_log_slope(np.full((64, 64), 5.0)))


def test_the_window_is_the_centre_square_at_full_resolution():
    rng = np.random.default_rng(1)
    image = rng.random((900, 700))
    assert power_log_log_slope(image, window=256) == pytest.approx(
        cellprofiler_slope(image[322:578, 222:478]), abs=1e-9)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_intensity_statistics_equal_numpys(dtype):
    rng = np.random.default_rng(2)
    top = 255 if dtype == np.uint8 else 4000
    layer = (rng.gamma(2.0, top / 8, (83, 91))).clip(0, top).astype(dtype)
    layer[:5, :40] = top  # 200 clipped pixels of 7553: 2.6 %
    ours = intensity_statistics(layer)
    flat = layer.astype(np.float64).ravel()
    expected = dict(zip(("median", "q01", "q25", "q75", "q99"), np.quantile(flat, [0.5, 0.01, 0.25, 0.75, 0.99])))
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value), name
    assert ours["mean"] == pytest.approx(flat.mean()) and ours["sd"] == pytest.approx(flat.std())
    assert ours["total"] == pytest.approx(flat.sum())
    assert ours["percent_maximal"] == pytest.approx(100 * np.mean(flat == flat.max()))
    assert ours["percent_maximal"] > 2.6


def test_a_large_layer_is_summarised_from_every_4th_row_close_to_all_its_pixels():
    rng = np.random.default_rng(4)
    layer = rng.gamma(2.0, 500, (1600, 1400)).clip(0, 65535).astype(np.uint16)  # over two megapixels
    layer[:, :70] = 65535  # a clipped band, 5 % of every row
    ours = intensity_statistics(layer)
    sample, flat = layer[::4].astype(np.float64).ravel(), layer.astype(np.float64).ravel()
    for name, q in (("median", 0.5), ("q01", 0.01), ("q25", 0.25), ("q75", 0.75), ("q99", 0.99)):
        assert ours[name] == pytest.approx(np.quantile(sample, q)), name  # exactly the sample's
        # and within a thousandth of its rank among all the layer's pixels
        assert np.mean(flat < ours[name]) <= q + 1e-3 and np.mean(flat <= ours[name]) >= q - 1e-3, name
    assert ours["total"] == pytest.approx(sample.mean() * layer.size)
    assert ours["total"] == pytest.approx(flat.sum(), rel=0.005)
    assert ours["percent_maximal"] == pytest.approx(100 * np.mean(flat == 65535), rel=0.01)


def test_each_layer_of_a_stack_gets_its_row():
    stack = np.stack([np.full((40, 40), v, np.uint16) + np.eye(40, dtype=np.uint16) for v in (10, 20, 30)])
    found = layer_statistics(stack)
    assert [r["layer"] for r in found] == [0, 1, 2] and [r["median"] for r in found] == [10, 20, 30]


def damage(plate, name: str, how: str) -> None:
    path = plate / "images" / name
    stack = tifffile.imread(path).astype(np.float64)
    stack = stack if stack.ndim == 3 else stack[None]
    if how == "blur":  # every layer out of focus: no sharp layer left
        stack = np.stack([gaussian_filter(layer, 4) for layer in stack])
    elif how == "saturate":  # the camera clipped a tenth of the field
        stack[:, : stack.shape[1] // 10] = 65535
    elif how == "dim":  # a lamp at a third of its power
        stack = stack * 0.3
    tifffile.imwrite(path, np.clip(stack, 0, 65535).astype(np.uint16), photometric="minisblack")


def test_ingest_keeps_statistics_and_qc_images_flags_exactly_the_damaged_files(invoke, tiny_plate):
    import csv

    from phenorank.core.store import open_store

    wells = [r for r in csv.DictReader((tiny_plate / "manifest.csv").open()) if r["day"] == "10"]
    names = {how: wells[i]["path"].split("/")[-1] for i, how in ((3, "blur"), (10, "saturate"), (20, "dim"))}
    for how, name in names.items():
        damage(tiny_plate, name, how)
    invoke("ingest", tiny_plate)
    layers = rows(invoke.db, "SELECT sum(n_layers) FROM images")[0][0]
    assert rows(invoke.db, "SELECT count(*) FROM image_stats")[0][0] == layers
    result = invoke("qc-images", "--format", "csv")
    flagged = {r[0].split("/")[-1]: r for r in csv.reader(result.stdout.splitlines()[1:])}
    assert set(flagged) == set(names.values()), result.output
    assert flagged[names["blur"]][2] == "yes" and flagged[names["saturate"]][3] == "yes"
    assert flagged[names["dim"]][4] == "yes" and "median" in flagged[names["dim"]][5]
    assert "3 of 120 images flagged" in result.output
    with open_store(invoke.db, read_only=True) as store:
        ids = [r[0] for r in store.query("SELECT image_id FROM images ORDER BY path")[1]]
        samples = store.load_samples(ids)
        paths = samples["path"].astype(str)
    by_name = dict(zip([p.split("/")[-1] for p in paths], samples["qc_flagged"]))
    assert {n for n, f in by_name.items() if f} == set(names.values())
    # a file replaced by other content takes its new statistics and loses its old flags
    tifffile.imwrite(tiny_plate / "images" / names["dim"],
                     tifffile.imread(tiny_plate / "images" / wells[21]["path"].split("/")[-1]), photometric="minisblack")
    invoke("ingest", tiny_plate)
    assert rows(invoke.db, "SELECT count(*) FROM image_stats")[0][0] == rows(
        invoke.db, "SELECT sum(n_layers) FROM images")[0][0]
    assert rows(invoke.db, "SELECT count(*) FROM image_flags WHERE image_id NOT IN (SELECT image_id FROM images)")[0][0] == 0


def test_a_store_from_before_gets_its_statistics_by_ingesting_again(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    import duckdb

    con = duckdb.connect(invoke.db)
    con.execute("DELETE FROM image_stats")  # what a store from before migration 12 holds
    con.close()
    result = invoke("qc-images", ok=False)
    assert result.exit_code != 0 and "120 image(s) have no statistics" in result.output
    invoke("ingest", tiny_plate)
    assert rows(invoke.db, "SELECT count(DISTINCT image_id) FROM image_stats")[0][0] == 120
    assert "0 of 120 images flagged" in invoke("qc-images").output


def test_an_evaluator_that_selects_by_the_flags_is_recomputed_when_the_flags_change(invoke, tiny_plate):
    import csv

    wells = [r for r in csv.DictReader((tiny_plate / "manifest.csv").open()) if r["day"] == "10"]
    damage(tiny_plate, wells[0]["path"].split("/")[-1], "dim")
    invoke("ingest", tiny_plate)
    invoke("embed", "--encoder", "morphometrics")
    invoke("qc-images", "--intensity-z", "none")  # nothing flagged
    where = ["-p", "linear-probe.where=qc_flagged!=true"]
    invoke("evaluate", "--evaluator", "linear-probe", *where)
    invoke("qc-images")  # now the dimmed file is flagged: the selection changed, so the result must
    invoke("evaluate", "--evaluator", "linear-probe", *where)
    assert rows(invoke.db, "SELECT count(DISTINCT params_hash) FROM evaluations WHERE evaluator = 'linear-probe'")[0][0] == 2
    invoke("evaluate", "--evaluator", "linear-probe", *where)  # unchanged flags: nothing new
    assert rows(invoke.db, "SELECT count(DISTINCT params_hash) FROM evaluations WHERE evaluator = 'linear-probe'")[0][0] == 2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.bool_])
def test_the_histogram_counts_every_level_as_bincount_does(dtype):
    from phenorank.core.image_quality import histogram

    rng = np.random.default_rng(3)
    layer = (rng.integers(0, 2 if dtype == np.bool_ else np.iinfo(dtype).max, (301, 257))).astype(dtype)
    expected = np.bincount(layer.ravel().astype(np.int64), minlength=2 ** (8 * layer.dtype.itemsize))
    assert histogram(layer).tolist() == expected.tolist()
