"""``phenorank demo --kind potency``: a generated dose-response screen (three plates, one with an
edge effect) through QC, dose-response fits on several readouts, hit calling, and the report;
printed against the generator's truth (EC50 per drug, which drug is inactive)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from ..analysis import stored
from ..analysis.dose_response import STATUS_OK
from ..core.grid import GridSpec, run_grid
from ..core.preprocess import PreprocessParams
from ..core.progress import progress_bar, progress_steps
from ..datasets.dose_plate import DosePlateSpec, generate_dose_plates, n_images, read_truth
from ..registry import get_registry
from .analysis import show_hits, show_potency, show_qc
from .common import err, finish_demo, recorded_run, show

QC_READOUT = "growth/diameter"
FEATURE_READOUTS = ("growth/diameter", "growth/area", "growth/volume", "morphometrics/equivalent_diameter",
                    "morphometrics/area")


def potency_demo(ctx: click.Context, out_dir: Path, seed: int) -> None:
    from .data import ingest

    started = time.perf_counter()
    spec = DosePlateSpec(seed=seed)
    manifest, stamp = out_dir / "manifest.csv", out_dir / "spec.json"
    if not (manifest.exists() and stamp.exists() and json.loads(stamp.read_text()) == spec.as_dict()):
        with progress_bar("generate synthetic dose plates", n_images(spec)) as advance:
            generate_dose_plates(out_dir, spec, advance)
        stamp.write_text(json.dumps(spec.as_dict()))
    truth = read_truth(out_dir / "truth.csv")
    err.print(f"[bold]SYNTHETIC[/] dose-response screen in {out_dir}/: {spec.plates} plates x 96 wells, day 7 and "
              f"day 10; {len(truth)} drugs x {len(spec.doses)} doses ({min(spec.doses):g}-{max(spec.doses):g} µM) x "
              f"{spec.replicates} replicates per plate, one drug inactive; plate "
              f"{', '.join(map(str, spec.edge_effect_plates))} with an edge effect")
    ctx.invoke(ingest, image_dir=out_dir, manifest=manifest)
    grid = GridSpec(encoders=["raw", "morphometrics"], metrics=["euclidean"], rankers=["centroid"],
                    references=["control"], evaluators=["rank-correlation"], preprocess_key=PreprocessParams().key,
                    holdout=None, params={"rank-correlation": {"truth": "effect"}}, day=10)
    with recorded_run(ctx, "demo", {"kind": "potency", "out": str(out_dir), "seed": seed}) as (store, run_id):
        with progress_steps() as steps:
            report = run_grid(store, get_registry(), grid, run_id, progress=steps)
        for warning in stored.qc_rankings(store, report.rankings, run_id, positive="exploded", day=10):
            err.print(f"[yellow]{warning}[/]")

        data, plate_rows, flags = stored.qc(store, QC_READOUT, run_id, positive="exploded", day=10)
        show_qc(data, plate_rows, flags)
        passed = [p["plate"] for p in plate_rows if p["passed"]]
        err.print(f"dose-response fits and hits on the plates that passed QC: {', '.join(passed)}")

        readouts = list(FEATURE_READOUTS) + [r.ranking_id for r in report.rankings]
        results = {}
        with progress_bar("fit dose-response curves", len(readouts)) as advance:
            for spec_text in readouts:
                data, fits = stored.potency(store, spec_text, run_id, positive="exploded", day=10, plates=passed,
                                            seed=seed)
                results[spec_text] = (data, fits, score_fits(fits, truth))
                advance(1)
        best = min(results, key=lambda k: (results[k][2]["max_fold_error"], -results[k][2]["spearman"]))
        show_truth_table(results, truth, best)
        data, fits, score = results[best]
        show_potency(data, fits, "exploded")
        err.print(f"best readout: {data.label}: every active drug's EC50 within a factor of "
                  f"{score['max_fold_error']:.2f} of the truth; potency order Spearman {score['spearman']:.2f} "
                  f"against the true EC50s; inactive drugs reported as: {score['inactive']}")

        hit_data, hit_rows = stored.hits(store, best, run_id, fdr=0.05, day=10, plates=passed)
        show_hits(hit_data, hit_rows, "control", 0.05)
        fdp = false_discoveries(hit_rows, truth)
        err.print(f"hits at FDR 0.05 against the truth: {fdp['hits']} hits, {fdp['false']} false (treatment groups of "
                  f"an inactive drug): false-discovery proportion {fdp['fdp']:.3f}; {fdp['found']} of "
                  f"{fdp['active']} groups with a true effect of 0.1 or more found")
    finish_demo(ctx, out_dir, started, [
        f"phenorank potency --readout {QC_READOUT} --positive exploded --plates {','.join(passed)}",
        "phenorank compare   (the potency table: EC50 per readout and drug)",
        "phenorank sql \"select readout, treatment, status, ec50, ec50_low, ec50_high from dose_response\""])


def score_fits(fits: list[dict], truth: dict[str, dict]) -> dict:
    """How close a readout's fits come to the truth: the largest fold error of an active drug's
    EC50 (inf when one was not fitted), Spearman of fitted vs true EC50, the inactive drugs' status."""
    from scipy.stats import spearmanr

    by_name = {f["treatment"]: f for f in fits}
    active = [name for name, t in truth.items() if t["active"]]
    errors = [max(by_name[n]["ec50"] / truth[n]["ec50"], truth[n]["ec50"] / by_name[n]["ec50"])
              if n in by_name and by_name[n]["status"] == STATUS_OK else np.inf for n in active]
    fitted = [n for n in active if n in by_name and by_name[n]["status"] == STATUS_OK]
    rho = float(spearmanr([truth[n]["ec50"] for n in fitted], [by_name[n]["ec50"] for n in fitted])[0]) \
        if len(fitted) >= 3 else float("nan")
    inactive = ", ".join(f"{n} {by_name[n]['status']}" for n, t in truth.items() if not t["active"] and n in by_name)
    return {"max_fold_error": float(max(errors)), "spearman": rho if rho == rho else -1.0, "inactive": inactive}


def show_truth_table(results: dict, truth: dict[str, dict], best: str) -> None:
    columns = ["drug", "true EC50"] + [("* " if key == best else "") + data.label for key, (data, _, _) in results.items()]
    rows = []
    for name, t in truth.items():
        cells = []
        for data, fits, _ in results.values():
            fit = next((f for f in fits if f["treatment"] == name), None)
            cells.append("-" if fit is None else f"{fit['ec50']:.3g}" if fit["status"] == STATUS_OK else fit["status"])
        rows.append([name, f"{t['ec50']:g}" if t["ec50"] else "inactive", *cells])
    rows.append(["largest fold error", ""] + [f"{s['max_fold_error']:.2f}" for _, _, s in results.values()])
    rows.append(["Spearman vs true order", ""] + [f"{s['spearman']:.2f}" for _, _, s in results.values()])
    show(columns, rows, title="Fitted vs true EC50 (µM) per readout, plates that passed QC; * = the best readout")


def false_discoveries(rows: list[dict], truth: dict[str, dict], detectable: float = 0.1) -> dict:
    """Hits against the generator's truth: a group of an inactive drug has no effect at all, so
    calling it is a false discovery; the reference drug (positive control) is active."""
    from ..datasets.dose_plate import drug_effect

    drugs = {name: (t["emax"], t["ec50"], t["hill_slope"]) for name, t in truth.items()}
    hits = [r for r in rows if r["hit"]]
    false = [r for r in hits if r["treatment"] in truth and not truth[r["treatment"]]["active"]]
    strong = [r for r in rows if r["treatment"] in truth and truth[r["treatment"]]["active"]
              and drug_effect(r["treatment"], float(r["group"].split("|")[1]), drugs) >= detectable]
    return {"hits": len(hits), "false": len(false), "fdp": len(false) / len(hits) if hits else 0.0,
            "active": len(strong), "found": sum(r["hit"] for r in strong)}
