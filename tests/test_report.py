"""The HTML report as a person sees it: every figure present and a real PNG, the page rendered by
headless Chromium (when installed) with something drawn from top to bottom."""

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest


def figures(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in
            re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)}


def test_the_report_has_every_figure_a_biologist_checks_and_renders_in_a_browser(invoke, tiny_plate, tmp_path):
    from PIL import Image

    invoke("ingest", tiny_plate)
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
