"""Profiles made elsewhere: import, transforms checked against pycytominer, the field's MoA and
activity evaluators, and the profiles demo end to end through the command line."""

import csv
import gzip
import io
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import rows

from phenorank.core.store import open_store
from phenorank.datasets.profiles import ProfileSpec, generate_profiles, write_profiles
from phenorank.io.profiles import ProfileError, import_profiles
from phenorank.registry import PluginError, Samples, Subject, get_registry

SMALL = ProfileSpec(plates=2, mechanisms=4, compounds_per_mechanism=2, doses=(1.0, 3.0), controls_per_plate=12,
                    features=40, seed=1)


def plate_samples(frame: pd.DataFrame) -> Samples:
    return Samples(np.array([f"w{i}" for i in range(len(frame))], dtype=object),
                   {"plate": frame["Metadata_Plate"].to_numpy(), "treatment": frame["Metadata_Compound"].to_numpy(),
                    "condition": frame["Metadata_Compound"].to_numpy()})


def features_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.startswith("Metadata_")]


# -- transforms against pycytominer, the reference definitions ---------------------------------
@pytest.fixture(scope="module")
def screen() -> pd.DataFrame:
    return generate_profiles(ProfileSpec(plates=2, features=60, seed=2))


@pytest.mark.parametrize("name, method", [("standardize", "standardize"), ("robustize", "mad_robustize")])
def test_per_plate_normalization_equals_pycytominer_per_plate(screen, name, method):
    from pycytominer import normalize

    feats = features_of(screen)
    x, samples = screen[feats].to_numpy(), plate_samples(screen)
    dmso = screen["Metadata_Compound"].to_numpy() == "DMSO"
    ours = get_registry().create("transform", name).fit(x, samples, dmso).transform(x, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pd.concat([normalize(plate, features=feats, samples="Metadata_Compound == 'DMSO'", method=method)
                            for _, plate in screen.groupby("Metadata_Plate")]).loc[screen.index, feats].to_numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)
    # and the controls of each plate end up centred: per plate, the DMSO median/mean is 0
    centre = np.median if name == "robustize" else np.mean
    for plate in ("P1", "P2"):
        rows_ = dmso & (screen["Metadata_Plate"].to_numpy() == plate)
        assert np.abs(centre(ours[rows_], axis=0)).max() < 1e-9


@pytest.mark.parametrize("method", ["ZCA-cor", "ZCA", "PCA", "PCA-cor"])
@pytest.mark.parametrize("fewer_rows_than_features", [False, True])
def test_spherize_equals_pycytominer(screen, method, fewer_rows_than_features):
    from pycytominer import normalize

    frame = screen if not fewer_rows_than_features else screen.iloc[:, :6].join(
        pd.DataFrame(np.random.default_rng(0).normal(size=(len(screen), 90)) * 3 + screen.iloc[:, 6:7].to_numpy(),
                     columns=[f"Cells_Extra_{i}" for i in range(90)], index=screen.index))
    feats = features_of(frame)
    x, samples = frame[feats].to_numpy(), plate_samples(frame)
    dmso = frame["Metadata_Compound"].to_numpy() == "DMSO"
    assert (dmso.sum() < len(feats)) == fewer_rows_than_features
    ours = get_registry().create("transform", "spherize", {"method": method}).fit(x, samples, dmso).transform(x, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = normalize(frame, features=feats, samples="Metadata_Compound == 'DMSO'", method="spherize",
                           spherize_method=method)
    theirs = theirs[[c for c in theirs.columns if not c.startswith("Metadata_")]].to_numpy()
    if method.startswith("PCA") and fewer_rows_than_features:
        # past the controls' rank the components span a null space in which any basis is right
        # (ZCA rotates back and is unique); compare the components the data determine
        kept = int(dmso.sum()) - 1
        ours, theirs = ours[:, :kept], theirs[:, :kept]
    np.testing.assert_allclose(ours, theirs, atol=1e-6 * np.abs(ours).max(), rtol=0)
    if not fewer_rows_than_features:  # whitened controls: identity covariance
        np.testing.assert_allclose(np.cov(ours[dmso], rowvar=False), np.eye(len(feats)), atol=1e-3)


def test_select_keeps_the_features_pycytominer_keeps(screen):
    from pycytominer import feature_select

    frame = screen.copy()
    frame["Cells_Copy_A"] = frame[features_of(screen)[0]] * 2 + 1  # perfectly correlated with a feature
    frame["Cells_Nearly_Constant"] = 5.0 + (np.arange(len(frame)) == 0) * 1e-5
    frame["Nuclei_Blocked_X"] = np.random.default_rng(1).normal(size=len(frame))
    feats = features_of(frame)
    x, samples = frame[feats].to_numpy(), plate_samples(frame)
    select = get_registry().create("transform", "select", {"corr_threshold": 0.6, "blocklist": ["Nuclei_Blocked_X"]})
    select.input_names = feats
    select.fit(x, samples, np.zeros(len(frame), bool))
    ours = sorted(np.array(feats)[select.keep])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = feature_select(frame, features=feats, operation=["drop_na_columns", "variance_threshold",
                                                                   "correlation_threshold", "blocklist"],
                                corr_threshold=0.6, blocklist=["Nuclei_Blocked_X"])
    assert ours == sorted(features_of(theirs))
    assert "Cells_Nearly_Constant" not in ours and "Nuclei_Blocked_X" not in ours
    assert len(ours) < len(feats) - 3  # the correlation threshold dropped some real features too
    assert select.feature_names(feats, len(select.keep)) == [feats[j] for j in select.keep]


def test_harmony_is_harmonypy_and_mixes_plates(screen):
    import harmonypy

    feats = features_of(screen)
    samples = plate_samples(screen)
    scaled = get_registry().create("transform", "standardize", {"by": "none", "fit_on": "all"}).fit(
        screen[feats].to_numpy(), samples, None).transform(screen[feats].to_numpy(), samples)
    x = get_registry().create("transform", "pca", {"components": 10}).fit(scaled, samples, None).transform(scaled, None)
    ours = get_registry().create("transform", "harmony").fit(x, samples, None).transform(x, samples)
    theirs = harmonypy.run_harmony(x, pd.DataFrame({"batch": samples["plate"]}), ["batch"], theta=2.0,
                                   random_state=0, verbose=False).Z_corr
    theirs = theirs if theirs.shape == x.shape else theirs.T
    np.testing.assert_allclose(ours, theirs, atol=1e-8)
    gap = lambda z: np.linalg.norm(z[samples["plate"] == "P1"].mean(0) - z[samples["plate"] == "P2"].mean(0))  # noqa: E731
    assert gap(ours) < 0.5 * gap(x)  # the plates' centres moved together


def test_every_transform_keeps_rows_and_gives_finite_values(screen):
    feats = features_of(screen)
    x, samples = screen[feats].to_numpy(), plate_samples(screen)
    dmso = screen["Metadata_Compound"].to_numpy() == "DMSO"
    registry = get_registry()
    for name in registry.names("transform"):
        transform = registry.create("transform", name)
        transform.input_names = feats
        out = transform.fit(x, samples, dmso).transform(x, samples)
        assert out.shape[0] == len(x) and out.shape[1] > 0 and np.isfinite(out).all(), name


def test_a_plate_without_controls_is_named():
    frame = generate_profiles(SMALL)
    frame.loc[(frame["Metadata_Plate"] == "P2") & (frame["Metadata_Compound"] == "DMSO"), "Metadata_Compound"] = "cmpd-01"
    feats = features_of(frame)
    with pytest.raises(PluginError, match="plate 'P2' has no reference rows"):
        get_registry().create("transform", "robustize").fit(
            frame[feats].to_numpy(), plate_samples(frame), frame["Metadata_Compound"].to_numpy() == "DMSO")


# -- import ------------------------------------------------------------------------------------
def test_import_reads_csv_gzip_parquet_and_cellprofiler_sqlite_alike(tmp_path):
    frame = generate_profiles(SMALL)
    paths = [write_profiles(tmp_path / "a.csv", SMALL), write_profiles(tmp_path / "b.csv.gz", SMALL),
             write_profiles(tmp_path / "c.parquet", SMALL)]
    cp = tmp_path / "d.sqlite"  # CellProfiler's export: Per_Image holds Image_Metadata_ columns
    with sqlite3.connect(cp) as con:
        image = frame.rename(columns={c: "Image_" + c for c in frame.columns if c.startswith("Metadata_")})
        image.insert(0, "ImageNumber", np.arange(1, len(frame) + 1))
        image["Image_FileName_DNA"] = [f"r{i:03d}.tiff" for i in range(len(frame))]  # bookkeeping, not features
        image["Image_ExecutionTime_01LoadData"] = 0.5 + np.arange(len(frame)) / 1000
        image.to_sql("Per_Image", con, index=False)
    paths.append(cp)
    with open_store(tmp_path / "s.duckdb") as store:
        vectors = []
        for path in paths:
            report = import_profiles(store, path)
            assert (report.rows, report.features, report.plates) == (len(frame), 40, 2)
            assert report.fields["treatment"].endswith("Metadata_Compound")
            _, v = store.load_embeddings(report.embedding_set.embedding_set_id)
            vectors.append(v)
        samples = store.load_samples(store.load_embeddings(report.embedding_set.embedding_set_id)[0])
        assert set(samples["Image_Metadata_MoA"]) == set(frame["Metadata_MoA"])  # kept under its own name
        assert set(samples["treatment"]) == set(frame["Metadata_Compound"])
        assert sorted(set(samples["level"])) == ["well"]
        assert store.table_counts()["profiles"] == 4 * len(frame)
    for v in vectors[1:]:  # csv at 6 significant digits, the others as written
        np.testing.assert_allclose(np.sort(v, axis=0), np.sort(vectors[0], axis=0), rtol=1e-5)


def test_importing_the_same_table_twice_adds_nothing(tmp_path):
    path = write_profiles(tmp_path / "p.csv", SMALL)
    with open_store(tmp_path / "s.duckdb") as store:
        first = import_profiles(store, path, "screen")
        before = store.table_counts()
        second = import_profiles(store, path, "screen")
        assert first.stored and not second.stored
        assert store.table_counts() == before


def _bad(tmp_path, change) -> str:
    frame = generate_profiles(SMALL)
    change(frame)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.__setitem__("Cells_AreaShape_000", np.where(np.arange(len(f)) == 3, np.nan, f["Cells_AreaShape_000"])),
     r"feature 'Cells_AreaShape_000' is NaN or infinite on 1 row\(s\) \(file rows 5\)"),
    (lambda f: f.__setitem__("Nuclei_AreaShape_001", np.where(np.arange(len(f)) == 0, np.inf, f["Nuclei_AreaShape_001"])),
     r"'Nuclei_AreaShape_001' is NaN or infinite on 1 row\(s\) \(file rows 2\)"),
    (lambda f: f.__setitem__("Cells_Constant", 1.0), r"Cells_Constant have one value on every row"),
    (lambda f: f.__setitem__("Cells_Text", ["x"] * len(f)), r"column 'Cells_Text' is not numeric \(row 2: 'x'\)"),
    (lambda f: f.loc.__setitem__((7, "Metadata_Compound"), None), r"1 row\(s\) have no Metadata_Compound \(file rows 9\)"),
    (lambda f: f.loc.__setitem__(5, f.loc[4]), r"2 rows repeat another row exactly \(file rows 6, 7\)"),
    (lambda f: f.drop(columns=["Metadata_Compound", "Metadata_MoA"], inplace=True), r"no treatment column"),
])
def test_bad_tables_are_refused_naming_the_column_or_rows_and_nothing_is_stored(tmp_path, change, message):
    path = _bad(tmp_path, change)
    with open_store(tmp_path / "s.duckdb") as store:
        good = import_profiles(store, write_profiles(tmp_path / "good.csv", SMALL), "good")
        before = store.table_counts()
        with pytest.raises(ProfileError, match=message):
            import_profiles(store, path, "bad")
        assert store.table_counts() == before and good.stored


def test_drop_bad_features_leaves_them_out_and_says_which(tmp_path):
    def change(f):
        f["Cells_Constant"] = 1.0
        f.loc[3, "Cells_AreaShape_000"] = np.nan

    with open_store(tmp_path / "s.duckdb") as store:
        report = import_profiles(store, _bad(tmp_path, change), drop_bad_features=True)
    assert report.features == 40 - 1 and sorted(report.dropped) == [
        "Cells_AreaShape_000 (NaN or infinite)", "Cells_Constant (constant)"]


def test_cell_count_baseline_counts_dark_objects():
    image = np.full((1, 3, 64, 64), 0.8, np.float32)
    for cy, cx in ((12, 12), (40, 20), (30, 50)):
        yy, xx = np.mgrid[:64, :64]
        image[0, :, (yy - cy) ** 2 + (xx - cx) ** 2 < 25] = 0.2
    values = get_registry().create("encoder", "cell-count").embed(image)["backbone"][0]
    assert values[1] == 3  # objects
    assert values[0] == pytest.approx(3 * 69 / 64 ** 2, abs=0.01)  # 69 pixels per disk of radius < 5
    bright = get_registry().create("encoder", "cell-count", {"polarity": "bright"}).embed(image)["backbone"][0]
    assert bright[1] == 1 and bright[0] == pytest.approx(1 - values[0])


# -- evaluators --------------------------------------------------------------------------------
def _treatments(labels, compounds, x, plates=None):
    n = len(labels)
    return Subject(Samples(np.array([f"i{i}" for i in range(n)], dtype=object), {
        "Metadata_MoA": np.array(labels, dtype=object), "treatment": np.array(compounds, dtype=object),
        "condition": np.array(compounds, dtype=object), "concentration": np.ones(n),
        "plate": np.array(plates or ["P1"] * n, dtype=object)}), embeddings=np.asarray(x, float))


def test_nsc_accuracy_on_a_known_answer():
    # compounds a1, a2 (moa A) and b1, b2 (moa B) at one dose; a1's nearest other compound is b1
    x = [[1, 0], [0.8, 0.6], [0.9, 0.45], [0, 1]]
    subject = _treatments(["A", "A", "B", "B"], ["a1", "a2", "b1", "b2"], x)
    result = get_registry().create("evaluator", "nsc-accuracy", {"k": 2, "bootstrap": 50}).evaluate(subject)
    # nearest: a1 -> b1, a2 -> b1, b1 -> a2, b2 -> a2, all wrong; within 2, all but b1 (a2, a1) find theirs
    assert result.values["nsc_accuracy"] == 0.0
    assert result.values["nsc_top2"] == pytest.approx(0.75)
    assert result.groups["a1|1.0"] == {"nsc_correct": 0.0, "nsc_top2_correct": 1.0}


def test_nsc_excludes_the_same_compound_so_compound_identity_does_not_leak():
    # Each compound has its own strong signature, the mechanism none: with the same compound's other
    # doses allowed as neighbours, 1-NN "finds" the mechanism every time; NSC must drop to chance.
    rng = np.random.default_rng(0)
    compounds = [f"c{i}" for i in range(16) for _ in range(4)]
    moas = [f"m{i % 4}" for i in range(16) for _ in range(4)]
    signature = rng.normal(size=(16, 30)) * 5
    x = np.repeat(signature, 4, axis=0) + rng.normal(size=(64, 30))
    subject = _treatments(moas, compounds, x)
    subject.samples.columns["concentration"] = np.tile([0.1, 0.3, 1.0, 3.0], 16)
    result = get_registry().create("evaluator", "nsc-accuracy", {"bootstrap": 0}).evaluate(subject)
    assert result.values["not_excluded_accuracy"] == 1.0
    assert result.values["nsc_accuracy"] < 0.45  # 3 of the 15 other compounds share the mechanism


def test_nscb_also_excludes_the_batch():
    x = [[1, 0], [0.99, 0.1], [0.9, 0.4], [0, 1]]
    subject = _treatments(["A", "B", "A", "B"], ["a1", "b1", "a2", "b2"], x, plates=["P1", "P1", "P2", "P2"])
    result = get_registry().create("evaluator", "nsc-accuracy", {"batch": "plate", "bootstrap": 0}).evaluate(subject)
    assert result.values["nsc_accuracy"] == 0.0  # a1 -> b1 on its own plate
    assert result.values["nscb_accuracy"] == 0.5  # other plate only: a1 -> a2, b1 -> a2, a2 -> b1, b2 -> b1


def test_consistency_map_on_a_known_answer():
    # two mechanisms, two treatments each, DMSO left out; A's treatments are each other's nearest
    # (AP 1 each); b1's nearest are a2 and a1 before b2 (AP 1/3), b2's nearest is b1 (AP 1)
    x = [[1, 0], [0.95, 0.3], [0.8, 0.6], [0, 1], [-1, 0], [0.1, -1]]
    subject = _treatments(["A", "A", "B", "B", "DMSO", "DMSO"], ["a1", "a2", "b1", "b2", "DMSO", "DMSO"], x)
    result = get_registry().create("evaluator", "map", {"mode": "consistency", "control": "DMSO",
                                                        "null_size": 1000}).evaluate(subject)
    assert result.values["n_groups"] == 2
    assert result.groups["A"]["map"] == pytest.approx(1.0)
    assert result.groups["B"]["map"] == pytest.approx(2 / 3)  # b1: a2, a1 come before b2 -> 1/3; b2 -> 1
    assert set(result.groups["A"]) == {"map", "p_value", "q_value"}


# -- end to end through the command line -------------------------------------------------------
def _table(output: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(output)))


def test_the_profiles_demo_recovers_mechanisms_only_with_the_right_chain(invoke, tmp_path):
    result = invoke("demo", "--kind", "profiles", "--out", tmp_path / "demo")
    assert "imported: 512 well rows x 300 features, 4 plate(s)" in result.output
    measures = {r[0]: r[1:] for r in rows(invoke.db, """
        SELECT transforms, max(value) FILTER (WHERE name = 'nsc_accuracy'),
               max(value) FILTER (WHERE evaluator = 'map' AND evaluator_params->>'mode' = 'activity'
                                  AND name = 'fraction_significant')
        FROM comparison WHERE encoder = 'profiles' AND ranker IS NULL GROUP BY transforms""")}
    assert set(measures) == {"none", "standardize", "robustize", "robustize,spherize", "robustize,select,spherize",
                             "pca,harmony"}
    best_nsc = measures["robustize,spherize"][0]
    assert best_nsc - max(v[0] for k, v in measures.items() if "spherize" not in k) >= 0.4  # the stated margin
    assert measures["none"][0] < 0.2 and measures["robustize,spherize"][1] >= 0.6
    assert measures["robustize"][0] > measures["none"][0]  # per-plate normalization helps on its own
    # the figures the README quotes
    assert [round(measures[k][0], 2) for k in ("robustize,spherize", "robustize", "standardize", "none")] == [
        0.73, 0.20, 0.15, 0.09]
    # per-treatment q-values, queryable
    q = rows(invoke.db, "SELECT count(*), count(DISTINCT group_key) FROM evaluation_groups WHERE name = 'q_value' "
                        "AND evaluator = 'map'")
    assert q[0][1] == 96 + 8  # activity per treatment (24 compounds x 4 doses), consistency per mechanism
    # a second run adds nothing
    before = rows(invoke.db, "SELECT (SELECT count(*) FROM embedding_sets), (SELECT count(*) FROM evaluations), "
                             "(SELECT count(*) FROM evaluation_groups), (SELECT count(*) FROM profiles)")
    invoke("demo", "--kind", "profiles", "--out", tmp_path / "demo")
    assert rows(invoke.db, "SELECT (SELECT count(*) FROM embedding_sets), (SELECT count(*) FROM evaluations), "
                           "(SELECT count(*) FROM evaluation_groups), (SELECT count(*) FROM profiles)") == before
    pivot = _table(invoke("compare", "--rows", "transforms", "--columns", "evaluator", "--value", "nsc_accuracy",
                          "--format", "csv").stdout)
    assert {r["transforms"]: float(r["nsc-accuracy"]) for r in pivot}["robustize,spherize"] == pytest.approx(best_nsc)
    page = (tmp_path / "demo" / "report.html").read_text()
    assert "nsc_accuracy" in page and "Hits of robustize,spherize: treatments active at q &lt; 0.05" in page
    assert "profiles/screen · robustize,spherize · centroid · euclidean · reference DMSO" in page
    # the README's grid on the imported screen: reuses the demo's chains, adds a ranking per chain
    out = invoke("run", "--encoders", "profiles", "--transforms", "none|robustize,spherize", "--references", "DMSO",
                 "--metrics", "euclidean", "--evaluators", "nsc-accuracy,map,rank-correlation", "-p", "map.control=DMSO",
                 "-p", "rank-correlation.truth=concentration", "--format", "csv").output
    assert "transformed 0 set(s), computed 0 rankings and 0 evaluations" in out
    spearman = dict(rows(invoke.db, "SELECT transforms, value FROM comparison WHERE name = 'spearman'"))
    assert spearman["robustize,spherize"] > 0.7 > 0.1 > spearman["none"]  # distance from DMSO follows the dose


def test_a_1000_by_500_table_imports_transforms_and_evaluates_through_the_cli(invoke, tmp_path):
    spec = ProfileSpec(plates=8, features=500, seed=4)
    path = write_profiles(tmp_path / "big.csv.gz", spec)
    assert spec.n_wells == 1024
    invoke("import-profiles", path, "--name", "big")
    chains = "standardize|robustize|spherize|pca|select|pca,harmony|robustize,select,spherize"
    out = invoke("transform", "--encoder", "profiles:big", "--transforms", chains, "--reference", "DMSO",
                 "-p", "pca.components=30").output
    assert out.count("now") == 7
    assert rows(invoke.db, "SELECT count(*) FROM embedding_sets WHERE transforms IS NOT NULL")[0][0] == 7
    dims = dict(rows(invoke.db, "SELECT transforms, dim FROM embedding_sets WHERE transforms IS NOT NULL"))
    assert dims["standardize"] == 500 and dims["pca"] == 30 and dims["select"] < 500
    again = invoke("transform", "--encoder", "profiles:big", "--transforms", chains, "--reference", "DMSO",
                   "-p", "pca.components=30").output
    assert again.count("stored") == 7 and "now" not in again
    invoke("evaluate", "--evaluator", "nsc-accuracy,map", "-p", "map.control=DMSO", "-p", "map.null_size=1000")
    assert rows(invoke.db, "SELECT count(DISTINCT embedding_set_id) FROM comparison WHERE evaluator = 'nsc-accuracy'")[0][0] == 8


def test_import_errors_reach_the_user_as_one_line(invoke, tmp_path):
    path = tmp_path / "x.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("Metadata_Compound,Cells_A\nDMSO,1\nDMSO,\n")
    result = invoke("import-profiles", path, ok=False)
    assert result.exit_code == 1 and "feature 'Cells_A' is NaN or infinite on 1 row(s) (file rows 3)" in result.output
    assert "Traceback" not in result.output
