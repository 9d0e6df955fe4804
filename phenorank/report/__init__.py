"""``phenorank report``: one self-contained HTML page (figures inlined as PNG) of what the store
holds: the comparison tables, and for the best rankings the class strips, a 2-D projection of
the embeddings, plate heatmaps and the ranked treatments with confidence intervals."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..core.statistics import group_means, holdout_mask
from ..core.store import Store, StoreError
from . import plate_map, plots
from .analysis import analysis_sections
from .exploration import exploration_sections
from .places import time_lapse_sections
from .quality import preprocessing_sections, quality_sections
from .segmentation import segmentation_sections
from .training import training_sections
from .page import figure as _img, render, table as _table
from .provenance import ranking_made_by

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0} td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left} .note{color:#666;font-size:12px}
img{max-width:100%} .figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
nav{font-size:13px;line-height:1.7;background:#f7f7f7;padding:0.5em 0.8em;border-radius:4px}
th:hover{background:#e8e8e8}
.half img{max-width:48%}
details.made{font-size:11px;color:#555;margin:0.2em 0 0.8em} details.made pre{background:#f7f7f7;padding:0.5em;
 white-space:pre-wrap;max-height:20em;overflow:auto}
"""


def describe(method: dict) -> str:
    import json

    encoder = method["encoder"] + (f" ({method['augmentation']})" if method.get("augmentation") else "")
    day = method["day"] if method["day"] is not None else "all"
    group = json.loads(method.get("ranker_params") or "{}").get("group")
    reference = f"reference {method['reference']}" + (f" per {group}" if group else "")
    transforms = f" · {method['transforms']}" if method.get("transforms") not in (None, "none") else ""
    return f"{encoder}/{method['head']}{transforms} · {method['ranker']} · {method['metric']} · {reference} · day {day}"


def project_2d(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    if method == "umap":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import umap

            return umap.UMAP(n_components=2, n_neighbors=max(2, min(15, len(vectors) - 1)),
                             random_state=seed).fit_transform(vectors)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(np.asarray(vectors, np.float64))


def build_report(store: Store, out: str | Path, top: int = 3, projection: str = "pca",
                 holdout: str = "holdout", command: str | None = None) -> Path:
    """Write the report of what the store holds; ``command``: what made it, shown on the page
    (default: this process's command line)."""
    import sys

    methods = store.ranked_methods()
    judged = store.evaluators("embeddings")
    if not methods and not judged and not store.potency_summary()[1]:
        raise StoreError(f"{store.path} holds no evaluations yet: run `phenorank run` (or `phenorank demo`)")
    sections = _profile_sections(store)
    sections += quality_sections(store)
    sections += preprocessing_sections(store)
    sections += analysis_sections(store)
    sections += segmentation_sections(store)
    if methods:
        sections += _ranking_sections(store, methods, top, projection, holdout)
    sections += _embedding_sections(store, judged, top, projection, with_figures=not methods)
    sections += exploration_sections(store)
    sections += training_sections(store)
    command = command or " ".join(["phenorank", *sys.argv[1:]])
    out = Path(out)
    out.write_text(render(sections, STYLE, str(store.path), f"{len(methods)} evaluated rankings, {len(judged)} "
                          "evaluators of embeddings", command))
    return out


def _profile_sections(store: Store) -> list[str]:
    """Imported profiles: which processing recovers mechanism and activity, and the hit list of
    the best chain (activity mAP at q < 0.05)."""
    if not store.profile_datasets():
        return []
    columns, rows = store.profile_summary()
    rows = [r for r in rows if any(v is not None for v in r[2:])]
    if not rows:
        return []
    sections = ["<h2>Profiles: which processing recovers mechanism and activity</h2><p class=note>NSC accuracy: "
                "each treatment's nearest other treatment shares its mechanism, the same compound never counted "
                "(95% interval over treatments); same_compound_allowed shows what that exclusion guards against. "
                "active_fraction: treatments whose replicates stand out from the controls at q &lt; 0.05 (mAP, "
                "Benjamini-Hochberg). consistency_map: treatments of one mechanism retrieve each other.</p>"
                + _table(columns, rows)]
    scored = [r for r in rows if r[2] is not None]
    if scored:
        groups = [{"label": f"{r[0]} ({r[1]})", "mean": r[2], "condition": "",
                   **dict(zip(("low", "high"), _interval(r[3])))} for r in scored]
        sections.append("<div class=figs>" + _img(plots.treatment_plot(
            groups, "not-same-compound 1-NN mechanism accuracy by processing", "NSC accuracy, 95% interval over "
            "treatments"), "nsc") + "</div>")
    best = next((r[0] for r in rows if r[5] is not None), None)
    if best is not None:
        hit_columns, hits = store.profile_hits(best)
        sections.append(f"<h2>Hits of {html.escape(best)}: treatments active at q &lt; 0.05</h2>"
                        f"<p class=note>{len(hits)} treatments (compound|concentration), strongest first.</p>"
                        + _table(hit_columns, hits, limit=30))
    return sections


def _interval(text: str | None) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.strip("[]").split(","))
        return low, high
    except (AttributeError, ValueError):
        return float("nan"), float("nan")


def _embedding_sections(store: Store, judged: list[str], top: int, projection: str, with_figures: bool) -> list[str]:
    """One table per evaluator of embeddings; without rankings also the best sets in 2-D and the
    robustness curves."""
    sections = []
    for evaluator in judged:
        condition = f"evaluator = '{evaluator}' AND NOT regexp_matches(name, '_[0-9]+_')"
        columns, rows = store.comparison_pivot("embeddings", ci=True, where=condition)
        if rows:
            sections.append(f"<h2>Embeddings judged by {html.escape(evaluator)}</h2>" + _table(columns, rows))
    if not with_figures:
        return sections
    for evaluator in ("clustering-kmeans", "linear-probe", "kmeans-accuracy"):
        measure = {"clustering-kmeans": "ari", "linear-probe": "test_accuracy"}.get(evaluator, "euclidean_mean")
        best = store.best_embedding_sets(evaluator, measure, top)
        if not best:
            continue
        figures = []
        for es in best:
            ids, vectors = store.load_embeddings(es["embedding_set_id"])
            if len(ids) < 3:
                continue
            labels = store.load_samples(ids)["condition"].astype(str)
            title = f"{es['encoder']}/{es['head']} {es['level']}: {evaluator} {measure} {_fmt(es['value'])}"
            figures.append(_img(plots.projection_plot(project_2d(vectors, projection), labels, title,
                                                      projection.upper()), title))
        sections.append(f"<h2>The best embeddings by {evaluator} {measure}, in 2-D ({projection.upper()})</h2>"
                        "<p class=note>One dot per item (object, image or sample), coloured by class.</p>"
                        "<div class=figs>" + "".join(figures) + "</div>")
        break
    curves = store.robustness_curves()
    if curves:
        sections.append("<h2>Robustness to corruptions</h2><p class=note>How far embeddings move when the images are "
                        "corrupted at strengths 1 to 5 (seed 003); 1 = as far as a typical other item. Flatter is "
                        "more robust.</p><div class=figs>"
                        + _img(plots.robustness_plot(curves, "embedding movement under corruption"), "robustness")
                        + "</div>")
    return sections


def _ranking_sections(store: Store, methods: list[dict], top: int, projection: str, holdout: str) -> list[str]:
    best = methods[0]
    sections = []

    # The comparison: ranking accuracy per method (rows) and reference (columns), with intervals.
    columns, rows = store.query(store.pivot_sql(["encoder", "head", "ranker", "metric"], ["reference"],
                                                "ranking-accuracy:accuracy", ci=True))
    if rows:
        sections.append("<h2>Comparison: ranking accuracy by method and reference</h2>"
                        "<p class=note>Seed 000's three-class accuracy (control / single dose / exploded in separate "
                        "bands of the score: 1 = no overlap), 95% bootstrap interval over wells in brackets.</p>"
                        + _table(columns, rows))
    measures = [k for k in ("accuracy", "spearman", "truth", "holdout_outside") if any(m[k] is not None for m in methods)]
    notes = {"spearman": "spearman: against the truth column named next to it (the newest rank-correlation of "
                         "each ranking).",
             "holdout_outside": "holdout_outside: hold-out images scored outside the single-dose class's range "
                                "(seed 000 table 10.1; fewer = better)."}
    reversed_note = (" A ranking whose Spearman is significantly negative orders the truth backwards; it is listed "
                     "after all others, whatever its accuracy." if any(m["reversed"] for m in methods) else "")
    sections.append("<h2>Best methods</h2><p class=note>Chosen on the same images these numbers come from, so the "
                    "best method's figures are optimistic: confirm the choice on a plate it was not chosen on "
                    "(or on the hold-out images, ringed in the strips below)." + reversed_note + " "
                    + " ".join(notes[k] for k in measures if k in notes)
                    + "</p>" + _table(["method", *measures], [(describe(m), *(m[k] for k in measures))
                                                               for m in methods], limit=15))

    # For the best rankings: where each class falls on the score scale.
    figures = []
    for method in methods[:top]:
        ids, scores = store.load_scores(method["ranking_id"])
        samples = store.load_samples(ids)
        held = holdout_mask(samples, holdout)
        title = f"{describe(method)}\naccuracy {_fmt(method['accuracy'])}, Spearman {_fmt(method['spearman'])}"
        figures.append(_img(plots.strip_plot(scores, samples["condition"].astype(str), held, title), title))
    sections.append("<h2>Scores per class, best rankings</h2><p class=note>One dot per image; black line = class "
                    "mean; black edge = hold-out image.</p><div class=figs>" + "".join(figures) + "</div>"
                    + "".join(ranking_made_by(store, m["ranking_id"]) for m in methods[:top]))
    best_made_by = ranking_made_by(store, best["ranking_id"])

    ids, scores = store.load_scores(best["ranking_id"])
    samples = store.load_samples(ids)
    sections += [section + best_made_by for section in _thumbnail_sections(store, best, ids, scores, samples)]
    sections += [section + best_made_by for section in time_lapse_sections(samples, scores, describe(best))]
    set_ids, vectors = store.load_embeddings(best["embedding_set_id"], best["day"])
    labels = store.load_samples(set_ids)["condition"].astype(str)
    points = project_2d(vectors, projection)
    sections.append(f"<h2>Embeddings in 2-D ({projection.upper()})</h2><div class=figs>" + _img(
        plots.projection_plot(points, labels, f"{best['encoder']}/{best['head']}, " + (
            f"day {best['day']}" if best["day"] is not None else "all days"),
                              projection.upper()), "projection") + "</div>"
                    + f"<p class=note>Embedding set {html.escape(str(best['embedding_set_id']))}.</p>" + best_made_by)

    heatmaps = []
    plate_names = samples["plate"].astype(str)
    has_wells = all(w is not None and str(w) not in ("", "nan") for w in samples["well"])
    for plate in sorted(set(plate_names))[:6] if has_wells else []:
        mask = plate_names == plate
        on_plate = samples.subset(mask)
        states = plate_map.well_states(store, plate, best["day"], set(on_plate["well"].astype(str)))
        heatmaps.append(_img(plate_map.plate_heatmap(on_plate, scores[mask], f"{plate}: {describe(best)}",
                                                     states=states), plate))
    if heatmaps:
        sections.append("<h2>Plate heatmap of the best ranking</h2><p class=note>C / S / E: control, single dose, "
                        "exploded wells; screen wells carry their treatment and dose; white: nothing imaged; grey: "
                        "an image without a score here; hatched: a file rejected at ingest (table rejects); the edge "
                        "ring lies outside the dashed line.</p><div class=figs>" + "".join(heatmaps) + "</div>"
                        + best_made_by)

    groups = group_means(scores, samples)
    for g in groups:
        dose = f" {g['concentration']:g}" if isinstance(g["concentration"], float) else ""
        g["label"] = (f"{g['treatment']}{dose}" + ("" if g["condition"] == "screen" else f" ({g['condition']})")
                      if g["treatment"] else g["condition"])
    what = "Treatments" if any(g["treatment"] for g in groups) else "Conditions"
    sections.append(f"<h2>{what} ranked by the best method</h2><div class=figs>"
                    + _img(plots.treatment_plot(groups, describe(best)), "treatments") + "</div>"
                    + _table(["condition", "treatment", "concentration", "wells", "mean score", "95% low", "95% high"],
                             [(g["condition"], g["treatment"], g["concentration"], g["wells"], g["mean"], g["low"],
                               g["high"]) for g in groups]) + best_made_by)
    return sections


def _thumbnail_sections(store: Store, best: dict, ids: np.ndarray, scores: np.ndarray, samples) -> list[str]:
    """The images a biologist checks first: the top and bottom of the best ranking, and one
    image per treatment group (the one with its median score)."""
    es = store.embedding_set(best["embedding_set_id"])
    key = es.preprocess_key if es else None
    if not key or key.startswith("profiles:") or len(ids) < 2:
        return []
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")]
    count = min(8, len(order) // 2)
    picked = {"top": order[:count], "bottom": order[::-1][:count]}

    def label(i: int) -> str:
        where = samples["well"][i] if "well" in samples and samples["well"][i] else samples["condition"][i]
        what = samples["treatment"][i] or samples["condition"][i]
        dose = samples["concentration"][i] if "concentration" in samples else None
        dose = f" {float(dose):g}" if dose is not None and dose == dose and samples["treatment"][i] else ""
        return f"{where} {what}{dose}\nscore {scores[i]:.3g}"

    groups: dict[tuple, list[int]] = {}
    for i in finite:
        dose = samples["concentration"][i] if "concentration" in samples else None
        groups.setdefault((str(samples["condition"][i]), str(samples["treatment"][i] or ""), str(dose)), []).append(i)
    medians = [sorted(members, key=lambda i: scores[i])[len(members) // 2] for _, members in sorted(groups.items())]
    medians = sorted(medians, key=lambda i: -scores[i])[:32]
    wanted = [str(ids[i]) for i in np.concatenate([picked["top"], picked["bottom"], medians])]
    crops = dict(zip(wanted, store.load_crops(wanted, key)))
    figures = [_img(plots.thumbnails(np.stack([crops[str(ids[i])] for i in rows]), [label(i) for i in rows],
                                     f"{part} {len(rows)} of {describe(best)}"), f"{part} images")
               for part, rows in picked.items()]
    figures.append(_img(plots.thumbnails(np.stack([crops[str(ids[i])] for i in medians]), [label(i) for i in medians],
                                         "one image per treatment group (its median score), highest first"),
                        "treatment images"))
    return ["<h2>The images behind the scores</h2><p class=note>Stored crops (as the encoders saw them) of the "
            "highest- and lowest-scoring images of the best ranking, and of each treatment group the image with the "
            "group's median score: check that the ranking follows what you see.</p><div class=figs>"
            + "".join(figures) + "</div>"]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"
