"""Dose-response fits at screen scale: N treatments x 7 doses x 4 wells, each with a 200-refit
bootstrap of its EC50 interval, timed three ways in this process:

  * phenorank:  `fit_treatments` (curve_fit in standard units with the analytic Hill Jacobian,
                bootstrap refits started from the point estimate);
  * baseline:   the plain recipe -- scipy `curve_fit` on the raw readout with finite-difference
                derivatives and default starts, refit for each bootstrap resample;
  * agreement:  the EC50s of both, and against the truth they were drawn from.

The readout is in pixel units (areas in the thousands), as a morphometrics feature is.

    .venv/bin/python benchmarks/potency.py                   # 200 treatments (about 1 minute)
    .venv/bin/python benchmarks/potency.py --treatments 50
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def plain_fit(log_dose, y):
    from scipy.optimize import curve_fit

    from phenorank.analysis.dose_response import hill

    low, high = log_dose.min(), log_dose.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params, _ = curve_fit(hill, log_dose, y, p0=[y[log_dose == low].mean(), y[log_dose == high].mean(),
                                                     (low + high) / 2, 1.0],
                              bounds=([-np.inf, -np.inf, low - 3, 0.1], [np.inf, np.inf, high + 3, 10.0]),
                              maxfev=20000)
    return params


def plain_bootstrap(log_dose, y, n, seed):
    rng = np.random.default_rng(seed)
    by_dose = [np.flatnonzero(log_dose == level) for level in np.unique(log_dose)]
    values = []
    for _ in range(n):
        rows = np.concatenate([rng.choice(m, len(m)) for m in by_dose])
        try:
            values.append(plain_fit(log_dose[rows], y[rows])[2])
        except (RuntimeError, ValueError):
            continue
    return np.percentile(values, [2.5, 97.5])


def main() -> None:
    from phenorank.analysis.dose_response import fit_treatments, hill
    from phenorank.registry import Samples

    parser = argparse.ArgumentParser()
    parser.add_argument("--treatments", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    doses = np.repeat(10.0 ** np.linspace(-2, 1, 7), 4)
    true_ec50 = 10 ** rng.uniform(-1.3, 0.3, args.treatments)
    slopes = rng.uniform(0.8, 2.5, args.treatments)
    blocks = [5000 + hill(np.log10(doses), 0, -2500, np.log10(e), s) + rng.normal(0, 250, len(doses))
              for e, s in zip(true_ec50, slopes)]
    values = np.concatenate(blocks + [5000 + rng.normal(0, 250, 16)])
    names = np.array([f"t{i:04d}" for i in range(args.treatments) for _ in doses] + ["DMSO"] * 16, dtype=object)
    samples = Samples(np.arange(len(values)).astype(str), {
        "treatment": names, "condition": np.where(names == "DMSO", "control", "screen"),
        "concentration": np.concatenate([doses] * args.treatments + [np.zeros(16)])})

    started = time.perf_counter()
    fits = fit_treatments(values, samples, bootstrap=args.bootstrap)
    ours = time.perf_counter() - started

    started = time.perf_counter()
    plain = []
    for i in range(args.treatments):
        log_dose, y = np.log10(doses), blocks[i]
        plain.append(10 ** plain_fit(log_dose, y)[2])
        plain_bootstrap(log_dose, y, args.bootstrap, 0)
    baseline = time.perf_counter() - started

    ec50 = np.array([f.get("ec50", np.nan) for f in fits])
    fitted = np.isfinite(ec50)
    agree = np.abs(np.log10(ec50[fitted] / np.array(plain)[fitted]))
    within_2 = np.mean(np.abs(np.log10(ec50[fitted] / true_ec50[fitted])) < np.log10(2))
    print(f"{args.treatments} treatments x 28 wells, {args.bootstrap} bootstrap refits each")
    print(f"phenorank fit_treatments: {ours:7.2f} s")
    print(f"plain curve_fit recipe:   {baseline:7.2f} s   (ratio phenorank/baseline {ours / baseline:.2f})")
    print(f"EC50 reported (ok): {fitted.sum()} of {args.treatments}; median |log10| difference from the plain fit "
          f"{np.median(agree):.2g}; within a factor of 2 of the truth: {within_2:.1%}")


if __name__ == "__main__":
    main()
