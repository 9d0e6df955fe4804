"""Commands for cell images: ``objects`` (per-cell crops) and ``aggregate`` (crop -> image ->
sample), and the cell demo (``phenorank demo --kind cells``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..core import synthetic_cells
from ..core.aggregate import HOW, aggregate as run_aggregate
from ..core.objects import CropParams, ObjectsError, find_objects, objects_key
from ..core.pipeline import embed as run_embed, evaluate as run_evaluate
from ..core.progress import progress_bar, progress_steps
from ..core.training import train as run_train
from ..registry import PluginError, TrainConfig, get_registry
from .common import (cluster_executor, cluster_option, err, finish_demo, friendly_errors, param_option, parse_params, recorded_run, resolve_crops, show, size_option,
                     split)
from .profiles import selected_sets


@click.command()
@click.option("--segmenter", default="watershed", show_default=True,
              help="watershed, or cellpose (the extra phenorank[cellpose], with your model file: "
                   "-p cellpose.model=FILE).")
@click.option("--side", default=64, show_default=True, help="Crop side in image pixels, centred on each object.")
@click.option("--min-area", default=20, show_default=True, help="Objects smaller than this (pixels) are left out.")
@click.option("--area-quantiles", default="0,1", show_default=True, metavar="LOW,HIGH",
              help="Keep objects whose area lies between these quantiles (seed 004 used 0.05,0.95).")
@click.option("--mask-outside", is_flag=True, help="Zero the pixels outside each object's mask (seed 004).")
@click.option("--normalize", type=click.Choice(["none", "minmax"]), default="none", show_default=True,
              help="minmax: scale each crop's channels to their own range (seed 004).")
@click.option("--crop", "crop_mode", type=click.Choice(["centred", "box"]), default="centred", show_default=True,
              help="centred: a --side square around each object; box: its bounding box made square with black "
                   "bars, scaled to --size (seed 004).")
@click.option("--area-by", default="", metavar="COLUMN",
              help="Take the --area-quantiles per value of this column, e.g. condition (seed 004: per class).")
@click.option("--max-black", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Leave out crops with a larger fraction of black pixels (seed 004: empty space segmented).")
@click.option("--loader", help="Loader that reads the files again (default: the one that ingested them).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads that segment images in parallel.")
@cluster_option
@size_option
@param_option
@click.pass_context
@friendly_errors
def objects(ctx, segmenter, side, min_area, area_quantiles, mask_outside, normalize, crop_mode, area_by, max_black,
            loader, workers, cluster, size, params) -> None:
    """Find the cells (or nuclei) in every ingested channel image and store one crop per object.

    The crops form a crop set of their own: embed them with `--crops objects`, then average them
    per image or sample with `phenorank aggregate`. Each object keeps its parent image, box and
    area (view `items`). Images that cannot be read are recorded in `rejects`; the rest go on.

    \b
    Examples:
        phenorank objects -p watershed.channel=2 -p watershed.min_distance=5
        phenorank objects -p watershed.threshold=gmm --mask-outside --normalize minmax
        phenorank objects --segmenter cellpose -p cellpose.model=cyto3 -p cellpose.nucleus_channel=2 \
            --crop box --mask-outside --area-quantiles 0.05,0.95 --area-by condition --max-black 0.6
    """
    overrides = parse_params(params)
    registry = get_registry()
    plugin = registry.create("segmenter", segmenter, overrides.get(segmenter))
    try:
        low, high = (float(v) for v in split(area_quantiles))
    except ValueError:
        raise click.BadParameter(f"{area_quantiles!r}: give two numbers, e.g. 0.05,0.95",
                                 param_hint="--area-quantiles") from None
    crop = CropParams(side=side, size=size, min_area=min_area, area_quantiles=(low, high), mask_outside=mask_outside,
                      normalize=normalize, crop=crop_mode, area_by=area_by, max_black=max_black)
    with recorded_run(ctx, "objects", {"segmenter": segmenter, "params": overrides, **crop.__dict__}) as (store, run_id):
        image_key = resolve_crops(store, "images", size)
        image_set = next((s for s in store.crop_sets("image") if s["preprocess_key"] == image_key), None)
        stored = (image_set or {}).get("params", {})
        reader = (registry.create("loader", loader, overrides.get(loader, {})) if loader else
                  registry.create("loader", stored.get("loader", "tiff-channels"), stored.get("loader_params", {})))
        pending = len(store.images_to_segment(image_key, objects_key(image_key, plugin, crop)))
        try:
            chain = image_chain(store, image_key, stored, reader) if stored.get("preprocess") and pending else None
            with cluster_executor(cluster, loader=reader, segmenter=plugin) as remote, \
                    progress_bar(f"objects ({segmenter})", pending) as advance:
                key, report = find_objects(store, image_key, reader, plugin, crop, run_id, workers, advance, remote,
                                           chain)
        except ObjectsError as exc:
            raise click.ClickException(str(exc)) from None
        counts = list(store.object_counts(key).values())
    err.print(f"segmented {report.images} image(s) now ({report.cached} already): {report.objects} objects kept, "
              f"{report.filtered} left out by area or black pixels; {sum(counts)} objects in {len(counts)} images "
              f"in crop set {key}")
    if report.problems:
        show(["file", "reason"], report.problems, title="Images that could not be segmented (also in `rejects`)")


def image_chain(store, image_key: str, stored: dict, reader):
    """The preprocessing chain the image crop set was made with, refitted on its files
    (``find_objects`` refuses it when that does not reproduce the set's key)."""
    from .data import fit_preprocessing

    steps = [get_registry().create("preprocessor", s["name"], s["params"]) for s in stored["preprocess"]]
    records = store.image_records(image_key)
    entries = [_Entry(r["metadata"]) for r in records.values() if r["has_crop"]]
    err.print(f"image crop set {image_key} was preprocessed ({' -> '.join(s.name for s in steps)}): the same steps "
              "are applied before segmenting")
    return fit_preprocessing(steps, entries, reader)


class _Entry:
    """A stored image as the preprocessing fit reads it: its location and metadata."""

    def __init__(self, metadata: dict):
        self._metadata, self.location = metadata, metadata["path"]

    def metadata(self) -> dict:
        return self._metadata


@click.command()
@click.option("--encoder", "encoders", required=True, help="Encoder name(s) whose embeddings to aggregate.")
@click.option("--head", help="Only this head (default: every head).")
@click.option("--from", "source_level", default="object", show_default=True,
              help="Level of the embeddings to aggregate: object, image, or an aggregate such as image:mean.")
@click.option("--to", "target", default="image", show_default=True,
              help="image (objects -> their image) or metadata column(s) to group by, e.g. sample or donor,sample.")
@click.option("--how", type=click.Choice(HOW), default="mean", show_default=True,
              help="How the members' embeddings become one per group (per feature).")
@click.option("--trim", default=0.1, show_default=True, help="Fraction cut at each end by trimmed-mean.")
@click.option("--transforms", "chain", default="none", show_default=True,
              help="Aggregate the set made by this transform chain (e.g. robustize,spherize), or none.")
@click.pass_context
@friendly_errors
def aggregate(ctx, encoders, head, source_level, target, how, trim, chain) -> None:
    """Aggregate embeddings: object crops -> images -> samples (mean, median or trimmed mean).

    The result is an embedding set like any other (level e.g. `image:mean`, `sample:median`):
    evaluate or rank it with `--level`.

    \b
    Examples:
        phenorank aggregate --encoder raw,morphometrics --to image
        phenorank aggregate --encoder raw --from image:mean --to sample --how median
        phenorank evaluate --evaluator clustering-kmeans --level sample:median
        phenorank aggregate --encoder profiles:screen --from well --transforms robustize,spherize \\
                            --to treatment,concentration --how median
    """
    rows = []
    with recorded_run(ctx, "aggregate", {"encoders": encoders, "head": head, "from": source_level, "to": target,
                                         "how": how, "trim": trim}) as (store, run_id):
        wanted_chain = ",".join(split(chain)) if chain.strip() != "none" else None
        for token in split(encoders):  # profiles:NAME names an imported dataset
            for source in selected_sets(store, token, head, source_level, wanted_chain):
                result, n = run_aggregate(store, source, target, how, run_id, trim)
                rows.append((result.encoder, result.head, result.transforms or "none", source.level, result.level, n,
                             result.embedding_set_id))
    show(["encoder", "head", "transforms", "from", "level", "vectors", "embedding set"], rows)


# k-means on the first two principal components, as seed 001's table 6.1; the SVM as its 5-fold
# grouped cross-validation
CELL_EVALUATORS = {"clustering-kmeans": {"reduce": "pca", "components": 2}, "clustering-agglomerative": {},
                   "clustering-gmm": {}, "svm": {}}

# The encoders the demo trains: parameters, --positives / --label, batch size. The classifier
# keeps seed 001's batch of 8 but has 3 blocks from 64 channels (seed 001: 8 from 256, whose
# last blocks leave 2 channels of a 96-px crop) and 20x its learning rate: a few epochs on a CPU.
DEMO_MODELS = (("simclr", {}, {"positives": "sample"}, 64, "positives: other cells of the sample"),
               ("classifier", {"width": 64, "blocks": 3, "lr": 1e-3}, {"label": "condition"}, 8, "label: condition"),
               ("dim", {"lr": 1e-3}, {"positives": "sample"}, 64, "Deep InfoMax, positives: the sample"))


def demo_models(store, registry, key: str, epochs: int, seed: int, run_id: str) -> list:
    """Train (or find) the demo's models on the object crops; their encoders, ready to embed."""
    from ..core.training import load_trained

    encoders = []
    for name, params, how, batch_size, said in DEMO_MODELS:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, validation=0.2 if "label" in how else 0.0)
        with progress_bar(f"train {name} ({epochs} epochs, {said})", epochs) as advance:
            config.on_epoch = advance
            model, _ = run_train(store, registry, name, params, "sweet", {}, config, key, 96, run_id, **how)
        encoders.append(load_trained(store, registry, model))
    return encoders


TABLE_6_1 = ("level = 'image:mean' AND ((evaluator = 'clustering-kmeans' AND name IN ('homogeneity', 'completeness', "
             "'v_measure', 'davies_bouldin', 'silhouette')) OR (evaluator = 'svm' AND name = 'accuracy'))")


def seed_table(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """The measures of table 6.1 in the seed's order, after what tells the embeddings apart
    (encoder, model, head, and whatever else the comparison needed, level aside: it is fixed)."""
    measures = ["homogeneity", "completeness", "v_measure", "davies_bouldin", "silhouette", "accuracy"]
    keys = [c for c in columns if c not in measures and c not in ("augmentation", "level")]
    picked = [columns.index(c) for c in keys + measures if c in columns]
    names = {"v_measure": "V-measure", "davies_bouldin": "Davies-Bouldin", "accuracy": "SVM accuracy"}
    return [names.get(columns[i], columns[i]) for i in picked], [tuple(r[i] for i in picked) for r in rows]


def cells_demo(ctx, out_dir: Path, seed: int, epochs: int) -> None:
    """Generate cell images, ingest, find objects, embed, aggregate, cluster, print the table."""
    from .data import ingest

    started = time.perf_counter()
    spec = synthetic_cells.CellSpec(seed=seed)
    stamp = out_dir / "spec.json"
    wanted = {**spec.__dict__, "classes": list(synthetic_cells.CLASSES)}
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        with progress_bar("generate synthetic cell images", spec.n_images) as advance:
            synthetic_cells.generate_cells(out_dir, spec, advance)
        stamp.write_text(json.dumps(wanted))
    err.print(f"[bold]SYNTHETIC[/] cell images in {out_dir}/ ({spec.n_images} fields of view, "
              f"{len(synthetic_cells.CLASSES)} classes, seed {seed})")
    ctx.invoke(ingest, image_dir=out_dir, folders=True, pattern=synthetic_cells.PATTERN, loader="tiff-channels")
    # Cells are segmented on the actin channel; watershed splits cells that touch.
    ctx.invoke(objects, params=("watershed.channel=0", "watershed.min_distance=6"))
    registry = get_registry()
    with recorded_run(ctx, "demo", {"kind": "cells", "out": str(out_dir), "seed": seed, "epochs": epochs}) as (store, run_id):
        key = resolve_crops(store, "objects", 96)
        encoders = [registry.create("encoder", "raw"), registry.create("encoder", "morphometrics", {"polarity": "bright"})]
        if epochs:
            encoders += demo_models(store, registry, key, epochs, seed, run_id)
        sets = []
        with progress_steps() as steps:
            for encoder in encoders:
                made, _ = run_embed(store, encoder, key, run_id,
                                    progress=lambda total, name=encoder.name: steps(f"embed {name}", total))
                sets += made
        levels = []
        for source in sets:
            per_image, _ = run_aggregate(store, source, "image", "mean", run_id)
            per_sample, _ = run_aggregate(store, per_image, "sample", "median", run_id)
            levels += [per_image, per_sample]
        evaluators = [registry.create("evaluator", n, CELL_EVALUATORS[n]) for n in CELL_EVALUATORS]
        robustness = registry.create("evaluator", "robustness", {"max_images": 100})
        # robustness re-embeds every crop 25 times: the demo spends that on the untrained encoders and SimCLR
        jobs = [(e, es) for es in sets + levels for e in evaluators] + \
            [(robustness, es) for es in sets if es.encoder in ("raw", "morphometrics", "simclr")]
        with progress_bar("evaluate", len(jobs)) as advance:
            for evaluator, es in jobs:
                try:
                    run_evaluate(store, evaluator, run_id, embedding_set=es)
                except PluginError as exc:
                    err.print(f"[yellow]skipped[/] {evaluator.name} on {es.encoder}/{es.head} {es.level}: {exc}")
                advance(1)
        where = "evaluator LIKE 'clustering-%'"
        columns, rows = store.query(store.pivot_sql(["encoder", "head", "level"], ["evaluator"], "ari", where=where))
        show(columns, rows, title="Adjusted Rand index of the clusters against the 3 classes (1 = the classes exactly), "
                                  "per embedding and level")
        columns, rows = store.query(store.pivot_sql(["encoder", "head", "level"], ["evaluator"], "nmi", where=where))
        show(columns, rows, title="Normalised mutual information")
        columns, rows = seed_table(*store.comparison_pivot("embeddings", where=TABLE_6_1))
        show(columns, rows, title="Seed 001's table 6.1 per image: k-means (k = 3) on 2 principal components against "
                                  "the classes; the SVM's grouped 5-fold accuracy")
        columns, rows = store.query(store.pivot_sql(
            ["encoder", "head"], ["evaluator"], "movement_mean", where="evaluator = 'robustness'"))
        show(columns, rows, title="Robustness: mean movement of object embeddings under 5 corruptions x 5 strengths "
                                  "(1 = as far as a typical other cell)")
    finish_demo(ctx, out_dir, started, [
        "phenorank compare --rows encoder,head,level --columns evaluator --value v_measure",
        "phenorank sql \"select * from comparison where evaluator = 'robustness'\""])


COMMANDS = [objects, aggregate]
