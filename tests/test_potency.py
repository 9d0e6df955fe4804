"""The dose-response screen end to end: generated plates with a known truth -> QC -> EC50 fits ->
hits -> compare and report, as `phenorank demo --kind potency` runs it."""

import csv
import re

import numpy as np
import pytest

from phenorank.analysis.dose_response import fit_curve, hill
from phenorank.datasets.dose_plate import DRUGS, DosePlateSpec, drug_effect, plate_layout, read_truth


def test_the_dose_plate_layout_puts_controls_on_both_the_edge_and_the_inside():
    spec = DosePlateSpec()
    layout = plate_layout(np.random.default_rng(0), spec)
    assert len(layout) == 96 and len({w["well"] for w in layout}) == 96
    controls = [w for w in layout if w["condition"] == "control"]
    positives = [w for w in layout if w["condition"] == "exploded"]
    assert len(controls) == 14 and sum(w["edge"] for w in controls) == 7
    assert len(positives) == 12 and sum(w["edge"] for w in positives) == 6
    screen = [w for w in layout if w["condition"] == "screen"]
    assert len(screen) == 5 * 7 * 2 and len({w["concentration"] for w in screen}) == 7
    assert max(spec.doses) / min(spec.doses) == pytest.approx(1000)  # three logs
    a = next(w for w in screen if w["treatment"] == "drug-A" and w["concentration"] == 0.3)
    assert a["effect"] == pytest.approx(0.85 * 0.3 ** 2 / (0.3 ** 2 + 0.05 ** 2), abs=1e-4)
    assert all(w["effect"] == 0 for w in screen if w["treatment"] == "drug-E")
    assert drug_effect("drug-B", 0.2) == pytest.approx(DRUGS["drug-B"][0] / 2)


def test_an_interval_reaching_past_the_doses_is_left_open_and_said():
    doses = np.repeat(10.0 ** np.linspace(-2, 1, 7), 2)
    rng = np.random.default_rng(4)
    y = hill(np.log10(doses), 0.0, 1.0, np.log10(3.0), 1.5) + rng.normal(0, 0.12, len(doses))
    fit = fit_curve(doses, y, bootstrap=100, seed=1)
    if fit["status"] == "ok":  # noisy near the top dose: the upper end of the interval is not a number
        assert fit["ec50_high"] is None or fit["ec50_high"] <= 10
        if fit["ec50_high"] is None:
            assert "above 10, the highest dose" in fit["reason"]
    assert fit.get("ec50_low") is None or fit["ec50_low"] >= 0.01


@pytest.fixture(scope="module")
def potency_demo(tmp_path_factory):
    """`phenorank demo --kind potency` once (about 50 s on 2 cores), shared by the tests below."""
    from click.testing import CliRunner

    from phenorank.cli import cli

    root = tmp_path_factory.mktemp("potency")
    db, out = str(root / "store.duckdb"), root / "demo"
    result = CliRunner().invoke(cli, ["--db", db, "demo", "--kind", "potency", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db, out, result.output


def test_the_demo_recovers_every_true_ec50_within_a_factor_of_two(potency_demo):
    from conftest import rows

    db, out, output = potency_demo
    truth = read_truth(out / "truth.csv")
    best = re.search(r"best readout: (.+?): every active drug's EC50 within a factor of ([0-9.]+) of the truth; "
                     r"potency order Spearman ([-0-9.]+)", output)
    assert best, output
    assert float(best.group(2)) < 2.0 and float(best.group(3)) == 1.0
    assert "inactive drugs reported as: drug-E inactive" in output
    # the stored fits of the best readout agree with what was printed
    fits = {t: (status, ec50) for t, status, ec50 in rows(
        db, "SELECT treatment, status, ec50 FROM potency WHERE readout = 'growth/diameter' AND params LIKE '%exploded%'")}
    for drug, t in truth.items():
        if t["active"]:
            assert fits[drug][0] == "ok" and 0.5 < fits[drug][1] / t["ec50"] < 2, (drug, fits[drug])
        else:
            assert fits[drug] == ("inactive", None)
    ordered = [t for t, _ in sorted(((t, f[1]) for t, f in fits.items() if f[0] == "ok"), key=lambda x: x[1])]
    assert ordered == sorted((d for d in truth if truth[d]["active"]), key=lambda d: truth[d]["ec50"])


def test_the_demo_flags_the_edge_effect_plate_and_z_prime_matches_a_hand_computation(potency_demo):
    from conftest import rows

    from phenorank.analysis.readouts import load_readout
    from phenorank.core.store import open_store

    db, out, output = potency_demo
    qc = {p: (passed, reasons, z) for p, passed, reasons, z in rows(
        db, "SELECT plate, passed, reasons, z_prime FROM plate_qc WHERE readout = 'growth/diameter'")}
    assert qc["dose-plate-3"][0] is False and "edge effect" in qc["dose-plate-3"][1]
    assert qc["dose-plate-1"][0] and qc["dose-plate-2"][0]
    with open_store(db, read_only=True) as store:
        data = load_readout(store, "growth/diameter")
    plate = data.samples["plate"].astype(str) == "dose-plate-1"
    condition = data.samples["condition"].astype(str)
    negative, positive = data.values[plate & (condition == "control")], data.values[plate & (condition == "exploded")]
    assert len(negative) == 14 and len(positive) == 12
    mean_n, mean_p = sum(negative) / len(negative), sum(positive) / len(positive)
    sd_n = (sum((v - mean_n) ** 2 for v in negative) / (len(negative) - 1)) ** 0.5
    sd_p = (sum((v - mean_p) ** 2 for v in positive) / (len(positive) - 1)) ** 0.5
    assert qc["dose-plate-1"][2] == pytest.approx(1 - 3 * (sd_p + sd_n) / abs(mean_p - mean_n), rel=1e-9)
    assert "plate dose-plate-3 fails QC" in output
    # the automatic QC of `run` on the rankings is stored too
    assert rows(db, "SELECT count(DISTINCT readout_source) FROM plate_qc WHERE readout_kind = 'ranking'")[0][0] == 2


def test_the_demo_hits_have_no_false_discovery_against_the_truth(potency_demo):
    from conftest import rows

    db, out, output = potency_demo
    match = re.search(r"(\d+) hits, (\d+) false .*proportion ([0-9.]+); (\d+) of (\d+) groups", output)
    assert match, output
    hits, false, fdp, found, strong = match.groups()
    assert int(hits) >= 15 and float(fdp) <= 0.05 and int(found) >= int(strong) - 2
    called = rows(db, "SELECT group_key, hit FROM hits WHERE readout = 'growth/diameter'")
    assert not [g for g, hit in called if hit and g.startswith("drug-E|")]
    intervals = rows(db, "SELECT mean, ci_low, ci_high FROM hits WHERE group_key = 'drug-A|10'")
    assert intervals and all(low <= mean <= high and high - low < 0.3 for mean, low, high in intervals)
    plates = rows(db, "SELECT DISTINCT params FROM hits")[0][0]
    assert "dose-plate-3" not in plates  # the failed plate was left out


def test_compare_and_the_report_show_potency(potency_demo, tmp_path):
    from click.testing import CliRunner

    from phenorank.cli import cli

    db, out, _ = potency_demo
    result = CliRunner().invoke(cli, ["--db", db, "compare", "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = list(csv.reader(result.output.splitlines()))
    header = next(line for line in lines if line and line[0] == "readout")
    assert header[-5:] == ["drug-A", "drug-B", "drug-C", "drug-D", "drug-E"]
    growth = next(line for line in lines if line and line[0] == "morphometrics/features growth/diameter")
    assert growth[-1] == "inactive" and re.match(r"^[0-9.]+ \[[0-9.]+, [0-9.]+\]$", growth[1])
    page = (out / "report.html").read_text()
    for heading in ("Plate QC on fold change of diameter", "Plate heatmaps", "Potency: EC50 per readout",
                    "Dose-response curves: fold change of diameter", "Growth curves", "Hits on fold change of diameter"):
        assert heading in page
    assert "<td>NO</td>" in page and "edge effect: outer-ring controls differ" in page


@pytest.mark.parametrize("fixed_top", [False, True])
def test_the_bootstrap_refits_all_at_once_equal_scipys_curve_fit_one_at_a_time(fixed_top):
    from phenorank.analysis.dose_response import _fit, _refit_all, hill

    rng = np.random.default_rng(4)
    log_dose = np.log10(np.repeat(np.logspace(-3, 1, 8), 3))
    y = hill(log_dose, 100, 500, -0.7, 1.4) + rng.normal(0, 40, len(log_dose))
    top = 500.0 if fixed_top else None
    start = _fit(log_dose, y, top)
    by_dose = [np.flatnonzero(log_dose == level) for level in np.unique(log_dose)]
    weights, expected = [], []
    for _ in range(40):
        rows = np.concatenate([rng.choice(members, len(members)) for members in by_dose])
        weights.append(np.bincount(rows, minlength=len(y)))
        expected.append(_fit(log_dose[rows], y[rows], top, start)[2])  # scipy, resample by resample
    found = _refit_all(log_dose, y, np.array(weights, dtype=float), start, top)
    # log10 EC50 within 1e-3 (0.2% of the EC50); where they differ most, scipy stopped at its
    # tolerance with a slightly higher cost than the batched fit reaches
    assert np.abs(found - np.array(expected)).max() < 1e-3
    assert np.percentile(found, [2.5, 97.5]) == pytest.approx(np.percentile(expected, [2.5, 97.5]), abs=1e-3)
