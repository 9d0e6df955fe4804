"""A SYNTHETIC 96-well spheroid plate for demos and tests. Not real microscopy.

It imitates seed 000's experiment: the 60 inner wells of a 96-well plate (edge wells left empty
against the edge effect), one bright-field image per well on day 7 (before the drug) and day 10
(after), as 16-bit stacks of 1, 3 or 5 focal layers. A spheroid is a dark, slightly irregular
body on a bright, unevenly lit background. Its day-10 look depends on a known effect strength in
[0, 1] written to the manifest: untreated spheroids grow and keep a grey rim; treated ones shrink,
darken and lose the rim; strong effects scatter dark debris around them ("exploded").
Each layer is blurred to its own focus, shifted by a few pixels against the others, and noisy;
the spheroid sits off-centre and moves between day 7 and day 10.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FULL_SIZE = (2054, 2456)  # (height, width) of seed 000's camera
DEMO_SIZE = (200, 240)
INNER_ROWS = "BCDEFG"
INNER_COLS = range(2, 12)
SCREEN_DRUGS = {  # name: (maximum effect, EC50 in uM)
    "combo-1": (0.95, 0.8),
    "combo-2": (0.70, 3.0),
    "combo-3": (0.45, 8.0),
    "combo-4": (0.15, 20.0),
}
SCREEN_DOSES = (0.3, 3.0, 30.0)
MANIFEST_FIELDS = ("path", "plate", "well", "row", "col", "day", "condition", "treatment",
                   "concentration", "replicate", "effect", "holdout", "n_layers", "synthetic")
# Seed 000 held out "screen images that look like single dose" to check its rankings (table 10.1);
# here: the screen wells whose true effect lies in the single-dose range.
HOLDOUT_EFFECT = (0.5, 0.75)


@dataclass(frozen=True)
class PlateSpec:
    height: int = DEMO_SIZE[0]
    width: int = DEMO_SIZE[1]
    plate: str = "synthetic-plate-1"
    seed: int = 0
    layer_choices: tuple[int, ...] = (1, 3, 5)
    layer_weights: tuple[float, ...] = (0.1, 0.8, 0.1)


def plate_layout(rng: np.random.Generator) -> list[dict]:
    """Assign the 60 inner wells: 12 control, 6 single dose, 6 exploded, 36 screen
    (4 drug combinations x 3 doses x 3 replicates)."""
    wells = [f"{r}{c:02d}" for r in INNER_ROWS for c in INNER_COLS]
    rng.shuffle(wells)
    plan = [("control", None, None, 0.0)] * 12
    plan += [("single_dose", "reference-drug", 10.0, None)] * 6
    plan += [("exploded", "reference-drug", 50.0, None)] * 6
    for drug, (emax, ec50) in SCREEN_DRUGS.items():
        for dose in SCREEN_DOSES:
            effect = emax * dose ** 1.5 / (dose ** 1.5 + ec50 ** 1.5)
            plan += [("screen", drug, dose, effect)] * 3
    replicate_counter: dict[tuple, int] = {}
    layout = []
    for well, (condition, treatment, conc, effect) in zip(wells, plan):
        if effect is None:  # the reference classes vary from well to well around their level
            effect = float(np.clip(rng.normal(0.6, 0.06) if condition == "single_dose" else rng.normal(0.97, 0.02), 0, 1))
        key = (condition, treatment, conc)
        replicate_counter[key] = replicate_counter.get(key, 0) + 1
        holdout = condition == "screen" and HOLDOUT_EFFECT[0] <= effect <= HOLDOUT_EFFECT[1]
        layout.append({"well": well, "condition": condition, "treatment": treatment or "",
                       "concentration": conc if conc is not None else "", "effect": round(effect, 4),
                       "replicate": replicate_counter[key], "holdout": str(holdout).lower()})
    return sorted(layout, key=lambda w: (w["well"][0], int(w["well"][1:])))


def _smooth_noise(rng, height, width, cells, strength):
    import cv2

    coarse = rng.normal(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    return strength * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def render_spheroid(rng: np.random.Generator, height: int, width: int, center: tuple[float, float],
                    radius: float, darkness: float, rim: float, debris: int, scatter: float) -> np.ndarray:
    """One in-focus bright-field image in [0, 1]: background times (1 - absorbance)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = center
    dy, dx = yy - cy, xx - cx
    dist = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
    wobble = 1 + 0.06 * np.cos(2 * theta + p1) + 0.04 * np.cos(3 * theta + p2)
    r = dist / (radius * wobble)
    edge = max(radius * 0.08, 0.8) / radius
    body = 1.0 / (1.0 + np.exp((r - 1.0) / edge))  # soft-edged disk
    core = np.clip(1.0 - r ** 2, 0.0, 1.0) ** 0.5
    texture = 1.0 + _smooth_noise(rng, height, width, 24, 0.08)
    absorb = darkness * (0.55 + 0.45 * core) * body * texture
    rim_zone = np.exp(-((r - 1.12) / 0.12) ** 2)  # grey, loosely packed outer cells
    absorb += rim * 0.35 * rim_zone
    side = min(height, width)
    for _ in range(debris):
        angle = rng.uniform(0, 2 * np.pi)
        reach = radius * (1.05 + scatter * rng.gamma(2.0, 0.5))
        py, px = cy + reach * np.sin(angle), cx + reach * np.cos(angle)
        size = side * rng.uniform(0.006, 0.02)
        blob = np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * size ** 2))
        absorb += rng.uniform(0.3, 0.7) * blob
    background = 0.8 * (1.0 - 0.08 * ((dist / side) ** 2)) * (1.0 + _smooth_noise(rng, height, width, 4, 0.02))
    return np.clip(background * (1.0 - np.clip(absorb, 0.0, 0.95)), 0.0, 1.0)


def focal_stack(rng: np.random.Generator, image: np.ndarray, n_layers: int) -> np.ndarray:
    """Layers at different focus: one sharp, the others blurred; each shifted and noisy; uint16."""
    import cv2

    side = min(image.shape)
    scale = side / 256.0
    sharp = rng.integers(n_layers)
    shift_max = max(1, round(2 * scale))
    layers = []
    for i in range(n_layers):
        sigma = (0.4 + 1.2 * abs(i - sharp) + rng.uniform(0, 0.3)) * scale
        layer = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma) if sigma > 0.3 else image
        if i != sharp:
            dy, dx = rng.integers(-shift_max, shift_max + 1, size=2)
            layer = np.roll(layer, (int(dy), int(dx)), axis=(0, 1))
        noisy = layer + rng.normal(0.0, 0.008, size=layer.shape).astype(np.float32) * np.sqrt(layer + 0.05)
        layers.append(np.clip(np.rint(noisy * 65535), 0, 65535).astype(np.uint16))
    return np.stack(layers)


def spheroid_look(rng: np.random.Generator, side: int, effect: float, day: int, condition: str,
                  base: float | None = None) -> dict:
    """Radius, darkness, rim and debris of one spheroid from its effect strength; ``base``: its
    day-7 radius when known (the same spheroid on a later day), else drawn."""
    base = side * rng.uniform(0.15, 0.19) if base is None else base
    if day <= 7:
        return dict(radius=base, darkness=rng.uniform(0.5, 0.6), rim=rng.uniform(0.3, 0.45), debris=0, scatter=0.5)
    exploded = condition == "exploded" or effect > 0.9
    return dict(
        radius=base * (1.12 - 0.4 * effect) * rng.uniform(0.95, 1.05),
        darkness=min(0.92, rng.uniform(0.55, 0.62) + 0.3 * effect),
        rim=max(0.0, 0.4 * (1.0 - effect) + rng.normal(0, 0.03)),
        debris=int(rng.poisson(6 + 60 * effect ** 3) if exploded else rng.poisson(10 * effect ** 3)),
        scatter=1.6 if exploded else 0.6,
    )


def write_manifest(path: Path, rows: list[dict], fields: tuple[str, ...]) -> Path:
    """The manifest CSV of generated images: the given fields of each row, in that order."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: r[k] for k in fields} for r in rows)
    return path


def generate_plate(out_dir: str | Path, spec: PlateSpec = PlateSpec(), progress=lambda n=1: None) -> Path:
    """Write the plate's TIFF stacks and ``manifest.csv`` into ``out_dir``; return the manifest."""
    import tifffile

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    side = min(spec.height, spec.width)
    rows = []
    for well in plate_layout(rng):
        n_layers = int(rng.choice(spec.layer_choices, p=spec.layer_weights))
        center = np.array([spec.height / 2, spec.width / 2]) + rng.normal(0, 0.06, size=2) * side
        for day in (7, 10):
            if day == 10:  # the plate is taken out and put back: the spheroid moves
                center = center + rng.normal(0, 0.05, size=2) * side
            center = np.clip(center, 0.3 * side, np.array([spec.height, spec.width]) - 0.3 * side)
            look = spheroid_look(rng, side, well["effect"], day, well["condition"])
            image = render_spheroid(rng, spec.height, spec.width, tuple(center), **look)
            stack = focal_stack(rng, image, n_layers)
            name = f"{spec.plate}_{well['well']}_day{day}.tif"
            tifffile.imwrite(out_dir / "images" / name, stack, photometric="minisblack",
                             description="SYNTHETIC phenorank demo image, not real microscopy")
            rows.append({**well, "path": f"images/{name}", "plate": spec.plate, "row": well["well"][0],
                         "col": int(well["well"][1:]), "day": day, "n_layers": n_layers, "synthetic": "true"})
            progress(1)
    manifest = write_manifest(out_dir / "manifest.csv", rows, MANIFEST_FIELDS)
    (out_dir / "README.txt").write_text(
        "SYNTHETIC data generated by `phenorank demo`; not real microscopy.\n"
        f"Plate {spec.plate}: 60 inner wells, day 7 and day 10, {spec.height}x{spec.width} px, seed {spec.seed}.\n"
        "manifest.csv lists each image with its condition and the true effect strength used to draw it;\n"
        "`holdout` marks the screen wells whose effect lies in the single-dose range (a hold-out set).\n"
    )
    return manifest


N_IMAGES = 120  # 60 wells x 2 days
