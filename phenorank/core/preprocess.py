"""Preprocessing of bright-field spheroid stacks, as in seed 000 section 7.1.

stack (L, H, W) in its own dtype
  -> scaled to float32 [0, 1] (16-bit / 65535, 8-bit / 255, float must already be in [0, 1])
  -> 3 channels: 1 layer duplicated, more than 3 layers -> the 3 sharpest (mean gradient
     magnitude), kept in focal order
  -> square crop of side min(H, W) centred on the largest dark object (inverted Otsu on the
     8-bit-normalised mean of the layers), clamped inside the image
  -> area-resized to size x size, stored as uint16 so no 16-bit information is squeezed
     through 8 bits (the 8-bit image only decides where to crop).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

PREPROCESS_VERSION = 1  # bump when the algorithm changes, so cached crops are recomputed


class PreprocessError(ValueError):
    """The image cannot be used; the message says why (it is stored in ``rejects``)."""


@dataclass(frozen=True)
class PreprocessParams:
    size: int = 96
    channels: int = 3

    @property
    def key(self) -> str:
        payload = json.dumps({**asdict(self), "version": PREPROCESS_VERSION}, sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=6).hexdigest()


@dataclass
class Crop:
    pixels: np.ndarray  # uint16 (channels, size, size)
    crop_x: int
    crop_y: int
    crop_side: int
    layers_used: list[int]


def to_unit_float(stack: np.ndarray) -> np.ndarray:
    """Scale integer or float pixels to float32 in [0, 1] by the range of their dtype."""
    dtype = stack.dtype
    if dtype == np.uint16:
        return stack.astype(np.float32) / 65535.0
    if dtype == np.uint8:
        return stack.astype(np.float32) / 255.0
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(stack).all():
            raise PreprocessError("float image contains NaN or infinite values")
        lo, hi = float(stack.min()), float(stack.max())
        if lo < 0.0 or hi > 1.0:
            raise PreprocessError(f"float image values span [{lo:.4g}, {hi:.4g}]; expected [0, 1]")
        return stack.astype(np.float32)
    raise PreprocessError(f"unsupported pixel type {dtype}; expected uint8, uint16 or float in [0, 1]")


def sharpness(layer: np.ndarray) -> float:
    """Mean gradient magnitude sqrt(gx^2 + gy^2) of one layer."""
    gy, gx = np.gradient(layer.astype(np.float32, copy=False))
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


def select_layers(stack: np.ndarray, channels: int = 3) -> tuple[np.ndarray, list[int]]:
    """Return `channels` layers: a single layer repeated, or the sharpest ones in focal order."""
    n = stack.shape[0]
    if n == 1:
        return np.repeat(stack, channels, axis=0), [0] * channels
    if n < channels:
        raise PreprocessError(f"{n} focal layers: expected 1 or at least {channels}")
    if n == channels:
        return stack, list(range(n))
    scores = [sharpness(layer) for layer in stack]
    keep = sorted(np.argsort(scores)[::-1][:channels].tolist())
    return stack[keep], keep


def object_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x, y, w, h) of the largest dark object: inverted Otsu on the 8-bit image."""
    import cv2
    from skimage.filters import threshold_otsu

    gray8 = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if gray8.min() == gray8.max():
        raise PreprocessError("no object found: the image is uniform (all one intensity)")
    threshold = threshold_otsu(gray8)
    mask = (gray8 <= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise PreprocessError("no object found: Otsu threshold left no dark region")
    largest = max(contours, key=cv2.contourArea)
    return cv2.boundingRect(largest)


def square_crop_origin(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int]:
    """Top-left corner and side of the min(H, W) square centred on the box, clamped inside."""
    x, y, w, h = box
    side = min(height, width)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return x0, y0, side


def preprocess_stack(stack: np.ndarray, params: PreprocessParams = PreprocessParams()) -> Crop:
    """Run the whole section-7.1 pipeline on one stack (L, H, W)."""
    import cv2

    if stack.ndim != 3:
        raise PreprocessError(f"expected a stack of shape (layers, height, width), got shape {stack.shape}")
    image = to_unit_float(stack)
    layers, used = select_layers(image, params.channels)
    height, width = layers.shape[1:]
    x0, y0, side = square_crop_origin(object_box(layers.mean(axis=0)), height, width)
    crop = layers[:, y0:y0 + side, x0:x0 + side]
    resized = np.stack([
        cv2.resize(channel, (params.size, params.size), interpolation=cv2.INTER_AREA) for channel in crop
    ])
    pixels = np.clip(np.rint(resized * 65535.0), 0, 65535).astype(np.uint16)
    return Crop(pixels, x0, y0, side, used)
