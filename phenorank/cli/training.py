"""The ``train`` command: self-supervised encoders on the ingested images."""

from __future__ import annotations

import json

import click

from ..core.progress import progress_bar
from ..core.training import train as run_train
from ..registry import TrainConfig, get_registry
from .common import (crops_option, err, friendly_errors, param_option, parse_params, recorded_run, resolve_crops, show,
                     size_option)

# Named training set-ups: option values and encoder parameters a recipe stands for. An option
# or -p given on the command line wins over the recipe.
RECIPES = {
    # seed 000 section 7.3: ResNet18 from ImageNet weights, 4 x 128 projection head to 20, 245
    # epochs of batches of 64, 96-px views cut from full-resolution crops (here 512 px, see the
    # README), 20% of the images held out for the per-epoch diagnostics of section 7.4
    "seed000": {"options": {"epochs": 245, "batch_size": 64, "size": 96, "crop_size": 512, "validation": 0.2},
                "params": {"simclr": {"hidden_layers": 4, "hidden_dim": 128, "projection_dim": 20, "init": "imagenet",
                                      "temperature": 0.07, "lr": 5e-4, "weight_decay": 1e-4}}},
}


@click.command()
@click.option("--encoder", default="simclr", show_default=True,
              help="A trainable encoder: simclr, byol, reconstruction-cae, dim, classifier (with --label).")
@click.option("--augmentation", default="sweet", show_default=True,
              help="strong, sweet, resize, sweet-no-contrast, resize-no-contrast (seed 000 section 7.2).")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1), help="Passes over all images.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2),
              help="Images per optimizer step (contrastive pairs come from within a batch).")
@click.option("--seed", default=0, show_default=True, help="Fixes initialisation, augmentations and order (CPU runs repeat exactly).")
@click.option("--accelerator", default="auto", show_default=True, help="cpu, gpu, ... (PyTorch Lightning).")
@click.option("--devices", default="auto", show_default=True, help="How many devices, or which (Lightning).")
@click.option("--strategy", default="auto", show_default=True,
              help="Lightning's strategy, e.g. ddp with --devices 2: data-parallel over 2 processes, forked from "
                   "a fresh process of their own; this one stays the store's only writer.")
@click.option("--num-workers", default=0, show_default=True, help="Data-loading worker processes.")
@click.option("--resume", is_flag=True, help="Continue the same training from its last checkpoint.")
@click.option("--force", is_flag=True, help="Train again even if this exact model is stored.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)),
              help="A document's whole set-up; seed000 = the thesis's SimCLR (245 epochs, ImageNet start, 4 x 128 "
                   "head, views cut from 512-px crops: ingest with --size 512 too). Options given here win.")
@click.option("--crop-size", type=click.IntRange(8, 2048), metavar="PX",
              help="Cut the --size views from the crops ingested at this side (default: --size). Larger crops "
                   "make random crops downsampled, never upsampled, as in seed 000.")
@click.option("--validation", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Hold out this fraction of the images and print seed 000's diagnostics on them every epoch "
                   "(val_*: training augmentation; inference_*: resize only).")
@click.option("--positives", metavar="COLUMN",
              help="Multi-view positives (seed 002): pair two different images with the same value in this "
                   "metadata column (e.g. sample: two fields of view) instead of two augmentations of one image.")
@click.option("--label", metavar="COLUMN",
              help="Supervised encoders (classifier): the metadata column to learn, e.g. condition.")
@click.option("--split-by", default="auto", show_default=True, metavar="COLUMN",
              help="The --validation split keeps each value of this column on one side (sample, donor, well); "
                   "auto: donor, else sample, else well, else each object's image.")
@size_option
@crops_option
@param_option
@click.pass_context
@friendly_errors
def train(ctx, encoder, augmentation, epochs, batch_size, seed, accelerator, devices, strategy, num_workers,
          resume, force, recipe, crop_size, validation, positives, label, split_by, size, crops, params) -> None:
    """Train an encoder on every ingested image and record the model in the store.

    Prints loss and seed 000's pair diagnostics per epoch (top-1 / top-5: how often a view's
    partner is its nearest / among its 5 nearest in the batch; mean position of the partner).
    Embed with it through `phenorank run --encoders simclr` (every trained simclr model),
    `simclr:sweet` (the newest trained with sweet) or the model id.

    \b
    Example:
        phenorank train --encoder simclr --augmentation sweet --epochs 50
        phenorank run --encoders raw,morphometrics,simclr:sweet
        phenorank ingest IMAGES --size 512 && phenorank train --recipe seed000
    """
    overrides = parse_params(params, [encoder, augmentation])
    if recipe:
        given = {name for name in ctx.params
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
        chosen = RECIPES[recipe]
        values = {k: v for k, v in chosen["options"].items() if k not in given}
        epochs, batch_size, size = values.get("epochs", epochs), values.get("batch_size", batch_size), \
            values.get("size", size)
        crop_size, validation = values.get("crop_size", crop_size), values.get("validation", validation)
        overrides[encoder] = {**chosen["params"].get(encoder, {}), **overrides.get(encoder, {})}
        overrides[encoder] = offline_start(encoder, overrides[encoder])
    registry = get_registry()
    if encoder in registry.names("encoder") and registry.get("encoder", encoder).supervised \
            and ctx.get_parameter_source("validation") is click.core.ParameterSource.DEFAULT:
        validation = 0.2  # seed 001 held out 20% of the samples and kept the best epoch's weights
        err.print(f"{encoder}: 20% of the --split-by groups held out for validation "
                  "(--validation 0 trains on all)")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, accelerator=accelerator,
                         devices=int(devices) if devices.isdigit() else devices, strategy=strategy,
                         num_workers=num_workers, resume=resume, validation=validation)
    run_params = {"encoder": encoder, "augmentation": augmentation, "size": size, "crops": crops,
                  "crop_size": crop_size, "recipe": recipe, "positives": positives, "label": label,
                  "split_by": split_by, "params": overrides,
                  **{k: v for k, v in config.__dict__.items() if k not in ("on_epoch", "on_metrics")}}
    with recorded_run(ctx, "train", run_params) as (store, run_id):
        with progress_bar(f"train {encoder} ({augmentation})", epochs) as advance:
            config.on_epoch = advance
            config.on_metrics = lambda metrics: err.print(epoch_line(metrics, epochs))
            record, trained = run_train(store, registry, encoder, overrides.get(encoder, {}), augmentation,
                                        overrides.get(augmentation, {}), config,
                                        source_crops(store, crops, size, crop_size), size, run_id, force=force,
                                        positives=positives, label=label, split_by=split_by)
    history = json.loads(record["history"]) if isinstance(record["history"], str) else record["history"]
    measures = [k for k in DIAGNOSTICS if history and k in history[0]]
    show(["epoch", *measures], [(h["epoch"], *(h.get(k) for k in measures)) for h in history],
         title=f"{record['encoder']} with {record['augmentation']}")
    err.print(f"{'trained' if trained else 'already trained:'} model {record['model_id']} on {record['n_images']} images "
              f"({record['device']}, {record['seconds']:.1f} s); weights {record['checkpoint']}")


DIAGNOSTICS = [prefix + name for prefix in ("", "val_", "inference_")
               for name in ("loss", "accuracy", "mi_local", "mi_global", "prior", "top1", "top5", "mean_position")]


def offline_start(encoder: str, params: dict) -> dict:
    """An ImageNet start for a ResNet18 whose weights are nowhere on this machine (phenorank never
    downloads) comes from EfficientNet-Lite0's packaged ImageNet weights instead, said aloud and
    kept in the model's parameters; -p ENCODER.weights=FILE restores the document's ResNet18."""
    from ..plugins.encoders.imagenet import cached_weights

    if params.get("init") != "imagenet" or params.get("backbone", "resnet18") != "resnet18" \
            or params.get("weights") or cached_weights("resnet18"):
        return params
    err.print(f"[yellow]no ResNet18 ImageNet weights on this machine: the {encoder} backbone starts from "
              f"EfficientNet-Lite0's ImageNet weights (installed with phenorank); pass -p {encoder}.weights=FILE "
              "for the document's ResNet18[/]")
    return {**params, "backbone": "efficientnet-lite0"}


def source_crops(store, crops: str, size: int, crop_size: int | None) -> str:
    """The crop set the views are cut from: ``crops`` at ``crop_size`` (default: the view size)."""
    from ..core.pipeline import PipelineError

    key = resolve_crops(store, crops, crop_size or size)
    if crop_size and crop_size != size and crops == "images" and not store.crop_ids(key):
        raise PipelineError(f"no images ingested at {crop_size} px to cut the {size}-px views from: run "
                            f"`phenorank ingest ... --size {crop_size}` as well (or give --crop-size {size})")
    return key


def epoch_line(metrics: dict, epochs: int) -> str:
    """One finished epoch as a log line: its loss and pair diagnostics (and held-out ones)."""
    names = {"loss": "loss", "accuracy": "accuracy %", "mi_local": "local MI loss", "mi_global": "global MI loss",
             "prior": "prior loss", "top1": "top-1", "top5": "top-5", "mean_position": "mean position"}
    said = [f"{prefix.replace('_', ' ')}{label} {metrics[prefix + key]:.4g}"
            for prefix in ("", "val_", "inference_") for key, label in names.items() if prefix + key in metrics]
    return f"epoch {int(metrics['epoch']) + 1}/{epochs}: " + ", ".join(said)


COMMANDS = [train]
