"""Transforms as a step: an embedding set and a chain of transform plugins give a new embedding
set, keyed by its source, the chain (names, parameters, code) and the reference wells, so asking
again costs a lookup and a changed chain never returns an old result."""

from __future__ import annotations

import numpy as np

from ..registry.contracts import PluginError, Samples, Transform
from .pipeline import PipelineError, code_of, digest, identity
from .store import EmbeddingSet, Store


def reference_rows(samples: Samples, reference: str | None) -> np.ndarray:
    """Rows whose condition or treatment is ``reference`` (e.g. DMSO, control); none when not given."""
    if not reference:
        return np.zeros(len(samples), dtype=bool)
    mask = samples.matching(reference)
    if not mask.any():
        present = sorted({str(v) for c in ("condition", "treatment") if c in samples for v in samples[c]})
        shown = ", ".join(present[:12]) + (" ..." if len(present) > 12 else "")
        raise PipelineError(f"no rows of reference {reference!r} (condition or treatment); present: {shown}")
    return mask


def chain_label(chain: list[Transform]) -> str:
    return ",".join(t.name for t in chain) or "none"


def transformed_set(source: EmbeddingSet, chain: list[Transform], reference: str | None, dim: int = 0) -> EmbeddingSet:
    params = {**source.params, "transforms": [{"name": t.name, "params": t.params} for t in chain],
              "transform_reference": reference, "source": source.embedding_set_id}
    set_id = digest("transform", source.embedding_set_id, [identity(t) for t in chain], reference)
    code = "+".join([source.code] + [code_of(t) for t in chain])
    return EmbeddingSet(set_id, source.encoder, source.head, params, source.preprocess_key, dim, source.level,
                        source.embedding_set_id, code, chain_label(chain), reference)


def apply_chain(store: Store, source: EmbeddingSet, chain: list[Transform], reference: str | None, run_id: str,
                force: bool = False) -> tuple[EmbeddingSet, bool]:
    """The transformed set (computed now: True; already stored: False). Each transform is fitted
    on the output of the one before, on the reference rows it asks for."""
    if not chain:
        return source, False
    wanted = transformed_set(source, chain, reference)
    stored = {s.embedding_set_id: s for s in store.embedding_sets(source.encoder, source.head)}
    if not force and wanted.embedding_set_id in stored:
        return stored[wanted.embedding_set_id], False
    ids, vectors = store.load_embeddings(source.embedding_set_id)
    if len(ids) == 0:
        raise PipelineError(f"embedding set {source.encoder}/{source.head} ({source.level}) is empty")
    samples = store.load_samples(ids)
    reference_mask = reference_rows(samples, reference)
    names = store.feature_names(source.embedding_set_id)
    x = np.asarray(vectors, dtype=np.float64)
    for transform in chain:
        transform.input_names = names
        try:
            transform.fit(x, samples, reference_mask)
            out = np.asarray(transform.transform(x, samples), dtype=np.float64)
        except PluginError as exc:
            raise PluginError(f"transform {transform.name}: {exc}") from None
        if out.ndim != 2 or len(out) != len(x) or out.shape[1] == 0:
            raise PipelineError(f"transform {transform.name!r} returned shape {out.shape} for {x.shape} input")
        if not np.isfinite(out).all():
            raise PipelineError(f"transform {transform.name!r} produced NaN or infinite values "
                                f"({int((~np.isfinite(out)).any(axis=1).sum())} rows); a feature without spread in "
                                "the reference rows? Put select before it")
        names = transform.feature_names(names, out.shape[1])
        x = out
    result = transformed_set(source, chain, reference, x.shape[1])
    store.replace_embeddings(result, names, ids, x.astype(np.float32), run_id)
    return result, True
