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
from pathlib import Path

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
    path = _path(module)
    if path is None:
        return None  # compiled, built-in or absent: its distribution's version stands for it
    try:
        return path.read_bytes()
    except OSError:
        return None


@lru_cache(maxsize=None)
def _path(module: str) -> Path | None:
    """The module's source file, found on disk below its top-level package without importing
    anything: ``importlib.util.find_spec`` imports a submodule's parents, and a name imported
    from a module (``from .training import predict``) made it import that module, and with it
    Lightning, torch and torchvision (5 s of a one-file ingest)."""
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for root in spec.submodule_search_locations or ():
        base = Path(root).joinpath(*rest.split("."))
        for candidate in (base.parent / f"{base.name}.py", base / "__init__.py"):
            if candidate.is_file():
                return candidate
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
    for node in _statements(tree):
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


def _statements(tree: ast.AST):
    """Every statement, in bodies nested at any depth (functions, classes, if / try / with /
    loops), without visiting expressions: imports are statements, and ``ast.walk`` over every
    expression node of 76 modules was half a one-file ingest."""
    pending = [tree]
    while pending:
        node = pending.pop()
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                for child in children:
                    if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                        pending.append(child)
                        yield child


def _is_package(module: str) -> bool:
    path = _path(module)
    return path is not None and path.name == "__init__.py"

