"""Augmentation presets and the learned encoders: SimCLR, BYOL, CAE, ImageNet ResNets."""

import json

import numpy as np
import pytest
import torch

from conftest import rows

from phenorank.plugins.augmentations import Dihedral
from phenorank.registry import PluginError, TrainConfig, get_registry

PRESETS = ("strong", "sweet", "resize", "sweet-no-contrast", "resize-no-contrast")


def sixteen_bit_image(size=48, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    disk = ((yy - size / 2) ** 2 + (xx - size / 2.5) ** 2) < (size / 4) ** 2
    image = np.where(disk, 0.3, 0.75) + rng.normal(0, 0.02, (3, size, size))
    return torch.from_numpy(np.rint(np.clip(image, 0, 1) * 65535) / 65535).float()


def test_dihedral_set_is_the_seven_symmetries_the_seed_keeps():
    image = torch.arange(3 * 5 * 5, dtype=torch.float32).reshape(3, 5, 5)
    views = {choice: Dihedral.apply(image, choice) for choice in Dihedral.CHOICES}
    symmetries = [torch.rot90(im, k, dims=(-2, -1)) for im in (image, torch.flip(image, dims=(-1,))) for k in range(4)]
    keys = {tuple(v.flatten().tolist()) for v in views.values()}
    assert len(keys) == 7 and tuple(image.flatten().tolist()) not in keys
    assert keys == {tuple(s.flatten().tolist()) for s in symmetries} - {tuple(image.flatten().tolist())}
    for view in views.values():  # a square stays square with every pixel kept: no black corners
        assert view.shape == image.shape and torch.equal(view.flatten().sort().values, image.flatten().sort().values)
    torch.manual_seed(0)
    applied = [Dihedral(p=0.5)(image) for _ in range(400)]
    unchanged = sum(torch.equal(a, image) for a in applied)
    assert 150 < unchanged < 250  # probability 0.5


@pytest.mark.parametrize("name", PRESETS)
def test_presets_give_finite_views_in_range_without_8_bit_squeeze(name):
    transform = get_registry().create("augmentation", name).build(32)
    image = sixteen_bit_image()
    torch.manual_seed(1)
    for _ in range(20):
        view = transform(image)
        assert view.shape == (3, 32, 32) and view.dtype == torch.float32
        assert torch.isfinite(view).all() and view.min() >= 0 and view.max() <= 1
    assert len(torch.unique(transform(image))) > 256  # 16-bit levels survive, not 256 of them


@pytest.mark.parametrize("name, brightness, contrast", [("strong", 0.8, 0.8), ("sweet", 0.2, 0.35),
                                                        ("sweet-no-contrast", 0.2, 0.0)])
def test_jitter_ranges_hold(name, brightness, contrast):
    fixed = {"crop": False, "dihedral_p": 0.0, "blur_p": 0.0, "sharpness_p": 0.0, "jitter_p": 1.0}
    registry = get_registry()
    preset = registry.create("augmentation", name, fixed)
    assert (preset.params["brightness"], preset.params["contrast"]) == (brightness, contrast)
    dim = torch.full((3, 16, 16), 0.25)
    dim[:, :8] = 0.35  # two levels: brightness scales both, contrast moves them about their mean
    only_brightness = registry.create("augmentation", name, {**fixed, "contrast": 0.0}).build(16)
    torch.manual_seed(2)
    ratios = [float(only_brightness(dim).mean() / dim.mean()) for _ in range(300)]
    assert 1 - brightness - 1e-3 <= min(ratios) and max(ratios) <= 1 + brightness + 1e-3
    assert max(ratios) - min(ratios) > brightness  # and the range is used
    if contrast:
        only_contrast = registry.create("augmentation", name, {**fixed, "brightness": 0.0}).build(16)
        spreads = [float(only_contrast(dim).std() / dim.std()) for _ in range(300)]
        assert 1 - contrast - 1e-2 <= min(spreads) and max(spreads) <= 1 + contrast + 1e-2


def tiny_images(n=12, size=32, seed=0) -> np.ndarray:
    return np.stack([sixteen_bit_image(size, seed + i).numpy() for i in range(n)]).astype(np.float32)


CPU = dict(accelerator="cpu", devices=1)


@pytest.mark.parametrize("name, heads", [("simclr", {"backbone": 512, "projection": 20}),
                                         ("byol", {"backbone": 512, "projection": 20}),
                                         ("reconstruction-cae", {"bottleneck": 64 * 4 * 4, "pooled": 64})])
def test_trained_encoders_have_their_heads_and_round_trip_through_a_checkpoint(name, heads, tmp_path):
    registry = get_registry()
    images = tiny_images()
    encoder = registry.create("encoder", name)
    history = encoder.fit(images, registry.create("augmentation", "sweet").build(32),
                          TrainConfig(epochs=2, batch_size=6, **CPU))
    assert [h["epoch"] for h in history] == [0, 1] and all(np.isfinite(h["loss"]) for h in history)
    if name != "reconstruction-cae":
        assert {"top1", "top5", "mean_position"} <= set(history[-1])
        assert 1 <= history[-1]["mean_position"] <= 2 * 6 - 1
    out = encoder.embed(images)
    assert {k: v.shape for k, v in out.items()} == {k: (len(images), d) for k, d in heads.items()}
    encoder.save(str(tmp_path / "model.pt"))
    again = registry.create("encoder", name)
    again.load(str(tmp_path / "model.pt"))
    for head, vectors in again.embed(images).items():
        np.testing.assert_allclose(vectors, out[head], rtol=1e-5, atol=1e-5)


def test_training_with_a_seed_repeats_exactly_on_cpu():
    registry = get_registry()
    images = tiny_images(8)
    runs = []
    for _ in range(2):
        encoder = registry.create("encoder", "simclr")
        history = encoder.fit(images, registry.create("augmentation", "strong").build(32),
                              TrainConfig(epochs=2, batch_size=4, seed=7, **CPU))
        runs.append((history[-1]["loss"], encoder.embed(images)["projection"]))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_imagenet_encoder_needs_weights_and_uses_exactly_the_given_ones(tmp_path):
    import timm
    from safetensors.torch import save_file

    from phenorank.plugins.encoders.imagenet import IMAGENET_MEAN, IMAGENET_STD

    registry = get_registry()
    images = tiny_images(4)
    with pytest.raises(PluginError, match="needs ImageNet weights.*imagenet-resnet18.weights=.*never downloads"):
        registry.create("encoder", "imagenet-resnet18").embed(images)
    torch.manual_seed(3)
    source = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    save_file(source.state_dict(), str(tmp_path / "r18.safetensors"))
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    x = torch.from_numpy(images)
    with torch.no_grad():
        expected = source((x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    for path in ("r18.safetensors", "r18.pt"):
        found = registry.create("encoder", "imagenet-resnet18", {"weights": str(tmp_path / path)}).embed(images)
        np.testing.assert_allclose(found["backbone"], expected.numpy(), rtol=1e-4, atol=1e-5)
    torch.save({"not": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(PluginError, match="does not hold resnet18 weights"):
        registry.create("encoder", "imagenet-resnet18", {"weights": str(tmp_path / "wrong.pt")}).embed(images)


def test_train_then_run_compares_both_heads_of_simclr_and_byol(invoke, tiny_plate):
    invoke("ingest", tiny_plate, "--size", 32)
    for encoder in ("simclr", "byol"):
        result = invoke("train", "--encoder", encoder, "--augmentation", "sweet", "--epochs", 2, "--batch-size", 32,
                        "--size", 32, "--accelerator", "cpu")
        assert "top1" in result.stdout and "mean_position" in result.stdout
        # each epoch said as it ends, with its loss and pair diagnostics
        assert "epoch 1/2: loss" in result.output and "epoch 2/2: loss" in result.output
        assert "top-1" in result.output.split("epoch 1/2:")[1].splitlines()[0]
        assert "trained model" in result.output and "cpu" in result.output
    again = invoke("train", "--encoder", "simclr", "--epochs", 2, "--batch-size", 32, "--size", 32)
    assert "already trained" in again.output
    invoke("run", "--encoders", "raw,simclr,byol:sweet", "--metrics", "cosine", "--size", 32)
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(invoke("compare", "--format", "csv").stdout)))
    found = {(r["encoder"], r["augmentation"], r["head"]) for r in rows}
    assert found == {("raw", "", "pixels"), ("simclr", "sweet", "backbone"), ("simclr", "sweet", "projection"),
                     ("byol", "sweet", "backbone"), ("byol", "sweet", "projection")}
    models = invoke("sql", "select encoder, augmentation, n_images from models order by encoder", "--format", "csv")
    assert models.stdout.splitlines()[1:] == ["byol,sweet,120", "simclr,sweet,120"]


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    registry = get_registry()
    images, transform = tiny_images(8), registry.create("augmentation", "sweet").build(32)
    folder = str(tmp_path / "checkpoints")
    first = registry.create("encoder", "simclr").fit(
        images, transform, TrainConfig(epochs=1, batch_size=4, checkpoint_dir=folder, **CPU))
    assert [h["epoch"] for h in first] == [0] and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    resumed = registry.create("encoder", "simclr").fit(
        images, transform, TrainConfig(epochs=3, batch_size=4, checkpoint_dir=folder, resume=True, **CPU))
    assert [h["epoch"] for h in resumed] == [1, 2]  # epoch 0 is not trained again


def test_crop_file_streams_the_stored_crops_with_their_statistics(tmp_path, invoke, tiny_plate):
    from phenorank.core.crop_file import CropFile
    from phenorank.core.store import open_store

    invoke("ingest", tiny_plate, "--size", 32)
    with open_store(invoke.db) as store:
        key = store.crop_sets("image")[0]["preprocess_key"]
        ids = store.crop_ids(key)
        crops = CropFile.from_store(store, ids, key, tmp_path / "crops.u16", chunk=7)
        stored = np.concatenate([batch for _, batch in store.iter_crops(ids, key, 256)])
    assert len(crops) == 120 and (tmp_path / "crops.u16").stat().st_size == stored.size * 2
    for index in (0, 59, 119):
        np.testing.assert_array_equal(crops[index], stored[index])
    tensor = torch.from_numpy(stored)
    np.testing.assert_allclose(crops.mean, tensor.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(crops.std, tensor.std(dim=(0, 2, 3)).numpy(), rtol=1e-4)
    with pytest.raises(IndexError):
        crops[120]


def _checkpoint(tmp_path):
    found = list((tmp_path / "store-models").glob("*/checkpoints/last.ckpt"))
    return found[0] if found else None


def test_training_killed_mid_way_resumes_from_its_last_epoch(tmp_path, invoke, tiny_plate):
    import os
    import signal
    import subprocess
    import sys
    import time

    invoke("ingest", tiny_plate, "--size", 32)
    args = ["train", "--encoder", "simclr", "--epochs", 4, "--batch-size", 16, "--size", 32, "--accelerator", "cpu"]
    refused = invoke(*args, "--resume", ok=False)
    assert refused.exit_code == 1 and "no checkpoint to resume from" in refused.output
    phenorank = os.path.join(os.path.dirname(sys.executable), "phenorank")
    process = subprocess.Popen([phenorank, "--db", invoke.db, *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _checkpoint(tmp_path) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _checkpoint(tmp_path) is not None, "no checkpoint was written after the first epoch"
    assert not list((tmp_path / "store-models").glob("*/model.pt"))  # it died before finishing
    resumed = invoke(*args, "--resume")
    assert "trained model" in resumed.output
    history = json.loads(rows(invoke.db, "select history from models")[0][0])
    epochs = [h["epoch"] for h in history]
    assert epochs[-1] == 3 and epochs[0] >= 1  # the epochs done before the kill were not trained again
    runs = dict(rows(invoke.db, "select status, count(*) from runs where command = 'train' group by status"))
    assert runs == {"interrupted": 1, "failed": 1, "ok": 1}


def test_ddp_on_two_cpu_processes_trains_one_model_and_records_the_world_size(invoke, tiny_plate):
    import json

    from conftest import rows

    invoke("ingest", tiny_plate, "--size", 32)
    result = invoke("train", "--encoder", "simclr", "--epochs", 2, "--batch-size", 16, "--size", 32,
                    "--accelerator", "cpu", "--devices", 2, "--strategy", "ddp")
    assert "epoch 2/2: loss" in result.output and "mean_position" in result.output and "trained model" in result.output
    (config, device, history), = rows(invoke.db, "SELECT train_config, device, history FROM models")
    config, history = json.loads(config), json.loads(history)
    assert config["strategy"] == "ddp" and config["world_size"] == 2 and device == "cpu"
    assert [h["epoch"] for h in history] == [0, 1] and all(h["world_size"] == 2 for h in history)
    invoke("embed", "--encoder", "simclr", "--size", 32)  # the trained weights load and embed
    assert rows(invoke.db, "SELECT count(*) FROM embeddings e JOIN embedding_sets s USING (embedding_set_id) "
                           "WHERE s.encoder = 'simclr'") == [(2 * 120,)]
