"""Ranking strategy 1 of seed 000 (section 9.1): learn how one class's wells change from the early
day to the late day; score = how far each well's actual late embedding is from the predicted one."""

from __future__ import annotations

import numpy as np

from phenorank.core.fingerprint import array_key
from phenorank.registry import PluginError, Ranker

from .centroid import reference_mask


def layer_widths(dim: int, layers: int, bottleneck: int, max_width: int) -> list[int]:
    """Widths of the hourglass from ``dim`` down to ``bottleneck`` and back, ``layers`` linear
    layers in all, halving geometrically; hidden widths are capped at ``max_width`` so raw-pixel
    inputs (27 648 values) do not need a 27 648-wide hidden layer."""
    half = layers // 2
    down = [int(round(w)) for w in np.geomspace(dim, bottleneck, half + 1)]
    hidden = [min(w, max_width) for w in down[1:]]
    return [dim] + hidden + hidden[-2::-1] + [dim]


def build_predictor(widths: list[int]):
    """Linear -> BatchNorm -> ReLU -> Dropout per hidden layer, dropout rising from 0.2 at the
    ends to 0.4 at the bottleneck (the seed's 0.2..0.4, deeper = more); a plain linear output."""
    import torch.nn as nn

    n = len(widths) - 1
    blocks = []
    for i in range(n):
        blocks.append(nn.Linear(widths[i], widths[i + 1]))
        if i < n - 1:
            depth = 1 - abs((i + 1) - n / 2) / (n / 2)  # 0 at the ends, 1 at the bottleneck
            blocks += [nn.BatchNorm1d(widths[i + 1]), nn.ReLU(), nn.Dropout(0.2 + 0.2 * depth)]
    return nn.Sequential(*blocks)


def batches(n: int, batch_size: int, generator) -> list:
    """Shuffled index batches of near-equal size (never a batch of one, which BatchNorm rejects)."""
    import torch

    order = torch.randperm(n, generator=generator)
    return list(torch.tensor_split(order, max(1, -(-n // batch_size))))


class PredictorRanker(Ranker):
    """A fully connected predictor of the late-day embedding from the early-day one, trained on the
    reference class's pairs only; score = metric(predicted, actual) on the late day.

    Seed 000's set-up: features min-max scaled per feature (fitted on the training pairs, both
    days), 12 linear layers 512 -> 8 -> 512 (6 layers 20 -> 4 -> 20 for inputs under 64-d), MSE,
    Adam lr 1e-4, batch 32, at most 2000 epochs with early stopping (patience 500, min delta
    1e-4); the best validation state is kept. The seed trained on a few dozen pairs, a few
    batches an epoch; a screen's thousands of pairs make an epoch hundreds of batches, so the
    epochs are capped at ``max_steps`` batches in all (8000: the seed's 2000 epochs of 4 batches)
    and the patience shrinks in proportion (10k reference pairs, 8k of them trained on: 32 epochs,
    patience 8). Seed-sized sets train exactly as before. Images without an early-day image of the same well
    get no score.

    ``folds=3`` is the document's 3-fold cross-validation: three networks, each stopped early on
    the third of the pairs it did not train on; a reference well is scored by the network that
    never saw it, every other well by the mean of the three predictions. ``folds=1`` trains one
    network with ``validation`` (20%) of the pairs held out for early stopping.

    ``augment``: coupled copies per pair (seed 000: a flip / rotation and a brightness / blur /
    sharpness draw applied alike to the day-7 and day-10 image), embedded with the set's encoder
    and added to the training pairs (each copy stays in its pair's fold).

    Embeddings wider than ``reduce_above`` (raw pixels: 27 648 values) are first projected onto
    their principal components, fitted on the training pairs (at most ``reduce_above``, at most
    2 x pairs - 1), and compared there: the seed never fed pixels to this network (it used a
    convolutional autoencoder on images: ``image-predictor``), and a 27 648-wide first layer
    trained on a few dozen pairs takes minutes per fit to learn nothing.
    """

    name = "predictor"
    needs_pairs = True
    partial = True
    defaults = {"label": "condition", "epochs": 2000, "patience": 500, "min_delta": 1e-4, "batch_size": 32,
                "lr": 1e-4, "folds": 1, "validation": 0.2, "augment": 0, "layers": "auto", "bottleneck": "auto",
                "max_width": 512, "reduce_above": 512, "seed": 0, "max_steps": 8000}

    def __init__(self, **params):
        super().__init__(**params)
        self._fitted: dict[str, tuple] = {}

    @property
    def needs_images(self) -> bool:  # the coupled copies are embedded from the images
        return int(self.params["augment"]) > 0

    def fit(self, embeddings, samples, metric, reference):
        from phenorank.core.threads import torch_threads

        with torch_threads(1):  # a narrow network on batches of 32: one thread is fastest
            return self._fit(embeddings, samples, metric, reference)

    def _fit(self, embeddings, samples, metric, reference):
        if samples.paired is None:
            raise PluginError("predictor needs day-to-day pairs; the pipeline gives them (see table `pairs`)")
        has_pair = np.isfinite(samples.paired).all(axis=1)
        rows = np.flatnonzero(reference_mask(samples, self.params["label"], reference) & has_pair)
        folds = int(self.params["folds"])
        if len(rows) < max(4, 2 * folds):
            raise PluginError(f"predictor: {len(rows)} {reference!r} wells have both days; at least "
                              f"{max(4, 2 * folds)} are needed")
        early = np.asarray(samples.paired[rows], dtype=np.float64)
        late = np.asarray(embeddings[rows], dtype=np.float64)
        self.metric = metric
        # The fit does not depend on the metric: a grid over eight metrics trains once.
        key = array_key(early, late)
        if key in self._fitted:
            self.reducer, self.low, self.span, self.models, self.fold_of, self.history = self._fitted[key]
            return self
        origin = np.arange(len(rows))
        copies = int(self.params["augment"])
        if copies:
            from ..augmentations import coupled_copies

            import torch

            pair_ids = samples.paired_ids[rows].astype(str), samples.image_ids[rows].astype(str)
            more_early, more_late = coupled_copies(*(torch.from_numpy(samples.read_images(ids)) for ids in pair_ids),
                                                   copies, int(self.params["seed"]))
            early = np.concatenate([early, samples.encode(more_early[len(rows):].numpy())])
            late = np.concatenate([late, samples.encode(more_late[len(rows):].numpy())])
            origin = np.concatenate([origin, np.repeat(np.arange(len(rows)), copies)])
        self.reduce_and_scale(early, late, len(rows))
        x, y = self.scaled(early), self.scaled(late)
        seed = int(self.params["seed"])
        order = np.random.default_rng(seed).permutation(len(rows))
        if folds == 1:
            n_val = max(1, int(round(len(rows) * float(self.params["validation"]))))
            held = [order[:n_val]]
        else:
            held = np.array_split(order, folds)
        self.models, self.history, self.fold_of = [], [], {}
        for fold, val_pairs in enumerate(held):
            val = np.isin(origin, val_pairs) & (np.arange(len(origin)) < len(rows))  # originals judge
            train = ~np.isin(origin, val_pairs)
            model, history = self.train_one(x[train], y[train], x[val], y[val], seed + fold)
            self.models.append(model)
            self.history.append(history)
            if folds > 1:
                self.fold_of.update({str(samples.image_ids[rows[i]]): fold for i in val_pairs})
        self._fitted[key] = (self.reducer, self.low, self.span, self.models, self.fold_of, self.history)
        return self

    def reduce_and_scale(self, early: np.ndarray, late: np.ndarray, n_pairs: int) -> None:
        self.reducer = None
        if early.shape[1] > int(self.params["reduce_above"]):
            from sklearn.decomposition import PCA

            components = min(int(self.params["reduce_above"]), 2 * n_pairs - 1)
            self.reducer = PCA(components, random_state=int(self.params["seed"])).fit(np.concatenate([early, late]))
        both = np.concatenate([early, late]) if self.reducer is None else \
            self.reducer.transform(np.concatenate([early, late]))
        self.low = both.min(axis=0)
        self.span = np.where(np.ptp(both, axis=0) > 0, np.ptp(both, axis=0), 1.0)

    def train_one(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int):
        """One network, stopped early on (x_val, y_val); its best state and validation losses."""
        import torch

        dim = x.shape[1]
        layers = (12 if dim >= 64 else 6) if self.params["layers"] == "auto" else int(self.params["layers"])
        bottleneck = (8 if dim >= 64 else max(2, dim // 5)) if self.params["bottleneck"] == "auto" \
            else int(self.params["bottleneck"])
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = build_predictor(layer_widths(dim, layers, bottleneck, int(self.params["max_width"])))
        x, y = (torch.as_tensor(a, dtype=torch.float32) for a in (x, y))
        x_val, y_val = (torch.as_tensor(a, dtype=torch.float32) for a in (x_val, y_val))
        # foreach: one fused update over all parameters, not a Python loop per tensor per step
        optimizer = torch.optim.Adam(model.parameters(), lr=float(self.params["lr"]), foreach=True)
        loss_fn = torch.nn.MSELoss()
        best, best_state, waited, history = float("inf"), None, 0, []
        epochs, patience = int(self.params["epochs"]), int(self.params["patience"])
        per_epoch = -(-len(x) // int(self.params["batch_size"]))
        if int(self.params["max_steps"]) > 0 and epochs * per_epoch > int(self.params["max_steps"]):
            capped = max(1, -(-int(self.params["max_steps"]) // per_epoch))
            epochs, patience = capped, max(1, -(-patience * capped // epochs))
        # the layers whose behaviour differs in training (BatchNorm, Dropout): flipping their flag is
        # what model.train() / eval() do, without walking every module twice per epoch
        switching = [m for m in model.modules() if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm,
                                                                  torch.nn.Dropout))]
        for _ in range(epochs):
            for module in switching:
                module.training = True
            for batch in batches(len(x), int(self.params["batch_size"]), generator):
                if len(batch) < 2:
                    continue
                optimizer.zero_grad()
                loss = loss_fn(model(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
            for module in switching:
                module.training = False
            with torch.no_grad():
                val_loss = float(loss_fn(model(x_val), y_val))
            history.append(val_loss)
            if val_loss < best - float(self.params["min_delta"]):
                best, waited = val_loss, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= patience:
                    break
        model.load_state_dict(best_state)
        return model.eval(), history

    def minmax(self, x: np.ndarray) -> np.ndarray:
        return (x - self.low) / self.span

    def scaled(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.minmax(x if self.reducer is None else self.reducer.transform(x))

    def score(self, embeddings, samples=None):
        import torch

        if samples is None or samples.paired is None:
            raise PluginError("predictor scores need each image's early-day embedding (samples.paired)")
        scores = np.full(len(embeddings), np.nan)
        rows = np.flatnonzero(np.isfinite(samples.paired).all(axis=1))
        for start in range(0, len(rows), 4096):
            chunk = rows[start:start + 4096]
            inputs = torch.as_tensor(self.scaled(samples.paired[chunk]), dtype=torch.float32)
            with torch.no_grad():
                each = np.stack([model(inputs).numpy() for model in self.models])
            predicted = each.mean(axis=0)
            # a reference well the cross-validation held out is scored by the network that never saw it
            own = np.array([self.fold_of.get(str(i), -1) for i in samples.image_ids[chunk]])
            predicted[own >= 0] = each[own[own >= 0], np.flatnonzero(own >= 0)]
            scores[chunk] = self.metric.paired_distance(predicted.astype(np.float64), self.scaled(embeddings[chunk]))
        return scores
