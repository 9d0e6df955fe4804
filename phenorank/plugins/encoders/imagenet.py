"""Frozen ImageNet ResNets from timm, with weights from a file the user names (or timm's cache).

Nothing is downloaded at run time and random weights are never used silently: without weights,
embedding stops with a message that says how to provide them.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import Encoder, PluginError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetResNet(Encoder):
    architecture = "resnet18"
    heads = ("backbone",)
    defaults = {"weights": ""}

    def __init__(self, **params):
        super().__init__(**params)
        self.model = None

    def build(self):
        return load_resnet(self.architecture, self.params["weights"] or self._from_timm_cache(), self.name)

    def _from_timm_cache(self):
        path = cached_weights(self.architecture)
        if path is None:
            raise PluginError(
                f"{self.name} needs ImageNet weights and found none. Download them once where there is "
                f"internet, e.g. `timm.create_model('{self.architecture}', pretrained=True)` (fills timm's cache), or "
                f"save a state dict / .safetensors file and pass -p {self.name}.weights=/path/to/file. "
                "phenorank never downloads at run time and never embeds with random weights.")
        return path

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from .training import predict

        if self.model is None:
            self.model = self.build().eval()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

        def forward(x):
            return {"backbone": self.model((x - mean.to(x.device)) / std.to(x.device))}

        return predict(forward, self.model, images)


def load_resnet(architecture: str, path: str, who: str):
    """A timm ResNet without its classifier, with exactly the weights in ``path``."""
    import timm

    model = timm.create_model(architecture, pretrained=False, num_classes=0)
    state = read_state_dict(path, who)
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith(("fc.", "head.fc."))}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the wrong shape
        raise PluginError(f"{who}: {path} does not hold {architecture} weights: "
                          f"{str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise PluginError(f"{who}: {path} does not hold {architecture} weights "
                          f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)")
    return model


def read_state_dict(path: str, who: str) -> dict:
    """A state dict (name -> tensor) from a ``.safetensors`` or torch file, read without running
    code (weights only); whatever is wrong with the file (empty, damaged, random bytes, another
    kind of object) is one PluginError naming it."""
    import torch

    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds for a bad file
        raise PluginError(f"{who}: cannot read weights file {path}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'empty or damaged'}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise PluginError(f"{who}: {path} holds a {type(state).__name__}, not a state dict of named tensors")
    return state


def cached_weights(architecture: str) -> str | None:
    """The file of timm's default ImageNet weights for ``architecture`` if a download left it in
    the Hugging Face or torch hub cache; looked up without any network access."""
    import timm

    config = timm.models.get_pretrained_cfg(architecture)
    if config is None:
        return None
    if config.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(config.hf_hub_id, filename)
            if isinstance(found, str):
                return found
    if config.url:
        import os

        import torch

        candidate = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(config.url))
        if os.path.isfile(candidate):
            return candidate
    return None


class ImageNetResNet18(ImageNetResNet):
    """timm ResNet18, frozen, ImageNet normalisation; 512-d pooled features."""

    name = "imagenet-resnet18"
    architecture = "resnet18"


class ImageNetResNet50(ImageNetResNet):
    """timm ResNet50, frozen, ImageNet normalisation; 2048-d pooled features."""

    name = "imagenet-resnet50"
    architecture = "resnet50"
