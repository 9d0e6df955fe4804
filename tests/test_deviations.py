"""The README's table of where phenorank differs from the documents: every row's restoring
parameter exists, is accepted, and differs from the default; and the new switches behave."""

import re
from pathlib import Path

import numpy as np
import pytest

from phenorank.registry import Samples, Subject, get_registry
from phenorank.registry.manager import coerce_params

README = Path(__file__).resolve().parents[1] / "README.md"


def deviation_rows() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("### Where phenorank differs from the documents"):]
    section = section[:section.index("\n\nNot deviations")]
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| document")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


ROWS = deviation_rows()


def test_the_table_lists_the_known_deviations():
    assert len(ROWS) >= 12 and all(len(row) == 5 for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row[1][:40] for row in ROWS])
def test_each_restoring_parameter_is_real_and_not_the_default(row):
    from click.testing import CliRunner

    from phenorank.cli import cli

    restore = row[4]
    registry = get_registry()
    settings = re.findall(r"-p ([\w-]+)\.(\w+)=([^\s`]+)", restore)
    options = re.findall(r"(--[\w-]+)(?: ([^\s`]+))?", re.sub(r"-p [\w.=,-]+", "", restore))
    assert settings or options, restore
    for plugin, key, value in settings:
        family = next(f for f in ("encoder", "ranker", "evaluator", "metric", "augmentation")
                      if plugin in registry.names(f))
        cls = registry.get(family, plugin)
        assert key in cls.defaults, (plugin, key)
        if value == "FILE":
            continue
        chosen = registry.create(family, plugin, {key: value}).params[key]
        assert chosen == coerce_params(cls, {key: value})[key] and chosen != cls.defaults[key], (plugin, key, value)
    train_help = CliRunner().invoke(cli, ["train", "--help"]).output
    for option, _ in options:
        assert option in train_help, option


def test_standardize_false_feeds_the_raw_features_to_the_linear_layer():
    rng = np.random.default_rng(0)
    conditions = np.repeat(["control", "single_dose", "exploded"], 20).astype(object)
    x = np.repeat(np.eye(3), 20, axis=0) * [1.0, 1000.0, 0.001] + rng.normal(0, 0.3, (60, 3))
    samples = Samples(np.arange(60).astype(str), {"condition": conditions, "well": np.arange(60).astype(str)})
    registry = get_registry()
    scaled = registry.create("evaluator", "linear-probe").evaluate(Subject(samples, embeddings=x)).values
    raw = registry.create("evaluator", "linear-probe", {"standardize": "false"}).evaluate(
        Subject(samples, embeddings=x)).values
    assert scaled["test_accuracy"] > raw["test_accuracy"]  # the third feature is lost under the second's scale
    ranker = registry.create("ranker", "softmax", {"standardize": "false"})
    assert ranker.params["standardize"] is False
    scores = ranker.fit(x, samples, None, "control").score(x, samples)
    assert np.mean(scores[20:]) > np.mean(scores[:20])


def test_threshold_zero_is_the_jaccard_and_hamming_of_the_non_zero_components():
    from scipy.spatial.distance import hamming, jaccard

    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(size=(5, 12)), 0)  # ReLU features: a component is set when not zero
    b = np.maximum(rng.normal(size=(4, 12)), 0)
    registry = get_registry()
    ours = registry.create("metric", "jaccard", {"threshold": "0"}).pairwise(a, b)  # a similarity
    np.testing.assert_allclose(ours, [[1 - jaccard(u > 0, v > 0) for v in b] for u in a])
    ours = registry.create("metric", "hamming", {"threshold": "0"}).pairwise(a, b)
    np.testing.assert_allclose(ours, [[hamming(u > 0, v > 0) for v in b] for u in a])
