"""Built-in plugins. Each module is loaded through the ``phenorank`` entry-point group exactly
like a third-party plugin; copy one as a template for your own.

The package is also callable: ``phenorank.plugins("ranker")`` lists plugin names (the same as
``phenorank.list_plugins``), so the notebook spelling and the package of built-ins share a name.
"""

import sys
import types


class _ListingModule(types.ModuleType):
    def __call__(self, family: str | None = None, pattern: str = "*") -> list[str]:
        from ..api import list_plugins

        return list_plugins(family, pattern)


sys.modules[__name__].__class__ = _ListingModule
