"""Training speed and training memory.

    .venv/bin/python benchmarks/train.py [--images 512] [--batch-size 64] [--size 96]
    .venv/bin/python benchmarks/train.py --memory 100000 [--batches 50]
    .venv/bin/python benchmarks/train.py --allocator [--images 512] [--rounds 2]

Speed: one SimCLR epoch through phenorank vs a bare lightly + torch loop. Both train a timm
ResNet18 + lightly projection head with NT-Xent on the same preloaded images, with the same
`sweet` augmentation and data loader; phenorank adds Lightning, the pair diagnostics and the
per-epoch bookkeeping. The two take turns, each keeping its best round, with glibc told to keep
large blocks in both (what phenorank's training sets). Prints seconds per epoch and phenorank /
bare (target: at most 1.1). Runs on CUDA when there is a GPU.

Allocator: phenorank's epoch alone in fresh processes, glibc's allocator as it comes against
large blocks kept (``phenorank.core.allocator``).

Memory: a store of N 96 px crops (generated once into benchmarks/.data), then, each in a fresh
process, the peak resident memory of feeding `--batches` training batches (two `sweet` views per
crop, batch 64) to a data loader: from the crops preloaded as one float32 array (what training
did before: 11 GB at 100k crops) at N/10 crops, and streamed through phenorank's CropFile at
N/10 and N crops. Target: the streamed peak does not grow with N.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks_common import allocator_ab, leave_glibc_alone, synthetic_crops  # noqa: E402  (benchmarks/ is on sys.path)


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


def allocator_child(setting: str, images: int, size: int, batch_size: int, rounds: int) -> None:
    """Best seconds of phenorank's epoch in this process, glibc's allocator as it comes or kept."""
    from phenorank.registry import get_registry

    if setting == "default":
        leave_glibc_alone()
    data = synthetic_crops(images, size).astype(np.float32) / 65535.0
    transform = get_registry().create("augmentation", "sweet").build(size)
    print(min(phenorank_epoch(data, transform, batch_size)[0] for _ in range(rounds)))


def memory_store(n: int, size: int = 96) -> str:
    """A store holding n generated crops (made once; its path)."""
    import os

    import numpy as np

    from phenorank.core.preprocess import PreprocessParams
    from phenorank.core.store import open_store

    path = os.path.join(os.path.dirname(__file__), ".data", f"train-memory-{n}.duckdb")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    key = PreprocessParams(size=size).key
    pattern = synthetic_crops(512, size)  # repeated: making 100k distinct disks costs more than the benchmark
    with open_store(path + ".partial") as store:
        run_id = store.start_run("benchmark", {}, "", "")
        store.write_crop_set(key, "image", {"size": size}, run_id)
        for start in range(0, n, 4096):
            ids = [f"crop{i:07d}" for i in range(start, min(n, start + 4096))]
            images = [{"image_id": i, "path": f"{i}.tif", "plate": "p", "condition": "control"} for i in ids]
            crops = [{"image_id": i, "preprocess_key": key, "size": size, "crop_x": 0, "crop_y": 0, "crop_side": size,
                      "layers_used": [0, 1, 2], "pixels": pattern[j % len(pattern)].astype("<u2").tobytes()}
                     for j, i in enumerate(ids, start=start)]
            store.write_images(images, crops, run_id, fresh=True)
            print(f"  store: {start + len(ids)} / {n} crops", flush=True)
    os.replace(path + ".partial", path)
    return path


def memory_child(path: str, n: int, mode: str, batches: int) -> None:
    """Feed ``batches`` batches of two views from the first n crops; print the peak RSS in MB."""
    import resource
    import tempfile

    from phenorank.core.crop_file import CropFile
    from phenorank.core.store import open_store
    from phenorank.plugins.encoders.training import TwoViews
    from phenorank.registry import get_registry

    transform = get_registry().create("augmentation", "sweet").build(96)
    with open_store(path, read_only=True) as store, tempfile.TemporaryDirectory() as folder:
        key = store.crop_sets("image")[0]["preprocess_key"]
        ids = store.crop_ids(key)[:n]
        started = time.perf_counter()
        if mode == "preloaded":  # as training did before; DuckDB capped alike
            with store.memory_limit("512MB"):
                images = torch.from_numpy(np.concatenate([b.astype(np.float32) / 65535.0
                                                          for _, b in store.stream_crops(ids, key)]))
        else:
            images = CropFile.from_store(store, ids, key, f"{folder}/crops.u16")
        staged = time.perf_counter() - started
        loader = torch.utils.data.DataLoader(TwoViews(images, transform), batch_size=64, shuffle=True)
        started = time.perf_counter()
        for step, (x0, x1) in enumerate(loader):
            if step + 1 >= batches:
                break
        fed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak:.0f} {staged:.1f} {fed:.1f}")


def memory(n: int, batches: int) -> None:
    import subprocess
    import sys

    path = memory_store(n)
    small = max(n // 10, 64)
    results = {}
    for mode, count in (("preloaded", small), ("streamed", small), ("streamed", n)):
        out = subprocess.run([sys.executable, __file__, "--memory-child", path, str(count), mode, str(batches)],
                             capture_output=True, text=True, check=True).stdout.split()
        results[(mode, count)] = [float(v) for v in out[-3:]]
        peak, staged, fed = results[(mode, count)]
        print(f"{mode:9s} {count:7d} crops: peak RSS {peak:8.0f} MB  (load {staged:6.1f} s, {batches} batches "
              f"{fed:5.1f} s)", flush=True)
    base = results[("preloaded", small)][0]
    print(f"streamed / preloaded peak at {small} crops : {results[('streamed', small)][0] / base:6.2f}")
    print(f"streamed peak at {n} / at {small} crops : "
          f"{results[('streamed', n)][0] / results[('streamed', small)][0]:6.2f}   (target ~1: bounded by the batch)")
    print(f"preloaded would need ~{n * 3 * 96 * 96 * 4 / 1e9:.1f} GB of crops alone at {n} crops")


def main() -> None:
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        return memory_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    if len(sys.argv) > 1 and sys.argv[1] == "--child":  # setting images size batch_size rounds
        return allocator_child(sys.argv[2], *map(int, sys.argv[3:7]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", type=int, metavar="N", help="measure training memory at N crops instead")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--allocator", action="store_true",
                        help="only compare phenorank's epoch with glibc's allocator as it comes and as training sets it")
    args = parser.parse_args()
    if args.memory:
        return memory(args.memory, args.batches)
    if args.allocator:
        best = allocator_ab(__file__, [args.images, args.size, args.batch_size, args.rounds])
        print(f"one SimCLR epoch through phenorank, {args.images} images {args.size} px, batch {args.batch_size}, "
              f"best of {args.rounds} rounds in each of 2 fresh processes per setting")
        print(f"glibc as it comes: {best['default']:6.2f} s/epoch")
        print(f"large blocks kept: {best['kept']:6.2f} s/epoch   ratio {best['kept'] / best['default']:.2f}")
        return
    from phenorank.core.allocator import keep_large_blocks
    from phenorank.registry import get_registry

    keep_large_blocks()  # as phenorank's training sets it, for the bare loop as well: like against like
    data = synthetic_crops(args.images, args.size).astype(np.float32) / 65535.0
    transform = get_registry().create("augmentation", "sweet").build(args.size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bare, ours = [], []
    for _ in range(args.rounds):  # alternated; each keeps its best
        bare.append(bare_epoch(data, transform, args.batch_size, device))
        ours.append(phenorank_epoch(data, transform, args.batch_size))
    bare, ours = min(bare), min(ours)
    print(f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"bare lightly + torch loop : {bare:8.2f} s/epoch  ({device})")
    print(f"phenorank (Lightning)     : {ours[0]:8.2f} s/epoch  ({ours[1]})")
    print(f"phenorank / bare          : {ours[0] / bare:8.2f}   (target <= 1.1)")


if __name__ == "__main__":
    main()
