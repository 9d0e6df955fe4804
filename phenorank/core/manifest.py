"""The image data model and the manifest CSV that describes a plate.

One manifest row is one acquisition of one well on one day. Required columns: ``path``
(relative to the image folder), ``well`` (A01..P24), ``day``, ``condition``. Optional:
``plate``, ``treatment``, ``concentration``, ``replicate``, and ``row``/``col`` (checked against
the well). Any other column (``effect``, ``donor``, ...) is kept as extra metadata and can be
used by evaluators, e.g. ``rank-correlation`` against a known effect.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("path", "well", "day", "condition")
KNOWN = REQUIRED + ("plate", "treatment", "concentration", "replicate", "row", "col")
WELL_PATTERN = re.compile(r"^([A-Pa-p])0*([1-9][0-9]?)$")
MAX_COLUMNS = 24  # a 384-well plate has rows A..P and columns 1..24


class ManifestError(ValueError):
    """The manifest is unusable; the message names the file, the row and the field."""


@dataclass
class ManifestEntry:
    path: Path
    line: int
    plate: str
    well: str
    row: str
    col: int
    day: int
    condition: str
    treatment: str | None = None
    concentration: float | None = None
    replicate: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict:
        return {
            "path": str(self.path), "plate": self.plate, "well": self.well, "row": self.row,
            "col": self.col, "day": self.day, "condition": self.condition, "treatment": self.treatment,
            "concentration": self.concentration, "replicate": self.replicate, "extra": self.extra,
        }


def parse_well(well: str) -> tuple[str, int, str]:
    """'b3' -> ('B', 3, 'B03')."""
    match = WELL_PATTERN.match(well.strip())
    if not match or not 1 <= int(match.group(2)) <= MAX_COLUMNS:
        raise ValueError(f"{well!r} is not a well name like A01 (rows A-P, columns 1-{MAX_COLUMNS})")
    row, col = match.group(1).upper(), int(match.group(2))
    return row, col, f"{row}{col:02d}"


def read_manifest(manifest: str | Path, image_dir: str | Path | None = None) -> list[ManifestEntry]:
    """Parse and validate every row; the first problem raises naming the file, line and field."""
    manifest = Path(manifest)
    image_dir = Path(image_dir) if image_dir is not None else manifest.parent
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest} does not exist")
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ManifestError(f"{manifest}: missing required column(s) {', '.join(missing)} "
                                f"(found: {', '.join(header) or 'no header'})")
        entries = [_entry(manifest, image_dir, line, row) for line, row in enumerate(reader, start=2)]
    if not entries:
        raise ManifestError(f"{manifest} has a header but no rows")
    return entries


def _entry(manifest: Path, image_dir: Path, line: int, raw: dict) -> ManifestEntry:
    row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}

    def fail(column: str, problem: str) -> ManifestError:
        return ManifestError(f"{manifest} line {line}: field {column!r} {problem}")

    for column in REQUIRED:
        if not row.get(column):
            raise fail(column, "is missing")
    try:
        well_row, well_col, well = parse_well(row["well"])
    except ValueError as exc:
        raise fail("well", str(exc)) from None
    if row.get("row") and row["row"].upper() != well_row:
        raise fail("row", f"is {row['row']!r} but well {well} is in row {well_row}")
    if row.get("col") and _number(row["col"], int, lambda p: fail("col", p)) != well_col:
        raise fail("col", f"is {row['col']!r} but well {well} is in column {well_col}")
    path = Path(row["path"])
    return ManifestEntry(
        path=path if path.is_absolute() else image_dir / path,
        line=line,
        plate=row.get("plate") or "plate1",
        well=well, row=well_row, col=well_col,
        day=_number(row["day"], int, lambda p: fail("day", p)),
        condition=row["condition"],
        treatment=row.get("treatment") or None,
        concentration=_number(row.get("concentration"), float, lambda p: fail("concentration", p)),
        replicate=_number(row.get("replicate"), int, lambda p: fail("replicate", p)),
        extra={k: v for k, v in row.items() if k and k not in KNOWN},
    )


def _number(text: str | None, kind: type, fail):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise fail(f"is {text!r}, expected a number") from None
    if kind is int:
        if not value.is_integer():
            raise fail(f"is {text!r}, expected a whole number")
        return int(value)
    return value
