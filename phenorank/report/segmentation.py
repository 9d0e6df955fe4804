"""Segmentation overlays: for object crop sets, a few source images with what the segmenter found
drawn on them, so a biologist sees whether the "cells" are cells before trusting any number made
from their crops.

The image is read again from its file with the loader that ingested it and segmented again with
the stored segmenter and parameters (segmentation is deterministic), so the outlines are the
masks the crops were cut from: white outline and box = an object kept (its crop is stored),
orange outline = found but left out (smaller than ``min_area`` or outside the area quantiles).
"""

from __future__ import annotations

import html

import numpy as np

from ..core.ingest import read_image
from ..core.objects import channels_of
from ..core.store import Store
from .page import figure
from .plots import _png, _pyplot

KEPT, LEFT_OUT = "#ffffff", "#ff7f0e"  # white reads on any composite colour


def _composite(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3), each channel stretched between its 1st and 99.5th percentile."""
    rgb = np.zeros(image.shape[1:] + (3,), np.float32)
    for c in range(min(3, image.shape[0])):
        low, high = np.percentile(image[c], [1, 99.5])
        rgb[..., c] = np.clip((image[c] - low) / ((high - low) or 1), 0, 1)
    if image.shape[0] == 1:
        rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
    return rgb


def overlay(image: np.ndarray, labels: np.ndarray, boxes: list[tuple[int, int, int, int, int]], title: str) -> bytes:
    """One image with its label outlines; ``boxes``: (label, x, y, width, height) of the kept objects."""
    from matplotlib.patches import Rectangle
    from skimage.segmentation import find_boundaries

    plt = _pyplot()
    kept = {b[0] for b in boxes}
    rgb = _composite(image)
    edges = find_boundaries(labels, mode="inner")
    is_kept = np.isin(labels, list(kept))
    rgb[edges & is_kept] = (1.0, 1.0, 1.0)
    rgb[edges & ~is_kept & (labels > 0)] = (1.0, 0.5, 0.05)
    height, width = labels.shape
    fig, ax = plt.subplots(figsize=(3.6, 3.6 * height / width + 0.4))
    ax.imshow(rgb)
    for _, x, y, w, h in boxes:
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=KEPT, lw=0.7))
    found = len(np.unique(labels[labels > 0]))
    ax.set_title(f"{title}\n{len(kept)} kept of {found} found", fontsize=7, loc="left")
    ax.axis("off")
    return _png(fig)


def segmentation_sections(store: Store, per_set: int = 4) -> list[str]:
    from ..registry import get_registry

    registry = get_registry()
    sections = []
    image_sets = {s["preprocess_key"]: s["params"] for s in store.crop_sets("image")}
    for crop_set in store.crop_sets("object")[:2]:
        params = crop_set["params"]
        image_params = image_sets.get(params.get("images"), {})
        if not crop_set["crops"] or not image_params:
            continue
        # the images with the most objects first, one per condition, then the next ones
        images = store.con.execute(
            "SELECT o.image_id, i.path, i.condition, coalesce(i.well, ''), count(*) AS n FROM objects o "
            "JOIN images i USING (image_id) WHERE o.preprocess_key = ? GROUP BY ALL ORDER BY n DESC, o.image_id",
            [crop_set["preprocess_key"]]).fetchall()
        by_condition = list({row[2]: row for row in images}.values())
        chosen = list(dict.fromkeys(by_condition + images))[:per_set]
        figures, problems = [], []
        try:
            loader = registry.create("loader", image_params.get("loader", "tiff-channels"),
                                     image_params.get("loader_params", {}))
            segmenter = registry.create("segmenter", params["segmenter"], params.get("segmenter_params", {}))
        except Exception as exc:  # a plugin no longer installed: said on the page
            sections.append(f"<p class=note>Segmentation overlays of {html.escape(crop_set['preprocess_key'])} "
                            f"cannot be drawn: {html.escape(str(exc))}</p>")
            continue
        for image_id, path, condition, well, _ in chosen:
            try:
                image = channels_of(read_image(path, loader), image_params)
                labels = np.asarray(segmenter.segment(image)).astype(np.int32)
            except Exception as exc:  # the source moved or cannot be read: the others are still drawn
                problems.append(f"{path}: {exc}")
                continue
            boxes = store.con.execute("SELECT label, x, y, width, height FROM objects WHERE image_id = ? AND "
                                      "preprocess_key = ? ORDER BY label",
                                      [image_id, crop_set["preprocess_key"]]).fetchall()
            name = path.rsplit("/", 1)[-1]
            figures.append(figure(overlay(image, labels, boxes, f"{condition} {well} {name}".strip()),
                                  f"segmentation {name}"))
        note = (f"<p class=note>Not drawn (the source could not be read): {html.escape('; '.join(problems))}</p>"
                if problems else "")
        sections.append(
            f"<h2>Segmentation: what the object crops were cut from ({html.escape(params['segmenter'])})</h2>"
            f"<p class=note>Source images of crop set {html.escape(crop_set['preprocess_key'])}, segmented again "
            f"with the stored settings (min_area {params.get('min_area')}, crops of {params.get('side')} px): white "
            "outline and box: an object kept, whose crop the encoders embed; orange outline: found but left out by "
            "its area. Channels shown as red, green, blue.</p><div class=figs>" + "".join(figures) + "</div>" + note)
    return sections
