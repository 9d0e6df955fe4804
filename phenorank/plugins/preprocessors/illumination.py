"""Seed 001's illumination correction, fitted once per plate and channel.

For each image of the group, bright areas are suppressed iteratively: pixels more than ``sd``
standard deviations above the local median take the local median (the direct neighbourhood's
value), ``iterations`` times. The per-pixel median over the images is the artificial background;
smoothed by a Gaussian it gives the correction image, the background's mean divided by the
smoothed background. Every image of the group is multiplied by it.

Uneven illumination and vignetting vary over hundreds of pixels, so the background is estimated
on images area-averaged to at most ``work_side`` pixels and the correction is resized back to full
resolution (linear interpolation): the same correction at a small fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError, Preprocessor


def suppress_bright(image: np.ndarray, sd: float, iterations: int, window: int) -> np.ndarray:
    """Pixels above the local median by more than ``sd`` image SDs take the local median."""
    from scipy.ndimage import median_filter

    image = image.astype(np.float64, copy=True)
    for _ in range(iterations):
        local = median_filter(image, size=window, mode="reflect")
        bright = image - local > sd * image.std()
        if not bright.any():
            break
        image[bright] = local[bright]
    return image


class Illumination(Preprocessor):
    """Per plate and channel: correction = mean(background) / Gaussian(background), background =
    per-pixel median of the images after bright areas (> ``sd`` SDs above the local median of a
    ``window``-pixel neighbourhood, ``iterations`` passes) are suppressed; ``sigma``: the
    Gaussian's width as a fraction of the image side. Computed at ``work_side`` pixels."""

    name = "illumination"
    fitted = True
    fit_by = "plate"
    defaults = {"sd": 3.0, "iterations": 3, "window": 15, "sigma": 0.05, "work_side": 256}

    def fit(self, stacks, full_scale: float) -> np.ndarray:
        """``stacks``: the plate's images (any iterable; each is reduced as it comes, so a plate
        of any size fits in memory)."""
        import cv2
        from scipy.ndimage import gaussian_filter

        reduced: list[list[np.ndarray]] = []
        shape = None
        for stack in stacks:
            if shape is None:
                shape = stack.shape
                scale = min(1.0, int(self.params["work_side"]) / max(shape[1:]))
                small = (max(1, round(shape[2] * scale)), max(1, round(shape[1] * scale)))
                reduced = [[] for _ in range(shape[0])]
            elif stack.shape != shape:
                raise PluginError(f"illumination: the images of one plate differ in shape ({shape} and {stack.shape}); "
                                  "correct them in groups of one shape")
            for c in range(shape[0]):
                reduced[c].append(cv2.resize(np.asarray(stack[c], np.float32), small, interpolation=cv2.INTER_AREA))
        if shape is None:
            raise PluginError("illumination: no image to fit on")
        corrections = []
        for channel in reduced:
            cleaned = [suppress_bright(r, float(self.params["sd"]), int(self.params["iterations"]),
                                       int(self.params["window"])) for r in channel]
            background = np.median(np.stack(cleaned), axis=0)
            smooth = gaussian_filter(background, float(self.params["sigma"]) * max(small), mode="nearest")
            smooth = np.maximum(smooth, 1e-6 * max(float(smooth.max()), 1e-12))
            corrections.append(cv2.resize((background.mean() / smooth).astype(np.float32), (shape[2], shape[1]),
                                          interpolation=cv2.INTER_LINEAR))
        return np.stack(corrections)

    def apply(self, stack, full_scale, state=None):
        if state is None:
            raise PluginError("illumination: no correction fitted for this image's plate")
        if state.shape != stack.shape:
            raise PluginError(f"illumination: the correction is {state.shape[1]}x{state.shape[2]} with "
                              f"{state.shape[0]} channels, the image {stack.shape[1]}x{stack.shape[2]} with "
                              f"{stack.shape[0]}")
        return (stack * state).astype(np.float32)
