"""What the trainable encoders share: two-view data, channel statistics, the Lightning trainer,
the contrastive diagnostics of seed 000 (top-1, top-5, mean position), batched inference.

Imported only when an encoder trains or embeds (torch and Lightning are heavy).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from phenorank.core.allocator import keep_large_blocks
from phenorank.registry import PluginError, TrainConfig


class TwoViews(torch.utils.data.Dataset):
    """Each image as two independent augmentations of itself (SimCLR/BYOL positives).

    ``images``: a tensor (N, C, S, S), or a :class:`phenorank.core.crop_file.CropFile` that reads
    each crop from disk when it is asked for (training on more crops than fit in memory)."""

    def __init__(self, images, augmentation: Callable):
        self.images, self.augmentation = images, augmentation

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> torch.Tensor:
        return torch.as_tensor(self.images[index])

    def __getitem__(self, index: int):
        image = self.image(index)
        return self.augmentation(image), self.augmentation(image)


class GroupViews(TwoViews):
    """Multi-view positives (seed 002): the second view is an augmentation of another image of
    the same group (another field of view of the sample); an image alone in its group is paired
    with itself. The partner is drawn afresh each time, from a generator seeded per item and
    epoch-call, so a seeded run repeats. Each item also carries its group's number, so a
    contrastive loss can keep other items of the same group out of its negatives."""

    def __init__(self, images: torch.Tensor, augmentation: Callable, groups):
        super().__init__(images, augmentation)
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        self.members = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
        self.codes = codes
        self.calls = np.zeros(len(codes), dtype=np.int64)

    def __getitem__(self, index: int):
        members = self.members[self.codes[index]]
        others = members[members != index]
        rng = np.random.default_rng((int(torch.initial_seed()) % (2 ** 32), index, int(self.calls[index])))
        self.calls[index] += 1
        partner = int(rng.choice(others)) if len(others) else index
        return self.augmentation(self.image(index)), self.augmentation(self.image(partner)), int(self.codes[index])


class LabelledViews(TwoViews):
    """One augmented view of each image with its class number (supervised training)."""

    def __init__(self, images, augmentation: Callable, codes: np.ndarray):
        super().__init__(images, augmentation)
        self.codes = np.asarray(codes, dtype=np.int64)

    def __getitem__(self, index: int):
        return self.augmentation(self.image(index)), int(self.codes[index])


class CodedView(LabelledViews):
    """One augmented view of each image with its group's number (Deep InfoMax: items of one
    group are positives for each other, all others negatives)."""


class OneView(TwoViews):
    def __getitem__(self, index: int):
        return self.augmentation(self.image(index))


class Standardize(nn.Module):
    """The seed's z-score after augmentation, with the training set's channel mean and std
    (kept with the weights, so embedding uses the same numbers)."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def fit(self, images) -> "Standardize":
        """From a tensor, or from the statistics a CropFile summed while it was written."""
        if isinstance(images, torch.Tensor):
            mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
        else:
            mean, std = torch.as_tensor(images.mean), torch.as_tensor(images.std)
        self.mean.copy_(mean.reshape(self.mean.shape))
        self.std.copy_(std.reshape(self.std.shape).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def group_nt_xent(z0: torch.Tensor, z1: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) where views of other items of the same group are neither positive nor
    negative: they leave the denominator. Two fields of one sample pushed apart as negatives would
    undo the multi-view positives (seed 002: negatives only from other samples). With every item
    in a group of its own this is lightly's ``NTXentLoss`` (tested)."""
    z = nn.functional.normalize(torch.cat([z0, z1]), dim=1)
    n = len(z0)
    logits = z @ z.T / temperature
    codes = torch.cat([groups, groups])
    partner = torch.arange(2 * n, device=z.device).roll(n)
    excluded = codes[:, None] == codes[None, :]
    excluded[torch.arange(2 * n), partner] = False
    logits = logits.masked_fill(excluded, float("-inf"))
    return nn.functional.cross_entropy(logits, partner)


def pair_diagnostics(z0: torch.Tensor, z1: torch.Tensor) -> dict[str, float]:
    """Seed 000 section 8: for each of the 2N views, the rank of its positive among the other
    2N - 1 by cosine similarity; top-1 and top-5 accuracy (%) and the mean position."""
    z = nn.functional.normalize(torch.cat([z0, z1]).float(), dim=1)
    n = len(z0)
    similarity = z @ z.T
    similarity.fill_diagonal_(-float("inf"))
    positive = torch.arange(2 * n, device=z.device).roll(n)
    positive_similarity = similarity[torch.arange(2 * n), positive]
    position = (similarity > positive_similarity[:, None]).sum(dim=1) + 1
    return {"top1": float((position == 1).float().mean() * 100), "top5": float((position <= 5).float().mean() * 100),
            "mean_position": float(position.float().mean())}


def cosine_to(start: float, end: float, epoch: int, epochs: int) -> float:
    """Cosine schedule from ``start`` to ``end`` over ``epochs``."""
    progress = min(epoch / max(epochs - 1, 1), 1.0)
    return float(end + (start - end) * 0.5 * (1 + np.cos(np.pi * progress)))  # a numpy scalar would not load weights-only


def validation_split(n: int, fraction: float, seed: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out positions: ``fraction`` of the images, or of the groups when given
    (so no held-out image has a training partner), drawn with ``seed``; at least one of each."""
    if not fraction:
        return np.arange(n), np.array([], dtype=np.int64)
    if not 0 < fraction < 1:
        raise PluginError(f"validation must be a fraction between 0 and 1, got {fraction}")
    _, units = np.unique(np.asarray(groups).astype(str), return_inverse=True) if groups is not None \
        else (None, np.arange(n))
    count = units.max() + 1
    if count < 2:
        raise PluginError(f"a validation split needs at least 2 images (or groups); there are {count}")
    picked = np.random.default_rng(seed).permutation(count)[:min(count - 1, max(1, round(count * fraction)))]
    held = np.isin(units, picked)
    return np.flatnonzero(~held), np.flatnonzero(held)


def fit_module(module, dataset: torch.utils.data.Dataset, config: TrainConfig,
               validation: dict[str, torch.utils.data.Dataset] | None = None) -> list[dict[str, float]]:
    """Train a LightningModule; returns the logged metrics of every epoch. ``validation``: named
    held-out datasets, each run through the module's ``validation_step`` after every epoch."""
    import logging

    # activations and their gradients are arrays of tens of MB, made and freed every step: kept on
    # the heap rather than mapped fresh each time, a ResNet18 step on 128 crops of 96 px took 0.77
    # against 0.95 s (the data loader's workers, forked after this, inherit it)
    keep_large_blocks()

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):  # tips and notices, not results
        logging.getLogger(name).setLevel(logging.WARNING)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    import json
    import os

    # ranks started by a launcher (ddp_fork, ddp) keep their history in their own process: rank 0
    # also writes it next to the checkpoints, and this process reads it back
    history_file = os.path.join(config.checkpoint_dir, "history.json") if config.checkpoint_dir else None
    history = EpochHistory(config.on_epoch, getattr(config, "on_metrics", None), history_file)
    callbacks = [history]
    if config.checkpoint_dir:
        callbacks.append(LastCheckpoint(config.checkpoint_dir))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=min(config.batch_size, len(dataset)), shuffle=True, drop_last=len(dataset) >= 2 * config.batch_size,
        num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
        generator=torch.Generator().manual_seed(config.seed))
    validation = validation or {}
    module.validation_names = list(validation)
    held_out = [torch.utils.data.DataLoader(d, batch_size=min(config.batch_size, len(d)), shuffle=False,
                                            num_workers=config.num_workers) for d in validation.values()]
    trainer = pl.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
        deterministic=True, callbacks=callbacks, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1,  # LastCheckpoint saves
        num_sanity_val_steps=0, limit_val_batches=1.0 if held_out else 0)
    resume = None
    if config.resume and config.checkpoint_dir:
        import os

        resume = os.path.join(config.checkpoint_dir, "last.ckpt")
        if not os.path.isfile(resume):
            raise PluginError(f"no checkpoint to resume from in {config.checkpoint_dir}: train without --resume")
    with warnings.catch_warnings():  # Lightning's notice about torch's own pytree API says nothing about the run
        warnings.filterwarnings("ignore", message=".*treespec.*")
        warnings.filterwarnings("ignore", message=".*validation_step.*no `val_dataloader`.*")
        trainer.fit(module, loader, held_out or None, ckpt_path=resume)
    if not history.epochs and history_file and os.path.isfile(history_file):  # the ranks were other processes
        with open(history_file) as handle:
            return json.load(handle)
    return history.epochs


class LastCheckpoint(pl.Callback):
    """``last.ckpt`` after every epoch, replaced atomically, so a killed training resumes from its
    last finished epoch. (Lightning's ModelCheckpoint writes ``last`` only alongside a top-k
    checkpoint, i.e. with save_top_k=0 only when training ends.)"""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_epoch_end(self, trainer, module):
        import os

        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, "last.ckpt")
        trainer.save_checkpoint(path + ".partial")
        if trainer.is_global_zero:
            os.replace(path + ".partial", path)


class EpochHistory(pl.Callback):
    """Keeps the epoch-level metrics the module logs."""

    def __init__(self, on_epoch=None, on_metrics=None, path: str | None = None):
        self.epochs: list[dict[str, float]] = []
        self.on_epoch = on_epoch
        self.on_metrics = on_metrics
        self.path = path

    def on_train_epoch_end(self, trainer, module):
        self.epochs.append({"epoch": trainer.current_epoch, "device": str(module.device),
                            "world_size": int(trainer.world_size),
                            **{k: float(v) for k, v in trainer.callback_metrics.items()}})
        if self.path and trainer.is_global_zero:
            import json
            import os

            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path + ".partial", "w") as handle:
                json.dump(self.epochs, handle)
            os.replace(self.path + ".partial", self.path)
        if self.on_metrics and trainer.is_global_zero:
            self.on_metrics(dict(self.epochs[-1]))
        if self.on_epoch and trainer.is_global_zero:  # one progress line per epoch, not one per rank
            self.on_epoch(1)


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], module: nn.Module, images: np.ndarray,
            batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Run ``forward`` over images in batches on the best device; arrays back on the CPU.
    Batches of 64 on a CPU (larger ones fall out of its caches and run slower), 256 on a GPU."""
    keep_large_blocks()  # see fit_module: the activations of every batch, kept on the heap
    device = best_device()
    batch_size = batch_size or (256 if device.type == "cuda" else 64)
    module.to(device).eval()
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        part = np.ascontiguousarray(images[start:start + batch_size])
        count = len(part)
        if count < batch_size:
            # A short batch is padded to the full size: CPU kernels split a batch between threads
            # by its size, and a short one gave some images other last digits with 1 thread (a
            # cluster worker) than with 2 (this process); full batches agreed exactly.
            part = np.concatenate([part, np.repeat(part[-1:], batch_size - count, axis=0)])
        batch = torch.from_numpy(part).to(device, non_blocking=True)
        for head, value in forward(batch).items():
            outputs.setdefault(head, []).append(value.float().cpu().numpy()[:count])
    return {head: np.concatenate(parts) for head, parts in outputs.items()}


def save_weights(module: nn.Module, hyper: dict, path: str) -> None:
    """Weights and the few numbers needed to rebuild the module, loadable with weights_only=True."""
    torch.save({"state_dict": {k: v.cpu() for k, v in module.state_dict().items()}, "hyper": hyper}, path)


def load_weights(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
