"""Dose-response: a four-parameter logistic (Hill) curve of a readout against log10 concentration
per treatment, fitted with scipy's ``curve_fit``, with a bootstrap interval of the EC50 over wells.

A fit is reported honestly: ``status`` says ``inactive`` when the curve explains no more than a
flat line (extra-sum-of-squares F test), ``above range`` / ``below range`` when the EC50 lies
outside the tested doses (the EC50 is then left empty, never extrapolated), ``no fit`` when the
optimizer does not converge.
"""

from __future__ import annotations

import warnings

import numpy as np

STATUS_OK = "ok"


def hill(log_dose: np.ndarray, bottom: float, top: float, log_ec50: float, slope: float) -> np.ndarray:
    return bottom + (top - bottom) / (1.0 + 10.0 ** ((log_ec50 - log_dose) * slope))


def _hill_jacobian(log_dose: np.ndarray, bottom: float, top: float, log_ec50: float, slope: float) -> np.ndarray:
    """Derivatives of :func:`hill` by its four parameters: analytic, so a bootstrap of hundreds of
    refits does not spend its time on finite differences."""
    u = 10.0 ** ((log_ec50 - log_dose) * slope)
    share = 1.0 / (1.0 + u)
    common = -(top - bottom) * u * np.log(10.0) * share ** 2
    return np.column_stack([1.0 - share, share, common * slope, common * (log_ec50 - log_dose)])


def _fit(log_dose: np.ndarray, y: np.ndarray, top: float | None = None, start: np.ndarray | None = None):
    """(bottom, top, log10 EC50, slope); with ``top`` given, the top plateau is fixed there (a
    3-parameter fit), which is what makes the EC50 of a curve that has not levelled off findable.
    The readout is fitted in standard units: a readout in pixels (areas in the thousands) would
    leave the optimizer hundreds of times more evaluations to converge. ``start``: a previous fit
    to start from (the bootstrap refits start from the point estimate)."""
    from scipy.optimize import curve_fit

    centre, scale = float(y.mean()), float(y.std()) or 1.0
    z = (y - centre) / scale
    low, high = log_dose.min(), log_dose.max()
    first, last = z[log_dose == low].mean(), z[log_dose == high].mean()
    if start is not None:
        first, last = (start[0] - centre) / scale, (start[1] - centre) / scale
    middle, steep = (start[2], start[3]) if start is not None else ((low + high) / 2, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if top is None:
            params, _ = curve_fit(hill, log_dose, z, p0=[first, last, np.clip(middle, low - 3, high + 3),
                                                         np.clip(steep, 0.1, 10.0)],
                                  bounds=([-np.inf, -np.inf, low - 3, 0.1], [np.inf, np.inf, high + 3, 10.0]),
                                  jac=_hill_jacobian, maxfev=2000)
            bottom, fitted_top, log_ec50, slope = params
        else:
            fixed = (top - centre) / scale
            params, _ = curve_fit(lambda x, b, e, s: hill(x, b, fixed, e, s), log_dose, z,
                                  p0=[first, np.clip(middle, low - 3, high + 3), np.clip(steep, 0.1, 10.0)],
                                  bounds=([-np.inf, low - 3, 0.1], [np.inf, high + 3, 10.0]),
                                  jac=lambda x, b, e, s: _hill_jacobian(x, b, fixed, e, s)[:, [0, 2, 3]],
                                  maxfev=2000)
            bottom, fitted_top, log_ec50, slope = params[0], fixed, params[1], params[2]
    return np.array([centre + scale * bottom, centre + scale * fitted_top, log_ec50, slope])


def fit_curve(dose: np.ndarray, y: np.ndarray, bootstrap: int = 200, seed: int = 0, alpha: float = 0.05,
              control: tuple[float, float] | None = None, top: float | None = None) -> dict:
    """Fit one treatment's wells. ``control``: (mean, sd) of the negative control's readout, the
    floor of the efficacy (Emax = top - control mean). ``top``: fix the top plateau (e.g. at the
    positive control's level); free, a curve still rising at the highest dose can pass for a weak
    one that has levelled off, and is then reported as such."""
    from scipy import stats

    dose, y = np.asarray(dose, np.float64), np.asarray(y, np.float64)
    log_dose, fixed_top = np.log10(dose), top
    levels = np.unique(log_dose)
    out = {"n_wells": len(y), "n_doses": len(levels), "min_dose": float(dose.min()), "max_dose": float(dose.max())}
    if len(levels) < 3:
        return {**out, "status": "too few doses", "reason": f"{len(levels)} concentrations; a curve needs 3 or more"}
    try:
        bottom, top, log_ec50, slope = _fit(log_dose, y, top)
    except (RuntimeError, ValueError) as exc:
        return {**out, "status": "no fit", "reason": f"curve_fit did not converge ({exc})"}
    fitted = hill(log_dose, bottom, top, log_ec50, slope)
    ss_res, ss_flat = float(((y - fitted) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    r2 = 1 - ss_res / ss_flat if ss_flat > 0 else 0.0
    dof = len(y) - 4
    f_p = 1.0
    if dof > 0 and ss_res > 0:
        f_stat = ((ss_flat - ss_res) / 3) / (ss_res / dof)
        f_p = float(stats.f.sf(f_stat, 3, dof))
    reference = control[0] if control else float(bottom)
    grid = np.linspace(levels[0], levels[-1], 200)
    curve = hill(grid, bottom, top, log_ec50, slope) - reference
    auc = float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(grid)) / (grid[-1] - grid[0]))
    result = {**out, "bottom": float(bottom), "top": float(top), "hill_slope": float(slope),
              "emax": float(top - reference), "auc": auc, "r2": float(r2), "f_test_p": f_p}
    if f_p > alpha:
        return {**result, "status": "inactive", "reason": f"no better than a flat line (F test p = {f_p:.2g})"}
    ec50 = 10 ** log_ec50
    if log_ec50 > levels[-1]:
        return {**result, "status": "above range", "reason": f"EC50 > {dose.max():g}, the highest dose"}
    if log_ec50 < levels[0]:
        return {**result, "status": "below range", "reason": f"EC50 < {dose.min():g}, the lowest dose"}
    # The doses must show both plateaus, or the "top" is a guess and the EC50 with it: the curve
    # must have covered 80% of its rise at the highest dose and no more than 20% at the lowest.
    reached = 1 / (1 + 10 ** ((log_ec50 - levels[-1]) * slope))
    started = 1 / (1 + 10 ** ((log_ec50 - levels[0]) * slope))
    if reached < 0.8:
        return {**result, "status": "above range", "reason": f"the response still rises at {dose.max():g}, the "
                f"highest dose ({reached:.0%} of the fitted rise): EC50 > about {10 ** log_ec50:.3g}"}
    if started > 0.2:
        return {**result, "status": "below range", "reason": f"the response has risen {started:.0%} already at "
                f"{dose.min():g}, the lowest dose: EC50 < about {10 ** log_ec50:.3g}"}
    low, high = _bootstrap_ec50(log_dose, y, bootstrap, seed, fixed_top, np.array([bottom, top, log_ec50, slope]))
    # An interval end outside the tested doses is an extrapolation (often the optimizer's bound):
    # left open and said, never printed as a number.
    notes = []
    if low is not None and low < dose.min():
        low = None
        notes.append(f"the 95% interval reaches below {dose.min():g}, the lowest dose")
    if high is not None and high > dose.max():
        high = None
        notes.append(f"the 95% interval reaches above {dose.max():g}, the highest dose")
    return {**result, "status": STATUS_OK, "reason": "; ".join(notes), "ec50": float(ec50), "ec50_low": low,
            "ec50_high": high}


def _bootstrap_ec50(log_dose: np.ndarray, y: np.ndarray, n: int, seed: int, top: float | None = None,
                    start: np.ndarray | None = None) -> tuple[float | None, float | None]:
    """Percentile interval of the EC50 from refits on wells resampled within each dose. All the
    refits run at once (``_refit_all``: a resample is a vector of well multiplicities); 200
    refits one curve_fit at a time were most of the potency demo's minute."""
    if n <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    by_dose = [np.flatnonzero(log_dose == level) for level in np.unique(log_dose)]
    weights = np.zeros((n, len(y)))
    for b in range(n):
        rows = np.concatenate([rng.choice(members, len(members)) for members in by_dose])
        weights[b] = np.bincount(rows, minlength=len(y))
    if start is None:
        start = _fit(log_dose, y, top)
    values = _refit_all(log_dose, y, weights, start, top)
    values = values[np.isfinite(values)]
    if len(values) < n // 2:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(10 ** low), float(10 ** high)


def _refit_all(log_dose: np.ndarray, y: np.ndarray, weights: np.ndarray, start: np.ndarray,
               top: float | None = None, iterations: int = 200) -> np.ndarray:
    """log10 EC50 of the weighted least-squares Hill fit for every row of ``weights`` at once:
    Levenberg-Marquardt from ``start`` (the point estimate), every fit a row of the same array
    operations, the bounds of ``_fit`` kept by projection. NaN where a fit does not converge.
    Tested against one scipy ``curve_fit`` per resample."""
    centre, scale = float(y.mean()), float(y.std()) or 1.0
    z = (y - centre) / scale
    low, high = log_dose.min(), log_dose.max()
    free = [0, 1, 2, 3] if top is None else [0, 2, 3]
    fixed_top = None if top is None else (top - centre) / scale
    theta0 = np.array([(start[0] - centre) / scale, (start[1] - centre) / scale,
                       np.clip(start[2], low - 3, high + 3), np.clip(start[3], 0.1, 10.0)])
    lower = np.array([-np.inf, -np.inf, low - 3, 0.1])[free]
    upper = np.array([np.inf, np.inf, high + 3, 10.0])[free]
    b = len(weights)
    theta = np.tile(theta0[free], (b, 1))
    damping = np.full(b, 1e-3)
    done = np.zeros(b, dtype=bool)

    def model(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = np.empty((len(params), 4))
        full[:, free] = params
        if top is not None:
            full[:, 1] = fixed_top
        bottom, upper_, middle, slope = (full[:, [k]] for k in range(4))
        u = 10.0 ** ((middle - log_dose[None, :]) * slope)
        share = 1.0 / (1.0 + u)
        value = bottom + (upper_ - bottom) * share
        common = -(upper_ - bottom) * u * np.log(10.0) * share ** 2
        jacobian = np.stack([1.0 - share, share, common * slope, common * (middle - log_dose[None, :])], axis=2)
        return value, jacobian[:, :, free]

    def cost(params: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (w * (z[None, :] - model(params)[0]) ** 2).sum(axis=1)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        current = cost(theta, weights)
        for _ in range(iterations):
            active = np.flatnonzero(~done)
            if not len(active):
                break
            w, params = weights[active], theta[active]
            value, jac = model(params)
            residual = z[None, :] - value
            normal = np.einsum("bni,bn,bnj->bij", jac, w, jac)
            gradient = np.einsum("bni,bn,bn->bi", jac, w, residual)
            diagonal = np.einsum("bii->bi", normal)
            damped = normal + (damping[active, None] * np.maximum(diagonal, 1e-12))[:, :, None] * np.eye(len(free))
            try:
                step = np.linalg.solve(damped, gradient[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(m, g, rcond=None)[0] for m, g in zip(damped, gradient)])
            trial = np.clip(params + step, lower, upper)
            new = cost(trial, w)
            better = np.isfinite(new) & (new <= current[active])
            moved = np.abs(trial - params).max(axis=1)
            theta[active[better]] = trial[better]
            shrink = (current[active] - new) <= 1e-12 * np.maximum(current[active], 1e-300)
            current[active[better]] = new[better]
            damping[active] = np.where(better, damping[active] / 10, damping[active] * 10)
            done[active] = (better & ((moved < 1e-10) | shrink)) | (damping[active] > 1e12)
    ec50 = theta[:, free.index(2)]
    return np.where(done & np.isfinite(ec50), ec50, np.nan)  # done: no step lowers the cost any more


def fit_treatments(values: np.ndarray, samples, control: str = "control", bootstrap: int = 200, seed: int = 0,
                   positive: str | None = None, fix_top: bool = False) -> list[dict]:
    """One fit per treatment with a concentration, against log10 concentration; the rows whose
    condition or treatment is ``control`` give the floor and are never fitted. With a ``positive``
    class, Emax is relative (0 = the control's mean, 1 = the positive class's) and ``fix_top``
    fixes every curve's top there."""
    treatment = samples["treatment"].astype(str)
    condition = samples["condition"].astype(str) if "condition" in samples else treatment
    dose = np.asarray(samples["concentration"], np.float64)
    is_control = samples.matching(control)
    floor = (float(values[is_control].mean()), float(values[is_control].std())) if is_control.any() else None
    is_positive = (condition == positive) if positive else np.zeros(len(values), bool)
    if positive and not is_positive.any():
        raise ValueError(f"no wells of the positive class {positive!r}")
    ceiling = float(values[is_positive].mean()) if positive else None
    fits = []
    for name in sorted(set(treatment[~is_control & ~is_positive & (dose > 0) & np.isfinite(dose)]) - {"", "None", "nan"}):
        rows = (treatment == name) & (dose > 0) & np.isfinite(dose) & ~is_control & ~is_positive
        fit = fit_curve(dose[rows], values[rows], bootstrap, seed, control=floor, top=ceiling if fix_top else None)
        if ceiling is not None and floor is not None and "emax" in fit and ceiling != floor[0]:
            fit["emax_relative"] = fit["emax"] / (ceiling - floor[0])
        fits.append({"treatment": name, **fit})
    return fits
