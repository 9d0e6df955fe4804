"""Built-in encoders, one module per family (timm-style)."""

from phenorank import hookimpl

from .morphometrics import MorphometricsEncoder
from .raw import RawPixelsEncoder


@hookimpl
def register_encoders(register):
    register(RawPixelsEncoder)
    register(MorphometricsEncoder)
