"""Trained models: seed 000's per-epoch diagnostics (section 7.4), loss, top-1 / top-5 and mean
position of each view's partner (a classifier's accuracy, Deep InfoMax's MI losses), on the
training batches, the held-out images under the training augmentation (validation) and the
held-out images resized only (inference)."""

from __future__ import annotations

import html
import json

from . import plots
from .page import figure, table

SPLITS = {"": "training", "val_": "validation", "inference_": "inference"}
PANELS = (("loss", "loss"), ("accuracy", "class accuracy (%)"), ("mi_local", "local MI loss"),
          ("mi_global", "global MI loss"), ("top1", "top-1 (%)"), ("top5", "top-5 (%)"),
          ("mean_position", "mean position"))


def history_figure(history: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(key, label) for key, label in PANELS if any(key in h for h in history)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    epochs = [int(h["epoch"]) + 1 for h in history]
    for ax, (key, label) in zip(axes[0], panels):
        for prefix, split in SPLITS.items():
            values = [h.get(prefix + key) for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], marker="." if len(epochs) < 30
                        else None, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=10)
        if key == "mean_position":
            ax.set_ylim(bottom=1)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plots._png(fig)


def training_sections(store, limit: int = 6) -> list[str]:
    models = store.models()
    if not models:
        return []
    parts = ["<h2>Trained models: per-epoch diagnostics</h2><p class=note>Seed 000 section 7.4: for each view, the "
             "rank of its partner view among the batch by cosine similarity; top-1 / top-5 = how often it is first / "
             "among the first 5, mean position = its average rank (1 is best). A classifier shows its accuracy on its "
             "label, Deep InfoMax its mutual-information losses. validation = held-out images with the training "
             "augmentation, inference = held-out images resized only (train with --validation).</p>"]
    rows = []
    for model in models[:limit]:
        history = json.loads(model["history"]) if isinstance(model["history"], str) else model["history"]
        config = json.loads(model["train_config"]) if isinstance(model["train_config"], str) else model["train_config"]
        last = history[-1] if history else {}
        rows.append((model["model_id"], model["encoder"], model["augmentation"], len(history), model["n_images"],
                     config.get("view_size"), last.get("loss"), last.get("val_top1", last.get("val_accuracy")),
                     last.get("inference_top1", last.get("inference_accuracy"))))
        if history:
            title = f"{model['encoder']} ({model['augmentation']}) · model {model['model_id']}"
            parts.append(figure(history_figure(history, title), f"training history of {html.escape(title)}"))
    parts.insert(1, table(["model", "encoder", "augmentation", "epochs", "images", "view px", "last loss",
                           "last val top-1 / accuracy", "last inference top-1 / accuracy"], rows))
    return ["".join(parts)]
