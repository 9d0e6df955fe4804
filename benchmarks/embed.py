"""Frozen ResNet18 embedding throughput through phenorank vs a bare ``model(x)`` loop.

    .venv/bin/python benchmarks/embed.py [--images 2048] [--size 96] [--rounds 3] [--allocator]

phenorank's number includes reading the stored preprocessed images from DuckDB and writing the
embeddings back; the baseline runs the same timm model, with the same ImageNet normalisation
and batch size, over tensors already in memory. The two take turns for --rounds rounds (each
phenorank round on a fresh store) and each keeps its best time. Prints images/s and phenorank /
bare (target: at least 0.9). Runs on CUDA when there is a GPU.

``--allocator`` instead times phenorank's embed alone in fresh processes, with glibc's allocator
as it comes against large blocks kept (what embed sets: ``phenorank.core.allocator``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks_common import allocator_ab, leave_glibc_alone, store_with_crops, synthetic_crops  # noqa: E402  (benchmarks/ is on sys.path)


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def resnet18(folder: Path):
    """A randomly initialised ResNet18 (seed 0) and its weights saved for phenorank's encoder."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    weights = folder / "resnet18.pt"
    torch.save(model.state_dict(), weights)
    return model, weights


def phenorank_round(folder: Path, name: str, encoder, pixels: np.ndarray, batch_size: int) -> float:
    """Seconds of ``pipeline.embed`` over the crops, on a fresh store (stored and checkpointed
    first, as closing the store after ingest would leave it)."""
    from phenorank.core.pipeline import embed

    store, ids = store_with_crops(folder / f"{name}.duckdb", pixels)
    with store:
        store.con.execute("CHECKPOINT")
        seconds = timed(lambda: embed(store, encoder, "k", "bench", batch_size=batch_size))
        assert store.table_counts()["embeddings"] == len(ids)
    return seconds


def make_encoder(weights: Path, pixels: np.ndarray):
    from phenorank.registry import get_registry

    encoder = get_registry().create("encoder", "imagenet-resnet18", {"weights": str(weights)})
    encoder.embed(pixels[:8].astype(np.float32) / 65535.0)  # warm-up, as for the baseline
    return encoder


def child(setting: str, images: int, size: int, batch_size: int, rounds: int) -> None:
    if setting == "default":
        leave_glibc_alone()
    pixels = synthetic_crops(images, size)
    with tempfile.TemporaryDirectory() as tmp:
        _, weights = resnet18(Path(tmp))
        encoder = make_encoder(weights, pixels)
        print(min(phenorank_round(Path(tmp), f"r{r}", encoder, pixels, batch_size) for r in range(rounds)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--allocator", action="store_true",
                        help="only compare embed with glibc's allocator as it comes and as embed sets it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.images, args.size, args.batch_size, args.rounds)
        return
    if args.allocator:
        best = allocator_ab(__file__, ["--images", args.images, "--size", args.size, "--batch-size", args.batch_size,
                                       "--rounds", args.rounds])
        print(f"phenorank embed of {args.images} crops ({args.size} px, ResNet18, CPU), best of {args.rounds} rounds "
              "in each of 2 fresh processes per setting")
        print(f"glibc as it comes: {args.images / best['default']:7.1f} images/s")
        print(f"large blocks kept: {args.images / best['kept']:7.1f} images/s   ratio {best['default'] / best['kept']:.2f}")
        return
    from phenorank.plugins.encoders.imagenet import IMAGENET_MEAN, IMAGENET_STD

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pixels = synthetic_crops(args.images, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = resnet18(Path(tmp))
        model = model.to(device)
        images = torch.from_numpy(pixels.astype(np.float32) / 65535.0)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        encoder = make_encoder(weights, pixels)
        with torch.no_grad():
            model((images[:8].to(device) - mean) / std)

        def bare_loop():
            with torch.no_grad():
                for i in range(0, len(images), args.batch_size):
                    model((images[i:i + args.batch_size].to(device) - mean) / std).cpu()

        bare, ours = [], []
        for round_ in range(args.rounds):  # alternated; each keeps its best
            bare.append(timed(bare_loop))
            ours.append(phenorank_round(Path(tmp), f"bench{round_}", encoder, pixels, args.batch_size))
        bare, ours = min(bare), min(ours)
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, {device}, "
          f"torch threads {torch.get_num_threads()}, best of {args.rounds} alternated rounds")
    print(f"bare model(x) on preloaded tensors : {len(pixels) / bare:9.1f} images/s")
    print(f"phenorank (DuckDB in, DuckDB out)  : {len(pixels) / ours:9.1f} images/s")
    print(f"phenorank / bare                   : {bare / ours:9.2f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
