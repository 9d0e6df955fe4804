"""Metrics, rankers and evaluators of issue 5 against values worked out by hand on tiny inputs."""

import numpy as np
import pytest

from phenorank.core.kmeans import kmeans
from phenorank.core.statistics import GroupResampler, bootstrap_interval, contingency, matched_accuracy
from phenorank.plugins.evaluators.selection import balanced, where_mask
from phenorank.plugins.rankers.predictor import layer_widths
from phenorank.registry import PluginError, Samples, Subject, get_registry


def make(family, name, **params):
    return get_registry().create(family, name, params)


def samples(conditions, **columns):
    conditions = np.array(conditions, dtype=object)
    n = len(conditions)
    base = {"condition": conditions, "plate": np.array(["p"] * n, dtype=object),
            "well": np.array([f"W{i:02d}" for i in range(n)], dtype=object)}
    return Samples(np.array([f"id{i}" for i in range(n)], dtype=object),
                   {**base, **{k: np.asarray(v, dtype=object if isinstance(v[0], str) else None)
                               for k, v in columns.items()}})


# -- metrics ----------------------------------------------------------------------------------
A = np.array([[1.0, 0.0], [3.0, 4.0]])
B = np.array([[0.0, 2.0]])


@pytest.mark.parametrize("name, expected", [
    ("mse", [5 / 2, 13 / 2]),           # squared euclidean / D
    ("l1", [3.0, 5.0]),                 # |1-0| + |0-2|, |3-0| + |4-2|
    ("pearson", [1.0, -1.0]),           # r = -1 and +1 for two-component vectors, negated
    ("dot", [0.0, -8.0]),               # a.b negated
])
def test_metric_hand_values(name, expected):
    assert make("metric", name).distance(A, B)[:, 0] == pytest.approx(expected)


def test_jaccard_and_hamming_binarize_at_each_vectors_mean():
    x = np.array([[5.0, 0.0, 4.0, 1.0]])  # mean 2.5 -> 1 0 1 0
    y = np.array([[9.0, 8.0, 0.0, 1.0]])  # mean 4.5 -> 1 1 0 0
    assert make("metric", "jaccard").pairwise(x, y)[0, 0] == pytest.approx(1 / 3)  # 1 shared of 3 set
    assert make("metric", "jaccard").distance(x, y)[0, 0] == pytest.approx(-1 / 3)
    assert make("metric", "hamming").distance(x, y)[0, 0] == pytest.approx(2 / 4)
    # A fixed threshold instead: at 0.5 both codes are 1 0 1 1 / 1 1 0 1.
    assert make("metric", "hamming", threshold="0.5").distance(x, y)[0, 0] == pytest.approx(2 / 4)
    assert make("metric", "jaccard", threshold="0.5").pairwise(x, y)[0, 0] == pytest.approx(2 / 4)
    with pytest.raises(PluginError, match="threshold"):
        make("metric", "hamming", threshold="median").distance(x, y)


@pytest.mark.parametrize("name", ["cosine", "euclidean", "mse", "l1", "pearson", "dot", "jaccard", "hamming"])
def test_every_metric_is_chunked_symmetric_and_closest_to_itself(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    metric = make("metric", name)
    whole = metric.distance(x, x)
    metric.block_elements = 13  # two rows per block: the same numbers, block by block
    assert np.allclose(metric.distance(x, x), whole, atol=1e-6)  # sklearn zeroes an exact diagonal
    assert np.allclose(whole, whole.T)
    assert metric.paired_distance(x, x[::-1]) == pytest.approx(np.diagonal(whole[:, ::-1]))
    if name != "dot":  # a long vector is "closer" to others than to itself by dot product
        assert np.all(np.diagonal(whole) <= whole.min(axis=1) + 1e-9)


# -- k-means and matching ---------------------------------------------------------------------
def test_hungarian_matching_accuracy_by_hand():
    table = np.array([[3, 0, 0], [0, 2, 1], [0, 0, 3]])
    assert matched_accuracy(table) == pytest.approx(8 / 9)
    assert matched_accuracy(table[:, [2, 0, 1]]) == pytest.approx(8 / 9)  # cluster numbers do not matter
    classes, clusters = np.array([0, 0, 1, 1]), np.array([1, 1, 0, 1])
    assert contingency(classes, clusters, 2, 2).tolist() == [[0, 2], [1, 1]]
    assert contingency(classes, clusters, 2, 2, np.array([2, 0, 1, 1.0])).tolist() == [[0, 2], [1, 1]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_kmeans_starts_are_scikit_learns_kmeans_start_by_start(dtype):
    from sklearn.cluster import KMeans

    from phenorank.core.kmeans import kmeans_starts

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 1.5, (150, 20)) for c in (0, 1, 2, 3)]).astype(dtype)
    x[:, :5] *= 4  # clusters that take several iterations, some starts ending elsewhere
    seeds = list(range(12))
    labels, centres = kmeans_starts(x, 4, seeds, "euclidean", block_entries=600 * 4 * 5)  # blocks of 5 starts
    agree = []
    for seed, got, got_centres in zip(seeds, labels, centres):
        model = KMeans(4, n_init=1, random_state=seed).fit(x)
        agree.append(np.mean(got == model.labels_))
        if dtype == np.float64:
            assert got.tolist() == model.labels_.tolist()
            assert got_centres == pytest.approx(model.cluster_centers_, abs=1e-9)
    assert min(agree) > 0.99  # float32: a tie may fall otherwise
    assert len({tuple(row) for row in labels}) > 1  # the starts differ


def spherical_kmeans_one_start(x, k, seed):
    """The textbook loop, one start: unit points join the most similar unit centre until no label
    changes or the centres move less than scikit-learn's tolerance; then the final centres' labels."""
    from sklearn.cluster import kmeans_plusplus

    points = x / np.linalg.norm(x, axis=1, keepdims=True)
    centres, _ = kmeans_plusplus(points, k, random_state=seed)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    tolerance = 1e-4 * np.var(points, axis=0).mean()
    labels = np.full(len(points), -1)
    while True:
        new = (points @ centres.T).argmax(axis=1)
        moved = np.stack([points[new == c].sum(axis=0) for c in range(k)])
        moved /= np.linalg.norm(moved, axis=1, keepdims=True)
        shift, centres = ((moved - centres) ** 2).sum(), moved
        if np.array_equal(new, labels) or shift <= tolerance:
            return (points @ centres.T).argmax(axis=1)
        labels = new


def test_spherical_kmeans_starts_equal_the_textbook_loop_start_by_start():
    from phenorank.core.kmeans import kmeans_starts

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (80, 6)) + 3 * np.eye(6)[c] for c in range(3)])
    together, _ = kmeans_starts(x, 3, range(8), "cosine", block_entries=240 * 3 * 3)
    alone = np.stack([spherical_kmeans_one_start(x, 3, seed) for seed in range(8)])
    assert together.tolist() == alone.tolist()
    assert kmeans(x, 3, "cosine", 5)[0].tolist() == alone[5].tolist()


def test_spherical_kmeans_groups_by_direction_not_length():
    x = np.array([[1, 0.05], [20, 0.5], [3, 0.0], [0.05, 1], [0.5, 20], [0, 3.0]])
    labels, centres = kmeans(x, 2, "cosine", seed=0)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    assert np.linalg.norm(centres, axis=1) == pytest.approx([1, 1])
    euclidean, _ = kmeans(x, 2, "euclidean", seed=0)
    assert not (len(set(euclidean[:3])) == 1 and len(set(euclidean[3:])) == 1)  # length wins there


def blobs(per_class=(6, 3, 3), spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    names = ["control", "single_dose", "exploded"]
    x = np.concatenate([c + rng.normal(0, spread, (n, 3)) for c, n in zip(centres, per_class)])
    labels = sum(([name] * n for name, n in zip(names, per_class)), [])
    return x, labels


def test_kmeans_accuracy_separated_blobs_and_one_misplaced_point():
    x, labels = blobs()
    evaluator = make("evaluator", "kmeans-accuracy", restarts=20, bootstrap=20)
    result = evaluator.evaluate(Subject(samples(labels), embeddings=x))
    for geometry in ("euclidean", "cosine"):
        assert result.values[f"{geometry}_mean"] == pytest.approx(1.0)
        assert result.values[f"{geometry}_std"] == pytest.approx(0.0)
        assert result.intervals[f"{geometry}_mean"] == pytest.approx((1.0, 1.0))
    labels[0] = "exploded"  # one control now sits in the exploded class: 11 of 12 can match
    wrong = evaluator.evaluate(Subject(samples(labels), embeddings=x))
    assert wrong.values["euclidean_mean"] == pytest.approx(11 / 12)


def test_kmeans_accuracy_balanced_subset_and_filters():
    x, labels = blobs(per_class=(6, 3, 3))
    debris = ["true", "true", "false", "false", "false", "false"] + ["false"] * 6
    s = samples(labels, debris=debris)
    assert where_mask(s, "debris!=true").sum() == 10
    assert where_mask(s, ["condition=control", "debris=false"]).sum() == 4
    keep = balanced(np.array([0] * 6 + [1] * 3 + [2] * 3), "min", np.random.default_rng(0))
    assert np.bincount(np.array([0] * 6 + [1] * 3 + [2] * 3)[keep]).tolist() == [3, 3, 3]
    result = make("evaluator", "kmeans-accuracy", restarts=5, bootstrap=0, balance="min",
                  where="debris!=true").evaluate(Subject(s, embeddings=x))
    assert result.details["n"] == 10 and result.values["cosine_mean"] == pytest.approx(1.0)
    with pytest.raises(PluginError, match="no images of class"):
        make("evaluator", "kmeans-accuracy", where="condition=control").evaluate(Subject(s, embeddings=x))


def test_matched_accuracies_equal_the_hungarian_matching_table_by_table():
    from phenorank.core.statistics import matched_accuracies, matched_accuracy

    rng = np.random.default_rng(0)
    for k in (2, 3, 5, 8):  # 8: past the permutations, one Hungarian matching per table
        tables = rng.integers(0, 20, size=(30, k, k)).astype(float)
        expected = [matched_accuracy(t) for t in tables]
        assert matched_accuracies(tables) == pytest.approx(expected)
    assert np.isnan(matched_accuracies(np.zeros((1, 3, 3)))[0])


def test_the_vectorized_kmeans_bootstrap_is_the_loop_over_the_same_draws():
    from phenorank.core.statistics import contingency, matched_accuracy

    rng = np.random.default_rng(3)
    codes = np.repeat([0, 1, 2], 40)
    wells = np.repeat(np.arange(60), 2)  # two images per well
    runs = [(np.arange(120), rng.integers(0, 3, 120)), (np.sort(rng.choice(120, 90, replace=False)),
                                                        rng.integers(0, 3, 90))]
    cells = np.full((2, 120), -1)  # the evaluator's form: each restart's (class, cluster) cell, -1 left out
    for row, (keep, labels) in zip(cells, runs):
        row[keep] = codes[keep] * 3 + labels
    evaluator = make("evaluator", "kmeans-accuracy", bootstrap=50)
    low, high = evaluator._bootstrap(cells, codes, wells, 3, seed=4, block_entries=500)  # blocks of restarts and draws
    draws = GroupResampler(wells, strata=codes).draws(np.random.default_rng(5), 50)
    means = []
    for draw in draws:
        weight = np.bincount(draw, minlength=120).astype(float)
        means.append(np.mean([matched_accuracy(contingency(codes[keep], labels, 3, 3, weight[keep]))
                              for keep, labels in runs]))
    assert (low, high) == pytest.approx(tuple(np.nanpercentile(means, [2.5, 97.5])))


# -- bootstrap --------------------------------------------------------------------------------
def test_bootstrap_draws_whole_wells_within_strata():
    wells = np.array(["a", "a", "b", "b", "c", "d"])
    strata = np.array([0, 0, 0, 0, 1, 1])
    draw = GroupResampler(wells, strata).draw(np.random.default_rng(1))
    assert len(draw) in (4, 6, 8) and sorted(set(draw) & {0, 1}) in ([], [0, 1])  # both images of a, or none
    assert np.isin(draw, [4, 5]).sum() == 2  # the second stratum keeps its two wells
    values = np.array([1.0, 1.0, 3.0, 3.0, 10.0, 10.0])
    low, high = bootstrap_interval(lambda ix: values[ix].mean(), wells, 500, seed=0)
    assert 1.0 <= low < values.mean() < high <= 10.0


# -- rankers ----------------------------------------------------------------------------------
def test_centroid_kmeans_centres():
    x = np.array([[0.0, 0], [0, 1], [10, 0], [10, 1], [5, 20]])
    s = samples(["control"] * 4 + ["screen"])
    two = make("ranker", "centroid", centre="kmeans", k=2).fit(x, s, make("metric", "euclidean"), "control")
    assert two.score(x)[:4] == pytest.approx([0.5] * 4)  # each point is 0.5 from its blob's centre
    one = make("ranker", "centroid", centre="kmeans", kmeans_geometry="cosine")
    one.fit(np.array([[1.0, 0], [0, 1]]), samples(["control"] * 2), make("metric", "cosine"), "control")
    assert one.centres[0] == pytest.approx([2 ** -0.5, 2 ** -0.5])
    assert one.score(np.array([[3.0, 3.0]]))[0] == pytest.approx(0.0, abs=1e-12)


def test_softmax_puts_the_unseen_class_between_its_anchors():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.3, (10, 2)), rng.normal(2, 0.3, (4, 2)), rng.normal(0, 0.3, (4, 2))])
    s = samples(["control"] * 10 + ["single_dose"] * 4 + ["exploded"] * 4)
    ranker = make("ranker", "softmax", epochs=200)
    assert ranker.metrics == () and ranker.towards("control") == "single_dose" and ranker.towards("exploded") == "control"
    scores = ranker.fit(x, s, None, "control").score(x)
    assert scores[:10].max() < 0.5 < scores[10:14].min()
    assert scores[:10].max() < scores[14:].min() and scores[14:].max() < scores[10:14].min()


def test_predictor_widths_follow_the_seed():
    assert layer_widths(512, 12, 8, 512) == [512, 256, 128, 64, 32, 16, 8, 16, 32, 64, 128, 256, 512]
    assert layer_widths(20, 6, 4, 512) == [20, 12, 7, 4, 7, 12, 20]
    assert layer_widths(27648, 12, 8, 512)[:3] == [27648, 512, 512]


def test_predictor_epochs_are_capped_in_batches_for_large_reference_classes():
    rng = np.random.default_rng(1)
    early = rng.normal(0, 1, (700, 8))
    s = samples(["control"] * 700)
    s.paired = early.astype(np.float32)
    ranker = make("ranker", "predictor", max_steps=100, patience=100000)  # never stops early: runs to the cap
    ranker.fit(early + 1, s, make("metric", "euclidean"), "control")
    assert len(ranker.history[0]) == 6  # 560 training pairs = 18 batches an epoch; 100 batches = 6 epochs
    small = make("ranker", "predictor", epochs=40, max_steps=100, patience=100000)
    few = samples(["control"] * 40)
    few.paired = s.paired[:40]
    small.fit(early[:40] + 1, few, make("metric", "euclidean"), "control")
    assert len(small.history[0]) == 40  # 32 pairs, 1 batch an epoch: 40 epochs are 40 batches, under the cap


def test_predictor_scores_wells_that_change_unlike_the_reference_class():
    rng = np.random.default_rng(0)
    early = rng.normal(0, 1, (30, 8))
    shift = np.linspace(-1, 1, 8)
    late = early + shift  # controls: a fixed change from day 7 to day 10
    late[20:] = early[20:] - 2 * shift  # treated wells change the other way
    s = samples(["control"] * 20 + ["single_dose"] * 10)
    s.paired = early.astype(np.float32)
    s.paired[-1] = np.nan  # a well without its day-7 image
    ranker = make("ranker", "predictor", epochs=300, patience=50, lr=3e-3)
    scores = ranker.fit(late, s, make("metric", "euclidean"), "control").score(late, s)
    assert np.isnan(scores[-1]) and np.isfinite(scores[:-1]).all()
    assert np.median(scores[20:29]) > 2 * np.median(scores[:20])
    again = ranker.fit(late, s, make("metric", "cosine"), "control")  # no second training for a new metric
    assert again.models is ranker.models
    # seed 000's 3-fold cross-validation: each control is scored by the network that did not see it
    folded = make("ranker", "predictor", epochs=300, patience=50, lr=3e-3, folds=3)
    scores3 = folded.fit(late, s, make("metric", "euclidean"), "control").score(late, s)
    assert len(folded.models) == 3 and sorted(folded.fold_of.values()) == sorted([0] * 7 + [1] * 7 + [2] * 6)
    assert np.median(scores3[20:29]) > 2 * np.median(scores3[:20])
    # a control fits a network that trained on it better: out-of-fold scores are the honest, higher ones
    import torch

    def distance_by(network: int, i: int) -> float:
        with torch.no_grad():
            predicted = folded.models[network](torch.as_tensor(folded.scaled(early[[i]]), dtype=torch.float32))
        return float(folded.metric.paired_distance(predicted.numpy().astype(float), folded.scaled(late[[i]]))[0])

    held = {int(k.removeprefix("id")): f for k, f in folded.fold_of.items()}
    assert [scores3[i] for i in sorted(held)] == pytest.approx([distance_by(held[i], i) for i in sorted(held)])
    seen = np.mean([distance_by((held[i] + 1) % 3, i) for i in held])
    assert np.mean([scores3[i] for i in held]) > seen


def test_pca_ranker_is_the_centred_coordinate_with_the_reference_low():
    t = np.array([3.0, 2.0, -1.0, -2.0])
    x = np.outer(t, [1.0, 0.0]) + np.outer([0.0, 0.01, 0.0, -0.01], [0.0, 1.0])
    s = samples(["control", "control", "screen", "screen"])
    scores = make("ranker", "pca").fit(x, s, make("metric", "euclidean"), "control").score(x)
    assert scores == pytest.approx(-(t - t.mean()), abs=1e-3)


def test_umap_ranker_is_oriented_and_keeps_fitted_coordinates():
    t = np.linspace(0, 6, 36)  # the classes lie one after another along a bent line
    x = np.stack([t, np.sin(t), 0.1 * t ** 2], axis=1)
    s = samples(["control"] * 12 + ["single_dose"] * 12 + ["exploded"] * 12)
    ranker = make("ranker", "umap", n_neighbors=10)
    scores = ranker.fit(x, s, make("metric", "euclidean"), "control").score(x, s)
    # A 1-D UMAP keeps neighbourhoods, not the global order (seed 000 saw the same): what the
    # ranker guarantees is the orientation and that fitted images keep their fitted coordinate.
    assert scores[:12].mean() < min(scores[12:24].mean(), scores[24:].mean())
    assert np.abs(scores) == pytest.approx(np.abs(ranker.umap.embedding_[:, 0]))
    moved = ranker.score(x[:3] + 0.01, samples(["screen"] * 3))  # unseen images go through transform
    assert np.abs(moved - scores[:3]).max() < np.ptp(scores) / 4


# -- evaluators -------------------------------------------------------------------------------
def test_ranking_accuracy_interval_of_a_clean_separation():
    s = samples(["control"] * 4 + ["single_dose"] * 4 + ["exploded"] * 4)
    scores = np.array([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23.0])
    result = make("evaluator", "ranking-accuracy").evaluate(Subject(s, scores=scores))
    assert result.values["accuracy"] == 1.0 and result.intervals["accuracy"] == (1.0, 1.0)


def test_holdout_range_counts_hold_out_images_outside_the_class_range():
    s = samples(["single_dose"] * 3 + ["screen"] * 3 + ["control"],
                holdout=["false", "false", "false", "true", "true", "true", "false"])
    scores = np.array([1.0, 2.0, 3.0, 0.5, 2.5, 4.0, 0.0])
    result = make("evaluator", "holdout-range").evaluate(Subject(s, scores=scores))
    assert result.values == {"outside": 2, "fraction_outside": pytest.approx(2 / 3), "n_holdout": 3}
    assert result.details["below"] == 1 and result.details["above"] == 1 and result.details["range"] == [1.0, 3.0]


def test_linear_probe_on_separable_classes():
    x, labels = blobs(per_class=(10, 10, 10))
    result = make("evaluator", "linear-probe").evaluate(Subject(samples(labels), embeddings=x))
    assert result.values["test_accuracy"] == 1.0 and result.values["train_accuracy"] == 1.0
    assert result.details["n_test"] == 6 and "best_test_epoch" not in result.values  # lbfgs: no epochs
    seed_loop = make("evaluator", "linear-probe", solver="adam", epochs=60).evaluate(Subject(samples(labels), embeddings=x))
    assert seed_loop.values["test_accuracy"] == 1.0 and seed_loop.values["best_test_accuracy"] == 1.0
    assert seed_loop.details["test_wells"] == result.details["test_wells"]  # the same split either way


def test_the_fast_classifier_is_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from phenorank.plugins.classifier import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    for classes in (2, 3):
        y = rng.integers(0, classes, 60)
        ours = fit_logistic(x, y, classes, seed=0).probabilities(x)
        reference = LogisticRegression(max_iter=2000).fit(x, y).predict_proba(x)
        assert ours == pytest.approx(reference, abs=1e-9)


def test_map_by_copairs_on_a_case_with_a_known_answer():
    def at(degrees):
        return [np.cos(np.radians(degrees)), np.sin(np.radians(degrees))]

    # Treatment A's replicates (0 and 30 degrees) have two controls between them: for each, the
    # replicate ranks third among 1 positive + 4 controls, AP = 1/3. B's (90, 95) rank first: AP = 1.
    x = np.array([at(0), at(30), at(90), at(95), at(10), at(20), at(180), at(200)])
    s = samples(["screen"] * 4 + ["control"] * 4, treatment=["A", "A", "B", "B", "", "", "", ""],
                concentration=[1.0] * 8)
    result = make("evaluator", "map", null_size=2000).evaluate(Subject(s, embeddings=x))
    assert result.values["n_groups"] == 2
    assert result.groups["A|1.0"]["map"] == pytest.approx(1 / 3)
    assert result.groups["B|1.0"]["map"] == pytest.approx(1.0)
    assert result.values["mean_map"] == pytest.approx(2 / 3)
    assert result.groups["B|1.0"]["p_value"] < result.groups["A|1.0"]["p_value"]


def test_kmeans_runs_in_the_points_span_without_changing_a_distance():
    from scipy.spatial.distance import pdist

    from phenorank.plugins.evaluators.embeddings import span_coordinates

    x = np.random.default_rng(0).normal(size=(12, 300))
    assert pdist(span_coordinates(x, "euclidean")) == pytest.approx(pdist(x))
    assert pdist(span_coordinates(x, "cosine"), "cosine") == pytest.approx(pdist(x, "cosine"))
    assert span_coordinates(x, "euclidean").shape == (12, 12)


def test_batched_bootstrap_intervals_equal_the_resample_by_resample_ones():
    from phenorank.core.statistics import bootstrap_interval, well_keys
    from phenorank.plugins.evaluators.scores import ranking_accuracy

    rng = np.random.default_rng(5)
    labels = np.array(["control"] * 12 + ["single_dose"] * 6 + ["exploded"] * 6)
    scores = np.round(rng.normal(0, 1, 24) + (labels == "exploded") * 1.5 + (labels == "single_dose") * 0.7, 1)
    effect = np.round(rng.random(24), 1)  # ties on both sides
    s = samples(labels.tolist(), effect=effect)
    for name in ("ranking-accuracy", "rank-correlation"):
        evaluator = make("evaluator", name, bootstrap=300)
        batched = evaluator.evaluate(Subject(s, scores=scores))
        key = "accuracy" if name == "ranking-accuracy" else "spearman"
        classes = ["control", "single_dose", "exploded"]
        if name == "ranking-accuracy":
            loop = bootstrap_interval(lambda ix: ranking_accuracy(scores[ix], labels[ix], classes).values["accuracy"],
                                      well_keys(s), 300, 0, strata=labels)
        else:
            from scipy.stats import spearmanr

            loop = bootstrap_interval(lambda ix: spearmanr(scores[ix], effect[ix]).statistic,
                                      well_keys(s), 300, 0)
        assert batched.intervals[key] == pytest.approx(loop, abs=1e-12), name


def test_a_bootstrap_drawn_in_small_blocks_gives_the_interval_of_one_block():
    from phenorank.core.statistics import bootstrap_interval

    rng = np.random.default_rng(2)
    values, wells = rng.normal(size=300), np.arange(300).astype(str)
    whole = bootstrap_interval(lambda ix: values[ix].mean(), wells, 200, seed=3, batch=lambda m: values[m].mean(axis=1))
    blocks = bootstrap_interval(lambda ix: values[ix].mean(), wells, 200, seed=3, batch=lambda m: values[m].mean(axis=1),
                                block_items=7 * 300)  # 7 resamples at a time
    assert blocks == pytest.approx(whole, abs=1e-15)
    grouped = np.repeat(np.arange(100), 3).astype(str)  # whole wells, resample by resample, in blocks too
    assert bootstrap_interval(lambda ix: values[ix].mean(), grouped, 100, seed=3, block_items=900) == pytest.approx(
        bootstrap_interval(lambda ix: values[ix].mean(), grouped, 100, seed=3))


def test_many_draws_at_once_are_the_same_draws_as_one_by_one():
    from phenorank.core.statistics import GroupResampler

    for groups, strata in ((np.arange(31).astype(str), None), (np.repeat(np.arange(10), 3).astype(str), None)):
        resampler = GroupResampler(groups, strata)
        one_by_one = [resampler.draw(np.random.default_rng(7)) for _ in range(1)]
        rng = np.random.default_rng(7)
        loop = [resampler.draw(rng) for _ in range(40)]
        at_once = resampler.draws(np.random.default_rng(7), 40)
        assert all((a == b).all() for a, b in zip(loop, at_once)) and (loop[0] == one_by_one[0]).all()


def test_stratified_draws_at_once_keep_each_stratum_and_resample_it_uniformly():
    from phenorank.core.statistics import GroupResampler

    strata = np.repeat([0, 1, 2], [10, 5, 15])
    resampler = GroupResampler(np.arange(30).astype(str), strata)
    draws = np.stack(resampler.draws(np.random.default_rng(7), 4000))
    assert draws.shape == (4000, 30)
    assert (strata[draws] == strata).all()  # every class keeps its number of items, in place
    counts = np.bincount(draws.ravel(), minlength=30) / 4000  # each item drawn once per resample on average
    assert counts == pytest.approx(np.ones(30), abs=0.05)
    again = np.stack(resampler.draws(np.random.default_rng(7), 4000))
    assert (again == draws).all()


@pytest.mark.parametrize("name", ["pca", "umap"])
def test_a_projection_is_fitted_once_per_embedding_set_and_metric_not_per_reference(name):
    from phenorank.registry import Samples, get_registry

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (15, 5)), rng.normal(4, 1, (15, 5))])
    samples = Samples(np.arange(30).astype(str), {"condition": np.repeat(["control", "exploded"], 15).astype(object)})
    registry = get_registry()
    ranker, metric = registry.create("ranker", name), registry.create("metric", "euclidean")
    fits = []
    original = type(ranker).project_fit
    ranker.project_fit = lambda data: fits.append(1) or original(ranker, data)
    low = ranker.fit(x, samples, metric, "control").score(x, samples)
    high = ranker.fit(x, samples, metric, "exploded").score(x, samples)
    assert len(fits) == 1
    assert np.allclose(low, -high)  # one projection, oriented the other way
    assert low[15:].mean() > low[:15].mean()
    ranker.fit(x[:20], samples.subset(np.arange(20)), metric, "control")
    assert len(fits) == 2  # other items: fitted anew


@pytest.mark.parametrize("similarity", ["cosine", "correlation", "abs_cosine", "euclidean"])
def test_blocked_activity_average_precision_is_copairs_own(similarity):
    import logging

    import pandas as pd
    from copairs.map import average_precision

    from phenorank.plugins.evaluators.average_precision import activity_average_precision

    logging.getLogger("copairs").setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=(n, 16))
    control = np.arange(n) < 50
    groups = np.array([f"g{i // 4}" for i in range(n)], dtype=object)
    groups[60:63], groups[199] = "three", "alone"  # a group of 3 and a well without replicates
    groups[100:130] = "big"  # and 30 replicates: ranked by one sort per query instead of counts
    x[~control, :2] += (np.arange((~control).sum()) // 4 % 3)[:, None]
    meta = pd.DataFrame({"group": np.where(control, "<control>", groups),
                         "reference": np.where(control, np.arange(n), -1)})
    reference = average_precision(meta, x, pos_sameby=["group", "reference"], pos_diffby=[], neg_sameby=[],
                                  neg_diffby=["group", "reference"], distance=similarity, progress_bar=False)
    for block in (500, 1 << 23):  # a few queries per block, and all at once
        mine = activity_average_precision(x, groups, control, similarity, block_elements=block)
        for column in ("average_precision", "n_pos_pairs", "n_total_pairs", "normalized_average_precision"):
            expected, found = reference[column].to_numpy()[~control], mine[column].to_numpy()[~control]
            assert np.allclose(found.astype(float), expected.astype(float), atol=1e-12, equal_nan=True), column


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_blocked_consistency_average_precision_is_copairs_own(similarity):
    import logging

    import pandas as pd
    from copairs.map import average_precision

    from phenorank.plugins.evaluators.average_precision import consistency_average_precision

    logging.getLogger("copairs").setLevel(logging.WARNING)
    rng = np.random.default_rng(1)
    moa = np.array([f"m{i % 7}" for i in range(90)] + ["alone"] + ["big"] * 25, dtype=object)
    x = rng.normal(size=(len(moa), 12))
    x[:, :3] += np.unique(moa, return_inverse=True)[1][:, None] % 4  # mechanisms that partly cluster
    reference = average_precision(pd.DataFrame({"group": moa}), x, pos_sameby=["group"], pos_diffby=[],
                                  neg_sameby=[], neg_diffby=["group"], distance=similarity, progress_bar=False)
    for block in (300, 1 << 23):  # a few queries per block (the big mechanism in pieces), and all at once
        mine = consistency_average_precision(x, moa, similarity, block_elements=block)
        for column in ("average_precision", "n_pos_pairs", "n_total_pairs", "normalized_average_precision"):
            assert np.allclose(mine[column].to_numpy(float), reference[column].to_numpy(float), atol=1e-12,
                               equal_nan=True), column
    assert np.isnan(mine["average_precision"].to_numpy()[90]) and mine["n_pos_pairs"][90] == 0


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "pearson"])
def test_projection_geometry_by_blocks_equals_the_whole_array_in_float64(metric):
    from phenorank.core.statistics import unit_rows
    from phenorank.plugins.rankers.projection import geometry

    x = np.random.default_rng(4).normal(size=(9000, 6)).astype(np.float32)  # two blocks of rows
    whole = x.astype(np.float64)
    whole = {"euclidean": whole, "cosine": unit_rows(whole),
             "pearson": unit_rows(whole - whole.mean(axis=1, keepdims=True))}[metric]
    assert np.array_equal(geometry(x, metric), whole)
    # what UMAP is given: the float64 rows rounded once, as umap-learn's own conversion rounds them
    assert np.array_equal(geometry(x, metric, np.float32), whole.astype(np.float32))
