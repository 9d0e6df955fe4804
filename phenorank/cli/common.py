"""Helpers shared by the click commands: store access with run records, option parsing, output."""

from __future__ import annotations

import csv
import functools
import io
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import click
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..core.manifest import ManifestError
from ..core.pipeline import PipelineError, digest
from ..core.store import Store, StoreError, open_store
from ..registry.contracts import PluginError

# Piped output (a file, `less`, CI logs) gets wide tables rather than 80 columns of wrapped cells.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160))
err = Console(stderr=True, soft_wrap=True)
FORMATS = ("table", "csv", "markdown")


def friendly_errors(command):
    """Show expected failures (bad input, unknown plugin, ...) as one clear line, no traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (StoreError, ManifestError, PluginError, PipelineError) as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@contextmanager
def recorded_run(ctx: click.Context, command: str, params: dict) -> Iterator[tuple[Store, str]]:
    """Open the store for writing and record this command in ``runs`` with its outcome."""
    store = open_store(ctx.obj["db"], wait=ctx.obj.get("wait", 0.0))
    run_id = store.start_run(command, params, digest(command, params), __version__)
    try:
        yield store, run_id
    except BaseException as exc:
        # Ctrl-C is the user stopping the run, not a failure of its inputs
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish_run(run_id, status, f"{type(exc).__name__}: {exc}")
        store.close()
        raise
    store.finish_run(run_id, "ok")
    store.close()


def finish_demo(ctx: click.Context, out_dir, started: float, hints: Sequence[str]) -> None:
    """Write the demo's HTML report next to its images and say where it is, how long it all
    took, and what to try next."""
    import time

    from ..report import build_report

    with reading(ctx) as store:
        page = build_report(store, out_dir / "report.html")
    err.print(f"done in {time.perf_counter() - started:.1f} s. Open {page} in a browser for the plots. More:\n"
              + "\n".join(f"  {hint}" for hint in hints))


@contextmanager
def reading(ctx: click.Context, config: dict | None = None) -> Iterator[Store]:
    """The store opened read-only; when another process is writing it, a snapshot, said in one line."""
    with open_store(ctx.obj["db"], read_only=True, wait=ctx.obj.get("wait", 0.0), config=config) as store:
        if store.notice:
            err.print(f"[yellow]{store.notice}[/]")
        yield store


def split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def plugin_names(family: str, value: str | None) -> list[str]:
    """Comma-separated plugin names, or ``all`` for every registered plugin of the family."""
    if (value or "").strip() == "all":
        from ..registry import get_registry

        return get_registry().names(family)
    return split(value)


def parse_params(options: Sequence[str], takes: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """``("rank-correlation.truth=dose", ...)`` -> ``{"rank-correlation": {"truth": "dose"}}``.
    ``takes``: the plugins the command uses; a parameter for any other would be ignored, so it
    is refused."""
    params: dict[str, dict[str, str]] = {}
    for option in options:
        name, dot, rest = option.partition(".")
        key, eq, value = rest.partition("=")
        if not (dot and eq and name and key):
            raise click.BadParameter(f"{option!r} is not of the form PLUGIN.KEY=VALUE", param_hint="--param")
        params.setdefault(name, {})[key] = value
    unused = sorted(set(params) - set(takes)) if takes is not None else []
    if unused:
        raise click.BadParameter(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by this command "
                                 f"(it uses {', '.join(dict.fromkeys(takes)) or 'no plugins'}); the parameter would "
                                 "be ignored", param_hint="--param")
    return params


def resolve_day(store: Store, day: str) -> int | None:
    if day == "all":
        return None
    if day == "last":
        days = store.days()
        if not days:
            counts = store.table_counts()
            if counts["images"] or counts["profiles"]:
                return None  # items without days (cell images, imported profiles): all of them
            raise StoreError(f"{store.path} holds no images yet: run `phenorank ingest` first")
        return days[-1]
    try:
        return int(day)
    except ValueError:
        raise click.BadParameter(f"{day!r}: use a day number, 'last' or 'all'", param_hint="--day") from None


def show(columns: Sequence[str], rows: Sequence[Sequence], fmt: str = "table", title: str | None = None) -> None:
    """Print rows as a rich table, CSV or Markdown on stdout."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
        return
    cells = [[_cell(v) for v in row] for row in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        if title:
            lines.insert(0, f"**{title}**\n")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from .tables import layout, wrap

    names = [str(c) for c in columns]
    blocks = layout(names, cells, out.width)
    for number, (block, widths) in enumerate(blocks):
        caption = title if number == 0 else (f"(continued: columns {block[1] + 1}-{block[-1] + 1} of {len(names)}, "
                                             "rows in the same order)")
        caption = wrap(caption, out.width) if caption else None
        table = Table(title=caption, title_justify="left", header_style="bold")
        for j, w in zip(block, widths):
            table.add_column(wrap(names[j], w), width=w, no_wrap=True, overflow="ellipsis")
        for row in cells:
            table.add_row(*(wrap(row[j], w) for j, w in zip(block, widths)))
        out.print(table)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


cluster_option = click.option(
    "--cluster", metavar="local[:N] | tcp://HOST:PORT",
    help="Run the per-file work (and run's grid cells) on a Dask cluster: local:N starts N worker processes here, "
         "tcp://... joins a running scheduler (SLURM, Kubernetes); this process stays the only writer to the store "
         "[default: $PHENORANK_CLUSTER, else in this process].")


@contextmanager
def cluster_executor(option: str | None, **plugins) -> Iterator:
    """The executor of ``--cluster`` (None: in this process), its workers checked for the plugins."""
    from ..distributed import ClusterExecutor, cluster_from, connect

    spec = cluster_from(option)
    if spec is None:
        yield None
        return
    with connect(spec) as client:
        executor = ClusterExecutor(client)
        executor.check(**plugins)
        err.print(f"on the Dask cluster {spec}: {executor.workers} worker(s)")
        yield executor


format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="Output as a terminal table, CSV or Markdown.")
param_option = click.option("--param", "-p", "params", multiple=True, metavar="PLUGIN.KEY=VALUE",
                            help="Set a plugin parameter, e.g. rank-correlation.truth=concentration (repeatable).")
size_option = click.option("--size", default=96, show_default=True, type=click.IntRange(8, 2048),
                           help="Side of the preprocessed square images (as ingested), 8 to 2048 pixels.")
crops_option = click.option(
    "--crops", default="images", show_default=True,
    help="Which crops: 'images' (one per image, as ingested at --size), 'objects' (the newest crop set of "
         "`phenorank objects`) or a crop-set key (see `phenorank sql \"select * from crop_sets\"`).")


def resolve_crops(store: Store, crops: str, size: int) -> str:
    """The preprocess key of the crops a command works on."""
    from ..core.preprocess import PreprocessParams

    if crops == "images":
        sets = [s for s in store.crop_sets("image") if s["params"].get("size", size) == size]
        return sets[0]["preprocess_key"] if sets else PreprocessParams(size=size).key
    if crops == "objects":
        sets = store.crop_sets("object")
        if not sets:
            raise StoreError(f"{store.path} holds no object crops: run `phenorank objects` first")
        return sets[0]["preprocess_key"]
    known = [s["preprocess_key"] for s in store.crop_sets()]
    if crops not in known:
        raise StoreError(f"no crop set {crops!r}; use images, objects or one of: {', '.join(known) or 'none stored'}")
    return crops
