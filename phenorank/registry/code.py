"""The identity of the code behind a plugin, so a result computed by other code is never reused.

A plugin's results depend on its class and on whatever that class calls. The identity hashes the
source of every module the class's hierarchy is defined in, and of every module of the same
top-level package that those modules import (at module level or inside a function, where the
heavy imports live), transitively. Editing any of them — a plugin, its helpers, or the phenorank
code it calls — changes the identity; editing an unrelated command or a README does not.

The modules are found from their import statements (``ast``), without importing them, so the
identity costs a parse of a few files once per process.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache

__all__ = ["code_identity", "source_hash"]


def code_identity(cls: type, version: str | None = None) -> str:
    """``"dist==version+source-hash"`` (or ``"source-hash"`` where the distribution is unknown)."""
    modules = sorted({klass.__module__ for klass in cls.__mro__ if klass.__module__ not in ("builtins", "abc")})
    digest = source_hash(tuple(modules))
    return f"{version}+{digest}" if version else digest


@lru_cache(maxsize=None)
def source_hash(modules: tuple[str, ...]) -> str:
    """A short hash of the sources of ``modules`` and of the same-package modules they import."""
    seen: dict[str, bytes] = {}
    pending = list(modules)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        source = _source(name)
        seen[name] = source or b""
        if source:
            pending += _imported_modules(name, source)
    digest = hashlib.blake2b(digest_size=6)
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name] + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _source(module: str) -> bytes | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None  # compiled or built-in: its distribution's version stands for it
    try:
        with open(spec.origin, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _imported_modules(module: str, source: bytes) -> list[str]:
    """The modules of ``module``'s own top-level package that its source imports."""
    top = module.split(".")[0]
    package = module if _is_package(module) else module.rpartition(".")[0]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append(base)
            # `from . import metrics` names modules, not attributes
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [name for name in found if name.split(".")[0] == top and _source(name) is not None]


def _is_package(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return bool(spec and spec.submodule_search_locations)

