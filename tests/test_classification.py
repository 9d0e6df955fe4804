"""Seed 001's grouped SVM probe and seed 004's classification report: the same out-of-fold
predictions as scikit-learn's cross_val_predict, folds that never split a group, and what a
split that ignored the groups would have claimed."""

import numpy as np
import pytest

from phenorank.plugins.evaluators.classification import out_of_fold
from phenorank.registry import Samples, Subject, get_registry


def grouped_items(n_groups=24, per_group=6, signal=0.0, seed=0):
    """Each group (a sample) has its own offset and one class; the class shifts feature 0 by
    ``signal``. With no signal, only memorising the groups predicts the class."""
    rng = np.random.default_rng(seed)
    classes = np.array(["a", "b", "c"] * (n_groups // 3))
    offsets = rng.normal(0, 3, (n_groups, 8))
    x, labels, samples = [], [], []
    for g in range(n_groups):
        shift = np.zeros(8)
        shift[0] = signal * "abc".index(classes[g])
        x.append(offsets[g] + shift + rng.normal(0, 0.2, (per_group, 8)))
        labels += [classes[g]] * per_group
        samples += [f"S{g:02d}"] * per_group
    x = np.concatenate(x)
    ids = np.arange(len(x)).astype(str)
    return x, Samples(ids, {"condition": np.array(labels, object), "sample": np.array(samples, object)})


def test_folds_never_put_one_group_on_both_sides():
    x, samples = grouped_items()
    groups = samples["sample"].astype(str)
    seen = []

    class Spy:
        def __init__(self):
            from sklearn.linear_model import LogisticRegression
            self.inner = LogisticRegression(max_iter=500)

        def fit(self, x_train, y):
            seen.append(set(x_train[:, -1].astype(int)))
            self.inner.fit(x_train[:, :-1], y)
            self.classes_ = self.inner.classes_
            return self

        def predict(self, x_test):
            return self.inner.predict(x_test[:, :-1])

        def predict_proba(self, x_test):
            return self.inner.predict_proba(x_test[:, :-1])

    with_row = np.column_stack([x, np.arange(len(x))])
    codes = np.unique(samples["condition"].astype(str), return_inverse=True)[1]
    out_of_fold(Spy, with_row, codes, groups, 5, 0, standardize=False)
    assert len(seen) == 5
    for train_rows in seen:
        train_groups = set(groups[sorted(train_rows)])
        test_groups = set(groups) - train_groups
        assert test_groups and not train_groups & {groups[i] for i in range(len(x)) if i not in train_rows}


def test_svm_and_report_equal_scikit_learns_cross_validation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, samples = grouped_items(signal=10.0)
    y = np.unique(samples["condition"].astype(str), return_inverse=True)[1]
    groups = samples["sample"].astype(str)
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    registry = get_registry()
    for name, model in (("svm", SVC(random_state=0)),
                        ("classification", LogisticRegression(class_weight="balanced", max_iter=2000))):
        expected = cross_val_predict(make_pipeline(StandardScaler(), model), x, y, groups=groups, cv=splitter)
        result = registry.create("evaluator", name, {"bootstrap": 50}).evaluate(Subject(samples, embeddings=x))
        assert result.values["accuracy"] == pytest.approx(np.mean(expected == y)), name
        assert result.values["f1"] == pytest.approx(f1_score(y, expected, average="macro")), name
        assert result.values["n_groups"] == 24 and set(result.groups) == {"a", "b", "c"}
        assert np.trace(np.array(result.details["confusion"])) == np.sum(expected == y)
        assert result.intervals["accuracy"][0] <= result.values["accuracy"] <= result.intervals["accuracy"][1]
    probabilities = cross_val_predict(make_pipeline(StandardScaler(), model), x, y, groups=groups, cv=splitter,
                                      method="predict_proba")
    assert result.values["auc"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr"))


def test_grouped_folds_do_not_reward_memorising_the_samples():
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.svm import SVC

    x, samples = grouped_items(signal=0.0)
    y = np.unique(samples["condition"].astype(str), return_inverse=True)[1]
    leaky = cross_val_predict(SVC(), x, y, cv=KFold(5, shuffle=True, random_state=0))
    assert np.mean(leaky == y) > 0.9  # items of a sample on both sides: the sample, not the class, is learned
    grouped = get_registry().create("evaluator", "svm", {"bootstrap": 0}).evaluate(Subject(samples, embeddings=x))
    assert grouped.values["accuracy"] < 0.6  # chance is 1/3


def test_multi_view_simclr_keeps_other_items_of_the_sample_out_of_the_negatives():
    import torch
    from lightly.loss import NTXentLoss

    from phenorank.plugins.encoders.training import group_nt_xent

    torch.manual_seed(0)
    z0, z1 = torch.randn(6, 5), torch.randn(6, 5)
    # every item its own sample: exactly lightly's NT-Xent
    assert float(group_nt_xent(z0, z1, torch.arange(6), 0.5)) == pytest.approx(float(NTXentLoss(0.5)(z0, z1)), rel=1e-6)
    # items 0 and 1 of one sample: for view 0 the candidates are its partner (6) and the views of
    # items 2..5 in both sets, never item 1's views
    groups = torch.tensor([0, 0, 1, 2, 3, 4])
    z = torch.nn.functional.normalize(torch.cat([z0, z1]), dim=1)
    similarity = (z @ z.T / 0.5).numpy()
    losses = []
    for i in range(12):
        partner = (i + 6) % 12
        same = {j for j in range(12) if groups[j % 6] == groups[i % 6]} - {partner}
        candidates = [j for j in range(12) if j not in same]
        losses.append(-similarity[i, partner] + np.log(np.sum(np.exp(similarity[i, candidates]))))
    assert float(group_nt_xent(z0, z1, groups, 0.5)) == pytest.approx(np.mean(losses), rel=1e-5)
