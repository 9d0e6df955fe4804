"""The raw-pixel baseline of seed 000: the preprocessed image itself, flattened."""

from __future__ import annotations

import numpy as np

from phenorank.registry import Encoder


class RawPixelsEncoder(Encoder):
    """Raw pixels: the 3 x S x S preprocessed image flattened, 16-bit values / 65535."""

    name = "raw"
    heads = ("pixels",)

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"pixels": images.reshape(len(images), -1).astype(np.float32, copy=False)}
