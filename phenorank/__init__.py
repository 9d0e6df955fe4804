"""phenorank: rank treatments by what they do to cells and spheroids in microscopy images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("phenorank")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .registry.hookspecs import hookimpl  # noqa: E402  (plugins write `from phenorank import hookimpl`)

__all__ = ["__version__", "hookimpl", "open", "list_plugins", "plugins", "create", "register",
           "Screen"]


def __getattr__(name: str):
    """``phenorank.open`` / ``list_plugins`` / ``create`` / ``Screen`` load the store and the
    registry on first use, so that a plugin's ``from phenorank import hookimpl`` stays light.
    ``phenorank.plugins`` is the package of built-in plugins, callable as ``list_plugins``."""
    if name in ("open", "list_plugins", "create", "register", "Screen"):
        from . import api

        return getattr(api, name)
    if name == "plugins":
        import importlib

        return importlib.import_module(".plugins", __name__)
    raise AttributeError(f"module 'phenorank' has no attribute {name!r}")
