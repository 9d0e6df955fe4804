"""phenorank: rank treatments by what they do to cells and spheroids in microscopy images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("phenorank")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .registry.hookspecs import hookimpl  # noqa: E402  (plugins write `from phenorank import hookimpl`)

__all__ = ["__version__", "hookimpl"]
