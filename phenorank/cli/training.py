"""The ``train`` command: self-supervised encoders on the ingested images."""

from __future__ import annotations

import json

import click

from ..core.progress import progress_bar
from ..core.training import train as run_train
from ..registry import TrainConfig, get_registry
from .common import (crops_option, err, friendly_errors, param_option, parse_params, recorded_run, resolve_crops, show,
                     size_option)


@click.command()
@click.option("--encoder", default="simclr", show_default=True, help="A trainable encoder: simclr, byol, cae.")
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
@click.option("--positives", metavar="COLUMN",
              help="Multi-view positives (seed 002): pair two different images with the same value in this "
                   "metadata column (e.g. sample: two fields of view) instead of two augmentations of one image.")
@size_option
@crops_option
@param_option
@click.pass_context
@friendly_errors
def train(ctx, encoder, augmentation, epochs, batch_size, seed, accelerator, devices, strategy, num_workers,
          resume, force, positives, size, crops, params) -> None:
    """Train an encoder on every ingested image and record the model in the store.

    Prints loss and seed 000's pair diagnostics per epoch (top-1 / top-5: how often a view's
    partner is its nearest / among its 5 nearest in the batch; mean position of the partner).
    Embed with it through `phenorank run --encoders simclr` (every trained simclr model),
    `simclr:sweet` (the newest trained with sweet) or the model id.

    \b
    Example:
        phenorank train --encoder simclr --augmentation sweet --epochs 50
        phenorank run --encoders raw,morphometrics,simclr:sweet
    """
    overrides = parse_params(params, [encoder, augmentation])
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, accelerator=accelerator,
                         devices=int(devices) if devices.isdigit() else devices, strategy=strategy,
                         num_workers=num_workers, resume=resume)
    run_params = {"encoder": encoder, "augmentation": augmentation, "size": size, "crops": crops,
                  "positives": positives, "params": overrides,
                  **{k: v for k, v in config.__dict__.items() if k not in ("on_epoch", "on_metrics")}}
    with recorded_run(ctx, "train", run_params) as (store, run_id):
        with progress_bar(f"train {encoder} ({augmentation})", epochs) as advance:
            config.on_epoch = advance
            config.on_metrics = lambda metrics: err.print(epoch_line(metrics, epochs))
            record, trained = run_train(store, get_registry(), encoder, overrides.get(encoder, {}), augmentation,
                                        overrides.get(augmentation, {}), config, resolve_crops(store, crops, size),
                                        size, run_id, force=force, positives=positives)
    history = json.loads(record["history"]) if isinstance(record["history"], str) else record["history"]
    measures = [k for k in ("loss", "top1", "top5", "mean_position") if history and k in history[0]]
    show(["epoch", *measures], [(h["epoch"], *(h.get(k) for k in measures)) for h in history],
         title=f"{record['encoder']} with {record['augmentation']}")
    err.print(f"{'trained' if trained else 'already trained:'} model {record['model_id']} on {record['n_images']} images "
              f"({record['device']}, {record['seconds']:.1f} s); weights {record['checkpoint']}")


def epoch_line(metrics: dict, epochs: int) -> str:
    """One finished epoch as a log line: its loss and pair diagnostics."""
    names = {"loss": "loss", "top1": "top-1", "top5": "top-5", "mean_position": "mean position"}
    said = [f"{label} {metrics[key]:.4g}" for key, label in names.items() if key in metrics]
    return f"epoch {int(metrics['epoch']) + 1}/{epochs}: " + ", ".join(said)


COMMANDS = [train]
