import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from phenorank.cli import cli
from phenorank.core.synthetic_plate import PlateSpec, generate_plate
from phenorank.registry import reset_registry

TINY = PlateSpec(height=64, width=77, seed=3)


def rows(db, sql):
    """The rows of a query on a store file, read-only."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test sees exactly the plugins installed at that moment."""
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(scope="session")
def tiny_plate_master(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plate")
    generate_plate(out, TINY)
    return out


@pytest.fixture
def tiny_plate(tiny_plate_master, tmp_path) -> Path:
    """A private copy of the generated 120-image plate (tests may damage files)."""
    target = tmp_path / "plate"
    shutil.copytree(tiny_plate_master, target)
    return target


@pytest.fixture
def invoke(tmp_path):
    """Run the CLI on a store in tmp_path; fails the test on a non-zero exit unless told otherwise."""
    runner = CliRunner()
    db = str(tmp_path / "store.duckdb")

    def run(*args, ok=True):
        result = runner.invoke(cli, ["--db", db, *map(str, args)], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run.db = db
    return run


def spheroid_stack(n_layers=3, height=60, width=72, center=(30, 40), radius=12, dtype=np.uint16,
                   sharp_layer=None, seed=0) -> np.ndarray:
    """A dark disk on a bright background as (L, H, W); one layer sharp, the others blurred."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    disk = ((yy - center[0]) ** 2 + (xx - center[1]) ** 2) <= radius ** 2
    base = np.where(disk, 0.25, 0.8).astype(np.float32)
    sharp_layer = n_layers // 2 if sharp_layer is None else sharp_layer
    layers = []
    for i in range(n_layers):
        sigma = 0.1 + 2.5 * abs(i - sharp_layer)
        layer = cv2.GaussianBlur(base, (0, 0), sigma) if sigma > 0.3 else base
        layer = layer + rng.normal(0, 0.01, layer.shape).astype(np.float32)
        layers.append(layer)
    stack = np.clip(np.stack(layers), 0, 1)
    if dtype == np.uint16:
        return np.rint(stack * 65535).astype(np.uint16)
    if dtype == np.uint8:
        return np.rint(stack * 255).astype(np.uint8)
    return stack.astype(dtype)


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    import csv

    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "path", k))
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def save_stack(path: Path, stack: np.ndarray) -> None:
    tifffile.imwrite(path, stack, photometric="minisblack")
