"""The grid: every encoder x head x transform chain x metric x ranker x reference, each ranking
and embedding set evaluated by every evaluator; what is stored already is reused, and a cell
that fails is reported and skipped."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..registry.contracts import Evaluator, Plugin, PluginError, Subject
from ..registry.manager import Registry
from .pipeline import (EvaluationWork, Loaded, PipelineError, RankWork, compute_evaluation, compute_scores, embed,
                       encoder_subject, load_set, plan_evaluation, plan_ranking, scored_subject, store_evaluation,
                       store_ranking)
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
    cells = [(r, m, ref) for r in rankers for m in usable[r.name] for ref in spec.references]
    scored_by = [e for e in evaluators if e.needs == "scores"]
    judges = [e for e in evaluators if e.needs != "scores"]
    advance = progress("rank and evaluate", len(cells) * len(embedding_sets)) \
        if progress and cells and embedding_sets else (lambda n=1: None)
    judged = progress("evaluate embeddings", len(embedding_sets) * len(judges)) \
        if progress and judges and embedding_sets else (lambda n=1: None)
    if executor is not None and hasattr(executor, "check"):
        executor.check(ranker=rankers, evaluator=evaluators)
    for es in embedding_sets:  # one set's vectors in memory at a time, read once for all its cells
        label = f"{es.encoder}/{es.head}"
        try:
            loaded = load_set(store, es, spec.day)
        except PipelineError as exc:
            for ranker, metric, reference in cells:
                step = cell_step(ranker, metric, reference)
                report.attempt(step)
                report.problems.append(Problem(step, label, str(exc)))
            advance(len(cells))
            judged(len(judges))
            continue
        tasks = [t for cell in cells for t in [_cell_task(store, spec, es, loaded, *cell, scored_by, report)] if t]
        advance(len(cells) - len(tasks))
        tasks += _judge_tasks(store, spec, es, loaded, judges, report, judged)
        _run_tasks(store, tasks, loaded, run_id, report, executor, advance, judged)
    return report


@dataclass
class CellTask:
    """A grid cell's work on one embedding set: a ranking to compute (or its stored scores) and
    the evaluations still missing; or, without a ranking, evaluations of the embeddings."""

    subject: str  # for problems: "encoder/head" (and the step)
    step: str
    ranking: Ranking | None = None
    work: RankWork | None = None
    stored: np.ndarray | None = None  # a stored ranking's scores over the loaded rows (NaN: not scored)
    evaluations: list[EvaluationWork] = field(default_factory=list)

    @property
    def local(self) -> bool:
        """Must run in this process: it reads images through the store."""
        return (self.work is not None and self.work.local is not None) or \
            any(e.evaluator.needs == "encoder" for e in self.evaluations)


def run_cell(task: CellTask, loaded: Loaded) -> dict:
    """Compute one task (no store involved, so it runs on any worker): the ranking's scores unless
    stored, then each evaluation. A ranker's or evaluator's refusal is a result, not a raise."""
    out = {"scores": None, "error": None, "evaluations": []}
    scores = task.stored
    if task.work is not None:
        try:
            scores = out["scores"] = compute_scores(task.work, loaded.vectors, loaded.samples)
        except (PluginError, PipelineError) as exc:
            out["error"] = str(exc)
            return out
    for work in task.evaluations:
        work.subject = scored_subject(loaded, scores) if work.subject_kind == "ranking" else \
            (work.subject or Subject(loaded.samples, embeddings=loaded.vectors))
        try:
            out["evaluations"].append((compute_evaluation(work), None))
        except (PluginError, PipelineError) as exc:
            out["evaluations"].append((None, str(exc)))
        finally:
            work.subject = None  # nothing large travels back
    return out


def run_cells(unit: list[CellTask], loaded: Loaded) -> list[dict]:
    return [run_cell(task, loaded) for task in unit]


def _sharing_fits(tasks: list[CellTask]) -> list[list[CellTask]]:
    """The tasks in units for a cluster: one per task, except that the references of a ranker
    that shares its fit (``Ranker.shares_fit``) and of one metric go together, so that one worker
    fits the projection once (pickled together, they keep one ranker object)."""
    units: list[list[CellTask]] = []
    shared: dict[tuple[int, int], list[CellTask]] = {}
    for task in tasks:
        ranker = task.work.ranker if task.work is not None else None
        if ranker is None or not ranker.shares_fit:
            units.append([task])
            continue
        key = (id(ranker), id(task.work.metric))
        if key not in shared:
            shared[key] = []
            units.append(shared[key])
        shared[key].append(task)
    return units


def cell_step(ranker, metric, reference: str) -> str:
    """How a cell is named in problems: ranker, metric and reference."""
    return f"{ranker.name} {metric.name if metric else 'none'} ref={reference}"


def _cell_task(store: Store, spec: GridSpec, es: EmbeddingSet, loaded: Loaded, ranker, metric, reference,
               scored_by: list[Evaluator], report: GridReport) -> CellTask | None:
    """The cell's task (None: nothing left to compute, or it cannot run: then a problem)."""
    label = f"{es.encoder}/{es.head}"
    step = cell_step(ranker, metric, reference)
    report.attempt(step)
    try:
        ranking, work = plan_ranking(store, es, ranker, metric, reference, spec.day, loaded, spec.force, spec.holdout)
    except (PluginError, PipelineError) as exc:
        report.problems.append(Problem(step, label, str(exc)))
        return None
    task = CellTask(f"{label} {step}", step, ranking, work)
    for evaluator in scored_by:
        report.attempt(evaluator.name)
        try:  # a ranking computed anew replaces its stored evaluations: they are all due again
            planned = plan_evaluation(store, evaluator, ranking=ranking, force=spec.force or work is not None)
        except (PluginError, PipelineError) as exc:
            report.problems.append(Problem(evaluator.name, task.subject, str(exc)))
            continue
        if planned is None:
            report.reused_evaluations += 1
        else:
            task.evaluations.append(planned)
    if work is None:
        report.reused += 1
        report.rankings.append(ranking)
        if not task.evaluations:
            return None
        ids, scores = store.load_scores(ranking.ranking_id)
        position = {image_id: row for row, image_id in enumerate(loaded.ids)}
        task.stored = np.full(len(loaded.ids), np.nan)
        task.stored[[position[i] for i in ids]] = scores
    return task


def _judge_tasks(store: Store, spec: GridSpec, es: EmbeddingSet, loaded: Loaded, judges: list[Evaluator],
                 report: GridReport, judged: Callable) -> list[CellTask]:
    """One task per evaluator of embeddings still to run on the set; an encoder-judge gets the
    store's image access here, and so runs in this process."""
    tasks = []
    subject = f"{es.encoder}/{es.head} {es.level}"
    for evaluator in judges:
        note = aggregate_skip(evaluator, es)
        if note:
            report.skipped.append(note)
            judged(1)
            continue
        report.attempt(evaluator.name)
        try:
            planned = plan_evaluation(store, evaluator, embedding_set=es, day=spec.day, force=spec.force)
        except (PluginError, PipelineError) as exc:
            report.problems.append(Problem(evaluator.name, subject, str(exc)))
            judged(1)
            continue
        if planned is None:
            report.reused_evaluations += 1
            judged(1)
            continue
        if evaluator.needs == "encoder":
            planned.subject = encoder_subject(store, es, loaded)
        tasks.append(CellTask(subject, evaluator.name, evaluations=[planned]))
    return tasks


def _run_tasks(store: Store, tasks: list[CellTask], loaded: Loaded, run_id: str, report: GridReport,
               executor: Callable | None, advance: Callable, judged: Callable) -> None:
    """Every task, where it can run (a cluster's workers, else here); the results are written
    here, in task order, by this process alone."""
    here = [t for t in tasks if executor is None or t.local]
    away = _sharing_fits([t for t in tasks if executor is not None and not t.local])
    results = zip(here, (run_cell(t, loaded) for t in here))
    if away:
        remote = executor(away, functools.partial(run_cells, loaded=loaded),
                          lambda unit, reason: [{"scores": None, "evaluations": [], "error": reason}] * len(unit))
        results = itertools.chain(results, ((task, result) for unit, outcome in zip(away, remote)
                                            for task, result in zip(unit, outcome)))
    for task, result in results:
        tick = advance if task.ranking is not None else judged
        if result["error"]:
            report.problems.append(Problem(task.step, task.subject.removesuffix(f" {task.step}"), result["error"]))
            tick(1)
            continue
        if task.work is not None:
            store_ranking(store, task.work, loaded.ids, result["scores"], run_id)
            report.ranked += 1
            report.rankings.append(task.ranking)
        for work, (evaluation, problem) in zip(task.evaluations, result["evaluations"]):
            if problem is not None:
                report.problems.append(Problem(work.evaluator.name, task.subject, problem))
            else:
                store_evaluation(store, work, evaluation, run_id)
                report.evaluated += 1
        tick(1)


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
