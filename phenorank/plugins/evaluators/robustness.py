"""Robustness to acquisition artefacts (seed 003): corrupt the images at graded strengths, embed
them again with the same encoder, and measure how far the embeddings move and how much a chosen
evaluator's score drops.

The corruptions and their severities are seed 003's table (see ``phenorank.plugins.corruptions``);
each severity list can be changed, e.g. ``-p robustness.defocus=0.5,1,2``.

Movement = mean distance between an image's clean and corrupted embedding, divided by the
median distance between two clean embeddings (so 1 = as far as a typical other image; encoders
of different scales compare). Drop = the chosen measure on clean embeddings minus on corrupted.
Every corruption uses the same random draw at every severity, so severities differ only in
strength.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

from ..corruptions import SEVERITIES, chosen_kinds, corrupt, severities


def movement(clean: np.ndarray, corrupted: np.ndarray, scale: float) -> float:
    return float(np.linalg.norm(corrupted - clean, axis=1).mean() / scale)


def typical_distance(x: np.ndarray) -> float:
    """Median euclidean distance between two different items."""
    from scipy.spatial.distance import pdist

    distances = pdist(np.asarray(x, dtype=np.float64))
    median = float(np.median(distances)) if len(distances) else 0.0
    return median if median > 0 else 1.0


class Robustness(Evaluator):
    """How far embeddings move under seed 003's corruptions (defocus, contrast down and up,
    brightness up and down) and noise and rotation/zoom, five severities each, and how much the
    ``measure`` of an ``evaluator`` drops."""

    name = "robustness"
    needs = "encoder"
    defaults = {"corruptions": list(SEVERITIES), "evaluator": "clustering-kmeans", "measure": "ari",
                "max_images": 200, "seed": 0, **{kind: list(levels) for kind, levels in SEVERITIES.items()}}

    def evaluate(self, subject: Subject) -> Evaluation:
        from phenorank.registry import get_registry

        if subject.images is None or subject.encode is None:
            raise PluginError("robustness needs the images and the encoder of the embedding set")
        kinds = chosen_kinds(self.params["corruptions"], self.name)
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
            for level, strength in enumerate(severities(self.params, kind, self.name), start=1):
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
