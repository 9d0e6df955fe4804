"""A generated, clearly SYNTHETIC set of fluorescence cell images with known classes, for the
demo and the tests (in the spirit of seeds 001, 002 and 004; no real image is imitated).

Three channels as in seed 001: actin (cytoplasm), borders (membrane), nuclei. Three classes
that differ in shape, texture and channel intensities:

    round        round cells, smooth actin, one bright nucleus
    elongated    cells stretched about 2.5:1 with actin fibres along the long axis
    enlarged     large cells, dim actin, a bright border and two dimmer nuclei

Every sample (a "donor") has its own brightness, and several fields of view; files go to
class-labelled folders, ``root/CLASS/{sample}_f{field}.tif``, 16-bit, channels first (CYX).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

CLASSES = ("round", "elongated", "enlarged")
CHANNELS = ("actin", "borders", "nuclei")
PATTERN = "{sample}_f{field}.tif"  # file names inside each class folder

# class -> (semi-axes in px, actin, border, nucleus intensity, nuclei per cell, fibre texture)
SHAPES = {
    "round": ((10.0, 9.0), 0.35, 0.30, 0.70, 1, 0.0),
    "elongated": ((17.0, 7.0), 0.35, 0.30, 0.65, 1, 0.6),
    "enlarged": ((15.0, 14.0), 0.20, 0.60, 0.40, 2, 0.0),
}


@dataclass(frozen=True)
class CellSpec:
    samples_per_class: int = 4
    fields: int = 3
    side: int = 160
    cells_per_field: int = 6
    seed: int = 0

    @property
    def n_images(self) -> int:
        return len(CLASSES) * self.samples_per_class * self.fields


def draw_field(kind: str, side: int, n_cells: int, rng: np.random.Generator, brightness: float = 1.0
               ) -> tuple[np.ndarray, int]:
    """One field of view (3, side, side) float32 in [0, 1] and the number of cells drawn."""
    import cv2

    (a, b), actin, border, nucleus, n_nuclei, fibres = SHAPES[kind]
    image = np.zeros((3, side, side), np.float32)
    centres: list[tuple[float, float]] = []
    margin = a + 2
    for _ in range(n_cells * 50):
        if len(centres) == n_cells:
            break
        cy, cx = rng.uniform(margin, side - margin, size=2)
        if all((cy - y) ** 2 + (cx - x) ** 2 > (2 * a + 2) ** 2 for y, x in centres):
            centres.append((cy, cx))
    reach = int(np.ceil(a * 1.2)) + 1
    for cy, cx in centres:
        angle = rng.uniform(0, np.pi)
        scale = rng.uniform(0.9, 1.1)
        # Each cell is drawn in its own window: cost grows with the cells, not the field.
        y0, x0 = max(int(cy) - reach, 0), max(int(cx) - reach, 0)
        yy, xx = np.mgrid[y0:min(int(cy) + reach + 1, side), x0:min(int(cx) + reach + 1, side)].astype(np.float32)
        window = (slice(y0, y0 + yy.shape[0]), slice(x0, x0 + yy.shape[1]))
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        r = np.sqrt((u / (a * scale)) ** 2 + (v / (b * scale)) ** 2)
        cell = r <= 1.0
        texture = 1.0 + fibres * np.sin(v * 1.6) if fibres else np.ones_like(r)
        image[0][window][cell] += (actin * texture * brightness)[cell]
        ring = (r > 0.8) & (r <= 1.05)
        image[1][window][ring] += border * brightness
        for k in range(n_nuclei):
            offset = (k - (n_nuclei - 1) / 2) * a * 0.6
            inside = ((u - offset) / (a * 0.35)) ** 2 + (v / (b * 0.45)) ** 2 <= 1.0
            image[2][window][inside] += nucleus * brightness
    for c in range(3):
        image[c] = cv2.GaussianBlur(image[c], (0, 0), 1.0)
    image += 0.03 + rng.normal(0, 0.01, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), len(centres)


def generate_cells(out_dir: str | Path, spec: CellSpec = CellSpec(),
                   advance: Callable[[int], None] = lambda n=1: None) -> list[dict]:
    """Write the images; returns one record per file (path, condition, sample, field, cells)."""
    import tifffile

    out_dir = Path(out_dir)
    rng = np.random.default_rng(spec.seed)
    records = []
    number = 0
    for kind in CLASSES:
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
        for _ in range(spec.samples_per_class):
            number += 1
            sample = f"S{number:02d}"
            brightness = float(rng.uniform(0.8, 1.2))
            for field in range(1, spec.fields + 1):
                image, cells = draw_field(kind, spec.side, spec.cells_per_field, rng, brightness)
                relative = f"{kind}/{PATTERN.format(sample=sample, field=field)}"
                pixels = np.round(image * 65535).astype(np.uint16)
                tifffile.imwrite(out_dir / relative, pixels, photometric="minisblack", metadata={"axes": "CYX"})
                records.append({"path": relative, "condition": kind, "sample": sample, "field": field,
                                "cells": cells})
                advance(1)
    return records
