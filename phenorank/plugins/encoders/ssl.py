"""Self-supervised encoders trained with lightly: SimCLR (seed 000's method) and BYOL.

Both use a timm ResNet18 backbone (512-d after global average pooling, the seed's "before the
projection head") and a lightly projection head to 20-d ("after the projection head"); both
heads are embedded and stored. Training runs through PyTorch Lightning.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from phenorank.registry import Encoder, PluginError, TrainConfig


class TrainableEncoder(Encoder):
    """Shared by encoders that are trained here: fit / save / load / embed around a module."""

    trainable = True
    heads = ("backbone", "projection")

    def __init__(self, **params):
        super().__init__(**params)
        self.module = None

    def build_module(self):
        raise NotImplementedError

    def dataset(self, images, augmentation: Callable, groups=None):
        from .training import GroupViews, TwoViews

        return TwoViews(images, augmentation) if groups is None else GroupViews(images, augmentation, groups)

    def fit(self, images, augmentation: Callable, config: TrainConfig) -> list[dict[str, float]]:
        """``images``: an array (N, C, S, S) in [0, 1], or a CropFile read crop by crop."""
        import torch

        from .training import fit_module

        torch.manual_seed(config.seed)
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.module = self.build_module()
        self.module.epochs = config.epochs
        self.module.standardize.fit(images)
        return fit_module(self.module, self.dataset(images, augmentation, config.groups), config)

    def save(self, path: str) -> None:
        from .training import save_weights

        save_weights(self.module, {k: v for k, v in self.params.items() if k != "model"}, path)

    def load(self, path: str) -> None:
        from .training import load_weights

        saved = load_weights(path)
        self.module = self.build_module()
        self.module.load_state_dict(saved["state_dict"])

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .training import predict

        if self.module is None:
            raise PluginError(f"encoder {self.name!r} has no trained weights: train it with `phenorank train "
                              f"--encoder {self.name}` and embed with its model id")
        return predict(self.module.heads_of, self.module, images)


def resnet18_backbone():
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=0)


def _module_base():
    import pytorch_lightning as pl
    import torch

    from .training import Standardize, cosine_to, pair_diagnostics

    class ContrastiveModule(pl.LightningModule):
        """A ResNet18 backbone whose subclass adds ``projection``; Adam with weight decay and a
        per-epoch cosine learning rate down to lr / 50."""

        def __init__(self, lr: float, weight_decay: float):
            super().__init__()
            self.lr, self.weight_decay, self.epochs = lr, weight_decay, 1
            self.standardize = Standardize()
            self.backbone = resnet18_backbone()

        def heads_of(self, x):
            features = self.backbone(self.standardize(x))
            return {"backbone": features, "projection": self.projection(features)}

        def configure_optimizers(self):
            optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda epoch: cosine_to(1.0, 1 / 50, epoch, self.epochs))
            return [optimizer], [schedule]

        def log_pairs(self, loss, z0, z1):
            self.log("loss", loss, on_step=False, on_epoch=True, batch_size=len(z0), sync_dist=True)
            for name, value in pair_diagnostics(z0.detach(), z1.detach()).items():
                self.log(name, value, on_step=False, on_epoch=True, batch_size=len(z0), sync_dist=True)

    return ContrastiveModule


class SimCLR(TrainableEncoder):
    """SimCLR (seed 000): ResNet18 + lightly projection head 512 -> 128 -> 20, NT-Xent loss at
    temperature 0.07, Adam 5e-4 with weight decay 1e-4, cosine schedule to lr/50."""

    name = "simclr"
    defaults = {"model": "", "temperature": 0.07, "lr": 5e-4, "weight_decay": 1e-4,
                "hidden_dim": 128, "projection_dim": 20}

    def build_module(self):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        base, p = _module_base(), self.params

        class SimCLRModule(base):
            def __init__(self):
                super().__init__(p["lr"], p["weight_decay"])
                self.projection = SimCLRProjectionHead(512, p["hidden_dim"], p["projection_dim"])
                self.loss = NTXentLoss(temperature=p["temperature"])

            def training_step(self, batch, _):
                z0, z1 = (self.heads_of(view)["projection"] for view in batch)
                loss = self.loss(z0, z1)
                self.log_pairs(loss, z0, z1)
                return loss

        return SimCLRModule()


class BYOL(TrainableEncoder):
    """BYOL (lightly): online ResNet18 + projection 512 -> 128 -> 20 + prediction 20 -> 128 -> 20,
    a momentum target network whose momentum follows a cosine schedule from 0.99 to 1."""

    name = "byol"
    defaults = {"model": "", "lr": 5e-4, "weight_decay": 1e-4, "hidden_dim": 128, "projection_dim": 20,
                "momentum": 0.99}

    def build_module(self):
        import copy

        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad, update_momentum

        from .training import cosine_to

        base, p = _module_base(), self.params

        class BYOLModule(base):
            def __init__(self):
                super().__init__(p["lr"], p["weight_decay"])
                self.projection = BYOLProjectionHead(512, p["hidden_dim"], p["projection_dim"])
                self.prediction = BYOLPredictionHead(p["projection_dim"], p["hidden_dim"], p["projection_dim"])
                self.backbone_momentum = copy.deepcopy(self.backbone)
                self.projection_momentum = copy.deepcopy(self.projection)
                deactivate_requires_grad(self.backbone_momentum)
                deactivate_requires_grad(self.projection_momentum)
                self.loss = NegativeCosineSimilarity()

            def target(self, x):
                return self.projection_momentum(self.backbone_momentum(self.standardize(x))).detach()

            def training_step(self, batch, _):
                momentum = cosine_to(p["momentum"], 1.0, self.current_epoch, self.epochs)
                update_momentum(self.backbone, self.backbone_momentum, m=momentum)
                update_momentum(self.projection, self.projection_momentum, m=momentum)
                x0, x1 = batch
                z0, z1 = self.heads_of(x0)["projection"], self.heads_of(x1)["projection"]
                loss = 0.5 * (self.loss(self.prediction(z0), self.target(x1))
                              + self.loss(self.prediction(z1), self.target(x0)))
                self.log_pairs(loss, z0, z1)
                return loss

        return BYOLModule()
