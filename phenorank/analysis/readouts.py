"""A readout: one number per well (or image), from a stored ranking's scores or from one named
feature of an embedding set (morphometrics ``area``), with the wells' metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.store import Store, StoreError
from ..registry.contracts import Samples


@dataclass
class Readout:
    kind: str  # "ranking", "feature", "growth" or "growth-rate"
    source: str  # ranking id, or the embedding set id (features, growth)
    name: str  # "score", or the feature's name
    label: str  # what a person reads: "ranking 1a2b... score", "morphometrics/backbone area"
    ids: np.ndarray
    values: np.ndarray
    samples: Samples


def load_readout(store: Store, spec: str, day: int | None = None) -> Readout:
    """``spec``: a ranking id (its scores), ``ENCODER[:HEAD]/FEATURE`` (a named feature of the
    encoder's untransformed image-level set), of one day when given; or ``growth/MEASURE`` /
    ``growth-rate/MEASURE`` (area, diameter, volume from morphometrics, day-to-day per well, one
    value per later image)."""
    if "/" not in spec:
        rankings = store.rankings([spec])
        if not rankings:
            raise StoreError(f"no ranking {spec!r}; give a ranking id (phenorank sql \"select ranking_id, ranker, metric "
                             "from rankings\") or ENCODER/FEATURE such as morphometrics/area")
        ids, values = store.load_scores(spec)
        samples = store.load_samples(ids)
        if day is not None and "day" in samples:
            keep = np.asarray([d == day for d in samples["day"]])
            ids, values, samples = ids[keep], values[keep], samples.subset(keep)
        r = rankings[0]
        es = store.embedding_set(r.embedding_set_id)
        method = f"{es.encoder}/{es.head} " if es else ""
        return Readout("ranking", spec, "score", f"{method}{r.ranker} {r.metric} ref={r.reference} ({spec[:8]})", ids,
                       values, samples)
    kind, _, measure = spec.partition("/")
    if kind in ("growth", "growth-rate"):
        return _growth_readout(store, kind, measure)
    encoder, _, feature = spec.partition("/")
    encoder, _, head = encoder.partition(":")
    sets = [s for s in store.embedding_sets(encoder, head or None) if s.transforms is None and s.source_id is None]
    for es in sets:
        names = store.feature_names(es.embedding_set_id) or []
        if feature in names:
            ids, vectors = store.load_embeddings(es.embedding_set_id, day)
            if len(ids) == 0:
                raise StoreError(f"{encoder} has no embeddings" + (f" of day {day}" if day is not None else ""))
            return Readout("feature", es.embedding_set_id, feature, f"{encoder}/{es.head} {feature}", ids,
                           vectors[:, names.index(feature)].astype(np.float64), store.load_samples(ids))
    known = sorted({n for es in sets for n in (store.feature_names(es.embedding_set_id) or [])})
    raise StoreError(f"no feature {feature!r} in the stored {encoder} embeddings" +
                     (f"; features: {', '.join(known)}" if known else " (embed with it first)"))


def _growth_readout(store: Store, kind: str, measure: str) -> Readout:
    from .growth import growth, size

    sets = [s for s in store.embedding_sets("morphometrics") if s.transforms is None and s.source_id is None]
    if not sets:
        raise StoreError("growth readouts need morphometrics: run `phenorank embed --encoder morphometrics` first")
    es = sets[0]
    names = store.feature_names(es.embedding_set_id) or []
    ids, vectors = store.load_embeddings(es.embedding_set_id)
    row = {str(i): n for n, i in enumerate(ids)}
    pairs = [p for p in store.pairs() if p["early_image_id"] in row and p["late_image_id"] in row]
    if not pairs:
        raise StoreError("no day-to-day pairs with morphometrics on both days (table pairs: the same well on two days)")
    features = {name: vectors[:, j].astype(np.float64) for j, name in enumerate(names)}
    try:
        sizes = size(features, measure)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    early = np.array([row[p["early_image_id"]] for p in pairs])
    late = np.array([row[p["late_image_id"]] for p in pairs])
    days = np.array([p["late_day"] - p["early_day"] for p in pairs], np.float64)
    values = growth(sizes[early], sizes[late], days, kind == "growth-rate")
    late_ids = ids[late]
    label = ("specific growth rate (ln fold per day)" if kind == "growth-rate" else "fold change") + f" of {measure}"
    return Readout(kind, es.embedding_set_id, f"{kind}/{measure}", label, late_ids, values, store.load_samples(late_ids))


def only_plates(readout: Readout, plates: list[str]) -> Readout:
    """The readout's wells on these plates (e.g. leaving out one that failed QC)."""
    if not plates:
        return readout
    names = readout.samples["plate"].astype(str)
    unknown = sorted(set(plates) - set(names))
    if unknown:
        raise StoreError(f"no plate {', '.join(map(repr, unknown))} in {readout.label}; plates: "
                         f"{', '.join(sorted(set(names)))}")
    keep = np.isin(names, plates)
    return Readout(readout.kind, readout.source, readout.name, readout.label, readout.ids[keep],
                   readout.values[keep], readout.samples.subset(keep))


def stored_readout(store: Store, kind: str, source: str, name: str, params: dict) -> Readout:
    """The readout a stored analysis row was computed on (its ``readout_kind``, ``readout_source``,
    ``readout`` and ``params``): the same values, for drawing them."""
    day = params.get("day")
    if kind == "ranking":
        data = load_readout(store, source, day)
    elif kind in ("growth", "growth-rate"):
        data = _growth_readout(store, kind, name.partition("/")[2])
    else:
        es = store.embedding_set(source)
        if es is None:
            raise StoreError(f"embedding set {source} is no longer stored")
        data = load_readout(store, f"{es.encoder}:{es.head}/{name}", day)
    return only_plates(data, params.get("plates") or [])
