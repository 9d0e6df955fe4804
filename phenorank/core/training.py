"""Training trainable encoders on ingested images, and finding trained models again.

A model is keyed by a hash of what made it (encoder and augmentation with their parameters, the
training settings, the preprocessing and the images), so training the same thing twice reuses
the stored model, and ``--resume`` continues an interrupted training from its last checkpoint.
Weights live in a folder next to the store; the ``models`` table records where.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..registry.contracts import Encoder, PluginError, TrainConfig
from ..registry.manager import Registry
from .crop_file import CropFile
from .pipeline import PipelineError, code_of, digest, identity
from .statistics import split_units
from .store import Store


def models_folder(store: Store) -> Path:
    path = Path(store.path)
    return path.parent / f"{path.stem}-models"


def train(store: Store, registry: Registry, encoder_name: str, encoder_params: dict, augmentation_name: str,
          augmentation_params: dict, config: TrainConfig, preprocess_key: str, size: int, run_id: str,
          force: bool = False, positives: str | None = None, label: str | None = None,
          split_by: str = "auto") -> tuple[dict, bool]:
    """Train (or find already trained) one model; returns its ``models`` record and whether it
    was trained now. The views are ``size`` pixels, cut from the crops of ``preprocess_key``
    (which may be larger: seed 000 cut its random crops from the full-resolution image).
    ``positives`` names a metadata column (e.g. ``sample``): positive pairs are then two
    different images with the same value there (multi-view, seed 002). A supervised encoder
    learns the metadata column ``label``; ``split_by`` names the column whose values a validation
    split keeps whole (``auto``: donor, sample, well or each object's image, ``split_units``)."""
    encoder = registry.create("encoder", encoder_name, {k: v for k, v in encoder_params.items() if k != "model"})
    if not encoder.trainable:
        trainable = [n for n in registry.names("encoder") if registry.get("encoder", n).trainable]
        raise PluginError(f"encoder {encoder_name!r} is not trainable (trainable: {', '.join(trainable)})")
    augmentation = registry.create("augmentation", augmentation_name, augmentation_params)
    ids = store.crop_ids(preprocess_key)
    if not ids:
        raise PipelineError(f"no ingested images with preprocessing {preprocess_key}: run `phenorank ingest` first")
    config.view_size = size
    settings = {"epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed, "view_size": size,
                "validation": config.validation}
    if positives:
        config.groups = store.load_samples(ids)[positives]
        if any(v is None or str(v) in ("", "nan") for v in config.groups):
            raise PipelineError(f"--positives {positives}: some images have no value in that column")
        settings["positives"] = positives
    if encoder.supervised or label:
        _supervision(store, encoder, ids, label, split_by, positives, config, settings)
    model_id = digest("model", identity(encoder), identity(augmentation), settings, preprocess_key, digest(ids))
    known = store.model(model_id)
    if known and not force and not config.resume and Path(known["checkpoint"]).is_file():
        return known, False
    folder = models_folder(store) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    config.checkpoint_dir = str(folder / "checkpoints")
    if config.resume and not (Path(config.checkpoint_dir) / "last.ckpt").is_file():
        raise PipelineError(f"no checkpoint to resume from ({config.checkpoint_dir} holds none: this training never "
                            "finished an epoch); train without --resume")
    # Streamed: the crops go to a 16-bit file next to the model, read back one per item, so
    # training memory is bounded by the batch, not the number of crops.
    crops = CropFile.from_store(store, ids, preprocess_key, folder / "crops.u16")
    started = time.perf_counter()
    try:
        if str(config.strategy).startswith("ddp"):
            history = _fit_in_fresh_process(encoder, crops, augmentation, size, config, folder / "model.pt")
        else:
            history = encoder.fit(crops, augmentation.build(size), config)
    finally:
        crops.close()
        Path(crops.path).unlink(missing_ok=True)
    weights = folder / "model.pt"
    encoder.save(str(weights))
    record = {
        "model_id": model_id, "encoder": encoder.name, "augmentation": augmentation.name,
        "encoder_params": encoder.params, "augmentation_params": augmentation.params,
        "train_config": {**settings, "accelerator": config.accelerator, "devices": str(config.devices),
                         "strategy": config.strategy,
                         "world_size": int(history[-1].get("world_size", 1)) if history else 1},
        "preprocess_key": preprocess_key, "n_images": len(ids), "checkpoint": str(weights.resolve()),
        "code": code_of(encoder),
        "history": history, "device": history[-1].get("device", "") if history else "",
        "seconds": time.perf_counter() - started, "run_id": run_id,
    }
    if config.validation and getattr(encoder, "held_out", None):  # which groups were held out: anyone can
        record["train_config"]["held_out"] = encoder.held_out         # check that nothing leaked
    store.write_model(record)
    return store.model(model_id), True


def _supervision(store: Store, encoder: Encoder, ids: list[str], label: str | None, split_by: str,
                 positives: str | None, config: TrainConfig, settings: dict) -> None:
    """The labels and split units of a supervised training, into ``config`` and the model's key."""
    if not encoder.supervised:
        raise PluginError(f"encoder {encoder.name!r} learns no label: --label is for supervised encoders (classifier)")
    if not label:
        raise PluginError(f"encoder {encoder.name!r} learns a label: give --label COLUMN (e.g. condition)")
    if positives:
        raise PluginError(f"--positives pairs images for self-supervised encoders; {encoder.name!r} learns --label")
    samples = store.load_samples(ids)
    if label not in samples.columns:
        raise PipelineError(f"--label {label}: no such column; the items have {', '.join(sorted(samples.columns))}")
    labels = np.asarray(samples[label], dtype=object)
    missing = [i for i, v in zip(ids, labels) if v is None or str(v) in ("", "nan")]
    if missing:
        raise PipelineError(f"--label {label}: {len(missing)} item(s) have no value, e.g. {missing[0]}")
    try:
        units = split_units(samples, split_by)
    except KeyError as exc:
        raise PipelineError(f"--split-by: {exc.args[0]}") from None
    config.labels, config.split_groups = labels.astype(str), units.astype(str)
    settings.update(label=label, split_by=split_by)


def runnable_encoders(store: Store, registry: Registry) -> list[str]:
    """``--encoders all``: every encoder that needs no training, and every trainable one with a
    trained model in this store."""
    return [name for name in registry.names("encoder")
            if not registry.get("encoder", name).trainable or store.models(name)]


def trained_encoders(store: Store, registry: Registry, token: str, params: dict | None = None) -> list[Encoder]:
    """Encoders for one entry of ``--encoders``: a plain name; for a trainable encoder, every
    trained model of it (the newest per augmentation), ``NAME:AUGMENTATION`` (the newest such
    model), or a model id."""
    params = dict(params or {})
    name, _, augmentation = token.partition(":")
    if name not in registry.names("encoder"):
        model = store.model(token)
        if model is None:
            raise PluginError(f"no encoder named {name!r} and no trained model with that id "
                              f"(encoders: {', '.join(registry.names('encoder'))})")
        return [load_trained(store, registry, model, params)]
    if not registry.get("encoder", name).trainable:
        return [registry.create("encoder", name, params)]
    models = store.models(name, augmentation or None)
    if not models:
        raise PipelineError(f"no trained {token} model in {store.path}: run `phenorank train --encoder {name}"
                            + (f" --augmentation {augmentation}`" if augmentation else "`"))
    newest: dict[str, dict] = {}
    for model in models:  # newest first
        newest.setdefault(model["augmentation"], model)
    return [load_trained(store, registry, model, params) for model in newest.values()]


def load_trained(store: Store, registry: Registry, model: dict, params: dict | None = None) -> Encoder:
    import json

    saved = json.loads(model["encoder_params"]) if isinstance(model["encoder_params"], str) else model["encoder_params"]
    encoder = registry.create("encoder", model["encoder"], {**saved, **(params or {}), "model": model["model_id"]})
    if not Path(model["checkpoint"]).is_file():
        raise PipelineError(f"the weights of model {model['model_id']} are missing: {model['checkpoint']}")
    encoder.load(model["checkpoint"])
    return encoder


def _train_child(encoder, crops, augmentation, size: int, config, weights: str) -> None:
    """In a fresh interpreter: fork the ranks from here (Lightning's ddp_fork), whose only threads
    are its own; forking the command's process, with the threads of whatever ran before, can
    deadlock, and Lightning's plain ddp would start each rank by running the command again."""
    import dataclasses

    config = dataclasses.replace(config, strategy="ddp_fork" if config.strategy == "ddp" else config.strategy)
    encoder.fit(crops, augmentation.build(size), config)
    encoder.save(weights)


def _fit_in_fresh_process(encoder, crops, augmentation, size: int, config, weights: Path) -> list[dict]:
    """Data-parallel training in a spawned process; its rank 0 writes each epoch to
    ``history.json`` next to the checkpoints, which this process reads to show progress, then
    the trained weights are loaded back into ``encoder``."""
    import dataclasses
    import json
    import multiprocessing

    history_file = Path(config.checkpoint_dir) / "history.json"
    history_file.unlink(missing_ok=True)
    quiet = dataclasses.replace(config, on_epoch=None, on_metrics=None)
    child = multiprocessing.get_context("spawn").Process(
        target=_train_child, args=(encoder, crops, augmentation, size, quiet, str(weights)), daemon=False)
    child.start()
    said = 0

    def report() -> None:
        nonlocal said
        try:
            epochs = json.loads(history_file.read_text())
        except (OSError, ValueError):
            return
        for metrics in epochs[said:]:
            if config.on_metrics:
                config.on_metrics(metrics)
            if config.on_epoch:
                config.on_epoch(1)
        said = max(said, len(epochs))

    try:
        while child.is_alive():
            child.join(timeout=1.0)
            report()
    except BaseException:
        child.terminate()
        raise
    report()
    if child.exitcode != 0 or not weights.is_file():
        raise PipelineError(f"data-parallel training ({config.strategy}) failed in its process (exit code "
                            f"{child.exitcode}); its messages are above")
    encoder.load(str(weights))
    return json.loads(history_file.read_text()) if history_file.is_file() else []
