"""The report's pages for a screening biologist: plate QC, plate heatmaps with QC flags,
dose-response curves with their EC50 intervals, growth curves and the hit table, drawn from the
analyses stored by ``phenorank qc`` / ``potency`` / ``hits`` (and the demo)."""

from __future__ import annotations

import html
import json

import numpy as np

from ..analysis.readouts import stored_readout
from ..core.store import Store, StoreError
from . import plate_map, plots
from .provenance import analysis_made_by, made_by
from .page import figure, table


def _analyses(store: Store, table_name: str) -> list[dict]:
    """The stored analyses of one table, newest first: readout and parameters."""
    result = store.con.execute(
        f"SELECT readout_kind, readout_source, readout, any_value(params), params_hash, max(created_at) AS newest "
        f"FROM {table_name} GROUP BY readout_kind, readout_source, readout, params_hash ORDER BY newest DESC").fetchall()
    return [{"kind": k, "source": s, "name": n, "params": json.loads(p or "{}"), "params_hash": h}
            for k, s, n, p, h, _ in result]


def _rows(store: Store, table_name: str, analysis: dict) -> list[dict]:
    columns, rows = store.analysis_rows(table_name, analysis["source"], analysis["name"], analysis["params_hash"])
    return [dict(zip(columns, row)) for row in rows]


def analysis_sections(store: Store) -> list[str]:
    sections = []
    for build in (_qc_sections, _potency_sections, _growth_sections, _hit_sections):
        try:
            sections += build(store)
        except StoreError as exc:  # a readout whose source was replaced since: said, not fatal
            sections.append(f"<p class=note>{html.escape(str(exc))}</p>")
    return sections


def _qc_sections(store: Store) -> list[str]:
    analyses = _analyses(store, "plate_qc")
    if not analyses:
        return []
    # the QC a person asked for (a feature or growth readout) before the automatic one on rankings
    chosen = next((a for a in analyses if a["kind"] != "ranking"), analyses[0])
    plate_rows = _rows(store, "plate_qc", chosen)
    data = stored_readout(store, chosen["kind"], chosen["source"], chosen["name"], chosen["params"])
    failed = [p for p in plate_rows if not p["passed"]]
    sections = [f"<h2>Plate QC on {html.escape(data.label)}</h2><p class=note>Z'-factor and SSMD between the "
                f"negative control ({html.escape(str(chosen['params'].get('control')))}) and the positive class "
                f"({html.escape(str(chosen['params'].get('positive')))}); Z' above 0.5 is an excellent assay, below 0 "
                "the controls overlap. Edge: outer-ring controls against inner ones (Mann-Whitney). "
                f"{len(failed)} of {len(plate_rows)} plates fail a limit.</p>"
                + table(["plate", "wells", "controls", "Z'", "SSMD", "control CV", "edge - inner", "edge p", "passed",
                         "why not"],
                        [(p["plate"], p["n_wells"], p["n_control"], p["z_prime"], p["ssmd"], p["control_cv"],
                          p["edge_difference"], p["edge_p"], "yes" if p["passed"] else "NO", p["reasons"])
                         for p in plate_rows]) + analysis_made_by("plate_qc", chosen)]
    flags = {f["image_id"]: f for f in _rows(store, "image_qc", chosen)}
    samples = data.samples
    # the automatic QC of `run` is on a ranking, whose heatmap the ranking pages show already
    if chosen["kind"] == "ranking" or "well" not in samples or any(w is None or str(w) in ("", "nan") for w in samples["well"]):
        return sections
    flagged = np.array([bool(flags.get(str(i), {}).get("blurred") or flags.get(str(i), {}).get("outlier"))
                        for i in data.ids])
    reasons = {p["plate"]: p["reasons"] for p in failed}
    figures = []
    plates, days = samples["plate"].astype(str), np.array([str(d) for d in samples["day"]])
    for plate, day in sorted(set(zip(plates, days)))[:12]:
        on = (plates == plate) & (days == day)
        title = f"{plate}, day {day}" + (f"\nFAILED QC: {reasons[plate]}" if plate in reasons else "")
        on_plate = samples.subset(on)
        states = plate_map.well_states(store, plate, samples["day"][on][0], set(on_plate["well"].astype(str)))
        figures.append(figure(plate_map.plate_heatmap(on_plate, data.values[on], title, value=data.label,
                                                      states=states, flagged=flagged[on], failed=plate in reasons),
                              title))
    sections.append("<h2>Plate heatmaps</h2><p class=note>The QC readout laid out like each plate. C / E: control "
                    "and exploded (positive) wells; screen wells carry their treatment and dose; white: nothing "
                    "imaged; grey: an image without a value; hatched: a file rejected at ingest; the edge ring lies "
                    "outside the dashed line; red square: an image flagged as blurred or outlying (table "
                    f"image_qc, {int(flagged.sum())} here); red frame: the plate failed QC.</p><div class='figs half'>"
                    + "".join(figures) + "</div>" + analysis_made_by("plate_qc", chosen))
    return sections


def _potency_sections(store: Store) -> list[str]:
    columns, rows = store.potency_summary()
    if not rows:
        return []
    sections = ["<h2>Potency: EC50 per readout and treatment</h2><p class=note>Four-parameter logistic fits of each "
                "readout against log concentration; EC50 with its bootstrap 95% interval over wells. inactive: no "
                "better than a flat line (F test); &gt; max / &lt; min dose: the EC50 lies outside the tested doses "
                "and is not extrapolated.</p>" + table(columns, rows)]
    # Curves for the readout whose fits explain the wells best: most curves fitted, then mean R^2.
    best, best_key = None, None
    for analysis in _analyses(store, "dose_response"):
        fits = _rows(store, "dose_response", analysis)
        fitted = [f for f in fits if f["status"] == "ok"]
        key = (len(fitted), float(np.mean([f["r2"] for f in fitted])) if fitted else -1.0)
        if best_key is None or key > best_key:
            best, best_key = (analysis, fits), key
    analysis, fits = best
    data = stored_readout(store, analysis["kind"], analysis["source"], analysis["name"], analysis["params"])
    treatment = data.samples["treatment"].astype(str)
    dose = np.asarray(data.samples["concentration"], np.float64)
    control = data.samples.matching(analysis["params"].get("control") or "control")
    positive = analysis["params"].get("positive")
    is_positive = data.samples["condition"].astype(str) == positive if positive else np.zeros(len(dose), bool)
    panels = []
    for fit in sorted(fits, key=lambda f: (f["status"] != "ok", f.get("ec50") or np.inf, f["treatment"])):
        rows_of = (treatment == fit["treatment"]) & (dose > 0) & ~control & ~is_positive
        panels.append({**fit, "dose": dose[rows_of], "y": data.values[rows_of],
                       "control": float(data.values[control].mean()) if control.any() else None,
                       "positive": float(data.values[is_positive].mean()) if is_positive.any() else None})
    plates = analysis["params"].get("plates") or []
    sections.append(f"<h2>Dose-response curves: {html.escape(data.label)}</h2><p class=note>One dot per well"
                    + (f" (plates {html.escape(', '.join(plates))})" if plates else "") + "; blue: the fitted curve, "
                    "the EC50 (line) and its 95% interval (band); grey curve: a fit that is not reported as an EC50 "
                    "(its status in the title); dashed green: control mean; dotted orange: positive control mean. "
                    "Most potent first.</p><div class=figs>"
                    + figure(plots.dose_response_grid(panels, data.label), "dose-response curves") + "</div>"
                    + analysis_made_by("dose_response", analysis))
    return sections


def _growth_sections(store: Store) -> list[str]:
    """Mean equivalent diameter per drug, dose and day (morphometrics), where wells were imaged on
    more than one day."""
    sets = [s for s in store.embedding_sets("morphometrics") if s.transforms is None and s.source_id is None]
    if not sets or not store.pairs():
        return []
    names = store.feature_names(sets[0].embedding_set_id) or []
    if "equivalent_diameter" not in names:
        return []
    ids, vectors = store.load_embeddings(sets[0].embedding_set_id)
    samples = store.load_samples(ids)
    size = vectors[:, names.index("equivalent_diameter")].astype(np.float64)
    treatment = samples["treatment"].astype(str)
    dose = np.array([float(d) if d is not None and d == d else np.nan for d in samples["concentration"]])
    days = np.array([int(d) if d is not None else -1 for d in samples["day"]])
    control = samples.matching("control")
    condition = samples["condition"].astype(str)
    drugs = sorted({t for t, c, d in zip(treatment, condition, dose) if c == "screen" and np.isfinite(d)})
    if not drugs or not control.any():
        return []
    every_day = sorted(set(days[days >= 0]))

    def line(mask):
        kept = [d for d in every_day if (mask & (days == d)).any()]
        return kept, [float(size[mask & (days == d)].mean()) for d in kept]

    curves = {drug: {float(d): line((treatment == drug) & (dose == d) & ~control)
                     for d in sorted(set(dose[(treatment == drug) & np.isfinite(dose)]))} for drug in drugs[:12]}
    return ["<h2>Growth curves</h2><p class=note>Mean equivalent diameter (morphometrics, as a fraction of the "
            "stored crop's side) of each drug's wells per dose and day, all plates; the dashed line is the control. Growth readouts for potency and "
            "hits: <code>--readout growth/diameter</code> (fold change), <code>growth-rate/volume</code> (per day)."
            "</p><div class=figs>" + figure(plots.growth_plot(curves, line(control), "equivalent diameter"),
                                             "growth curves") + "</div>"
            + made_by("phenorank embed --encoder morphometrics", {
                "embedding_set_id": sets[0].embedding_set_id, "encoder": "morphometrics", "head": sets[0].head,
                "encoder_params": sets[0].params, "code": sets[0].code, "feature": "equivalent_diameter"})]


def _hit_sections(store: Store) -> list[str]:
    analyses = _analyses(store, "hits")
    if not analyses:
        return []
    analysis = analyses[0]
    rows = _rows(store, "hits", analysis)
    data = stored_readout(store, analysis["kind"], analysis["source"], analysis["name"], analysis["params"])
    fdr = analysis["params"].get("fdr", 0.05)
    rows = sorted(rows, key=lambda r: (r["q_value"], r["group_key"]))
    hit_rows = [r for r in rows if r["hit"]]
    return [f"<h2>Hits on {html.escape(data.label)} at FDR {fdr:g}</h2><p class=note>Each treatment group (treatment"
            f"|concentration) against the control, Mann-Whitney U; q: Benjamini-Hochberg, Holm: family-wise. "
            f"{len(hit_rows)} of {len(rows)} groups are hits; strongest evidence first.</p>"
            + table(["treatment group", "n", "mean [95% interval]", "median", "control median", "Cliff's delta",
                     "Cohen's d", "p (Mann-Whitney)", "q (BH)", "p (Holm)", "Kruskal-Wallis p (drug)", "hit"],
                    [(r["group_key"], r["n"], _interval(r), r["median"], r["control_median"], r["cliffs_delta"],
                      r["cohens_d"],
                      r["p_value"], r["q_value"], r["holm_p"], r["kruskal_p"], "yes" if r["hit"] else "")
                     for r in rows], limit=40) + analysis_made_by("hits", analysis)]


def _interval(row: dict) -> str:
    if row.get("mean") is None:
        return ""
    low, high = row.get("ci_low"), row.get("ci_high")
    return f"{row['mean']:.4g}" + (f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else "")

