"""Analyses run on the store: load a readout, compute, write the rows with their key (readout,
parameters, code), return them. The CLI commands, the demo and notebooks call these."""

from __future__ import annotations

from contextlib import closing

import numpy as np

from ..core.pipeline import digest
from ..core.store import Store
from ..registry.code import source_hash
from .dose_response import fit_treatments
from .hits import call_hits
from .qc import DEFAULT_LIMITS, IMAGE_LIMITS, artifact_flags, focus_score, image_flags, plate_qc
from .readouts import Readout, load_readout, only_plates


def _code(module: str) -> str:
    return source_hash((module,))


def _readout(store: Store, spec: str, day: int | None, plates: list[str]) -> Readout:
    return only_plates(load_readout(store, spec, day), plates)


def potency(store: Store, spec: str, run_id: str, control: str = "control", positive: str | None = None,
            fix_top: bool = False, bootstrap: int = 200, seed: int = 0, day: int | None = None,
            plates: list[str] | None = None) -> tuple[Readout, list[dict]]:
    """Dose-response fits per treatment of one readout, stored in ``dose_response``."""
    params = {"control": control, "positive": positive, "fix_top": fix_top, "bootstrap": bootstrap, "seed": seed,
              "day": day, "plates": list(plates or [])}
    data = _readout(store, spec, day, params["plates"])
    fits = fit_treatments(data.values, data.samples, control, bootstrap, seed, positive, fix_top)
    if not fits:
        raise ValueError(f"no treatment with a concentration in {data.label}")
    store.write_analysis("dose_response", data, params, digest("potency", params, data.source, data.name), fits,
                         _code("phenorank.analysis.dose_response"), run_id)
    return data, fits


def hits(store: Store, spec: str, run_id: str, control: str = "control", fdr: float = 0.05,
         by: tuple[str, ...] = ("treatment", "concentration"), day: int | None = None,
         plates: list[str] | None = None) -> tuple[Readout, list[dict]]:
    """Each treatment group against the control, stored in ``hits``."""
    params = {"control": control, "fdr": fdr, "by": list(by), "day": day, "plates": list(plates or [])}
    data = _readout(store, spec, day, params["plates"])
    rows = call_hits(data.values, data.samples, control, fdr, by=tuple(by))
    store.write_analysis("hits", data, params, digest("hits", params, data.source, data.name),
                         [{**r, "group_key": r["group"]} for r in rows], _code("phenorank.analysis.hits"), run_id)
    return data, rows


def qc(store: Store, spec: str, run_id: str, control: str = "control", positive: str | None = None,
       limits: dict | None = None, focus: bool = True, day: int | None = None,
       plates: list[str] | None = None) -> tuple[Readout, list[dict], list[dict]]:
    """Plate QC (``plate_qc``) and image flags (``image_qc``) on one readout."""
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    params = {"control": control, "positive": positive, "limits": limits, "focus": focus, "day": day,
              "plates": list(plates or [])}
    data = _readout(store, spec, day, params["plates"])
    plate_rows = plate_qc(data.values, data.samples, control, positive, limits)
    flags = image_flags(data.values, data.samples, focus_scores(store, data) if focus else None)
    key, code = digest("qc", params, data.source, data.name), _code("phenorank.analysis.qc")
    store.write_analysis("plate_qc", data, params, key, plate_rows, code, run_id)
    store.write_analysis("image_qc", data, params, key, flags, code, run_id)
    return data, plate_rows, flags


def qc_rankings(store: Store, rankings, run_id: str, control: str = "control", positive: str | None = None,
                limits: dict | None = None, day: int | None = None) -> list[str]:
    """Plate QC on the scores of each ranking (stored in ``plate_qc``, as :func:`qc` would);
    returns one warning per plate that fails on any of them. Nothing when no well is ``control``.
    The control's CV is not checked unless a limit is given: the spread of distances from the
    controls' own centre says nothing about the assay."""
    limits = {**DEFAULT_LIMITS, "control_cv": None, **(limits or {})}
    params = {"control": control, "positive": positive, "limits": limits, "focus": False, "day": day, "plates": []}
    failing: dict[str, list[tuple[str, str]]] = {}
    code = _code("phenorank.analysis.qc")
    for ranking in rankings:
        data = load_readout(store, ranking.ranking_id)
        if "plate" not in data.samples or not data.samples.matching(control).any():
            continue
        rows = plate_qc(data.values, data.samples, control, positive, limits)
        store.write_analysis("plate_qc", data, params, digest("qc", params, data.source, data.name), rows, code, run_id)
        for row in rows:
            if not row["passed"]:
                failing.setdefault(row["plate"], []).append((data.label, row["reasons"]))
    return [f"plate {plate} fails QC on {len(fails)} of {len(rankings)} rankings, e.g. {fails[0][0]}: {fails[0][1]} "
            "(limits: --qc-limit; table plate_qc)" for plate, fails in sorted(failing.items())]


def focus_scores(store: Store, data: Readout) -> np.ndarray | None:
    """Each item's focus score from its stored crop (images only; None for profiles)."""
    set_id = store.rankings([data.source])[0].embedding_set_id if data.kind == "ranking" else data.source
    es = store.embedding_set(set_id)
    key = es.preprocess_key if es else None
    if not key or key.startswith("profiles:"):
        return None
    scores = {}
    with closing(store.stream_crops([str(i) for i in data.ids], key, 256)) as crops:  # one scan, any order
        for ids, images in crops:
            scores.update({i: focus_score(image.astype(np.float32) / 65535.0) for i, image in zip(ids, images)})
    return np.array([scores[str(i)] for i in data.ids])


def image_artifacts(store: Store, run_id: str, limits: dict | None = None, plates: list[str] | None = None,
                    by: tuple[str, ...] = ("plate", "condition")) -> tuple[list[dict], list[dict], int]:
    """Seed 001's artifact flags from the statistics ingest stored (``image_stats``), written to
    ``image_flags`` (the ``qc_flagged`` / ``qc_reasons`` columns of every later evaluator's
    samples). Returns (layer statistics, flags, images without statistics)."""
    limits = {**IMAGE_LIMITS, **(limits or {})}
    rows = store.image_statistics(plates or ())
    flags = artifact_flags(rows, limits, tuple(by))
    if flags:
        store.write_image_flags(flags, {"limits": limits, "plates": list(plates or []), "by": list(by)},
                                _code("phenorank.analysis.qc"), run_id)
    return rows, flags, store.images_without_statistics()
