"""Seed 000 as its author ran it: the SimCLR recipe (head, ImageNet start, views cut from larger
crops, per-epoch diagnostics on held-out images)."""

import json

import numpy as np
import torch

from phenorank.registry import get_registry


def linear_widths(module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_simclr_head_has_four_hidden_layers_of_128_ending_in_20():
    module = get_registry().create("encoder", "simclr").build_module()
    assert linear_widths(module.projection) == [(512, 128), (128, 128), (128, 128), (128, 128), (128, 20)]
    one = get_registry().create("encoder", "simclr", {"hidden_layers": 1}).build_module()
    assert linear_widths(one.projection) == [(512, 128), (128, 20)]  # the earlier, lightly-default head


def test_recipe_seed000_cuts_views_from_larger_crops_starts_from_the_given_weights_and_logs_held_out_diagnostics(
        invoke, tiny_plate, tmp_path, monkeypatch):
    import timm

    from phenorank.plugins.encoders.ssl import SimCLR

    invoke("ingest", tiny_plate, "--size", 32)
    refused = invoke("train", "--recipe", "seed000", "--epochs", "1", "--size", 32, "--crop-size", 64, ok=False)
    assert refused.exit_code != 0 and "ingest ... --size 64" in refused.output
    invoke("ingest", tiny_plate, "--size", 64)
    torch.manual_seed(5)
    start = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save(start.state_dict(), tmp_path / "r18.pt")
    seen = {}
    fit = SimCLR.fit

    def spy(self, images, augmentation, config):
        seen["crop"] = tuple(images[0].shape)
        seen["view"] = tuple(augmentation(torch.as_tensor(images[0])).shape)
        initial = self.build_module().backbone.state_dict()  # the start training gets
        seen["start"] = all(torch.equal(initial[k], v) for k, v in start.state_dict().items())
        return fit(self, images, augmentation, config)

    monkeypatch.setattr(SimCLR, "fit", spy)
    invoke("train", "--recipe", "seed000", "--epochs", "1", "--size", 32, "--crop-size", 64, "--batch-size", 16,
           "-p", f"simclr.weights={tmp_path / 'r18.pt'}")
    assert seen == {"crop": (3, 64, 64), "view": (3, 32, 32), "start": True}
    from phenorank.core.store import open_store

    from phenorank.report.training import training_sections

    with open_store(invoke.db, read_only=True) as store:
        model = store.models("simclr")[0]
        section = training_sections(store)[0]
    assert section.count("<img") == 1 and model["model_id"] in section  # the history, plotted in the report
    params = json.loads(model["encoder_params"])
    assert params["hidden_layers"] == 4 and params["init"] == "imagenet" and params["backbone"] == "resnet18"
    config = json.loads(model["train_config"])
    assert config["view_size"] == 32 and config["validation"] == 0.2 and config["batch_size"] == 16
    history = json.loads(model["history"])
    assert {"val_top1", "val_top5", "val_mean_position", "inference_top1", "inference_mean_position"} <= set(history[0])
    assert history[0]["inference_top1"] == 100.0  # two resize-only views of one image are the same image


def test_an_imagenet_start_without_resnet18_weights_takes_the_packaged_efficientnet_and_says_so(monkeypatch):
    import phenorank.plugins.encoders.imagenet as imagenet
    from phenorank.cli.training import offline_start

    monkeypatch.setattr(imagenet, "cached_weights", lambda architecture: None)
    assert offline_start("simclr", {"init": "imagenet"})["backbone"] == "efficientnet-lite0"
    assert offline_start("simclr", {"init": "imagenet", "weights": "x.pt"}) == {"init": "imagenet", "weights": "x.pt"}
    assert offline_start("simclr", {"init": "random"}) == {"init": "random"}
    encoder = get_registry().create("encoder", "simclr", {"init": "imagenet", "backbone": "efficientnet-lite0"})
    module = encoder.build_module()
    assert module.features == 1280 and linear_widths(module.projection)[0] == (1280, 128)
    out = module.heads_of(torch.rand(2, 3, 32, 32))
    assert out["backbone"].shape == (2, 1280) and out["projection"].shape == (2, 20)


def test_linear_probe_scores_the_hold_out_images_it_never_trained_on():
    from phenorank.registry import Samples, Subject

    rng = np.random.default_rng(0)
    conditions = np.array(["control"] * 20 + ["single_dose"] * 20 + ["exploded"] * 20 + ["screen"] * 10, dtype=object)
    centres = {"control": 0.0, "single_dose": 3.0, "exploded": 6.0, "screen": 3.0}
    x = np.array([[centres[c], 0.0] for c in conditions]) + rng.normal(0, 0.4, (70, 2))
    x[65:] = [-0.2, 0.0] + rng.normal(0, 0.3, (5, 2))  # 5 of the 10 look like controls instead
    held = np.array(["false"] * 60 + ["true"] * 10, dtype=object)
    samples = Samples(np.arange(70).astype(str), {"condition": conditions, "holdout": held,
                                                  "well": np.arange(70).astype(str).astype(object)})
    result = get_registry().create("evaluator", "linear-probe").evaluate(Subject(samples, embeddings=x))
    assert result.values["holdout_accuracy"] == 0.5 and result.values["holdout_n"] == 10
    assert result.details["n_train"] + result.details["n_test"] == 60


def test_image_predictor_ranks_through_the_pipeline_and_the_feature_predictor_takes_coupled_copies(invoke, tiny_plate):
    from conftest import rows

    invoke("ingest", tiny_plate, "--size", 32)
    invoke("run", "--encoders", "raw,morphometrics", "--rankers", "image-predictor,predictor", "--metrics", "euclidean",
           "--size", 32, "--evaluators", "ranking-accuracy", "-p", "image-predictor.epochs=3",
           "-p", "predictor.augment=2", "-p", "predictor.epochs=30", "-p", "predictor.patience=10")
    ranked = rows(invoke.db, "SELECT encoder, ranker, count(*) FROM comparison WHERE name = 'accuracy' "
                             "GROUP BY ALL ORDER BY ALL")
    assert ranked == [("morphometrics", "image-predictor", 1), ("morphometrics", "predictor", 1),
                      ("raw", "image-predictor", 1), ("raw", "predictor", 1)]
    # only wells with a day-7 image are scored; on raw pixels the embeddings are the images
    scored = rows(invoke.db, "SELECT e.encoder, count(*) FROM scores s JOIN rankings r USING (ranking_id) "
                             "JOIN embedding_sets e USING (embedding_set_id) WHERE r.ranker = 'image-predictor' "
                             "GROUP BY ALL ORDER BY ALL")
    assert scored == [("morphometrics", 60), ("raw", 60)]
    invoke("run", "--encoders", "raw", "--rankers", "image-predictor", "--metrics", "euclidean", "--size", 32,
           "--evaluators", "ranking-accuracy", "-p", "image-predictor.epochs=3", "-p", "image-predictor.compare=images")
    same = rows(invoke.db, "SELECT count(DISTINCT round(s.score, 4)), count(*) FROM scores s JOIN rankings r "
                           "USING (ranking_id) JOIN embedding_sets e USING (embedding_set_id) "
                           "WHERE r.ranker = 'image-predictor' AND e.encoder = 'raw' GROUP BY s.image_id")
    assert {n for n, _ in same} == {1} and {c for _, c in same} == {2}
    compared = invoke("compare", "--rows", "encoder,ranker", "--columns", "reference")
    assert "image-predictor" in compared.output
