"""The store's tables of readouts over results: dose-response fits, hit calls, plate and image QC.

A mixin of :class:`phenorank.core.store.Store`. Each result row carries its readout (a ranking's
scores or a named feature of an embedding set), the analysis parameters and their hash, and the
code that computed it; writing the same analysis again replaces its rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa

ANALYSIS_TABLES = ("dose_response", "hits", "plate_qc", "image_qc")


class AnalysisTables:
    con: object

    def write_analysis(self, table: str, readout, params: dict, params_hash: str, rows: list[dict], code: str,
                       run_id: str) -> None:
        """Replace the rows of one analysis (table, readout, parameters) with ``rows``."""
        if table not in ANALYSIS_TABLES:
            raise ValueError(f"unknown analysis table {table!r}")
        columns = [r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]
        fixed = {"readout_kind": readout.kind, "readout_source": readout.source, "readout": readout.name,
                 "params": json.dumps(params, sort_keys=True, default=str), "params_hash": params_hash, "code": code,
                 "run_id": run_id, "created_at": datetime.now(timezone.utc)}
        data = {c: [fixed[c] if c in fixed else row.get(c) for row in rows] for c in columns}
        new_rows = pa.table(data) if rows else None  # noqa: F841
        with self.transaction():
            self.con.execute(f"DELETE FROM {table} WHERE readout_source = ? AND readout = ? AND params_hash = ?",
                             [readout.source, readout.name, params_hash])
            if rows:
                self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")

    def pairs(self) -> list[dict]:
        """The day-to-day pairs: plate, well, early_day, late_day, early_image_id, late_image_id."""
        result = self.con.execute("SELECT * FROM pairs ORDER BY plate, well, early_day")
        return [dict(zip([d[0] for d in result.description], row)) for row in result.fetchall()]

    def analysis_rows(self, table: str, readout_source: str, readout: str, params_hash: str,
                      order: str = "") -> tuple[list[str], list[tuple]]:
        if table not in ANALYSIS_TABLES:
            raise ValueError(f"unknown analysis table {table!r}")
        result = self.con.execute(
            f"SELECT * EXCLUDE (readout_kind, readout_source, readout, params, params_hash, code, run_id, created_at) "
            f"FROM {table} WHERE readout_source = ? AND readout = ? AND params_hash = ? {order}",
            [readout_source, readout, params_hash])
        return [d[0] for d in result.description], result.fetchall()

    def potency_summary(self) -> tuple[list[str], list[tuple]]:
        """EC50 [95% interval] per readout (rows) and treatment (columns), from the ``potency``
        view; an unfitted curve shows its status (inactive, > max dose, < min dose). Each row is one
        analysis: a readout fitted twice with other parameters or code gets a row each, told apart
        by the params / code columns (shown only then)."""
        result = self.con.execute(
            "SELECT readout_label, params_hash, params, code, treatment, status, ec50, ec50_low, ec50_high, min_dose, "
            "max_dose FROM potency ORDER BY created_at, readout_label, treatment").fetchall()
        rows: dict[tuple, dict] = {}
        treatments: list[str] = []
        for label, params_hash, params, code, treatment, status, ec50, low, high, min_dose, max_dose in result:
            cell = rows.setdefault((label, params_hash, code), {"params": params})
            cell[treatment] = _potency_cell(status, ec50, low, high, min_dose, max_dose)
            if treatment not in treatments:
                treatments.append(treatment)
        labels = [key[0] for key in rows]
        ambiguous = {label for label in labels if labels.count(label) > 1}
        extra = ["params", "code"] if ambiguous else []
        columns = ["readout", *extra, *sorted(treatments)]
        table = []
        for (label, _, code), cell in rows.items():
            details = [cell["params"], (code or "")[:12]] if extra else []
            table.append((label, *details, *(cell.get(t, "") for t in sorted(treatments))))
        return columns, table


def _potency_cell(status, ec50, low, high, min_dose, max_dose) -> str:
    if status == "ok":
        interval = f" [{'<' + format(min_dose, 'g') if low is None else format(low, '.3g')}, " \
                   f"{'>' + format(max_dose, 'g') if high is None else format(high, '.3g')}]"
        return f"{ec50:.3g}{interval}"
    if status == "above range":
        return f"> {max_dose:g}"
    if status == "below range":
        return f"< {min_dose:g}"
    return status

