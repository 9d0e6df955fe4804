"""A SYNTHETIC dose-response screen of spheroids, for potency, hit calling and plate QC. Not real
microscopy.

Two full 96-well plates, each imaged on day 7 (before the drugs) and day 10 (after). Every plate
holds five drugs x seven concentrations (0.01 to 10 µM, half-log steps: three logs) x two
replicates, 14 untreated control wells and 12 "exploded" wells (a reference drug at a lethal
dose, the positive control). Half the controls and positives sit on the outer ring, half inside,
so an edge effect is measurable. Each drug's effect strength follows its own Hill curve

    effect = emax * dose^h / (dose^h + EC50^h)

with the EC50, Hill slope h and emax of :data:`DRUGS`; ``drug-E`` does nothing. The look of a
spheroid follows its effect as in :mod:`phenorank.core.synthetic_plate` (smaller, darker,
rimless, debris when exploded). Plate 2 has an edge effect: its outer-ring wells are drawn as if
their effect were 0.3 stronger (evaporation stresses them), whatever they hold. The manifest's
``effect`` column is the drug's own effect, the truth a potency fit should recover; ``truth.csv``
lists each drug's EC50, Hill slope and emax.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.plate import PLATE_FORMATS
from ..core.synthetic_plate import focal_stack, render_spheroid, spheroid_look, write_manifest

DRUGS = {  # name: (emax, EC50 in µM, Hill slope)
    "drug-A": (0.85, 0.05, 2.0),
    "drug-B": (0.80, 0.2, 1.2),
    "drug-C": (0.75, 0.6, 2.0),
    "drug-D": (0.65, 1.5, 1.5),
    "drug-E": (0.0, None, None),  # inactive
}
DOSES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # µM
EDGE_EFFECT = 0.3
MANIFEST_FIELDS = ("path", "plate", "well", "day", "condition", "treatment", "concentration", "replicate", "effect",
                   "n_layers", "synthetic")


@dataclass(frozen=True)
class DosePlateSpec:
    height: int = 160
    width: int = 192
    plates: int = 3
    replicates: int = 2  # per dose and plate
    controls: int = 14  # per plate
    positives: int = 12  # per plate
    edge_effect_plates: tuple[int, ...] = (3,)  # 1-based
    doses: tuple[float, ...] = DOSES
    drugs: dict = field(default_factory=lambda: dict(DRUGS))
    seed: int = 0

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def drug_effect(drug: str, dose: float, drugs: dict = DRUGS) -> float:
    emax, ec50, slope = drugs[drug]
    if not emax:
        return 0.0
    return emax * dose ** slope / (dose ** slope + ec50 ** slope)


def plate_layout(rng: np.random.Generator, spec: DosePlateSpec) -> list[dict]:
    """One plate's wells: controls and positives split between the outer ring and the inside,
    the drug wells shuffled over the rest."""
    geometry = PLATE_FORMATS[96]
    wells = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]
    edge = [w for w in wells if geometry.is_edge(w[0], int(w[1:]))]
    inner = [w for w in wells if w not in edge]
    rng.shuffle(edge)
    rng.shuffle(inner)
    plan = {}
    for condition, count in (("control", spec.controls), ("exploded", spec.positives)):
        for i in range(count):
            plan[(edge if i % 2 == 0 else inner).pop()] = (condition, "", None, 0.0, i // 2 + 1)
    rest = edge + inner
    rng.shuffle(rest)
    drug_wells = [(drug, dose, r + 1) for drug in spec.drugs for dose in spec.doses for r in range(spec.replicates)]
    if len(drug_wells) > len(rest):
        raise ValueError(f"{len(drug_wells)} drug wells and {spec.controls + spec.positives} controls do not fit "
                         "on a 96-well plate")
    for well, (drug, dose, replicate) in zip(rest, drug_wells):
        plan[well] = ("screen", drug, dose, drug_effect(drug, dose, spec.drugs), replicate)
    layout = []
    for well in sorted(plan, key=lambda w: (w[0], int(w[1:]))):
        condition, treatment, dose, effect, replicate = plan[well]
        if condition == "exploded":  # the positive control: a lethal dose, varying a little from well to well
            treatment, dose, effect = "reference-drug", 50.0, float(np.clip(rng.normal(0.97, 0.02), 0, 1))
        layout.append({"well": well, "condition": condition, "treatment": treatment,
                       "concentration": "" if dose is None else dose, "replicate": replicate,
                       "effect": round(effect, 4), "edge": geometry.is_edge(well[0], int(well[1:]))})
    return layout


def generate_dose_plates(out_dir: str | Path, spec: DosePlateSpec = DosePlateSpec(), progress=lambda n=1: None
                         ) -> Path:
    """Write the plates' TIFF stacks, ``manifest.csv`` and ``truth.csv`` into ``out_dir``."""
    import tifffile

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    side = min(spec.height, spec.width)
    rows = []
    for number in range(1, spec.plates + 1):
        plate = f"dose-plate-{number}"
        for well in plate_layout(rng, spec):
            drawn = well["effect"]
            if number in spec.edge_effect_plates and well["edge"]:
                drawn = min(1.0, drawn + EDGE_EFFECT)
            n_layers = int(rng.choice((1, 3, 5), p=(0.1, 0.8, 0.1)))
            center = np.array([spec.height / 2, spec.width / 2]) + rng.normal(0, 0.05, size=2) * side
            base = side * rng.uniform(0.15, 0.19)  # one spheroid, seen on both days
            for day in (7, 10):
                if day == 10:
                    center = center + rng.normal(0, 0.04, size=2) * side
                center = np.clip(center, 0.3 * side, np.array([spec.height, spec.width]) - 0.3 * side)
                look = spheroid_look(rng, side, drawn, day, well["condition"], base)
                stack = focal_stack(rng, render_spheroid(rng, spec.height, spec.width, tuple(center), **look), n_layers)
                name = f"{plate}_{well['well']}_day{day}.tif"
                tifffile.imwrite(out_dir / "images" / name, stack, photometric="minisblack",
                                 description="SYNTHETIC phenorank dose-response image, not real microscopy")
                rows.append({**well, "path": f"images/{name}", "plate": plate, "day": day, "n_layers": n_layers,
                             "synthetic": "true"})
                progress(1)
    manifest = write_manifest(out_dir / "manifest.csv", rows, MANIFEST_FIELDS)
    with (out_dir / "truth.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["treatment", "emax", "ec50", "hill_slope", "active"])
        for drug, (emax, ec50, slope) in spec.drugs.items():
            writer.writerow([drug, emax, "" if ec50 is None else ec50, "" if slope is None else slope, bool(emax)])
    (out_dir / "README.txt").write_text(
        "SYNTHETIC data generated by `phenorank demo --kind potency`; not real microscopy.\n"
        f"{spec.plates} full 96-well plates, day 7 and day 10, {spec.height}x{spec.width} px, seed {spec.seed}.\n"
        f"Drugs x {len(spec.doses)} doses x {spec.replicates} replicates per plate; truth.csv: each drug's EC50, "
        "Hill slope, emax.\n"
        f"Plates {', '.join(map(str, spec.edge_effect_plates)) or 'none'}: outer-ring wells drawn with an edge effect "
        f"(+{EDGE_EFFECT} effect).\n")
    return manifest


def n_images(spec: DosePlateSpec) -> int:
    return spec.plates * 96 * 2


def read_truth(path: str | Path) -> dict[str, dict]:
    with Path(path).open() as handle:
        return {row["treatment"]: {"emax": float(row["emax"]), "ec50": float(row["ec50"]) if row["ec50"] else None,
                                   "hill_slope": float(row["hill_slope"]) if row["hill_slope"] else None,
                                   "active": row["active"] == "True"} for row in csv.DictReader(handle)}
