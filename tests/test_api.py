"""The notebook API: ingest -> run -> comparison from Python, frames with metadata as columns, the
plugin registry by name, scikit-learn conventions, and a scikit-learn model wrapped as a ranker."""

import numpy as np
import pytest

import phenorank
from phenorank.registry.contracts import PluginError, Ranker


class IsolationForestRanker(Ranker):
    """scikit-learn's IsolationForest as a ranker: fitted on the reference wells, the score is how
    anomalous an image is against them."""

    name = "isolation-forest"
    description = "Outlier score of scikit-learn's IsolationForest fitted on the reference class."
    metrics = ()  # it measures no distance: run once, not per metric
    defaults = {"n_estimators": 200, "seed": 0}

    def fit(self, embeddings, samples, metric, reference):
        from sklearn.ensemble import IsolationForest

        rows = samples.matching(reference)
        self.model = IsolationForest(n_estimators=self.params["n_estimators"], random_state=self.params["seed"])
        self.model.fit(embeddings[rows])
        return self

    def score(self, embeddings, samples=None):
        return -self.model.score_samples(embeddings)


def test_a_notebook_drives_ingest_run_and_comparison(tmp_path, tiny_plate):
    screen = phenorank.open(tmp_path / "screen.duckdb")
    screen.ingest(tiny_plate)
    images = screen.images()
    assert len(images) == 120 and images["effect"].dtype == np.float64 and images["day"].dtype.kind == "i"
    assert set(images["condition"]) == {"control", "single_dose", "exploded", "screen"}

    comparison = screen.run(encoders="morphometrics", metrics="euclidean", references="control",
                            evaluators="ranking-accuracy,rank-correlation", params={"rank-correlation": {"truth": "effect"}})
    spearman = comparison[(comparison["name"] == "spearman") & (comparison["ranker"] == "centroid")]
    assert len(spearman) == 1 and spearman["value"].iloc[0] > 0.7
    assert spearman["evaluator_truth"].iloc[0] == "effect"  # parameters expanded: no JSON to parse
    assert comparison["value"].dtype == np.float64

    rankings = screen.rankings()
    assert len(rankings) == 1 and rankings["encoder"].iloc[0] == "morphometrics"
    scores = screen.scores(rankings["ranking_id"].iloc[0][:6])  # a unique prefix is enough
    assert len(scores) == 60 and scores["score"].is_monotonic_decreasing
    by_class = scores.groupby("condition")["score"].mean()
    assert by_class["exploded"] > by_class["single_dose"] > by_class["control"]

    vectors, meta = screen.embeddings("morphometrics", day=10)
    assert vectors.shape == (60, len(meta.attrs["feature_names"])) and list(meta["day"].unique()) == [10]
    area = vectors[:, meta.attrs["feature_names"].index("area")]
    assert area[meta["condition"] == "exploded"].mean() < area[meta["condition"] == "control"].mean()
    crops = screen.crops(meta["image_id"][:3])
    assert crops.shape[0] == 3 and crops.shape[-2:] == (96, 96) and 0 <= crops.min() and crops.max() <= 1

    assert screen.features("morphometrics") == meta.attrs["feature_names"]
    polar = phenorank.open(screen.path, frames="polars")
    assert type(polar.images()).__module__.startswith("polars") and polar.images().shape == images.shape
    assert polar.scores(rankings["ranking_id"].iloc[0])["score"].max() == pytest.approx(scores["score"].max())
    evaluations = screen.evaluations()
    assert set(evaluations["evaluator"]) == {"ranking-accuracy", "rank-correlation"}
    assert "param_truth" in evaluations.columns
    # the steps record runs as the commands do
    runs = screen.sql("select command, status from runs order by started_at")
    assert list(runs["command"]) == ["ingest", "run"] and set(runs["status"]) == {"ok"}


def test_plugins_by_name_with_wildcards_and_scikit_learn_conventions():
    from sklearn.base import clone

    assert "centroid" in phenorank.plugins("ranker")
    assert phenorank.plugins("metric", "*cos*") == ["cosine"] == phenorank.list_plugins("metric", "cos*")
    assert "transform/robustize" in phenorank.plugins()
    ranker = phenorank.create("ranker", "centroid", k=2)
    assert ranker.get_params()["k"] == 2
    copy = clone(ranker)
    assert copy is not ranker and copy.get_params() == ranker.get_params()
    assert ranker.set_params(k=3).params["k"] == 3 and copy.params["k"] == 2
    with pytest.raises(PluginError, match="has no parameter nope"):
        ranker.set_params(nope=1)
    with pytest.raises(ValueError, match="no plugin family"):
        phenorank.plugins("rankers")


def test_a_scikit_learn_model_wrapped_as_a_ranker_runs_like_a_built_in(tmp_path, tiny_plate):
    from sklearn.base import clone

    phenorank.register(IsolationForestRanker)
    assert "isolation-forest" in phenorank.plugins("ranker")
    assert clone(phenorank.create("ranker", "isolation-forest", n_estimators=50)).params["n_estimators"] == 50
    screen = phenorank.open(tmp_path / "screen.duckdb").ingest(tiny_plate).embed("morphometrics")
    scores = screen.rank("morphometrics", ranker="isolation-forest", reference="control")
    by_class = scores.groupby("condition")["score"].mean()
    assert by_class["exploded"] > by_class["control"] and len(scores) == 60
    stored = screen.rankings()
    assert list(stored["ranker"]) == ["isolation-forest"]


def test_long_steps_log_plain_progress_lines_when_not_on_a_terminal(tmp_path, tiny_plate):
    import os
    import subprocess
    import sys

    phenorank_cli = os.path.join(os.path.dirname(sys.executable), "phenorank")
    db = str(tmp_path / "piped.duckdb")
    log = tmp_path / "log.txt"
    with log.open("w") as handle:  # as under nohup or in CI: stderr is a file, not a terminal
        for args in (["ingest", str(tiny_plate)], ["run", "--encoders", "raw,morphometrics", "--metrics", "euclidean",
                                                      "--evaluators", "ranking-accuracy,kmeans-accuracy"]):
            subprocess.run([phenorank_cli, "--db", db, *args], stdout=handle, stderr=handle, check=True)
    lines = log.read_text().splitlines()
    ingest = [line for line in lines if "ingest" in line and line.startswith("[")]
    assert ingest and ingest[-1].endswith("120/120")
    cells = [line for line in lines if "rank and evaluate" in line]
    assert cells and cells[-1].endswith("2/2") and all(line.startswith("[") and " s] " in line for line in cells)
    embedded = [line for line in lines if line.startswith("[") and "embed raw" in line]
    judged = [line for line in lines if line.startswith("[") and "evaluate embeddings" in line]
    assert embedded and judged and judged[-1].endswith("2/2"), "\n".join(lines)
    assert "\x1b[" not in log.read_text()  # no terminal escapes in a log file


def test_every_option_of_every_command_has_help_text():
    import click

    from phenorank.cli import cli

    ctx = click.Context(cli)
    missing = []

    def walk(command, path):
        missing.extend(f"{path} {p.opts[0]}" for p in command.params
                       if isinstance(p, click.Option) and not p.help and p.name != "help")
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), f"{path} {name}")

    walk(cli, "phenorank")
    assert not missing, missing


def test_sql_help_lists_every_table_and_view_of_a_store(tmp_path):
    from click.testing import CliRunner

    from phenorank.cli import cli
    from phenorank.core.store import open_store

    with open_store(tmp_path / "fresh.duckdb") as store:
        found = dict(store.con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    text = " ".join(CliRunner().invoke(cli, ["sql", "--help"]).output.split())
    for name, kind in found.items():
        if name != "schema_migrations":
            assert f" {name}," in text or f" {name}." in text, (name, kind)


def test_ingest_dry_run_shows_how_each_file_name_parses_and_stores_nothing(tmp_path, tiny_plate):
    from click.testing import CliRunner

    from phenorank.cli import cli

    (tiny_plate / "images" / "notes.tif").write_bytes(b"")
    db = tmp_path / "dry.duckdb"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", str(tiny_plate / "images"), "--pattern",
                                      "{plate}_{well}_day{day}.tif", "--condition", "control", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "120 image(s) would be ingested, 1 file(s) left out" in result.output
    assert "notes.tif" in result.output and "matches nothing" in result.output
    assert "B02" in result.output and not db.exists()


def test_plugins_lists_whole_sentences_and_each_parameter_with_its_meaning():
    from click.testing import CliRunner

    from phenorank.cli import cli
    from phenorank.registry import get_registry

    for info in get_registry().all():
        assert info.description and info.description.rstrip()[-1] in ".)!?:", (info.name, info.description)
    out = CliRunner().invoke(cli, ["plugins", "--params", "ranker/centroid", "--format", "csv"]).output
    import csv

    rows = {r[0]: r for r in csv.reader(out.splitlines()[1:])}
    assert set(rows) == set(get_registry().get("ranker", "centroid").defaults)
    assert rows["k"][1:3] == ["1", "int"] and "k-means" in rows["k"][3]
    assert rows["seed"][3].startswith("Random seed")
    ambiguous = CliRunner().invoke(cli, ["plugins", "--params", "pca"])
    assert ambiguous.exit_code == 1 and "say which, e.g." in ambiguous.output
