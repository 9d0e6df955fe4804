"""Built-in segmenter: a classical foreground (Otsu, or the two-component GMM of seed 002) split
into objects by a watershed on the distance transform.

A segmentation model installed by the user (Cellpose, StarDist, ...) replaces it by registering
a ``Segmenter`` whose ``segment`` returns a label image; nothing else changes.
"""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
from phenorank.registry import PluginError, Segmenter


class WatershedSegmenter(Segmenter):
    """Otsu or two-class GMM foreground, holes filled, touching objects split by watershed."""

    name = "watershed"
    defaults = {
        "channel": -1,  # which channel shows the objects; -1: the mean of all channels
        "threshold": "otsu",  # otsu | gmm
        "polarity": "bright",  # bright objects on dark (fluorescence) | dark on bright (bright-field)
        "smooth": 1.0,  # Gaussian sigma (pixels) before thresholding
        "min_distance": 7,  # pixels between the centres of two touching objects that get split
        "min_area": 20,  # foreground specks smaller than this (pixels) are dropped
        "seed": 0,
    }

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["threshold"] not in ("otsu", "gmm"):
            raise PluginError(f"watershed: threshold must be otsu or gmm, got {self.params['threshold']!r}")
        if self.params["polarity"] not in ("bright", "dark"):
            raise PluginError(f"watershed: polarity must be bright or dark, got {self.params['polarity']!r}")

    def segment(self, image: np.ndarray) -> np.ndarray:
        from scipy import ndimage
        from skimage.feature import peak_local_max
        from skimage.filters import gaussian
        from skimage.segmentation import watershed

        channel = self.params["channel"]
        if channel >= image.shape[0]:
            raise PluginError(f"watershed: channel {channel} asked for, the image has {image.shape[0]}")
        gray = image.mean(axis=0) if channel < 0 else image[channel]
        if self.params["smooth"] > 0:
            gray = gaussian(gray, sigma=self.params["smooth"], preserve_range=True)
        if self.params["polarity"] == "dark":
            gray = gray.max() - gray
        if gray.max() - gray.min() < 1e-9:
            return np.zeros(gray.shape, np.int32)
        foreground = gray > self.foreground_threshold(gray)
        foreground = ndimage.binary_fill_holes(foreground)
        components, _ = ndimage.label(foreground)
        sizes = np.bincount(components.ravel())
        small = sizes < self.params["min_area"]
        small[0] = False
        if small.any():  # specks of foreground: noise, not objects
            foreground &= ~small[components]
            components, _ = ndimage.label(foreground)
        distance = ndimage.distance_transform_edt(foreground)
        peaks = peak_local_max(distance, min_distance=max(1, self.params["min_distance"]), labels=components,
                               exclude_border=False)
        markers = np.zeros(gray.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        # A component without a peak (flat, tiny) still becomes one object.
        missing = np.setdiff1d(np.unique(components[foreground]), np.unique(components[tuple(peaks.T)]))
        for offset, component in enumerate(missing, start=len(peaks) + 1):
            markers[components == component] = 0
            y, x = np.argwhere(components == component)[0]
            markers[y, x] = offset
        return watershed(-distance, markers, mask=foreground).astype(np.int32)

    def foreground_threshold(self, gray: np.ndarray) -> float:
        from skimage.filters import threshold_otsu

        if self.params["threshold"] == "otsu":
            return float(threshold_otsu(gray))
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(self.params["seed"])
        values = gray.reshape(-1, 1)
        sample = values[rng.choice(len(values), size=min(len(values), 20000), replace=False)]
        gmm = GaussianMixture(2, random_state=self.params["seed"]).fit(sample)
        bright = int(np.argmax(gmm.means_.ravel()))
        # The threshold is where the bright component becomes the more probable one.
        grid = np.linspace(gray.min(), gray.max(), 512).reshape(-1, 1)
        posterior = gmm.predict_proba(grid)[:, bright]
        above = np.flatnonzero(posterior > 0.5)
        return float(grid[above[0], 0]) if len(above) else float(gray.max())


@hookimpl
def register_segmenters(register):
    from .cellpose_segmenter import CellposeSegmenter  # imports Cellpose itself only when it segments

    register(WatershedSegmenter)
    register(CellposeSegmenter)
