"""Commands that bring images in: ``ingest`` and ``demo``."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import click

from ..core import synthetic_plate
from ..core import files as storage
from ..core.ingest import expand_entries, ingest as run_ingest
from ..core.manifest import entries_from_folders, entries_from_pattern, read_manifest
from ..core.grid import GridSpec, run_grid
from ..core.preprocess import DEFAULT_MAX_LAYERS, PreprocessParams
from ..core.progress import progress_bar, progress_steps
from ..registry import Loader, get_registry
from .common import (cluster_executor, cluster_option, err, finish_demo, friendly_errors, param_option, parse_params, recorded_run, resolve_day, show,
                     size_option, split)
from .results import print_top_treatments


# What the plate demo judges: the rankings, and the embeddings' class separation (seed 000).
PLATE_EVALUATORS = ("ranking-accuracy", "rank-correlation", "holdout-range", "linear-probe", "kmeans-accuracy", "map")


def fit_preprocessing(steps, entries, loader):
    """Fit the chain's fitted steps (illumination per plate) in a first pass over the files."""
    from ..core.ingest import read_image
    from ..core.preprocess_chain import fit_chain

    fitted = [s.name for s in steps if s.fitted]
    if not fitted:
        return fit_chain(steps, entries, lambda location: read_image(location, loader))
    with progress_bar(f"fit {', '.join(fitted)}", len(entries) * len(fitted)) as advance:
        return fit_chain(steps, entries, lambda location: read_image(location, loader), advance)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _PathOrURL(click.ParamType):
    """A local path (a Path), or a URL (kept as text) that an fsspec file system reads."""

    def __init__(self, folder: bool):
        self.folder = folder
        self.name = "FOLDER|URL" if folder else "FILE|URL"

    def convert(self, value, param, ctx):
        from ..core.files import is_url

        if isinstance(value, Path) or not is_url(str(value)):
            local = click.Path(file_okay=not self.folder, dir_okay=self.folder, path_type=Path)
            return local.convert(value, param, ctx)
        return str(value)


FOLDER_OR_URL, FILE_OR_URL = _PathOrURL(folder=True), _PathOrURL(folder=False)


@click.command()
@click.argument("image_dir", type=FOLDER_OR_URL)
@click.option("--manifest", type=FILE_OR_URL,
              help="CSV with path, well, day, condition (+ optional columns); a path or a URL. "
                   "Default: IMAGE_DIR/manifest.csv.")
@click.option("--pattern", help="Take the fields from file names instead of a manifest, e.g. "
              "'{plate}_{well}_day{day}.tif' ({name:REGEX} gives a field's regular expression, * matches anything).")
@click.option("--folders", is_flag=True,
              help="Class-labelled folders: IMAGE_DIR/CLASS/files, CLASS becomes the condition; --pattern then "
                   "describes the file names inside a folder, e.g. '{sample}_f{field}.tif'.")
@click.option("--channels", "channel_order", metavar="I,J,K",
              help="Multi-channel images: which channels to keep, in order (0-based), e.g. 2,0,1. "
                   "Default: the first three (one channel is repeated).")
@click.option("--condition", "default_condition", metavar="NAME",
              help="With --pattern: the condition of every file whose name does not give one.")
@click.option("--layout", type=click.Path(dir_okay=False, path_type=Path),
              help="With --pattern: plate map CSV with a well column (optionally plate) and the fields "
                   "the file names lack, e.g. condition, treatment, concentration.")
@click.option("--plate-format", type=click.Choice(["96", "384"]), default="96", show_default=True,
              help="Wells per plate: which well names exist and which are on the edge.")
@click.option("--exclude-edge", is_flag=True, help="Leave out the outer ring of wells (edge effect).")
@click.option("--workers", type=click.IntRange(min=1), default=default_workers, show_default="all cores",
              help="Threads that hash, read and preprocess files in parallel.")
@cluster_option
@click.option("--max-layers", type=click.IntRange(min=3), default=DEFAULT_MAX_LAYERS, show_default=True,
              help="Refuse stacks with more focal layers than this.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=Loader.max_pixels, show_default=True,
              help="Refuse a file whose header says it decodes to more pixels than this (all planes), before "
                   "decoding it: a small compressed file cannot claim gigabytes of memory.")
@click.option("--allow-outside", is_flag=True,
              help="Let manifest paths point outside IMAGE_DIR (../other, /data/...); refused by default.")
@click.option("--loader", default="tiff-stack", show_default=True, help="Loader plugin that reads the files.")
@click.option("--preprocess", "preprocessors", metavar="STEP,STEP",
              help="Preprocessor plugins applied in order to every channel at full resolution before the crop, e.g. "
                   "illumination,outliers,rolling-ball,tv (seed 001); their settings with -p STEP.KEY=VALUE. "
                   "Each chain is its own crop set: embed and run choose it with --crops.")
@click.option("--dry-run", is_flag=True,
              help="Show how each file name parses (the fields from --pattern, --folders or the manifest, and the "
                   "files that match nothing) and stop: nothing is read or stored.")
@size_option
@param_option
@click.pass_context
@friendly_errors
def ingest(ctx, image_dir: Path, manifest: Path | None, pattern: str | None, folders: bool, channel_order: str | None,
           default_condition: str | None, layout: Path | None, plate_format: str, exclude_edge: bool, workers: int,
           cluster: str | None, max_layers: int, max_pixels: int, allow_outside: bool, loader: str,
           preprocessors: str | None, dry_run: bool, size: int, params: tuple[str, ...]) -> None:
    """Read image stacks, crop around the object, and store crops and metadata.

    The images are described by a manifest CSV (paths relative to IMAGE_DIR), by a file-name
    pattern, or by class folders (--folders). A `{channel}` field in the pattern (or a `channel`
    column) joins one file per channel into one image. Plates have wells and days; cell images
    need only a condition (class), with sample, field, donor ... as further fields. Files that cannot be used are recorded in the `rejects` table with the reason; the
    others are ingested. Re-running is cheap: files already ingested with the same preprocessing
    are recognised by their content hash. Each well's images on consecutive days are paired in
    the `pairs` table.

    \b
    Examples:
        phenorank ingest plate1/ --manifest plate1/manifest.csv
        phenorank ingest plate1/ --pattern '{plate}_{well}_day{day}.tif' --layout plate-map.csv
        phenorank ingest cells/ --folders --pattern '{sample}_f{field}.tif' --loader tiff-channels
        phenorank ingest cells/ --folders --pattern '{sample}_f{field}_ch{channel}.png' --loader image-file
        phenorank ingest movies/ --pattern '{well}.ome.tif' --loader tiff-tiles -p tiff-tiles.axes=CTYX \\
            -p tiff-tiles.channels=0,1 -p tiff-tiles.masks=nuclei=2 -p tiff-tiles.tile=128 -p tiff-tiles.stride=64
    """
    overrides = parse_params(params)
    steps = split(preprocessors)
    unused = sorted(set(overrides) - {loader, *steps})
    if unused:
        raise click.BadParameter(f"ingest takes parameters of its loader {loader!r} and its --preprocess steps only, "
                                 f"not of {', '.join(unused)}", param_hint="--param")
    plugin = get_registry().create("loader", loader, overrides.get(loader, {}))
    chain_steps = [get_registry().create("preprocessor", name, overrides.get(name, {})) for name in steps]
    plugin.max_pixels = max_pixels
    if layout and not pattern:
        raise click.UsageError("--layout goes with --pattern (a manifest already holds every field)")
    if default_condition and not pattern:
        raise click.UsageError("--condition goes with --pattern (a manifest or class folders give the condition)")
    if (pattern or folders) and manifest:
        raise click.UsageError("give either --manifest or --pattern/--folders, not both")
    unmatched: list[str] = []
    if folders:
        entries, unmatched = entries_from_folders(image_dir, pattern, plugin.suffixes or (".tif", ".tiff"))
        if unmatched:
            err.print(f"[yellow]{len(unmatched)} file(s) do not match the pattern and were left out[/], "
                      f"e.g. {', '.join(unmatched[:3])}")
    elif pattern:
        entries, unmatched = entries_from_pattern(image_dir, pattern, layout, int(plate_format),
                                                  plugin.suffixes or (".tif", ".tiff"),
                                                  {"condition": default_condition} if default_condition else None)
        if unmatched:
            err.print(f"[yellow]{len(unmatched)} file(s) do not match the pattern and were left out[/], "
                      f"e.g. {', '.join(unmatched[:3])}")
    else:
        entries = read_manifest(manifest or storage.join(image_dir, "manifest.csv"), image_dir, int(plate_format),
                                allow_outside)
    if exclude_edge:
        kept = [e for e in entries if not e.edge]
        err.print(f"left out {len(entries) - len(kept)} image(s) of edge wells")
        entries = kept
    if dry_run:
        return show_parsed(entries, unmatched if (pattern or folders) else [])
    try:
        order = tuple(int(c) for c in split(channel_order)) or None
    except ValueError:
        raise click.BadParameter(f"{channel_order!r}: give channel numbers, e.g. 2,0,1", param_hint="--channels") from None
    if order and plugin.axis != "channels":
        raise click.UsageError(f"--channels needs a channel loader (tiff-channels, image-file); {loader} reads focal layers")
    params = PreprocessParams(size=size, max_layers=max_layers, stack=plugin.axis, channel_order=order)
    chain = None
    if type(plugin).expand is not Loader.expand:  # a loader that finds several images per file: say so as it reads
        with progress_bar(f"find images in files ({loader})", len(entries)) as advance:
            entries, unopened = expand_entries(entries, plugin, advance)
    else:
        entries, unopened = expand_entries(entries, plugin)
    run_params = {"image_dir": str(image_dir), "manifest": str(manifest) if manifest else None,
                  "pattern": pattern, "condition": default_condition, "folders": folders, "channels": channel_order, "layout": str(layout) if layout else None, "plate_format": plate_format,
                  "exclude_edge": exclude_edge, "loader": loader, "loader_params": plugin.params, "size": size,
                  "max_layers": max_layers, "preprocess": [{"name": s.name, "params": s.params} for s in chain_steps]}
    with recorded_run(ctx, "ingest", run_params) as (store, run_id), cluster_executor(cluster, loader=plugin) as remote:
        if chain_steps:
            chain = fit_preprocessing(chain_steps, entries, plugin)
            params = dataclasses.replace(params, chain=chain.key)
            err.print(f"preprocessing {' -> '.join(s.name for s in chain_steps)}: crop set {params.key}")
        where = f"{remote.workers} Dask worker(s)" if remote else f"{workers} worker{'s' * (workers > 1)}"
        with progress_bar(f"ingest ({where})", len(entries)) as advance:
            report = run_ingest(entries, plugin, store, run_id, params, workers, advance, unopened, remote, chain)
    plate_images = any(e.well for e in entries)
    err.print(f"ingested {report.ingested}, unchanged {report.cached}, metadata updated {report.updated}, "
              f"rejected {len(report.rejected)} of {len(entries) + len(unopened)} images into {ctx.obj['db']}" +
              (f"; {report.pairs} day-to-day pairs" if plate_images else "") +
              (f" ({report.unpaired_wells} wells with several images on one day left unpaired)"
               if report.unpaired_wells else ""))
    if report.enlarged:
        err.print(f"[yellow]{report.enlarged} image(s) are smaller than the {size} px crop and were enlarged to it "
                  f"(smallest side {report.smallest_side} px); a smaller --size keeps their pixels as they are[/]")
    if report.rejected:
        show(["file", "reason"], report.rejected, title="Rejected files (also in table `rejects`)")


def show_parsed(entries, unmatched: list[str]) -> None:
    """What ingest would store for each file, and what it would leave out."""
    extra = sorted({k for e in entries for k in e.extra})
    columns = ["file", "plate", "well", "day", "condition", "treatment", "concentration", "replicate", *extra]
    rows = [(e.location, e.plate, e.well, e.day, e.condition, e.treatment, e.concentration, e.replicate,
             *(e.extra.get(k, "") for k in extra)) for e in entries]
    rows += [(name, "", "", "", "(matches nothing: left out)", "", "", "", *("" for _ in extra)) for name in unmatched]
    show(columns, rows, title=f"dry run: {len(entries)} image(s) would be ingested, {len(unmatched)} file(s) left out; "
                              "nothing was read or stored")


@click.command()
@click.option("--kind", type=click.Choice(["plate", "cells", "scratch", "profiles", "potency"]), default="plate",
              show_default=True,
              help="plate: spheroids on a 96-well plate, ranked; cells: fluorescence cells in class folders, "
                   "segmented, aggregated and clustered; scratch: a REAL wound-healing time-lapse, tiled and "
                   "ranked against time; profiles: a multi-plate feature-profile screen, normalized and "
                   "evaluated by mechanism (NSC) and activity (mAP); potency: a dose-response screen on three plates, "
                   "QC, EC50 fits and hits against the known truth.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder for the images and the report [default: phenorank-demo, phenorank-cells, "
                   "phenorank-scratch, phenorank-profiles or phenorank-potency].")
@click.option("--full-size", is_flag=True, help="Generate full 2054x2456 images (slow) instead of 200x240.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the generated images.")
@click.option("--epochs", default=3, show_default=True,
              help="--kind cells or scratch: epochs of the brief SimCLR training (0 leaves SimCLR out).")
@click.pass_context
@friendly_errors
def demo(ctx, kind: str, out_dir: Path | None, full_size: bool, seed: int, epochs: int) -> None:
    """Run everything on generated SYNTHETIC images, no arguments needed.

    --kind plate (default): a 96-well spheroid experiment (60 inner wells, day 7 and day 10,
    controls, reference treatments and a drug screen), ingested, ranked by every method and
    evaluated; the true effect of each well is in its manifest, so the comparison shows how well
    each method recovers it.

    --kind cells: three-channel fluorescence cells of three classes, 4 samples x 3 fields each, in
    class folders: ingested, cells found and cropped, embedded (raw, morphometrics, a briefly
    trained SimCLR with other cells of the sample as positives), aggregated per image and sample,
    clustered and scored (ARI, NMI, silhouette, ...), and tested under corruptions.

    --kind scratch: REAL images, a wound-healing (scratch) assay time-lapse from the PyPI package
    ndev-sampledata, cut into tiles, embedded (raw, morphometrics, ImageNet EfficientNet-Lite0,
    a briefly trained SimCLR), ranked by distance from the first time point and compared with
    the time and with the cytoplasm coverage of the sample's masks (Spearman).

    --kind profiles: a SYNTHETIC multi-plate profiling screen (CellProfiler-style table: 8
    mechanisms x 3 compounds x 4 doses on 4 plates, each plate with its own batch effect, DMSO
    wells on every plate), imported, put through transform chains (none, standardize, robustize,
    robustize+spherize, ...) and evaluated by not-same-compound mechanism accuracy and mAP.

    --kind potency: a SYNTHETIC dose-response screen (three 96-well plates, day 7 and day 10, five
    drugs x seven doses over three logs with known EC50 and Hill slope, one drug inactive, one
    plate with an edge effect): plate QC flags that plate, four-parameter logistic fits on the
    others for several readouts (growth, size, rankings), printed against the true EC50s, and hits
    at FDR 0.05 with their false-discovery proportion.

    Running it again reuses what is stored.
    """
    if kind == "potency":
        from .potency_demo import potency_demo

        return potency_demo(ctx, out_dir or Path("phenorank-potency"), seed)
    if kind == "profiles":
        from .profiles import profiles_demo

        return profiles_demo(ctx, out_dir or Path("phenorank-profiles"), seed)
    if kind == "cells":
        from .cells import cells_demo

        return cells_demo(ctx, out_dir or Path("phenorank-cells"), seed, epochs)
    if kind == "scratch":
        from .scratch import scratch_demo

        return scratch_demo(ctx, out_dir or Path("phenorank-scratch"), seed, epochs)
    out_dir = out_dir or Path("phenorank-demo")
    started = time.perf_counter()
    height, width = synthetic_plate.FULL_SIZE if full_size else synthetic_plate.DEMO_SIZE
    spec = synthetic_plate.PlateSpec(height=height, width=width, seed=seed)
    stamp = out_dir / "spec.json"
    manifest = out_dir / "manifest.csv"
    wanted = {**spec.__dict__, "manifest_fields": list(synthetic_plate.MANIFEST_FIELDS)}
    if not (manifest.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted):
        with progress_bar("generate synthetic plate", synthetic_plate.N_IMAGES) as advance:
            synthetic_plate.generate_plate(out_dir, spec, advance)
        stamp.write_text(json.dumps(wanted))
    err.print(f"[bold]SYNTHETIC[/] demo plate in {out_dir}/ ({height}x{width} px, seed {seed})")
    ctx.invoke(ingest, image_dir=out_dir, manifest=manifest)  # click fills in the other defaults
    registry = get_registry()
    # The whole grid: every metric, ranker and evaluator, from each of the three reference classes.
    grid = GridSpec(encoders=["raw", "morphometrics"], metrics=registry.names("metric"),
                    rankers=registry.names("ranker"), references=["control", "single_dose", "exploded"],
                    evaluators=list(PLATE_EVALUATORS), preprocess_key=PreprocessParams().key)
    with recorded_run(ctx, "demo", {"out": str(out_dir), "full_size": full_size, "seed": seed}) as (store, run_id):
        grid.day = resolve_day(store, "last")
        with progress_steps() as steps:
            report = run_grid(store, registry, grid, run_id, progress=steps)
        from .methods import print_grid_report  # here: `ingest` does not import the grid's commands

        print_grid_report(report)
        columns, rows = store.query(store.pivot_sql(["encoder", "ranker", "metric"], ["reference"],
                                                    "ranking-accuracy:accuracy"))
        show(columns, rows, "table", title="Ranking accuracy (seed 000's three-class separation, 1 = no overlap) "
                                           "by method and reference class, day 10")
        columns, rows = store.comparison_pivot(
            "embeddings", ci=True, where="name IN ('test_accuracy', 'euclidean_mean', 'cosine_mean', 'mean_map', "
                                         "'fraction_significant')")
        show(columns, rows, "table", title="Embeddings: linear probe, k-means accuracy (400 restarts), replicate mAP "
                                           "[95% interval]")
        print_top_treatments(store, report.rankings, "table")
    finish_demo(ctx, out_dir, started, [
        "phenorank compare --rows encoder,ranker,metric --columns reference --ci",
        f"phenorank sql \"select * from comparison\"   (or open {ctx.obj['db']} with duckdb)"])


COMMANDS = [ingest, demo]
