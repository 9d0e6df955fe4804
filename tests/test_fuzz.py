"""A fixed corpus of bad and odd inputs, each through the command line as a user would give it.

Every case ends without a traceback (the `invoke` fixture lets none through), with one clear
line naming the file, row, column or parameter, and a non-zero exit where the request itself is
wrong; a batch goes on past bad files, stores every good one and records why each bad one was
refused; nothing stored before is lost.
"""

import shutil
import zlib

import numpy as np
import pytest
import tifffile
import torch

from conftest import rows, spheroid_stack
from test_layouts import bomb

GOOD = spheroid_stack(3, 60, 72)


def _tiff(path, data, **kwargs):
    tifffile.imwrite(path, data, **kwargs)


def _truncated(path):
    _tiff(path, GOOD, photometric="minisblack")
    path.write_bytes(path.read_bytes()[:2000])


def _damaged_zlib(path):
    _tiff(path, GOOD, photometric="minisblack", compression="zlib")
    data = bytearray(path.read_bytes())
    data[200:260] = b"\x00" * 60
    path.write_bytes(bytes(data))


def _pages_disagree(path):
    with tifffile.TiffWriter(path) as writer:
        writer.write(GOOD[0])
        writer.write(GOOD[1, :30])


def _directory(path):
    path.mkdir()


# file name -> (writer, a phrase its rejection reason must hold)
BAD_FILES = {
    "empty.tif": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated.tif": (_truncated, "truncated"),
    "random.tif": (lambda p: p.write_bytes(np.random.default_rng(1).bytes(5000)), "not a readable TIFF"),
    "text.tif": (lambda p: p.write_text("this is not an image\n"), "not a readable TIFF"),
    "nan.tif": (lambda p: _tiff(p, np.full((3, 60, 72), np.nan, np.float32)), "NaN or infinite"),
    "inf.tif": (lambda p: _tiff(p, np.full((3, 60, 72), np.inf, np.float32)), "NaN or infinite"),
    "float-range.tif": (lambda p: _tiff(p, GOOD.astype(np.float32)), "expected floats in [0, 1]"),
    "negative.tif": (lambda p: _tiff(p, -GOOD.astype(np.float32) / 65535), "expected floats in [0, 1]"),
    "int32.tif": (lambda p: _tiff(p, GOOD.astype(np.int32)), "unsupported pixel type int32"),
    "complex.tif": (lambda p: _tiff(p, GOOD.astype(np.complex64)), "unsupported pixel type"),
    "one-pixel.tif": (lambda p: _tiff(p, np.zeros((1, 1), np.uint16)), "smaller than 16 pixels"),
    "ten-pixels.tif": (lambda p: _tiff(p, np.zeros((10, 12), np.uint16)), "smaller than 16 pixels"),
    "bomb.tif": (bomb, "would decode to 3,600,000,000 pixels"),
    "pages.tif": (_pages_disagree, "pages of different size"),
    "rgb8.tif": (lambda p: _tiff(p, (GOOD >> 8).astype(np.uint8)), "8-bit colour image"),
    "timelapse.tif": (lambda p: _tiff(p, np.stack([GOOD, GOOD]), metadata={"axes": "TZYX"}), "4-D image"),
    "six-layers.tif": (lambda p: _tiff(p, spheroid_stack(6, 60, 72), photometric="minisblack"), "6 focal layers"),
    "damaged-zlib.tif": (_damaged_zlib, "TIFF"),
    "folder.tif": (_directory, "file not found"),
}
GOOD_FILES = {
    "big-endian.tif": lambda p: _tiff(p, GOOD, byteorder=">", photometric="minisblack"),
    "lzw.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=2), compression="lzw", photometric="minisblack"),
    "zstd.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=3), compression="zstd", photometric="minisblack"),
    "jpeg.tif": lambda p: _tiff(p, (spheroid_stack(1, 60, 72, seed=4)[0] >> 8).astype(np.uint8), compression="jpeg"),
    "uint8.tif": lambda p: _tiff(p, (spheroid_stack(3, 60, 72, seed=5) >> 8).astype(np.uint8),
                                 photometric="minisblack"),
    "float32.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, dtype=np.float32, seed=6), photometric="minisblack"),
    "float64.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, dtype=np.float64, seed=7), photometric="minisblack"),
    "planar-samples.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=8)),
    "bigtiff.tif": lambda p: _tiff(p, spheroid_stack(5, 60, 72, seed=9), bigtiff=True, photometric="minisblack"),
    "pipe|in name.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=10), photometric="minisblack"),
    "hash#t=1 name.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=11), photometric="minisblack"),
    "ünïcödé 細胞.tif": lambda p: _tiff(p, spheroid_stack(3, 60, 72, seed=12), photometric="minisblack"),
    "small-enlarged.tif": lambda p: _tiff(p, spheroid_stack(1, 20, 24, center=(10, 12), radius=5, seed=13)[0]),
}


def test_a_batch_of_bad_files_stores_every_good_one_and_says_why_for_each_bad_one(tmp_path, invoke):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (write, _) in BAD_FILES.items():
        write(folder / name)
    for name, write in GOOD_FILES.items():
        write(folder / name)
    names = [*BAD_FILES, *GOOD_FILES, "missing.tif"]
    (folder / "manifest.csv").write_text("path,condition\n" + "".join(f'"{n}",control\n' for n in names),
                                         encoding="utf-8")
    result = invoke("ingest", folder, "--size", 32)
    stored = {r[0].rsplit("/", 1)[-1] for r in rows(invoke.db, "select path from images")}
    rejects = {p.rsplit("/", 1)[-1]: reason for p, reason in rows(invoke.db, "select path, reason from rejects")}
    assert stored == set(GOOD_FILES)
    assert set(rejects) == {*BAD_FILES, "missing.tif"}
    for name, (_, phrase) in BAD_FILES.items():
        assert phrase in rejects[name], (name, rejects[name])
    assert "file not found" in rejects["missing.tif"]
    assert f"ingested {len(GOOD_FILES)}, unchanged 0, metadata updated 0, rejected {len(BAD_FILES) + 1}" \
        in result.output
    assert "smaller than the 32 px crop and were enlarged" in result.output and "smallest side 20 px" in result.output
    layers = dict(rows(invoke.db, "select regexp_extract(path, '[^/]+$'), n_layers from images"))
    assert layers["planar-samples.tif"] == 3 and layers["bigtiff.tif"] == 5 and layers["pipe|in name.tif"] == 3


MANIFEST_OK = {
    "utf8-bom": ("\ufeffpath,condition\n{f},control\n", "utf-8"),
    "latin-1": ("path,condition,donor\n{f},control,Jürgen\n", "latin-1"),
    "utf-16": ("path,condition\n{f},control\n", "utf-16"),
    "semicolons": ("path;condition;concentration\n{f};control;0.5\n", "utf-8"),
    "tabs": ("path\tcondition\n{f}\tcontrol\n", "utf-8"),
    "crlf": ("path,condition\r\n{f},control\r\n", "utf-8"),
    "short-row": ("path,condition,treatment\n{f},control\n", "utf-8"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_OK))
def test_manifests_as_spreadsheets_save_them_are_read(case, tmp_path, invoke):
    text, encoding = MANIFEST_OK[case]
    tifffile.imwrite(tmp_path / "a.tif", GOOD, photometric="minisblack")
    (tmp_path / "m.csv").write_bytes(text.format(f="a.tif").encode(encoding))
    result = invoke("ingest", tmp_path, "--manifest", tmp_path / "m.csv", "--size", 32)
    assert "ingested 1," in result.output
    assert rows(invoke.db, "select condition from images") == [("control",)]
    if case == "latin-1":
        assert rows(invoke.db, "select extra->>'donor' from images") == [("Jürgen",)]


MANIFEST_BAD = {
    "extra-field": ("path,condition\na.tif,control,surprise\n", "line 2: 1 field(s) more than the header's 2"),
    "nul-bytes": ("path,condition\na.tif,con\x00trol\n", "NUL bytes"),
    "no-path-column": ("file,condition\na.tif,control\n", "missing required column(s) path"),
    "day-too-large": ("path,condition,well,day\na.tif,control,B02,1e12\n", "field 'day' is '1e12', outside the range"),
    "day-nan": ("path,condition,well,day\na.tif,control,B02,nan\n", "field 'day' is 'nan', expected a finite"),
    "day-text": ("path,condition,well,day\na.tif,control,B02,ten\n", "field 'day' is 'ten', expected a number"),
    "well-off-plate": ("path,condition,well,day\na.tif,control,Z99,7\n", "field 'well'"),
    "parent-path": ("path,condition\n../secret.tif,control\n", "leaves the image folder"),
    "absolute-path": ("path,condition\n/etc/passwd,control\n", "'/etc/passwd' leaves the image folder"),
    "header-only": ("path,condition\n", "has a header but no rows"),
    "listed-twice": ("path,condition\na.tif,control\na.tif,control\n", "is listed already"),
    "replicate-fraction": ("path,condition,replicate\na.tif,control,1.5\n", "expected a whole number"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_BAD))
def test_bad_manifests_are_one_line_and_change_nothing(case, tmp_path, invoke, tiny_plate):
    invoke("ingest", tiny_plate, "--size", 32)
    before = rows(invoke.db, "select image_id, path from images order by image_id")
    text, phrase = MANIFEST_BAD[case]
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", GOOD, photometric="minisblack")
    (tmp_path / "secret.tif").write_bytes(b"secret")
    (folder / "manifest.csv").write_text(text, encoding="utf-8")
    result = invoke("ingest", folder, "--size", 32, ok=False)
    assert result.exit_code == 1, result.output
    assert phrase in result.output and "manifest.csv" in result.output, result.output
    assert rows(invoke.db, "select image_id, path from images order by image_id") == before
    assert rows(invoke.db, "select count(*) from rejects") == [(0,)]  # nothing was read


def test_paths_outside_the_folder_are_read_only_when_allowed(tmp_path, invoke):
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(tmp_path / "elsewhere.tif", GOOD, photometric="minisblack")
    (folder / "manifest.csv").write_text("path,condition\n../elsewhere.tif,control\n")
    assert invoke("ingest", folder, "--size", 32, ok=False).exit_code == 1
    result = invoke("ingest", folder, "--size", 32, "--allow-outside")
    assert "ingested 1," in result.output


PARAMS = {  # command, then the -p value that cannot be meant
    "softmax-lr-nan": (["run", "--rankers", "softmax", "--metrics", "cosine"], "softmax.lr=nan", "finite"),
    "kmeans-restarts-0": (["evaluate", "--evaluator", "kmeans-accuracy"], "kmeans-accuracy.restarts=0",
                          "greater than 0"),
    "gmm-components-0": (["evaluate", "--evaluator", "clustering-gmm"], "clustering-gmm.components=0",
                         "greater than 0"),
    "centroid-k-0": (["rank", "--encoder", "morphometrics"], "centroid.k=0", "greater than 0"),
    "probe-epochs-negative": (["evaluate", "--evaluator", "linear-probe"], "linear-probe.epochs=-5",
                              "greater than 0"),
    "predictor-batch-0": (["run", "--rankers", "predictor", "--metrics", "cosine"], "predictor.batch_size=0",
                          "greater than 0"),
    "probe-test-fraction": (["evaluate", "--evaluator", "linear-probe"], "linear-probe.test_fraction=1.5",
                            "between 0 and 1"),
    "umap-neighbours-negative": (["run", "--rankers", "umap", "--metrics", "cosine"], "umap.n_neighbors=-3",
                                 "greater than 0"),
    "correlation-bootstrap-inf": (["evaluate", "--evaluator", "rank-correlation"],
                                  "rank-correlation.bootstrap=inf", "is not a int"),
    "map-threshold-2": (["evaluate", "--evaluator", "map"], "map.threshold=2", "between 0 and 1"),
    "plugin-not-in-command": (["evaluate", "--evaluator", "rank-correlation"], "linear-probe.epochs=5",
                              "linear-probe is not used by this command"),
    "typo-plugin": (["run", "--metrics", "cosine"], "centriod.k=2", "centriod is not used by this command"),
}


@pytest.fixture(scope="module")
def ranked_store(tmp_path_factory, tiny_plate_master):
    from click.testing import CliRunner

    from phenorank.cli import cli

    db = tmp_path_factory.mktemp("ranked") / "store.duckdb"
    for args in (["ingest", tiny_plate_master, "--size", 32], ["run", "--encoders", "morphometrics", "--size", 32,
                                                                "--metrics", "cosine"]):
        result = CliRunner().invoke(cli, ["--db", str(db), *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize("case", sorted(PARAMS))
def test_parameters_that_cannot_be_meant_are_one_line(case, ranked_store, tmp_path, invoke):
    shutil.copy(ranked_store, invoke.db)
    before = rows(invoke.db, "select count(*) from evaluations")
    args, value, phrase = PARAMS[case]
    size = ["--size", 32] if args[0] in ("run", "rank") else []
    result = invoke(*args, *size, "-p", value, ok=False)
    assert result.exit_code in (1, 2) and phrase in result.output, result.output
    assert rows(invoke.db, "select count(*) from evaluations") == before


@pytest.mark.parametrize("size", ["0", "-5", "100000", "abc"])
def test_a_crop_size_out_of_range_is_refused(size, invoke, tiny_plate):
    result = invoke("ingest", tiny_plate, "--size", size, ok=False)
    assert result.exit_code == 2 and "--size" in result.output


def _weights(kind, path):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-safetensors":
        path.write_bytes(np.random.default_rng(2).bytes(4096))
    elif kind == "random-pth":
        path.write_bytes(np.random.default_rng(3).bytes(4096))
    elif kind == "a-list":
        torch.save([1, 2, 3], path)
    elif kind == "a-tensor":
        torch.save(torch.zeros(3, 3), path)
    elif kind == "wrong-shape":
        torch.save({"conv1.weight": torch.zeros(2, 2)}, path)
    elif kind == "compressed-junk":
        path.write_bytes(zlib.compress(b"not weights" * 100))


WEIGHTS = {"empty": "cannot read weights file", "random-safetensors": "cannot read weights file",
           "random-pth": "cannot read weights file", "a-list": "holds a list, not a state dict",
           "a-tensor": "holds a Tensor, not a state dict", "wrong-shape": "does not hold resnet18 weights",
           "compressed-junk": "cannot read weights file"}


@pytest.mark.parametrize("kind", sorted(WEIGHTS))
def test_bad_weights_files_are_one_line(kind, ranked_store, tmp_path, invoke):
    shutil.copy(ranked_store, invoke.db)
    path = tmp_path / ("w.safetensors" if "safetensors" in kind else "w.pth")
    _weights(kind, path)
    result = invoke("embed", "--encoder", "imagenet-resnet18", "--size", 32, "-p",
                    f"imagenet-resnet18.weights={path}", ok=False)
    assert result.exit_code == 1 and WEIGHTS[kind] in result.output and str(path) in result.output, result.output
    assert rows(invoke.db, "select count(*) from embedding_sets where encoder = 'imagenet-resnet18'") == [(0,)]
