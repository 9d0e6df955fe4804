"""Robustness to acquisition artefacts (seed 003): corrupt the images at graded strengths, embed
them again with the same encoder, and measure how far the embeddings move and how much a chosen
evaluator's score drops.

Corruptions act on the preprocessed float images in [0, 1], five severities each (seed 003's
defocus radii; the intensity and contrast gains of its signed scale, darkening side):

    noise      additive Gaussian noise, sigma 0.01, 0.02, 0.04, 0.08, 0.16 of the full range
    blur       Gaussian defocus, sigma 0.5, 1, 1.5, 2, 3 pixels
    intensity  all values x 0.8, 0.6, 0.45, 0.3, 0.15
    contrast   values pulled towards each image's mean, contrast x 0.8, 0.6, 0.45, 0.3, 0.15
    geometry   rotation by 2, 4, 8, 12, 20 degrees with zoom x 1.02, 1.04, 1.08, 1.12, 1.2

Movement = mean distance between an image's clean and corrupted embedding, divided by the
median distance between two clean embeddings (so 1 = as far as a typical other image; encoders
of different scales compare). Drop = the chosen measure on clean embeddings minus on corrupted.
Every corruption uses the same random draw at every severity, so severities differ only in
strength.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

SEVERITIES = {
    "noise": (0.01, 0.02, 0.04, 0.08, 0.16),
    "blur": (0.5, 1.0, 1.5, 2.0, 3.0),
    "intensity": (0.8, 0.6, 0.45, 0.3, 0.15),
    "contrast": (0.8, 0.6, 0.45, 0.3, 0.15),
    "geometry": (2.0, 4.0, 8.0, 12.0, 20.0),
}


def corrupt(images: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """One corruption of float images (N, C, H, W) in [0, 1] at one strength; clipped to [0, 1]."""
    import cv2

    images = np.asarray(images, dtype=np.float32)
    if kind == "noise":
        noise = np.random.default_rng(seed).standard_normal(images.shape).astype(np.float32)
        out = images + strength * noise
    elif kind == "blur":
        out = np.stack([[cv2.GaussianBlur(c, (0, 0), strength, borderType=cv2.BORDER_REFLECT) for c in img]
                        for img in images])
    elif kind == "intensity":
        out = images * strength
    elif kind == "contrast":
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        out = mean + (images - mean) * strength
    elif kind == "geometry":
        side_h, side_w = images.shape[2:]
        matrix = cv2.getRotationMatrix2D((side_w / 2, side_h / 2), strength, 1 + strength / 100)
        out = np.stack([[cv2.warpAffine(c, matrix, (side_w, side_h), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT) for c in img] for img in images])
    else:
        raise PluginError(f"robustness: unknown corruption {kind!r}; known: {', '.join(SEVERITIES)}")
    return np.clip(out, 0.0, 1.0)


def movement(clean: np.ndarray, corrupted: np.ndarray, scale: float) -> float:
    return float(np.linalg.norm(corrupted - clean, axis=1).mean() / scale)


def typical_distance(x: np.ndarray) -> float:
    """Median euclidean distance between two different items."""
    from scipy.spatial.distance import pdist

    distances = pdist(np.asarray(x, dtype=np.float64))
    median = float(np.median(distances)) if len(distances) else 0.0
    return median if median > 0 else 1.0


class Robustness(Evaluator):
    """How far embeddings move under noise, blur, intensity, contrast and small rotation/zoom at
    five strengths, and how much the ``measure`` of an ``evaluator`` drops (seed 003)."""

    name = "robustness"
    needs = "encoder"
    defaults = {"corruptions": list(SEVERITIES), "evaluator": "clustering-kmeans", "measure": "ari",
                "max_images": 200, "seed": 0}

    def evaluate(self, subject: Subject) -> Evaluation:
        from phenorank.registry import get_registry

        if subject.images is None or subject.encode is None:
            raise PluginError("robustness needs the images and the encoder of the embedding set")
        kinds = self.params["corruptions"]
        kinds = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
        unknown = [k for k in kinds if k not in SEVERITIES]
        if unknown:
            raise PluginError(f"robustness: unknown corruption(s) {', '.join(unknown)}; known: {', '.join(SEVERITIES)}")
        seed = int(self.params["seed"])
        rng = np.random.default_rng(seed)
        n = len(subject.samples)
        rows = np.sort(rng.choice(n, size=min(n, int(self.params["max_images"])), replace=False))
        samples = subject.samples.subset(np.isin(np.arange(n), rows))
        images = subject.images(rows)
        clean = subject.encode(images)
        scale = typical_distance(clean)
        judge = get_registry().create("evaluator", self.params["evaluator"]) if self.params["evaluator"] else None
        if judge is not None and judge.needs != "embeddings":
            raise PluginError(f"robustness: evaluator {judge.name!r} does not judge embeddings")
        measure = self.params["measure"]

        def score(vectors: np.ndarray) -> float:
            values = judge.evaluate(Subject(samples, embeddings=vectors)).values
            if measure not in values:
                raise PluginError(f"robustness: {judge.name} gives no {measure!r} (it gives {', '.join(values)})")
            return float(values[measure])

        baseline = score(clean) if judge else float("nan")
        values: dict[str, float] = {"baseline": baseline} if judge else {}
        table = {}
        for kind in kinds:
            for level, strength in enumerate(SEVERITIES[kind], start=1):
                moved = subject.encode(corrupt(images, kind, strength, seed))
                values[f"{kind}_{level}_movement"] = movement(clean, moved, scale)
                if judge:
                    values[f"{kind}_{level}_drop"] = baseline - score(moved)
                table[f"{kind}_{level}"] = strength
        moves = [v for k, v in values.items() if k.endswith("_movement")]
        values["movement_mean"] = float(np.mean(moves))
        if judge:
            values["drop_max"] = float(max(v for k, v in values.items() if k.endswith("_drop")))
        return Evaluation(values=values, details={"n_images": len(rows), "strengths": table,
                                                  "evaluator": self.params["evaluator"], "measure": measure,
                                                  "typical_distance": scale})
