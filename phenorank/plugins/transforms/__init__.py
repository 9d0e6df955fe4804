"""Built-in transforms: normalization against reference wells (standardize, robustize), whitening
(spherize), dimension reduction (pca), feature selection (select) and batch correction (harmony).
pycytominer's ``normalize`` and ``feature_select`` are the reference definitions; the tests check
each against them."""

from phenorank import hookimpl

from .batch import Harmony
from .scaling import Robustize, Standardize
from .selection import Select
from .whitening import Pca, Spherize


@hookimpl
def register_transforms(register):
    for transform in (Standardize, Robustize, Spherize, Pca, Select, Harmony):
        register(transform)
