"""Deep InfoMax (Hjelm et al. 2019) as seed 002 used it on HT29 cells.

Two shallow networks: a local encoder (a feature map at a quarter of the view's side) and a
global one on top of it. Training maximises the mutual information between the global vector of
one image and the local features of the images of the same sample (``train --positives
sample``: any field of view; without it, only the image itself), with images of other samples as
the only negatives; local features on background, as a two-class Gaussian mixture on pixel
intensity sees it, are left out of the loss. A prior discriminator pushes the global vectors
towards a uniform distribution. Images larger than the training view are embedded by a sliding
window whose global vectors are averaged.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError

from .ssl import TrainableEncoder


def jsd_mi(scores, positive, weight):
    """The Jensen-Shannon MI estimate of DIM as a loss to minimise: softplus(-s) on positive
    pairs plus softplus(s) on negative ones, each averaged over its own pairs (``weight`` drops
    background positions). Pairs that are neither (none here) would carry weight 0."""
    import torch.nn.functional as F

    w_pos, w_neg = weight * positive, weight * (1 - positive)
    return ((F.softplus(-scores) * w_pos).sum() / w_pos.sum().clamp_min(1)
            + (F.softplus(scores) * w_neg).sum() / w_neg.sum().clamp_min(1))


def gmm_threshold(images, positions: np.ndarray, max_images: int = 64, pixels: int = 20000, seed: int = 0) -> float:
    """The intensity (channel mean) where a two-component Gaussian mixture fitted to a sample of
    the training images' pixels (``positions``) gives the brighter component probability one
    half (seed 002's coarse foreground mask)."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    picked = rng.choice(positions, size=min(max_images, len(positions)), replace=False)
    values = np.concatenate([np.asarray(images[int(i)], dtype=np.float32).mean(axis=0).ravel() for i in picked])
    values = rng.choice(values, size=min(pixels, len(values)), replace=False)[:, None]
    if np.ptp(values) == 0:
        return float(values[0, 0])
    gmm = GaussianMixture(2, random_state=seed).fit(values)
    bright = int(np.argmax(gmm.means_.ravel()))
    grid = np.linspace(values.min(), values.max(), 512)[:, None]
    above = np.flatnonzero(gmm.predict_proba(grid)[:, bright] >= 0.5)
    return float(grid[above[0], 0]) if len(above) else float(gmm.means_.ravel()[bright])


def windows(side: int, window: int, stride: int) -> list[int]:
    """Start positions of windows of ``window`` px covering ``side`` px, the last flush with the end."""
    if side <= window:
        return [0]
    starts = list(range(0, side - window + 1, max(1, stride)))
    return starts if starts[-1] == side - window else starts + [side - window]


class DeepInfoMax(TrainableEncoder):
    """Deep InfoMax with seed 002's pairs: heads ``global`` (the global vector, averaged over
    sliding windows for images larger than the training view) and ``local`` (the local features
    averaged over the foreground). Loss: alpha x global MI + beta x local MI + gamma x prior
    (DIM's JSD estimator, encode-and-dot critics); Adam lr 1e-4 as in the DIM paper."""

    name = "dim"
    heads = ("global", "local")
    defaults = {"model": "", "global_dim": 64, "local_dim": 128, "alpha": 0.5, "beta": 1.0, "gamma": 0.1,
                "lr": 1e-4, "mask": "gmm", "polarity": "bright", "stride": 0.5}

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["mask"] not in ("gmm", "none") or self.params["polarity"] not in ("bright", "dark"):
            raise PluginError("dim: mask must be gmm or none, polarity bright or dark")
        self.view_size = 0

    def fit(self, images, augmentation, config):
        self.view_size = int(config.view_size or images[0].shape[-1])
        return super().fit(images, augmentation, config)

    def on_split(self, images, train: np.ndarray, held: np.ndarray) -> None:
        if self.params["mask"] == "gmm":  # the mask's threshold, from the training images only
            self.module.threshold.fill_(gmm_threshold(images, train))

    def dataset(self, images, augmentation, groups=None):
        from .training import CodedView

        codes = np.arange(len(images)) if groups is None else np.unique(np.asarray(groups).astype(str),
                                                                          return_inverse=True)[1]
        return CodedView(images, augmentation, codes)

    def fitted_state(self) -> dict:
        return {"view_size": self.view_size}

    def restore(self, saved: dict) -> None:
        self.view_size = int(saved["view_size"])

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .training import predict

        if self.module is None:
            raise PluginError("encoder 'dim' has no trained weights: train it with `phenorank train --encoder dim` "
                              "and embed with its model id")
        return predict(self.module.sliding_heads, self.module, images)

    def build_module(self):
        import pytorch_lightning as pl
        import torch
        from torch import nn

        from .training import Standardize

        p, view = self.params, self.view_size
        local_dim, global_dim = int(p["local_dim"]), int(p["global_dim"])

        def conv(cin, cout, kernel, stride):
            return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 - (stride == 2 and kernel % 2 == 0)),
                    nn.BatchNorm2d(cout), nn.ReLU()]

        class Reverse(torch.autograd.Function):
            """Identity forward, negated gradient backward: the prior discriminator learns to tell
            prior samples from global vectors while the encoder learns to fool it, in one step."""

            @staticmethod
            def forward(ctx, x):
                return x.view_as(x)

            @staticmethod
            def backward(ctx, grad):
                return -grad

        class DIMModule(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.epochs = 1
                self.standardize = Standardize()
                self.register_buffer("threshold", torch.tensor(-1.0))  # no mask until fitted
                self.local_encoder = nn.Sequential(*conv(3, 64, 4, 2), *conv(64, 128, 4, 2), *conv(128, local_dim, 3, 1))
                self.global_encoder = nn.Sequential(*conv(local_dim, 64, 3, 2))
                self.global_head = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, global_dim))
                # encode-and-dot critics: local positions and global vectors into one 256-d space
                self.local_critic = nn.Sequential(nn.Conv2d(local_dim, 256, 1), nn.ReLU(), nn.Conv2d(256, 256, 1))
                self.global_critic = nn.Sequential(nn.Linear(global_dim, 256), nn.ReLU(), nn.Linear(256, 256))
                self.map_critic = nn.Sequential(nn.Conv2d(local_dim, 256, 3, 2, 1), nn.ReLU())
                self.prior = nn.Sequential(nn.Linear(global_dim, 1000), nn.ReLU(), nn.Linear(1000, 200), nn.ReLU(),
                                           nn.Linear(200, 1))

            def encode(self, x):
                local = self.local_encoder(self.standardize(x))
                return local, self.global_head(self.global_encoder(local).mean(dim=(2, 3)))

            def foreground(self, x, local):
                """Per local position, whether most of its pixels are foreground."""
                if p["mask"] == "none" or float(self.threshold) < 0:
                    return torch.ones(len(x), *local.shape[2:], device=x.device)
                intensity = x.mean(dim=1, keepdim=True)
                pixels = (intensity > self.threshold) if p["polarity"] == "bright" else (intensity < self.threshold)
                fraction = nn.functional.interpolate(pixels.float(), size=local.shape[2:], mode="area")[:, 0]
                mask = (fraction >= 0.5).float()
                empty = mask.flatten(1).sum(dim=1) == 0  # an image all background keeps every position
                return torch.where(empty[:, None, None], torch.ones_like(mask), mask)

            def losses(self, x, codes):
                local, global_ = self.encode(x)
                positive = (codes[:, None] == codes[None, :]).float()  # [global i, local j]
                keep = self.foreground(x, local)  # [j, h, w]
                g = self.global_critic(global_)
                scores = torch.einsum("id,jdhw->ijhw", g, self.local_critic(local))
                local_mi = jsd_mi(scores, positive[:, :, None, None], keep[None].expand_as(scores))
                pooled = self.map_critic(local * keep[:, None]).mean(dim=(2, 3))
                global_mi = jsd_mi(g @ pooled.T, positive, torch.ones_like(positive))
                fake = torch.sigmoid(Reverse.apply(global_))
                real = torch.rand_like(fake)
                prior = (nn.functional.softplus(-self.prior(real)).mean() + nn.functional.softplus(self.prior(fake)).mean())
                loss = float(p["alpha"]) * global_mi + float(p["beta"]) * local_mi + float(p["gamma"]) * prior
                return loss, {"loss": loss, "mi_local": local_mi, "mi_global": global_mi, "prior": prior}

            def log_all(self, values, prefix, n):
                for name, value in values.items():
                    self.log(prefix + name, value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True,
                             add_dataloader_idx=False)

            def training_step(self, batch, _):
                loss, values = self.losses(*batch)
                self.log_all(values, "", len(batch[1]))
                return loss

            def validation_step(self, batch, _, dataloader_idx: int = 0):
                _, values = self.losses(*batch)
                self.log_all(values, self.validation_names[dataloader_idx] + "_", len(batch[1]))

            def sliding_heads(self, x):
                """Seed 002's inference on images larger than the training view: the global vector
                of every window (half-overlapping), averaged; local features over the foreground."""
                local, _ = self.encode(x)
                keep = self.foreground(x, local)[:, None]
                local_mean = (local * keep).sum(dim=(2, 3)) / keep.sum(dim=(2, 3)).clamp_min(1)
                side = x.shape[-1]
                size = view if view and view < side else side
                stride = max(1, int(size * float(p["stride"])))
                starts = [(r, c) for r in windows(x.shape[-2], size, stride) for c in windows(side, size, stride)]
                globals_ = [self.encode(x[..., r:r + size, c:c + size])[1] for r, c in starts]
                return {"global": torch.stack(globals_).mean(dim=0), "local": local_mean}

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=float(p["lr"]))

        return DIMModule()
