"""Contract checks for plugin authors, in the manner of scikit-learn's ``check_estimator``:

    from phenorank.testing import check_plugin

    def test_my_ranker():
        check_plugin(MyRanker)

``check_plugin`` runs on a class the checks every built-in plugin of its family passes (the
project's own tests call it on each registered plugin): the registration attributes, the
parameter conventions (defaults, unknown parameters refused, ``get_params`` / ``set_params``,
``sklearn.base.clone``), then the family's behaviour on a small synthetic input. A failure is an
``AssertionError`` that names the plugin and the broken promise. It returns the names of the
checks that ran.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .registry.contracts import (BASES, FAMILIES, Encoder, Evaluation, Plugin, PluginError, Samples, Subject,
                                 TrainConfig)


def check_plugin(cls: type[Plugin], params: dict[str, Any] | None = None) -> list[str]:
    """Run the contract checks of ``cls``'s family; ``params``: what an instance needs to work
    (a weights file, say). Raises AssertionError on the first broken promise."""
    where = f"{getattr(cls, '__name__', cls)!r}"
    _require(isinstance(cls, type) and issubclass(cls, Plugin), f"{where} is not a subclass of phenorank's Plugin")
    _require(cls.family in FAMILIES and issubclass(cls, BASES[cls.family]),
             f"{where}: family {cls.family!r} is not one of {', '.join(FAMILIES)}, or the class does not derive from "
             "that family's base class")
    where = f"{cls.family} {cls.name!r} ({cls.__name__})"
    done = [_check_registration(cls, where), _check_parameters(cls, where, params or {})]
    plugin = cls(**(params or {}))
    done += CHECKS[cls.family](plugin, where)
    return done


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _check_registration(cls: type[Plugin], where: str) -> str:
    _require(isinstance(cls.name, str) and cls.name.strip() == cls.name and cls.name,
             f"{where}: `name` must be a non-empty string without surrounding spaces")
    _require(isinstance(cls.defaults, dict), f"{where}: `defaults` must be a dict of parameter: default value")
    text = cls.description or (cls.__doc__ or "").strip()
    _require(bool(text), f"{where}: give a `description` or a docstring (phenorank plugins lists it)")
    return "registration"


def _check_parameters(cls: type[Plugin], where: str, params: dict[str, Any]) -> str:
    from sklearn.base import clone

    plugin = cls(**params)
    _require(plugin.get_params() == {**cls.defaults, **params},
             f"{where}: an instance's parameters must be its defaults updated with what it was given")
    try:
        cls(**params, __no_such_parameter__=1)
    except PluginError:
        pass
    else:
        raise AssertionError(f"{where}: an unknown parameter must raise PluginError (call super().__init__)")
    copy = clone(plugin)
    _require(type(copy) is cls and copy is not plugin and copy.get_params() == plugin.get_params(),
             f"{where}: sklearn.base.clone must build an equal, unfitted copy")
    if cls.defaults:
        key = next(iter(cls.defaults))
        _require(plugin.set_params(**{key: plugin.params[key]}) is plugin, f"{where}: set_params must return self")
    return "parameters"


def toy_samples(conditions: list[str], **columns) -> Samples:
    """Samples as the pipeline gives them, with the metadata plugins commonly read: condition,
    two plates (items alternate), one well each, a treatment (two compounds per class,
    ``control`` for the control), a concentration, a mechanism (``Metadata_MoA``: the condition),
    and a hold-out flag on every fourth item."""
    n = len(conditions)
    conditions = np.array(conditions, dtype=object)
    compound = np.array([c if c == "control" else f"{c}-{i % 2 + 1}" for i, c in enumerate(conditions)], dtype=object)
    base = {"condition": conditions, "plate": np.array([f"p{i % 2 + 1}" for i in range(n)], dtype=object),
            "well": np.array([f"{'ABCDEFGH'[i % 8]}{i // 8 + 1:02d}" for i in range(n)], dtype=object),
            "treatment": compound, "concentration": np.where(conditions == "control", 0.0, 1.0),
            "Metadata_MoA": conditions.copy(),
            "holdout": np.array(["true" if i % 4 == 3 and c != "control" else "false"
                                 for i, c in enumerate(conditions)], dtype=object)}
    return Samples(np.array([f"id{i}" for i in range(n)], dtype=object),
                   {**base, **{k: np.asarray(v) for k, v in columns.items()}})


def toy_images(n: int = 4, size: int = 32) -> np.ndarray:
    """Dark disks of growing size on a bright field: float32 (n, 3, size, size) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 8 + i) ** 2
        out[i] = np.where(disk, 0.2, 0.8)[None]
    return out


def _check_encoder(encoder: Encoder, where: str) -> list[str]:
    images = toy_images()
    _require(len(encoder.heads) > 0, f"{where}: `heads` must name at least one output")
    if encoder.trainable:
        from .registry import get_registry

        view = get_registry().create("augmentation", "sweet").build(images.shape[-1])
        labels = np.array(["a", "b"] * len(images)) if encoder.supervised else None  # a label to learn
        history = encoder.fit(np.concatenate([images] * 2), view,
                              TrainConfig(epochs=1, batch_size=4, accelerator="cpu", devices=1, labels=labels))
        _require(isinstance(history, list), f"{where}: fit must return one dict of metrics per epoch")
    out = encoder.embed(images)
    _require(set(out) == set(encoder.heads), f"{where}: embed must return exactly the heads {encoder.heads}")
    for head, vectors in out.items():
        _require(vectors.ndim == 2 and len(vectors) == len(images) and np.isfinite(vectors).all(),
                 f"{where}: head {head!r} must be a finite (N, D) array, one row per image")
        names = encoder.feature_names(head)
        _require(names is None or len(names) == vectors.shape[1], f"{where}: feature_names must match the width")
    again = encoder.embed(images)
    _require(all(np.allclose(again[h], out[h], atol=1e-5) for h in out),
             f"{where}: embedding the same images twice must give the same vectors (eval mode, no dropout)")
    return ["embed"]


def _check_metric(metric, where: str) -> list[str]:
    x = np.random.default_rng(0).random((6, 5)) + 0.1
    d = metric.distance(x, x)
    _require(d.shape == (6, 6) and np.isfinite(d).all(), f"{where}: distance(A, B) must be a finite (|A|, |B|) array")
    _require(np.allclose(d, d.T), f"{where}: a metric must be symmetric")
    return ["distance"]


def _check_ranker(ranker, where: str) -> list[str]:
    from .registry import get_registry

    rng = np.random.default_rng(0)
    early = rng.normal(0, 1, (16, 4))
    x = np.vstack([early[:8] + 0.2, early[8:] + 3])  # controls barely change, the others move far
    samples = toy_samples(["control"] * 8 + ["single_dose"] * 8)
    samples.paired = early.astype(np.float32)  # what the pipeline gives rankers that ask for pairs
    if ranker.needs_images:  # day-7 pictures; on day 10 the controls look the same, the others inverted
        pictures = np.clip(0.5 + 0.15 * rng.normal(0, 1, (16, 3, 16, 16)), 0, 1).astype(np.float32)
        stored = {f"early-{i}": p for i, p in enumerate(pictures)}
        stored.update({str(i): p if n < 8 else 1 - p for n, (i, p) in enumerate(zip(samples.image_ids, pictures))})
        samples.paired_ids = np.array([f"early-{i}" for i in range(16)], dtype=object)
        samples.read_images = lambda ids: np.stack([stored[str(i)] for i in ids])
        samples.encode = lambda batch: np.asarray(batch).reshape(len(batch), -1)
        x = samples.read_images(samples.image_ids).reshape(16, -1)
        samples.paired = pictures.reshape(16, -1)
    usable = ranker.metrics if ranker.metrics is not None else ("euclidean",)
    registry = get_registry()
    metric = registry.create("metric", "euclidean" if "euclidean" in usable else usable[0]) if usable else None
    scores = ranker.fit(x, samples, metric, "control").score(x, samples)
    _require(np.shape(scores) == (16,), f"{where}: score must give one value per item")
    _require(ranker.partial or np.isfinite(scores).all(), f"{where}: scores must be finite (or set `partial`)")
    finite = np.isfinite(scores)
    _require(np.nanmean(scores[8:]) > np.nanmean(scores[:8]) and finite.any(),
             f"{where}: items further from the reference must score higher")
    return ["fit", "score"]


def _check_evaluator(evaluator, where: str) -> list[str]:
    rng = np.random.default_rng(0)
    conditions = ["control"] * 6 + ["single_dose"] * 6 + ["exploded"] * 6
    samples = toy_samples(conditions, effect=np.repeat([0.0, 0.5, 1.0], 6))
    if evaluator.needs == "scores":
        subject = Subject(samples, scores=np.repeat([0.0, 1.0, 2.0], 6) + rng.normal(0, 0.1, 18))
    else:
        subject = Subject(samples, embeddings=np.repeat(np.eye(3) * 4, 6, axis=0) + rng.normal(0, 0.3, (18, 3)))
    if evaluator.needs == "encoder":
        return ["skipped: needs an encoder and images (run it in a grid)"]
    result = evaluator.evaluate(subject)
    _require(isinstance(result, Evaluation) and result.values, f"{where}: evaluate must return an Evaluation with values")
    _require(all(np.isfinite(float(v)) for v in result.values.values()), f"{where}: values must be finite numbers")
    for name, (low, high) in result.intervals.items():
        _require(name in result.values and low <= high, f"{where}: interval of {name!r} must be (low <= high) of a value")
    return ["evaluate"]


def _check_transform(transform, where: str) -> list[str]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (20, 6)) * np.arange(1, 7)
    samples = toy_samples(["control"] * 10 + ["treated"] * 10)
    reference = samples.matching("control")  # on both plates: items alternate
    out = transform.fit(x, samples, reference).transform(x, samples)
    _require(out.ndim == 2 and len(out) == len(x) and np.isfinite(out).all(),
             f"{where}: transform must give one finite row per input row")
    return ["fit", "transform"]


def _check_loader(loader, where: str) -> list[str]:
    """A 16-bit TIFF of three planes, else of one plane (loaders that take single planes)."""
    import tifffile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stack.tif"
        stack = (toy_images(1, 40)[0] * 65535).astype(np.uint16)
        if loader.suffixes and path.suffix not in loader.suffixes:
            if ".png" not in loader.suffixes:
                return ["skipped: reads neither .tif nor .png (give it a file of its own in your tests)"]
            import cv2

            cv2.imwrite(str(path.with_suffix(".png")), stack[0])
            image = loader.read(str(path.with_suffix(".png")))
            _require(image.ndim == 3, f"{where}: read must return an (L, H, W) array")
            return ["read"]
        tifffile.imwrite(path, stack)
        try:
            image = loader.read(str(path))
        except (ValueError, PluginError):
            tifffile.imwrite(path, stack[0])
            image = loader.read(str(path))
    _require(image.ndim == 3, f"{where}: read must return an (L, H, W) array")
    return ["read"]


def _check_segmenter(segmenter, where: str) -> list[str]:
    image = 1 - toy_images(1, 64)[0]  # bright objects on a dark field, as fluorescence
    labels = segmenter.segment(image)
    _require(labels.shape == image.shape[1:] and np.issubdtype(labels.dtype, np.integer),
             f"{where}: segment must return an integer label image of the input's height and width")
    return ["segment"]


def _check_preprocessor(step, where: str) -> list[str]:
    stacks = [image * 60000 for image in toy_images(3, 64)]  # 16-bit scale, as a file would give
    state = step.fit(iter(stacks), 65535.0) if step.fitted else None
    out = step.apply(stacks[0].astype(np.float32), 65535.0, state)
    _require(out.ndim == 3 and out.shape[0] == 3 and np.isfinite(out).all(),
             f"{where}: apply must return a finite (layers, height, width) stack with every layer")
    return ["fit", "apply"] if step.fitted else ["apply"]


def _check_augmentation(augmentation, where: str) -> list[str]:
    import torch

    view = augmentation.build(32)
    out = view(torch.as_tensor(toy_images(1, 32)[0]))
    _require(tuple(out.shape)[-2:] == (32, 32), f"{where}: a view must keep the image size")
    return ["build"]


CHECKS = {"encoder": _check_encoder, "metric": _check_metric, "ranker": _check_ranker, "evaluator": _check_evaluator,
          "transform": _check_transform, "loader": _check_loader, "segmenter": _check_segmenter,
          "augmentation": _check_augmentation, "preprocessor": _check_preprocessor}
