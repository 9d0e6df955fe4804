"""The HTML report as a person sees it: every figure present and a real PNG, the page rendered by
headless Chromium (when installed) with something drawn from top to bottom."""

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import rows


def figures(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in
            re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)}


def test_the_report_has_every_figure_a_biologist_checks_and_renders_in_a_browser(invoke, tiny_plate, tmp_path):
    from PIL import Image

    (tiny_plate / "images" / "synthetic-plate-1_C05_day10.tif").write_bytes(b"not a tiff")  # a rejected well
    invoke("ingest", tiny_plate)
    assert rows(invoke.db, "SELECT plate, well, day FROM rejects") == [("synthetic-plate-1", "C05", 10)]
    invoke("run", "--encoders", "morphometrics", "--metrics", "euclidean", "--references", "control",
           "--evaluators", "ranking-accuracy,rank-correlation", "-p", "rank-correlation.truth=effect")
    invoke("potency", "--readout", "growth/diameter", "--positive", "exploded", "--bootstrap", "20")
    invoke("hits", "--readout", "growth/diameter")
    invoke("qc", "--readout", "growth/diameter", "--positive", "exploded")
    invoke("report", "--out", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    found = figures(page)
    expected = {"top images", "bottom images", "treatment images", "projection", "treatments", "growth curves",
                "dose-response curves"}
    assert expected <= set(found), sorted(expected - set(found))
    assert any(alt.startswith("synthetic-plate-1") for alt in found)  # the QC plate heatmap
    for alt, png in found.items():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and min(image.size) > 100, alt
        assert np.asarray(image.convert("L")).std() > 5, f"{alt} is blank"
    # what made it, a table of contents, sortable tables
    assert "Made by: <code>phenorank" in page and '<nav><b>Contents</b>' in page and "<thead>" in page
    for heading in re.findall(r'<h2 id="(s\d+)">', page):
        assert f'href="#{heading}"' in page

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        pytest.skip("no headless Chromium here (apt-get install chromium) for the screenshot")
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,6000", f"file://{tmp_path / 'report.html'}"], check=True,
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    drawn = (pixels < 200).any(axis=1)  # rows with something dark on them (text, axes, images)
    bands = drawn.reshape(30, -1).any(axis=1)  # 30 bands of 200 px
    assert bands[:25].all(), f"empty stretches in the rendered page: bands {np.flatnonzero(~bands[:25]).tolist()}"


def test_the_plate_map_tells_empty_rejected_and_unscored_wells_apart(invoke, tiny_plate):
    from phenorank.core.store import open_store
    from phenorank.report.plate_map import plate_shape, well_states

    (tiny_plate / "images" / "synthetic-plate-1_C05_day10.tif").write_bytes(b"not a tiff")
    invoke("ingest", tiny_plate)
    with open_store(invoke.db) as store:
        imaged = {w for (w,) in store.con.execute("SELECT well FROM images WHERE day = 10").fetchall()}
        scored = imaged - {"B02"}  # as if B02 had no value in this readout
        states = well_states(store, "synthetic-plate-1", 10, scored)
        assert states == {"absent": {"B02"}, "rejected": {"C05"}}
        # day 7's image of C05 is fine: not rejected there
        assert well_states(store, "synthetic-plate-1", 7, imaged)["rejected"] == set()
    assert plate_shape(["A", "H"], [1, 12]) == (8, 12) and plate_shape(["P"], [3]) == (16, 24)


def test_each_figure_says_the_command_that_recomputes_it_and_that_command_works(invoke, tiny_plate, tmp_path):
    import shlex

    from phenorank.core.store import open_store
    from phenorank.report.provenance import analysis_command, ranking_command

    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "morphometrics", "--metrics", "euclidean", "--references", "control",
           "--evaluators", "ranking-accuracy", "--qc-limit", "control_cv=none")
    invoke("potency", "--readout", "growth/diameter", "--positive", "exploded", "--bootstrap", "10",
           "--plates", "synthetic-plate-1")
    with open_store(invoke.db) as store:
        ranking_id = store.ranked_methods()[0]["ranking_id"]
        command, key = ranking_command(store, ranking_id)
        kind, source, readout, params = store.con.execute(
            "SELECT readout_kind, readout_source, readout, params FROM dose_response LIMIT 1").fetchall()[0]
        import json

        params = json.loads(params)
        qc = store.con.execute("SELECT readout_kind, readout_source, readout, params FROM plate_qc").fetchall()[0]
    assert key["ranking_id"] == ranking_id and key["code"]["ranker"] and "made_by_run" in key
    assert command.startswith("phenorank rank --encoder morphometrics --head features --ranker centroid")
    # the ranking command finds the identical ranking (nothing recomputed: same key)
    out = invoke(*shlex.split(command)[1:])
    assert ranking_id in out.output
    potency = analysis_command("dose_response", kind, source, readout, params)
    assert potency == ("phenorank potency --readout growth/diameter --bootstrap 10 --control control --day 10 "
                       "--plates synthetic-plate-1 --positive exploded --seed 0")
    invoke(*shlex.split(potency)[1:])
    with open_store(invoke.db) as store:  # the same analysis again: its key did not change
        assert store.con.execute("SELECT count(DISTINCT params_hash) FROM dose_response").fetchall() == [(1,)]
    qc_command = analysis_command("plate_qc", qc[0], qc[1], qc[2], json.loads(qc[3]))
    assert "--max-control-cv none" in qc_command and qc_command.startswith(f"phenorank qc --readout {qc[1]}")
    invoke(*shlex.split(qc_command)[1:])
    invoke("report", "--out", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert page.count("<details class=made>") >= 5 and "phenorank potency --readout growth/diameter" in page
