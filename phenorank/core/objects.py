"""Object crops: find the cells (or nuclei) of each ingested image and cut a fixed-size crop
around each, stored as a crop set of its own so that encoders embed them like any image.

image file (full resolution, via the loader that ingested it)
  -> the channels of the image crop set, scaled to [0, 1]
  -> a segmenter plugin's label image (the built-in: smoothed, Otsu or two-class GMM foreground,
     watershed on the distance transform to split touching objects)
  -> objects kept by area (``min_area``, and the quantile filters of seed 004 over the batch)
  -> a ``side`` x ``side`` crop centred on each object (zero padded at the image border),
     optionally zeroed outside the object's mask and min-max scaled per channel (seed 004),
     area-averaged to ``size`` x ``size`` and stored 16-bit like image crops.

Each object keeps its parent image (``objects.image_id``), its label, box and area; the ``items``
view gives it the parent's metadata, so rankers, evaluators and aggregation see it as a sample.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..registry.contracts import Loader, PluginError, Segmenter
from .ingest import WRITE_EVERY, Executor, process_in_order, read_image
from .preprocess import PreprocessError, PreprocessParams, area_resize, select_channels, unit_scale
from .store import Store


class ObjectsError(ValueError):
    pass


@dataclass(frozen=True)
class CropParams:
    side: int = 64  # crop side in source pixels, centred on each object
    size: int = 96  # stored side
    min_area: int = 20  # objects smaller than this (pixels) are debris
    area_quantiles: tuple[float, float] = (0.0, 1.0)  # keep objects between these quantiles of the area of
    # all objects found in this run (a later run over new images uses its own quantiles)
    mask_outside: bool = False  # zero the pixels outside the object's own mask (seed 004)
    normalize: str = "none"  # "minmax": each crop's channels scaled to their own range (seed 004)
    # "box" (seed 004): the object's bounding box, black bars added to its shorter side to make a
    # square, scaled to ``size``; "centred": a ``side`` square around the centroid
    crop: str = "centred"
    area_by: str = ""  # a metadata column (e.g. condition): area quantiles per value (seed 004: per class)
    max_black: float = 1.0  # leave out crops with a larger fraction of black pixels (seed 004)


@dataclass
class ObjectsReport:
    images: int = 0
    objects: int = 0
    filtered: int = 0
    cached: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), also in `rejects`


def objects_key(image_key: str, segmenter: Segmenter, params: CropParams) -> str:
    from .pipeline import digest, identity

    return digest("objects", image_key, identity(segmenter), asdict(params))


def channels_of(stack: np.ndarray, image_params: dict) -> np.ndarray:
    """The image crop set's channels of a full-resolution stack, float32 (3, H, W) in [0, 1]."""
    if not stack.dtype.isnative:
        stack = stack.astype(stack.dtype.newbyteorder("="))
    params = PreprocessParams(channels=image_params.get("channels", 3), stack="channels",
                              channel_order=tuple(image_params["channel_order"]) if image_params.get("channel_order") else None)
    order = select_channels(stack.shape[0], params)
    scale = unit_scale(stack) / 65535.0
    out = np.zeros((len(order),) + stack.shape[1:], np.float32)
    for i, c in enumerate(order):
        if c >= 0:
            out[i] = stack[c].astype(np.float32) * scale
    return out


def object_crops(image: np.ndarray, labels: np.ndarray, params: CropParams) -> list[tuple[dict, np.ndarray]]:
    """(object record, uint16 crop (C, size, size)) for each labelled object of at least
    ``min_area`` pixels, in label order. The record's ``black`` is the fraction of the crop's
    pixels that are black in every channel (outside the mask, bars, beyond the image)."""
    from skimage.measure import regionprops

    out = []
    for region in regionprops(labels):
        if region.area < params.min_area:
            continue
        crop, (crop_y, crop_x, side) = _box_crop(image, labels, region, params) if params.crop == "box" \
            else _centred_crop(image, labels, region, params)
        black = float((crop == 0).all(axis=0).mean())
        if params.normalize == "minmax":
            lo = crop.min(axis=(1, 2), keepdims=True)
            span = crop.max(axis=(1, 2), keepdims=True) - lo
            crop = np.divide(crop - lo, span, out=np.zeros_like(crop), where=span > 0)
        pixels = np.stack([area_resize(np.ascontiguousarray(c), params.size) if side != params.size else c
                           for c in crop])
        minr, minc, maxr, maxc = region.bbox
        record = {"label": int(region.label), "x": int(minc), "y": int(minr), "width": int(maxc - minc),
                  "height": int(maxr - minr), "area": int(region.area), "crop_x": crop_x, "crop_y": crop_y,
                  "crop_side": side, "black": black}
        out.append((record, np.clip(np.rint(pixels * 65535), 0, 65535).astype(np.uint16)))
    return out


def _centred_crop(image, labels, region, params: CropParams):
    """A ``side`` square centred on the object, zeros beyond the image."""
    half = params.side // 2
    cy, cx = (int(round(v)) for v in region.centroid)
    crop = _window(image, cy - half, cx - half, params.side)
    if params.mask_outside:
        crop *= _window(labels[None], cy - half, cx - half, params.side)[0] == region.label
    return crop, (cy - half, cx - half, params.side)


def _box_crop(image, labels, region, params: CropParams):
    """Seed 004: the bounding box, centred in a black square as wide as its longer side."""
    minr, minc, maxr, maxc = region.bbox
    side = max(maxr - minr, maxc - minc)
    y0, x0 = minr - (side - (maxr - minr)) // 2, minc - (side - (maxc - minc)) // 2
    box = np.zeros((image.shape[0], side, side), image.dtype)
    inner = image[:, minr:maxr, minc:maxc]
    if params.mask_outside:
        inner = inner * (labels[minr:maxr, minc:maxc] == region.label)
    box[:, minr - y0:maxr - y0, minc - x0:maxc - x0] = inner
    return box, (y0, x0, side)


def _window(image: np.ndarray, y0: int, x0: int, side: int) -> np.ndarray:
    """image[:, y0:y0 + side, x0:x0 + side], zeros where it reaches beyond the image."""
    out = np.zeros((image.shape[0], side, side), image.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + side, image.shape[1]), min(x0 + side, image.shape[2])
    if ye > ys and xe > xs:
        out[:, ys - y0:ye - y0, xs - x0:xe - x0] = image[:, ys:ye, xs:xe]
    return out


def segment_file(task: tuple[str, str], loader: Loader, segmenter: Segmenter, image_params: dict,
                 params: CropParams, chain=None, groups: dict[str, str] | None = None) -> dict:
    image_id, location = task
    try:
        stack = read_image(location, loader)
        if chain is not None:  # the image crop set's preprocessing, as ingest applied it
            stack = chain.apply(stack, (groups or {}).get(image_id, ""))
        image = channels_of(stack, image_params)
        labels = np.asarray(segmenter.segment(image))
        if labels.shape != image.shape[1:]:
            raise ObjectsError(f"segmenter {segmenter.name!r} returned labels of shape {labels.shape} "
                               f"for an image of {image.shape[1]}x{image.shape[2]}")
        return {"status": "ok", "image_id": image_id, "objects": object_crops(image, labels.astype(np.int32), params)}
    except Exception as exc:  # one bad file must not stop the batch
        reason = str(exc) if isinstance(exc, (ValueError, PreprocessError)) else f"{type(exc).__name__}: {exc}"
        return {"status": "error", "image_id": image_id, "path": location, "reason": reason}


def _check_chain(image_key: str, image_params: dict, chain) -> None:
    """The images are read again: through the same preprocessing as their crop set, or not at all."""
    stored = image_params.get("chain") or ""
    if stored == (chain.key if chain is not None else ""):
        return
    if not stored:
        raise ObjectsError(f"image crop set {image_key} was not preprocessed")
    steps = " -> ".join(p["name"] for p in image_params.get("preprocess", []))
    raise ObjectsError(f"the preprocessing of crop set {image_key} ({steps}) cannot be reproduced (the files or the "
                       "steps' code changed since `phenorank ingest`): ingest again")


def find_objects(store: Store, image_key: str, loader: Loader, segmenter: Segmenter, params: CropParams,
                 run_id: str, workers: int = 1, advance: Callable[[int], None] = lambda n=1: None,
                 executor: Executor | None = None, chain=None) -> tuple[str, ObjectsReport]:
    """Segment every image of the image crop set ``image_key`` not yet segmented with these
    settings; returns the object crop set's key and what happened. ``executor``: as for ingest.
    ``chain``: the image crop set's preprocessing (refitted: its key must be the set's), applied
    to each file before it is segmented and cropped."""
    image_sets = {s["preprocess_key"]: s for s in store.crop_sets("image")}
    if image_key not in image_sets:
        raise ObjectsError(f"no image crop set {image_key}: run `phenorank ingest` first")
    image_params = image_sets[image_key]["params"]
    if image_params.get("stack", "layers") != "channels":
        raise ObjectsError("objects are found in channel images (ingested with a channels loader such as "
                           "--loader tiff-channels or image-file); these images were ingested as focal layers")
    key = objects_key(image_key, segmenter, params)
    store.write_crop_set(key, "object", {**asdict(params), "segmenter": segmenter.name,
                                         "segmenter_params": segmenter.params, "images": image_key}, run_id)
    todo = store.images_to_segment(image_key, key)
    if todo:  # the chain matters only for images still to be read
        _check_chain(image_key, image_params, chain)
    report = ObjectsReport(cached=len(store.object_counts(key)))
    groups = None
    if chain is not None and todo:
        ids = [image_id for image_id, _ in todo]
        groups = dict(zip(ids, (str(v) if v is not None else "" for v in store.load_samples(ids)[chain.group_by])))
    work = functools.partial(segment_file, loader=loader, segmenter=segmenter, image_params=image_params, params=params,
                             chain=chain, groups=groups)
    results = []
    outcomes = (executor(todo, work, lambda task, reason: {"status": "error", "image_id": task[0], "path": task[1],
                                                           "reason": reason})
                if executor else process_in_order(todo, work, workers))
    for result in outcomes:
        if result["status"] == "error":
            report.problems.append((result["path"], f"objects: {result['reason']}"))
        else:
            results.append(result)
        advance(1)
    objects = [(r["image_id"], o) for r in results for o, _ in r["objects"]]
    classes = None
    if params.area_by and objects:
        ids = sorted({image_id for image_id, _ in objects})
        try:
            values = dict(zip(ids, store.load_samples(ids)[params.area_by]))
        except PluginError as exc:
            raise ObjectsError(f"--area-by {params.area_by}: {exc}") from None
        classes = [str(values[image_id]) for image_id, _ in objects]
    keep = _area_filter([o["area"] for _, o in objects], params.area_quantiles, classes)
    keep &= np.array([o["black"] <= params.max_black for _, o in objects], dtype=bool)
    batch_segmented, batch_objects, batch_crops = [], [], []
    position = 0
    for result in results:
        kept = 0
        for record, pixels in result["objects"]:
            if keep[position]:
                object_id = f"{result['image_id']}:{key}:{record['label']}"
                batch_objects.append({"object_id": object_id, "image_id": result["image_id"], "preprocess_key": key,
                                      **{k: record[k] for k in ("label", "x", "y", "width", "height", "area")}})
                batch_crops.append({"image_id": object_id, "preprocess_key": key, "size": params.size,
                                    "crop_x": record["crop_x"], "crop_y": record["crop_y"],
                                    "crop_side": record["crop_side"],
                                    "layers_used": [], "pixels": pixels.astype("<u2").tobytes()})
                kept += 1
            else:
                report.filtered += 1
            position += 1
        batch_segmented.append((result["image_id"], kept))
        report.images += 1
        report.objects += kept
        if len(batch_segmented) >= WRITE_EVERY:
            store.write_objects(key, batch_segmented, batch_objects, batch_crops)
            batch_segmented, batch_objects, batch_crops = [], [], []
    store.write_objects(key, batch_segmented, batch_objects, batch_crops)
    if report.problems:
        store.write_images([], [], run_id, rejects=report.problems)
    return key, report


def _area_filter(areas: list[int], quantiles: tuple[float, float], classes: list[str] | None = None) -> np.ndarray:
    """True for objects whose area lies within the given quantiles of the areas of this batch;
    with ``classes``, of the areas of their own class (seed 004 cut 5% per class)."""
    areas = np.asarray(areas, dtype=np.float64)
    keep = np.ones(len(areas), dtype=bool)
    if len(areas) == 0 or tuple(quantiles) == (0.0, 1.0):
        return keep
    labels = np.asarray(classes if classes is not None else [""] * len(areas))
    for value in np.unique(labels):
        members = labels == value
        lo, hi = np.quantile(areas[members], quantiles)
        keep[members] = (areas[members] >= lo) & (areas[members] <= hi)
    return keep
