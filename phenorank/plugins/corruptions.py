"""Artificial acquisition corruptions of seed 003 (its table 5, "hyperparameterization for
different artificial corruption severities"), on float images (N, C, H, W) in [0, 1]:

    severity              1     2     3     4     5
    defocus (radius px)   0.5   1.0   1.5   2     3       a disk point spread of that radius
    contrast_down (gain)  0.9   0.8   0.7   0.5   0.3     severities +1..+5 of the table
    contrast_up (gain)    1.5   2.0   2.5   3.0   3.5     severities -1..-5
    brightness_up         +50   +90   +120  +135  +150    additive bias on the 8-bit scale (/255)
    brightness_down       -50   -90   -120  -135  -150

The table gives no numbers for noise and scaling, which the document also names; phenorank adds
Gaussian noise (sigma as a fraction of the full range) and a small rotation with zoom:

    noise (sigma)         0.01  0.02  0.04  0.08  0.16
    geometry (degrees)    2     4     8     12    20      with zoom x (1 + degrees / 100)

Used by the ``robustness`` evaluator and the ``corruptions`` augmentation.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError

SEVERITIES: dict[str, tuple[float, ...]] = {
    "noise": (0.01, 0.02, 0.04, 0.08, 0.16),
    "defocus": (0.5, 1.0, 1.5, 2.0, 3.0),
    "contrast_down": (0.9, 0.8, 0.7, 0.5, 0.3),
    "contrast_up": (1.5, 2.0, 2.5, 3.0, 3.5),
    "brightness_up": (50.0, 90.0, 120.0, 135.0, 150.0),
    "brightness_down": (-50.0, -90.0, -120.0, -135.0, -150.0),
    "geometry": (2.0, 4.0, 8.0, 12.0, 20.0),
}


def disk_kernel(radius: float, supersample: int = 16) -> np.ndarray:
    """A normalised disk of ``radius`` pixels (the defocus point spread), placed with sub-pixel
    accuracy: points spread evenly over the disk, each shared bilinearly among its four nearest
    pixels. So radius 0.5 already reaches the neighbours, and radii between whole pixels differ."""
    step = 1.0 / supersample
    axis = np.arange(-radius, radius + step / 2, step)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    inside = y ** 2 + x ** 2 <= radius ** 2 + 1e-9
    y, x = y[inside], x[inside]
    half = int(np.ceil(radius)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy + half, x0 + dx + half), wy * wx)
    kernel = kernel[~np.all(kernel == 0, axis=1)][:, ~np.all(kernel == 0, axis=0)]
    return (kernel / kernel.sum()).astype(np.float32)


def corrupt(images: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """One corruption of float images (N, C, H, W) in [0, 1] at one strength; clipped to [0, 1]."""
    import cv2

    images = np.asarray(images, dtype=np.float32)
    if kind == "noise":
        noise = np.random.default_rng(seed).standard_normal(images.shape).astype(np.float32)
        out = images + strength * noise
    elif kind == "defocus":
        kernel = disk_kernel(strength)
        out = np.stack([[cv2.filter2D(c, -1, kernel, borderType=cv2.BORDER_REFLECT) for c in img] for img in images])
    elif kind.startswith("contrast"):
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        out = mean + (images - mean) * strength
    elif kind.startswith("brightness"):
        out = images + strength / 255.0
    elif kind == "geometry":
        side_h, side_w = images.shape[2:]
        matrix = cv2.getRotationMatrix2D((side_w / 2, side_h / 2), strength, 1 + strength / 100)
        out = np.stack([[cv2.warpAffine(c, matrix, (side_w, side_h), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT) for c in img] for img in images])
    else:
        raise PluginError(f"unknown corruption {kind!r}; known: {', '.join(SEVERITIES)}")
    return np.clip(out, 0.0, 1.0)


def chosen_kinds(kinds, who: str) -> list[str]:
    """A list of corruption names, or a comma-separated string of them; unknown names are an error."""
    kinds = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in SEVERITIES]
    if unknown:
        raise PluginError(f"{who}: unknown corruption(s) {', '.join(unknown)}; known: {', '.join(SEVERITIES)}")
    return kinds


def severities(params: dict, kind: str, who: str) -> list[float]:
    """The strengths of ``kind`` at severities 1..n: the ``kind`` parameter (default: the table)."""
    levels = params.get(kind, SEVERITIES[kind])
    levels = [float(v) for v in (levels.split(",") if isinstance(levels, str) else levels)]
    if not levels:
        raise PluginError(f"{who}: {kind} needs at least one strength")
    return levels
