"""The store's cross-method tables: queries of the ``comparison`` view (a mixin of
:class:`phenorank.core.store.Store`; every query of that view lives here).

A table cell shows exactly one result. Two results fall into one cell when they differ only in
something the table has no column for: a parameter of the encoder, ranker, metric or evaluator
(``truth=effect`` vs ``truth=concentration``), the code that made them, or (in a pivot) a
dimension left out. Such differences become columns of their own, added only where they occur,
or, for a pivot asked to, the cell shows the best of them and says so.
"""

from __future__ import annotations

from typing import Sequence

from .store_access import StoreError

# The dimensions a method is described by (columns of the comparison view).
DIMENSIONS = ("encoder", "augmentation", "model", "head", "level", "transforms", "crop_set", "ranker", "metric", "reference",
              "day", "evaluator")

# What else can tell two results of one cell apart, in the order they are tried; each becomes a
# column (named as here) only when it does.
METHOD_VARIANTS = ("crop_set", "encoder_params", "ranker_params", "metric_params", "encoder_code", "ranker_code",
                   "metric_code")
MEASURE_VARIANTS = ("evaluator_params", "evaluator_code")


class AmbiguousCells(StoreError):
    """Several results fall into one cell and nothing stored tells them apart."""


def _dimension(name: str) -> str:
    return "model_id" if name == "model" else name


def _text(column: str) -> str:
    return f"coalesce(CAST({_dimension(column)} AS VARCHAR), '-')"


class ComparisonQueries:
    DIMENSIONS = DIMENSIONS

    @staticmethod
    def _cell_sql(ci: bool) -> str:
        if not ci:
            return "value"
        return ("CASE WHEN ci_low IS NULL THEN printf('%.4g', value) "
                "ELSE printf('%.3g [%.3g, %.3g]', value, ci_low, ci_high) END")

    def _collisions(self, source: str, keys: Sequence[str]) -> int:
        """How many cells of ``keys`` (SQL expressions over ``source``) hold more than one result."""
        group = ", ".join(keys)
        return self._one(f"SELECT count(*) FROM (SELECT 1 FROM {source} GROUP BY {group} HAVING count(*) > 1)")[0]

    def _separate(self, source: str, keys: list[str], candidates: Sequence[str]) -> list[str]:
        """The fewest of ``candidates`` (tried in order, each kept only if it splits some cell)
        that make every cell of ``keys`` hold one result; raises naming what still collides."""
        added: list[str] = []
        collisions = self._collisions(source, keys)
        for candidate in candidates:
            if not collisions:
                break
            fewer = self._collisions(source, [*keys, *map(_text, added), _text(candidate)])
            if fewer < collisions:
                added.append(candidate)
                collisions = fewer
        if collisions:
            raise AmbiguousCells(f"{collisions} cell(s) would hold several results that no stored dimension or "
                                 "parameter tells apart; narrow the table with --where (see `phenorank sql \"select "
                                 "* from comparison\"`)")
        return added

    def comparison_sql(self, kind: str = "rankings", ci: bool = False, where: str | None = None) -> str:
        """The wide table: one row per method, one column per measure. ``kind`` rankings (measures
        of scores) or embeddings (measures of embedding sets). A measure is labelled by its name
        (accuracy, spearman, ...) unless two evaluators share it; where one evaluator ran with
        several parameter sets (or code versions), the label carries them; where methods differ
        only in parameters or code, those become columns."""
        dims = ["encoder", "augmentation", "model", "head", "level", "transforms"] + (
            ["ranker", "metric", "reference", "day"] if kind == "rankings" else [])
        filters = ["ranker IS NOT NULL" if kind == "rankings" else "ranker IS NULL"] + ([f"({where})"] if where else [])
        source = f"(SELECT * FROM comparison WHERE {' AND '.join(filters)})"
        if not self._one(f"SELECT count(*) FROM {source} WHERE transforms <> 'none'")[0]:
            dims.remove("transforms")  # a column of 'none' only says nothing
        measure_keys = ["evaluator", "name"]
        measure_extra = self._separate(
            source, [*map(_text, dims), "crop_set", "encoder_params", "ranker_params", "metric_params", "encoder_code",
                     "ranker_code", "metric_code", *measure_keys], MEASURE_VARIANTS)
        measure_label = ("CASE WHEN count(DISTINCT evaluator) OVER (PARTITION BY name) > 1 "
                         "THEN evaluator || ':' || name ELSE name END")
        for extra in measure_extra:
            measure_label += f" || CASE WHEN count(DISTINCT {extra}) OVER (PARTITION BY evaluator, name) > 1 " \
                             f"THEN ' ' || CAST({extra} AS VARCHAR) ELSE '' END"
        method_extra = self._separate(source, [*map(_text, dims), *map(_text, measure_extra), *measure_keys],
                                      METHOD_VARIANTS)
        columns = dims + method_extra
        keys = ", ".join(f"{_dimension(d)} AS {d}" for d in dims) + "".join(
            f", CAST({c} AS VARCHAR) AS {c}" for c in method_extra)
        order = ", ".join(f"{d} NULLS FIRST" if d in ("augmentation", "model") else d for d in columns)
        return f"""\
PIVOT (SELECT {keys}, value, ci_low, ci_high, {measure_label} AS measure
       FROM {source})
ON measure USING first({self._cell_sql(ci)})
GROUP BY {', '.join(columns)}
ORDER BY {order}"""

    def pivot_sql(self, rows: Sequence[str], columns: Sequence[str], measure: str, ci: bool = False,
                  where: str | None = None, best: bool = False) -> str:
        """A seed-style table: ``rows`` x ``columns`` (dimensions of a method), cells = one measure
        (``evaluator:name`` or a name). Where several results would share a cell, the dimensions
        and parameters that tell them apart are added to the rows; with ``best``, the cell shows
        the best of them instead (the caller says so in its title)."""
        unknown = [d for d in [*rows, *columns] if d not in DIMENSIONS]
        if unknown or not rows or not columns:
            raise AmbiguousCells(f"pivot dimensions must be among {', '.join(DIMENSIONS)}; "
                                 f"got rows {list(rows)}, columns {list(columns)}")
        evaluator, _, name = measure.rpartition(":")
        filters = [f"name = '{name}'"] + ([f"evaluator = '{evaluator}'"] if evaluator else []) + \
            ([f"({where})"] if where else [])
        source = f"(SELECT * FROM comparison WHERE {' AND '.join(filters)})"
        rows = list(rows)
        if not best:
            left_out = [d for d in DIMENSIONS if d not in rows and d not in columns]
            rows += self._separate(source, [*map(_text, rows), *map(_text, columns)],
                                   [*left_out, *MEASURE_VARIANTS, *METHOD_VARIANTS])
        column = " || ' / ' || ".join(map(_text, columns))
        row_keys = ", ".join(f"{_text(r)} AS {r}" for r in rows)
        return f"""\
PIVOT (SELECT {row_keys}, {column} AS pivot_column, value, ci_low, ci_high
       FROM {source})
ON pivot_column USING arg_max({self._cell_sql(ci)}, value)
GROUP BY {', '.join(rows)}
ORDER BY {', '.join(rows)}"""

    def comparison_pivot(self, kind: str = "rankings", ci: bool = False, where: str | None = None
                         ) -> tuple[list[str], list[tuple]]:
        """The wide table of :meth:`comparison_sql`; empty when nothing of that kind is stored."""
        test = "ranker IS NOT NULL" if kind == "rankings" else "ranker IS NULL"
        if self._one(f"SELECT count(*) FROM comparison WHERE {test}")[0] == 0:
            return [], []
        return self.query(self.comparison_sql(kind, ci, where))

    def evaluators(self, kind: str = "embeddings") -> list[str]:
        """Names of the evaluators with results on rankings or on embedding sets."""
        test = "ranker IS NOT NULL" if kind == "rankings" else "ranker IS NULL"
        return [r[0] for r in self.con.execute(
            f"SELECT DISTINCT evaluator FROM comparison WHERE {test} ORDER BY evaluator").fetchall()]

    def best_embedding_sets(self, evaluator: str, name: str, limit: int = 3) -> list[dict]:
        """Embedding sets by one measure of one evaluator (its newest evaluation of each set), best first."""
        result = self.con.execute(
            "SELECT embedding_set_id, any_value(encoder) AS encoder, any_value(augmentation) AS augmentation, "
            "any_value(head) AS head, any_value(level) AS level, arg_max(value, created_at) AS value FROM comparison "
            "WHERE ranker IS NULL AND evaluator = ? AND name = ? GROUP BY embedding_set_id "
            "ORDER BY value DESC, embedding_set_id LIMIT ?",
            [evaluator, name, limit])
        columns = [d[0] for d in result.description]
        return [dict(zip(columns, row)) for row in result.fetchall()]

    def robustness_curves(self) -> dict[str, dict[str, list[float]]]:
        """Per embedding set (encoder/head level), per corruption: movement at strengths 1, 2, ..."""
        rows = self.con.execute(
            "SELECT encoder || coalesce(' (' || augmentation || ')', '') || '/' || head || ' ' || level, "
            "regexp_extract(name, '^(.*)_([0-9]+)_movement$', 1) AS kind, "
            "CAST(regexp_extract(name, '^(.*)_([0-9]+)_movement$', 2) AS INTEGER) AS strength, value "
            "FROM comparison WHERE evaluator = 'robustness' AND regexp_matches(name, '_[0-9]+_movement$') "
            "ORDER BY 1, kind, strength").fetchall()
        curves: dict[str, dict[str, list[float]]] = {}
        for label, kind, _, value in rows:
            curves.setdefault(label, {}).setdefault(kind, []).append(value)
        return curves

    def group_curves(self, evaluator: str) -> list[dict]:
        """Per embedding set and parameters of ``evaluator``: one dict with ``label``, ``groups``
        {group_key: {name: value}} and the evaluation's own ``values`` {name: value}."""
        rows = self.con.execute(
            "SELECT embedding_set_id, params_hash, encoder || '/' || head || ' ' || level || "
            "CASE WHEN transforms <> 'none' THEN ' ' || transforms ELSE '' END, group_key, name, value "
            "FROM group_results WHERE evaluator = ? ORDER BY 1, 2, 4, 5", [evaluator]).fetchall()
        curves: dict[tuple, dict] = {}
        for set_id, params_hash, label, group, name, value in rows:
            entry = curves.setdefault((set_id, params_hash), {"embedding_set_id": set_id, "label": label, "groups": {},
                                                              "values": {}})
            entry["groups"].setdefault(group, {})[name] = value
        for set_id, params_hash, name, value in self.con.execute(
                "SELECT subject_id, params_hash, name, value FROM evaluations WHERE evaluator = ?", [evaluator]).fetchall():
            if (set_id, params_hash) in curves:
                curves[(set_id, params_hash)]["values"][name] = value
        return list(curves.values())

    def evaluated_sets(self, evaluator: str, min_items: int = 0, max_items: int | None = None) -> list[str]:
        """The embedding sets ``evaluator`` has judged, newest first; only those holding between
        ``min_items`` and ``max_items`` vectors (counted, not loaded)."""
        return [r[0] for r in self.con.execute(
            "SELECT e.subject_id FROM evaluations e JOIN (SELECT embedding_set_id, count(*) AS n FROM embeddings "
            "GROUP BY ALL) v ON v.embedding_set_id = e.subject_id "
            "WHERE e.evaluator = ? AND e.subject_kind = 'embedding_set' AND v.n >= ? AND v.n <= coalesce(?, v.n) "
            "GROUP BY e.subject_id ORDER BY max(e.created_at) DESC", [evaluator, min_items, max_items]).fetchall()]

    def ranked_methods(self) -> list[dict]:
        """Rankings with their description and main measures, best first.

        Each measure is the newest evaluation of its kind (one result, never the largest of
        several parameter sets); ``truth`` says which column the Spearman is against. Order: by
        ranking accuracy, then Spearman; a ranking whose Spearman is significantly negative
        (it orders the truth backwards) comes after every other, whatever its accuracy."""
        result = self.con.sql("""
            WITH spearman AS (
                SELECT s.ranking_id, s.value, s.ci_high, s.created_at, s.evaluator_params->>'truth' AS truth,
                       p.value AS p_value
                FROM comparison s LEFT JOIN comparison p
                  ON p.ranking_id = s.ranking_id AND p.evaluator = s.evaluator AND p.created_at = s.created_at
                 AND p.name = replace(s.name, 'spearman', 'p_value')
                WHERE s.evaluator = 'rank-correlation' AND (s.name = 'spearman' OR
                      s.name = 'spearman_' || split_part(s.evaluator_params->>'truth', ',', 1))),
            newest AS (
                SELECT ranking_id, arg_max(value, created_at) AS spearman, arg_max(truth, created_at) AS truth,
                       arg_max(coalesce(ci_high < 0, p_value < 0.05 AND value < 0), created_at) AS reversed
                FROM spearman GROUP BY ranking_id)
            SELECT ranking_id, embedding_set_id, encoder, augmentation, head, transforms, ranker, metric, reference, day,
                   any_value(CAST(ranker_params AS VARCHAR)) AS ranker_params,
                   arg_max(value, created_at) FILTER (WHERE evaluator = 'ranking-accuracy' AND name = 'accuracy')
                       AS accuracy,
                   any_value(n.spearman) AS spearman, any_value(n.truth) AS truth,
                   coalesce(any_value(n.reversed), false) AS reversed,
                   arg_max(value, created_at) FILTER (WHERE evaluator = 'holdout-range' AND name = 'outside')
                       AS holdout_outside
            FROM comparison LEFT JOIN newest n USING (ranking_id) WHERE ranking_id IS NOT NULL
            GROUP BY ALL
            ORDER BY reversed, accuracy DESC NULLS LAST, spearman DESC NULLS LAST, ranking_id""")
        return [dict(zip(result.columns, row)) for row in result.fetchall()]
