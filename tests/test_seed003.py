"""Seed 003's stability study: its corruption table in the robustness evaluator and as an
augmentation, and MMD drift of a plate against a reference plate."""

import numpy as np
import pytest
import torch

from phenorank.plugins.corruptions import SEVERITIES, corrupt, disk_kernel
from phenorank.registry import Samples, Subject, get_registry

# seed 003, table 5: severities -5..5 (the contrast and brightness rows are signed)
TABLE = {"defocus": [None] * 5 + [0, 0.5, 1.0, 1.5, 2, 3],
         "contrast": [3.5, 3.0, 2.5, 2.0, 1.5, 1, 0.9, 0.8, 0.7, 0.5, 0.3],
         "brightness": [-150, -135, -120, -90, -50, 0, 50, 90, 120, 135, 150]}


def test_the_corruption_table_is_seed_003s():
    assert list(SEVERITIES["defocus"]) == TABLE["defocus"][6:]
    assert list(SEVERITIES["contrast_down"]) == TABLE["contrast"][6:]
    assert list(SEVERITIES["contrast_up"]) == TABLE["contrast"][4::-1]
    assert list(SEVERITIES["brightness_up"]) == TABLE["brightness"][6:]
    assert list(SEVERITIES["brightness_down"]) == TABLE["brightness"][4::-1]
    evaluator = get_registry().create("evaluator", "robustness")
    assert {k: evaluator.params[k] for k in SEVERITIES} == {k: list(v) for k, v in SEVERITIES.items()}


def test_each_corruption_does_what_the_table_says():
    flat = np.full((1, 3, 16, 16), 0.5, np.float32)
    flat[:, :, :8] = 0.3  # two levels, mean 0.4
    assert np.allclose(corrupt(flat, "brightness_up", 50), flat + 50 / 255)
    assert np.allclose(corrupt(flat, "brightness_down", -50), flat - 50 / 255)
    assert corrupt(flat, "brightness_down", -90).min() == 0  # clipped, not wrapped
    assert np.allclose(corrupt(flat, "contrast_down", 0.5), 0.4 + (flat - 0.4) * 0.5)
    assert np.allclose(corrupt(flat, "contrast_up", 2.0), np.clip(0.4 + (flat - 0.4) * 2.0, 0, 1))
    moments = []
    for radius in (0.5, 1.0, 1.5, 2.0, 3.0):  # a disk of that radius: second moment r^2 / 2 (y^2 + x^2)
        kernel = disk_kernel(radius)
        half = kernel.shape[0] // 2
        y, x = np.mgrid[-half:half + 1, -half:half + 1]
        moment = float((kernel * (y ** 2 + x ** 2)).sum())
        assert kernel.sum() == pytest.approx(1.0) and np.allclose(kernel, kernel.T)
        # + the bilinear sharing among pixels, f (1 - f) <= 1/4 per axis
        assert radius ** 2 / 2 - 0.02 <= moment <= radius ** 2 / 2 + 0.5
        moments.append(moment)
    assert moments == sorted(moments)
    point = np.zeros((1, 1, 21, 21), np.float32)
    point[0, 0, 10, 10] = 1
    widths = [(corrupt(point, "defocus", r)[0, 0] > 0).sum() for r in SEVERITIES["defocus"]]
    assert widths == sorted(widths) and widths[0] > 1


def test_robustness_reports_every_severity_and_takes_new_ones_with_p(invoke):
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, (12, 3, 16, 16)).astype(np.float32)
    samples = Samples(np.arange(12).astype(str), {"condition": np.repeat(["a", "b"], 6).astype(object)})
    subject = Subject(samples, embeddings=images.reshape(12, -1), images=lambda r: images[r],
                      encode=lambda batch: batch.reshape(len(batch), -1))
    registry = get_registry()
    result = registry.create("evaluator", "robustness", {"evaluator": ""}).evaluate(subject)
    assert result.details["strengths"] == {f"{k}_{i}": v for k, levels in SEVERITIES.items()
                                           for i, v in enumerate(levels, 1)}
    for kind in SEVERITIES:
        moves = [result.values[f"{kind}_{level}_movement"] for level in range(1, 6)]
        assert all(b > a for a, b in zip(moves, moves[1:])), (kind, moves)
    from phenorank.registry.manager import coerce_params
    from phenorank.plugins.evaluators.robustness import Robustness

    params = coerce_params(Robustness, {"defocus": "1,2", "corruptions": "defocus", "evaluator": ""})
    changed = Robustness(**params).evaluate(subject)
    assert changed.details["strengths"] == {"defocus_1": 1.0, "defocus_2": 2.0}


def test_corruptions_augmentation_draws_from_the_table():
    registry = get_registry()
    image = torch.full((3, 24, 24), 0.5)
    only_bright = registry.create("augmentation", "corruptions", {"kinds": "brightness_up", "p": 1.0,
                                                                   "dihedral_p": 0.0}).build(24)
    torch.manual_seed(0)
    shifts = {round(float(only_bright(image).mean() - 0.5) * 255) for _ in range(60)}
    assert shifts == {50, 90, 120, 128}  # +135 and +150 clip at 1.0, +127.5 from 0.5
    never = registry.create("augmentation", "corruptions", {"p": 0.0, "dihedral_p": 0.0}).build(24)
    assert torch.equal(never(image), image)


def drifting_plates(shift: float, n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3 * n, 6))
    x[2 * n:, :2] += shift  # plate P3's controls are off
    plates = np.repeat(["P1", "P2", "P3"], n).astype(object)
    return Subject(Samples(np.arange(3 * n).astype(str), {"plate": plates, "condition": np.full(3 * n, "control",
                                                                                               dtype=object)}),
                   embeddings=x)


def test_mmd_drift_flags_the_shifted_plate_only_and_matches_the_direct_formula():
    from phenorank.plugins.evaluators.drift import gaussian_kernel, mmd2_permutations

    result = get_registry().create("evaluator", "drift-mmd", {"permutations": 200}).evaluate(drifting_plates(1.0))
    assert result.details["reference_plate"] == "P1"
    assert result.groups["P3"]["q_value"] < 0.05 < result.groups["P2"]["p_value"]
    assert result.values["drifted_plates"] == 1 and result.groups["P3"]["mmd2"] > 5 * abs(result.groups["P2"]["mmd2"])
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    kernel, bandwidth = gaussian_kernel(np.concatenate([a, b]))
    k = lambda u, v: np.exp(-np.sum((u - v) ** 2) / (2 * bandwidth ** 2))  # noqa: E731
    direct = (sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / 42
              + sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / 20
              - 2 * sum(k(u, v) for u in a for v in b) / 35)
    assert mmd2_permutations(kernel, 7, 10, 0)[0] == pytest.approx(direct)
