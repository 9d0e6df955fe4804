"""The Python API: the store as pandas frames and arrays, the plugins by name, and the pipeline
steps with the command line's semantics (same keys, same reuse, same records in ``runs``).

    >>> import phenorank
    >>> screen = phenorank.open("phenorank.duckdb")
    >>> screen.ingest("plate/", manifest="plate/manifest.csv")
    >>> screen.run(encoders="raw,morphometrics", references="control", params={"rank-correlation": {"truth": "effect"}})
    >>> screen.comparison().sort_values("value", ascending=False).head()
    >>> vectors, meta = screen.embeddings("morphometrics")
    >>> phenorank.plugins("ranker"), phenorank.create("ranker", "centroid")

Reading opens the file read-only for each call, so a handle never holds a lock a command needs;
the steps open it for writing only while they run.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import numpy as np

from .core.store import Store, StoreError, open_store
from .registry import FAMILIES, get_registry
from .registry.contracts import Plugin


def list_plugins(family: str | None = None, pattern: str = "*") -> list[str]:
    """Plugin names of a family (``encoder``, ``ranker``, ...), or ``family/name`` of all
    families, that match a shell wildcard: ``plugins("metric", "*cos*")``."""
    registry = get_registry()
    if family is None:
        return sorted(f"{p.family}/{p.name}" for p in registry.all() if fnmatch.fnmatch(p.name, pattern))
    if family not in FAMILIES:
        raise ValueError(f"no plugin family {family!r}; families: {', '.join(FAMILIES)}")
    return [name for name in registry.names(family) if fnmatch.fnmatch(name, pattern)]


def create(family: str, name: str, **params: Any) -> Plugin:
    """A plugin instance with these parameters, checked as the command line checks ``-p``."""
    return get_registry().create(family, name, params)


def register(cls: type[Plugin]) -> type[Plugin]:
    """Add a plugin class to this process's registry (usable as a decorator); the commands and
    the steps below then know it by name. Installed plugins use an entry point instead."""
    get_registry().add(cls)
    return cls


def open(path: str | Path = "phenorank.duckdb", frames: str = "pandas") -> "Screen":  # noqa: A001 - like io.open
    """A handle on a store file (created on the first step that writes); ``frames``: "pandas" or
    "polars", what the reading methods return."""
    return Screen(path, frames)


class Screen:
    """One store file. Frames come back with every metadata field a column of its own (the
    manifest's extra fields expanded from JSON, numbers as numbers)."""

    def __init__(self, path: str | Path = "phenorank.duckdb", frames: str = "pandas"):
        if frames not in ("pandas", "polars"):
            raise ValueError(f"frames must be 'pandas' or 'polars', not {frames!r}")
        self.path = Path(path)
        self.frames = frames

    def _out(self, frame):
        if self.frames == "polars":
            import polars

            return polars.from_pandas(frame)
        return frame

    def __repr__(self) -> str:
        return f"phenorank.open({str(self.path)!r})"

    def _reading(self) -> Store:
        if not self.path.exists():
            raise StoreError(f"{self.path} does not exist yet: ingest or import something first")
        return open_store(self.path, read_only=True)

    # -- reading ---------------------------------------------------------------------------
    def sql(self, query: str):
        """Any read-only query as a pandas frame."""
        with self._reading() as store:
            return self._out(store.con.sql(query).df())

    def images(self, level: str | None = None):
        """Every item (image, object crop, aggregate, imported profile) with its metadata."""
        with self._reading() as store:
            ids = [r[0] for r in store.con.execute(
                "SELECT image_id FROM items WHERE ? IS NULL OR level = ? ORDER BY image_id", [level, level]).fetchall()]
            return self._out(_frame(store, ids))

    def _pandas(self, query: str):
        with self._reading() as store:
            return store.con.sql(query).df()

    def rankings(self):
        """One row per stored ranking: its method and id."""
        return self.sql("SELECT r.ranking_id, s.encoder, s.head, s.level, s.transforms, r.ranker, r.metric, "
                        "r.reference, r.day, r.n_images, r.created_at FROM rankings r JOIN embedding_sets s "
                        "USING (embedding_set_id) ORDER BY r.created_at")

    def scores(self, ranking: str):
        """One ranking's score per item with the item's metadata, highest score first; ``ranking``:
        its id or a unique prefix of it."""
        with self._reading() as store:
            ranking_id = _unique(ranking, [r.ranking_id for r in store.rankings()], "ranking")
            ids, values = store.load_scores(ranking_id)
            frame = _frame(store, list(ids))
        frame.insert(1, "score", values)
        return self._out(frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True))

    def embedding_sets(self):
        return self.sql("SELECT embedding_set_id, encoder, head, level, dim, transforms, preprocess_key, created_at "
                        "FROM embedding_sets ORDER BY created_at")

    def embeddings(self, embedding_set: str, day: int | None = None) -> tuple[np.ndarray, Any]:
        """(vectors (N, D) float32, metadata frame of the N items); ``embedding_set``: its id, or
        ``ENCODER[:HEAD]`` for that encoder's untransformed image-level set. The features' names:
        :meth:`features` (pandas frames also carry them in ``.attrs["feature_names"]``)."""
        with self._reading() as store:
            set_id = _set_id(store, embedding_set)
            ids, vectors = store.load_embeddings(set_id, day)
            frame = _frame(store, list(ids))
            frame.attrs["feature_names"] = store.feature_names(set_id)
        return vectors, self._out(frame)

    def features(self, embedding_set: str) -> list[str] | None:
        """The named features of an embedding set (morphometrics, profiles); None for unnamed ones."""
        with self._reading() as store:
            return store.feature_names(_set_id(store, embedding_set))

    def crops(self, ids, size: int = 96):
        """The stored preprocessed crops of these items as float32 (N, C, S, S) in [0, 1]."""
        from .core.preprocess import PreprocessParams

        ids = [str(i) for i in ids]
        with self._reading() as store:
            key = PreprocessParams(size=size).key
            return store.load_crops(ids, key) if ids else np.zeros((0, 1, size, size), np.float32)

    def evaluations(self):
        """Every evaluation value with its interval, the evaluator's parameters as columns."""
        frame = self._pandas("SELECT subject_kind, subject_id, evaluator, name, value, ci_low, ci_high, params, "
                             "code, created_at FROM evaluations ORDER BY created_at")
        return self._out(_expand_json(frame, "params", prefix="param_"))

    def comparison(self):
        """The comparison view: one row per method and measure (what ``phenorank compare`` pivots)."""
        frame = self._pandas("SELECT * FROM comparison")
        for column in [c for c in frame.columns if c.endswith("_params")]:
            frame = _expand_json(frame, column, prefix=column[: -len("params")])
        return self._out(frame)

    def potency(self):
        """Every stored dose-response fit (view ``potency``)."""
        return self._out(_expand_json(self._pandas("SELECT * FROM potency ORDER BY created_at, readout_label, "
                                                   "treatment"), "params", prefix="param_"))

    # -- steps, with the command line's semantics ---------------------------------------------
    def _command(self, name: str, *args: str) -> None:
        from .cli import cli

        try:
            cli.main(["--db", str(self.path), name, *map(str, args)], standalone_mode=False)
        except SystemExit as exc:  # click's own exit after printing help or an error
            if exc.code:
                raise RuntimeError(f"phenorank {name} exited with {exc.code}") from None

    def ingest(self, image_dir: str | Path, manifest: str | Path | None = None, **options: Any) -> "Screen":
        """``phenorank ingest``; options by their long names (``pattern="{plate}_{well}.tif"``)."""
        self._command("ingest", image_dir, *(["--manifest", manifest] if manifest else []), *_options(options))
        return self

    def embed(self, encoders: str = "raw,morphometrics", **options: Any) -> "Screen":
        self._command("embed", "--encoder", encoders, *_options(options))
        return self

    def rank(self, encoder: str, ranker: str = "centroid", metric: str = "cosine", reference: str = "control",
             **options: Any):
        """``phenorank rank``; returns the new ranking's scores."""
        listed = "SELECT ranking_id FROM rankings ORDER BY created_at"
        before = set(self._pandas(listed)["ranking_id"]) if self.path.exists() else set()
        self._command("rank", "--encoder", encoder, "--ranker", ranker, "--metric", metric, "--reference", reference,
                      *_options(options))
        after = list(self._pandas(listed)["ranking_id"])
        new = [r for r in after if r not in before] or after[-1:]
        return self.scores(new[-1])

    def evaluate(self, evaluators: str = "ranking-accuracy,rank-correlation", **options: Any):
        self._command("evaluate", "--evaluators", evaluators, *_options(options))
        return self.evaluations()

    def run(self, encoders: str = "raw,morphometrics", metrics: str = "cosine,euclidean", rankers: str = "centroid",
            references: str = "control", evaluators: str = "ranking-accuracy,rank-correlation",
            params: dict[str, dict[str, Any]] | None = None, **options: Any):
        """``phenorank run``: the grid, every cell evaluated; returns :meth:`comparison`."""
        flags = [f"-p{plugin}.{key}={value}" for plugin, values in (params or {}).items()
                 for key, value in values.items()]
        self._command("run", "--encoders", encoders, "--metrics", metrics, "--rankers", rankers,
                      "--references", references, "--evaluators", evaluators, *flags, *_options(options))
        return self.comparison()


def _options(options: dict[str, Any]) -> list[str]:
    """``{"exclude_edge": True, "size": 64}`` -> ``["--exclude-edge", "--size", "64"]``."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def _set_id(store: Store, embedding_set: str) -> str:
    sets = store.embedding_sets()
    encoder, _, head = embedding_set.partition(":")
    named = [s for s in sets if s.encoder == encoder and (not head or s.head == head)
             and s.transforms is None and s.level in ("image", "well")]
    return named[0].embedding_set_id if named else _unique(embedding_set, [s.embedding_set_id for s in sets],
                                                           "embedding set")


def _unique(given: str, known: list[str], what: str) -> str:
    matches = [k for k in known if k.startswith(given)]
    if len(matches) != 1:
        raise StoreError(f"{'no' if not matches else 'more than one'} {what} {'is' if not matches else 'starts with'} "
                         f"{given!r}" + (f" ({len(matches)})" if matches else ""))
    return matches[0]


def _frame(store: Store, ids: list[str]):
    """The items' metadata (``Samples``) as a frame: image_id first, then every field."""
    import pandas as pd

    samples = store.load_samples(ids) if ids else None
    if samples is None:
        return pd.DataFrame({"image_id": pd.Series([], dtype=object)})
    columns = {"image_id": samples.image_ids}
    columns.update({name: samples.columns[name] for name in samples.columns})
    return pd.DataFrame(columns)  # load_samples has made every all-numeric extra field a number already


def _expand_json(frame, column: str, prefix: str):
    """A JSON text column -> one column per key (``prefix`` + key), numbers as numbers."""
    import pandas as pd

    if column not in frame.columns:
        return frame
    parsed = [json.loads(v) if isinstance(v, str) and v else {} for v in frame[column]]
    keys = sorted({k for p in parsed if isinstance(p, dict) for k in p})
    expanded = pd.DataFrame({prefix + k: [_plain(p.get(k)) if isinstance(p, dict) else None for p in parsed]
                             for k in keys}, index=frame.index)
    return pd.concat([frame.drop(columns=[column]), expanded], axis=1)


def _plain(value):
    """Nested values stay readable text; scalars stay scalars."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
