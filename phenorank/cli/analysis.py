"""Commands that read results as a screening biologist does: ``potency`` (dose-response fits),
``hits`` (treatments against the control at a controlled FDR) and ``qc`` (can this plate be
trusted). Each takes a readout: a ranking's scores or a named feature (morphometrics/area).
``qc-images`` needs none: it flags image artifacts from the statistics stored at ingest."""

from __future__ import annotations

import click

from ..analysis import stored
from ..analysis.dose_response import STATUS_OK
from ..analysis.qc import DEFAULT_LIMITS, IMAGE_LIMITS
from .common import err, format_option, friendly_errors, recorded_run, resolve_day, show, split

readout_option = click.option(
    "--readout", required=True, metavar="RANKING_ID | ENCODER/FEATURE",
    help="One number per well: a stored ranking's scores (its id), or a named feature such as morphometrics/area.")
control_option = click.option("--control", default="control", show_default=True,
                              help="The negative control: a condition or treatment value (control, DMSO).")
day_option = click.option("--day", default="last", show_default=True, help="A day number, 'last' or 'all'.")
plates_option = click.option("--plates", metavar="P1,P2", help="Only these plates (e.g. leave out one that failed QC).")


@click.command()
@readout_option
@control_option
@click.option("--positive", help="The positive control class (e.g. exploded): Emax is then relative, 0 = control, "
                                 "1 = positive.")
@click.option("--fix-top", is_flag=True, help="Fix every curve's top at the positive control's level (needs "
                                              "--positive): the EC50 of a curve still rising at the top dose.")
@click.option("--bootstrap", default=200, show_default=True, type=click.IntRange(min=0),
              help="Resamples of the wells for the EC50 interval.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the bootstrap resamples.")
@day_option
@plates_option
@format_option
@click.pass_context
@friendly_errors
def potency(ctx, readout, control, positive, fix_top, bootstrap, seed, day, plates, fmt) -> None:
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
              "plates": split(plates)}
    with recorded_run(ctx, "potency", {"readout": readout, "day": day, **params}) as (store, run_id):
        try:
            data, fits = stored.potency(store, readout, run_id, day=resolve_day(store, day), **params)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    show_potency(data, fits, positive, fmt)


def show_potency(data, fits: list[dict], positive: str | None, fmt: str = "table") -> None:
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
@plates_option
@format_option
@click.pass_context
@friendly_errors
def hits(ctx, readout, control, fdr, by, show_all, day, plates, fmt) -> None:
    """Treatments that differ from the negative control: Mann-Whitney U per treatment group,
    Benjamini-Hochberg q and Holm-adjusted p over all groups, Cohen's d and Cliff's delta, and
    per drug Kruskal-Wallis across its doses. Stored in table `hits`; paste-ready with --format.

    \b
    Examples:
        phenorank hits --readout morphometrics/area --fdr 0.05
        phenorank hits --readout RANKING_ID --format markdown
    """
    columns = tuple(c.strip() for c in by.split(",") if c.strip())
    with recorded_run(ctx, "hits", {"readout": readout, "control": control, "fdr": fdr, "by": list(columns), "day": day,
                                    "plates": split(plates)}) as (store, run_id):
        try:
            data, rows = stored.hits(store, readout, run_id, control, fdr, columns, resolve_day(store, day),
                                     split(plates))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    show_hits(data, rows, control, fdr, show_all, fmt)


def interval(value: float, low: float | None, high: float | None) -> str:
    return f"{value:.4g}" + (f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else "")


def show_hits(data, rows: list[dict], control: str, fdr: float, show_all: bool = False, fmt: str = "table") -> None:
    shown = rows if show_all else [r for r in rows if r["hit"]]
    show(["treatment group", "n", "mean [95% interval]", "median", "control median", "Cliff's delta", "Cohen's d",
          "p (Mann-Whitney)", "q (BH)", "p (Holm)", "hit"],
         [(r["group"], r["n"], interval(r["mean"], r["ci_low"], r["ci_high"]), r["median"], r["control_median"],
           r["cliffs_delta"], r["cohens_d"], r["p_value"], r["q_value"], r["holm_p"], "yes" if r["hit"] else "")
          for r in shown], fmt,
         title=f"Hits on {data.label} vs {control!r} at FDR {fdr:g}: {sum(r['hit'] for r in rows)} of {len(rows)} "
               "treatment groups")


class _Limit(click.ParamType):
    """A QC limit: a number, or 'none' for a limit that is not checked."""

    name = "NUMBER|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        if str(value).lower() == "none":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'none'", param, ctx)


LIMIT = _Limit()


@click.command()
@readout_option
@control_option
@click.option("--positive", help="The positive control class, for Z'-factor and SSMD (e.g. exploded).")
@click.option("--min-z-prime", default=DEFAULT_LIMITS["z_prime"], show_default=True, type=LIMIT,
              help="A plate below fails ('none': not checked, as for every limit).")
@click.option("--min-ssmd", default=DEFAULT_LIMITS["ssmd"], show_default=True, type=LIMIT,
              help="A plate below |SSMD| fails.")
@click.option("--max-control-cv", default=DEFAULT_LIMITS["control_cv"], show_default=True, type=LIMIT,
              help="A plate whose control coefficient of variation is above fails (for readouts > 0).")
@click.option("--edge-p", default=DEFAULT_LIMITS["edge_p"], show_default=True, type=LIMIT,
              help="A plate whose edge controls differ from the inner ones at this p fails.")
@click.option("--focus/--no-focus", default=True, show_default=True,
              help="Score each image's focus (variance of the Laplacian of its stored crop).")
@day_option
@plates_option
@format_option
@click.pass_context
@friendly_errors
def qc(ctx, readout, control, positive, min_z_prime, min_ssmd, max_control_cv, edge_p, focus, day, plates, fmt) -> None:
    """Plate QC on a readout: per plate Z'-factor and SSMD (control vs --positive), control CV and
    the edge effect; per image a focus score, a blur flag and an outlier flag. Stored in tables
    `plate_qc` and `image_qc`; a plate that fails a limit is named with the reason.

    \b
    Example:
        phenorank qc --readout morphometrics/area --positive exploded
    """
    limits = {"z_prime": min_z_prime, "ssmd": min_ssmd, "control_cv": max_control_cv, "edge_p": edge_p}
    with recorded_run(ctx, "qc", {"readout": readout, "control": control, "positive": positive, "limits": limits,
                                  "focus": focus, "day": day, "plates": split(plates)}) as (store, run_id):
        data, plate_rows, flags = stored.qc(store, readout, run_id, control, positive, limits, focus,
                                            resolve_day(store, day), split(plates))
    show_qc(data, plate_rows, flags, fmt)


def show_qc(data, plate_rows: list[dict], flags: list[dict], fmt: str = "table") -> None:
    show(["plate", "wells", "controls", "Z'", "SSMD", "control CV", "edge - inner", "edge p", "passed", "why not"],
         [(p["plate"], p["n_wells"], p["n_control"], p.get("z_prime"), p.get("ssmd"), p.get("control_cv"),
           p.get("edge_difference"), p.get("edge_p"), "yes" if p["passed"] else "NO", p["reasons"]) for p in plate_rows],
         fmt, title=f"Plate QC on {data.label}")
    blurred = [f["image_id"] for f in flags if f["blurred"]]
    outliers = [f["image_id"] for f in flags if f["outlier"]]
    err.print(f"images: {len(blurred)} blurred, {len(outliers)} outlying readouts (table image_qc)")
    for p in plate_rows:
        if not p["passed"]:
            err.print(f"[yellow]plate {p['plate']} fails QC: {p['reasons']}[/]")


BY_CHOICES = ("plate", "plate,condition", "plate,day", "plate,treatment")


@click.command("qc-images")
@click.option("--blur-z", default=IMAGE_LIMITS["blur_z"], show_default=True, type=LIMIT,
              help="An image whose sharpest layer's focus slope lies this many robust SDs below its group's is blurred.")
@click.option("--max-saturated", default=IMAGE_LIMITS["max_percent_maximal"], show_default=True, type=LIMIT,
              help="An image with more than this percent of a layer's pixels at its maximum is saturated.")
@click.option("--intensity-z", default=IMAGE_LIMITS["intensity_z"], show_default=True, type=LIMIT,
              help="An image whose median or 99% quantile (of a layer) is this many robust SDs from its group's is an "
                   "outlier ...")
@click.option("--min-change", default=IMAGE_LIMITS["min_intensity_change"], show_default=True, type=LIMIT,
              help="... and at least this fraction away from the group's median (0.2 = 20%).")
@click.option("--by", default="plate,condition", show_default=True, type=click.Choice(BY_CHOICES),
              help="Compare each image with the images of its plate and condition (a treatment that changes the "
                   "picture is no artifact: it moves intensity and focus slope too), or of its whole plate as seed "
                   "001 did, or of its plate and day / treatment.")
@plates_option
@format_option
@click.pass_context
@friendly_errors
def qc_images(ctx, blur_z, max_saturated, intensity_z, min_change, by, plates, fmt) -> None:
    """Flag out-of-focus, saturated and intensity-outlier images (seed 001's artifact checks)
    from the statistics ingest stored per image and layer (table `image_stats`: focus as the slope
    of the log-log power spectrum, percent of pixels at the maximum, intensity quantiles). Each
    image is compared with the images of its plate and condition, layer by layer. The flags go to table
    `image_flags` and reach every evaluator's samples as the columns `qc_flagged` and
    `qc_reasons`, so `-p linear-probe.where=qc_flagged!=true` leaves flagged images out.

    \b
    Example:
        phenorank qc-images --max-saturated 0.5
    """
    limits = {"blur_z": blur_z, "max_percent_maximal": max_saturated, "intensity_z": intensity_z,
              "min_intensity_change": min_change}
    with recorded_run(ctx, "qc-images", {"limits": limits, "plates": split(plates), "by": by}) as (store, run_id):
        rows, flags, missing = stored.image_artifacts(store, run_id, limits, split(plates), tuple(by.split(",")))
    if missing:
        err.print(f"[yellow]{missing} image(s) have no statistics (stored before phenorank kept them): "
                  "run the same `phenorank ingest` again to add them[/]")
    if not rows:
        raise click.ClickException("no image statistics stored: ingest images first")
    flagged = [f for f in flags if f["flagged"]]
    paths = {r["image_id"]: r["path"] for r in rows}
    show(["file", "plate", "blurred", "saturated", "intensity outlier", "why"],
         [(paths[f["image_id"]], f["plate"], _yes(f["blurred"]), _yes(f["saturated"]), _yes(f["intensity_outlier"]),
           f["reasons"]) for f in flagged], fmt, title=f"Images flagged: {len(flagged)} of {len(flags)}")
    err.print(f"{len(flagged)} of {len(flags)} images flagged (table image_flags; column qc_flagged in evaluators' "
              "`where`); the histograms per plate and layer are in `phenorank report`")


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


COMMANDS = [potency, hits, qc, qc_images]
