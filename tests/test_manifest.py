import pytest

from conftest import write_manifest
from phenorank.core.manifest import ManifestError, compile_pattern, entries_from_pattern, read_manifest
from phenorank.core.plate import PLATE_FORMATS

BASE = {"path": "a.tif", "well": "B03", "day": "7", "condition": "control"}


def test_rows_parse_with_defaults_and_extra_columns(tmp_path):
    manifest = write_manifest(tmp_path, [{**BASE, "well": "b3", "effect": "0.25", "concentration": "1.5"}])
    (entry,) = read_manifest(manifest)
    assert (entry.well, entry.row, entry.col, entry.day, entry.edge) == ("B03", "B", 3, 7, False)
    assert entry.plate == "plate1" and entry.concentration == 1.5 and entry.replicate is None
    assert entry.extra == {"effect": "0.25"}
    assert entry.path == tmp_path / "a.tif"


@pytest.mark.parametrize("change, message", [
    ({"day": ""}, "line 3: field 'day' is missing"),
    ({"condition": ""}, "line 3: field 'condition' is missing"),
    ({"day": "seven"}, "line 3: field 'day' is 'seven', expected a number"),
    ({"day": "7.5"}, "expected a whole number"),
    ({"well": "Z99"}, "field 'well'"),
    ({"well": "I01"}, "not on a 96-well plate (rows A-H, columns 1-12); is it a 384-well plate?"),
    ({"row": "C"}, "field 'row' is 'C' but well B03 is in row B"),
    ({"col": "4"}, "field 'col' is '4' but well B03 is in column 3"),
    ({"path": "b.tif", "well": "B03"}, None),  # control: a valid second row
    ({}, "field 'path' '"),  # the same file twice
])
def test_bad_rows_name_the_file_line_and_field(tmp_path, change, message):
    manifest = write_manifest(tmp_path, [{**BASE, "row": "B", "col": "3"},
                                         {**BASE, "row": "B", "col": "3", **change}])
    if message is None:
        assert len(read_manifest(manifest)) == 2
        return
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value) and message in str(info.value)


def test_missing_column_and_missing_file(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,well,day\na.tif,B02,7\n")
    with pytest.raises(ManifestError, match="missing required column.*condition"):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_plate_formats_know_their_wells_and_edges():
    p96, p384 = PLATE_FORMATS[96], PLATE_FORMATS[384]
    assert p96.parse_well("h12") == ("H", 12, "H12")
    assert p384.parse_well("P24") == ("P", 24, "P24")
    for bad in ("A13", "I01", "A0"):
        with pytest.raises(ValueError):
            p96.parse_well(bad)
    with pytest.raises(ValueError):
        p384.parse_well("Q01")
    edge96 = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13) if p96.is_edge(r, c)]
    edge384 = [(r, c) for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25) if p384.is_edge(r, c)]
    assert len(edge96) == 36 and "B02" not in edge96 and {"A05", "H05", "C01", "C12"} <= set(edge96)
    assert len(edge384) == 76 and p384.is_edge("P", 5) and not p384.is_edge("H", 12)


def test_384_well_manifest(tmp_path):
    manifest = write_manifest(tmp_path, [{**BASE, "well": "P24"}])
    (entry,) = read_manifest(manifest, plate_format=384)
    assert (entry.well, entry.edge) == ("P24", True)


def touch(folder, *names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_file_name_pattern_gives_the_fields(tmp_path):
    touch(tmp_path, "p1_B03_day7_control.tif", "p1_B03_day10_control.tif", "sub/p2_c4_day07_screen.tiff",
          "thumbnail.png", "notes_B03.tif")
    entries, unmatched = entries_from_pattern(tmp_path, "{plate}_{well}_day{day}_{condition}.tif*")
    found = sorted((e.plate, e.well, e.day, e.condition) for e in entries)
    assert found == [("p1", "B03", 7, "control"), ("p1", "B03", 10, "control")]
    assert unmatched == ["notes_B03.tif", "sub/p2_c4_day07_screen.tiff"]
    entries, _ = entries_from_pattern(tmp_path, "*/{plate}_{well}_day{day}_{condition}.tiff")
    assert [(e.plate, e.well, e.day, e.source) for e in entries] == [
        ("p2", "C04", 7, "file name sub/p2_c4_day07_screen.tiff")]


def test_pattern_with_a_plate_layout(tmp_path):
    touch(tmp_path, "scan-B02-d7.tif", "scan-B03-d7.tif", "scan-B03-d10.tif")
    layout = tmp_path / "layout.csv"
    layout.write_text("well,condition,treatment,concentration,donor\nB02,control,,,d1\nB3,screen,drug-x,3.0,d2\n")
    entries, _ = entries_from_pattern(tmp_path, "scan-{well}-d{day}.tif", layout)
    rows = sorted((e.well, e.day, e.condition, e.treatment, e.concentration, e.extra["donor"]) for e in entries)
    assert rows == [("B02", 7, "control", None, None, "d1"), ("B03", 7, "screen", "drug-x", 3.0, "d2"),
                    ("B03", 10, "screen", "drug-x", 3.0, "d2")]


@pytest.mark.parametrize("pattern, layout_text, message", [
    ("scan-{well}-d{day}.tif", None, "file name scan-B02-d7.tif: field 'condition' is missing"),
    ("scan-{well}-d{day}.tif", "well,condition\nB02,control\nB02,screen\n", "well B02 is listed twice"),
    ("scan-{well}-d{day}.tif", "well,condition\nZ2,control\n", "line 2: field 'well'"),
    ("other-{well}.tif", None, "no file under"),
    ("scan-{}-d{day}.tif", None, "needs a field name"),
    ("scan-{well}-d{day:(}.tif", None, "not usable"),
])
def test_pattern_problems_are_named(tmp_path, pattern, layout_text, message):
    touch(tmp_path, "scan-B02-d7.tif")
    layout = None
    if layout_text:
        layout = tmp_path / "layout.csv"
        layout.write_text(layout_text)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(")):
        entries_from_pattern(tmp_path, pattern, layout)


def test_layout_must_agree_with_the_file_name(tmp_path):
    touch(tmp_path, "B02_control_d7.tif")
    layout = tmp_path / "layout.csv"
    layout.write_text("well,condition\nB02,screen\n")
    with pytest.raises(ManifestError, match="'control' in the file name but 'screen' in the layout"):
        entries_from_pattern(tmp_path, "{well}_{condition}_d{day}.tif", layout)


def test_compiled_pattern_regex_fields():
    regex = compile_pattern("{plate:[a-z]+\\d}{well}_{day}.tif")
    assert regex.fullmatch("plate7A01_10.tif").groupdict() == {"plate": "plate7", "well": "A01", "day": "10"}
