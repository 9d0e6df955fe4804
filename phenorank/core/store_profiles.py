"""The store's table of imported profiles: rows of features made elsewhere (CellProfiler,
DeepProfiler, pycytominer), one per well, image or cell, kept as items without images.

A mixin of :class:`phenorank.core.store.Store`; every query of the ``profiles`` table lives here.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

PROFILE_FIELDS = ("item_id", "dataset", "level", "plate", "well", "row", "col", "day", "condition", "treatment",
                  "concentration", "replicate", "edge", "extra")


class ProfileTables:
    con: object

    def write_profiles(self, items: pa.Table, embedding_set, feature_names: list[str], vectors: np.ndarray,
                       run_id: str) -> None:
        """Store a dataset's rows (``items``: the PROFILE_FIELDS as columns) and its feature vectors
        as one embedding set, in one transaction; a dataset imported again under the same name
        is replaced as a whole, so nothing of the old import lingers half."""
        self.forget_samples()
        now = datetime.now(timezone.utc)
        profile_table = items.append_column("run_id", pa.array([run_id] * items.num_rows, pa.string())) \
            .append_column("imported_at", pa.array([now] * items.num_rows, pa.timestamp("us", tz="UTC")))  # noqa: F841
        dataset = items.column("dataset")[0].as_py() if items.num_rows else None
        with self.transaction():
            stale = [r[0] for r in self.con.execute(
                "SELECT embedding_set_id FROM embedding_sets WHERE encoder = ? AND head = ? AND source_id IS NULL",
                [embedding_set.encoder, embedding_set.head]).fetchall()]
            self._drop_sets([s for s in stale if s != embedding_set.embedding_set_id])
            self.con.execute("DELETE FROM profiles WHERE dataset = ? OR item_id IN (SELECT item_id FROM profile_table)",
                             [dataset])
            self.con.execute("INSERT INTO profiles BY NAME SELECT * FROM profile_table")
            self._put_vectors(embedding_set, feature_names, items.column("item_id").to_pylist(), vectors, run_id,
                              wipe=True)

    def _drop_sets(self, set_ids: list[str]) -> None:
        """Inside a transaction: remove embedding sets, the sets derived from them (transformed,
        aggregated), and their rankings, scores and evaluations: results of a table that is gone."""
        pending, doomed = list(set_ids), set()
        while pending:
            set_id = pending.pop()
            if set_id in doomed:
                continue
            doomed.add(set_id)
            pending += [r[0] for r in self.con.execute(
                "SELECT embedding_set_id FROM embedding_sets WHERE source_id = ?", [set_id]).fetchall()]
        for set_id in doomed:
            rankings = [r[0] for r in self.con.execute(
                "SELECT ranking_id FROM rankings WHERE embedding_set_id = ?", [set_id]).fetchall()]
            for subject in [set_id, *rankings]:
                self.con.execute("DELETE FROM evaluations WHERE subject_id = ?", [subject])
                self.con.execute("DELETE FROM evaluation_groups WHERE subject_id = ?", [subject])
            self.con.execute("DELETE FROM scores WHERE ranking_id IN (SELECT ranking_id FROM rankings "
                             "WHERE embedding_set_id = ?)", [set_id])
            self.con.execute("DELETE FROM rankings WHERE embedding_set_id = ?", [set_id])
            self.con.execute("DELETE FROM embeddings WHERE embedding_set_id = ?", [set_id])
            self.con.execute("DELETE FROM embedding_sets WHERE embedding_set_id = ?", [set_id])

    def profile_summary(self) -> tuple[list[str], list[tuple]]:
        """One row per transform chain of imported profiles: NSC accuracy with its interval, the
        same with the compound allowed, activity (fraction of treatments at q below threshold,
        mean mAP) and consistency mAP; the newest evaluation of each, best NSC first."""
        return self.query("""
WITH newest AS (
    SELECT transforms, level, evaluator, name, coalesce(evaluator_params->>'mode', '') AS mode,
           arg_max(value, created_at) AS value, arg_max(ci_low, created_at) AS ci_low,
           arg_max(ci_high, created_at) AS ci_high
    FROM comparison WHERE encoder = 'profiles' AND ranker IS NULL GROUP BY ALL)
SELECT transforms, level,
       max(value) FILTER (WHERE evaluator = 'nsc-accuracy' AND name = 'nsc_accuracy') AS nsc_accuracy,
       max(printf('[%.2f, %.2f]', ci_low, ci_high)) FILTER (WHERE evaluator = 'nsc-accuracy' AND name = 'nsc_accuracy')
           AS nsc_interval,
       max(value) FILTER (WHERE evaluator = 'nsc-accuracy' AND name = 'not_excluded_accuracy') AS same_compound_allowed,
       max(value) FILTER (WHERE evaluator = 'map' AND mode = 'activity' AND name = 'fraction_significant')
           AS active_fraction,
       max(value) FILTER (WHERE evaluator = 'map' AND mode = 'activity' AND name = 'mean_map') AS activity_map,
       max(value) FILTER (WHERE evaluator = 'map' AND mode = 'consistency' AND name = 'mean_map') AS consistency_map
FROM newest GROUP BY transforms, level ORDER BY nsc_accuracy DESC NULLS LAST, transforms, level""")

    def profile_hits(self, transforms: str, q: float = 0.05, limit: int | None = None) -> tuple[list[str], list[tuple]]:
        """Treatments of one chain whose activity mAP has q below ``q`` (the newest activity map
        evaluation of that chain's well-level set), strongest first."""
        return self.query(f"""
WITH chosen AS (
    SELECT embedding_set_id, params_hash FROM group_results
    WHERE evaluator = 'map' AND encoder = 'profiles' AND transforms = '{transforms.replace("'", "''")}'
      AND evaluator_params->>'mode' = 'activity'
    ORDER BY embedding_set_id LIMIT 1)
SELECT group_key AS treatment, max(value) FILTER (WHERE name = 'map') AS map,
       max(value) FILTER (WHERE name = 'p_value') AS p_value, max(value) FILTER (WHERE name = 'q_value') AS q_value
FROM group_results JOIN chosen USING (embedding_set_id, params_hash)
GROUP BY group_key HAVING max(value) FILTER (WHERE name = 'q_value') < {float(q)}
ORDER BY map DESC, q_value, treatment {f'LIMIT {int(limit)}' if limit else ''}""")

    def profile_datasets(self) -> list[dict]:
        """Imported datasets: name, level, rows, plates."""
        result = self.con.sql("SELECT dataset, any_value(level) AS level, count(*) AS rows, "
                              "count(DISTINCT plate) AS plates FROM profiles GROUP BY dataset ORDER BY dataset")
        return [dict(zip(result.columns, row)) for row in result.fetchall()]
