"""Preprocessing: one stack in, one square 16-bit image of ``size`` x ``size`` x 3 out.

Fluorescence channels (``stack="channels"``, the loader says so): the channels are kept in their
order (or the order given), one channel is repeated to three, two get an empty third; the crop is
the centred min(H, W) square (seed 001), area-averaged to size x size, 16-bit kept.

Bright-field spheroid stacks (``stack="layers"``), as in seed 000 section 7.1:

stack (L, H, W) in its own dtype (uint8, uint16, or float in [0, 1])
  -> 3 channels: 1 layer duplicated, more than 3 layers -> the 3 sharpest (mean gradient
     magnitude), kept in focal order
  -> square crop of side min(H, W) centred on the largest dark object (mean of the layers ->
     8-bit normalised -> inverted Otsu -> largest external contour, debris included -> bounding
     box), clamped inside the image
  -> area-averaged to size x size and stored as uint16 on the 0..65535 scale, so no 16-bit
     information is squeezed through 8 bits (the 8-bit image only decides where to crop).

Speed, without changing the result beyond a few pixels of crop position:
- the object is located on every 4th pixel of every 4th row (for 2054 px; the step keeps about
  ``locate_side`` pixels on the shorter side); the crop itself is cut at full resolution
  (``tests/test_preprocess.py`` checks the crop matches the full-resolution choice);
- of more than 3 layers, the sharpest are judged on the same sample of pixels, each pixel's
  gradient from its full-resolution neighbours (tested: the layers chosen at full resolution, or
  ones within 1% of their sharpness);
- 16-bit pixels are never converted to float as a whole: sharpness and the final resize read the
  stored integers (which can be a read-only memory map of the file);
- the final area average first bins 2 x 2 exactly (``area_resize``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

PREPROCESS_VERSION = 3  # bump when the algorithm changes, so cached crops are recomputed

# The seed's acquisitions have 1, 3 or 5 focal layers; deeper stacks are refused unless asked for.
DEFAULT_MAX_LAYERS = 5


# Below this side an image holds too little to crop; between it and the crop size it is enlarged,
# and ingest says how many were.
MIN_SIDE = 16


class PreprocessError(ValueError):
    """The image cannot be used; the message says why (it is stored in ``rejects``)."""


@dataclass(frozen=True)
class PreprocessParams:
    size: int = 96
    channels: int = 3
    locate_side: int | None = 512  # None: locate the object at full resolution
    max_layers: int = DEFAULT_MAX_LAYERS  # not in the key: it only decides what is refused
    stack: str = "layers"  # what the loader's first axis holds: focal "layers" or fluorescence "channels"
    channel_order: tuple[int, ...] | None = None  # channels mode: which channels, in RGB order
    chain: str = ""  # the key of the preprocessor chain applied before the crop (none: "")

    @property
    def key(self) -> str:
        fields = {"size": self.size, "channels": self.channels, "locate_side": self.locate_side,
                  "version": PREPROCESS_VERSION}
        if self.stack != "layers":  # spheroid keys stay what they were before channel images existed
            fields.update(stack=self.stack, channel_order=self.channel_order)
        if self.chain:  # likewise, keys without a chain stay what they were
            fields.update(chain=self.chain)
        payload = json.dumps(fields, sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=6).hexdigest()


@dataclass
class Crop:
    pixels: np.ndarray  # uint16 (channels, size, size)
    crop_x: int
    crop_y: int
    crop_side: int
    layers_used: list[int]


def unit_scale(stack: np.ndarray) -> float:
    """The factor that maps the stack's values onto 0..65535 (16-bit full scale).

    Integers are scaled by the range of their type; floats must already be in [0, 1]. Anything
    else is refused with the reason, as are NaN and infinite values.
    """
    dtype = stack.dtype
    if dtype == np.uint16:
        return 1.0
    if dtype == np.uint8:
        return 65535.0 / 255.0
    if dtype.kind == "f":
        finite = np.isfinite(stack)
        if not finite.all():
            raise PreprocessError(f"float image contains {int(stack.size - finite.sum())} NaN or infinite values")
        lo, hi = float(stack.min()), float(stack.max())
        if lo < 0.0 or hi > 1.0:
            raise PreprocessError(f"float image values span [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
                                  "(rescale them, or save the image as 16-bit integers)")
        return 65535.0
    raise PreprocessError(f"unsupported pixel type {dtype}: expected uint8, uint16, or float in [0, 1]")


def sharpness(layer: np.ndarray) -> float:
    """Mean gradient magnitude sqrt(gx^2 + gy^2), central differences (as ``np.gradient``).

    Computed on the layer's own values: scaling all layers alike does not change their order.
    """
    import cv2

    src = layer if layer.dtype in (np.uint8, np.uint16, np.float32) else layer.astype(np.float32)
    gx = cv2.Sobel(src, cv2.CV_32F, 1, 0, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(src, cv2.CV_32F, 0, 1, ksize=1, scale=0.5, borderType=cv2.BORDER_REPLICATE)
    # np.gradient takes one-sided differences at the borders; the replicated border halves them
    if gx.shape[1] > 1:
        gx[:, [0, -1]] *= 2
    if gy.shape[0] > 1:
        gy[[0, -1], :] *= 2
    return float(cv2.mean(cv2.magnitude(gx, gy))[0])


def sampled_sharpness(layer: np.ndarray, step: int) -> float:
    """``sharpness`` estimated on every ``step``-th pixel of every ``step``-th row: the same
    central differences of the full-resolution neighbours, averaged over a 1 / step^2 sample of
    the pixels instead of all of them (the border rows and columns left out)."""
    if step <= 1 or min(layer.shape) < 3 * step:
        return sharpness(layer)
    height, width = layer.shape
    first = step // 2 or 1  # sampled rows first, first + step, ... < height - 1; the same for columns
    rows, cols = slice(first, height - 1, step), slice(first, width - 1, step)
    left, right = slice(first - 1, width - 2, step), slice(first + 1, width, step)
    above, below = slice(first - 1, height - 2, step), slice(first + 1, height, step)
    # strided views, not index arrays: only the sampled pixels and their neighbours are read; the
    # differences are exact in float32 for 8- and 16-bit layers
    if layer.dtype.kind == "f":
        gx = layer[rows, right].astype(np.float32) - layer[rows, left]
        gy = layer[below, cols].astype(np.float32) - layer[above, cols]
        return float(np.sqrt(gx ** 2 + gy ** 2).mean() / 2)
    # integers: cast while subtracting, then in place; the same float32 numbers as above in two
    # thirds of the time
    gx = np.subtract(layer[rows, right], layer[rows, left], dtype=np.float32)
    gy = np.subtract(layer[below, cols], layer[above, cols], dtype=np.float32)
    np.multiply(gx, gx, out=gx)
    np.multiply(gy, gy, out=gy)
    gx += gy
    return float(np.sqrt(gx, out=gx).mean() / 2)


def select_layers(stack: np.ndarray, channels: int = 3, max_layers: int = DEFAULT_MAX_LAYERS,
                  step: int = 1) -> list[int]:
    """Indices of the `channels` layers to keep: a single layer repeated, or the sharpest ones
    in focal order. ``step`` > 1: sharpness from every step-th pixel of every step-th row (five
    2054 x 2456 layers at full resolution cost 11 times the rest of their preprocessing)."""
    n = stack.shape[0]
    if n == 1:
        return [0] * channels
    if n < channels or n > max(max_layers, channels):
        raise PreprocessError(f"{n} focal layers: expected 1 or {channels} to {max(max_layers, channels)} "
                              "(raise --max-layers to accept deeper stacks)")
    if n == channels:
        return list(range(n))
    scores = [sampled_sharpness(layer, step) for layer in stack]
    return sorted(np.argsort(scores)[::-1][:channels].tolist())


def object_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x, y, w, h) of the largest dark object: inverted Otsu on the 8-bit image."""
    import cv2

    gray8 = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if gray8.min() == gray8.max():
        raise PreprocessError("no object found: the image is uniform (all one intensity)")
    mask = (gray8 <= otsu_threshold(gray8)).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise PreprocessError("no object found: Otsu threshold left no dark region")
    largest = max(contours, key=cv2.contourArea)
    return cv2.boundingRect(largest)


def otsu_threshold(gray8: np.ndarray) -> float:
    """``skimage.filters.threshold_otsu`` of an 8-bit image, given OpenCV's histogram: several
    times faster than skimage counting the pixels itself, and its arithmetic written out here
    (the same threshold, tested against it) because importing ``skimage.filters`` pulls in
    scipy.ndimage, a fifth of a second of every ingest's start."""
    import cv2

    counts = cv2.calcHist([gray8], [0], None, [256], [0, 256]).ravel()
    used = np.flatnonzero(counts)
    lo, hi = used[0], used[-1]  # skimage's own histogram spans the image's range
    counts, centres = counts[lo:hi + 1], np.arange(lo, hi + 1)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    mean1 = np.cumsum(counts * centres) / weight1
    mean2 = (np.cumsum((counts * centres)[::-1]) / weight2[::-1])[::-1]
    between = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centres[np.argmax(between)])


def sample_step(height: int, width: int, locate_side: int | None) -> int:
    """Every how many pixels and rows the object is located and the layers' sharpness taken: the
    shorter side keeps about ``locate_side`` pixels (None: all of them)."""
    return max(1, min(height, width) // locate_side) if locate_side else 1


def locate_object(stack: np.ndarray, layers: list[int], locate_side: int | None) -> tuple[int, int, int, int]:
    """``object_box`` of the mean of the chosen layers, found on every ``factor``-th pixel of each
    row and column, with the factor chosen so that the shorter side keeps about ``locate_side``
    pixels; returned in full-resolution pixels.

    Sampling (rather than averaging) keeps each pixel's noise as it is at full resolution, so the
    Otsu threshold sees the same intensity histogram, and it reads a 16th of the image.
    """
    height, width = stack.shape[1:]
    factor = sample_step(height, width, locate_side)
    offset = factor // 2
    distinct = sorted(set(layers))  # a repeated layer is the single-layer case: its mean is itself
    gray = stack[distinct[0], offset::factor, offset::factor].astype(np.float32 if stack.dtype.kind == "f" else np.uint32)
    for index in distinct[1:]:
        gray += stack[index, offset::factor, offset::factor]  # the sum is the mean up to a factor
    x, y, bw, bh = object_box(gray.astype(np.float32, copy=False))
    return x * factor + offset, y * factor + offset, bw * factor, bh * factor


def square_crop_origin(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int]:
    """Top-left corner and side of the min(H, W) square centred on the box, clamped inside."""
    x, y, w, h = box
    side = min(height, width)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return x0, y0, side


def select_channels(n: int, params: PreprocessParams) -> list[int]:
    """Indices of the channels to keep, in output order; -1 stands for an empty channel."""
    if params.channel_order:
        bad = [c for c in params.channel_order if not 0 <= c < n]
        if bad:
            raise PreprocessError(f"channel(s) {bad} asked for, but the image has {n} channel(s) (0..{n - 1})")
        order = list(params.channel_order)
    elif n > params.channels:
        raise PreprocessError(f"{n} channels: say which {params.channels} to keep, in order (--channels 0,1,2)")
    else:
        order = list(range(n))
    if len(order) == 1:
        return order * params.channels
    return (order + [-1] * params.channels)[:params.channels]


def preprocess_stack(stack: np.ndarray, params: PreprocessParams = PreprocessParams()) -> Crop:
    """Preprocess one stack (L, H, W) as ``params.stack`` says; the stack is only read."""
    if stack.ndim != 3:
        raise PreprocessError(f"expected a stack of shape (layers, height, width), got shape {stack.shape}")
    if not stack.dtype.isnative:  # OpenCV reads native byte order only
        stack = stack.astype(stack.dtype.newbyteorder("="))
    scale = unit_scale(stack)
    height, width = stack.shape[1:]
    if min(height, width) < MIN_SIDE:
        raise PreprocessError(f"image of {height}x{width} pixels: smaller than {MIN_SIDE} pixels on a side, too small "
                              "to crop (a thumbnail or a wrong axis order?)")
    if params.stack == "channels":
        layers = select_channels(stack.shape[0], params)
        side = min(height, width)
        x0, y0 = (width - side) // 2, (height - side) // 2
    else:
        layers = select_layers(stack, params.channels, params.max_layers,
                               sample_step(height, width, params.locate_side))
        x0, y0, side = square_crop_origin(locate_object(stack, layers, params.locate_side), height, width)
    resized: dict[int, np.ndarray] = {-1: np.zeros((params.size, params.size), np.uint16)}
    for index in set(layers) - {-1}:
        crop = stack[index, y0:y0 + side, x0:x0 + side]
        if scale == 1.0:  # uint16 stays uint16: OpenCV's area resize keeps 16 bits and rounds
            resized[index] = area_resize(crop, params.size)
        else:
            values = area_resize(crop.astype(np.float32), params.size)
            resized[index] = np.clip(np.rint(values * scale), 0, 65535).astype(np.uint16)
    return Crop(np.stack([resized[i] for i in layers]), x0, y0, side, layers)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average a square image down to size x size.

    An even side that stays at least 8x the output is first binned 2 x 2 (OpenCV's exact
    integer-factor path, several times faster than a fractional area resize of the full image),
    then area-resized. Against a one-step area resize this moves a 2054 -> 96 result by a few
    16-bit levels (mean ~3-5, at most ~75 of 65535 at the sharpest edges, under a third of one 8-bit
    step of 257; see tests/test_preprocess.py).
    """
    import cv2

    side = image.shape[0]
    while side % 2 == 0 and side // 2 >= 8 * size:  # at least 8 binned pixels per output pixel
        side //= 2
        image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
