"""Baselines every comparison should carry, because both score surprisingly well in published
benchmarks: how much of a well is covered by cells and how many objects it holds (``cell-count``),
and a network of the same architecture as the ImageNet ones with random weights (``random-init``):
what a learned or pretrained encoder adds has to beat these."""

from __future__ import annotations

import numpy as np

from phenorank.registry import Encoder, PluginError

from .imagenet import IMAGENET_MEAN, IMAGENET_STD

COUNT_FEATURES = ("foreground_fraction", "objects", "mean_object_area", "mean_intensity")


def count_features(gray: np.ndarray, polarity: str, min_area: int) -> np.ndarray:
    """COUNT_FEATURES of one grayscale image (H, W) in [0, 1]: the Otsu foreground (dark objects
    on bright, or bright on dark), its connected objects of at least ``min_area`` pixels; areas
    are fractions of the image."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    if gray.max() - gray.min() < 1e-6:
        return np.array([0.0, 0.0, 0.0, float(gray.mean())], np.float32)
    threshold = threshold_otsu(gray)
    foreground = gray <= threshold if polarity == "dark" else gray > threshold
    labels = label(foreground, connectivity=2)
    areas = np.bincount(labels.ravel())[1:]
    kept = areas[areas >= min_area]
    total = gray.size
    return np.array([foreground.mean(), len(kept), kept.mean() / total if len(kept) else 0.0, gray.mean()],
                    np.float32)


class CellCount(Encoder):
    """Foreground fraction, number of objects, mean object area and mean intensity of each image
    (mean of its channels, Otsu threshold): the cell-count baseline. ``polarity`` dark (bright-field
    spheroids) or bright (fluorescence)."""

    name = "cell-count"
    heads = ("backbone",)
    defaults = {"polarity": "dark", "min_area": 4}

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.params["polarity"] not in ("dark", "bright"):
            raise PluginError(f"cell-count: polarity must be 'dark' or 'bright', got {self.params['polarity']!r}")
        gray = np.asarray(images, np.float32).mean(axis=1)
        return {"backbone": np.stack([count_features(g, self.params["polarity"], int(self.params["min_area"]))
                                      for g in gray])}

    def feature_names(self, head: str) -> list[str]:
        return list(COUNT_FEATURES)


class RandomInit(Encoder):
    """A timm network (``architecture``, ResNet18 by default) with random weights drawn from
    ``seed``, ImageNet normalisation, pooled features: the untrained-architecture baseline."""

    name = "random-init"
    heads = ("backbone",)
    defaults = {"architecture": "resnet18", "seed": 0}

    def __init__(self, **params):
        super().__init__(**params)
        self.model = None

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import timm
        import torch

        from .training import predict

        if self.model is None:
            torch.manual_seed(int(self.params["seed"]))
            try:
                self.model = timm.create_model(self.params["architecture"], pretrained=False, num_classes=0).eval()
            except RuntimeError as exc:
                raise PluginError(f"random-init: {exc}") from None
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

        def forward(x):
            return {"backbone": self.model((x - mean.to(x.device)) / std.to(x.device))}

        with torch.no_grad():
            return predict(forward, self.model, images)
