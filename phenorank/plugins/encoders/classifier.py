"""Supervised classifiers trained on a metadata label, embedded from their penultimate layer.

Seed 001 trained a small custom CNN and a DenseNet-121 to tell patients from controls and
clustered the 8-d layer before the output; seed 004 put two dense layers and dropout on VGG16.
Here one encoder builds any of the three (``backbone``) and trains it with class-weighted cross
entropy; the held-out part of a ``--validation`` split is whole groups (``train --split-by``),
so no sample, and no image's cells, is on both sides.
"""

from __future__ import annotations

import numpy as np

from phenorank.registry import PluginError

from .ssl import TrainableEncoder

BACKBONES = ("small-cnn", "densenet121", "vgg16")


def small_cnn(view_size: int, blocks: int, width: int, dropout: float):
    """Seed 001's custom classifier (figure 5.9): ``blocks`` of 3x3 conv (3 -> width, then half
    the channels each block), batch norm, leaky ReLU, dropout and 2x2 max-pooling; flattened.
    As many blocks as the view allows (each halves it); returns (module, flattened width)."""
    from torch import nn

    blocks = max(1, min(int(blocks), int(np.log2(view_size)) - 1))
    layers, cin = [], 3
    for i in range(blocks):
        cout = max(2, int(width) >> i)
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(), nn.Dropout(dropout),
                   nn.MaxPool2d(2)]
        cin = cout
    side = max(1, view_size >> blocks)
    return nn.Sequential(*layers, ToSide(side), nn.Flatten()), cin * side * side


def _to_side():
    import torch
    from torch import nn

    class ToSide(nn.Module):
        """Average-pools a feature map of another side to the training side, so an image of
        another size still gives the same width; a no-op at the training size (adaptive pooling's
        backward has no deterministic CUDA kernel)."""

        def __init__(self, side: int):
            super().__init__()
            self.side = side

        def forward(self, x):
            if x.shape[-1] == self.side and x.shape[-2] == self.side:
                return x
            return torch.nn.functional.adaptive_avg_pool2d(x, self.side)

    return ToSide


def ToSide(side: int):  # noqa: N802 - a module factory, built only when torch is imported
    return _to_side()(side)


def pretrained_backbone(name: str, params: dict, who: str):
    """DenseNet-121 (timm) or VGG16's convolutional part, globally average-pooled; from random
    weights, or ImageNet weights read from ``weights`` or timm's cache (never downloaded)."""
    import timm
    from torch import nn

    from .imagenet import cached_weights, read_state_dict

    if name == "vgg16":  # the conv stack only (torchvision's, keys as timm's and torchvision's
        # checkpoints name them): timm's 4096-wide pre-logits would be 100M weights more
        from torchvision.models.vgg import cfgs, make_layers

        network = nn.Sequential(make_layers(cfgs["D"]), GlobalMean())
        width, prefix = 512, "features."
    else:
        network = timm.create_model(name, pretrained=False, num_classes=0)
        width, prefix = network.num_features, ""
    if params["init"] == "imagenet":
        path = params["weights"] or cached_weights(name)
        if not path:
            raise PluginError(f"{who}: init=imagenet needs {name} ImageNet weights and found none (phenorank never "
                              f"downloads): pass -p {who}.weights=/path/to/{name}.safetensors, or -p {who}.init=random")
        state = {k.removeprefix("module."): v for k, v in read_state_dict(path, who).items()}
        target = network[0] if name == "vgg16" else network
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        missing, _ = target.load_state_dict(state, strict=False)
        if missing:
            raise PluginError(f"{who}: {path} does not hold {name} weights (missing {missing[:3]}...)")
    elif params["init"] != "random":
        raise PluginError(f"{who}: init must be random or imagenet, got {params['init']!r}")
    return network, width


def GlobalMean():  # noqa: N802
    from torch import nn

    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    return Mean()


def classifier_head(backbone: str, features: int, embedding_dim: int, classes: int, dropout: float):
    """(layers up to the embedding, output layer). Seed 001: linear 64 then the embedding, leaky
    ReLU, after the custom CNN; one leaky-ReLU block of the embedding's width after DenseNet
    (M = 1). Seed 004: two ReLU dense layers and dropout 0.5 on VGG16."""
    from torch import nn

    if backbone == "small-cnn":
        layers = [nn.Linear(features, 64), nn.LeakyReLU(), nn.Linear(64, embedding_dim), nn.LeakyReLU()]
    elif backbone == "densenet121":
        layers = [nn.Linear(features, embedding_dim), nn.LeakyReLU()]
    else:
        layers = [nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, embedding_dim), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers), nn.Linear(embedding_dim, classes)


def class_weights(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights, n / (classes x count): each class weighs the same in the
    loss however many items it has (seed 004's weighted training). A class absent from training
    gets weight 0."""
    counts = np.bincount(codes, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class SupervisedClassifier(TrainableEncoder):
    """A CNN trained to predict ``train --label`` (seed 001, seed 004). Heads: ``embedding``, the
    layer before the output (seed 001: 8-d), and ``probabilities`` of the classes. Adam at lr
    5e-5, weight decay 1e-5, cosine annealing over 10 epochs to 5e-10 (seed 001); with a
    validation split the weights of the epoch with the lowest held-out loss are kept."""

    name = "classifier"
    supervised = True
    heads = ("embedding", "probabilities")
    defaults = {"model": "", "backbone": "small-cnn", "embedding_dim": 8, "blocks": 8, "width": 256,
                "dropout": 0.4, "lr": 5e-5, "weight_decay": 1e-5, "class_weight": "balanced", "keep": "best",
                "init": "random", "weights": ""}

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["backbone"] not in BACKBONES:
            raise PluginError(f"classifier: backbone must be one of {', '.join(BACKBONES)}, "
                              f"got {self.params['backbone']!r}")
        if self.params["class_weight"] not in ("balanced", "none") or self.params["keep"] not in ("best", "last"):
            raise PluginError("classifier: class_weight must be balanced or none, keep best or last")
        self.classes: list[str] = []
        self.view_size = 0
        self.codes: np.ndarray | None = None
        self.from_saved = False

    def fit(self, images, augmentation, config):
        if config.labels is None:
            raise PluginError("classifier: it learns a label: give train --label COLUMN (e.g. condition)")
        labels = np.asarray(config.labels).astype(str)
        self.classes = sorted({str(v) for v in labels})
        if len(self.classes) < 2:
            raise PluginError(f"classifier: the label has one value only ({self.classes[0]!r}); it needs two classes")
        self.codes = np.searchsorted(self.classes, labels)
        self.view_size = int(config.view_size or images[0].shape[-1])
        return super().fit(images, augmentation, config)

    def dataset(self, images, augmentation, groups=None):
        from .training import LabelledViews

        return LabelledViews(images, augmentation, self.codes)

    def on_split(self, images, train: np.ndarray, held: np.ndarray) -> None:
        import torch

        weights = class_weights(self.codes[train], len(self.classes)) if self.params["class_weight"] == "balanced" \
            else np.ones(len(self.classes))
        self.module.class_weight.copy_(torch.as_tensor(weights, dtype=torch.float32))

    def fitted_state(self) -> dict:
        return {"classes": self.classes, "view_size": self.view_size}

    def restore(self, saved: dict) -> None:
        self.classes, self.view_size = list(saved["classes"]), int(saved["view_size"])
        self.from_saved = True  # the stored weights replace any start: no ImageNet file needed

    def feature_names(self, head: str) -> list[str] | None:
        return [f"p({c})" for c in self.classes] if head == "probabilities" and self.classes else None

    def build_module(self):
        import pytorch_lightning as pl
        import torch
        from torch import nn

        from .training import Standardize

        p, classes = self.params, len(self.classes)
        if p["backbone"] == "small-cnn":
            backbone, features = small_cnn(self.view_size, p["blocks"], p["width"], float(p["dropout"]))
        else:
            backbone, features = pretrained_backbone(p["backbone"], {**p, "init": "random"} if self.from_saved else p,
                                                     self.name)
        to_embedding, output = classifier_head(p["backbone"], features, int(p["embedding_dim"]), classes,
                                               0.5 if p["backbone"] == "vgg16" else float(p["dropout"]))

        class ClassifierModule(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.epochs, self.best, self.best_loss = 1, None, float("inf")
                self.standardize = Standardize()
                self.backbone, self.to_embedding, self.output = backbone, to_embedding, output
                self.register_buffer("class_weight", torch.ones(classes))

            def heads_of(self, x):
                embedding = self.to_embedding(self.backbone(self.standardize(x)))
                return {"embedding": embedding, "probabilities": self.output(embedding).softmax(dim=1)}

            def step(self, batch, prefix: str):
                images, codes = batch
                logits = self.output(self.to_embedding(self.backbone(self.standardize(images))))
                loss = nn.functional.cross_entropy(logits, codes, weight=self.class_weight)
                options = dict(on_step=False, on_epoch=True, batch_size=len(codes), sync_dist=True,
                               add_dataloader_idx=False)
                self.log(prefix + "loss", loss, **options)
                self.log(prefix + "accuracy", (logits.argmax(dim=1) == codes).float().mean() * 100, **options)
                return loss

            def training_step(self, batch, _):
                return self.step(batch, "")

            def validation_step(self, batch, _, dataloader_idx: int = 0):
                self.step(batch, self.validation_names[dataloader_idx] + "_")

            def on_validation_epoch_end(self):
                loss = self.trainer.callback_metrics.get("val_loss")
                if p["keep"] == "best" and loss is not None and float(loss) < self.best_loss:
                    self.best_loss = float(loss)
                    self.best = {k: v.detach().clone() for k, v in self.state_dict().items()}

            def on_train_end(self):
                if self.best is not None:
                    self.load_state_dict(self.best)

            def configure_optimizers(self):
                optimizer = torch.optim.Adam(self.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]),
                                             betas=(0.9, 0.999), eps=1e-8)
                return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10, eta_min=5e-10)]

        return ClassifierModule()
