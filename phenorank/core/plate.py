"""Plate geometry: well names, rows and columns of 96- and 384-well plates, edge wells."""

from __future__ import annotations

import re
from dataclasses import dataclass

WELL_PATTERN = re.compile(r"^([A-Za-z])0*([1-9][0-9]?)$")


@dataclass(frozen=True)
class PlateFormat:
    wells: int
    rows: int
    cols: int

    @property
    def last_row(self) -> str:
        return chr(ord("A") + self.rows - 1)

    def parse_well(self, well: str) -> tuple[str, int, str]:
        """'b3' -> ('B', 3, 'B03'); a well that is not on this plate is a ValueError."""
        match = WELL_PATTERN.match(well.strip())
        if not match:
            raise ValueError(f"{well!r} is not a well name like A01")
        row, col = match.group(1).upper(), int(match.group(2))
        if row > self.last_row or not 1 <= col <= self.cols:
            raise ValueError(f"{well!r} is not on a {self.wells}-well plate (rows A-{self.last_row}, columns "
                             f"1-{self.cols})" + ("; is it a 384-well plate? (--plate-format 384)" if self.wells == 96 else ""))
        return row, col, f"{row}{col:02d}"

    def is_edge(self, row: str, col: int) -> bool:
        """Outer ring of the plate, where evaporation makes wells behave differently."""
        return row in ("A", self.last_row) or col in (1, self.cols)


PLATE_FORMATS = {96: PlateFormat(96, 8, 12), 384: PlateFormat(384, 16, 24)}
