"""Built-in preprocessors: seed 001's illumination correction, selective median outlier removal,
rolling-ball background, median and total-variation denoising, centre crop and per-image z-score;
seed 004's CLAHE."""

from phenorank import hookimpl

from .filters import CentreCrop, Clahe, Median, Outliers, RollingBall, TotalVariation, ZScore
from .illumination import Illumination


@hookimpl
def register_preprocessors(register):
    for step in (Illumination, Outliers, RollingBall, Median, TotalVariation, Clahe, CentreCrop, ZScore):
        register(step)
