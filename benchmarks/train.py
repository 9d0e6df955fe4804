"""One SimCLR epoch through phenorank vs a bare lightly + torch loop, same tensors, same run.

    .venv/bin/python benchmarks/train.py [--images 512] [--batch-size 64] [--size 96]

Both train a timm ResNet18 + lightly projection head with NT-Xent on the same preloaded images,
with the same `sweet` augmentation and data loader; phenorank adds Lightning, the pair
diagnostics and the per-epoch bookkeeping. Prints seconds per epoch and phenorank / bare
(target: at most 1.1). Runs on CUDA when there is a GPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks_common import synthetic_crops  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def bare_epoch(data: np.ndarray, transform, batch_size: int, device: torch.device) -> float:
    import timm
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    from phenorank.plugins.encoders.training import TwoViews

    torch.manual_seed(0)
    backbone = timm.create_model("resnet18", pretrained=False, num_classes=0).to(device)
    head = SimCLRProjectionHead(512, 128, 20).to(device)
    loss_fn = NTXentLoss(temperature=0.07)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=5e-4, weight_decay=1e-4)
    tensor = torch.from_numpy(data)
    mean, std = tensor.mean(dim=(0, 2, 3), keepdim=True).to(device), tensor.std(dim=(0, 2, 3), keepdim=True).to(device)
    loader = torch.utils.data.DataLoader(TwoViews(tensor, transform), batch_size=batch_size, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    backbone.train(), head.train()
    for x0, x1 in loader:
        z0 = head(backbone((x0.to(device) - mean) / std))
        z1 = head(backbone((x1.to(device) - mean) / std))
        loss = loss_fn(z0, z1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def phenorank_epoch(data: np.ndarray, transform, batch_size: int) -> tuple[float, str]:
    from phenorank.registry import TrainConfig, get_registry

    encoder = get_registry().create("encoder", "simclr")
    start = time.perf_counter()
    history = encoder.fit(data, transform, TrainConfig(epochs=1, batch_size=batch_size, devices=1))
    return time.perf_counter() - start, history[-1]["device"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from phenorank.registry import get_registry

    data = synthetic_crops(args.images, args.size).astype(np.float32) / 65535.0
    transform = get_registry().create("augmentation", "sweet").build(args.size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bare = min(bare_epoch(data, transform, args.batch_size, device) for _ in range(args.rounds))
    ours = min(phenorank_epoch(data, transform, args.batch_size) for _ in range(args.rounds))
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"bare lightly + torch loop : {bare:8.2f} s/epoch  ({device})")
    print(f"phenorank (Lightning)     : {ours[0]:8.2f} s/epoch  ({ours[1]})")
    print(f"phenorank / bare          : {ours[0] / bare:8.2f}   (target <= 1.1)")


if __name__ == "__main__":
    main()
