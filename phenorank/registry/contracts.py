"""The contracts every plugin family follows.

A plugin is a class. The registry stores the class; each use builds an instance with its
parameters (``MyRanker(k=3)``), so one plugin can take part in many runs with different settings.
Parameters have defaults in ``defaults``; their resolved values are stored with every result,
so a result can always be traced to the exact settings that produced it.

Arrays are NumPy arrays. An encoder built on torch converts its outputs with ``.cpu().numpy()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

FAMILIES = ("loader", "preprocessor", "segmenter", "encoder", "augmentation", "metric", "transform", "ranker",
            "evaluator")


class PluginError(ValueError):
    """A plugin was asked for something it cannot do (unknown name, bad parameter, ...)."""


class Plugin:
    family: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            takes = ", ".join(sorted(self.defaults)) or "no parameters"
            raise PluginError(
                f"{self.family} {self.name!r} has no parameter {', '.join(unknown)} (it takes: {takes})"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    def warm_up(self) -> None:
        """Optional: one-time work the plugin will need (a JIT compilation), done on a throwaway
        input. A grid calls it in a background thread when it starts, so the compiling overlaps
        other plugins' work instead of stalling the first cell that needs it."""

    # scikit-learn's estimator conventions: sklearn.base.clone(plugin) builds an unfitted copy with
    # the same parameters, and a grid search can set them.
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return dict(self.params)

    def set_params(self, **params: Any) -> "Plugin":
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise PluginError(f"{self.family} {self.name!r} has no parameter {', '.join(unknown)} "
                              f"(it takes: {', '.join(sorted(self.defaults)) or 'no parameters'})")
        self.params.update(params)
        return self


@dataclass
class Samples:
    """Metadata of a set of images, one entry per image, in the same order as their embeddings.

    ``columns`` holds the ``images`` table's fields (well, day, condition, treatment,
    concentration, ...) plus every extra manifest column (e.g. ``effect``).
    """

    image_ids: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    # For rankers that ask for pairs: each image's embedding on the well's earlier day, one row
    # per image (NaN where the well has no earlier image).
    paired: np.ndarray | None = None
    # For rankers that ask for images: the id of each image's earlier-day image ("" where none),
    # the preprocessed images (N, C, S, S) in [0, 1] of given ids, and the embedding set's
    # encoder head applied to new images.
    paired_ids: np.ndarray | None = None
    read_images: Callable[[Sequence[str]], np.ndarray] | None = None
    encode: Callable[[np.ndarray], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise PluginError(
                f"no metadata column {name!r}; available: {', '.join(sorted(self.columns))}"
            )
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def matching(self, value: str, columns=("condition", "treatment")) -> np.ndarray:
        """Rows where any of ``columns`` (those present) reads ``value``: the negative control or
        reference wells, named by a condition (control) or a treatment (DMSO)."""
        mask = np.zeros(len(self), dtype=bool)
        for column in dict.fromkeys(c for c in columns if c):
            if column in self.columns:
                mask |= self.columns[column].astype(str) == value
        return mask

    def subset(self, mask: np.ndarray) -> "Samples":
        return Samples(self.image_ids[mask], {k: v[mask] for k, v in self.columns.items()},
                       None if self.paired is None else self.paired[mask],
                       None if self.paired_ids is None else self.paired_ids[mask], self.read_images, self.encode)


class Loader(Plugin):
    """Reads one file into an array of shape (L, H, W) in the file's own dtype.

    ``axis`` says what the first axis holds: ``layers`` (focal layers of one grayscale channel,
    e.g. bright-field spheroids: the sharpest three are kept and the crop follows the dark object)
    or ``channels`` (fluorescence channels, kept in order, centre crop).
    """

    family = "loader"
    suffixes: ClassVar[tuple[str, ...]] = ()
    axis: ClassVar[Literal["layers", "channels"]] = "layers"
    # The most pixels (all planes together) one file may decode to; checked against the header
    # before decoding, so a small compressed file cannot claim gigabytes. 2^29 = 1 GiB of 16-bit
    # pixels, 20x a 5-layer 2456x2054 stack. `phenorank ingest --max-pixels` changes it.
    max_pixels: int = 1 << 29

    def read(self, path: str) -> np.ndarray:
        raise NotImplementedError

    def expand(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """The images one file holds, as (location, fields): by default the file itself.

        A loader that cuts a file into several images (the tiles of each frame of a time-lapse)
        returns one location per image, ``path#key=n&key=n`` (``phenorank.core.manifest.join_region``),
        which ``read`` then receives, with fields that describe that image (its time point, its
        place, ground truth measured on masks). A ``condition`` field replaces the entry's own;
        other fields are extra metadata, and the manifest's own fields of the same name win.
        """
        return [(path, {})]


class Preprocessor(Plugin):
    """One step of image preprocessing, applied to every channel (or focal layer) of a file at
    full resolution, before the crop (illumination correction, outlier removal, background
    subtraction, denoising, contrast, centre crop). A chain of steps is part of the crop set's
    key, so two preprocessings of the same files are two crop sets of one store.

    ``apply(stack, full_scale, state)``: a float32 (L, H, W) stack on the file's scale
    (``full_scale``: 65535 for 16-bit, 255 for 8-bit, 1 for float files) -> the same kind of
    stack; values are clipped to [0, full_scale] afterwards. Steps with ``fitted = True`` first
    learn a state from the stacks of one group (``fit_by``, e.g. ``plate``): ``fit(stacks,
    full_scale)`` gets them all and returns arrays (stored with the crop set; their digest enters
    its key)."""

    family = "preprocessor"
    fitted: ClassVar[bool] = False
    fit_by: ClassVar[str] = "plate"

    def fit(self, stacks: list[np.ndarray], full_scale: float) -> np.ndarray:
        raise NotImplementedError

    def apply(self, stack: np.ndarray, full_scale: float, state: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError


class Segmenter(Plugin):
    """Finds objects (cells, nuclei) in one image.

    ``segment`` receives float32 channels (C, H, W) scaled to [0, 1] at full resolution and
    returns a label image (H, W) of integers: 0 is background, each object has its own label.
    A segmentation model (Cellpose, StarDist, ...) installed by the user plugs in here.
    """

    family = "segmenter"

    def segment(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass
class TrainConfig:
    """How to train a trainable encoder; the same command runs on a CPU, one GPU or several
    (``devices``, ``strategy`` go to PyTorch Lightning)."""

    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_workers: int = 0
    checkpoint_dir: str = ""  # Lightning writes last.ckpt here; resume continues from it
    resume: bool = False
    on_epoch: Callable[[int], None] | None = None  # progress: called once per finished epoch
    on_metrics: Callable[[dict], None] | None = None  # called with each finished epoch's logged metrics
    # Multi-view positives (seed 002): one group label per image; the two views of a positive
    # pair are then two different images of one group (e.g. two fields of view of a sample)
    # instead of two augmentations of one image.
    groups: np.ndarray | None = None
    # Seed 000 section 7.4: this fraction of the images (of the groups, with ``groups``) is held
    # out of training and scored after every epoch (``val_*``, and ``inference_*`` with the
    # resize-only view of side ``view_size``).
    validation: float = 0.0
    view_size: int = 0
    # Supervised encoders: one label per image; and the units a validation split keeps whole
    # (e.g. the sample of each cell), when they differ from ``groups``.
    labels: np.ndarray | None = None
    split_groups: np.ndarray | None = None


class Encoder(Plugin):
    """Turns a batch of preprocessed images into one embedding per output head.

    ``embed`` receives float32 images of shape (N, 3, S, S) scaled to [0, 1] (16-bit / 65535)
    and returns ``{head: array of shape (N, D)}`` with one entry per name in ``heads``.

    A ``trainable`` encoder also has ``fit`` (train on images with an augmentation, return one
    dict of metrics per epoch), ``save`` and ``load`` (its trained weights, one file). Its
    ``model`` parameter names the trained model it embeds with.
    """

    family = "encoder"
    heads: ClassVar[tuple[str, ...]] = ()
    trainable: ClassVar[bool] = False
    supervised: ClassVar[bool] = False  # trained on a label (``TrainConfig.labels``)

    def embed(self, images: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def fit(self, images: np.ndarray, augmentation: Callable, config: TrainConfig) -> list[dict[str, float]]:
        raise PluginError(f"encoder {self.name!r} is not trainable")

    def save(self, path: str) -> None:
        raise PluginError(f"encoder {self.name!r} is not trainable")

    def load(self, path: str) -> None:
        raise PluginError(f"encoder {self.name!r} is not trainable")

    def feature_names(self, head: str) -> list[str] | None:
        """Names of the embedding's dimensions when they have a meaning (morphometrics)."""
        return None


class Augmentation(Plugin):
    """Builds a callable that maps a float tensor (C, H, W) to an augmented view."""

    family = "augmentation"

    def build(self, image_size: int) -> Callable:
        raise NotImplementedError


class Metric(Plugin):
    """Pairwise comparison of embeddings: ``pairwise(A, B)`` has shape (len(A), len(B)).

    ``kind`` says which way ``pairwise`` points. Rankers always call ``distance``, which turns a
    similarity into a distance by negation, so that a larger value always means further apart.
    ``distance`` works through ``blocks``: ``pairwise`` only ever sees a few thousand rows of A at
    a time in float64, so memory stays bounded by the output, never by an intermediate copy.
    """

    family = "metric"
    kind: ClassVar[Literal["distance", "similarity"]] = "distance"
    block_elements: ClassVar[int] = 1 << 22  # rows of A per block x max(len(B), D) stays below this

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def blocks(self, a: np.ndarray, b: np.ndarray):
        """Yield ``(row_slice, distances)`` over row blocks of A: for callers that reduce as they go
        (nearest neighbours of 100k points need no 100k x 100k matrix)."""
        b = np.asarray(b, dtype=np.float64)
        rows = max(1, self.block_elements // max(len(b), a.shape[1] if a.ndim == 2 else 1, 1))
        for start in range(0, len(a), rows):
            block = self.pairwise(np.asarray(a[start:start + rows], dtype=np.float64), b)
            yield slice(start, start + len(block)), (block if self.kind == "distance" else -block)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        result = np.empty((len(a), len(b)), dtype=np.float64)
        for rows, block in self.blocks(a, b):
            result[rows] = block
        return result

    def paired_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance of each row of A to the same row of B (shape (N,))."""
        if a.shape != b.shape:
            raise PluginError(f"paired_distance needs equal shapes, got {a.shape} and {b.shape}")
        out = np.empty(len(a), dtype=np.float64)
        step = 512
        for start in range(0, len(a), step):
            out[start:start + step] = np.diagonal(self.distance(a[start:start + step], b[start:start + step]))
        return out


class Ranker(Plugin):
    """Fits on embeddings with their metadata, then scores images: higher = further from the
    reference state (for the usual reference ``control``: a stronger treatment effect).

    ``metrics`` names the metrics the ranker can work with: None = any; an empty tuple = the
    ranker uses none (it gets ``metric=None`` and is run once, not once per metric).
    ``needs_pairs``: ``samples.paired`` holds each image's embedding from the well's earlier day.
    ``needs_images``: ``samples.paired_ids``, ``samples.read_images`` and ``samples.encode`` are
    given (a ranker that works on the images themselves, e.g. predicts the later image).
    ``partial``: the ranker may leave some images unscored (NaN), e.g. those without a pair.
    ``shares_fit``: what the fit learns does not depend on the reference (a projection: only its
    orientation does) and the ranker keeps it between fits, so a grid fits every reference of an
    embedding set and metric on one ranker object, on a cluster's worker too.
    ``fit`` and ``score`` are handed the set's arrays themselves, shared by every grid cell: read
    them, never write into them.
    """

    family = "ranker"
    metrics: ClassVar[tuple[str, ...] | None] = None
    needs_pairs: ClassVar[bool] = False
    needs_images: ClassVar[bool] = False
    partial: ClassVar[bool] = False
    shares_fit: ClassVar[bool] = False

    def takes(self, metric_name: str) -> bool:
        return self.metrics is None or metric_name in self.metrics

    def fit(self, embeddings: np.ndarray, samples: Samples, metric: "Metric | None", reference: str) -> "Ranker":
        raise NotImplementedError

    def score(self, embeddings: np.ndarray, samples: Samples | None = None) -> np.ndarray:
        raise NotImplementedError


class Transform(Plugin):
    """Maps an embedding set to a new one (normalization, whitening, feature selection, batch
    correction), fitted on some of its rows: ``fit(embeddings, samples, reference)`` learns from
    the rows (``reference``: a mask of the reference wells, e.g. the negative controls), then
    ``transform(embeddings, samples)`` maps every row. Fitting per plate or per batch is the
    transform's own business (its ``by`` parameter names the column).

    ``feature_names(names)``: the output's feature names given the input's (None when unknown);
    by default, the same when the width stays, else None.
    """

    family = "transform"
    needs_reference: ClassVar[bool] = False  # True: fitting without reference rows is an error

    def fit(self, embeddings: np.ndarray, samples: Samples, reference: np.ndarray) -> "Transform":
        raise NotImplementedError

    def transform(self, embeddings: np.ndarray, samples: Samples) -> np.ndarray:
        raise NotImplementedError

    def feature_names(self, names: list[str] | None, width: int) -> list[str] | None:
        return names if names is not None and len(names) == width else None


@dataclass
class Subject:
    """What an evaluator looks at: the samples and, as it asked in ``needs``, their scores from
    one ranking or their embeddings from one embedding set.

    ``needs = "encoder"`` also gets ``images(rows)``, the preprocessed images (N, C, S, S) of the
    given rows, and ``encode(images)``, the embedding set's own encoder and head applied to new
    images: for evaluators that change the images and watch the embeddings move.
    """

    samples: Samples
    scores: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    images: Callable[[np.ndarray], np.ndarray] | None = None
    encode: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass
class Evaluation:
    """Named values; ``intervals`` holds a (low, high) 95% interval for some of them (bootstrap
    over wells, or the spread over restarts where the evaluator says so in ``details``).
    ``groups``: per-group results (a treatment's mAP, p-value and q-value), one dict of named
    numbers per group; they land in the queryable table ``evaluation_groups``."""

    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)


class Evaluator(Plugin):
    """Says how trustworthy a ranking (``needs = "scores"``) or an embedding
    (``needs = "embeddings"``, or ``"encoder"`` to re-embed changed images) is, as named numbers."""

    family = "evaluator"
    needs: ClassVar[Literal["scores", "embeddings", "encoder"]] = "scores"

    def evaluate(self, subject: Subject) -> Evaluation:
        raise NotImplementedError


BASES: dict[str, type[Plugin]] = {
    "loader": Loader,
    "preprocessor": Preprocessor,
    "segmenter": Segmenter,
    "encoder": Encoder,
    "augmentation": Augmentation,
    "metric": Metric,
    "transform": Transform,
    "ranker": Ranker,
    "evaluator": Evaluator,
}
