"""The store's image artifact tables (seed 001's QC): ``image_stats``, one row per image and layer,
written at ingest with the image in the same transaction; ``image_flags``, one row per image,
the flags the newest ``phenorank qc-images`` drew from them, with its parameters.

A mixin of :class:`phenorank.core.store.Store`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import pyarrow as pa

from .image_quality import STATISTICS

STATS_COLUMNS = ("image_id", "layer", *STATISTICS, "spectrum_window", "code")
FLAG_COLUMNS = ("blurred", "saturated", "intensity_outlier", "flagged", "reasons")


class QualityTables:
    con: object

    def _write_image_stats(self, rows: list[dict]) -> None:
        """Inside the caller's transaction: replace the statistics of the images in ``rows``."""
        if not rows:
            return
        stats_table = pa.table({c: pa.array([r.get(c) for r in rows], pa.int32() if c in ("layer", "spectrum_window")  # noqa: F841
                                            else pa.string() if c in ("image_id", "code") else pa.float64())
                                for c in STATS_COLUMNS})
        self.con.execute("DELETE FROM image_stats WHERE image_id IN (SELECT image_id FROM stats_table)")
        self.con.execute("INSERT INTO image_stats BY NAME SELECT * FROM stats_table")

    def image_statistics(self, plates: Sequence[str] = ()) -> list[dict]:
        """Every stored image's layer statistics with its plate, condition, treatment, day and path."""
        where = "WHERE i.plate IN (SELECT unnest($1::VARCHAR[]))" if plates else ""
        table = self.con.sql(
            "SELECT s.*, coalesce(i.plate, '') AS plate, i.condition, i.treatment, i.day, i.path FROM image_stats s "
            f"JOIN images i USING (image_id) {where} ORDER BY i.plate, i.path, s.layer",
            params=[list(plates)] if plates else None).to_arrow_table()
        return table.to_pylist()

    def images_without_statistics(self) -> int:
        return self.con.sql("SELECT count(*) FROM images i ANTI JOIN image_stats s USING (image_id)").fetchall()[0][0]

    def write_image_flags(self, flags: list[dict], params: dict, code: str, run_id: str) -> None:
        """Replace every image's flags by ``flags`` (a flag is about the image, whatever drew it:
        one row per image, the newest)."""
        now = datetime.now(timezone.utc)
        flag_table = pa.table({  # noqa: F841
            "image_id": pa.array([f["image_id"] for f in flags], pa.string()),
            "plate": pa.array([f["plate"] for f in flags], pa.string()),
            **{c: pa.array([f[c] for f in flags], pa.string() if c == "reasons" else pa.bool_()) for c in FLAG_COLUMNS},
            "params": pa.array([json.dumps(params, sort_keys=True)] * len(flags), pa.string()),
            "code": pa.array([code] * len(flags), pa.string()), "run_id": pa.array([run_id] * len(flags), pa.string()),
            "created_at": pa.array([now] * len(flags), pa.timestamp("us", tz="UTC")),
        })
        with self.transaction():
            self.con.execute("DELETE FROM image_flags WHERE image_id IN (SELECT image_id FROM flag_table)")
            self.con.execute("INSERT INTO image_flags BY NAME SELECT * FROM flag_table")

    def image_flags_digest(self) -> str:
        """Which images are flagged now: part of the key of a result that selected images by it."""
        return str(self.con.sql("SELECT md5(coalesce(string_agg(image_id || ':' || flagged, ',' ORDER BY image_id), '')) "
                                "FROM image_flags").fetchall()[0][0])

    def image_flag_rows(self) -> list[dict]:
        return self.con.sql("SELECT * FROM image_flags ORDER BY plate, image_id").to_arrow_table().to_pylist()

    def flag_columns(self, wanted: pa.Table) -> dict[str, np.ndarray]:
        """``qc_flagged`` and ``qc_reasons`` for the items of ``wanted`` (image_id, position), when
        any image has flags: False and '' for items without."""
        if not self.con.sql("SELECT count(*) FROM image_flags").fetchall()[0][0]:
            return {}
        n = wanted.num_rows
        found = self.con.sql("SELECT w.position, f.flagged, f.reasons FROM wanted w "
                             "JOIN image_flags f USING (image_id)").fetchall()
        flagged, reasons = np.zeros(n, bool), np.full(n, "", dtype=object)
        for position, flag, why in found:
            flagged[position], reasons[position] = bool(flag), why or ""
        return {"qc_flagged": flagged, "qc_reasons": reasons}
