"""Commands that read results: ``plugins``, ``compare`` and ``sql``."""

from __future__ import annotations

import click

from ..core.store import Ranking, Store, open_store
from ..registry import FAMILIES, get_registry
from .common import err, format_option, friendly_errors, out, show

# Which evaluation decides the "best" ranking shown in summaries, in order of priority.
BEST_BY = ("ranking-accuracy:accuracy", "rank-correlation:spearman")


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
@format_option
@click.option("--show-sql", is_flag=True, help="Print the SQL that builds the table, to reuse on the store.")
@click.pass_context
@friendly_errors
def compare(ctx, fmt: str, show_sql: bool) -> None:
    """The cross-method table: one row per method, one column per evaluation measure.

    \b
    Example:
        phenorank compare --format markdown > comparison.md
    """
    with open_store(ctx.obj["db"], read_only=True) as store:
        if show_sql:
            err.print(Store.COMPARISON_PIVOT)
        print_comparison(store, fmt)


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


def print_comparison(store: Store, fmt: str) -> None:
    columns, rows = store.comparison_pivot()
    if not rows:
        err.print("no evaluations stored yet: run `phenorank run` (or `phenorank demo`)")
        return
    show(columns, rows, fmt, title="Comparison of methods (higher accuracy / Spearman = better)")


def print_top_treatments(store: Store, rankings: list[Ranking], fmt: str, limit: int = 12) -> None:
    """The treatments of the best of these rankings, strongest effect first."""
    if not rankings:
        return
    values = store.ranking_values([r.ranking_id for r in rankings])

    def merit(ranking: Ranking) -> tuple:
        return tuple(values[ranking.ranking_id].get(m, float("-inf")) for m in BEST_BY)

    best = max(rankings, key=merit)
    columns, rows = store.treatment_summary(best.ranking_id)
    set_name = next((f"{s.encoder}/{s.head}" for s in store.embedding_sets()
                     if s.embedding_set_id == best.embedding_set_id), best.embedding_set_id)
    title = (f"Treatments by mean score ({set_name}, {best.ranker}, {best.metric}, "
             f"distance from {best.reference}, day {best.day if best.day is not None else 'all'})")
    show(columns, rows[:limit], fmt, title=title)
    if len(rows) > limit and fmt == "table":
        out.print(f"... {len(rows) - limit} more; all scores are in table `scores` (ranking_id {best.ranking_id})")


COMMANDS = [plugins, compare, sql]
