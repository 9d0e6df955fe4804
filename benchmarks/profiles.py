"""Profiles at screen scale: 100k cells x 500 features, robustize (per plate, on DMSO) + spherize
(ZCA-cor on DMSO) + aggregation to wells (mean), three ways, each in its own process:

  * store:       phenorank through the DuckDB store (load the imported set, transform, store the
                 new set, aggregate it, store the wells) -- what `phenorank transform` and
                 `phenorank aggregate` do;
  * numpy:       the same arithmetic on arrays already in memory, nothing read or written
                 (the baseline: ratio numpy/store >= 0.5 is the target);
  * pycytominer: normalize(mad_robustize) per plate, normalize(spherize), aggregate(mean) on a
                 pandas DataFrame already in memory.

Also timed once: importing the table (Parquet) into the store. Peak memory is each process's
peak RSS (everything it allocated, the interpreter and libraries included).

    .venv/bin/python benchmarks/profiles.py            # 100k cells (about 2 minutes on 2 cores)
    .venv/bin/python benchmarks/profiles.py --cells 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 500


def write_cells(path: Path, n_cells: int, seed: int = 0) -> None:
    """A cell-level table: 4 plates x 384 wells, 32 DMSO wells per plate, 40 compounds, cells
    spread evenly over wells; plate offsets and a few correlated nuisance factors."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    wells = [f"{r}{c:02d}" for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25)]
    plate = rng.integers(0, 4, n_cells)
    well = rng.integers(0, len(wells), n_cells)
    compound = np.where(well < 32, "DMSO", np.array([f"cmpd-{w % 40:02d}" for w in range(len(wells))])[well])
    x = rng.normal(size=(n_cells, FEATURES)).astype(np.float32)
    x += (rng.normal(size=(n_cells, 4)) @ rng.normal(size=(4, FEATURES))).astype(np.float32)
    x += rng.normal(scale=2, size=(4, FEATURES)).astype(np.float32)[plate]
    frame = pd.DataFrame(x, columns=[f"Cells_F{i:03d}" for i in range(FEATURES)])
    frame.insert(0, "Metadata_Plate", np.array(["P1", "P2", "P3", "P4"])[plate])
    frame.insert(1, "Metadata_Well", np.array(wells)[well])
    frame.insert(2, "Metadata_Compound", compound)
    frame.insert(3, "Metadata_Cell", np.arange(n_cells))  # cells are told apart by their number
    frame.to_parquet(path, index=False)


def numpy_case(table: Path) -> dict:
    import pandas as pd

    from phenorank.plugins.transforms.whitening import whitening_matrix

    frame = pd.read_parquet(table)
    x = frame[[c for c in frame.columns if not c.startswith("Metadata_")]].to_numpy(np.float64, copy=True)
    plate, well = frame["Metadata_Plate"].to_numpy(), frame["Metadata_Well"].to_numpy()
    dmso = frame["Metadata_Compound"].to_numpy() == "DMSO"
    started = time.perf_counter()
    for p in np.unique(plate):
        rows = plate == p
        median = np.median(x[rows & dmso], axis=0)
        mad = 1.4826 * np.median(np.abs(x[rows & dmso] - median), axis=0) + 1e-18
        x[rows] = (x[rows] - median) / mad
    mean, scale, w = whitening_matrix(x[dmso], "ZCA-cor", 1e-6, True)
    x = ((x - mean) / scale) @ w
    keys = np.char.add(plate.astype(str), well.astype(str))
    _, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])
    wells = np.add.reduceat(x[order], starts, axis=0) / np.diff(np.r_[starts, len(order)])[:, None]
    return {"seconds": time.perf_counter() - started, "wells": len(wells)}


def pycytominer_case(table: Path) -> dict:
    import warnings

    import pandas as pd
    from pycytominer import aggregate, normalize

    warnings.simplefilter("ignore")
    frame = pd.read_parquet(table)
    features = [c for c in frame.columns if not c.startswith("Metadata_")]
    started = time.perf_counter()
    robust = pd.concat([normalize(part, features=features, samples="Metadata_Compound == 'DMSO'",
                                  method="mad_robustize") for _, part in frame.groupby("Metadata_Plate")])
    sphered = normalize(robust, features=features, samples="Metadata_Compound == 'DMSO'", method="spherize",
                        spherize_method="ZCA-cor")
    wells = aggregate(sphered, strata=["Metadata_Plate", "Metadata_Well"], features=features, operation="mean")
    return {"seconds": time.perf_counter() - started, "wells": len(wells)}


def store_case(db: Path) -> dict:
    from phenorank.core.aggregate import aggregate
    from phenorank.core.store import open_store
    from phenorank.core.transform import apply_chain
    from phenorank.registry import get_registry

    registry = get_registry()
    chain = [registry.create("transform", "robustize"), registry.create("transform", "spherize")]
    with open_store(db) as store:
        source = next(s for s in store.embedding_sets("profiles") if s.transforms is None)
        started = time.perf_counter()
        sphered, _ = apply_chain(store, source, chain, "DMSO", "bench", force=True)
        transformed = time.perf_counter() - started
        wells, n = aggregate(store, sphered, "plate,well", "mean", "bench")
        return {"seconds": time.perf_counter() - started, "transform_seconds": transformed, "wells": n}


def import_case(table: Path, db: Path) -> dict:
    from phenorank.core.store import open_store
    from phenorank.io.profiles import import_profiles

    started = time.perf_counter()
    with open_store(db) as store:
        report = import_profiles(store, table, "cells", level="cell")
    return {"seconds": time.perf_counter() - started, "rows": report.rows}


def child(case: str, *args: str) -> dict:
    result = {"numpy": numpy_case, "pycytominer": pycytominer_case, "store": store_case,
              "import": import_case}[case](*map(Path, args))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run(case: str, *args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--child", nargs="+")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(*options.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        table, db = Path(folder) / "cells.parquet", Path(folder) / "store.duckdb"
        write_cells(table, options.cells)
        print(f"{options.cells} cells x {FEATURES} features, 4 plates x 384 wells")
        imported = run("import", table, db)
        print(f"import (Parquet -> store):      {imported['seconds']:7.1f} s   peak RSS {imported['peak_rss_mb']:6.0f} MB")
        results = {case: run(case, *( [db] if case == "store" else [table])) for case in ("numpy", "store", "pycytominer")}
        for case, r in results.items():
            print(f"{case:12s} robustize+spherize+aggregate: {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mb']:6.0f} MB"
                  f"   {r['wells']} wells")
        print(f"  of which the store's transform step: {results['store']['transform_seconds']:.2f} s")
        print(f"ratio numpy / store       = {results['numpy']['seconds'] / results['store']['seconds']:.2f}  (target >= 0.5)")
        print(f"ratio pycytominer / store = {results['pycytominer']['seconds'] / results['store']['seconds']:.2f}  "
              "(> 1: the store path is faster)")


if __name__ == "__main__":
    main()
