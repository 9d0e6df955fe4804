"""Aggregation: object crops -> images -> samples, as a step whose output is an embedding set.

``to="image"`` averages the objects of each image into one vector per image (the image's own
id, so it lines up with image-level embeddings). Any other ``to`` names metadata columns (e.g.
``sample``, ``donor,sample`` or ``well,day``, seed 001's site -> well median): the items that
agree on them form a group, stored in ``groups`` with the metadata all its members share, and
the group's vector is the mean, median or trimmed mean of theirs. Rankers and evaluators then use
the aggregate like any embedding set.
"""

from __future__ import annotations

import numpy as np

from .pipeline import PipelineError, digest
from .store import EmbeddingSet, Store

HOW = ("mean", "median", "trimmed-mean")
SHARED = ("path", "plate", "well", "row", "col", "day", "condition", "treatment", "concentration", "replicate",
          "n_layers", "height", "width", "dtype", "edge")
INTEGER_FIELDS = {"col", "day", "replicate", "n_layers", "height", "width"}
ITEM_COLUMNS = {"level", "parent_id", "object_label", "object_area", "object_x", "object_y"}


def combine(vectors: np.ndarray, how: str, trim: float = 0.1) -> np.ndarray:
    """One vector from many, per dimension: mean, median, or the mean after cutting ``trim`` of
    the values at each end (scipy's ``trim_mean``)."""
    if how == "mean":
        return vectors.mean(axis=0)
    if how == "median":
        return np.median(vectors, axis=0)
    if how == "trimmed-mean":
        from scipy.stats import trim_mean

        return trim_mean(vectors, trim, axis=0)
    raise PipelineError(f"aggregation must be one of {', '.join(HOW)}, got {how!r}")


def group_keys(samples, to: str) -> tuple[list[str], list[str]]:
    """(group id per item, the grouping columns)."""
    if to == "image":
        if "parent_id" not in samples or any(p is None or p == "" for p in samples["parent_id"]):
            raise PipelineError("aggregation to images needs object-level embeddings (from `phenorank objects`)")
        return [str(p) for p in samples["parent_id"]], []
    columns = [c.strip() for c in to.split(",") if c.strip()]
    for column in columns:
        samples[column]  # raises naming the available columns when missing
    keys = []
    for i in range(len(samples)):
        values = [_text(samples[c][i]) for c in columns]
        if any(v == "" for v in values):
            missing = [c for c, v in zip(columns, values) if v == ""]
            raise PipelineError(f"item {samples.image_ids[i]} has no value for {', '.join(missing)}")
        keys.append("|".join(f"{c}={v}" for c, v in zip(columns, values)))
    return keys, columns


def aggregate(store: Store, source: EmbeddingSet, to: str, how: str = "mean", run_id: str = "",
              trim: float = 0.1) -> tuple[EmbeddingSet, int]:
    """Aggregate one embedding set; returns the new set and its number of vectors. Running it
    again replaces the set's vectors (and its groups' metadata) with the current ones."""
    if how not in HOW:
        raise PipelineError(f"aggregation must be one of {', '.join(HOW)}, got {how!r}")
    ids, vectors = store.load_embeddings(source.embedding_set_id)
    if len(ids) == 0:
        raise PipelineError(f"embedding set {source.encoder}/{source.head} ({source.level}) is empty")
    samples = store.load_samples(ids)
    keys, columns = group_keys(samples, to)
    order = sorted(set(keys))
    members: dict[str, list[int]] = {k: [] for k in order}
    for row, key in enumerate(keys):
        members[key].append(row)
    out = np.stack([combine(vectors[members[k]].astype(np.float64), how, trim) for k in order]).astype(np.float32)
    level_name = "image" if to == "image" else ",".join(columns)
    if to != "image":
        groups = _group_metadata(order, level_name, samples, members)
        store.write_groups(groups, [(k, str(ids[row])) for k in order for row in members[k]])
    params = {**source.params, "aggregate": {"to": level_name, "how": how, **({"trim": trim} if how == "trimmed-mean" else {}),
                                             "source": source.embedding_set_id}}
    target = EmbeddingSet(
        embedding_set_id=digest("aggregate", source.embedding_set_id, level_name, how, trim if how == "trimmed-mean" else None),
        encoder=source.encoder, head=source.head, params=params, preprocess_key=source.preprocess_key,
        dim=out.shape[1], level=f"{level_name}:{how}", source_id=source.embedding_set_id,
        code=source.code, transforms=source.transforms, transform_reference=source.transform_reference)
    store.replace_embeddings(target, store.feature_names(source.embedding_set_id), order, out, run_id)
    return target, len(order)


def _group_metadata(order: list[str], level: str, samples, members: dict[str, list[int]]) -> list[dict]:
    """Per group, what its members share: each metadata field whose value is the same for all of
    them (one pass per column over every row, not one per group and column)."""
    import pandas as pd

    group_of = np.empty(len(samples), dtype=np.int64)
    for g, key in enumerate(order):
        group_of[members[key]] = g
    first = np.array([members[key][0] for key in order])
    shared: list[dict] = [{} for _ in order]
    extra: list[dict] = [{} for _ in order]
    for column in samples.columns:
        if column in ITEM_COLUMNS:
            continue
        values = samples[column]
        text = pd.Series(values, dtype=object).map(_text)
        distinct = text.groupby(group_of).nunique(dropna=False).to_numpy()
        blank = text.eq("").groupby(group_of).all().to_numpy()
        for g in np.flatnonzero((distinct == 1) & ~blank):
            row = first[g]
            if column in SHARED:
                value = values[row]
                value = value.item() if isinstance(value, np.generic) else value
                shared[g][column] = int(value) if column in INTEGER_FIELDS else bool(value) if column == "edge" else \
                    str(value) if column == "path" else value
            else:
                extra[g][column] = text.iat[row]
    return [{**shared[g], "group_id": key, "level": level, "extra": extra[g], "n_members": len(members[key])}
            for g, key in enumerate(order)]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(float(value))
    return str(value)
