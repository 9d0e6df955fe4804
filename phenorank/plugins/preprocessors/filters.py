"""Per-image preprocessing steps, each channel on its own, delegating to scikit-image.

Parameters that differ by channel (seed 001 removed outliers with radius 10 / deviation 50 in the
nuclei channel and 50 / 2000 in the borders channel) take a list, one value per channel; the last
value serves the channels beyond it.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Preprocessor


def per_channel(values, index: int) -> float:
    values = values if isinstance(values, (list, tuple)) else [values]
    return float(values[min(index, len(values) - 1)])


class Outliers(Preprocessor):
    """Selective median filter (seed 001; ImageJ's "Remove Outliers"): a pixel further than
    ``deviation`` (in the file's units) from the median of the disk of ``radius`` around it takes
    that median; ``which`` = bright, dark or both."""

    name = "outliers"
    defaults = {"radius": [10], "deviation": [50.0], "which": "bright"}

    def apply(self, stack, full_scale, state=None):
        from skimage.filters import median
        from skimage.morphology import disk

        which = self.params["which"]
        if which not in ("bright", "dark", "both"):
            raise PluginError(f"outliers: which must be bright, dark or both, got {which!r}")
        out = np.empty_like(stack)
        for c, channel in enumerate(stack):
            local = median(channel, disk(int(per_channel(self.params["radius"], c))))
            difference = channel - local
            limit = per_channel(self.params["deviation"], c)
            replace = {"bright": difference > limit, "dark": difference < -limit,
                       "both": np.abs(difference) > limit}[which]
            out[c] = np.where(replace, local, channel)
        return out


class RollingBall(Preprocessor):
    """Background subtraction with scikit-image's rolling ball (``restoration.rolling_ball``) of
    ``radius`` pixels (seed 001: 50)."""

    name = "rolling-ball"
    defaults = {"radius": [50]}

    def apply(self, stack, full_scale, state=None):
        from skimage.restoration import rolling_ball

        return np.stack([channel - rolling_ball(channel, radius=per_channel(self.params["radius"], c))
                         for c, channel in enumerate(stack)]).astype(np.float32)


class Median(Preprocessor):
    """Median filter over a disk of ``radius`` pixels (seed 001: 2), scikit-image's
    ``filters.median``."""

    name = "median"
    defaults = {"radius": [2]}

    def apply(self, stack, full_scale, state=None):
        from skimage.filters import median
        from skimage.morphology import disk

        return np.stack([median(channel, disk(int(per_channel(self.params["radius"], c))))
                         for c, channel in enumerate(stack)]).astype(np.float32)


class TotalVariation(Preprocessor):
    """Total-variation denoising (Chambolle; scikit-image's ``restoration.denoise_tv_chambolle``)
    with ``weight`` on the image scaled to [0, 1]."""

    name = "tv"
    defaults = {"weight": [0.1]}

    def apply(self, stack, full_scale, state=None):
        from skimage.restoration import denoise_tv_chambolle

        return np.stack([denoise_tv_chambolle(channel / full_scale, weight=per_channel(self.params["weight"], c))
                         * full_scale for c, channel in enumerate(stack)]).astype(np.float32)


class Clahe(Preprocessor):
    """Contrast-limited adaptive histogram equalisation (seed 004), scikit-image's
    ``exposure.equalize_adapthist`` with ``clip_limit`` and ``kernel_size`` (0: an eighth of the
    image) on the image scaled to [0, 1]."""

    name = "clahe"
    defaults = {"clip_limit": 0.01, "kernel_size": 0}

    def apply(self, stack, full_scale, state=None):
        from skimage.exposure import equalize_adapthist

        kernel = int(self.params["kernel_size"]) or None
        return np.stack([equalize_adapthist(np.clip(channel / full_scale, 0, 1), kernel_size=kernel,
                                            clip_limit=float(self.params["clip_limit"])) * full_scale
                         for channel in stack]).astype(np.float32)


class CentreCrop(Preprocessor):
    """The centred square of ``side`` pixels (seed 001: 1536 of 2048, whose margins are less in
    focus); an image smaller than that is left whole."""

    name = "centre-crop"
    defaults = {"side": 1536}

    def apply(self, stack, full_scale, state=None):
        side = int(self.params["side"])
        height, width = stack.shape[1:]
        if side >= min(height, width):
            return stack
        top, left = (height - side) // 2, (width - side) // 2
        return stack[:, top:top + side, left:left + side]


class ZScore(Preprocessor):
    """Per image and channel: (x - mean) / SD, stored on the file's scale as ``0.5 + z / (2 *
    span)`` of full scale, so ``span`` SDs either side of the mean fill the range (default 5)."""

    name = "zscore"
    defaults = {"span": 5.0}

    def apply(self, stack, full_scale, state=None):
        mean = stack.mean(axis=(1, 2), keepdims=True)
        sd = stack.std(axis=(1, 2), keepdims=True)
        z = (stack - mean) / np.where(sd > 0, sd, 1.0)
        return ((0.5 + z / (2 * float(self.params["span"]))) * full_scale).astype(np.float32)
