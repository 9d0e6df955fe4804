"""The store's tables for what lies below and above an image: crop sets, objects found in images,
and groups that aggregate items (images or objects) into samples.

A mixin of :class:`phenorank.core.store.Store` (kept apart so that neither file grows past what
one reads in a sitting); every query of these tables lives here.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import pyarrow as pa

CROP_FIELDS = ("image_id", "preprocess_key", "size", "crop_x", "crop_y", "crop_side", "layers_used", "pixels")
OBJECT_FIELDS = ("object_id", "image_id", "preprocess_key", "label", "x", "y", "width", "height", "area")
GROUP_FIELDS = ("group_id", "level", "path", "plate", "well", "row", "col", "day", "condition", "treatment",
                "concentration", "replicate", "n_layers", "height", "width", "dtype", "edge", "extra", "n_members")


def as_column(values: list) -> np.ndarray:
    """Extra manifest values arrive as text; make the column numeric when every value is."""
    try:
        return np.array([np.nan if v in (None, "") else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(["" if v is None else str(v) for v in values], dtype=object)


class ObjectTables:
    con: object

    # -- crop sets: one per preprocessing (images) or per segmentation and crop settings (objects)
    def write_crop_set(self, preprocess_key: str, kind: str, params: dict, run_id: str) -> None:
        self.con.execute(
            "INSERT INTO crop_sets VALUES (?, ?, ?, ?, ?) ON CONFLICT (preprocess_key) DO UPDATE SET "
            "params = excluded.params, run_id = excluded.run_id, created_at = excluded.created_at",
            [preprocess_key, kind, json.dumps(params, sort_keys=True, default=str), run_id,
             datetime.now(timezone.utc)])

    def crop_sets(self, kind: str | None = None) -> list[dict]:
        """Crop sets with their number of crops, newest first."""
        rows = self.con.execute(
            "SELECT s.preprocess_key, s.kind, s.params, "
            "(SELECT count(*) FROM crops c WHERE c.preprocess_key = s.preprocess_key) AS n "
            "FROM crop_sets s WHERE ? IS NULL OR s.kind = ? ORDER BY s.created_at DESC NULLS LAST, s.preprocess_key",
            [kind, kind]).fetchall()
        return [{"preprocess_key": r[0], "kind": r[1], "params": json.loads(r[2] or "{}"), "crops": r[3]}
                for r in rows]

    # -- objects ---------------------------------------------------------------------------
    def images_to_segment(self, image_key: str, objects_key: str) -> list[tuple[str, str]]:
        """(image id, path) of the images with a crop in ``image_key`` not yet segmented for
        ``objects_key``."""
        return [tuple(r) for r in self.con.execute(
            "SELECT i.image_id, i.path FROM images i JOIN crops c ON c.image_id = i.image_id AND c.preprocess_key = ? "
            "WHERE i.image_id NOT IN (SELECT image_id FROM segmented WHERE preprocess_key = ?) ORDER BY i.image_id",
            [image_key, objects_key]).fetchall()]

    def write_objects(self, objects_key: str, segmented: Sequence[tuple[str, int]], objects: list[dict],
                      crops: list[dict]) -> None:
        """The objects found in some images (and their crops), in one transaction; objects stored
        earlier for these images under the same key are replaced."""
        self.forget_samples()
        segmented_table = pa.table({  # noqa: F841  (tables are read by name in the SQL below)
            "image_id": pa.array([i for i, _ in segmented], pa.string()),
            "preprocess_key": pa.array([objects_key] * len(segmented), pa.string()),
            "n_objects": pa.array([n for _, n in segmented], pa.int32())})
        object_table = pa.table({c: [o[c] for o in objects] for c in OBJECT_FIELDS}) if objects else None  # noqa: F841
        crop_table = pa.table({  # noqa: F841
            c: pa.array([crop[c] for crop in crops], type=pa.binary() if c == "pixels" else None) for c in CROP_FIELDS
        }) if crops else None
        with self.transaction():
            self.con.execute("DELETE FROM crops WHERE preprocess_key = ? AND image_id IN (SELECT object_id FROM objects "
                             "WHERE preprocess_key = ? AND image_id IN (SELECT image_id FROM segmented_table))",
                             [objects_key, objects_key])
            self.con.execute("DELETE FROM objects WHERE preprocess_key = ? AND image_id IN "
                             "(SELECT image_id FROM segmented_table)", [objects_key])
            self.con.execute("DELETE FROM segmented WHERE preprocess_key = ? AND image_id IN "
                             "(SELECT image_id FROM segmented_table)", [objects_key])
            self.con.execute("INSERT INTO segmented BY NAME SELECT * FROM segmented_table")
            if objects:
                self.con.execute("INSERT INTO objects BY NAME SELECT * FROM object_table")
            if crops:
                self.con.execute("INSERT INTO crops BY NAME SELECT * FROM crop_table")

    def object_counts(self, objects_key: str) -> dict[str, int]:
        """Objects per segmented image."""
        return dict(self.con.execute("SELECT image_id, n_objects FROM segmented WHERE preprocess_key = ?",
                                     [objects_key]).fetchall())

    # -- groups (aggregates) ---------------------------------------------------------------
    def write_groups(self, groups: list[dict], members: Sequence[tuple[str, str]]) -> None:
        """Insert or replace groups (metadata shared by their members) and their member lists."""
        self.forget_samples()
        if not groups:
            return
        group_table = pa.table({  # noqa: F841
            c: pa.array([json.dumps(g.get(c) or {}, sort_keys=True, default=str) if c == "extra" else g.get(c)
                         for g in groups], type=_GROUP_TYPES.get(c)) for c in GROUP_FIELDS})
        member_table = pa.table({"group_id": pa.array([g for g, _ in members], pa.string()),  # noqa: F841
                                 "member_id": pa.array([m for _, m in members], pa.string())})
        with self.transaction():
            self.con.execute("DELETE FROM groups WHERE group_id IN (SELECT group_id FROM group_table)")
            self.con.execute("DELETE FROM group_members WHERE group_id IN (SELECT group_id FROM group_table)")
            self.con.execute("INSERT INTO groups BY NAME SELECT * FROM group_table")
            self.con.execute("INSERT INTO group_members BY NAME SELECT * FROM member_table")


_GROUP_TYPES = {
    "group_id": pa.string(), "level": pa.string(), "path": pa.string(), "plate": pa.string(), "well": pa.string(),
    "row": pa.string(), "col": pa.int32(), "day": pa.int32(), "condition": pa.string(), "treatment": pa.string(),
    "concentration": pa.float64(), "replicate": pa.int32(), "n_layers": pa.int32(), "height": pa.int32(),
    "width": pa.int32(), "dtype": pa.string(), "edge": pa.bool_(), "extra": pa.string(), "n_members": pa.int32(),
}
