"""The image data model and the two ways to describe a plate: a manifest CSV or file names.

One entry is one acquisition: of one well on one day (plates), or of one field of view of one
sample (cell images). Required fields: ``path`` (relative to the image folder) and
``condition`` (the class). Plates add ``well`` (A01..H12, or A01..P24 on a 384-well plate) and
``day``. Optional: ``plate``, ``treatment``, ``concentration``, ``replicate``, and ``row``/``col``
(checked against the well). Any other field (``sample``, ``field``, ``donor``, ``effect``, ...)
is kept as extra metadata and can be used by evaluators and aggregation.

A ``channel`` field joins files: the files whose other fields agree form one multi-channel
image, its channels in the order of their ``channel`` values (numeric when they are numbers).

Fields come from a manifest CSV (:func:`read_manifest`), or from a file-name pattern such as
``{plate}_{well}_day{day}.tif`` plus an optional plate layout CSV keyed by well
(:func:`entries_from_pattern`). Either way, every problem names its file, line or file name, and
field, before anything is written.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import files as storage
from .files import is_file, is_url
from .plate import PLATE_FORMATS, PlateFormat

REQUIRED = ("path", "condition")
KNOWN = REQUIRED + ("well", "day", "plate", "treatment", "concentration", "replicate", "row", "col", "channel")
CHANNEL_SEPARATOR = "|"  # a channel-joined image's stored path lists its files, in channel order
# One image among several in a file (a tile of a time-lapse frame): its stored path is the file's,
# then "#" and the loader's key=value description of where it lies, e.g. "a.tif#t=3&y=64&x=0&size=128".
_REGION = re.compile(r"#([a-z]+=\d+(?:&[a-z]+=\d+)*)$")
DEFAULT_PLATE = "plate1"


class ManifestError(ValueError):
    """The description of the plate is unusable; the message names the file, the row and the field."""


@dataclass
class ManifestEntry:
    path: Path | str  # a local path, or a URL (str) that an fsspec file system reads
    source: str  # where the fields came from, for messages: "manifest.csv line 4" or the file name
    plate: str
    well: str | None
    row: str | None
    col: int | None
    edge: bool | None
    day: int | None
    condition: str
    treatment: str | None = None
    concentration: float | None = None
    replicate: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    channel_files: tuple[Path, ...] = ()  # several files joined as channels (path is the first)
    region: str = ""  # one image among several in the file, as its loader describes it

    @property
    def location(self) -> str:
        """The stored path: the file, or the channel files joined by ``|``; then its region."""
        files = CHANNEL_SEPARATOR.join(map(str, self.channel_files)) if self.channel_files else str(self.path)
        return join_region(files, self.region) if self.region else files

    def metadata(self) -> dict:
        return {
            "path": self.location, "plate": self.plate, "well": self.well, "row": self.row,
            "col": self.col, "edge": self.edge, "day": self.day, "condition": self.condition,
            "treatment": self.treatment, "concentration": self.concentration, "replicate": self.replicate,
            "extra": self.extra,
        }


def join_region(path: str, region: str) -> str:
    if not _REGION.fullmatch("#" + region):
        raise ValueError(f"region {region!r} is not of the form key=number&key=number")
    return f"{path}#{region}"


def split_region(location: str) -> tuple[str, str]:
    """A stored path -> (the file part, the region or "")."""
    if is_file(location):  # a file whose own name ends like a region
        return location, ""
    match = _REGION.search(location)
    return (location[:match.start()], match.group(1)) if match else (location, "")


def split_location(location: str) -> tuple[list[str], str]:
    """A stored path -> (its files, its region): a file whose name holds ``|`` or ``#`` is one
    file, not channel files or a region."""
    base, region = split_region(location)
    if is_file(base):
        return [base], region
    return base.split(CHANNEL_SEPARATOR), region


def make_entry(fields: dict[str, str], image_dir: Path, source: str, plate: PlateFormat,
               channel_files: list[str] = ()) -> ManifestEntry:
    """Validate one set of text fields; the first problem raises naming ``source`` and the field."""
    row = {(k or "").strip(): (v or "").strip() for k, v in fields.items()}

    def fail(column: str, problem: str) -> ManifestError:
        return ManifestError(f"{source}: field {column!r} {problem}")

    for column in REQUIRED:
        if not row.get(column):
            raise fail(column, "is missing")
    well_row = well_col = well = edge = None
    if row.get("well"):
        try:
            well_row, well_col, well = plate.parse_well(row["well"])
        except ValueError as exc:
            raise fail("well", str(exc)) from None
        if row.get("row") and row["row"].upper() != well_row:
            raise fail("row", f"is {row['row']!r} but well {well} is in row {well_row}")
        if row.get("col") and _number(row["col"], int, lambda p: fail("col", p)) != well_col:
            raise fail("col", f"is {row['col']!r} but well {well} is in column {well_col}")
        edge = plate.is_edge(well_row, well_col)
        if not row.get("day"):
            raise fail("day", "is missing (an image of a well needs its day)")
    elif row.get("row") or row.get("col"):
        raise fail("well", "is missing (row and col are given; the well names them)")

    def located(text: str) -> Path | str:
        if is_url(text):  # object storage, a shared file system by URL: read as given
            return text
        path = Path(text)
        return path if path.is_absolute() else storage.join(image_dir, text)

    files = tuple(located(f) for f in channel_files)
    return ManifestEntry(
        path=files[0] if files else located(row["path"]),
        source=source,
        plate=row.get("plate") or DEFAULT_PLATE,
        well=well, row=well_row, col=well_col, edge=edge,
        day=_number(row.get("day"), int, lambda p: fail("day", p)),
        condition=row["condition"],
        treatment=row.get("treatment") or None,
        concentration=_number(row.get("concentration"), float, lambda p: fail("concentration", p)),
        replicate=_number(row.get("replicate"), int, lambda p: fail("replicate", p)),
        extra={k: v for k, v in row.items() if k and k not in KNOWN},
        channel_files=files if len(files) > 1 else (),
    )


def join_channels(rows: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str], list[str]]]:
    """Rows (source, fields) -> (source, fields, channel files): rows that differ only in ``path``
    and ``channel`` become one row whose files are ordered by channel. Without a ``channel``
    field every row stands alone."""
    if not any(fields.get("channel") for _, fields in rows):
        return [(source, fields, []) for source, fields in rows]
    groups: dict[tuple, list[tuple[str, dict[str, str]]]] = {}
    for source, fields in rows:
        if not fields.get("channel"):
            raise ManifestError(f"{source}: field 'channel' is missing (other files of this set have one)")
        key = tuple(sorted((k, v) for k, v in fields.items() if k not in ("path", "channel")))
        groups.setdefault(key, []).append((source, fields))
    joined = []
    for members in groups.values():
        channels = [fields["channel"] for _, fields in members]
        numeric = all(c.isdigit() for c in channels)
        members.sort(key=lambda m: int(m[1]["channel"]) if numeric else m[1]["channel"])
        if len(set(channels)) != len(channels):
            raise ManifestError(f"{members[0][0]}: channel {sorted(channels)} listed twice for one image")
        source, first = members[0]
        joined.append((f"{source} (+{len(members) - 1} channel files)" if len(members) > 1 else source,
                       first, [fields["path"] for _, fields in members]))
    counts = {len(files) for _, _, files in joined}
    if len(counts) > 1:
        short = min(joined, key=lambda j: len(j[2]))
        raise ManifestError(f"{short[0]}: {len(short[2])} channel file(s), but other images have {max(counts)}")
    return joined


def read_manifest(manifest: str | Path, image_dir: str | Path | None = None,
                  plate_format: int = 96, allow_outside: bool = False) -> list[ManifestEntry]:
    """Parse and validate every row; the first problem raises naming the file, line and field.
    A path that leaves the image folder (``../x``, an absolute path elsewhere) is refused unless
    ``allow_outside``: a manifest from someone else must not make phenorank read other files."""
    manifest = manifest if is_url(manifest) else Path(manifest)
    if image_dir is None:
        image_dir = str(manifest).rsplit("/", 1)[0] if is_url(manifest) else manifest.parent
    image_dir = image_dir if is_url(image_dir) else Path(image_dir)
    header, rows = _read_csv(manifest, REQUIRED)
    cleaned = [(f"{manifest} line {line}", {(k or "").strip(): (v or "").strip() for k, v in row.items()})
               for line, row in rows]
    entries = [make_entry(fields, image_dir, source, PLATE_FORMATS[plate_format], files)
               for source, fields, files in join_channels(cleaned)]
    if not entries:
        raise ManifestError(f"{manifest} has a header but no rows")
    if not allow_outside:
        inside = str(image_dir).rstrip("/") + "/" if is_url(image_dir) else os.path.normpath(os.path.abspath(image_dir))

        def outside(file) -> bool:
            if is_url(image_dir) or is_url(file):  # a URL is inside only under the URL of the folder
                return not (is_url(file) and file.startswith(inside) and "/../" not in file)
            return os.path.commonpath([inside, os.path.normpath(os.path.abspath(file))]) != inside

        for entry in entries:
            for file in entry.channel_files or (entry.path,):
                if outside(file):
                    raise ManifestError(f"{entry.source}: field 'path' {str(file)!r} leaves the image folder "
                                        f"{image_dir} (ingest --allow-outside reads it anyway)")
    first_seen: dict[Path, str] = {}
    for entry in entries:
        if entry.path in first_seen:
            raise ManifestError(f"{entry.source}: field 'path' {str(entry.path)!r} is listed already "
                                f"({first_seen[entry.path]})")
        first_seen[entry.path] = entry.source
    return entries


def compile_pattern(pattern: str) -> re.Pattern:
    """``{plate}_{well}_day{day}.tif`` -> a regular expression with one named group per field.

    ``{name}`` matches any text without ``/`` (``{well}`` a well name, ``{day}`` digits);
    ``{name:REGEX}`` gives the regular expression; ``*`` matches anything without ``/``.
    """
    default = {"well": r"[A-Za-z]\d{1,2}", "day": r"\d+", "col": r"\d+", "replicate": r"\d+"}
    parts, position = [], 0
    for match in re.finditer(r"\{(\w*)(?::([^{}]+))?\}|\*", pattern):
        parts.append(re.escape(pattern[position:match.start()]))
        if match.group(0) == "*":
            parts.append(r"[^/]*")
        elif not match.group(1):
            raise ManifestError(f"pattern {pattern!r}: every {{...}} needs a field name, e.g. {{well}}")
        else:
            name = match.group(1)
            parts.append(f"(?P<{name}>{match.group(2) or default.get(name, r'[^/]+?')})")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    try:
        return re.compile("".join(parts))
    except re.error as exc:
        raise ManifestError(f"pattern {pattern!r} is not usable: {exc}") from None


def entries_from_pattern(image_dir: str | Path, pattern: str, layout: str | Path | None = None,
                         plate_format: int = 96, suffixes: tuple[str, ...] = (".tif", ".tiff"),
                         defaults: dict[str, str] | None = None) -> tuple[list[ManifestEntry], list[str]]:
    """Entries for the files under ``image_dir`` whose relative path matches ``pattern``, with the
    fields of ``layout`` (a CSV with a ``well`` column, optionally ``plate``) joined by well, and
    ``defaults`` for fields that neither gives (e.g. one condition for every file).

    Returns the entries and the image files that did not match, so the caller can warn.
    """
    image_dir = image_dir if is_url(image_dir) else Path(image_dir)
    if not storage.is_dir(image_dir):
        raise ManifestError(f"image folder {image_dir} does not exist")
    regex = compile_pattern(pattern)
    plate = PLATE_FORMATS[plate_format]
    by_well = _read_layout(Path(layout), plate) if layout else {}
    matched, unmatched = [], []
    for relative in storage.relative_files(image_dir):
        if not relative.lower().endswith(suffixes):
            continue
        match = regex.fullmatch(relative)
        if not match:
            unmatched.append(relative)
            continue
        fields = {k: v for k, v in match.groupdict().items() if v is not None}
        source = f"file name {relative}"
        if "well" in fields:
            try:
                well = plate.parse_well(fields["well"])[2]
            except ValueError as exc:
                raise ManifestError(f"{source}: field 'well' {exc}") from None
            planned = by_well.get((fields.get("plate"), well)) or by_well.get((None, well)) or {}
            for key, value in planned.items():
                if key in fields and fields[key] != value:
                    raise ManifestError(f"{source}: field {key!r} is {fields[key]!r} in the file name but "
                                        f"{value!r} in the layout {layout}")
                fields.setdefault(key, value)
        matched.append((source, {**(defaults or {}), **fields, "path": relative}))
    entries = [make_entry(fields, image_dir, source, plate, files) for source, fields, files in join_channels(matched)]
    if not entries:
        raise ManifestError(f"no file under {image_dir} matches the pattern {pattern!r}"
                            + (f" (e.g. {unmatched[0]})" if unmatched else ""))
    return entries, unmatched


def entries_from_folders(root: str | Path, pattern: str | None = None,
                         suffixes: tuple[str, ...] = (".tif", ".tiff")) -> tuple[list[ManifestEntry], list[str]]:
    """Class-labelled folders: ``root/CLASS/file`` -> condition CLASS. ``pattern`` describes the
    file names inside a class folder, e.g. ``{donor}_{sample}_f{field}.tif`` (default: any name)."""
    root = root if is_url(root) else Path(root)
    if storage.is_dir(root) and not any("/" in f for f in storage.relative_files(root)):
        raise ManifestError(f"{root} has no class folders: expected {root}/CLASS/image files")
    return entries_from_pattern(root, "{condition}/" + (pattern or "*"), suffixes=suffixes)


def _read_layout(layout: Path, plate: PlateFormat) -> dict[tuple[str | None, str], dict[str, str]]:
    """A plate map: one row per well (and plate, when the column exists) with its condition etc."""
    header, rows = _read_csv(layout, ("well",))
    by_well: dict[tuple[str | None, str], dict[str, str]] = {}
    for line, row in rows:
        fields = {k.strip(): (v or "").strip() for k, v in row.items() if k and (v or "").strip()}
        try:
            well = plate.parse_well(fields.get("well", ""))[2]
        except ValueError as exc:
            raise ManifestError(f"{layout} line {line}: field 'well' {exc}") from None
        key = (fields.get("plate"), well)
        if key in by_well:
            raise ManifestError(f"{layout} line {line}: well {well} is listed twice")
        by_well[key] = {k: v for k, v in fields.items() if k not in ("well", "path")}
    return by_well


def _read_csv(path: Path | str, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict]]]:
    """Rows of a CSV as saved by Excel, LibreOffice or a script: UTF-8 with or without a byte
    order mark, UTF-16, or Latin-1 / Windows-1252; separated by commas, semicolons or tabs."""
    if not is_file(path):
        raise ManifestError(f"{path} does not exist")
    text = _decode(path)
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(f"{path}: missing required column(s) {', '.join(missing)} "
                                f"(found: {', '.join(header) or 'no header'})")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise ManifestError(f"{path} line {line}: {len(row[None])} field(s) more than the header's "
                                    f"{len(header)} columns ({', '.join(header)})")
            rows.append((line, row))
    except csv.Error as exc:
        raise ManifestError(f"{path} line {reader.line_num}: not readable as CSV ({exc})") from None
    return header, rows


def _decode(path: Path | str) -> str:
    raw = storage.read_bytes(path)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif raw.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # Excel's "CSV" on Windows; never fails
    if "\x00" in text:
        raise ManifestError(f"{path} holds NUL bytes: not a text CSV (save it as CSV UTF-8)")
    return text


def _number(text: str | None, kind: type, fail):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise fail(f"is {text!r}, expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise fail(f"is {text!r}, expected a finite number")
    if kind is int:
        if not value.is_integer():
            raise fail(f"is {text!r}, expected a whole number")
        if not -2 ** 31 <= value < 2 ** 31:
            raise fail(f"is {text!r}, outside the range of whole numbers the store keeps (±2147483647)")
        return int(value)
    return value
