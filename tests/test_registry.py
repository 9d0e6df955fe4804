"""Plugin loading through real entry points, including a third-party distribution."""

import importlib
import textwrap

import pytest

from phenorank.cli import add_plugin_commands, cli
from phenorank.registry import PluginError, get_registry, reset_registry

ACME = '''
import click
import numpy as np
from phenorank import hookimpl
from phenorank.registry import Evaluation, Evaluator, Metric


class Chebyshev(Metric):
    """Largest absolute difference in any one dimension."""
    name = "chebyshev"

    def pairwise(self, a, b):
        return np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)


class Spread(Evaluator):
    """Mean per-dimension standard deviation of an embedding."""
    name = "spread"
    needs = "embeddings"

    def evaluate(self, subject):
        return Evaluation({"spread": float(subject.embeddings.std(axis=0).mean())})


@hookimpl
def register_metrics(register):
    register(Chebyshev)


@hookimpl
def register_evaluators(register):
    register(Spread)


@hookimpl
def register_commands(cli):
    @cli.command(name="acme-hello")
    def hello():
        """Say hello."""
        click.echo("hello from acme")
'''


def install_distribution(root, monkeypatch, dist, module, source, entry_point):
    """A real installed distribution: a module plus a .dist-info with an entry point, on sys.path."""
    root.mkdir(exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[phenorank]\n{entry_point} = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    reset_registry()


@pytest.fixture
def acme(tmp_path, monkeypatch):
    install_distribution(tmp_path / "site", monkeypatch, "acme-phenorank", "acme_phenorank", ACME, "acme")


def test_builtins_come_from_the_entry_point_group():
    rows = {(p.family, p.name): str(p.provider) for p in get_registry().all()}
    assert rows[("metric", "cosine")] == "phenorank (phenorank.metrics)"
    assert rows[("encoder", "morphometrics")] == "phenorank (phenorank.encoders)"
    assert {("loader", "tiff-stack"), ("ranker", "centroid"), ("evaluator", "ranking-accuracy"),
            ("evaluator", "rank-correlation"), ("encoder", "raw"), ("metric", "euclidean")} <= set(rows)


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(PluginError, match="no metric named 'cosin'; available: cosine, euclidean"):
        get_registry().create("metric", "cosin")
    with pytest.raises(PluginError, match="has no parameter size .*takes: centre, group, k, kmeans_geometry, label"):
        get_registry().create("ranker", "centroid", {"size": "3"})


def test_environment_restricts_and_blocks_plugins(monkeypatch, acme):
    monkeypatch.setenv("PHENORANK_LOAD_PLUGINS", "phenorank.metrics")
    reset_registry()
    assert [p.name for p in get_registry().all()] == ["cosine", "euclidean", "mse", "l1", "pearson", "dot",
                                                      "jaccard", "hamming"]
    monkeypatch.delenv("PHENORANK_LOAD_PLUGINS")
    monkeypatch.setenv("PHENORANK_BLOCK_PLUGINS", "acme-phenorank")
    reset_registry()
    assert "chebyshev" not in get_registry().names("metric")


def test_third_party_plugin_is_listed_and_used_by_run(acme, invoke, tiny_plate):
    listed = invoke("plugins", "--format", "csv").stdout
    assert "metric,chebyshev,acme-phenorank (acme),Largest absolute difference in any one dimension." in listed
    assert "evaluator,spread,acme-phenorank (acme)" in listed
    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "morphometrics", "--metrics", "chebyshev,euclidean",
           "--evaluators", "ranking-accuracy,spread")
    rows = invoke("sql", "select metric, evaluator, name from comparison order by all", "--format", "csv").stdout
    assert rows.splitlines() == [
        "metric,evaluator,name",
        "chebyshev,ranking-accuracy,accuracy",
        "euclidean,ranking-accuracy,accuracy",
        ",spread,spread",  # an embedding evaluator judges the embedding set, not a ranking
    ]


def test_third_party_plugin_adds_a_command(acme):
    from click.testing import CliRunner

    add_plugin_commands()
    try:
        assert CliRunner().invoke(cli, ["acme-hello"]).output == "hello from acme\n"
    finally:
        cli.commands.pop("acme-hello", None)


def test_a_name_clash_names_both_providers(tmp_path, monkeypatch, invoke):
    clash = "from phenorank import hookimpl\nfrom phenorank.plugins.metrics import CosineMetric\n\n" \
            "class Mine(CosineMetric):\n    pass\n\n@hookimpl\ndef register_metrics(register):\n    register(Mine)\n"
    install_distribution(tmp_path / "site", monkeypatch, "clash-dist", "clash_plugin", clash, "clash")
    with pytest.raises(PluginError) as info:
        get_registry()
    assert "metric name 'cosine' is registered twice" in str(info.value)
    assert "phenorank (phenorank.metrics)" in str(info.value) and "clash-dist (clash)" in str(info.value)
    result = invoke("plugins", ok=False)
    assert result.exit_code == 1 and "registered twice" in result.output


def test_a_misspelt_hook_fails_loudly(tmp_path, monkeypatch):
    typo = "from phenorank import hookimpl\n\n@hookimpl\ndef register_metricz(register):\n    pass\n"
    install_distribution(tmp_path / "site", monkeypatch, "typo-dist", "typo_plugin", typo, "typo")
    with pytest.raises(PluginError, match="typo-dist.*register_metricz"):
        get_registry()


def test_every_built_in_command_is_found_by_name_and_a_one_file_ingest_imports_no_heavy_stack(tmp_path):
    import importlib
    import subprocess
    import sys

    from phenorank.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        names = {command.name for command in importlib.import_module(f"phenorank.cli.{module}").COMMANDS}
        assert names == {name for name, owner in COMMAND_MODULES.items() if owner == module}
    # the code identity of the loader reads its sources without importing them: no Lightning,
    # torch or training stack, and no command module but ingest's
    probe = ("import sys; from phenorank.cli import main\n"
             "sys.argv = ['phenorank', '--db', sys.argv[1], 'ingest', sys.argv[2], '--pattern', "
             "'{plate}_{well}_day{day}.tif', '--condition', 'control']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'pytorch_lightning', 'phenorank.cli.methods', 'skimage.filters') "
             "if m in sys.modules))")
    import numpy as np
    import tifffile

    images = tmp_path / "images"
    images.mkdir()
    spheroid = np.full((3, 64, 64), 50000, np.uint16)
    spheroid[:, 20:44, 20:44] = 9000
    tifffile.imwrite(images / "P1_B02_day7.tif", spheroid)
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "s.duckdb"), str(images)], capture_output=True,
                         text=True)
    assert "ingested 1" in out.stdout + out.stderr and out.stdout.strip().splitlines()[-1] == "[]", \
        out.stdout + out.stderr
