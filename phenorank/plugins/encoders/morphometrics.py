"""Classic morphometrics of the segmented object: the baseline a biologist already trusts.

The object is the largest dark region of the inverted Otsu mask (holes filled), or the largest
bright one with ``polarity=bright`` (fluorescent cells). Lengths are
given as fractions of the crop side and areas as fractions of the crop area, so the features
do not depend on the preprocessing size and share one scale of roughly [0, 1]; intensities are
the 16-bit values / 65535.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import Encoder, PluginError

FEATURES = (
    "area", "perimeter", "circularity", "equivalent_diameter", "solidity", "eccentricity",
    "mean_inside", "std_inside", "mean_around", "std_around", "debris_area",
)


def object_features(gray: np.ndarray, polarity: str = "dark") -> np.ndarray:
    """The FEATURES of one grayscale image (H, W) in [0, 1]; the object is dark on a bright
    background (bright-field) or, with ``polarity="bright"``, bright on dark (fluorescence)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    side = gray.shape[0]
    if gray.max() - gray.min() < 1e-6:
        return np.zeros(len(FEATURES), np.float32)
    dark = gray <= threshold_otsu(gray) if polarity == "dark" else gray > threshold_otsu(gray)
    labels = label(dark, connectivity=2)
    largest = max(regionprops(labels), key=lambda r: r.area)
    obj = ndimage.binary_fill_holes(labels == largest.label)
    props = regionprops(obj.astype(np.uint8))[0]
    area, perimeter = float(props.area), float(props.perimeter)
    distance = ndimage.distance_transform_edt(~obj)
    ring = (distance > 0) & (distance <= max(2.0, 0.15 * props.equivalent_diameter_area))
    inside, around = gray[obj], gray[ring]
    return np.array([
        area / side ** 2,
        perimeter / side,
        4 * np.pi * area / perimeter ** 2 if perimeter > 0 else 0.0,
        props.equivalent_diameter_area / side,
        props.solidity,
        props.eccentricity,
        inside.mean(), inside.std(),
        around.mean() if around.size else 0.0, around.std() if around.size else 0.0,
        (dark & ~obj).sum() / side ** 2,
    ], dtype=np.float32)


class MorphometricsEncoder(Encoder):
    """Area, perimeter, circularity, diameter, shape and intensity inside/around the object, debris."""

    name = "morphometrics"
    heads = ("features",)
    defaults = {"polarity": "dark"}  # dark objects on bright (spheroids) | bright on dark (fluorescent cells)

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["polarity"] not in ("dark", "bright"):
            raise PluginError(f"morphometrics: polarity must be dark or bright, got {self.params['polarity']!r}")

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        gray = images.mean(axis=1)
        return {"features": np.stack([object_features(g, self.params["polarity"]) for g in gray])}

    def feature_names(self, head: str) -> list[str]:
        return list(FEATURES)
