"""Commands that read results: ``plugins``, ``compare`` and ``sql``."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.store import Ranking, Store, open_store
from ..registry import FAMILIES, get_registry
from .common import err, format_option, friendly_errors, out, show, split


@click.command()
@click.option("--family", type=click.Choice(FAMILIES), help="Only this plugin family.")
@format_option
@friendly_errors
def plugins(family: str | None, fmt: str) -> None:
    """List every plugin: family, name, provider (distribution and entry point), description."""
    rows = [(p.family, p.name, p.provider, p.description) for p in get_registry().all()
            if family is None or p.family == family]
    show(["family", "name", "provider", "description"], rows, fmt)


@click.command()
@click.option("--rows", help="Pivot: dimensions down the side, e.g. encoder,head,ranker,metric.")
@click.option("--columns", help="Pivot: dimensions across the top, e.g. reference or augmentation.")
@click.option("--value", "measure", default="ranking-accuracy:accuracy", show_default=True,
              help="Pivot: the measure in the cells, EVALUATOR:NAME or NAME.")
@click.option("--where", help="SQL condition on the comparison view, e.g. \"encoder = 'simclr'\".")
@click.option("--ci", is_flag=True, help="Show the 95% interval next to each value: 0.958 [0.875, 1].")
@click.option("--best", is_flag=True,
              help="Pivot: where several results share a cell (a dimension or parameter left out), show the best "
                   "of them instead of adding what tells them apart to the rows.")
@format_option
@click.option("--show-sql", is_flag=True, help="Print the SQL that builds the table, to reuse on the store.")
@click.pass_context
@friendly_errors
def compare(ctx, rows, columns, measure, where, ci, best: bool, fmt: str, show_sql: bool) -> None:
    """The cross-method tables.

    Without --rows/--columns: one row per ranking method with a column per measure, then one row
    per embedding set with the measures of embeddings (linear probe, k-means, mAP). With them: a
    pivot like seed 000's tables, one measure in the cells. Dimensions: encoder, augmentation,
    model, head, level, ranker, metric, reference, day, evaluator.

    Every cell holds exactly one result: where results differ in something the table has no
    column for (a left-out dimension, a parameter such as rank-correlation's truth, the code
    version), that becomes a column; --best shows the best of them instead.

    \b
    Examples:
        phenorank compare --format markdown > comparison.md
        phenorank compare --rows head,reference --columns augmentation --value ranking-accuracy:accuracy
        phenorank compare --rows encoder,ranker,metric --columns reference --ci
        phenorank compare --rows encoder,head --columns evaluator --value euclidean_mean
    """
    with open_store(ctx.obj["db"], read_only=True) as store:
        if rows or columns:
            query = store.pivot_sql(split(rows), split(columns), measure, ci, where, best)
            if show_sql:
                err.print(query)
            names, found = store.query(query)
            if not found:
                err.print(f"no stored evaluation matches {measure!r}" + (f" where {where}" if where else ""))
                return
            show(names, found, fmt, title=f"{'best ' if best else ''}{measure} by {rows} x {columns}")
            return
        if show_sql:
            err.print(store.comparison_sql("rankings", ci, where) + "\n\n" + store.comparison_sql("embeddings", ci, where))
        print_comparison(store, fmt, ci, where)


@click.command()
@click.argument("query")
@click.option("--write", is_flag=True, help="Allow statements that change the store (default: read-only).")
@format_option
@click.pass_context
@friendly_errors
def sql(ctx, query: str, write: bool, fmt: str) -> None:
    """Run a SQL query on the store and print the result.

    \b
    Tables: images, crops, rejects, runs, embedding_sets, embeddings, rankings, scores,
    evaluations; view: comparison. Example:
        phenorank sql "select encoder, metric, evaluator, name, value from comparison"
    """
    import duckdb

    with open_store(ctx.obj["db"], read_only=not write) as store:
        try:
            columns, rows = store.query(query)
        except duckdb.Error as exc:
            raise click.ClickException(f"query failed: {exc}") from None
    if columns:
        show(columns, rows, fmt)


def print_comparison(store: Store, fmt: str, ci: bool = False, where: str | None = None) -> None:
    """The rankings table, then one table per evaluator of embeddings (their measures differ).
    Per-strength details such as robustness's ``noise_3_movement`` stay in the store."""
    shown = False
    columns, rows = store.comparison_pivot("rankings", ci, where)
    if rows:
        show(columns, rows, fmt, title="Rankings (accuracy: seed 000's three-class separation; spearman: vs the truth)")
        shown = True
    for evaluator in store.evaluators("embeddings"):
        condition = f"evaluator = '{evaluator}' AND NOT regexp_matches(name, '_[0-9]+_')"
        columns, rows = store.comparison_pivot("embeddings", ci, f"({where}) AND {condition}" if where else condition)
        if rows:
            show(columns, rows, fmt, title=f"Embeddings judged by {evaluator}")
            shown = True
    if not shown:
        err.print("no evaluations stored yet: run `phenorank run` (or `phenorank demo`)")


def print_top_treatments(store: Store, rankings: list[Ranking], fmt: str, limit: int = 12) -> None:
    """The treatments of the best of these rankings (by ranking accuracy, then Spearman),
    strongest effect first, with 95% bootstrap intervals over their wells."""
    from ..core.statistics import group_means

    if not rankings:
        return
    wanted = {r.ranking_id: r for r in rankings}
    best_id = next((m["ranking_id"] for m in store.ranked_methods() if m["ranking_id"] in wanted),
                   rankings[0].ranking_id)  # unevaluated rankings (`phenorank rank`): the first
    best = wanted[best_id]
    ids, scores = store.load_scores(best.ranking_id)
    groups = group_means(scores, store.load_samples(ids))
    set_name = next((f"{s.encoder}/{s.head}" for s in store.embedding_sets()
                     if s.embedding_set_id == best.embedding_set_id), best.embedding_set_id)
    title = (f"Treatments by mean score ({set_name}, {best.ranker}, {best.metric}, "
             f"distance from {best.reference}, day {best.day if best.day is not None else 'all'}), "
             f"95% interval over wells")
    rows = [(g["condition"], g["treatment"], g["concentration"], g["wells"], g["mean"], g["low"], g["high"])
            for g in groups]
    show(["condition", "treatment", "concentration", "wells", "mean_score", "ci_low", "ci_high"], rows[:limit],
         fmt, title=title)
    if len(rows) > limit and fmt == "table":
        out.print(f"... {len(rows) - limit} more; all scores are in table `scores` (ranking_id {best.ranking_id})")


@click.command()
@click.option("--out", "out_path", default="report.html", show_default=True, type=click.Path(path_type=Path),
              help="The HTML file to write.")
@click.option("--top", default=3, show_default=True, help="How many of the best rankings get a strip plot.")
@click.option("--projection", type=click.Choice(["pca", "umap"]), default="pca", show_default=True,
              help="2-D projection of the best ranking's embeddings.")
@click.pass_context
@friendly_errors
def report(ctx, out_path: Path, top: int, projection: str) -> None:
    """Write one self-contained HTML page: comparison tables, the best rankings' scores per class,
    a 2-D projection of the embeddings, plate heatmaps and the ranked treatments with 95% intervals.

    \b
    Example:
        phenorank report --out report.html && xdg-open report.html
    """
    from ..report import build_report

    with open_store(ctx.obj["db"], read_only=True) as store:
        path = build_report(store, out_path, top, projection)
    err.print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); open it in a browser")


COMMANDS = [plugins, compare, sql, report]
