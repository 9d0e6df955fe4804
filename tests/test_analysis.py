"""Readouts over stored results: 4PL fits (scipy), hit statistics (scipy, statsmodels), plate QC."""

import numpy as np
import pytest

from phenorank.analysis.dose_response import fit_curve, fit_treatments, hill
from phenorank.analysis.hits import call_hits, cliffs_delta, cohens_d
from phenorank.analysis.qc import focus_score, plate_qc, ssmd, z_prime
from phenorank.registry import Samples

DOSES = np.repeat(10.0 ** np.linspace(-2, 1, 7), 3)  # 7 concentrations over 3 logs, 3 wells each


def curve_data(ec50, slope=1.2, top=1.0, noise=0.04, seed=0):
    rng = np.random.default_rng(seed)
    return hill(np.log10(DOSES), 0.0, top, np.log10(ec50), slope) + rng.normal(0, noise, len(DOSES))


def test_a_4pl_fit_recovers_ec50_slope_and_top_with_an_interval():
    result = fit_curve(DOSES, curve_data(0.3), bootstrap=100)
    assert result["status"] == "ok" and result["n_doses"] == 7
    assert 0.3 / 1.3 < result["ec50"] < 0.3 * 1.3
    assert result["ec50_low"] < result["ec50"] < result["ec50_high"] and result["ec50_high"] / result["ec50_low"] < 3
    assert result["ec50_low"] < 0.3 * 1.1 and result["ec50_high"] > 0.3 / 1.1
    assert result["hill_slope"] == pytest.approx(1.2, rel=0.3) and result["top"] == pytest.approx(1.0, abs=0.08)
    assert result["r2"] > 0.95


def test_a_flat_response_is_inactive_and_an_ec50_beyond_the_doses_is_not_made_up():
    flat = fit_curve(DOSES, np.random.default_rng(1).normal(0, 0.05, len(DOSES)), bootstrap=0)
    assert flat["status"] == "inactive" and "ec50" not in flat and "flat line" in flat["reason"]
    # a curve still rising at the highest dose: with its top free it can pass for a weak drug that
    # levelled off; with the top fixed at the positive control's level it is what it is
    late = fit_curve(DOSES, curve_data(30.0, slope=1.5, noise=0.01), bootstrap=0, top=1.0)
    assert late["status"] == "above range" and "ec50" not in late and "EC50 > 10" in late["reason"]
    assert fit_curve(np.array([1.0, 1, 10, 10]), np.array([0, 0.1, 1, 1.1]))["status"] == "too few doses"


def test_potency_order_over_treatments_follows_the_truth():
    truth = {"a": 0.05, "b": 0.3, "c": 2.0}
    values = np.concatenate([curve_data(ec50, seed=i) for i, ec50 in enumerate(truth.values())] + [np.zeros(6)])
    treatment = np.array([t for t in truth for _ in DOSES] + ["DMSO"] * 6, dtype=object)
    samples = Samples(np.arange(len(values)).astype(str), {
        "treatment": treatment, "condition": np.where(treatment == "DMSO", "control", "screen"),
        "concentration": np.concatenate([DOSES] * 3 + [np.zeros(6)])})
    fits = {f["treatment"]: f for f in fit_treatments(values, samples, bootstrap=0)}
    assert set(fits) == {"a", "b", "c"}
    assert [fits[t]["ec50"] < fits[u]["ec50"] for t, u in (("a", "b"), ("b", "c"))] == [True, True]
    assert all(truth[t] / 2 < fits[t]["ec50"] < truth[t] * 2 for t in truth)


def test_effect_sizes_against_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 17), rng.normal(0, 2, 23)
    brute = np.mean([np.sign(x - y) for x in a for y in b])
    assert cliffs_delta(a, b) == pytest.approx(brute)
    pooled = np.sqrt((16 * a.var(ddof=1) + 22 * b.var(ddof=1)) / 38)
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / pooled)


def test_hits_use_mann_whitney_and_benjamini_hochberg_and_control_the_false_discoveries():
    from scipy.stats import mannwhitneyu
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    groups = {f"active-{i}": 2.0 for i in range(10)} | {f"null-{i}": 0.0 for i in range(30)}
    values = [rng.normal(0, 1, 24)] + [rng.normal(shift, 1, 6) for shift in groups.values()]
    values = np.concatenate(values)
    treatment = np.array(["DMSO"] * 24 + [g for g in groups for _ in range(6)], dtype=object)
    samples = Samples(np.arange(len(values)).astype(str), {
        "treatment": treatment, "condition": np.where(treatment == "DMSO", "control", "screen"),
        "concentration": np.where(treatment == "DMSO", 0.0, 1.0)})
    rows = {r["treatment"]: r for r in call_hits(values, samples, control="control")}
    control = values[:24]
    expected_p = [mannwhitneyu(values[treatment == g], control).pvalue for g in groups]
    assert [rows[g]["p_value"] for g in groups] == pytest.approx(expected_p)
    assert [rows[g]["q_value"] for g in groups] == pytest.approx(multipletests(expected_p, method="fdr_bh")[1])
    hits = [g for g in groups if rows[g]["hit"]]
    false = [g for g in hits if g.startswith("null")]
    assert len(hits) >= 6 and len(false) / len(hits) <= 0.2


def test_z_prime_and_ssmd_by_hand():
    positive, negative = np.array([10.0, 11.0, 12.0, 13.0]), np.array([1.0, 2.0, 2.0, 3.0])
    sd_p, sd_n = np.std(positive, ddof=1), np.std(negative, ddof=1)  # 1.291, 0.8165
    assert z_prime(positive, negative) == pytest.approx(1 - 3 * (sd_p + sd_n) / 9.5)
    assert z_prime(positive, negative) == pytest.approx(0.3345, abs=1e-4)
    assert ssmd(positive, negative) == pytest.approx(9.5 / np.sqrt(sd_p ** 2 + sd_n ** 2))


def _plate(edge_shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, values = [], []
    for r in "ABCDEFGH":
        for c in range(1, 13):
            edge = r in "AH" or c in (1, 12)
            condition = "control" if (c in (1, 2, 11, 12) or r in "AH") else ("exploded" if c == 6 else "screen")
            base = {"control": 10.0, "exploded": 20.0, "screen": 12.0}[condition]
            values.append(base + rng.normal(0, 0.5) + (edge_shift if edge else 0.0))
            rows.append((condition, edge))
    return np.array(values), Samples(np.arange(96).astype(str), {
        "plate": np.array(["P"] * 96, dtype=object), "condition": np.array([c for c, _ in rows], dtype=object),
        "treatment": np.array([""] * 96, dtype=object), "edge": np.array([e for _, e in rows])})


def test_plate_qc_passes_a_good_plate_and_flags_an_edge_effect():
    values, samples = _plate(0.0)
    good = plate_qc(values, samples, positive="exploded")[0]
    negative, positive = values[samples["condition"] == "control"], values[samples["condition"] == "exploded"]
    assert good["z_prime"] == pytest.approx(z_prime(positive, negative)) and good["z_prime"] > 0
    assert good["passed"], good["reasons"]
    values, samples = _plate(1.5)
    bad = plate_qc(values, samples, positive="exploded")[0]
    assert not bad["passed"] and "edge effect" in bad["reasons"] and bad["edge_difference"] > 1


def test_focus_score_falls_with_blur():
    from scipy.ndimage import gaussian_filter

    image = np.random.default_rng(0).random((3, 64, 64))
    assert focus_score(gaussian_filter(image, (0, 2, 2))) < 0.1 * focus_score(image)


def test_potency_hits_and_qc_through_the_command_line(invoke, tiny_plate):
    from conftest import rows

    invoke("ingest", tiny_plate)
    invoke("embed", "--encoder", "morphometrics")
    out = invoke("potency", "--readout", "morphometrics/area", "--positive", "exploded", "--bootstrap", "20").output
    assert "Potency of each treatment on morphometrics/features area" in out
    fits = dict(rows(invoke.db, "SELECT treatment, status FROM dose_response"))
    assert set(fits) == {"combo-1", "combo-2", "combo-3", "combo-4", "reference-drug"}
    assert fits["reference-drug"] == "too few doses"  # one concentration once the positive class is left out
    assert rows(invoke.db, "SELECT count(*) FROM dose_response WHERE status <> 'ok' AND ec50 IS NOT NULL")[0][0] == 0
    invoke("potency", "--readout", "morphometrics/area", "--positive", "exploded", "--bootstrap", "20")
    assert rows(invoke.db, "SELECT count(*) FROM dose_response")[0][0] == 5  # the same analysis replaces its rows

    out = invoke("hits", "--readout", "morphometrics/area", "--format", "csv").output
    called = rows(invoke.db, "SELECT group_key, hit, q_value FROM hits ORDER BY q_value")
    assert len(called) == 4 * 3 + 2 and all((q < 0.05) == hit for _, hit, q in called)
    assert {g for g, hit, _ in called if hit} >= {"reference-drug|50", "combo-1|30"}  # the strongest effects
    assert "combo-1|30" in out

    out = invoke("qc", "--readout", "morphometrics/area", "--positive", "exploded", "--min-z-prime", "0.9").output
    plate = rows(invoke.db, "SELECT z_prime, passed, reasons FROM plate_qc")[0]
    assert plate[1] is False and "Z'" in plate[2]  # an impossible limit fails, with the reason
    assert rows(invoke.db, "SELECT count(*), count(focus) FROM image_qc")[0] == (60, 60)
    result = invoke("qc", "--readout", "nope/area", ok=False)
    assert result.exit_code == 1 and "no feature 'area' in the stored nope embeddings" in result.output


def test_ellipsoid_volume_of_a_circle_is_a_sphere_and_growth_rate_is_log_fold_per_day():
    from phenorank.analysis.growth import ellipsoid_volume, growth

    r = 3.0
    assert ellipsoid_volume(np.array([np.pi * r * r]), np.array([0.0]))[0] == pytest.approx(4 / 3 * np.pi * r ** 3)
    flat = ellipsoid_volume(np.array([np.pi * 4 * 2]), np.array([np.sqrt(1 - 0.25)]))[0]  # a = 4, b = 2
    assert flat == pytest.approx(4 / 3 * np.pi * 4 * 2 * 2)
    assert growth(np.array([2.0]), np.array([8.0]), np.array([3.0]), rate=True)[0] == pytest.approx(np.log(4) / 3)


def test_growth_from_day_pairs_is_a_readout_like_any_other(invoke, tiny_plate):
    from conftest import rows

    invoke("ingest", tiny_plate)
    invoke("embed", "--encoder", "morphometrics")
    invoke("hits", "--readout", "growth/volume", "--all")
    medians = dict(rows(invoke.db, "SELECT group_key, median FROM hits"))
    control = rows(invoke.db, "SELECT DISTINCT control_median FROM hits")[0][0]
    assert len(medians) == 14 and control > 1.0  # untreated spheroids grow from day 7 to day 10
    assert medians["reference-drug|50"] < 1.0  # exploded ones shrink
    invoke("hits", "--readout", "growth-rate/area")
    rate = rows(invoke.db, "SELECT DISTINCT control_median FROM hits WHERE readout = 'growth-rate/area'")[0][0]
    area_fold = rows(invoke.db, "SELECT count(*) FROM hits WHERE readout = 'growth-rate/area'")[0][0]
    assert rate > 0 and area_fold == 14
    invoke("qc", "--readout", "growth/volume", "--positive", "exploded")  # focus from the growth set's crops
    assert rows(invoke.db, "SELECT count(*), count(focus) FROM image_qc WHERE readout = 'growth/volume'")[0] == (60, 60)
