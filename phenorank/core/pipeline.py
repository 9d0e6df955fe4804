"""Embed, rank and evaluate: the steps between stored crops and stored evaluations.

Every step is keyed by a hash of exactly what produced it (plugin names and resolved parameters,
the preprocessing, the images it saw), so asking again for a stored result costs a lookup, and a
result whose inputs changed is recomputed and replaces the old one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..registry.contracts import Encoder, Evaluation, Evaluator, Metric, Plugin, Ranker, Samples, Subject
from ..registry.code import code_identity
from .allocator import keep_large_blocks
from .statistics import holdout_mask
from .store import EmbeddingSet, Ranking, Store


class PipelineError(RuntimeError):
    pass


def digest(*parts) -> str:
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def identity(plugin: Plugin) -> dict:
    """What a plugin contributes to a result's key: its name, resolved parameters and code (the
    provider's version and a hash of the source it runs), so an edited or upgraded plugin never
    gets an old result back."""
    return {"name": plugin.name, "params": plugin.params, "code": code_of(plugin)}


def code_of(plugin: Plugin) -> str:
    """The code identity the registry gave the plugin; for one built by hand, its source hash."""
    return getattr(plugin, "code", None) or code_identity(type(plugin))


def embedding_set_for(encoder: Encoder, head: str, preprocess_key: str, dim: int = 0, level: str = "image") -> EmbeddingSet:
    set_id = digest("embedding", identity(encoder), head, preprocess_key)
    return EmbeddingSet(set_id, encoder.name, head, encoder.params, preprocess_key, dim, level, code=code_of(encoder))


def _embed_chunk(task: tuple[list[str], np.ndarray], encoder: Encoder) -> dict:
    ids, images = task
    # A network's activations are arrays of tens of MB, allocated and freed every batch; glibc
    # maps each one fresh. Kept on the heap, ResNet18 on 1024 crops took 2.0 s against 2.2 s,
    # and 2.55 s while a crop scan was open in this process (embed reads through one).
    keep_large_blocks()  # here, not in embed(): a Dask worker runs this too
    if images.dtype == np.uint16:  # as stored: scaled where the encoder runs
        images = images.astype(np.float32)
        images /= 65535.0  # in place: the same numbers, without a second array the chunk's size
    return {"status": "ok", "ids": ids, "outputs": encoder.embed(images)}


def embed(store: Store, encoder: Encoder, preprocess_key: str, run_id: str, batch_size: int = 64,
          progress: Callable[[int, int], Callable[[int], None]] | None = None,
          executor: Callable | None = None) -> tuple[list[EmbeddingSet], int]:
    """Embed every ingested image that is not yet embedded by this encoder. Returns the sets
    (one per head) and how many images were computed now. ``executor`` (a Dask cluster's, see
    ``phenorank.distributed``): chunks of crops go to the workers, which embed them; this process
    reads the crops and writes the vectors, chunk by chunk in order."""
    all_ids = store.crop_ids(preprocess_key)
    if not all_ids:
        raise PipelineError(f"no ingested images with preprocessing {preprocess_key}: run `phenorank ingest` first")
    done = [store.embedded_ids(embedding_set_for(encoder, head, preprocess_key).embedding_set_id)
            for head in encoder.heads]
    pending = set().union(*(set(all_ids) - stored for stored in done))
    todo = [i for i in all_ids if i in pending]
    # every head lacks every pending image (the usual case): nothing stored to replace, no DELETE
    new_ids = all(stored.isdisjoint(pending) for stored in done)
    kinds = {s["preprocess_key"]: s["kind"] for s in store.crop_sets()}
    level = "object" if kinds.get(preprocess_key) == "object" else "image"
    advance = progress(len(todo)) if (progress and todo) else (lambda n=1: None)
    # The crops come in one scan of the store, in its order, a thousand at a time; the encoder
    # batches inside that as it likes. (A lookup per thousand ids scanned the crops table each
    # time: 8k-18k crops/s against 61k-72k for the scan, benchmarks/store.py.)
    # (on a cluster, smaller chunks: they travel to the workers, and several are in flight per worker)
    crops = store.stream_crops(todo, preprocess_key, max(batch_size, 1024 if executor is None else 256))
    if executor is None:
        results = (_embed_chunk(chunk, encoder) for chunk in crops)
    else:
        results = executor(crops, functools.partial(_embed_chunk, encoder=encoder),
                           lambda task, reason: {"status": "error", "ids": task[0], "reason": reason})
    writer = _VectorWriter(store, run_id, new_ids)
    # DuckDB's memory is capped meanwhile: else its cache keeps every crop block the scan reads
    # (5.5 GB at 100k crops of 3 x 96 x 96). The scan is closed whatever happens: a traceback
    # that keeps it open keeps the database open after the store is closed.
    with store.memory_limit("1GB"), closing(crops):
        try:
            for result in results:
                if result["status"] == "error":
                    raise PipelineError(f"encoder {encoder.name!r}: a chunk of {len(result['ids'])} crops (from "
                                        f"{result['ids'][0]}) could not be embedded on the cluster: {result['reason']}")
                ids, outputs = result["ids"], result["outputs"]
                batches = []
                for head in encoder.heads:
                    vectors = np.asarray(outputs.get(head)) if head in outputs else None
                    if vectors is None or vectors.ndim != 2 or len(vectors) != len(ids):
                        raise PipelineError(f"encoder {encoder.name!r} head {head!r}: expected an array of shape "
                                            f"({len(ids)}, D), got {None if vectors is None else vectors.shape}")
                    if not np.isfinite(vectors).all():
                        raise PipelineError(f"encoder {encoder.name!r} head {head!r} produced NaN or infinite values")
                    es = embedding_set_for(encoder, head, preprocess_key, vectors.shape[1], level)
                    batches.append((es, encoder.feature_names(head), ids, vectors))
                writer.add(batches)
                advance(len(ids))
        except BaseException:
            try:  # the chunks computed before the failure are kept; the failure itself is what is raised
                writer.flush()
            except Exception:  # noqa: BLE001 - a store that cannot write now would only hide the first error
                pass
            raise
        writer.flush()
    wanted = {embedding_set_for(encoder, head, preprocess_key).embedding_set_id for head in encoder.heads}
    return [s for s in store.embedding_sets(encoder.name) if s.embedding_set_id in wanted], len(todo)


@dataclass
class Loaded:
    """An embedding set's vectors (of one day) and their images' metadata, read once for every
    grid cell that uses them (at 100k x 512 a reload cost several times the ranking itself)."""

    ids: np.ndarray
    vectors: np.ndarray
    samples: Samples
    # per hold-out column: its mask and the fingerprint of the rows fitted on, made once for every
    # cell (the fingerprint hashes every id: 7 ms a cell at 100k)
    held: dict[str | None, tuple[np.ndarray, str]] = field(default_factory=dict)

    def holdout(self, column: str | None) -> tuple[np.ndarray, str]:
        if column not in self.held:
            mask = holdout_mask(self.samples, column)
            self.held[column] = mask, digest(list(self.ids), list(self.ids[mask]))
        return self.held[column]


def load_set(store: Store, embedding_set: EmbeddingSet, day: int | None) -> Loaded:
    ids, vectors = store.load_embeddings(embedding_set.embedding_set_id, day)
    if len(ids) == 0:
        raise PipelineError(f"embedding set {embedding_set.encoder}/{embedding_set.head} has no images"
                            + (f" of day {day}" if day is not None else ""))
    return Loaded(ids, vectors, store.load_samples(ids))


@dataclass
class RankWork:
    """One ranking to compute, with what it needs besides the vectors and metadata (``Loaded``).
    Everything here pickles, except a ranker that reads images (``local``): it stays in this process."""

    ranking: Ranking
    ranker: Ranker
    metric: Metric | None
    held: np.ndarray  # the hold-out rows: scored, not fitted on
    paired: np.ndarray | None = None
    local: Samples | None = None  # metadata with the store's image access, for rankers that need images


def plan_ranking(store: Store, embedding_set: EmbeddingSet, ranker: Ranker, metric: Metric | None, reference: str,
                 day: int | None, loaded: Loaded, force: bool = False, holdout: str | None = "holdout"
                 ) -> tuple[Ranking, RankWork | None]:
    """The ranking's key, and the work to compute it (None: the same ranking is stored)."""
    held, fingerprint = loaded.holdout(holdout)
    ranking = Ranking(
        ranking_id=digest("ranking", embedding_set.embedding_set_id, identity(ranker),
                          identity(metric) if metric is not None else None, reference, day),
        embedding_set_id=embedding_set.embedding_set_id, ranker=ranker.name,
        metric=metric.name if metric is not None else "none", reference=reference, day=day,
        fingerprint=fingerprint,
        ranker_code=code_of(ranker), metric_code=code_of(metric) if metric is not None else "",
    )
    if not force and store.ranking_fingerprint(ranking.ranking_id) == ranking.fingerprint:
        return ranking, None
    work = RankWork(ranking, ranker, metric, held)
    if ranker.needs_pairs:
        work.paired = store.paired_embeddings(embedding_set.embedding_set_id, loaded.ids)
    if ranker.needs_images:
        if embedding_set.source_id:
            raise PipelineError(f"ranker {ranker.name!r} works on images; {embedding_set.level} is an aggregate")
        work.local = replace(loaded.samples, paired_ids=store.paired_image_ids(loaded.ids))
        work.local.read_images, work.local.encode = _image_access(store, embedding_set)
    return ranking, work


def compute_scores(work: RankWork, vectors: np.ndarray, samples: Samples) -> np.ndarray:
    """Fit the ranker on every row but the hold-out, score every row; NaN where a partial ranker
    gives no score. Touches no store."""
    samples = work.local or samples
    if work.paired is not None:
        samples = replace(samples, paired=work.paired)
    ranker, metric, reference = work.ranker, work.metric, work.ranking.reference
    if work.held.any():
        fit_on = ~work.held
        ranker.fit(vectors[fit_on], samples.subset(fit_on), metric, reference)
    else:  # nothing held out: no copy of every vector (50 ms a cell at 100k x 512)
        ranker.fit(vectors, samples, metric, reference)
    scores = np.asarray(ranker.score(vectors, samples), dtype=np.float64)
    if scores.shape != (len(vectors),):
        raise PipelineError(f"ranker {ranker.name!r} must return {len(vectors)} scores, got shape {scores.shape}")
    scored = np.isfinite(scores)
    if not scored.all() and not (ranker.partial and scored.any()):
        raise PipelineError(f"ranker {ranker.name!r} gave {int((~scored).sum())} of {len(vectors)} images "
                            "no finite score")
    return np.where(scored, scores, np.nan)


def store_ranking(store: Store, work: RankWork, ids: np.ndarray, scores: np.ndarray, run_id: str) -> None:
    scored = np.isfinite(scores)
    store.write_ranking(work.ranking, work.ranker.params, work.metric.params if work.metric is not None else {},
                        ids[scored], scores[scored], run_id)


class _VectorWriter:
    """Embedding chunks written together, one transaction per ``megabytes`` of vectors or per
    ``seconds`` of work, whichever comes first. Each commit of DuckDB costs about a checkpoint:
    a transaction per 1024-row chunk (with a DELETE of the chunk's ids) wrote at a tenth of
    Parquet's speed, per 16k rows of 512-d at a quarter; 128 MB (64k such rows) halves the
    commits again. A kill loses at most the unwritten rows, at most ``seconds`` of encoding (a
    rerun embeds exactly those)."""

    def __init__(self, store: Store, run_id: str, new_ids: bool, megabytes: float = 128, seconds: float = 10.0):
        self.store, self.run_id, self.new_ids, self.seconds = store, run_id, new_ids, seconds
        self.limit = megabytes * 2 ** 20
        self.pending: list[list[tuple]] = []
        self.size = 0
        self.since = time.monotonic()

    def add(self, batches: list[tuple]) -> None:
        self.pending.append(batches)
        self.size += sum(np.asarray(b[3]).nbytes for b in batches)
        if self.size >= self.limit or time.monotonic() - self.since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            heads = zip(*self.pending)  # per head: its batches of every chunk
            merged = [(group[0][0], group[0][1], [i for b in group for i in b[2]],
                       np.concatenate([b[3] for b in group])) for group in heads]
            self.store.write_embeddings(merged, self.run_id, new_ids=self.new_ids)
        self.pending, self.size, self.since = [], 0, time.monotonic()


def rank(store: Store, embedding_set: EmbeddingSet, ranker: Ranker, metric: Metric | None, reference: str,
         day: int | None, run_id: str, force: bool = False, holdout: str | None = "holdout") -> tuple[Ranking, bool]:
    """Score the embedding set's images (of one day, when given). The ranker is fitted on every
    image except the hold-out set (``holdout`` names a true/false metadata column), then scores
    all. Returns the ranking and whether it was computed now (False: already stored)."""
    loaded = load_set(store, embedding_set, day)
    ranking, work = plan_ranking(store, embedding_set, ranker, metric, reference, day, loaded, force, holdout)
    if work is None:
        return ranking, False
    store_ranking(store, work, loaded.ids, compute_scores(work, loaded.vectors, loaded.samples), run_id)
    return ranking, True


@dataclass
class EvaluationWork:
    """One evaluation to compute: the evaluator, its subject's key, and the subject once given."""

    evaluator: Evaluator
    subject_kind: str  # ranking | embedding_set
    subject_id: str
    params_hash: str
    stored_params: dict
    subject: Subject | None = None


def plan_evaluation(store: Store, evaluator: Evaluator, ranking: Ranking | None = None,
                    embedding_set: EmbeddingSet | None = None, day: int | None = None,
                    force: bool = False) -> EvaluationWork | None:
    """The evaluation's key, and the work (its subject not yet read); None: the same is stored."""
    if evaluator.needs == "scores":
        if ranking is None:
            raise PipelineError(f"evaluator {evaluator.name!r} judges rankings; give it one")
        subject_kind, subject_id = "ranking", ranking.ranking_id
    else:
        if embedding_set is None:
            raise PipelineError(f"evaluator {evaluator.name!r} judges embeddings; give it an embedding set")
        if evaluator.needs == "encoder" and embedding_set.source_id:
            raise PipelineError(f"evaluator {evaluator.name!r} re-embeds images; {embedding_set.level} is an "
                                "aggregate, evaluate the embedding set it was made from")
        subject_kind, subject_id = "embedding_set", embedding_set.embedding_set_id
    key, stored_params = [identity(evaluator), day if subject_kind == "embedding_set" else None], evaluator.params
    if "qc_" in str(evaluator.params.get("where", "")):  # new flags from qc-images select other images
        key.append(store.image_flags_digest())
        stored_params = {**evaluator.params, "image_flags": key[-1][:12]}  # tells the two results apart
    params_hash = digest(*key)
    if not force and store.has_evaluation(subject_id, evaluator.name, params_hash):
        return None
    return EvaluationWork(evaluator, subject_kind, subject_id, params_hash, stored_params)


def scored_subject(loaded: Loaded, scores: np.ndarray) -> Subject:
    """A ranking's subject from its scores over ``loaded``'s rows (NaN: not scored), in the order
    the store gives them back (by image id, as ``loaded``)."""
    scored = np.isfinite(scores)
    return Subject(loaded.samples.subset(scored), scores=scores[scored])


def compute_evaluation(work: EvaluationWork) -> Evaluation:
    """The evaluator on its subject. Touches no store."""
    result = work.evaluator.evaluate(work.subject)
    return Evaluation(values=result) if isinstance(result, dict) else result


def store_evaluation(store: Store, work: EvaluationWork, result: Evaluation, run_id: str) -> None:
    store.write_evaluation(work.subject_kind, work.subject_id, work.evaluator.name, work.stored_params,
                           work.params_hash, {k: float(v) for k, v in result.values.items()}, result.details,
                           run_id, result.intervals, code_of(work.evaluator), result.groups)


def evaluate(store: Store, evaluator: Evaluator, run_id: str, ranking: Ranking | None = None,
             embedding_set: EmbeddingSet | None = None, day: int | None = None,
             force: bool = False) -> Evaluation | None:
    """Evaluate one ranking (``needs = "scores"``) or one embedding set (``needs = "embeddings"``).
    Returns None when the same evaluation is already stored."""
    work = plan_evaluation(store, evaluator, ranking, embedding_set, day, force)
    if work is None:
        return None
    if work.subject_kind == "ranking":
        ids, scores = store.load_scores(ranking.ranking_id)
        work.subject = Subject(store.load_samples(ids), scores=scores)
    else:
        loaded = load_set(store, embedding_set, day)
        work.subject = encoder_subject(store, embedding_set, loaded) if evaluator.needs == "encoder" else \
            Subject(loaded.samples, embeddings=loaded.vectors)
    result = compute_evaluation(work)
    store_evaluation(store, work, result, run_id)
    return result


def encoder_subject(store: Store, embedding_set: EmbeddingSet, loaded: Loaded) -> Subject:
    """The embeddings with their images and the set's own encoder, for evaluators that re-embed."""
    subject = Subject(loaded.samples, embeddings=loaded.vectors)
    subject.images, subject.encode = _image_access(store, embedding_set, loaded.ids)
    return subject


def _image_access(store: Store, es: EmbeddingSet, ids: np.ndarray | None = None):
    """Reading the set's preprocessed images (float, [0, 1]), and its encoder's head applied to
    new images. With ``ids``, images are asked for by row of ``ids``; without, by image id."""
    from ..registry.manager import get_registry
    from .training import load_trained

    registry = get_registry()
    params = dict(es.params)
    model = store.model(params["model"]) if params.get("model") else None
    encoder = load_trained(store, registry, model) if model else registry.create("encoder", es.encoder, params)

    def by_id(wanted) -> np.ndarray:
        return store.load_crops(wanted, es.preprocess_key)

    def images(rows: np.ndarray) -> np.ndarray:
        return by_id(ids[np.asarray(rows)])

    def encode(batch: np.ndarray) -> np.ndarray:
        return np.asarray(encoder.embed(batch)[es.head], dtype=np.float32)

    return (images if ids is not None else by_id), encode
