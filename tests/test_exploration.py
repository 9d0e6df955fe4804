"""Seed 001's exploration: choosing k (elbow and silhouette), t-SNE and kernel-PCA reductions,
checked against scikit-learn's own computations."""

import numpy as np
import pytest

from phenorank.plugins.evaluators.choose_k import elbow
from phenorank.plugins.evaluators.clustering import kernel_pca, tsne
from phenorank.registry import Samples, Subject, get_registry


def blobs(centres=4, n=12, seed=0, dim=6):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 0.4, (n, dim)) + 6 * np.eye(dim)[c] for c in range(centres)])
    labels = np.repeat([f"c{c}" for c in range(centres)], n).astype(object)
    return x, Samples(np.arange(len(x)).astype(str), {"condition": labels})


def test_the_elbow_is_where_the_curve_bends():
    ks = np.arange(2, 9)
    assert elbow(ks, np.array([100, 60, 20, 18, 16, 15, 14.0])) == 4
    assert elbow(ks, np.array([100, 30, 25, 22, 20, 19, 18.0])) == 3
    assert elbow(np.array([2, 3]), np.array([5.0, 1.0])) == 2


def test_choose_k_finds_four_blobs_and_its_inertia_is_scikit_learns():
    from sklearn.cluster import KMeans

    x, samples = blobs()
    result = get_registry().create("evaluator", "choose-k", {"k_max": 8}).evaluate(Subject(samples, embeddings=x))
    assert result.values["elbow_k"] == 4 and result.values["silhouette_k"] == 4 and result.values["n_classes"] == 4
    assert sorted(result.groups, key=lambda g: int(g[2:])) == [f"k={k}" for k in range(2, 9)]
    for k in (2, 4, 7):
        expected = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x).inertia_
        assert result.groups[f"k={k}"]["inertia"] == pytest.approx(expected)
    assert result.values["silhouette_best"] == pytest.approx(max(g["silhouette"] for g in result.groups.values()))


def test_tsne_and_kernel_pca_are_scikit_learns_and_keep_the_blobs_apart():
    from sklearn.decomposition import PCA
    from sklearn.kernel_approximation import Nystroem
    from sklearn.manifold import TSNE
    from sklearn.metrics import pairwise_distances

    x, samples = blobs(centres=3)
    expected = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=0).fit_transform(x)
    assert np.allclose(tsne(x, 2, 0, "euclidean"), expected)
    median = np.median(pairwise_distances(x)[np.triu_indices(len(x), 1)])
    features = Nystroem(gamma=1 / (2 * median ** 2), n_components=len(x), random_state=0).fit_transform(x)
    assert np.allclose(kernel_pca(x, 3, 0, "euclidean"), PCA(3, random_state=0).fit_transform(features))
    registry = get_registry()
    for reduce in ("tsne", "kernel-pca"):
        values = registry.create("evaluator", "clustering-kmeans", {"reduce": reduce, "components": 2}).evaluate(
            Subject(samples, embeddings=x)).values
        assert values["ari"] == pytest.approx(1.0), reduce
