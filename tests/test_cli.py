"""End to end through the command line, on a generated plate."""

import csv
import io
from pathlib import Path

import pytest

from conftest import rows

from phenorank.core.store import open_store


def comparison(invoke) -> list[dict]:
    return list(csv.DictReader(io.StringIO(invoke("compare", "--format", "csv").stdout)))


def counts(db) -> dict:
    """Rows per result table; `runs` grows with every command by design, so it is left out."""
    with open_store(db, read_only=True) as store:
        return {t: n for t, n in store.table_counts().items() if t != "runs"}


def test_ingest_run_compare_and_sql(invoke, tiny_plate):
    result = invoke("ingest", tiny_plate)
    assert "ingested 120, unchanged 0, metadata updated 0, rejected 0 of 120" in result.output
    assert "60 day-to-day pairs" in result.output
    result = invoke("run", "--encoders", "raw,morphometrics", "--metrics", "cosine,euclidean")
    assert "computed 4 rankings" in result.output
    rows = comparison(invoke)
    assert [(r["encoder"], r["metric"]) for r in rows] == [
        ("morphometrics", "cosine"), ("morphometrics", "euclidean"), ("raw", "cosine"), ("raw", "euclidean")]
    for row in rows:
        assert row["day"] == "10" and row["reference"] == "control"
        assert 0.5 <= float(row["accuracy"]) <= 1.0
        assert float(row["spearman"]) > 0.5  # every method recovers the drawn effect to a degree
    found = counts(invoke.db)
    assert found["scores"] == 4 * 60 and found["embeddings"] == 2 * 120 and found["evaluations"] == 4 * 3
    sql = invoke("sql", "select encoder, metric, evaluator, value from comparison", "--format", "csv").stdout
    assert len(sql.splitlines()) == 1 + 4 * 3


def test_running_again_adds_no_rows(invoke, tiny_plate):
    for _ in range(2):
        invoke("ingest", tiny_plate)
        last = invoke("run", "--encoders", "raw,morphometrics", "--metrics", "cosine,euclidean")
        snapshot = counts(invoke.db)
        if _ == 0:
            first = snapshot
    assert snapshot == first
    assert "embedded 0 images, computed 0 rankings and 0 evaluations" in last.output
    assert "reused 4 ranking(s) and 8 evaluation(s) stored for the same images, parameters and code" in last.output
    assert "--force recomputes them" in last.output


def test_a_ranking_computed_anew_gets_its_evaluations_again(invoke, tiny_plate):
    import duckdb

    invoke("ingest", tiny_plate)
    args = ("run", "--encoders", "raw", "--metrics", "cosine", "--evaluators", "ranking-accuracy,rank-correlation")
    invoke(*args)
    # no hold-out set now: the same ranking (same key) fitted on other images, so computed anew,
    # and the evaluations it replaces must be computed again, not found stored and then lost
    again = invoke(*args, "--holdout", "")
    assert "computed 1 rankings and 2 evaluations" in again.output
    rows = duckdb.connect(invoke.db, read_only=True).execute(
        "SELECT count(DISTINCT r.ranking_id), count(DISTINCT e.evaluator) FROM rankings r "
        "JOIN evaluations e ON e.subject_id = r.ranking_id").fetchall()
    assert rows == [(1, 2)]


def test_step_by_step_commands(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    embedded = invoke("embed", "--encoder", "morphometrics").output
    assert "features" in embedded and "11" in embedded
    ranked = invoke("rank", "--encoder", "morphometrics", "--metric", "euclidean", "--format", "csv").stdout
    header, top = ranked.splitlines()[:2]
    assert header.startswith("condition,treatment,concentration,wells,mean_score")
    assert top.split(",")[0] in {"exploded", "screen", "single_dose"}  # the strongest effect ranks first
    evaluated = invoke("evaluate", "--evaluator", "rank-correlation", "-p", "rank-correlation.truth=concentration",
                       "--format", "csv").stdout
    assert "spearman" in evaluated


def test_problems_are_reported_without_losing_stored_work(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    before = counts(invoke.db)
    bad = tiny_plate / "bad.csv"
    bad.write_text("path,well,day,condition\nimages/x.tif,B02,,control\n")
    result = invoke("ingest", tiny_plate, "--manifest", bad, ok=False)
    assert result.exit_code == 1 and "line 2: field 'day' is missing" in result.output
    result = invoke("run", "--encoders", "raw", "--references", "dmso", "--metrics", "cosine", ok=False)
    # a reference class without images is a wrong request: one line, a non-zero exit
    assert result.exit_code == 1 and "no images of reference condition 'dmso'" in result.output
    assert "could not run on any of its 1 subject(s)" in result.output
    result = invoke("run", "--encoders", "pixels", ok=False)
    assert result.exit_code == 1 and "no encoder named 'pixels'" in result.output
    result = invoke("sql", "delete from images", ok=False)
    assert result.exit_code == 1 and "read-only" in result.output
    assert counts(invoke.db)["images"] == before["images"] == 120
    runs = invoke("sql", "select command, status from runs order by started_at", "--format", "csv").stdout
    assert "run,failed" in runs and "ingest,failed" not in runs  # the manifest failed before any write


REFERENCES = ("control", "exploded", "single_dose")


def test_demo_runs_end_to_end_twice_with_the_same_rows(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from phenorank.cli import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["demo"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "SYNTHETIC" in first.output and "Ranking accuracy" in first.output
    rows_after_first = counts("phenorank.duckdb")
    # 2 encoders x 3 references x (8 centroid + 8 image-predictor + 1 softmax + 8 predictor + 3 pca
    # + 4 umap) rankings,
    # each with 6 values (accuracy; spearman, p; outside, fraction, n), and per encoder 11 values
    # of embedding evaluators (linear probe 4: train, test and hold-out accuracy, hold-out n;
    # k-means 4, mAP 3).
    assert rows_after_first["rankings"] == 2 * 3 * 32
    assert rows_after_first["evaluations"] == 2 * 3 * 32 * 6 + 2 * 11
    page = (tmp_path / "phenorank-demo" / "report.html").read_text()
    # image-quality histograms, strips x 3, projection, heatmap, treatments, growth curves (day 7 ->
    # day 10 wells), and the thumbnails: top, bottom, one per treatment group
    assert page.count("data:image/png;base64,") == 11 and "Image quality" in page and "Treatments ranked" in page and "Growth curves" in page
    assert "The images behind the scores" in page
    # The figures the README quotes from the demo (the deterministic ones: no trained model in them).
    accuracy = {(e, r, m, ref): round(v, 4) for e, r, m, ref, v in rows(
        "phenorank.duckdb", "select encoder, ranker, metric, reference, value from comparison "
                            "where evaluator = 'ranking-accuracy' and name = 'accuracy'")}
    assert [accuracy[("morphometrics", "centroid", "euclidean", ref)] for ref in REFERENCES] == [1, 0.9583, 0.6667]
    assert [accuracy[("morphometrics", "pca", "euclidean", ref)] for ref in REFERENCES] == [0.9583] * 3
    assert [accuracy[("raw", "centroid", "euclidean", ref)] for ref in REFERENCES] == [0.7083, 0.5417, 0.625]
    embedding = {(e, n): (v, ci) for e, n, v, ci in rows(
        "phenorank.duckdb", "select encoder, name, value, ci_low from comparison where ranker is null")}
    quoted = {("morphometrics", "euclidean_mean"): 0.778, ("morphometrics", "cosine_mean"): 0.802,
              ("morphometrics", "mean_map"): 0.534, ("raw", "euclidean_mean"): 0.535, ("raw", "cosine_mean"): 0.533,
              ("raw", "mean_map"): 0.300}
    for key, value in quoted.items():
        assert embedding[key][0] == pytest.approx(value, abs=0.0006), key
    assert embedding[("morphometrics", "mean_map")][1] == pytest.approx(0.384, abs=0.0006)
    second = runner.invoke(cli, ["demo"], catch_exceptions=False)
    assert second.exit_code == 0 and "unchanged 120" in second.output
    assert counts("phenorank.duckdb") == rows_after_first


def test_ingest_by_file_name_pattern_with_a_plate_layout(invoke, tiny_plate):
    import shutil

    with open(tiny_plate / "manifest.csv") as handle:
        manifest = list(csv.DictReader(handle))
    layout = tiny_plate / "layout.csv"
    with layout.open("w", newline="") as handle:  # one row per well: what a plate map holds
        writer = csv.DictWriter(handle, fieldnames=["well", "condition", "treatment", "concentration", "effect"])
        writer.writeheader()
        for row in {r["well"]: r for r in manifest if r["day"] == "10"}.values():
            writer.writerow({k: row[k] for k in writer.fieldnames})
        writer.writerow({"well": "A01", "condition": "control"})
    shutil.copy(tiny_plate / manifest[0]["path"], tiny_plate / "images" / "synthetic-plate-1_A01_day7.tif")
    (tiny_plate / "images" / "notes.tif").write_text("not part of the plate")

    result = invoke("ingest", tiny_plate, "--pattern", "images/{plate}_{well}_day{day}.tif", "--layout", layout,
                    "--exclude-edge", "--workers", "2")
    assert "1 file(s) do not match the pattern" in result.output and "notes.tif" in result.output
    assert "left out 1 image(s) of edge wells" in result.output
    assert "ingested 120, unchanged 0, metadata updated 0, rejected 0 of 120" in result.output
    by_manifest = {(r["well"], int(r["day"]), r["condition"], r["effect"]) for r in manifest}
    with open_store(invoke.db, read_only=True) as store:
        _, rows = store.query("SELECT well, day, condition, extra->>'effect', plate, edge FROM images")
    assert {r[:4] for r in rows} == by_manifest
    assert {r[4:] for r in rows} == {("synthetic-plate-1", False)}

    again = invoke("ingest", tiny_plate)  # the manifest adds its extra columns: metadata updates only
    assert "ingested 0, unchanged 0, metadata updated 120" in again.output


def test_wells_of_a_384_plate_need_the_plate_format(invoke, tmp_path):
    from conftest import save_stack, spheroid_stack

    folder = tmp_path / "plate384"
    folder.mkdir()
    save_stack(folder / "P24_d7_control.tif", spheroid_stack(seed=1))
    pattern = "{well}_d{day}_{condition}.tif"
    result = invoke("ingest", folder, "--pattern", pattern, ok=False)
    assert result.exit_code == 1 and "not on a 96-well plate" in result.output and "--plate-format 384" in result.output
    result = invoke("ingest", folder, "--pattern", pattern, "--plate-format", "384")
    assert "ingested 1" in result.output


def test_grid_of_new_rankers_holdout_pairs_pivot_and_report(invoke, tiny_plate, tmp_path):
    import duckdb
    import numpy as np

    invoke("ingest", tiny_plate, "--manifest", tiny_plate / "manifest.csv")
    invoke("run", "--encoders", "morphometrics", "--rankers", "centroid,softmax,predictor", "--metrics",
           "euclidean,cosine", "--references", "control,screen", "--evaluators", "ranking-accuracy,holdout-range",
           "-p", "predictor.epochs=30", "-p", "softmax.epochs=20", "-p", "softmax.min_steps=0",
           "-p", "softmax.towards=single_dose", "-p", "ranking-accuracy.bootstrap=50")
    con = duckdb.connect(invoke.db, read_only=True)
    rows = dict(((r, m), n) for r, m, n in con.execute(
        "select ranker, metric, count(*) from rankings group by all").fetchall())
    assert rows == {("centroid", "euclidean"): 2, ("centroid", "cosine"): 2, ("softmax", "none"): 2,
                    ("predictor", "euclidean"): 2, ("predictor", "cosine"): 2}
    # The predictor scores the day-10 images that have a day-7 image of their well: all 60.
    assert {n for (n,) in con.execute("select n_images from rankings where ranker = 'predictor'").fetchall()} == {60}
    # Distance from the screen centroid is fitted without the hold-out wells, which are still scored.
    ranking_id, = con.execute("select ranking_id from rankings where ranker = 'centroid' and metric = 'euclidean' "
                              "and reference = 'screen'").fetchone()
    table = con.execute(
        "select e.vector, i.condition, i.extra->>'holdout' = 'true', s.score from scores s "
        "join embeddings e using (image_id) join embedding_sets es using (embedding_set_id) "
        "join images i using (image_id) where s.ranking_id = ? and es.encoder = 'morphometrics'",
        [ranking_id]).fetchall()
    vectors = np.array([r[0] for r in table])
    fit = np.array([r[1] == "screen" and not r[2] for r in table])
    held = np.array([bool(r[2]) for r in table])
    assert 0 < held.sum() < (np.array([r[1] for r in table]) == "screen").sum()
    expected = np.linalg.norm(vectors - vectors[fit].mean(axis=0), axis=1)
    assert np.array([r[3] for r in table]) == pytest.approx(expected, rel=1e-5)
    outside = con.execute("select value from comparison where evaluator = 'holdout-range' and name = 'n_holdout'"
                          ).fetchall()
    assert outside and {v for (v,) in outside} == {float(held.sum())}
    con.close()
    pivot = invoke("compare", "--rows", "ranker,metric", "--columns", "reference", "--format", "csv", "--show-sql")
    assert "PIVOT" in pivot.stderr
    lines = pivot.stdout.strip().splitlines()
    assert lines[0] == "ranker,metric,control,screen" and len(lines) == 1 + 5
    wide = invoke("compare", "--format", "markdown", "--ci").stdout
    assert "| fraction_outside |" in wide.replace(" | ", " | ") or "fraction_outside" in wide
    invoke("report", "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    # the image-quality histograms, the five ranking figures, the plate heatmap, growth curves
    # (day 7 -> 10), three thumbnail sheets; `run`'s QC of the rankings as a table (its heatmap is
    # the ranking's own)
    assert page.count("<img") == 11 and "Plate heatmap" in page and "Growth curves" in page
    assert "Plate QC on" in page


def test_tables_fit_the_width_breaking_no_name_over_three_lines():
    from phenorank.cli.tables import compact, layout, wrap

    for text, width in [("imagenet-efficientnet-lite0/backbone", 18), ("spearman_cytoplasm_coverage_gain", 20),
                        ("raw/pixels centroid euclidean ref=control", 12), ("0.0415 [0.0281, 0.0558]", 24)]:
        lines = wrap(text, width).split("\n")
        assert max(map(len, lines)) <= width and "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap("imagenet-efficientnet-lite0/backbone", 30) == "imagenet-efficientnet-lite0/\nbackbone"
    assert wrap("0.0415 [0.0281, 0.0558]", 24) == "0.0415 [0.0281, 0.0558]"
    names = ["method"] + [f"spearman_cytoplasm_coverage_{i}" for i in range(9)]
    cells = [["imagenet-efficientnet-lite0/backbone centroid"] + ["0.123 [0.101, 0.204]"] * 9] * 3
    blocks = layout(names, cells, 100)
    assert len(blocks) > 1 and all(block[0] == 0 for block, _ in blocks)
    assert sorted({j for block, _ in blocks for j in block}) == list(range(10))
    for block, widths in blocks:
        assert sum(widths) + 3 * len(block) + 1 <= 100
        assert all(len(wrap(names[j], w).split("\n")) <= 2 for j, w in zip(block, widths))
    columns, rows_ = compact(["encoder", "model", "ranker_params", "v"],
                             [("raw", None, '{"group": "", "k": 1}', 1.0), ("raw", None, '{"group": "sample", "k": 1}', 2.0)])
    assert columns == ["encoder", "ranker_params", "v"] and [r[1] for r in rows_] == ["group=-", "group=sample"]


def test_compare_on_a_100_column_terminal_keeps_every_line_within_it(invoke, tiny_plate):
    import os
    import subprocess
    import sys

    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "raw,morphometrics", "--metrics", "euclidean,cosine", "--references", "control",
           "--evaluators", "ranking-accuracy,rank-correlation", "-p", "rank-correlation.truth=effect")
    shown = subprocess.run([str(Path(sys.executable).with_name("phenorank")), "--db", invoke.db, "compare", "--ci"], check=True,
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}).stdout
    lines = shown.splitlines()
    assert len(lines) > 10 and max(map(len, lines)) <= 100
    assert "morphometrics" in shown and "ranking_accuracy" not in shown
