"""A generated multi-plate profiling screen: mechanisms x compounds x doses x replicates plus DMSO
wells on every plate, as a CellProfiler-style table (``Metadata_`` columns, then features).

What the measured features are made of, per well (in units of the biological noise):
- the treatment's effect: its mechanism's direction (shared by the compounds of a mechanism) plus
  the compound's own direction, scaled by a Hill curve of the dose (each compound its own EC50);
- noise, and a few strong nuisance factors (cell density, focus) that move many features together
  in every well, controls included: spherizing on the controls removes them;
- each plate's own additive and multiplicative batch effect per feature: normalizing per plate
  against its DMSO wells removes it;
- features in very different units (areas in pixels, intensities in fractions);
- a few outlying DMSO wells per plate: robust statistics (median / MAD) resist them.

With the mechanism a metadata column, not-same-compound accuracy and consistency mAP measure
how well a processing chain recovers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COMPARTMENTS = ("Cells", "Nuclei", "Cytoplasm")
CATEGORIES = ("AreaShape", "Intensity", "Texture", "Granularity", "RadialDistribution")


@dataclass(frozen=True)
class ProfileSpec:
    plates: int = 4
    mechanisms: int = 8
    compounds_per_mechanism: int = 3
    doses: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)  # µM
    controls_per_plate: int = 32
    features: int = 300
    outlier_controls: int = 2  # per plate
    nuisance_factors: int = 3
    nuisance_sd: float = 3.0
    plate_offset_sd: float = 1.5
    plate_scale_sd: float = 0.3
    effect: float = 1.6  # the strongest dose's mechanism effect, per feature of its direction
    seed: int = 0

    @property
    def wells_per_plate(self) -> int:
        return self.mechanisms * self.compounds_per_mechanism * len(self.doses) + self.controls_per_plate

    @property
    def n_wells(self) -> int:
        return self.plates * self.wells_per_plate


def feature_names(n: int) -> list[str]:
    return [f"{COMPARTMENTS[i % 3]}_{CATEGORIES[(i // 3) % 5]}_{i:03d}" for i in range(n)]


def _hill(dose: np.ndarray, ec50: np.ndarray, slope: float = 1.5) -> np.ndarray:
    return dose ** slope / (ec50 ** slope + dose ** slope)


def generate_profiles(spec: ProfileSpec = ProfileSpec()) -> pd.DataFrame:
    """The screen as one table, wells in plate order (a plate's wells shuffled over its layout)."""
    rng = np.random.default_rng(spec.seed)
    d = spec.features
    n_compounds = spec.mechanisms * spec.compounds_per_mechanism
    # mechanism directions: each touches a third of the features; compounds add their own
    mechanism_dirs = rng.normal(size=(spec.mechanisms, d)) * (rng.random((spec.mechanisms, d)) < 0.33)
    compound_dirs = rng.normal(size=(n_compounds, d)) * (rng.random((n_compounds, d)) < 0.33)
    ec50 = 10 ** rng.uniform(-0.7, 0.3, n_compounds)  # 0.2 .. 2 µM
    loadings = rng.normal(size=(spec.nuisance_factors, d))
    units = 10 ** rng.uniform(-1, 3, d)  # 0.1 .. 1000: pixels next to fractions
    baseline = rng.uniform(2, 6, d)
    columns: dict[str, list] = {k: [] for k in ("Metadata_Plate", "Metadata_Well", "Metadata_Compound",
                                                "Metadata_Concentration", "Metadata_MoA", "Metadata_Replicate")}
    blocks = []
    n_rows = 8
    for plate in range(spec.plates):
        compound = np.concatenate([np.repeat(np.arange(n_compounds), len(spec.doses)),
                                   np.full(spec.controls_per_plate, -1)])
        dose = np.concatenate([np.tile(spec.doses, n_compounds), np.zeros(spec.controls_per_plate)])
        n = len(compound)
        treated = compound >= 0
        mechanism = np.where(treated, compound // spec.compounds_per_mechanism, -1)
        strength = np.where(treated, _hill(dose, ec50[np.maximum(compound, 0)]), 0.0)[:, None]
        effect = strength * spec.effect * (mechanism_dirs[np.maximum(mechanism, 0)]
                                           + 0.5 * compound_dirs[np.maximum(compound, 0)])
        z = effect + rng.normal(size=(n, d)) + rng.normal(scale=spec.nuisance_sd, size=(n, spec.nuisance_factors)) @ loadings
        controls = np.flatnonzero(~treated)
        outliers = rng.choice(controls, spec.outlier_controls, replace=False)
        z[outliers] += rng.normal(scale=8.0, size=(len(outliers), d))
        offset = rng.normal(scale=spec.plate_offset_sd, size=d)
        scale = np.exp(rng.normal(scale=spec.plate_scale_sd, size=d))
        blocks.append(units * (baseline + scale * z + offset))
        wells = rng.permutation(n)
        columns["Metadata_Plate"] += [f"P{plate + 1}"] * n
        columns["Metadata_Well"] += [f"{'ABCDEFGH'[w % n_rows]}{w // n_rows + 1:02d}" for w in wells]
        columns["Metadata_Compound"] += ["DMSO" if c < 0 else f"cmpd-{c + 1:02d}" for c in compound]
        columns["Metadata_Concentration"] += dose.tolist()
        columns["Metadata_MoA"] += ["DMSO" if m < 0 else f"moa-{m + 1}" for m in mechanism]
        columns["Metadata_Replicate"] += [plate + 1] * n
    frame = pd.DataFrame(columns)
    features = pd.DataFrame(np.vstack(blocks), columns=feature_names(d))
    return pd.concat([frame, features], axis=1)


def write_profiles(path: str | Path, spec: ProfileSpec = ProfileSpec()) -> Path:
    """Write the screen as CSV (gzipped when the name ends in .gz) or Parquet (.parquet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = generate_profiles(spec)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, float_format="%.6g")
    return path
