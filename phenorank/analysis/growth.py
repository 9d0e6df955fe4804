"""Growth between two days of the same well (the ``pairs`` table: day 7 -> day 10 in seed 000):
fold change of the spheroid's area, equivalent diameter or volume, and the specific growth rate
ln(late / early) / days. Volume is that of the ellipsoid of revolution with the object's fitted
ellipse (area and eccentricity from morphometrics) as its section, turned about its long axis."""

from __future__ import annotations

import numpy as np

MEASURES = ("area", "diameter", "volume")


def ellipsoid_volume(area: np.ndarray, eccentricity: np.ndarray) -> np.ndarray:
    """4/3 pi a b^2 for the ellipse of this area (pi a b) and eccentricity (b = a sqrt(1 - e^2))."""
    ratio = np.sqrt(np.clip(1 - np.asarray(eccentricity, np.float64) ** 2, 1e-6, 1))
    a = np.sqrt(np.asarray(area, np.float64) / (np.pi * ratio))
    return 4 / 3 * np.pi * a * (a * ratio) ** 2


def size(features: dict[str, np.ndarray], measure: str) -> np.ndarray:
    if measure == "area":
        return features["area"]
    if measure == "diameter":
        return features["equivalent_diameter"]
    if measure == "volume":
        return ellipsoid_volume(features["area"], features["eccentricity"])
    raise ValueError(f"growth measure must be one of {', '.join(MEASURES)}, got {measure!r}")


def growth(early: np.ndarray, late: np.ndarray, days: np.ndarray, rate: bool) -> np.ndarray:
    """Fold change late / early, or the specific growth rate ln(late / early) per day."""
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = np.asarray(late, np.float64) / np.asarray(early, np.float64)
        return np.log(fold) / np.asarray(days, np.float64) if rate else fold
