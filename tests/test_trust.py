"""Results you can trust: keys that see code, one result per table cell, wrong requests that fail,
broken plugins that do not take everything down."""

import csv
import io
import os
import subprocess
import sys
import textwrap

from conftest import rows
from test_registry import install_distribution

from phenorank.registry import get_registry, reset_registry
from phenorank.registry.code import code_identity, source_hash

SCALED = '''
import numpy as np
from phenorank import hookimpl
from phenorank.registry import Metric


class Scaled(Metric):
    """Euclidean distance times a factor."""
    name = "scaled"

    def pairwise(self, a, b):
        return FACTOR * np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


FACTOR = {factor}


@hookimpl
def register_metrics(register):
    register(Scaled)
'''


def _forget_module(name):
    sys.modules.pop(name, None)
    source_hash.cache_clear()
    from phenorank.registry import code

    code._source.cache_clear()
    reset_registry()


def test_an_edited_plugin_recomputes_instead_of_reusing(tmp_path, monkeypatch, invoke, tiny_plate):
    site = tmp_path / "site"
    install_distribution(site, monkeypatch, "scaled-dist", "scaled_metric", SCALED.format(factor=1.0), "scaled")
    invoke("ingest", tiny_plate)
    args = ("rank", "--encoder", "morphometrics", "--metric", "scaled", "--format", "csv")
    first = invoke(*args)
    assert "computed" in first.output
    again = invoke(*args)
    assert "reused: stored already for the same images, parameters and code (--force recomputes it)" in again.output
    before = rows(invoke.db, "select ranking_id, ranker_code, metric_code from rankings")
    assert len(before) == 1 and before[0][2].startswith("scaled-dist==0.1+")

    (site / "scaled_metric.py").write_text(textwrap.dedent(SCALED.format(factor=3.0)))  # the plugin is edited
    _forget_module("scaled_metric")
    edited = invoke(*args)
    assert "computed" in edited.output and "reused" not in edited.output
    after = rows(invoke.db, "select ranking_id, metric_code, max(score) from rankings join scores using (ranking_id) "
                            "group by all order by max(score)")
    assert len(after) == 2 and after[0][1] != after[1][1]  # old and new result, each under its own key
    assert abs(after[1][2] / after[0][2] - 3.0) < 1e-6  # the new code's scores, not the old ones


def test_code_identity_follows_source_and_version():
    from phenorank.plugins.metrics import CosineMetric

    plain = code_identity(CosineMetric)
    assert code_identity(CosineMetric, "phenorank==0.1.0") == f"phenorank==0.1.0+{plain}"
    assert code_identity(CosineMetric, "phenorank==0.2.0") != code_identity(CosineMetric, "phenorank==0.1.0")
    # the hash covers the modules the plugin's module imports from its own package, not others
    from phenorank.plugins.rankers.centroid import CentroidRanker

    assert code_identity(CentroidRanker) != plain
    assert get_registry().info("metric", "cosine").code.startswith("phenorank==")


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_a_cell_holds_one_result_when_evaluator_parameters_differ(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "morphometrics", "--metrics", "euclidean", "--evaluators", "rank-correlation",
           "-p", "rank-correlation.truth=effect")
    invoke("evaluate", "--evaluator", "rank-correlation", "-p", "rank-correlation.truth=concentration")
    stored = dict(rows(invoke.db, "select evaluator_params->>'truth', value from comparison where name = 'spearman'"))
    assert set(stored) == {"effect", "concentration"} and stored["effect"] != stored["concentration"]

    table = _csv(invoke("compare", "--format", "csv").stdout)
    assert len(table) == 1
    spearman = {k: v for k, v in table[0].items() if k.startswith("spearman")}
    assert len(spearman) == 2  # one column per truth, each labelled with its parameters
    for label, value in spearman.items():
        truth = "effect" if '"truth":"effect"' in label.replace(" ", "") else "concentration"
        assert abs(float(value) - stored[truth]) < 1e-9

    pivot = _csv(invoke("compare", "--rows", "encoder", "--columns", "reference", "--value",
                        "rank-correlation:spearman", "--format", "csv").stdout)
    assert len(pivot) == 2 and "evaluator_params" in pivot[0]  # the differing parameter became a row dimension
    for row in pivot:
        truth = "effect" if "effect" in row["evaluator_params"] else "concentration"
        assert abs(float(row["control"]) - stored[truth]) < 1e-9
    best = _csv(invoke("compare", "--rows", "encoder", "--columns", "reference", "--value",
                       "rank-correlation:spearman", "--best", "--format", "csv").stdout)
    assert len(best) == 1 and abs(float(best[0]["control"]) - max(stored.values())) < 1e-9


def test_a_misspelt_column_is_an_error_in_one_line(invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "raw,morphometrics", "--metrics", "cosine,euclidean,l1")
    result = invoke("evaluate", "--evaluator", "rank-correlation", "-p", "rank-correlation.truth=dose", ok=False)
    assert result.exit_code == 1
    assert "rank-correlation could not run on any of its 6 subject(s): no metadata column 'dose'" in result.output
    assert "concentration" in result.output and "effect" in result.output  # the columns that exist
    assert result.output.count("no metadata column 'dose'") == 2  # once grouped as skipped, once as the error
    result = invoke("run", "--encoders", "all", "--metrics", "cosine", "--evaluators", "ranking-accuracy")
    assert "encoder simclr left out" not in result.output  # trainable encoders without a model are not asked
    encoders = {r[0] for r in rows(invoke.db, "select distinct encoder from embedding_sets")}
    assert {"raw", "morphometrics", "imagenet-efficientnet-lite0"} <= encoders


BROKEN = "import a_module_that_does_not_exist\n"


def test_a_broken_plugin_leaves_the_others_working(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_distribution(site, monkeypatch, "broken-dist", "broken_plugin", BROKEN, "broken")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    phenorank = os.path.join(os.path.dirname(sys.executable), "phenorank")
    for args in (["--help"], ["plugins", "--family", "metric", "--format", "csv"]):
        result = subprocess.run([phenorank, *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        warning = [line for line in result.stderr.splitlines() if "broken" in line]
        assert len(warning) == 1 and "ModuleNotFoundError" in warning[0]
        assert "PHENORANK_BLOCK_PLUGINS=broken" in warning[0]
    assert "metric,cosine,phenorank (phenorank.metrics)" in result.stdout
    quiet = subprocess.run([phenorank, "--help"], capture_output=True, text=True, timeout=120,
                           env={**env, "PHENORANK_BLOCK_PLUGINS": "broken"})
    assert quiet.returncode == 0 and quiet.stderr == ""
