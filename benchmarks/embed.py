"""Frozen ResNet18 embedding throughput through phenorank vs a bare ``model(x)`` loop.

    .venv/bin/python benchmarks/embed.py [--images 2048] [--size 96]

phenorank's number includes reading the stored preprocessed images from DuckDB and writing the
embeddings back; the baseline runs the same timm model, with the same ImageNet normalisation
and batch size, over tensors already in memory. Prints images/s and phenorank / bare (target: at
least 0.9). Runs on CUDA when there is a GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks_common import synthetic_crops  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import timm

    from phenorank.core.pipeline import embed
    from phenorank.core.store import open_store
    from phenorank.plugins.encoders.imagenet import IMAGENET_MEAN, IMAGENET_STD
    from phenorank.registry import get_registry

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pixels = synthetic_crops(args.images, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = timm.create_model("resnet18", pretrained=False, num_classes=0).eval().to(device)
        weights = Path(tmp) / "resnet18.pt"
        torch.save(model.state_dict(), weights)

        images = torch.from_numpy(pixels.astype(np.float32) / 65535.0)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        with torch.no_grad():
            model((images[:8].to(device) - mean) / std)  # warm-up
            start = time.perf_counter()
            for i in range(0, len(images), args.batch_size):
                model((images[i:i + args.batch_size].to(device) - mean) / std).cpu()
            bare = time.perf_counter() - start

        with open_store(Path(tmp) / "bench.duckdb") as store:
            ids = [f"img{i:06d}" for i in range(len(pixels))]
            store.write_images([{"image_id": i, "path": f"/x/{i}.tif", "day": 10} for i in ids],
                               [{"image_id": i, "preprocess_key": "k", "size": args.size, "crop_x": 0, "crop_y": 0,
                                 "crop_side": args.size, "layers_used": [0, 1, 2], "pixels": p.astype("<u2").tobytes()}
                                for i, p in zip(ids, pixels)], "bench", fresh=True)
            encoder = get_registry().create("encoder", "imagenet-resnet18", {"weights": str(weights)})
            encoder.embed(pixels[:8].astype(np.float32) / 65535.0)  # warm-up, as for the baseline
            start = time.perf_counter()
            sets, computed = embed(store, encoder, "k", "bench", batch_size=args.batch_size)
            ours = time.perf_counter() - start
            assert computed == len(ids) and store.table_counts()["embeddings"] == len(ids)
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, {device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare model(x) on preloaded tensors : {len(pixels) / bare:9.1f} images/s")
    print(f"phenorank (DuckDB in, DuckDB out)  : {len(pixels) / ours:9.1f} images/s")
    print(f"phenorank / bare                   : {bare / ours:9.2f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
