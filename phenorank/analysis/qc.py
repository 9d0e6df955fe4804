"""Plate QC: can this plate be trusted? Per plate, between the negative control and a positive
control class: Z'-factor (Zhang et al. 1999) and SSMD (Zhang 2007); the control's coefficient of
variation; the edge effect (outer-ring controls vs inner ones); per image a focus score (variance
of the Laplacian) and an outlier flag (robust z of the readout within its class)."""

from __future__ import annotations

import numpy as np

DEFAULT_LIMITS = {"z_prime": 0.0, "ssmd": 2.0, "control_cv": 0.5, "edge_p": 0.01}


def z_prime(positive: np.ndarray, negative: np.ndarray) -> float:
    """1 - 3 (sd_p + sd_n) / |mean_p - mean_n| (sample sd): above 0.5 an excellent assay, below 0
    the controls overlap."""
    gap = abs(np.mean(positive) - np.mean(negative))
    spread = 3 * (np.std(positive, ddof=1) + np.std(negative, ddof=1))
    return float(1 - spread / gap) if gap > 0 else float("-inf")


def ssmd(positive: np.ndarray, negative: np.ndarray) -> float:
    """(mean_p - mean_n) / sqrt(var_p + var_n) (sample variances)."""
    spread = np.sqrt(np.var(positive, ddof=1) + np.var(negative, ddof=1))
    return float((np.mean(positive) - np.mean(negative)) / spread) if spread > 0 else float("nan")


def focus_score(image: np.ndarray) -> float:
    """Variance of the Laplacian of the image's mean channel (scikit-image): low = blurred."""
    from skimage.filters import laplace

    gray = np.asarray(image, np.float64)
    gray = gray.mean(axis=0) if gray.ndim == 3 else gray
    return float(laplace(gray).var())


def robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / mad if mad > 0 else np.zeros_like(values, dtype=np.float64)


def plate_qc(values: np.ndarray, samples, control: str = "control", positive: str | None = None,
             limits: dict | None = None) -> list[dict]:
    """One row per plate: the measures, and ``passed`` with the reasons it did not (a limit of
    None is not checked)."""
    from scipy.stats import mannwhitneyu

    limits = {**DEFAULT_LIMITS, **(limits or {})}
    values = np.asarray(values, np.float64)
    plates = samples["plate"].astype(str)
    condition = samples["condition"].astype(str)
    is_control = samples.matching(control)
    edge = np.array([bool(e) if e is not None and e == e else False for e in samples["edge"]]) \
        if "edge" in samples else np.zeros(len(values), bool)
    out = []
    for plate in sorted(set(plates)):
        on = plates == plate
        negative = on & is_control
        row = {"plate": plate, "n_wells": int(on.sum()), "n_control": int(negative.sum())}
        failures = []
        if negative.sum() >= 2:
            neg = values[negative]
            row["control_cv"] = float(np.std(neg, ddof=1) / abs(np.mean(neg))) if np.mean(neg) else float("nan")
            if limits["control_cv"] is not None and row["control_cv"] > limits["control_cv"]:
                failures.append(f"control CV {row['control_cv']:.2f} > {limits['control_cv']}")
            inner, outer = values[negative & ~edge], values[negative & edge]
            if len(inner) >= 2 and len(outer) >= 2:
                row["edge_difference"] = float(np.median(outer) - np.median(inner))
                row["edge_p"] = float(mannwhitneyu(outer, inner).pvalue)
                if limits["edge_p"] is not None and row["edge_p"] < limits["edge_p"]:
                    failures.append(f"edge effect: outer-ring controls differ (p = {row['edge_p']:.2g})")
            if positive:
                pos_rows = on & (condition == positive)
                if pos_rows.sum() >= 2:
                    row["z_prime"] = z_prime(values[pos_rows], neg)
                    row["ssmd"] = ssmd(values[pos_rows], neg)
                    if limits["z_prime"] is not None and row["z_prime"] < limits["z_prime"]:
                        failures.append(f"Z' {row['z_prime']:.2f} < {limits['z_prime']}")
                    if limits["ssmd"] is not None and abs(row["ssmd"]) < limits["ssmd"]:
                        failures.append(f"|SSMD| {abs(row['ssmd']):.2f} < {limits['ssmd']}")
                else:
                    failures.append(f"fewer than 2 {positive!r} wells")
        else:
            failures.append(f"fewer than 2 {control!r} wells")
        row["passed"] = not failures
        row["reasons"] = "; ".join(failures)
        out.append(row)
    return out


def image_flags(values: np.ndarray, samples, focus: np.ndarray | None = None, outlier_z: float = 3.5,
                blur_z: float = -3.0) -> list[dict]:
    """Per image: focus score and whether it is blurred (robust z of the focus below ``blur_z``
    within its plate) and whether its readout is an outlier within its plate and condition."""
    values = np.asarray(values, np.float64)
    plates = samples["plate"].astype(str)
    condition = samples["condition"].astype(str)
    readout_z = np.zeros(len(values))
    for key in set(zip(plates, condition)):
        rows = (plates == key[0]) & (condition == key[1])
        readout_z[rows] = robust_z(values[rows])
    focus_z = np.zeros(len(values))
    if focus is not None:
        for plate in set(plates):
            rows = plates == plate
            focus_z[rows] = robust_z(np.log(np.maximum(focus[rows], 1e-12)))
    return [{"image_id": str(samples.image_ids[i]), "plate": plates[i], "focus": None if focus is None else float(focus[i]),
             "blurred": bool(focus is not None and focus_z[i] < blur_z),
             "outlier": bool(abs(readout_z[i]) > outlier_z), "readout_z": float(readout_z[i])}
            for i in range(len(values))]
