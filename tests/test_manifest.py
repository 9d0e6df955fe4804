import pytest

from conftest import write_manifest
from phenorank.core.manifest import ManifestError, parse_well, read_manifest

BASE = {"path": "a.tif", "well": "B03", "day": "7", "condition": "control"}


def test_rows_parse_with_defaults_and_extra_columns(tmp_path):
    manifest = write_manifest(tmp_path, [{**BASE, "well": "b3", "effect": "0.25", "concentration": "1.5"}])
    (entry,) = read_manifest(manifest)
    assert (entry.well, entry.row, entry.col, entry.day) == ("B03", "B", 3, 7)
    assert entry.plate == "plate1" and entry.concentration == 1.5 and entry.replicate is None
    assert entry.extra == {"effect": "0.25"}
    assert entry.path == tmp_path / "a.tif"


@pytest.mark.parametrize("change, message", [
    ({"day": ""}, "line 3: field 'day' is missing"),
    ({"condition": ""}, "line 3: field 'condition' is missing"),
    ({"day": "seven"}, "line 3: field 'day' is 'seven', expected a number"),
    ({"day": "7.5"}, "expected a whole number"),
    ({"well": "Z99"}, "field 'well'"),
    ({"row": "C"}, "field 'row' is 'C' but well B03 is in row B"),
    ({"col": "4"}, "field 'col' is '4' but well B03 is in column 3"),
])
def test_bad_rows_name_the_file_line_and_field(tmp_path, change, message):
    manifest = write_manifest(tmp_path, [{**BASE, "row": "B", "col": "3"}, {**BASE, "row": "B", "col": "3", **change}])
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


def test_parse_well():
    assert parse_well("h12") == ("H", 12, "H12")
    assert parse_well("P24") == ("P", 24, "P24")
    with pytest.raises(ValueError):
        parse_well("A25")
