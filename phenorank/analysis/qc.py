"""Plate QC: can this plate be trusted? Per plate, between the negative control and a positive
control class: Z'-factor (Zhang et al. 1999) and SSMD (Zhang 2007); the control's coefficient of
variation; the edge effect (outer-ring controls vs inner ones); per image a focus score (variance
of the Laplacian) and an outlier flag (robust z of the readout within its class). And without a
readout, seed 001's artifact flags from the statistics ingest stored per image and layer."""

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
    """(x - median) / (1.4826 MAD); NaN (an image without a focus slope) is left out and scores 0."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(len(values))
    median = np.median(values[finite])
    mad = 1.4826 * np.median(np.abs(values[finite] - median))
    return np.where(finite, (values - median) / mad, 0.0) if mad > 0 else np.zeros(len(values))


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


IMAGE_LIMITS = {"blur_z": -3.0, "max_percent_maximal": 1.0, "intensity_z": 5.0, "min_intensity_change": 0.2}


def artifact_flags(rows: list[dict], limits: dict | None = None, by: tuple[str, ...] = ("plate",)) -> list[dict]:
    """Per image, from its layers' statistics (rows with image_id, plate, layer, the ``by``
    columns and the names of ``image_quality.STATISTICS``), compared within its group of ``by``
    (seed 001: the plate, as it read one histogram per plate and channel):

    - ``blurred``: the focus slope of the image's sharpest layer has a robust z below ``blur_z``
      (a focal stack has blurred layers by design; a blurred acquisition has no sharp one);
    - ``saturated``: more than ``max_percent_maximal`` percent of a layer's pixels at its maximum;
    - ``intensity_outlier``: a layer's median or 99 % quantile with |robust z| above
      ``intensity_z`` among the same layer of the plate's images and more than
      ``min_intensity_change`` (a fraction) away from their median: bright-field backgrounds
      vary so little that a 3 % change is already many robust SDs, and is no artifact.

    A limit of None is not checked. ``reasons`` names each flag with its layer and value. The
    focus slope also follows the content (a shrunken spheroid has fewer edges): ``by=("plate",
    "condition")`` compares like with like where treatments change the picture."""
    limits = {**IMAGE_LIMITS, **(limits or {})}
    if not rows:
        return []
    value = lambda row, name: np.nan if row[name] is None else float(row[name])  # noqa: E731
    images: dict[str, dict] = {}
    for row in rows:
        image = images.setdefault(row["image_id"], {"image_id": row["image_id"], "plate": str(row["plate"]),
                                                    "blurred": False, "saturated": False,
                                                    "intensity_outlier": False, "reasons": [], "layers": []})
        image["layers"].append(row)
    order = list(images.values())
    group_of = lambda row: "|".join(str(row.get(column)) for column in by)  # noqa: E731
    plates = np.array([group_of(image["layers"][0]) for image in order], dtype=object)
    slopes = [np.array([value(r, "focus_slope") for r in image["layers"]]) for image in order]
    sharpest = np.array([s[np.isfinite(s)].max() if np.isfinite(s).any() else np.nan for s in slopes])
    focus_z = np.zeros(len(order))
    for plate in set(plates):
        focus_z[plates == plate] = robust_z(sharpest[plates == plate])
    layer_plates = np.array([group_of(r) for r in rows], dtype=object)
    layers = np.array([int(r["layer"]) for r in rows])
    intensity = {name: np.array([value(r, name) for r in rows]) for name in ("median", "q99")}
    intensity_z = {name: np.zeros(len(rows)) for name in intensity}
    intensity_change = {name: np.zeros(len(rows)) for name in intensity}
    for plate, layer in set(zip(layer_plates, layers)):
        group = (layer_plates == plate) & (layers == layer)
        for name in intensity:
            intensity_z[name][group] = robust_z(intensity[name][group])
            typical = np.nanmedian(intensity[name][group])
            intensity_change[name][group] = np.abs(intensity[name][group] / typical - 1) if typical else np.inf
    for k, image in enumerate(order):
        if limits["blur_z"] is not None and focus_z[k] < limits["blur_z"]:
            image["blurred"] = True
            image["reasons"].append(f"sharpest layer's focus slope {sharpest[k]:.2f} (z {focus_z[k]:.1f})")
    for i, row in enumerate(rows):
        image, where = images[row["image_id"]], f"layer {row['layer']}"
        percent = value(row, "percent_maximal")
        if limits["max_percent_maximal"] is not None and percent > limits["max_percent_maximal"]:
            image["saturated"] = True
            image["reasons"].append(f"{where}: {percent:.1f}% of pixels at the maximum")
        if limits["intensity_z"] is not None:
            for name in intensity:
                if (abs(intensity_z[name][i]) > limits["intensity_z"]
                        and intensity_change[name][i] > (limits["min_intensity_change"] or 0)):
                    image["intensity_outlier"] = True
                    image["reasons"].append(f"{where}: {name} {intensity[name][i]:.4g} (z {intensity_z[name][i]:.1f})")
    for image in order:
        del image["layers"]
        image["flagged"] = image["blurred"] or image["saturated"] or image["intensity_outlier"]
        image["reasons"] = "; ".join(image["reasons"])
    return order
