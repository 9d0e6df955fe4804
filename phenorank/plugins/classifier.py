"""The one-linear-layer classifier shared by the softmax ranker and the linear-probe evaluator.

Two ways to fit the same model (multinomial logistic regression on standardized features):
``fit_logistic``, scikit-learn's L-BFGS to convergence, the default (0.06 s where the loop
below takes 5 s on a plate); and ``train_linear``, seed 000 section 8.1's loop: cross entropy,
Adam, MultiStepLR x0.1 at 60% and 80% of the epochs, with the per-epoch history the seed reports.
Plain torch rather than Lightning: the model is one layer on a few hundred vectors, where a
trainer's set-up would cost more than the training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Standardizer:
    """Per-feature z-score fitted on training rows. The seed trained on raw SimCLR features; the
    morphometric features span six orders of magnitude, where an unscaled linear layer at lr 5e-4
    barely moves, so every feature is standardized (constant features are left at 0)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 0, std, 1.0))

    @classmethod
    def choose(cls, x: np.ndarray, standardize) -> "Standardizer":
        """The fitted z-score, or with ``standardize`` false the identity: the seed's raw features."""
        if str(standardize).lower() in ("false", "0", "no"):
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]))
        return cls.fit(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)


@dataclass
class LinearClassifier:
    weight: np.ndarray
    bias: np.ndarray
    history: list[dict] = field(default_factory=list)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


SOLVERS = ("lbfgs", "adam")


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int, c: float = 1.0) -> LinearClassifier:
    """Multinomial logistic regression (scikit-learn, L-BFGS, L2 penalty ``1 / c``) as weights over
    all ``n_classes`` (a class absent from ``y`` gets a logit that never wins)."""
    from sklearn.linear_model import LogisticRegression

    from phenorank.core.threads import single_threaded_blas

    with single_threaded_blas():
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -1e9)
    if len(model.classes_) == 2:  # one logit z for the second class: softmax of (-z/2, z/2) = sigmoid(z)
        coef, intercept = model.coef_[0] / 2, model.intercept_[0] / 2
        weight[model.classes_] = np.stack([-coef, coef])
        bias[model.classes_] = [-intercept, intercept]
    else:
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return LinearClassifier(weight, bias)


def train_linear(x: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, batch_size: int, lr: float,
                 seed: int, validation: tuple[np.ndarray, np.ndarray] | None = None,
                 min_steps: int = 0) -> LinearClassifier:
    from phenorank.core.threads import torch_threads

    with torch_threads(1):  # one linear layer on batches of 32: a second thread only synchronises
        return _train_linear(x, y, n_classes, epochs, batch_size, lr, seed, validation, min_steps)


def _train_linear(x: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, batch_size: int, lr: float,
                  seed: int, validation: tuple[np.ndarray, np.ndarray] | None = None,
                  min_steps: int = 0) -> LinearClassifier:
    """Train ``y = argmax(x W^T + b)``; with ``validation`` the accuracy on it is recorded per epoch
    (``history``). Batches are reshuffled every epoch by a generator seeded with ``seed``.

    ``min_steps``: run more epochs when ``epochs`` would give fewer optimizer steps. The seed's
    settings assume ~600 images (27 000 steps for the softmax ranker); on a plate with a dozen
    wells per class the same epochs are a few hundred steps at lr 5e-4 and the layer barely moves
    from its random start. The schedule's milestones scale with the epochs actually run.
    """
    import torch

    steps_per_epoch = -(-len(x) // batch_size)
    epochs = max(epochs, -(-min_steps // steps_per_epoch))

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    model = torch.nn.Linear(x.shape[1], n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[int(epochs * 0.6), int(epochs * 0.8)], gamma=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
        scheduler.step()
        if validation is not None:
            with torch.no_grad():
                train_acc = float((model(xt).argmax(1) == yt).float().mean())
                vx = torch.as_tensor(validation[0], dtype=torch.float32)
                val_acc = float((model(vx).argmax(1).numpy() == validation[1]).mean())
            history.append({"epoch": epoch + 1, "train_accuracy": train_acc, "test_accuracy": val_acc})
    return LinearClassifier(model.weight.detach().numpy().astype(np.float64),
                            model.bias.detach().numpy().astype(np.float64), history)
