"""Hand-checked values of the built-in plugins, plus contract tests run on every registered plugin."""

import numpy as np
import pytest

from phenorank.plugins.encoders.morphometrics import FEATURES, object_features
from phenorank.plugins.evaluators import ranking_accuracy
from phenorank.registry import PluginError, Samples, Subject, get_registry


def samples(conditions, **columns):
    conditions = np.array(conditions, dtype=object)
    return Samples(np.array([f"id{i}" for i in range(len(conditions))], dtype=object),
                   {"condition": conditions, **{k: np.asarray(v) for k, v in columns.items()}})


def disk_image(radius, size=96, value=0.2, background=0.8):
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.full((size, size), background, np.float32)
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius ** 2] = value
    return image


# -- encoders ---------------------------------------------------------------------------------
def test_raw_encoder_flattens_the_image():
    images = np.random.default_rng(0).random((2, 3, 4, 4), dtype=np.float32)
    out = get_registry().create("encoder", "raw").embed(images)
    assert out["pixels"].shape == (2, 48)
    assert np.array_equal(out["pixels"][1], images[1].ravel())


def test_morphometrics_of_a_drawn_disk():
    f = dict(zip(FEATURES, object_features(disk_image(radius=20))))
    assert f["area"] * 96 ** 2 == pytest.approx(np.pi * 20 ** 2, rel=0.02)
    assert f["equivalent_diameter"] * 96 == pytest.approx(40, rel=0.02)
    assert 0.9 < f["circularity"] <= 1.05
    assert f["solidity"] > 0.95 and f["eccentricity"] < 0.1
    assert f["mean_inside"] == pytest.approx(0.2, abs=1e-6) and f["std_inside"] < 1e-6
    assert f["mean_around"] == pytest.approx(0.8, abs=1e-6)
    assert f["debris_area"] == 0


def test_morphometrics_sees_debris_and_elongation():
    image = disk_image(radius=15)
    image[5:9, 5:9] = 0.2  # a fragment as dark as the body, away from it
    f = dict(zip(FEATURES, object_features(image)))
    assert f["debris_area"] * 96 ** 2 == 16
    ellipse = np.full((96, 96), 0.8, np.float32)
    yy, xx = np.mgrid[0:96, 0:96]
    ellipse[((yy - 48) / 10) ** 2 + ((xx - 48) / 30) ** 2 <= 1] = 0.2
    g = dict(zip(FEATURES, object_features(ellipse)))
    assert g["eccentricity"] > 0.9 and g["circularity"] < f["circularity"]


# -- metrics ----------------------------------------------------------------------------------
def test_cosine_and_euclidean_hand_values():
    a = np.array([[1.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0]])
    registry = get_registry()
    cosine = registry.create("metric", "cosine").distance(a, b)
    euclid = registry.create("metric", "euclidean").distance(a, b)
    assert cosine[:, 0] == pytest.approx([1.0, 1.0 - 8.0 / 10.0])
    assert euclid[:, 0] == pytest.approx([np.sqrt(5.0), np.sqrt(13.0)])


# -- rankers ----------------------------------------------------------------------------------
def test_centroid_ranker_scores_distance_to_the_reference_mean():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [1.0, 3.0]])
    s = samples(["control", "control", "treated", "treated"])
    metric = get_registry().create("metric", "euclidean")
    ranker = get_registry().create("ranker", "centroid").fit(x, s, metric, "control")
    assert ranker.score(x) == pytest.approx([1.0, 1.0, 3.0, 3.0])
    with pytest.raises(PluginError, match="no images of reference condition 'dmso'.*present: control, treated"):
        get_registry().create("ranker", "centroid").fit(x, s, metric, "dmso")


# -- evaluators -------------------------------------------------------------------------------
def test_ranking_accuracy_on_a_hand_made_three_class_example():
    scores = np.array([0.1, 0.2, 0.6,   0.5, 0.55, 0.7,   0.9, 0.65, 1.0])
    labels = np.array(["c"] * 3 + ["s"] * 3 + ["e"] * 3)
    result = ranking_accuracy(scores, labels, ["c", "s", "e"])
    # means c 0.30 < s 0.583 < e 0.85; middle s spans [0.5, 0.7]
    # low-class points above 0.5: 0.6 -> 1; high-class points below 0.7: 0.65 -> 1
    assert result.values["accuracy"] == pytest.approx(7 / 9)
    assert result.details["order"] == ["c", "s", "e"]
    assert (result.details["errors_low"], result.details["errors_high"]) == (1, 1)
    separated = ranking_accuracy(np.array([0, 1, 5, 6, 9, 10.0]), np.array(list("aabbcc")), list("cab"))
    assert separated.values["accuracy"] == 1.0 and separated.details["order"] == ["a", "b", "c"]


def test_ranking_accuracy_needs_its_three_classes():
    evaluator = get_registry().create("evaluator", "ranking-accuracy")
    with pytest.raises(PluginError, match="class 'exploded' has no scored images"):
        evaluator.evaluate(Subject(samples(["control", "single_dose"]), scores=np.array([0.0, 1.0])))


def test_rank_correlation_against_a_truth_column():
    evaluator = get_registry().create("evaluator", "rank-correlation", {"truth": "dose"})
    s = samples(["x"] * 5, dose=[0.0, 1.0, 2.0, 3.0, np.nan])
    result = evaluator.evaluate(Subject(s, scores=np.array([0.1, 0.3, 0.2, 0.9, 5.0])))
    assert result.values["spearman"] == pytest.approx(0.8)  # one swapped pair among four
    assert result.details["n"] == 4
    with pytest.raises(PluginError, match="no metadata column 'effect'"):
        get_registry().create("evaluator", "rank-correlation").evaluate(Subject(s, scores=np.zeros(5)))


# -- contracts: every registered plugin of a family, built-in or third-party -------------------
def plugin_names(family):
    from phenorank.registry.manager import Registry, build_plugin_manager

    return Registry(*build_plugin_manager()).names(family)


def every_plugin():
    from phenorank.registry.manager import Registry, build_plugin_manager

    return [(info.family, info.name) for info in Registry(*build_plugin_manager()).all()]


@pytest.mark.parametrize("family,name", every_plugin())
def test_every_registered_plugin_passes_the_contract_checks_offered_to_authors(family, name, tmp_path):
    """phenorank.testing.check_plugin: what a third-party plugin's own tests call."""
    from phenorank.testing import check_plugin

    cls = get_registry().get(family, name)
    params = {"epochs": 50} if name in ("predictor", "softmax") else {}
    if family == "encoder" and "weights" in cls.defaults and getattr(cls, "architecture", None):
        import timm
        import torch

        path = tmp_path / f"{name}.pt"  # frozen pretrained encoders: any weights file of the right shape
        torch.save(timm.create_model(cls.architecture, pretrained=False).state_dict(), path)
        params = {"weights": str(path)}
    if name == "cellpose":  # the optional extra, with a model file of the user's: any Cellpose network
        pytest.importorskip("cellpose.models", reason="the cellpose extra is not installed")
        from cellpose.resnet_torch import CPnet

        CPnet(nbase=[2, 32, 64, 128, 256], nout=3, sz=3).save_model(str(tmp_path / "cellpose.pth"))
        params = {"model": str(tmp_path / "cellpose.pth")}
    done = check_plugin(cls, params)
    assert done[:2] == ["registration", "parameters"] and len(done) >= 3


def test_check_plugin_names_the_broken_promise():
    from phenorank.registry import Ranker
    from phenorank.testing import check_plugin

    class ShortRanker(Ranker):
        name = "short"
        description = "Scores all but the last item."
        defaults = {"seed": 0}

        def fit(self, embeddings, samples, metric, reference):
            return self

        def score(self, embeddings, samples=None):
            return np.zeros(len(embeddings) - 1)

    with pytest.raises(AssertionError, match="ranker 'short' .*one value per item"):
        check_plugin(ShortRanker)

    class Forgetful(ShortRanker):
        name = "forgetful"

        def __init__(self, **params):  # never calls super().__init__: parameters are not checked
            self.params = {**self.defaults, **params}

    with pytest.raises(AssertionError, match="unknown parameter must raise PluginError"):
        check_plugin(Forgetful)


@pytest.mark.parametrize("name", plugin_names("metric"))
def test_every_metric_is_smallest_on_identical_inputs(name):
    metric = get_registry().create("metric", name)
    x = np.random.default_rng(0).random((6, 5)) + 0.1
    d = metric.distance(x, x)
    if name != "dot":  # by dot product a long vector is nearer to others than to itself (documented)
        assert np.all(np.diag(d)[:, None] <= d + 1e-9)


def test_samples_give_columns_by_name_and_subsets():
    s = samples(["a", "b", "a"], dose=[1.0, 2.0, 3.0])
    assert "dose" in s and "effect" not in s
    sub = s.subset(s["condition"] == "a")
    assert list(sub.image_ids) == ["id0", "id2"] and sub["dose"].tolist() == [1.0, 3.0]
