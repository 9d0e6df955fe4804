"""Ranking and evaluation at scale: N = 1k, 10k, 100k embeddings of 512-d.

Each case runs in its own process. Memory is the peak of what the case allocates on top of the
loaded embeddings, as tracemalloc sees it (NumPy, SciPy and pandas report their buffers to it),
plus the process's peak RSS for the whole picture. Targets (issue 5):
  * centroid ranker, every metric: time grows linearly in N (t(100k)/t(10k) about 10);
  * peak memory at 100k below 2 GB (the embeddings themselves are 100k x 512 float32 = 205 MB);
  * baseline, same run: each metric's ``pairwise`` on the whole array at once (no blocks), which
    is what a plain implementation does; ratios < 1 mean the blocked path costs less.

    .venv/bin/python benchmarks/rank.py            # all sizes (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/rank.py --quick    # 1k and 10k only
    .venv/bin/python benchmarks/rank.py --quick --evaluators   # the evaluators only
    .venv/bin/python benchmarks/rank.py --projection           # pca and umap (umap at 100k: ~10 min)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

METRICS = ("cosine", "euclidean", "mse", "l1", "pearson", "dot", "jaccard", "hamming")
DIM = 512


def data(n: int, seed: int = 0):
    """Embeddings of a screen-like plate: 10% controls, 5% single dose, 5% exploded, the rest
    treatment groups of 4 replicates; classes shifted along their own directions."""
    from phenorank.registry import Samples

    rng = np.random.default_rng(seed)
    labels = np.array(["control"] * (n // 10) + ["single_dose"] * (n // 20) + ["exploded"] * (n // 20)
                      + ["screen"] * (n - n // 10 - n // 10), dtype=object)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x[labels == "single_dose", :8] += 2.0
    x[labels == "exploded", :8] += 4.0
    groups = np.where(labels == "screen", np.arange(n) // 4, -1).astype(str)
    x[labels == "screen", :8] += (np.arange((labels == "screen").sum()) // 4 % 5)[:, None] * 0.8
    samples = Samples(np.array([f"i{i}" for i in range(n)], dtype=object), {
        "condition": labels, "well": np.array([f"w{i}" for i in range(n)], dtype=object),
        "plate": np.array(["p"] * n, dtype=object), "treatment": groups,
        "concentration": np.ones(n), "effect": np.where(labels == "control", 0.0, 1.0),
        # 50 mechanisms over the treatments, for map's consistency mode
        "Metadata_MoA": np.where(labels == "screen", np.char.add("m", (np.arange(n) // 4 % 50).astype(str)), "none")})
    return x, samples


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case(kind: str, name: str, n: int) -> dict:
    """One case in this fresh process. The work runs three times: on 400 items first, so imports
    and first-call set-up (a library's import, a JIT compile) are paid outside the measurements;
    then timed without tracing; then once more under tracemalloc for its peak memory, because
    tracing slows allocation-heavy Python several-fold (it had made every evaluator look like
    30 s of fixed cost at 1k items)."""
    work = prepare(kind, name, n)
    prepare(kind, name, 400)()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    return {"seconds": seconds, "peak_mb_above_data": peak, "peak_mb": rss_mb()}


def projection_case(name: str, n: int) -> dict:
    """A projection ranker in this fresh process: seconds for its first reference (the fit) and
    for the next two (the cached projection, oriented anew), and the peak resident memory of the
    whole work, data included. The kernel's high-water mark is reset after the warm-up: numba's
    arrays, which UMAP's work lives in, are invisible to tracemalloc."""
    from pathlib import Path

    from phenorank.registry import get_registry

    bare = name.startswith("bare-")
    name = name.removeprefix("bare-")

    def work(x, samples) -> list[float]:  # seconds per reference
        if bare:
            start = time.perf_counter()
            bare_projection(name, x)
            return [time.perf_counter() - start, float("nan")]
        registry = get_registry()  # the grid's use: one ranker object, one reference after another
        ranker, metric = registry.create("ranker", name), registry.create("metric", "cosine")
        seconds = []
        for reference in ("control", "single_dose", "exploded"):
            start = time.perf_counter()
            scores = ranker.fit(x, samples, metric, reference).score(x, samples)
            seconds.append(time.perf_counter() - start)
            assert scores.shape == (len(x),) and np.isfinite(scores).all()
        return seconds

    work(*data(400))  # imports and numba compiles, outside the measurement
    x, samples = data(n)
    Path("/proc/self/clear_refs").write_text("5")
    seconds = work(x, samples)
    peak = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    return {"first": seconds[0], "next": max(seconds[1:]), "peak_rss_mb": peak, "data_mb": x.nbytes / 2 ** 20}


def bare_projection(name: str, x: np.ndarray) -> np.ndarray:
    """The baseline: one projection of the cosine geometry as a plain script computes it (unit rows
    in float64, straight into scikit-learn or umap-learn at the ranker's defaults), for one
    reference; orienting it for another costs nothing more."""
    unit = x.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    if name == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=1, random_state=0).fit_transform(unit)[:, 0]
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return umap.UMAP(n_components=1, n_neighbors=15, min_dist=0.1, metric="cosine",
                         random_state=0).fit_transform(unit)[:, 0]


def prepare(kind: str, name: str, n: int):
    """The case's work as a function of nothing, its data made and loaded."""
    from phenorank.registry import Subject, get_registry

    x, samples = data(n)
    registry = get_registry()
    if kind == "centroid":
        def work():
            metric = registry.create("metric", name)
            scores = registry.create("ranker", "centroid").fit(x, samples, metric, "control").score(x)
            assert scores.shape == (n,)
    elif kind == "ranker":  # a learned ranker at its defaults; its reference: the controls
        samples.paired = x + np.random.default_rng(1).normal(0, 0.5, x.shape).astype(np.float32)  # "day 7"

        def work():
            ranker = registry.create("ranker", name)
            scores = ranker.fit(x, samples, registry.create("metric", "euclidean"), "control").score(x, samples)
            assert scores.shape == (n,) and np.isfinite(scores).all()
    elif kind == "baseline":  # the whole array at once in float64, no blocks
        def work():
            centre = x[samples["condition"] == "control"].astype(np.float64).mean(axis=0, keepdims=True)
            registry.create("metric", name).pairwise(x.astype(np.float64), centre)
    else:
        # default parameters, what a user gets; "map-consistency": map in consistency mode
        evaluator = registry.create("evaluator", "map", {"mode": "consistency"}) if name == "map-consistency" \
            else registry.create("evaluator", name)
        subject = Subject(samples, embeddings=x)
        if evaluator.needs == "scores":  # the ranking is the evaluator's input, made beforehand
            ranker = registry.create("ranker", "centroid").fit(x, samples, registry.create("metric", "cosine"), "control")
            subject = Subject(samples, scores=ranker.score(x))

        def work():
            evaluator.evaluate(subject)
    return work


def run_case(kind: str, name: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--case", kind, name, str(n)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--case"]:
        kind, name, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(json.dumps(projection_case(name, n) if kind == "projection" else case(kind, name, n)))
        return
    if "--projection" in sys.argv:
        projections((1_000, 10_000) if "--quick" in sys.argv else (1_000, 10_000, 100_000))
        return
    sizes = (1_000, 10_000) if "--quick" in sys.argv else (1_000, 10_000, 100_000)
    if "--evaluators" not in sys.argv:
        rankers(sizes)
        learned(sizes)
    evaluators(sizes)


def learned(sizes) -> None:
    print("\nlearned rankers at default parameters, fitted on the controls (10% of N), scoring all")
    table("ranker", ("softmax", "predictor"), sizes)


def table(kind: str, names, sizes) -> None:
    """One row per case name: seconds, traced peak MB and process peak RSS at each size."""
    for name in names:
        cells = []
        for n in sizes:
            r = run_case(kind, name, n)
            cells.append(f"{r['seconds']:7.2f}s {r['peak_mb_above_data']:5.0f}MB {r['peak_mb']:5.0f}RSS"
                         if "seconds" in r else r["error"][:22])
        print(f"{name:17} " + " ".join(f"{c:>26}" for c in cells))


def rankers(sizes) -> None:
    print(f"centroid ranker, {DIM}-d embeddings (seconds; peak MB allocated above the loaded data)")
    print(f"{'metric':10} " + " ".join(f"{n:>22,}" for n in sizes) + "   t(10x N)/t   vs baseline time/mem at max N")
    for metric in METRICS:
        cells, times, peaks = [], [], []
        for n in sizes:
            r = run_case("centroid", metric, n)
            times.append(r.get("seconds", float("nan")))
            cells.append(f"{r['seconds']:8.3f}s {r['peak_mb_above_data']:6.0f}MB" if "seconds" in r else r["error"][:22])
            peaks.append(r.get("peak_mb", float("nan")))
        b = run_case("baseline", metric, sizes[-1])
        growth = times[-1] / times[-2] if len(times) > 1 else float("nan")
        ratio = (f"{times[-1] / b['seconds']:.2f}x / "
                 f"{r['peak_mb_above_data'] / max(b['peak_mb_above_data'], 1):.2f}x" if "seconds" in b else b["error"][:30])
        print(f"{metric:10} " + " ".join(f"{c:>22}" for c in cells) + f"   {growth:10.1f}   {ratio}"
              f"   (process peak RSS at max N: {peaks[-1]:.0f} MB)")


def projections(sizes) -> None:
    print(f"projection rankers (cosine) at default parameters, {DIM}-d: the first reference fits the projection, "
          "the next two reuse it; peak RSS of the process, data included (target at 100k: < 2048 MB).\n"
          "Baseline, same run: the plain script's one projection (float64 unit rows into the library); "
          "ratios phenorank / baseline")
    print(f"{'ranker':8} {'N':>8} {'first s':>9} {'next s':>8} {'peak RSS MB':>12} {'data MB':>8} "
          f"{'bare s':>8} {'bare MB':>8} {'time x':>7} {'memory x':>9}")
    for name in ("pca", "umap"):
        for n in sizes:
            r, b = run_case("projection", name, n), run_case("projection", f"bare-{name}", n)
            if "error" in r or "error" in b:
                print(f"{name:8} {n:>8,} {r.get('error', b.get('error', ''))[:60]}")
                continue
            print(f"{name:8} {n:>8,} {r['first']:9.2f} {r['next']:8.2f} {r['peak_rss_mb']:12.0f} {r['data_mb']:8.0f} "
                  f"{b['first']:8.2f} {b['peak_rss_mb']:8.0f} {r['first'] / b['first']:7.2f} "
                  f"{r['peak_rss_mb'] / b['peak_rss_mb']:9.2f}")


def evaluators(sizes) -> None:
    print("\nevaluators at default parameters (k-means: 400 restarts x 2 geometries, 200 bootstraps; linear probe: "
          "lbfgs; map: activity mode, and consistency mode over 50 mechanisms; intervals of 1000 bootstraps)")
    table("evaluator", ("ranking-accuracy", "rank-correlation", "kmeans-accuracy", "linear-probe", "map",
                        "map-consistency"), sizes)


if __name__ == "__main__":
    main()
