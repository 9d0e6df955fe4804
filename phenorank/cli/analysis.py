"""Commands that read results as a screening biologist does: ``potency`` (dose-response fits),
``hits`` (treatments against the control at a controlled FDR) and ``qc`` (can this plate be
trusted). Each takes a readout: a ranking's scores or a named feature (morphometrics/area)."""

from __future__ import annotations

import click
import numpy as np

from ..analysis.dose_response import STATUS_OK, fit_treatments
from ..analysis.hits import call_hits
from ..analysis.qc import DEFAULT_LIMITS, focus_score, image_flags, plate_qc
from ..analysis.readouts import load_readout
from ..core.pipeline import digest
from ..registry.code import source_hash
from .common import err, format_option, friendly_errors, recorded_run, resolve_day, show

readout_option = click.option(
    "--readout", required=True, metavar="RANKING_ID | ENCODER/FEATURE",
    help="One number per well: a stored ranking's scores (its id), or a named feature such as morphometrics/area.")
control_option = click.option("--control", default="control", show_default=True,
                              help="The negative control: a condition or treatment value (control, DMSO).")
day_option = click.option("--day", default="last", show_default=True, help="A day number, 'last' or 'all'.")


def _code(module: str) -> str:
    return source_hash((module,))


@click.command()
@readout_option
@control_option
@click.option("--positive", help="The positive control class (e.g. exploded): Emax is then relative, 0 = control, "
                                 "1 = positive.")
@click.option("--fix-top", is_flag=True, help="Fix every curve's top at the positive control's level (needs "
                                              "--positive): the EC50 of a curve still rising at the top dose.")
@click.option("--bootstrap", default=200, show_default=True, type=click.IntRange(min=0),
              help="Resamples of the wells for the EC50 interval.")
@click.option("--seed", default=0, show_default=True)
@day_option
@format_option
@click.pass_context
@friendly_errors
def potency(ctx, readout, control, positive, fix_top, bootstrap, seed, day, fmt) -> None:
    """Fit a four-parameter logistic curve per treatment (3+ concentrations) of a readout against
    log concentration: EC50 with a bootstrap 95% interval over wells, Hill slope, top, bottom,
    Emax, AUC, R^2. A curve no better than a flat line is 'inactive'; an EC50 outside the tested
    doses is said as such ('above range'), never extrapolated. Stored in table `dose_response`.

    \b
    Examples:
        phenorank potency --readout morphometrics/area --positive exploded
        phenorank potency --readout RANKING_ID --positive exploded --fix-top
    """
    if fix_top and not positive:
        raise click.BadParameter("--fix-top needs --positive (the level to fix the top at)", param_hint="--fix-top")
    params = {"control": control, "positive": positive, "fix_top": fix_top, "bootstrap": bootstrap, "seed": seed,
              "day": day}
    with recorded_run(ctx, "potency", {"readout": readout, **params}) as (store, run_id):
        data = load_readout(store, readout, resolve_day(store, day))
        try:
            fits = fit_treatments(data.values, data.samples, control, bootstrap, seed, positive, fix_top)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        if not fits:
            raise click.ClickException(f"no treatment with a concentration in {data.label}")
        key = digest("potency", params, data.source, data.name)
        store.write_analysis("dose_response", data, params, key, fits, _code("phenorank.analysis.dose_response"),
                             run_id)
    fitted = sorted([f for f in fits if f["status"] == STATUS_OK], key=lambda f: f["ec50"])
    others = [f for f in fits if f["status"] != STATUS_OK]
    emax = "emax_relative" if positive else "emax"
    show(["treatment", "EC50", "95% low", "95% high", "Hill slope", emax, "AUC", "R^2", "doses", "wells", "status"],
         [(f["treatment"], f.get("ec50"), f.get("ec50_low"), f.get("ec50_high"), f.get("hill_slope"), f.get(emax),
           f.get("auc"), f.get("r2"), f["n_doses"], f["n_wells"], f["status"] + (f": {f['reason']}" if f["reason"] else ""))
          for f in fitted + others], fmt,
         title=f"Potency of each treatment on {data.label}: most potent (lowest EC50) first; not fitted last")
    if fitted:
        by_efficacy = sorted(fitted, key=lambda f: -abs(f.get(emax) or 0))
        err.print("by efficacy (" + emax + "): " + ", ".join(f"{f['treatment']} {f.get(emax):.3g}" for f in by_efficacy))


@click.command()
@readout_option
@control_option
@click.option("--fdr", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="The false discovery rate: hits are treatments with a Benjamini-Hochberg q below it.")
@click.option("--by", default="treatment,concentration", show_default=True,
              help="Columns that make a treatment group.")
@click.option("--all", "show_all", is_flag=True, help="List every group, not only the hits.")
@day_option
@format_option
@click.pass_context
@friendly_errors
def hits(ctx, readout, control, fdr, by, show_all, day, fmt) -> None:
    """Treatments that differ from the negative control: Mann-Whitney U per treatment group,
    Benjamini-Hochberg q and Holm-adjusted p over all groups, Cohen's d and Cliff's delta, and
    per drug Kruskal-Wallis across its doses. Stored in table `hits`; paste-ready with --format.

    \b
    Examples:
        phenorank hits --readout morphometrics/area --fdr 0.05
        phenorank hits --readout RANKING_ID --format markdown
    """
    columns = tuple(c.strip() for c in by.split(",") if c.strip())
    params = {"control": control, "fdr": fdr, "by": list(columns), "day": day}
    with recorded_run(ctx, "hits", {"readout": readout, **params}) as (store, run_id):
        data = load_readout(store, readout, resolve_day(store, day))
        try:
            rows = call_hits(data.values, data.samples, control, fdr, by=columns)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        store.write_analysis("hits", data, params, digest("hits", params, data.source, data.name),
                             [{**r, "group_key": r["group"]} for r in rows], _code("phenorank.analysis.hits"), run_id)
    shown = rows if show_all else [r for r in rows if r["hit"]]
    show(["treatment group", "n", "median", "control median", "Cliff's delta", "Cohen's d", "p (Mann-Whitney)",
          "q (BH)", "p (Holm)", "hit"],
         [(r["group"], r["n"], r["median"], r["control_median"], r["cliffs_delta"], r["cohens_d"], r["p_value"],
           r["q_value"], r["holm_p"], "yes" if r["hit"] else "") for r in shown], fmt,
         title=f"Hits on {data.label} vs {control!r} at FDR {fdr:g}: {sum(r['hit'] for r in rows)} of {len(rows)} "
               "treatment groups")


@click.command()
@readout_option
@control_option
@click.option("--positive", help="The positive control class, for Z'-factor and SSMD (e.g. exploded).")
@click.option("--min-z-prime", default=DEFAULT_LIMITS["z_prime"], show_default=True, help="A plate below fails.")
@click.option("--min-ssmd", default=DEFAULT_LIMITS["ssmd"], show_default=True, help="A plate below |SSMD| fails.")
@click.option("--max-control-cv", default=DEFAULT_LIMITS["control_cv"], show_default=True,
              help="A plate whose control coefficient of variation is above fails (for readouts > 0).")
@click.option("--edge-p", default=DEFAULT_LIMITS["edge_p"], show_default=True,
              help="A plate whose edge controls differ from the inner ones at this p fails.")
@click.option("--focus/--no-focus", default=True, show_default=True,
              help="Score each image's focus (variance of the Laplacian of its stored crop).")
@day_option
@format_option
@click.pass_context
@friendly_errors
def qc(ctx, readout, control, positive, min_z_prime, min_ssmd, max_control_cv, edge_p, focus, day, fmt) -> None:
    """Plate QC on a readout: per plate Z'-factor and SSMD (control vs --positive), control CV and
    the edge effect; per image a focus score, a blur flag and an outlier flag. Stored in tables
    `plate_qc` and `image_qc`; a plate that fails a limit is named with the reason.

    \b
    Example:
        phenorank qc --readout morphometrics/area --positive exploded
    """
    limits = {"z_prime": min_z_prime, "ssmd": min_ssmd, "control_cv": max_control_cv, "edge_p": edge_p}
    params = {"control": control, "positive": positive, "limits": limits, "focus": focus, "day": day}
    with recorded_run(ctx, "qc", {"readout": readout, **params}) as (store, run_id):
        data = load_readout(store, readout, resolve_day(store, day))
        plates = plate_qc(data.values, data.samples, control, positive, limits)
        scores = _focus_scores(store, data) if focus else None
        flags = image_flags(data.values, data.samples, scores)
        key = digest("qc", params, data.source, data.name)
        code = _code("phenorank.analysis.qc")
        store.write_analysis("plate_qc", data, params, key, plates, code, run_id)
        store.write_analysis("image_qc", data, params, key, flags, code, run_id)
    show(["plate", "wells", "controls", "Z'", "SSMD", "control CV", "edge - inner", "edge p", "passed", "why not"],
         [(p["plate"], p["n_wells"], p["n_control"], p.get("z_prime"), p.get("ssmd"), p.get("control_cv"),
           p.get("edge_difference"), p.get("edge_p"), "yes" if p["passed"] else "NO", p["reasons"]) for p in plates],
         fmt, title=f"Plate QC on {data.label}")
    blurred = [f["image_id"] for f in flags if f["blurred"]]
    outliers = [f["image_id"] for f in flags if f["outlier"]]
    err.print(f"images: {len(blurred)} blurred, {len(outliers)} outlying readouts (table image_qc)")
    for p in plates:
        if not p["passed"]:
            err.print(f"[yellow]plate {p['plate']} fails QC: {p['reasons']}[/]")


def _focus_scores(store, data) -> np.ndarray | None:
    """Each item's focus score from its stored crop (images only; None for profiles)."""
    set_id = store.rankings([data.source])[0].embedding_set_id if data.kind == "ranking" else data.source
    key = next((s.preprocess_key for s in store.embedding_sets() if s.embedding_set_id == set_id), None)
    if not key or key.startswith("profiles:"):
        return None
    scores = {}
    for ids, images in store.iter_crops([str(i) for i in data.ids], key, 256):
        scores.update({i: focus_score(image) for i, image in zip(ids, images)})
    return np.array([scores[str(i)] for i in data.ids])


COMMANDS = [potency, hits, qc]
