"""Commands that bring images in: ``ingest`` and ``demo``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..core import synthetic_plate
from ..core.ingest import ingest as run_ingest
from ..core.manifest import read_manifest
from ..core.pipeline import GridSpec, run_grid
from ..core.preprocess import PreprocessParams
from ..core.progress import progress_bar, progress_steps
from ..registry import get_registry
from .common import err, friendly_errors, recorded_run, resolve_day, show, size_option
from .results import print_comparison, print_top_treatments


@click.command()
@click.argument("image_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with path, well, day, condition (+ optional columns). Default: IMAGE_DIR/manifest.csv.")
@click.option("--loader", default="tiff-stack", show_default=True, help="Loader plugin that reads the files.")
@size_option
@click.pass_context
@friendly_errors
def ingest(ctx, image_dir: Path, manifest: Path | None, loader: str, size: int) -> None:
    """Read image stacks, crop around the object, and store crops and metadata.

    Paths in the manifest are relative to IMAGE_DIR. Files that cannot be used are recorded in
    the `rejects` table with the reason; the others are ingested. Re-running is cheap: files
    already ingested with the same preprocessing are recognised by their content hash.

    \b
    Example:
        phenorank ingest plate1/ --manifest plate1/manifest.csv
    """
    entries = read_manifest(manifest or image_dir / "manifest.csv", image_dir)
    plugin = get_registry().create("loader", loader)
    params = PreprocessParams(size=size)
    with recorded_run(ctx, "ingest", {"image_dir": str(image_dir), "loader": loader, "size": size}) as (store, run_id):
        with progress_bar("ingest", len(entries)) as advance:
            report = run_ingest(entries, plugin, store, run_id, params, advance)
    err.print(f"ingested {report.ingested}, unchanged {report.cached}, rejected {len(report.rejected)} "
              f"of {len(entries)} files into {ctx.obj['db']}")
    if report.rejected:
        show(["file", "reason"], report.rejected, title="Rejected files (also in table `rejects`)")


@click.command()
@click.option("--out", "out_dir", default="phenorank-demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the generated plate.")
@click.option("--full-size", is_flag=True, help="Generate full 2054x2456 images (slow) instead of 200x240.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the generated plate.")
@click.pass_context
@friendly_errors
def demo(ctx, out_dir: Path, full_size: bool, seed: int) -> None:
    """Run everything on a generated SYNTHETIC plate: generate, ingest, rank, evaluate, compare.

    The plate imitates a 96-well spheroid experiment (60 inner wells, day 7 and day 10, controls,
    reference treatments and a drug screen); the true effect of each well is in its manifest, so
    the comparison shows how well each method recovers it. Running it again reuses what is stored.
    """
    started = time.perf_counter()
    height, width = synthetic_plate.FULL_SIZE if full_size else synthetic_plate.DEMO_SIZE
    spec = synthetic_plate.PlateSpec(height=height, width=width, seed=seed)
    stamp = out_dir / "spec.json"
    manifest = out_dir / "manifest.csv"
    if not (manifest.exists() and stamp.exists() and json.loads(stamp.read_text()) == spec.__dict__):
        with progress_bar("generate synthetic plate", synthetic_plate.N_IMAGES) as advance:
            synthetic_plate.generate_plate(out_dir, spec, advance)
        stamp.write_text(json.dumps(spec.__dict__))
    err.print(f"[bold]SYNTHETIC[/] demo plate in {out_dir}/ ({height}x{width} px, seed {seed})")
    ctx.invoke(ingest, image_dir=out_dir, manifest=manifest, loader="tiff-stack", size=96)
    grid = GridSpec(encoders=["raw", "morphometrics"], metrics=["cosine", "euclidean"], rankers=["centroid"],
                    references=["control"], evaluators=["ranking-accuracy", "rank-correlation"],
                    preprocess_key=PreprocessParams().key)
    with recorded_run(ctx, "demo", {"out": str(out_dir), "full_size": full_size, "seed": seed}) as (store, run_id):
        grid.day = resolve_day(store, "last")
        with progress_steps() as steps:
            report = run_grid(store, get_registry(), grid, run_id, progress=steps)
        for problem in report.problems:
            err.print(f"[yellow]skipped[/] {problem}")
        print_comparison(store, "table")
        print_top_treatments(store, report.rankings, "table")
    err.print(f"done in {time.perf_counter() - started:.1f} s. Query the results: "
              f"phenorank sql \"select * from comparison\"  (or open {ctx.obj['db']} with duckdb)")


COMMANDS = [ingest, demo]
