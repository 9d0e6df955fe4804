"""The grid: every encoder x head x transform chain x metric x ranker x reference, each ranking
and embedding set evaluated by every evaluator; what is stored already is reused, and a cell
that fails is reported and skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..registry.contracts import Evaluator, Plugin, PluginError
from ..registry.manager import Registry
from .pipeline import PipelineError, embed, evaluate, rank
from .store import EmbeddingSet, Ranking, Store
from .transform import apply_chain


@dataclass
class GridSpec:
    encoders: list[str]
    metrics: list[str]
    rankers: list[str]
    references: list[str]
    evaluators: list[str]
    preprocess_key: str
    heads: list[str] | None = None
    day: int | None = None
    params: dict[str, dict] = field(default_factory=dict)  # plugin name -> parameter overrides
    force: bool = False
    holdout: str | None = "holdout"  # metadata column marking the hold-out (inference) set
    every_encoder: bool = False  # --encoders all: an encoder that cannot run here is left out, not an error
    stored_sets: list[EmbeddingSet] = field(default_factory=list)  # sets to use as they are (imported profiles)
    transforms: list[list[str]] = field(default_factory=list)  # chains of transform names; [] = untransformed
    transform_reference: str | None = None  # the rows transforms are fitted on (condition or treatment value)


def aggregate_skip(evaluator: Evaluator, es: EmbeddingSet) -> str | None:
    """Why an evaluator that re-embeds images leaves out an aggregate embedding set (None: it does not)."""
    if evaluator.needs == "encoder" and es.source_id:
        return (f"{evaluator.name} re-embeds images; {es.level} is an aggregate, so {es.encoder}/{es.head} {es.level} "
                "is skipped (evaluate the set it was made from)")
    return None


@dataclass(frozen=True)
class Problem:
    """One step that could not run on one subject."""

    step: str  # what was asked: an evaluator, "ranker/metric ref=...", "embed ENCODER"
    subject: str  # what it was asked of
    message: str

    def __str__(self) -> str:
        return f"{self.subject} {self.step}: {self.message}"


@dataclass
class GridReport:
    embedded: int = 0
    transformed: int = 0
    ranked: int = 0
    evaluated: int = 0
    reused: int = 0  # rankings already stored (same images, parameters and code)
    reused_evaluations: int = 0
    problems: list[Problem] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # step -> subjects it was tried on
    rankings: list[Ranking] = field(default_factory=list)
    not_applicable: dict[str, list[str]] = field(default_factory=dict)  # ranker -> metrics it does not take
    skipped: list[str] = field(default_factory=list)  # cells left out, and why

    def attempt(self, step: str) -> None:
        self.attempts[step] = self.attempts.get(step, 0) + 1

    def failed_everywhere(self) -> list[str]:
        """Steps that failed on every subject they were tried on: a wrong request (a misspelt
        column, a reference class without images), not a subject that does not suit."""
        failed: dict[str, int] = {}
        for problem in self.problems:
            failed[problem.step] = failed.get(problem.step, 0) + 1
        return [step for step, n in failed.items() if n >= self.attempts.get(step, 0)]


def _warm_up(plugins: list[Plugin]) -> None:
    """Start each plugin's one-time preparation (e.g. a JIT compile) in a background thread; best
    effort: a failure there surfaces, if at all, when the plugin is used."""
    import threading

    def quietly(plugin: Plugin) -> None:
        try:
            plugin.warm_up()
        except Exception:  # noqa: BLE001 - the real call reports its own problems
            pass

    for plugin in plugins:
        if type(plugin).warm_up is not Plugin.warm_up:
            threading.Thread(target=quietly, args=(plugin,), daemon=True, name=f"warm-up {plugin.name}").start()


def run_grid(store: Store, registry: Registry, spec: GridSpec, run_id: str,
             progress: Callable[[str, int], Callable[[int], None]] | None = None,
             executor: Callable | None = None) -> GridReport:
    """Every encoder x head x metric x ranker x reference, each ranking evaluated by every
    evaluator; what is stored already is reused. A failing cell is reported and skipped.
    ``executor``: where the embedding runs (a Dask cluster's; see ``pipeline.embed``)."""
    report = GridReport()

    def make(family: str, name: str) -> Plugin:
        return registry.create(family, name, spec.params.get(name, {}))

    from .training import trained_encoders

    # Building every plugin first turns a misspelt name or parameter into an error before any work.
    encoders = [e for token in spec.encoders
                for e in trained_encoders(store, registry, token, spec.params.get(token.partition(":")[0], {}))]
    metrics = [make("metric", n) for n in spec.metrics]
    rankers = [make("ranker", n) for n in spec.rankers]
    evaluators = [make("evaluator", n) for n in spec.evaluators]
    _warm_up(rankers + evaluators)
    unknown = set(spec.heads or []) - {head for encoder in encoders for head in encoder.heads}
    if unknown:
        raise PluginError(f"none of the encoders has head(s) {', '.join(sorted(unknown))}")
    embedding_sets = []
    for encoder in encoders:
        bar = (lambda total, name=encoder.name: progress(f"embed {name}", total)) if progress else None
        report.attempt(f"embed {encoder.name}")
        try:
            sets, computed = embed(store, encoder, spec.preprocess_key, run_id, progress=bar, executor=executor)
        except (PluginError, PipelineError) as exc:
            if spec.every_encoder:
                report.skipped.append(f"encoder {encoder.name} left out: {exc}")
            else:
                report.problems.append(Problem(f"embed {encoder.name}", "images", str(exc)))
            continue
        report.embedded += computed
        embedding_sets += [es for es in sets if spec.heads is None or es.head in spec.heads]
    embedding_sets += spec.stored_sets
    embedding_sets = _transformed(store, registry, spec, embedding_sets, run_id, report)
    usable = {}
    for ranker in rankers:
        if ranker.metrics == ():  # the ranker uses no metric: one ranking, not one per metric
            usable[ranker.name] = [None]
            continue
        usable[ranker.name] = [m for m in metrics if ranker.takes(m.name)]
        skipped = [m.name for m in metrics if not ranker.takes(m.name)]
        if skipped:
            report.not_applicable[ranker.name] = skipped
    cells = [(es, r, m, ref) for es in embedding_sets for r in rankers for m in usable[r.name]
             for ref in spec.references]
    advance = progress("rank and evaluate", len(cells)) if progress and cells else (lambda n=1: None)
    for es, ranker, metric, reference in cells:
        label = f"{es.encoder}/{es.head}"
        step = f"{ranker.name} {metric.name if metric else 'none'} ref={reference}"
        report.attempt(step)
        try:
            ranking, computed = rank(store, es, ranker, metric, reference, spec.day, run_id, spec.force, spec.holdout)
            report.ranked += computed
            report.reused += not computed
            report.rankings.append(ranking)
        except (PluginError, PipelineError) as exc:
            report.problems.append(Problem(step, label, str(exc)))
            advance(1)
            continue
        for evaluator in evaluators:
            if evaluator.needs != "scores":
                continue
            report.attempt(evaluator.name)
            try:
                done = evaluate(store, evaluator, run_id, ranking=ranking, force=spec.force)
                report.evaluated += done is not None
                report.reused_evaluations += done is None
            except (PluginError, PipelineError) as exc:
                report.problems.append(Problem(evaluator.name, f"{label} {step}", str(exc)))
        advance(1)
    judges = [e for e in evaluators if e.needs != "scores"]
    judged = progress("evaluate embeddings", len(embedding_sets) * len(judges)) \
        if progress and judges and embedding_sets else (lambda n=1: None)
    for es in embedding_sets:  # evaluators of embeddings judge each embedding set once
        for evaluator in judges:
            note = aggregate_skip(evaluator, es)
            if note:
                report.skipped.append(note)
                judged(1)
                continue
            report.attempt(evaluator.name)
            try:
                done = evaluate(store, evaluator, run_id, embedding_set=es, day=spec.day, force=spec.force)
                report.evaluated += done is not None
                report.reused_evaluations += done is None
            except (PluginError, PipelineError) as exc:
                report.problems.append(Problem(evaluator.name, f"{es.encoder}/{es.head} {es.level}", str(exc)))
            judged(1)
    return report


def _transformed(store: Store, registry: Registry, spec: GridSpec, sets: list[EmbeddingSet], run_id: str,
                 report: GridReport) -> list[EmbeddingSet]:
    """Each set through each chain (the empty chain: the set itself)."""
    if not spec.transforms:
        return sets
    chains = [[registry.create("transform", n, spec.params.get(n, {})) for n in chain] for chain in spec.transforms]
    out = []
    for es in sets:
        for chain in chains:
            step = "transform " + (",".join(t.name for t in chain) or "none")
            report.attempt(step)
            try:
                result, computed = apply_chain(store, es, chain, spec.transform_reference, run_id, spec.force)
            except (PluginError, PipelineError) as exc:
                report.problems.append(Problem(step, f"{es.encoder}/{es.head} {es.level}", str(exc)))
                continue
            report.transformed += computed
            out.append(result)
    return out
