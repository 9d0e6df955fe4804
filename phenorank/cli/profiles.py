"""Commands for feature profiles: ``import-profiles`` (tables made elsewhere), ``transform``
(normalize, whiten, select, correct batches), ``export`` (Parquet, AnnData) and the profiles demo
(``phenorank demo --kind profiles``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..core.grid import GridSpec, run_grid
from ..core.progress import progress_bar, progress_steps
from ..core.store import EmbeddingSet, Store
from ..core.transform import apply_chain
from ..io.export import FORMATS as EXPORT_FORMATS
from ..io.profiles import ENCODER, LEVELS, ProfileError, import_profiles
from ..registry import PluginError, get_registry
from .common import err, finish_demo, friendly_errors, param_option, parse_params, recorded_run, show, split


def parse_chains(values) -> list[list[str]]:
    """``("none|standardize", "robustize,spherize")`` -> ``[[], ["standardize"], ["robustize", "spherize"]]``:
    chains separated by ``|`` (or given as repeated options), transforms within one by commas."""
    chains = []
    for value in values:
        for chain in str(value).split("|"):
            names = [n for n in split(chain) if n != "none"]
            if chain.strip() and names not in chains:
                chains.append(names)
    return chains


def selected_sets(store: Store, encoders: str, head: str | None = None, level: str | None = None,
                  transforms: str | None = None) -> list[EmbeddingSet]:
    """Stored embedding sets of the given encoders (``profiles`` or ``profiles:NAME`` for imported
    profile datasets), of one level when given, made by the transform chain ``transforms``
    (None: untransformed)."""
    found = []
    for token in split(encoders):
        name, _, dataset = token.partition(":")
        stored = store.embedding_sets(name, dataset or head)
        sets = [s for s in stored if s.transforms == transforms and (level is None or s.level == level)]
        if not sets:
            known = sorted({f"{s.encoder}/{s.head} {s.level} ({s.transforms or 'untransformed'})" for s in
                            (stored or store.embedding_sets())})
            raise PluginError(f"no stored embeddings of {token}" + (f" at level {level!r}" if level else "") +
                              f" made by transforms {transforms or 'none'}; stored: {', '.join(known) or 'none'}")
        found += sets
    return found


@click.command("import-profiles")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Dataset name: the embedding set's head, `--encoders profiles:NAME` [default: file stem].")
@click.option("--level", type=click.Choice(LEVELS), help="What one row is [default: a phenorank export's level, "
                                                         "else well].")
@click.option("--metadata", help="More metadata columns (comma-separated), besides Metadata_* / Image_Metadata_* "
                                 "and CellProfiler's ImageNumber, ObjectNumber, TableNumber.")
@click.option("--plate", help="Metadata column of the plate [default: Metadata_Plate or similar].")
@click.option("--well", help="Metadata column of the well [default: Metadata_Well].")
@click.option("--treatment", help="Metadata column of the treatment (compound) [default: Metadata_Compound, "
                                  "_Treatment, _broad_sample, _pert_iname, ...].")
@click.option("--concentration", help="Metadata column of the concentration [default: Metadata_Concentration, _Dose, "
                                      "_mmoles_per_liter].")
@click.option("--condition", help="Metadata column of the condition (control type) [default: the treatment itself, "
                                  "so --references DMSO works].")
@click.option("--table", "sqlite_table", help="CellProfiler SQLite: the table to import [default: Per_Image; an "
                                              "object table such as Per_Cells gets its image's metadata].")
@click.option("--drop-bad-features", is_flag=True, help="Leave out features with NaN, infinite or constant values "
                                                        "(listed) instead of refusing the table.")
@click.pass_context
@friendly_errors
def import_profiles_command(ctx, path, name, level, metadata, plate, well, treatment, concentration, condition,
                            sqlite_table, drop_bad_features) -> None:
    """Import profiles made elsewhere (CellProfiler, DeepProfiler, pycytominer): CSV, CSV.gz,
    Parquet (a file, or a folder of them such as `phenorank export`'s) or a CellProfiler SQLite
    file, one row per well, image or cell.

    The rows become items of the store (table `profiles`, view `items`) with their plate, well,
    treatment and concentration, every metadata column kept under its own name; the features
    become one embedding set (encoder `profiles`, head = the dataset's name) that `transform`,
    `run`, `rank`, `evaluate`, `compare` and `report` use like embeddings of images. Importing the
    same table again stores nothing new; a changed table replaces the dataset.

    \b
    Examples:
        phenorank import-profiles plate_profiles.csv.gz --name screen
        phenorank import-profiles cp_export.sqlite --table Per_Cells --level cell
        phenorank import-profiles profiles.parquet --treatment Metadata_broad_sample
    """
    fields = {"plate": plate, "well": well, "treatment": treatment, "concentration": concentration,
              "condition": condition}
    with recorded_run(ctx, "import-profiles", {"path": str(path), "name": name, "level": level,
                                               "metadata": metadata, "fields": fields}) as (store, run_id):
        try:
            report = import_profiles(store, path, name, level, split(metadata), fields, sqlite_table,
                                     drop_bad_features, run_id)
        except ProfileError as exc:
            raise click.ClickException(str(exc)) from None
    for line in report.dropped:
        err.print(f"[yellow]left out feature {line}[/]")
    level = report.embedding_set.level
    err.print(f"{'imported' if report.stored else 'already stored, nothing new'}: {report.rows} {level} rows x "
              f"{report.features} features, {report.plates} plate(s), {report.treatments} treatments; fields: "
              + ", ".join(f"{k} <- {v}" for k, v in report.fields.items()))
    show(["encoder", "head", "level", "dim", "embedding set"],
         [(ENCODER, report.dataset, level, report.features, report.embedding_set.embedding_set_id)])


@click.command()
@click.option("--encoder", "encoders", required=True,
              help="Whose embeddings: encoder name(s), or profiles / profiles:NAME for imported profiles.")
@click.option("--head", help="Only this head (default: every head).")
@click.option("--level", help="Only sets of this level (image, object, well, an aggregate such as sample:median).")
@click.option("--transforms", "chains", multiple=True, required=True, metavar="CHAIN",
              help="A chain of transforms applied in order, e.g. robustize,select,spherize; several chains "
                   "separated by | or given as repeated options.")
@click.option("--reference", help="The rows transforms are fitted on: a condition or treatment value (DMSO, control).")
@param_option
@click.option("--force", is_flag=True, help="Recompute sets that are already stored.")
@click.pass_context
@friendly_errors
def transform(ctx, encoders, head, level, chains, reference, params, force) -> None:
    """Normalize, whiten, select features or correct batches: each chain makes a new embedding
    set whose key holds its source, the chain with its parameters, and the reference rows.

    \b
    Examples:
        phenorank transform --encoder profiles --transforms robustize,select,spherize --reference DMSO
        phenorank transform --encoder raw --transforms 'standardize|pca,harmony' --reference control \\
                            -p pca.components=20 -p standardize.by=plate
    """
    parsed = [c for c in parse_chains(chains) if c]
    overrides = parse_params(params, [n for chain in parsed for n in chain])
    registry = get_registry()
    rows = []
    with recorded_run(ctx, "transform", {"encoders": encoders, "chains": parsed, "reference": reference,
                                         "params": overrides}) as (store, run_id):
        for source in selected_sets(store, encoders, head, level):
            for chain in parsed:
                plugins = [registry.create("transform", n, overrides.get(n)) for n in chain]
                result, computed = apply_chain(store, source, plugins, reference, run_id, force)
                rows.append((result.encoder, result.head, result.level, result.transforms, result.dim,
                             "now" if computed else "stored", result.embedding_set_id))
    show(["encoder", "head", "level", "transforms", "dim", "computed", "embedding set"], rows)


PROFILE_EVALUATORS = ("nsc-accuracy", "map")
PROFILE_CHAINS = ([], ["standardize"], ["robustize"], ["robustize", "spherize"], ["robustize", "select", "spherize"],
                  ["pca", "harmony"])


def profiles_demo(ctx, out_dir: Path, seed: int) -> None:
    """Generate a multi-plate profile screen, import it, run transform chains x evaluators, and
    print which chain recovers mechanism and activity."""
    from ..datasets.profiles import ProfileSpec, write_profiles

    started = time.perf_counter()
    spec = ProfileSpec(seed=seed)
    table = out_dir / "profiles.csv.gz"
    stamp = out_dir / "spec.json"
    wanted = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()}
    if not (table.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted):
        write_profiles(table, spec)
        stamp.write_text(json.dumps(wanted))
    err.print(f"[bold]SYNTHETIC[/] profile screen in {table}: {spec.plates} plates x {spec.wells_per_plate} wells "
              f"({spec.mechanisms} mechanisms x {spec.compounds_per_mechanism} compounds x {len(spec.doses)} doses, "
              f"{spec.controls_per_plate} DMSO wells per plate), {spec.features} features, plate effects, seed {seed}")
    ctx.invoke(import_profiles_command, path=table, name="screen")
    registry = get_registry()
    # distance to the DMSO centre: euclidean, as after normalization that centre sits near zero,
    # where a cosine says nothing
    grid = GridSpec(encoders=[], metrics=["euclidean"], rankers=["centroid"], references=["DMSO"],
                    evaluators=["map", "nsc-accuracy", "rank-correlation"], preprocess_key="",
                    transforms=[list(c) for c in PROFILE_CHAINS], transform_reference="DMSO", holdout=None,
                    params={"map": {"control": "DMSO"}, "rank-correlation": {"truth": "concentration"},
                            "pca": {"components": 50}})
    with recorded_run(ctx, "demo", {"kind": "profiles", "out": str(out_dir), "seed": seed}) as (store, run_id):
        grid.stored_sets = selected_sets(store, "profiles:screen")
        with progress_steps() as steps:
            report = run_grid(store, registry, grid, run_id, progress=steps)
        consistency = registry.create("evaluator", "map", {"mode": "consistency", "control": "DMSO"})
        from ..core.pipeline import evaluate as run_evaluate

        for es in store.embedding_sets(ENCODER, "screen"):
            run_evaluate(store, consistency, run_id, embedding_set=es)
        for problem in report.problems:
            err.print(f"[yellow]skipped[/] {problem}")
        columns, rows = store.profile_summary()
        show(columns, rows, title="Which processing recovers mechanism and activity (4 plates with batch effects): "
                                  "NSC = 1-NN mechanism accuracy, same compound excluded [95% interval]; "
                                  "activity = treatments whose replicates beat DMSO at q < 0.05")
    finish_demo(ctx, out_dir, started, [
        "phenorank compare --rows transforms --columns evaluator --value nsc_accuracy --where \"encoder = 'profiles'\"",
        "phenorank sql \"select * from group_results where name = 'q_value' and value < 0.05 order by value\""])




@click.command()
@click.argument("embedding_sets", nargs=-1)
@click.option("--encoder", "encoders", help="Every set of these encoders (comma-separated) instead of set ids.")
@click.option("--head", help="Only this head.")
@click.option("--level", help="Only sets of this level (image, object, well, sample:median, ...).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default="export",
              show_default=True, help="Folder to write into: one entry per embedding set, named by its id.")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="parquet", show_default=True,
              help="parquet: a folder per set, one file per plate (Metadata_Plate=P/); anndata: one .h5ad per set.")
@click.pass_context
@friendly_errors
def export(ctx, embedding_sets, encoders, head, level, out_dir, fmt) -> None:
    """Write embeddings or profiles with their metadata for other tools: Parquet for
    pycytominer, polars, Spark or DuckDB; AnnData (.h5ad) for scanpy-style tools.

    Metadata columns are named Metadata_* (plate, well, treatment, concentration, every manifest
    field), features by their names; the set's key (encoder, parameters, code) travels in the
    file metadata. `phenorank import-profiles <folder>` reads a Parquet export back.

    \b
    Examples:
        phenorank export --encoder morphometrics --out exports
        phenorank export 3f2a9c0e1b7d4a55 --format anndata
    """
    from ..io.export import export_set

    with recorded_run(ctx, "export", {"sets": list(embedding_sets), "encoders": encoders, "head": head,
                                      "level": level, "out": str(out_dir), "format": fmt}) as (store, _):
        if encoders:
            chosen = [es.embedding_set_id for es in selected_sets(store, encoders, head, level)]
        else:
            chosen = list(embedding_sets)
        if not chosen:
            raise click.UsageError("name embedding sets (their ids) or --encoder; the sets: phenorank sql "
                                   "\"select embedding_set_id, encoder, head, level, dim from embedding_sets\"")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        with progress_bar(f"export ({fmt})", len(chosen)) as advance:
            for set_id in chosen:
                target = out_dir / (f"{set_id}.h5ad" if fmt == "anndata" else set_id)
                written.append(export_set(store, set_id, target, fmt))
                advance(1)
    show(["embedding set", "items", "features", "written to"],
         [(w.embedding_set_id, w.items, w.features, w.path) for w in written])


COMMANDS = [import_profiles_command, transform, export]
