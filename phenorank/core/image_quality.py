"""Seed 001's image artifact checks, per image and layer (channel or focal plane), computed on the
full-resolution source at ingest, before any crop or resize:

- focus: the slope of the radially summed log-log power spectrum (CellProfiler's
  ``PowerLogLogSlope``, the measure seed 001 cites; Bray et al. 2012). Blur removes high
  frequencies, so a blurred image has a steeper, more negative slope;
- saturation: the percent of pixels at the image's maximum (CellProfiler's ``PercentMaximal``): a
  few pixels normally, a large share when the camera clipped;
- intensity: median, standard deviation, quantiles 1 / 25 / 75 / 99 % and the total, which seed
  001 plotted as histograms per channel and plate to find outliers.

Integer images take their quantiles from one histogram (one pass); float images from
``numpy.quantile``; layers over two megapixels from a quarter of their pixels. The spectrum is
taken on the central ``window`` square: its cost grows with the area, and a 512-px square at full
resolution keeps every frequency the slope is fitted on.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

STATISTICS = ("focus_slope", "percent_maximal", "mean", "sd", "median", "q01", "q25", "q75", "q99", "total")
WINDOW = 512


def power_log_log_slope(layer: np.ndarray, window: int | None = WINDOW) -> float:
    """Slope of log(power summed over a ring) against log(ring radius), rings 2 .. side/8 (DC and
    the lowest ring skipped, the high end cut early against edge effects), on the image scaled by
    its mean absolute deviation so the slope does not depend on brightness: CellProfiler's
    definition (centrosome's ``rps``), with NumPy's FFT and one ``bincount``."""
    image = np.asarray(centre(layer, window), np.float64)
    if image.ndim != 2 or min(image.shape) < 24 or np.ptp(image) == 0:
        return float("nan")
    image = image - image.mean()
    spread = np.median(np.abs(image))
    if spread > 0:
        image = image / spread
    power = np.abs(np.fft.fft2(image)) ** 2
    radius, rings = ring_labels(image.shape)
    summed = np.bincount(radius, weights=power.ravel(), minlength=rings[-1] + 1)[rings]
    valid = summed > 0
    if valid.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(rings[valid]), np.log(summed[valid]), 1)[0])


@lru_cache(maxsize=8)
def ring_labels(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each frequency's ring (flattened) and the rings fitted. The ring is drawn as centrosome
    draws it (index i and side-1-i share a ring), so the slopes equal CellProfiler's to the last
    digit. Cached: every layer of a screen has one of a few shapes."""
    rows = np.minimum(np.arange(shape[0]), shape[0] - 1 - np.arange(shape[0]))
    cols = np.minimum(np.arange(shape[1]), shape[1] - 1 - np.arange(shape[1]))
    radius = np.floor(np.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)).astype(np.int64) + 1
    return radius.ravel(), np.arange(2, int(np.floor(min(shape) / 8.0)))


def centre(layer: np.ndarray, window: int | None) -> np.ndarray:
    if not window:
        return layer
    height, width = layer.shape
    top, left = max((height - window) // 2, 0), max((width - window) // 2, 0)
    return layer[top:top + window, left:left + window]


SAMPLE_ABOVE = 2 ** 21  # pixels: larger layers are summarised from every 2nd pixel of every 2nd row


def intensity_statistics(layer: np.ndarray) -> dict[str, float]:
    """Percent at the maximum, mean, sd, median, quantiles and total of one layer. A layer over
    two megapixels (2054 px) is summarised from a quarter of its pixels, every 2nd of every 2nd
    row: a million values pin a quantile to within a thousandth of its rank at a third of the
    cost; the total is then the sample's mean times the pixel count."""
    full_size = layer.size
    if layer.size > SAMPLE_ABOVE:
        layer = layer[::2, ::2]
    if layer.dtype.kind in "ub" and layer.dtype.itemsize <= 2:
        counts = np.bincount(np.ascontiguousarray(layer).ravel(), minlength=2 ** (8 * layer.dtype.itemsize))
        levels = np.flatnonzero(counts)
        counts = counts[levels].astype(np.float64)
        cumulative = np.cumsum(counts)
        n = cumulative[-1]
        values = levels.astype(np.float64)
        mean = float(counts @ values / n)
        variance = float(counts @ (values - mean) ** 2 / n)

        def quantile(q: float) -> float:  # numpy's default ('linear') between the two order statistics
            position = q * (n - 1)
            low, high = int(np.floor(position)), int(np.ceil(position))
            a = values[np.searchsorted(cumulative, low + 1)]
            b = values[np.searchsorted(cumulative, high + 1)]
            return float(a + (b - a) * (position - low))

        at_max = counts[-1] / n
        median, q01, q25, q75, q99 = (quantile(q) for q in (0.5, 0.01, 0.25, 0.75, 0.99))
        total = mean * full_size
    else:
        flat = np.asarray(layer, np.float64).ravel()
        flat = flat[np.isfinite(flat)]
        if not len(flat):
            return {name: float("nan") for name in STATISTICS if name != "focus_slope"}
        mean, variance = float(flat.mean()), float(flat.var())
        median, q01, q25, q75, q99 = (float(v) for v in np.quantile(flat, [0.5, 0.01, 0.25, 0.75, 0.99]))
        at_max = float(np.mean(flat == flat.max()))
        total = mean * full_size
    return {"percent_maximal": 100.0 * float(at_max), "mean": mean, "sd": float(np.sqrt(variance)),
            "median": median, "q01": q01, "q25": q25, "q75": q75, "q99": q99, "total": total}


def layer_statistics(stack: np.ndarray, window: int | None = WINDOW) -> list[dict]:
    """One row per layer of an (L, H, W) stack: ``layer`` and every name of ``STATISTICS``."""
    return [{"layer": index, "focus_slope": power_log_log_slope(layer, window), **intensity_statistics(layer)}
            for index, layer in enumerate(stack)]
