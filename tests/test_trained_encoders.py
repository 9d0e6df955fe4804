"""The supervised classifier encoder (seed 001, seed 004) and Deep InfoMax (seed 002): grouped
splits that never leak, class weights, the three backbones, DIM's loss, mask and sliding window,
and both trained and embedded through the CLI on generated cells."""

import json

import numpy as np
import pytest
import torch
from conftest import rows

from phenorank.core.synthetic_cells import CellSpec, generate_cells
from phenorank.plugins.encoders.classifier import SupervisedClassifier, class_weights
from phenorank.plugins.encoders.dim import DeepInfoMax, gmm_threshold, jsd_mi, windows
from phenorank.plugins.encoders.training import validation_split
from phenorank.registry import PluginError, TrainConfig


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """Generated cells (3 classes x 2 samples x 2 fields), ingested and cut into object crops."""
    from click.testing import CliRunner

    from phenorank.cli import cli

    folder = tmp_path_factory.mktemp("cells")
    generate_cells(folder / "images", CellSpec(samples_per_class=2, fields=2, side=96, cells_per_field=4, seed=1))
    db = str(folder / "store.duckdb")

    def run(*args):
        result = CliRunner().invoke(cli, ["--db", db, *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("ingest", folder / "images", "--folders", "--pattern", "{sample}_f{field}.tif", "--loader", "tiff-channels",
        "--size", "32")
    run("objects", "--size", "32", "--side", "40", "-p", "watershed.channel=0")
    run.db = db
    return run


# -- grouped splits ------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
def test_a_validation_split_never_puts_one_group_on_both_sides(fraction):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 9, size=200)  # 200 cells of 9 images
    for seed in range(20):
        train, held = validation_split(len(images), fraction, seed, images)
        assert len(train) and len(held) and len(train) + len(held) == 200
        assert not set(images[train]) & set(images[held])


def test_class_weights_are_scikit_learns_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    codes = np.array([0, 0, 0, 0, 1, 2, 2])
    assert class_weights(codes, 3) == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=codes))
    assert class_weights(np.array([0, 0, 2]), 3)[1] == 0  # absent from training: no weight, no division by zero


# -- the classifier ------------------------------------------------------------------------------
def classifier(**params):
    model = SupervisedClassifier(**params)
    model.classes, model.view_size = ["a", "b", "c"], 32
    model.module = model.build_module()
    return model.module.eval()


@pytest.mark.parametrize("backbone", ["small-cnn", "densenet121", "vgg16"])
def test_every_backbone_gives_an_embedding_and_class_probabilities(backbone):
    module = classifier(backbone=backbone, width=16)
    with torch.no_grad():
        heads = module.heads_of(torch.rand(2, 3, 32, 32))
    assert heads["embedding"].shape == (2, 8) and heads["probabilities"].shape == (2, 3)
    assert heads["probabilities"].sum(dim=1).numpy() == pytest.approx([1, 1])
    if backbone == "small-cnn":  # an image of another size still gives the training width
        with torch.no_grad():
            assert module.heads_of(torch.rand(1, 3, 48, 48))["embedding"].shape == (1, 8)


def test_an_imagenet_start_reads_the_users_file_and_never_downloads(tmp_path):
    import timm

    with pytest.raises(PluginError, match="never downloads"):
        classifier(backbone="densenet121", init="imagenet")
    source = timm.create_model("densenet121", pretrained=False, num_classes=0)
    torch.save(source.state_dict(), tmp_path / "densenet121.pth")
    module = classifier(backbone="densenet121", init="imagenet", weights=str(tmp_path / "densenet121.pth"))
    assert torch.equal(module.backbone.state_dict()["features.conv0.weight"], source.state_dict()["features.conv0.weight"])
    vgg = {f"features.{k}": v for k, v in classifier(backbone="vgg16").backbone[0].state_dict().items()}
    torch.save({**vgg, "pre_logits.fc1.weight": torch.zeros(1)}, tmp_path / "vgg16.pth")  # as a timm checkpoint
    module = classifier(backbone="vgg16", init="imagenet", weights=str(tmp_path / "vgg16.pth"))
    assert torch.equal(module.backbone[0].state_dict()["28.weight"], vgg["features.28.weight"])


def test_the_classifier_learns_a_label_it_can_see():
    rng = np.random.default_rng(0)
    labels = np.repeat(["dim", "bright"], 32)
    images = rng.uniform(0, 0.3, size=(64, 3, 16, 16)).astype(np.float32)
    images[labels == "bright"] += 0.5
    model = SupervisedClassifier(width=16, lr=3e-3, dropout=0.0)
    history = model.fit(images, lambda x: x, TrainConfig(epochs=8, batch_size=16, seed=0, labels=labels,
                                                          accelerator="cpu", devices=1))
    assert history[-1]["accuracy"] > 90 and history[-1]["loss"] < history[0]["loss"]
    predicted = np.array(model.classes)[model.embed(images)["probabilities"].argmax(axis=1)]
    assert (predicted == labels).mean() > 0.9


def test_train_a_classifier_on_cells_hold_out_whole_samples_then_svm_and_kmeans(cells):
    cells("train", "--encoder", "classifier", "--label", "condition", "--crops", "objects", "--size", "32",
          "--epochs", "1", "-p", "classifier.width=16", "--validation", "0.34")
    config = json.loads(rows(cells.db, "SELECT train_config FROM models WHERE encoder = 'classifier'")[0][0])
    assert config["label"] == "condition" and config["split_by"] == "auto"
    assert len(config["held_out"]) == 2 and all(s.startswith("S") for s in config["held_out"])  # 2 of 6 samples
    cells("embed", "--encoder", "classifier", "--crops", "objects", "--size", "32")
    found = dict(rows(cells.db, "SELECT head, dim FROM embedding_sets WHERE encoder = 'classifier'"))
    assert found == {"embedding": 8, "probabilities": 3}
    names = rows(cells.db, "SELECT feature_names FROM embedding_sets WHERE head = 'probabilities'")[0][0]
    assert names == ["p(elongated)", "p(enlarged)", "p(round)"]
    cells("evaluate", "--evaluator", "svm,clustering-kmeans", "--level", "object", "-p", "svm.folds=3")
    scores = rows(cells.db, "SELECT head, evaluator, value FROM comparison WHERE encoder = 'classifier' "
                            "AND evaluator || ':' || name IN ('svm:accuracy', 'clustering-kmeans:v_measure')")
    assert len(scores) == 4 and all(0 <= r[2] <= 1 for r in scores)  # both heads x (svm, k-means)
    refused = cells  # a self-supervised encoder learns no label
    from click.testing import CliRunner

    from phenorank.cli import cli

    result = CliRunner().invoke(cli, ["--db", refused.db, "train", "--encoder", "simclr", "--label", "condition",
                                      "--crops", "objects", "--size", "32"])
    assert result.exit_code != 0 and "learns no label" in result.output


# -- Deep InfoMax --------------------------------------------------------------------------------
def test_jsd_mi_by_hand():
    scores = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    positive = torch.eye(2)
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    expected = (softplus(-2.0) + softplus(-3.0)) / 2 + (softplus(-1.0) + softplus(0.5)) / 2
    assert float(jsd_mi(scores, positive, torch.ones(2, 2))) == pytest.approx(expected, rel=1e-6)
    # a weight of 0 (background) takes a pair out of both averages
    weight = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    expected = (softplus(-2.0) + softplus(-3.0)) / 2 + softplus(-1.0)
    assert float(jsd_mi(scores, positive, weight)) == pytest.approx(expected, rel=1e-6)


def test_windows_cover_the_image_and_end_flush():
    assert windows(32, 16, 8) == [0, 8, 16]
    assert windows(30, 16, 8) == [0, 8, 14]
    assert windows(16, 16, 8) == [0] and windows(10, 16, 8) == [0]


def test_the_gmm_threshold_separates_background_from_cells():
    rng = np.random.default_rng(0)
    images = rng.normal(0.1, 0.02, size=(8, 3, 32, 32))
    images[:, :, 8:20, 8:20] = rng.normal(0.7, 0.05, size=(8, 3, 12, 12))
    assert 0.2 < gmm_threshold(images, np.arange(8)) < 0.6


def dim_module(view=16, **params):
    model = DeepInfoMax(**params)
    model.view_size = view
    model.module = model.build_module()
    return model.module.eval()


def test_dim_masks_background_positions_and_slides_over_larger_images():
    module = dim_module()
    module.threshold.fill_(0.5)
    image = torch.zeros(1, 3, 16, 16)
    image[..., :, 8:] = 1.0  # right half bright: the right half of the 4 x 4 local map is foreground
    local, _ = module.encode(image)
    assert module.foreground(image, local)[0].tolist() == [[0, 0, 1, 1]] * 4
    big = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        heads = module.sliding_heads(big)
        each = [module.encode(big[..., r:r + 16, c:c + 16])[1] for r in (0, 8, 16) for c in (0, 8, 16)]
    assert torch.allclose(heads["global"], torch.stack(each).mean(dim=0), atol=1e-6)
    assert heads["local"].shape == (2, 128)


def test_dim_trains_with_same_sample_positives_and_embeds(cells):
    cells("train", "--encoder", "dim", "--positives", "sample", "--crops", "objects", "--size", "32", "--epochs", "3",
          "-p", "dim.lr=1e-3")
    history = json.loads(rows(cells.db, "SELECT history FROM models WHERE encoder = 'dim'")[0][0])
    assert len(history) == 3 and history[-1]["mi_local"] < history[0]["mi_local"]
    cells("embed", "--encoder", "dim", "--crops", "objects", "--size", "32")
    found = dict(rows(cells.db, "SELECT head, dim FROM embedding_sets WHERE encoder = 'dim'"))
    assert found == {"global": 64, "local": 128}


def test_predict_runs_every_batch_at_full_size_and_returns_one_row_per_image():
    import torch

    from phenorank.plugins.encoders.training import predict

    sizes = []

    def forward(batch):
        sizes.append(len(batch))
        return {"sum": batch.sum(dim=(1, 2, 3), keepdim=False)[:, None]}

    images = np.random.default_rng(0).random((150, 1, 4, 4), dtype=np.float32)
    out = predict(forward, torch.nn.Identity(), images, batch_size=64)
    assert sizes == [64, 64, 64]  # 150 = 64 + 64 + 22, the last padded
    assert out["sum"].shape == (150, 1) and np.allclose(out["sum"][:, 0], images.sum(axis=(1, 2, 3)), rtol=1e-6)
