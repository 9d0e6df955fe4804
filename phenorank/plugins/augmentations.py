"""Built-in augmentations: the five presets of seed 000 section 7.2, seed 003's ``corruptions``,
and ``inference``.

Every preset works on float tensors (C, H, W) in [0, 1] and returns one view of size x size in
[0, 1], so 16-bit information is never squeezed through 8 bits. In the seed's order:

1. random resized crop (``strong``: scale 0.08-1; ``sweet``: 0.4-1; aspect 3/4-4/3), or a plain
   resize (``resize`` presets);
2. with probability 0.5 one of the seven dihedral transforms that keep a square image free of
   black corners: horizontal flip, vertical flip, both, rotation 90 or 270, horizontal flip +
   rotation 90 or 270;
3. with probability 0.8 brightness and contrast jitter (``strong`` 0.8 / 0.8; ``sweet`` and
   ``resize`` brightness 0.2, contrast 0.35, the seed's "lower = 1 - 0.2 and 1 - 0.35
   consequently"; ``*-no-contrast`` drop the contrast part);
4. Gaussian blur, sigma 0.1-2, kernel 5, and sharpness x2, each with probability 0.5.

The z-score normalisation the seed applies after augmentation belongs to the model (it uses the
training set's channel statistics, stored with the checkpoint), so brightness changes survive it.
"""

from __future__ import annotations

from typing import Callable

from phenorank import hookimpl
from phenorank.registry import Augmentation

from .corruptions import SEVERITIES

class Dihedral:
    """With probability ``p`` one of the seven non-identity symmetries of the square."""

    CHOICES = ("h", "v", "hv", "r90", "r270", "h+r90", "h+r270")

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image):
        import torch

        if torch.rand(()) >= self.p:
            return image
        return self.apply(image, self.CHOICES[int(torch.randint(len(self.CHOICES), ()))])

    @staticmethod
    def apply(image, choice: str):
        import torch

        if choice == "h":
            return torch.flip(image, dims=(-1,))
        if choice == "v":
            return torch.flip(image, dims=(-2,))
        if choice == "hv":
            return torch.flip(image, dims=(-2, -1))
        if choice.startswith("h+"):
            image, choice = torch.flip(image, dims=(-1,)), choice[2:]
        return torch.rot90(image, k=1 if choice == "r90" else 3, dims=(-2, -1))


class ClampUnit:
    """Resampling can overshoot [0, 1] by a rounding error; views stay in range."""

    def __call__(self, image):
        return image.clamp(0.0, 1.0)


class PresetAugmentation(Augmentation):
    """A seed-000 augmentation pipeline; every step's parameters can be changed with -p."""

    defaults = {
        "crop": True, "scale": (0.4, 1.0), "ratio": (0.75, 4 / 3), "dihedral_p": 0.5,
        "brightness": 0.2, "contrast": 0.35, "jitter_p": 0.8,
        "blur_sigma": (0.1, 2.0), "blur_kernel": 5, "blur_p": 0.5, "sharpness": 2.0, "sharpness_p": 0.5,
    }

    def build(self, image_size: int) -> Callable:
        from torchvision.transforms import v2

        p = self.params
        steps = [v2.RandomResizedCrop(image_size, scale=tuple(p["scale"]), ratio=tuple(p["ratio"]), antialias=True)
                 if p["crop"] else v2.Resize((image_size, image_size), antialias=True),
                 Dihedral(p["dihedral_p"])]
        jitter = {k: p[k] for k in ("brightness", "contrast") if p[k]}
        if jitter:
            steps.append(v2.RandomApply([v2.ColorJitter(**jitter)], p=p["jitter_p"]))
        steps += [v2.RandomApply([v2.GaussianBlur(p["blur_kernel"], sigma=tuple(p["blur_sigma"]))], p=p["blur_p"]),
                  v2.RandomAdjustSharpness(p["sharpness"], p=p["sharpness_p"]), ClampUnit()]
        return v2.Compose(steps)


class Strong(PresetAugmentation):
    """SimCLR's own recipe: crop scale 0.08-1, brightness and contrast jitter 0.8."""

    name = "strong"
    defaults = {**PresetAugmentation.defaults, "scale": (0.08, 1.0), "brightness": 0.8, "contrast": 0.8}


class Sweet(PresetAugmentation):
    """Milder: crop scale 0.4-1 (every view keeps some spheroid), brightness 0.2, contrast 0.35."""

    name = "sweet"


class Resize(PresetAugmentation):
    """No crop, the whole well resized (the model sees debris around the spheroid); sweet jitter."""

    name = "resize"
    defaults = {**PresetAugmentation.defaults, "crop": False}


class SweetNoContrast(PresetAugmentation):
    """``sweet`` without contrast jitter (contrast separates grey untreated from dark treated)."""

    name = "sweet-no-contrast"
    defaults = {**PresetAugmentation.defaults, "contrast": 0.0}


class ResizeNoContrast(PresetAugmentation):
    """``resize`` without contrast jitter."""

    name = "resize-no-contrast"
    defaults = {**PresetAugmentation.defaults, "crop": False, "contrast": 0.0}


def coupled_copies(early, late, copies: int, seed: int = 0, brightness: float = 0.2,
                   blur_sigma: tuple[float, float] = (0.1, 2.0), blur_p: float = 0.5, sharpness: float = 2.0,
                   sharpness_p: float = 0.5):
    """Seed 000 section 9.1's augmentation of day-7 / day-10 pairs: each pair gets ``copies``
    extra versions, each with its own dihedral transform (never the same one twice for a pair,
    so at most 7) and its own brightness / blur / sharpness draw, applied alike to both images of
    the pair (the change from day 7 to day 10 stays what it was). No crop and no contrast, as
    the document says. ``early``, ``late``: float tensors (N, C, S, S) in [0, 1]. Returns the
    originals followed by the copies, as two tensors."""
    import torch
    from torchvision.transforms.v2 import functional as F

    if copies > len(Dihedral.CHOICES):
        raise ValueError(f"at most {len(Dihedral.CHOICES)} coupled copies (one per dihedral transform), got {copies}")
    generator = torch.Generator().manual_seed(seed)
    out_early, out_late = [early], [late]
    for index in range(len(early)):
        choices = torch.randperm(len(Dihedral.CHOICES), generator=generator)[:copies]
        for choice in choices:
            factor = 1 + brightness * (2 * float(torch.rand((), generator=generator)) - 1)
            sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * float(torch.rand((), generator=generator))
            blurred = float(torch.rand((), generator=generator)) < blur_p
            sharpened = float(torch.rand((), generator=generator)) < sharpness_p
            pair = []
            for image in (early[index], late[index]):
                image = F.adjust_brightness(Dihedral.apply(image, Dihedral.CHOICES[int(choice)]), factor)
                if blurred:
                    image = F.gaussian_blur(image, [5, 5], [sigma, sigma])
                if sharpened:
                    image = F.adjust_sharpness(image, sharpness)
                pair.append(image.clamp(0.0, 1.0))
            out_early.append(pair[0][None])
            out_late.append(pair[1][None])
    return torch.cat(out_early), torch.cat(out_late)


class CorruptionStep:
    """With probability ``p`` one of ``kinds`` at a random severity of its list (seed 003 4.1.4:
    corruptions as augmentations make a model steadier under them)."""

    def __init__(self, kinds: list[str], levels: dict[str, list[float]], p: float):
        self.kinds, self.levels, self.p = kinds, levels, p

    def __call__(self, image):
        import torch

        from .corruptions import corrupt

        if not self.kinds or torch.rand(()) >= self.p:
            return image
        kind = self.kinds[int(torch.randint(len(self.kinds), ()))]
        strength = self.levels[kind][int(torch.randint(len(self.levels[kind]), ()))]
        seed = int(torch.randint(2 ** 31 - 1, ()))
        return torch.from_numpy(corrupt(image[None].numpy(), kind, strength, seed)[0])


class Corruptions(Augmentation):
    """The whole image resized, a dihedral transform with probability 0.5, then with probability
    ``p`` one of seed 003's corruptions at one of its severities (``-p corruptions.defocus=...``
    changes a list, ``-p corruptions.kinds=defocus,noise`` the choice)."""

    name = "corruptions"

    defaults = {"kinds": list(SEVERITIES), "p": 0.8, "dihedral_p": 0.5,
                **{kind: list(levels) for kind, levels in SEVERITIES.items()}}

    def build(self, image_size: int) -> Callable:
        from torchvision.transforms import v2

        from .corruptions import chosen_kinds, severities

        kinds = chosen_kinds(self.params["kinds"], self.name)
        levels = {kind: severities(self.params, kind, self.name) for kind in kinds}
        return v2.Compose([v2.Resize((image_size, image_size), antialias=True), Dihedral(self.params["dihedral_p"]),
                           CorruptionStep(kinds, levels, float(self.params["p"])), ClampUnit()])


class Inference(Augmentation):
    """Resize only: what encoders see when they embed."""

    name = "inference"

    def build(self, image_size: int) -> Callable:
        from torchvision.transforms import v2

        return v2.Resize((image_size, image_size), antialias=True)


@hookimpl
def register_augmentations(register):
    for plugin in (Strong, Sweet, Resize, SweetNoContrast, ResizeNoContrast, Corruptions, Inference):
        register(plugin)
