"""Clustering of samples (seeds 001 and 002): do the embeddings fall into groups that match the
known classes, without being told them?

Three clusterings share one scoring: k-means, agglomerative (ward / average / complete / single
linkage, euclidean or cosine) and a Gaussian mixture, each optionally after a PCA, UMAP, t-SNE
or kernel-PCA (Nystroem) reduction. k defaults to the number of classes. Scores (scikit-learn): adjusted Rand index,
normalised mutual information, homogeneity / completeness / V-measure (seed 001), silhouette and
Davies-Bouldin of the clusters in the clustered space, and the accuracy after the Hungarian
matching of clusters to classes.
"""

from __future__ import annotations

import numpy as np

from phenorank.core.statistics import contingency, matched_accuracy, unit_rows
from phenorank.registry import Evaluation, Evaluator, PluginError, Subject

from .selection import as_list, class_indices

COMMON = {"label": "condition", "classes": ["all"], "where": [], "k": 0, "metric": "euclidean",
          "reduce": "none", "components": 10, "seed": 0}


def clustering_scores(classes: np.ndarray, clusters: np.ndarray, space: np.ndarray, metric: str) -> dict[str, float]:
    """Every score of one clustering; ``space`` is where the clusters were found."""
    from sklearn import metrics

    n_clusters = len(np.unique(clusters))
    homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(classes, clusters)
    _, class_codes = np.unique(classes, return_inverse=True)
    _, cluster_codes = np.unique(clusters, return_inverse=True)
    table = contingency(class_codes, cluster_codes, class_codes.max() + 1, n_clusters)
    scores = {
        "ari": metrics.adjusted_rand_score(classes, clusters),
        "nmi": metrics.normalized_mutual_info_score(classes, clusters),
        "homogeneity": homogeneity, "completeness": completeness, "v_measure": v_measure,
        "accuracy": matched_accuracy(table) if table.shape[0] == table.shape[1] else np.nan,
        "n_clusters": n_clusters,
    }
    separable = 1 < n_clusters < len(space)
    scores["silhouette"] = metrics.silhouette_score(space, clusters, metric=metric) if separable else np.nan
    scores["davies_bouldin"] = metrics.davies_bouldin_score(space, clusters) if separable else np.nan
    return {k: float(v) for k, v in scores.items()}


def tsne(x: np.ndarray, components: int, seed: int, metric: str) -> np.ndarray:
    """t-SNE (scikit-learn, Barnes-Hut: at most 3 dimensions), perplexity 30 or less on few items."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=min(components, 3), perplexity=min(30.0, (len(x) - 1) / 3), metric=metric,
                init="pca" if metric == "euclidean" else "random", random_state=seed).fit_transform(x)


def kernel_pca(x: np.ndarray, components: int, seed: int, metric: str) -> np.ndarray:
    """Kernel PCA with a Gaussian kernel, approximated by Nystroem features (at most 300 landmark
    items, so it scales linearly) followed by a PCA; the bandwidth is the median distance between
    items (1 / gamma = 2 median^2). Cosine: on unit-length rows."""
    from sklearn.decomposition import PCA
    from sklearn.kernel_approximation import Nystroem
    from sklearn.metrics import pairwise_distances

    points = unit_rows(x) if metric == "cosine" else x
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), 500), replace=False)]
    median = float(np.median(pairwise_distances(sample)[np.triu_indices(len(sample), 1)])) or 1.0
    features = Nystroem(gamma=1.0 / (2 * median ** 2), n_components=min(300, len(points)),
                        random_state=seed).fit_transform(points)
    return PCA(min(components, *features.shape), random_state=seed).fit_transform(features)


REDUCTIONS = {"tsne": tsne, "kernel-pca": kernel_pca}


class ClusteringEvaluator(Evaluator):
    needs = "embeddings"
    defaults = COMMON

    def cluster(self, x: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def space(self, x: np.ndarray) -> np.ndarray:
        """The embeddings as the clustering sees them: reduced, and unit length for cosine."""
        reduce, components, seed = self.params["reduce"], int(self.params["components"]), int(self.params["seed"])
        x = np.asarray(x, dtype=np.float64)
        if reduce == "pca":
            from sklearn.decomposition import PCA

            x = PCA(min(components, *x.shape), random_state=seed).fit_transform(x)
        elif reduce == "umap":
            import umap

            x = umap.UMAP(n_components=min(components, len(x) - 2), n_neighbors=min(15, len(x) - 1),
                          metric=self.params["metric"], random_state=seed).fit_transform(x)
        elif reduce in REDUCTIONS:
            x = REDUCTIONS[reduce](x, components, seed, self.params["metric"])
        elif reduce != "none":
            raise PluginError(f"{self.name}: reduce must be none, pca, umap, {', '.join(REDUCTIONS)}; got {reduce!r}")
        return x

    def selected(self, subject: Subject) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The items of the chosen classes passing ``where``: their indices, class numbers and the
        class names (after checking the metric)."""
        if self.params["metric"] not in ("euclidean", "cosine"):
            raise PluginError(f"{self.name}: metric must be euclidean or cosine, got {self.params['metric']!r}")
        index, codes = class_indices(subject.samples, self.params["label"], as_list(self.params["classes"]),
                                     self.params["where"])
        return index, codes, sorted(set(subject.samples[self.params["label"]].astype(str)[index]))

    def evaluate(self, subject: Subject) -> Evaluation:
        index, codes, names = self.selected(subject)
        k = int(self.params["k"]) or len(names)
        if len(index) <= k:
            raise PluginError(f"{self.name}: {len(index)} items for {k} clusters")
        x = self.space(subject.embeddings[index])
        clusters = self.cluster(x, k)
        values = clustering_scores(codes, clusters, x, self.params["metric"])
        return Evaluation(values=values, details={"classes": names, "k": k, "n": len(index),
                                                  "reduce": self.params["reduce"]})


class KMeansClustering(ClusteringEvaluator):
    """k-means (``restarts`` k-means++ starts, the lowest inertia kept; cosine = spherical)."""

    name = "clustering-kmeans"
    defaults = {**COMMON, "restarts": 10}

    def cluster(self, x: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        from .embeddings import span_coordinates

        # in the span of the items, where every distance is the same: 49 raw-pixel crops cluster
        # in 49-d instead of 27 648-d (robustness re-clusters them for each of 36 corruptions)
        points = span_coordinates(x, "cosine" if self.params["metric"] == "cosine" else "euclidean")
        return KMeans(n_clusters=k, n_init=int(self.params["restarts"]), random_state=int(self.params["seed"])
                      ).fit_predict(points)


class AgglomerativeClustering(ClusteringEvaluator):
    """Agglomerative clustering: ward (euclidean only), average, complete or single linkage."""

    name = "clustering-agglomerative"
    defaults = {**COMMON, "linkage": "ward"}

    def cluster(self, x: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering as Agglomerative

        linkage, metric = self.params["linkage"], self.params["metric"]
        if linkage not in ("ward", "average", "complete", "single"):
            raise PluginError(f"{self.name}: linkage must be ward, average, complete or single, got {linkage!r}")
        if linkage == "ward" and metric != "euclidean":
            raise PluginError(f"{self.name}: ward linkage needs the euclidean metric (use linkage=average with cosine)")
        return Agglomerative(n_clusters=k, linkage=linkage, metric=metric).fit_predict(x)


class GaussianMixtureClustering(ClusteringEvaluator):
    """Gaussian mixture (seed 002: UMAP then GMM); by default after a PCA to 10 dimensions, as a
    full covariance in hundreds of dimensions cannot be estimated from a few hundred items."""

    name = "clustering-gmm"
    defaults = {**COMMON, "reduce": "pca", "covariance": "full", "restarts": 5}

    def cluster(self, x: np.ndarray, k: int) -> np.ndarray:
        from sklearn.mixture import GaussianMixture

        points = unit_rows(x) if self.params["metric"] == "cosine" else x
        return GaussianMixture(k, covariance_type=self.params["covariance"], n_init=int(self.params["restarts"]),
                               reg_covar=1e-4, random_state=int(self.params["seed"])).fit_predict(points)
