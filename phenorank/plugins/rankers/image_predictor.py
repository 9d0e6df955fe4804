"""Ranking strategy 1 of seed 000 section 9.1 on the images themselves: the convolutional
autoencoder learns to turn a reference well's day-7 image into its day-10 image; a well whose
actual day-10 image is far from the one predicted from its day-7 image changed unlike the
reference wells."""

from __future__ import annotations

import numpy as np

from phenorank.core.fingerprint import array_key
from phenorank.registry import PluginError, Ranker

from .centroid import reference_mask
from .predictor import batches


class ImagePredictorRanker(Ranker):
    """Seed 000's day-7 -> day-10 image autoencoder (3 -> 16 -> 32 -> 64 conv encoder with
    dropout 0.2/0.3/0.4, mirrored decoder, sigmoid), trained with MSE and Adam (lr 1e-3, batch
    32) on the reference class's well pairs only; ``augment`` coupled copies per pair (seed 000:
    flips / rotations and brightness / blur / sharpness drawn once per pair).

    Score of a well = metric(prediction, actual day-10 image): compared as embeddings of the
    embedding set's encoder (``compare=embeddings``: for ``raw`` these are the pixels) or as the
    pixels themselves (``compare=images``). Wells without a day-7 image get no score. The fit
    does not depend on the metric or the encoder: a grid trains it once per reference class.
    """

    name = "image-predictor"
    needs_images = True
    partial = True
    defaults = {"label": "condition", "epochs": 20, "batch_size": 32, "lr": 1e-3, "augment": 0,
                "compare": "embeddings", "seed": 0}

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["compare"] not in ("embeddings", "images"):
            raise PluginError(f"image-predictor: compare must be 'embeddings' or 'images', got {self.params['compare']!r}")
        self._fitted: dict[str, tuple] = {}
        self._predicted: dict[str, np.ndarray] = {}

    def fit(self, embeddings, samples, metric, reference):
        import torch

        from ..augmentations import coupled_copies
        from ..encoders.cae import conv_autoencoder

        if samples.read_images is None or samples.paired_ids is None:
            raise PluginError("image-predictor needs the images and their day-to-day pairs (the pipeline gives them)")
        self.metric = metric
        has_pair = samples.paired_ids.astype(str) != ""
        rows = np.flatnonzero(reference_mask(samples, self.params["label"], reference) & has_pair)
        if len(rows) < 2:
            raise PluginError(f"image-predictor: {len(rows)} {reference!r} wells have both days; at least 2 are needed")
        early_ids, late_ids = samples.paired_ids[rows].astype(str), samples.image_ids[rows].astype(str)
        self.key = array_key(np.array(sorted(zip(early_ids, late_ids))).astype("U"))
        if self.key in self._fitted:
            self.model, self.history = self._fitted[self.key]
            return self
        seed = int(self.params["seed"])
        early = torch.from_numpy(samples.read_images(early_ids))
        late = torch.from_numpy(samples.read_images(late_ids))
        if int(self.params["augment"]):
            early, late = coupled_copies(early, late, int(self.params["augment"]), seed)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        encoder, decoder = conv_autoencoder()
        self.model = torch.nn.Sequential(encoder, decoder)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=float(self.params["lr"]))
        side = early.shape[-1]
        self.history = []
        self.model.train()
        for _ in range(int(self.params["epochs"])):
            total = 0.0
            for batch in batches(len(early), int(self.params["batch_size"]), generator):
                if len(batch) < 2:
                    continue
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(self.model(early[batch])[..., :side, :side], late[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            self.history.append(total / len(early))
        self.model.eval()
        self._fitted[self.key] = (self.model, self.history)
        return self

    def predict(self, early: np.ndarray) -> np.ndarray:
        import torch

        side = early.shape[-1]
        with torch.no_grad():
            return np.concatenate([self.model(torch.from_numpy(early[i:i + 64]))[..., :side, :side].numpy()
                                   for i in range(0, len(early), 64)])

    def score(self, embeddings, samples=None):
        if samples is None or samples.paired_ids is None or samples.read_images is None:
            raise PluginError("image-predictor scores need each image's day-7 image (samples.paired_ids)")
        scores = np.full(len(embeddings), np.nan)
        rows = np.flatnonzero(samples.paired_ids.astype(str) != "")
        if not len(rows):
            return scores
        early_ids = samples.paired_ids[rows].astype(str)
        # every metric of a grid scores the same predictions: predict (and embed) them once
        cache = array_key(np.asarray(early_ids).astype("U"), np.frombuffer(self.key.encode(), np.uint8),
                          np.frombuffer(self.params["compare"].encode(), np.uint8),
                          np.ascontiguousarray(embeddings[rows]))
        if cache not in self._predicted:
            predicted = self.predict(samples.read_images(early_ids))
            if self.params["compare"] == "images":
                actual = samples.read_images(samples.image_ids[rows].astype(str))
                self._predicted[cache] = (predicted.reshape(len(rows), -1), actual.reshape(len(rows), -1))
            else:
                self._predicted[cache] = (samples.encode(predicted), np.asarray(embeddings[rows]))
        predicted, actual = self._predicted[cache]
        scores[rows] = self.metric.paired_distance(np.asarray(predicted, np.float64), np.asarray(actual, np.float64))
        return scores
