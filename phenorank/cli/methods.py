"""Commands that compute: ``embed``, ``rank``, ``evaluate`` and the grid ``run``."""

from __future__ import annotations

import click

from ..core.grid import GridReport, GridSpec, Problem, aggregate_skip, run_grid
from ..core.pipeline import PipelineError, embed as run_embed, evaluate as run_evaluate, rank as run_rank
from ..core.progress import progress_bar, progress_steps
from ..core.training import runnable_encoders, trained_encoders
from ..io.profiles import ENCODER as PROFILE_ENCODER
from ..registry import PluginError, get_registry
from .common import (cluster_executor, cluster_option, crops_option, err, format_option, friendly_errors, param_option, parse_params, plugin_names,
                     recorded_run, resolve_crops, resolve_day, show, size_option, split)
from ..analysis.stored import qc_rankings
from .results import print_comparison, print_top_treatments

day_option = click.option("--day", default="last", show_default=True,
                          help="Which images to rank: a day number, 'last' (the latest day) or 'all'.")


@click.command()
@click.option("--encoder", "encoders", required=True,
              help="Encoder name(s), comma-separated; a trained one as NAME, NAME:AUGMENTATION or a model id.")
@click.option("--batch-size", default=64, show_default=True, help="Images per encoder call (memory vs speed).")
@size_option
@crops_option
@param_option
@cluster_option
@click.pass_context
@friendly_errors
def embed(ctx, encoders: str, batch_size: int, size: int, crops: str, params, cluster) -> None:
    """Embed every ingested image (or object crop) with the given encoders; what is embedded
    already is skipped.

    \b
    Examples:
        phenorank embed --encoder raw,morphometrics
        phenorank embed --encoder raw --crops objects
    """
    registry = get_registry()
    overrides = parse_params(params, [t.partition(":")[0] for t in plugin_names("encoder", encoders)])
    with recorded_run(ctx, "embed", {"encoders": encoders, "size": size, "params": overrides}) as (store, run_id):
        tokens = runnable_encoders(store, registry) if encoders.strip() == "all" else split(encoders)
        plugins = [e for token in tokens
                   for e in trained_encoders(store, registry, token, overrides.get(token.partition(":")[0]))]
        rows = []
        with cluster_executor(cluster, encoder=plugins) as remote:
            for encoder in plugins:
                with progress_steps() as steps:
                    sets, computed = run_embed(store, encoder, resolve_crops(store, crops, size), run_id, batch_size,
                                               progress=lambda total, name=encoder.name: steps(f"embed {name}", total),
                                               executor=remote)
                rows += [(s.encoder, s.head, s.level, s.dim, computed, s.embedding_set_id) for s in sets]
    show(["encoder", "head", "level", "dim", "computed now", "embedding set"], rows)


@click.command()
@click.option("--encoder", required=True, help="Encoder whose embeddings to rank.")
@click.option("--head", help="Embedding head (default: the encoder's first).")
@click.option("--metric", default="cosine", show_default=True, help="Metric plugin the ranker measures with.")
@click.option("--ranker", default="centroid", show_default=True, help="Ranker plugin that turns embeddings into scores.")
@click.option("--reference", default="control", show_default=True, help="Class the scores measure distance from.")
@click.option("--holdout", default="holdout", show_default=True,
              help="Metadata column (true/false) of the hold-out set: the ranker is fitted without those images.")
@day_option
@size_option
@crops_option
@click.option("--level", help="Rank a stored aggregate of the encoder's embeddings instead, e.g. sample:median "
                              "(see `phenorank aggregate`).")
@param_option
@click.option("--force", is_flag=True, help="Recompute even if an identical ranking is stored.")
@format_option
@click.pass_context
@friendly_errors
def rank(ctx, encoder, head, metric, ranker, reference, holdout, day, size, crops, level, params, force, fmt) -> None:
    """Score images by one ranker and metric on one encoder's embeddings; print the top of the list.

    \b
    Example:
        phenorank rank --encoder morphometrics --metric euclidean --reference control
    """
    overrides = parse_params(params, [encoder, ranker, metric])
    registry = get_registry()
    enc = registry.create("encoder", encoder, overrides.get(encoder))
    head = head or enc.heads[0]
    if head not in enc.heads:
        raise PluginError(f"encoder {encoder!r} has no head {head!r} (heads: {', '.join(enc.heads)})")
    rnk = registry.create("ranker", ranker, overrides.get(ranker))
    met = None if rnk.metrics == () else registry.create("metric", metric, overrides.get(metric))
    if met is not None and not rnk.takes(met.name):
        raise PluginError(f"ranker {ranker!r} takes metric {', '.join(rnk.metrics)}, not {metric!r}")
    with recorded_run(ctx, "rank", {"encoder": encoder, "head": head, "metric": metric, "ranker": ranker,
                                    "reference": reference, "day": day, "params": overrides}) as (store, run_id):
        if level:
            es = next((s for s in store.embedding_sets(encoder, head) if s.level == level), None)
            if es is None:
                levels = sorted({s.level for s in store.embedding_sets(encoder, head)})
                raise PluginError(f"no {encoder}/{head} embeddings at level {level!r}; stored: {', '.join(levels) or 'none'}")
        else:
            sets, _ = run_embed(store, enc, resolve_crops(store, crops, size), run_id)
            es = next(s for s in sets if s.head == head)
        ranking, computed = run_rank(store, es, rnk, met, reference, resolve_day(store, day), run_id, force,
                                     holdout or None)
        err.print(f"ranking {ranking.ranking_id} computed" if computed else
                  f"ranking {ranking.ranking_id} reused: stored already for the same images, parameters and code "
                  "(--force recomputes it)")
        print_top_treatments(store, [ranking], fmt)


@click.command()
@click.option("--evaluator", "evaluators", default="ranking-accuracy,rank-correlation", show_default=True,
              help="Evaluator name(s), comma-separated.")
@click.option("--ranking", "ranking_ids", multiple=True, help="Ranking id(s) to evaluate (default: all stored).")
@click.option("--level", "levels", help="Only embedding sets of these levels (comma-separated: image, object, "
                                        "image:mean, sample:median, ...). Default: every set.")
@day_option
@param_option
@click.option("--force", is_flag=True, help="Recompute evaluations that are already stored.")
@format_option
@click.pass_context
@friendly_errors
def evaluate(ctx, evaluators, ranking_ids, levels, day, params, force, fmt) -> None:
    """Evaluate stored rankings (evaluators of scores) and embedding sets (evaluators of
    embeddings, on the images of --day), then print the comparison tables.

    \b
    Examples:
        phenorank evaluate --evaluator rank-correlation -p rank-correlation.truth=concentration
        phenorank evaluate --evaluator kmeans-accuracy -p kmeans-accuracy.balance=min
        phenorank evaluate --evaluator clustering-kmeans,clustering-gmm --level sample:median
    """
    names = plugin_names("evaluator", evaluators)
    overrides = parse_params(params, names)
    registry = get_registry()
    plugins = [registry.create("evaluator", name, overrides.get(name)) for name in names]
    with recorded_run(ctx, "evaluate", {"evaluators": evaluators, "rankings": list(ranking_ids), "day": day,
                                        "params": overrides}) as (store, run_id):
        rankings = store.rankings(ranking_ids or None)
        of_scores = [e for e in plugins if e.needs == "scores"]
        of_embeddings = [e for e in plugins if e.needs != "scores"]
        # a level can hold commas itself (treatment,concentration:median)
        sets = [s for s in store.embedding_sets() if not levels or s.level in split(levels) or s.level == levels.strip()
                ] if of_embeddings else []
        report = GridReport()
        day_value = resolve_day(store, day) if sets else None
        with progress_bar("evaluate", len(rankings) * len(of_scores) + len(sets) * len(of_embeddings)) as advance:
            for ranking in rankings:
                for evaluator in of_scores:
                    _evaluate_one(report, evaluator, f"ranking {ranking.ranking_id}", store, run_id,
                                  ranking=ranking, force=force)
                    advance(1)
            for es in sets:
                for evaluator in of_embeddings:
                    note = aggregate_skip(evaluator, es)  # as the grid does: a note, not an error
                    if note:
                        report.skipped.append(note)
                        advance(1)
                        continue
                    _evaluate_one(report, evaluator, f"{es.encoder}/{es.head} {es.level}", store, run_id,
                                  embedding_set=es, day=day_value, force=force)
                    advance(1)
        print_grid_report(report)
        print_reused(0, report.reused_evaluations)
        print_comparison(store, fmt)
        fail_on_wrong_request(report)


def _evaluate_one(report: GridReport, evaluator, subject: str, store, run_id: str, **kwargs) -> None:
    report.attempt(evaluator.name)
    try:
        done = run_evaluate(store, evaluator, run_id, **kwargs)
    except (PluginError, PipelineError) as exc:
        report.problems.append(Problem(evaluator.name, subject, str(exc)))
        return
    report.evaluated += done is not None
    report.reused_evaluations += done is None


@click.command()
@click.option("--encoders", default="raw,morphometrics", show_default=True,
              help="Encoder names, trained models (NAME:AUGMENTATION or a model id), or 'all' (every encoder that "
                   "runs here: trainable ones with a trained model, ImageNet ones with their weights).")
@click.option("--heads", help="Only these embedding heads (default: every head of each encoder).")
@click.option("--metrics", default="cosine,euclidean", show_default=True, help="Metric names, or 'all'.")
@click.option("--rankers", default="centroid", show_default=True, help="Ranker names, or 'all'.")
@click.option("--references", default="control", show_default=True,
              help="Reference classes (each ranking measures distance from one).")
@click.option("--evaluators", default="ranking-accuracy,rank-correlation", show_default=True,
              help="Evaluator names, or 'all'.")
@click.option("--holdout", default="holdout", show_default=True,
              help="Metadata column (true/false) of the hold-out set: rankers are fitted without those images.")
@click.option("--transforms", "chains", multiple=True, metavar="CHAINS",
              help="Transform chains applied to every embedding set before ranking, separated by | (none = "
                   "untransformed), e.g. 'none|standardize|robustize,spherize'.")
@click.option("--normalize-to", help="The rows transforms are fitted on (a condition or treatment value) "
                                     "[default: the first of --references].")
@day_option
@size_option
@crops_option
@param_option
@click.option("--qc-control", default="control", show_default=True,
              help="Plate QC of every ranking against this negative control (a condition or treatment).")
@click.option("--qc-positive", help="The positive control class for the QC's Z'-factor and SSMD.")
@click.option("--qc-limit", "qc_limits", multiple=True, metavar="NAME=VALUE",
              help="A QC limit: z_prime (min), ssmd (min |SSMD|), control_cv (max), edge_p (min); e.g. z_prime=0.5.")
@click.option("--force", is_flag=True, help="Recompute what is already stored.")
@cluster_option
@format_option
@click.pass_context
@friendly_errors
def run(ctx, encoders, heads, metrics, rankers, references, evaluators, holdout, chains, normalize_to, day, size,
        crops, params, qc_control, qc_positive, qc_limits, force, cluster, fmt) -> None:
    """Run a grid: every encoder x head x metric x ranker x reference, each evaluated.

    What is already stored is reused, so an interrupted grid continues where it stopped.

    \b
    Examples:
        phenorank run --encoders raw,morphometrics --metrics cosine,euclidean \\
                      --references control,single_dose -p rank-correlation.truth=effect
        phenorank run --metrics all --rankers all --evaluators all \\
                      --references control,single_dose,exploded
        phenorank run --encoders profiles --transforms 'none|robustize,spherize' --references DMSO \\
                      --evaluators nsc-accuracy,map -p map.control=DMSO
    """
    from .profiles import parse_chains, selected_sets

    tokens = split(encoders)
    limits = parse_limits(qc_limits)
    imported = [t for t in tokens if t.partition(":")[0] == PROFILE_ENCODER]
    spec = GridSpec(encoders=[t for t in tokens if t not in imported], metrics=plugin_names("metric", metrics),
                    rankers=plugin_names("ranker", rankers), references=split(references),
                    evaluators=plugin_names("evaluator", evaluators),
                    preprocess_key="", heads=split(heads) or None, force=force, holdout=holdout or None,
                    transforms=parse_chains(chains), transform_reference=normalize_to or (split(references) or [None])[0])
    spec.params = parse_params(params, [t.partition(":")[0] for t in plugin_names("encoder", encoders)]
                               + spec.metrics + spec.rankers + spec.evaluators
                               + [n for chain in spec.transforms for n in chain])
    with recorded_run(ctx, "run", {**spec.__dict__, "crops": crops, "size": size, "day": day}) as (store, run_id):
        spec.stored_sets = selected_sets(store, ",".join(imported)) if imported else []
        spec.preprocess_key = resolve_crops(store, crops, size) if spec.encoders or encoders.strip() == "all" else ""
        # profiles alone have no images, and so no latest day to default to
        spec.day = resolve_day(store, day) if spec.preprocess_key or day != "last" else None
        if encoders.strip() == "all":
            spec.encoders, spec.every_encoder = runnable_encoders(store, get_registry()), True
        with cluster_executor(cluster) as remote, progress_steps() as steps:  # the embedding goes to the cluster
            report = run_grid(store, get_registry(), spec, run_id, progress=steps, executor=remote)
        print_grid_report(report)
        transformed = f"transformed {report.transformed} set(s), " if spec.transforms else ""
        err.print(f"embedded {report.embedded} images, {transformed}computed {report.ranked} rankings and "
                  f"{report.evaluated} evaluations")
        print_reused(report.reused, report.reused_evaluations)
        print_comparison(store, fmt)
        for warning in qc_rankings(store, report.rankings, run_id, qc_control, qc_positive, limits, spec.day):
            err.print(f"[yellow]{warning}[/]")
        fail_on_wrong_request(report)


def parse_limits(values) -> dict[str, float | None]:
    from ..analysis.qc import DEFAULT_LIMITS

    limits = {}
    for value in values:
        name, _, number = value.partition("=")
        if name.strip() not in DEFAULT_LIMITS:
            raise click.BadParameter(f"{value!r}: the limits are {', '.join(DEFAULT_LIMITS)}", param_hint="--qc-limit")
        try:
            limits[name.strip()] = None if number.strip().lower() == "none" else float(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: {number!r} is neither a number nor 'none' (not checked)",
                                     param_hint="--qc-limit") from None
    return limits


def print_reused(rankings: int, evaluations: int) -> None:
    """Say what was not recomputed, and how to recompute it."""
    if rankings or evaluations:
        err.print(f"reused {rankings} ranking(s) and {evaluations} evaluation(s) stored for the same images, "
                  "parameters and code (the plugin's version and source); --force recomputes them")


def print_grid_report(report: GridReport) -> None:
    """Each distinct problem once, with how many subjects it hit (not one line per subject)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for problem in report.problems:
        grouped.setdefault((problem.step, problem.message), []).append(problem.subject)
    for (step, message), subjects in grouped.items():
        where = subjects[0] if len(subjects) == 1 else f"{len(subjects)} subjects (e.g. {subjects[0]})"
        err.print(f"[yellow]skipped[/] {step} on {where}: {message}")
    for ranker, metrics in report.not_applicable.items():
        err.print(f"[dim]{ranker} does not take metric(s) {', '.join(metrics)}: those cells were not run[/]")
    for line in report.skipped:
        err.print(f"[dim]{line}[/]")


def fail_on_wrong_request(report: GridReport) -> None:
    """A step that could run on none of its subjects was asked for wrongly (a misspelt column, a
    reference class without images): that is an error, not a quiet success."""
    wrong = report.failed_everywhere()
    if wrong:
        messages = {p.step: p.message for p in report.problems}
        raise click.ClickException("; ".join(f"{step} could not run on any of its {report.attempts[step]} "
                                             f"subject(s): {messages[step]}" for step in wrong))


COMMANDS = [embed, rank, evaluate, run]
