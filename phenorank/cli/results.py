"""Commands that read results: ``plugins``, ``compare`` and ``sql``."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.store import Ranking, Store, open_store
from ..registry import FAMILIES, get_registry
from .common import err, format_option, friendly_errors, out, reading, show, split


@click.command()
@click.option("--family", type=click.Choice(FAMILIES), help="Only this plugin family.")
@click.option("--params", "params_of", metavar="[FAMILY/]NAME",
              help="One plugin's parameters: default, type and meaning (the docstring's sentences naming it); set "
                   "them with -p NAME.KEY=VALUE.")
@format_option
@friendly_errors
def plugins(family: str | None, params_of: str | None, fmt: str) -> None:
    """List every plugin: family, name, provider (distribution and entry point), description.

    \b
    Examples:
        phenorank plugins --family ranker
        phenorank plugins --params centroid
        phenorank plugins --params evaluator/map
    """
    registry = get_registry()
    if params_of:
        wanted_family, _, name = params_of.rpartition("/")
        found = [p for p in registry.all() if p.name == name and (not wanted_family or p.family == wanted_family)]
        if not found:
            raise click.ClickException(f"no plugin named {params_of!r}; `phenorank plugins` lists them")
        if len(found) > 1:
            raise click.ClickException(f"{name!r} names a {' and a '.join(p.family for p in found)}: say which, "
                                       f"e.g. {found[0].family}/{name}")
        info = found[0]
        show(["parameter", "default", "type", "meaning"], info.parameters(), fmt,
             title=f"{info.family} {info.name}: {info.description}")
        return
    rows = [(p.family, p.name, p.provider, p.description) for p in registry.all()
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
    model, head, level, ranker, metric, reference, day, evaluator. Then, where `phenorank potency`
    has run, the EC50 of each treatment per readout.

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
    with reading(ctx) as store:
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


# Statements the console runs without --write: they read the store and write nothing anywhere.
READING_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA", "CALL", "RELATION")


@click.command()
@click.argument("query")
@click.option("--write", is_flag=True, help="Allow statements that change the store or files (default: read-only).")
@click.option("--allow-files", is_flag=True,
              help="Let read-only queries read other files (read_csv, read_parquet, glob ...); they still write none.")
@format_option
@click.pass_context
@friendly_errors
def sql(ctx, query: str, write: bool, allow_files: bool, fmt: str) -> None:
    """Run a SQL query on the store and print the result.

    Without --write nothing can change: the store is opened read-only, DuckDB's access to other
    files is off (unless --allow-files, which reads but never writes them), settings are locked,
    and only reading statements run (no COPY, EXPORT, ATTACH, INSTALL, LOAD, SET).

    Tables: {tables}. Views: {views}. (The README's "The store" says what a row of each is.)

    \b
    Example:
        phenorank sql "select encoder, metric, evaluator, name, value from comparison"
    """
    import duckdb

    if write:
        store_context = open_store(ctx.obj["db"], wait=ctx.obj.get("wait", 0.0))
    else:
        try:
            kinds = [statement.type.name for statement in duckdb.extract_statements(query)]
        except duckdb.Error as exc:
            raise click.ClickException(f"query failed: {exc}") from None
        refused = sorted({kind for kind in kinds if kind not in READING_STATEMENTS})
        if refused:
            raise click.ClickException(f"read-only: {', '.join(refused)} statements need --write")
        config = {"lock_configuration": True}
        if not allow_files:
            config["enable_external_access"] = False
        store_context = reading(ctx, config)
    with store_context as store:
        try:
            columns, rows = store.query(query)
        except duckdb.PermissionException as exc:
            raise click.ClickException(f"read-only: {exc} (--allow-files lets queries read other files)") from None
        except duckdb.Error as exc:
            raise click.ClickException(f"query failed: {exc}") from None
    if columns:
        show(columns, rows, fmt)


def _list_schema() -> None:
    from ..core.schema import schema_objects

    tables, views = schema_objects()
    sql.help = sql.help.replace("{tables}", ", ".join(tables)).replace("{views}", ", ".join(views))


_list_schema()


def print_comparison(store: Store, fmt: str, ci: bool = False, where: str | None = None) -> None:
    """The rankings table, then one table per evaluator of embeddings (their measures differ).
    Per-strength details such as robustness's ``noise_3_movement`` stay in the store."""
    from .tables import compact

    def readable(columns, rows):  # CSV and Markdown keep every column as stored
        return compact(columns, rows) if fmt == "table" else (columns, rows)

    shown = False
    columns, rows = store.comparison_pivot("rankings", ci, where)
    if rows:
        show(*readable(columns, rows), fmt,
             title="Rankings (accuracy: seed 000's three-class separation; spearman: vs the truth)")
        shown = True
    for evaluator in store.evaluators("embeddings"):
        condition = f"evaluator = '{evaluator}' AND NOT regexp_matches(name, '_[0-9]+_')"
        columns, rows = store.comparison_pivot("embeddings", ci, f"({where}) AND {condition}" if where else condition)
        if rows:
            show(*readable(columns, rows), fmt, title=f"Embeddings judged by {evaluator}")
            shown = True
    columns, rows = store.potency_summary()
    if rows and not where:
        show(columns, rows, fmt, title="Potency: EC50 [95% interval] per readout and treatment (phenorank potency; "
                                       "SQL: select * from potency)")
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
    es = store.embedding_set(best.embedding_set_id)
    set_name = f"{es.encoder}/{es.head}" if es else best.embedding_set_id
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
    import os

    from ..report import build_report

    folder = out_path.parent if str(out_path.parent) else Path(".")
    if not folder.is_dir():
        raise click.ClickException(f"--out {out_path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (out_path.exists() and not os.access(out_path, os.W_OK)):
        raise click.ClickException(f"--out {out_path}: cannot write there (permission denied)")
    with reading(ctx) as store:
        path = build_report(store, out_path, top, projection)
    err.print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); open it in a browser")


COMMANDS = [plugins, compare, sql, report]
