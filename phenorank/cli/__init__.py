"""The ``phenorank`` command line: thin click commands that parse, call core, and print."""

from __future__ import annotations

import importlib

import click

from .. import __version__
from ..core.store import DEFAULT_PATH

# Each command and the module of this package that defines it, imported when the command is asked
# for: `phenorank ingest` does not import pandas, Jinja2 or the training stack for the commands it
# is not (every module at start-up was a third of a one-file ingest).
COMMAND_MODULES = {
    "ingest": "data", "demo": "data",
    "import-profiles": "profiles", "transform": "profiles", "export": "profiles",
    "embed": "methods", "rank": "methods", "evaluate": "methods", "run": "methods",
    "train": "training",
    "objects": "cells", "aggregate": "cells",
    "potency": "analysis", "hits": "analysis", "qc": "analysis", "qc-images": "analysis",
    "plugins": "results", "compare": "results", "sql": "results", "report": "results",
}


class LazyGroup(click.Group):
    """A group whose built-in commands are imported on first use (plugins add theirs as usual)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            module = importlib.import_module(f"{__name__}.{COMMAND_MODULES[name]}")
            for command in module.COMMANDS:
                self.commands.setdefault(command.name, command)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="PHENORANK_DB", default=DEFAULT_PATH, show_default=True,
              help="The DuckDB store (also from $PHENORANK_DB).")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="SECONDS",
              help="When another phenorank process is writing the store: how long to wait for it. Readers "
                   "that do not wait read a snapshot of what it has saved.")
@click.version_option(__version__, prog_name="phenorank")
@click.pass_context
def cli(ctx: click.Context, db: str, wait: float) -> None:
    """Rank treatments by what they do to spheroids and cells in microscopy images.

    \b
    Quick start on a generated (synthetic) plate:
        phenorank demo
    Your own plate:
        phenorank ingest images/ --manifest manifest.csv
        phenorank run --encoders raw,morphometrics --metrics cosine,euclidean
        phenorank compare
    Cell images in class folders (on generated cells: phenorank demo --kind cells):
        phenorank ingest cells/ --folders --pattern '{sample}_f{field}.tif' --loader tiff-channels
        phenorank objects && phenorank embed --encoder raw --crops objects
        phenorank aggregate --encoder raw --to image && phenorank evaluate --evaluator clustering-kmeans
    Profiles made elsewhere (CellProfiler, pycytominer; on a generated screen: phenorank demo --kind profiles):
        phenorank import-profiles profiles.csv.gz --name screen
        phenorank run --encoders profiles --transforms 'none|robustize,spherize' --references DMSO \
                      --evaluators nsc-accuracy,map -p map.control=DMSO
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["wait"] = wait


def add_plugin_commands() -> None:
    """Let every loaded plugin add its commands (the ``register_commands`` hook)."""
    from ..registry import get_registry

    get_registry().pm.hook.register_commands(cli=cli)


def main() -> None:
    from ..registry import PluginError

    try:
        add_plugin_commands()
    except PluginError as exc:  # a broken plugin installation: say which, without a traceback
        raise SystemExit(f"Error: {exc}") from None
    cli()
