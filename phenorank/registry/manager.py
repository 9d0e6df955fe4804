"""The plugin manager: loads the ``phenorank`` entry-point group and collects plugin classes.

Environment variables, useful in tests and when a plugin misbehaves:

- ``PHENORANK_LOAD_PLUGINS``: comma-separated entry-point or distribution names; only those
  load (``phenorank.metrics`` loads one built-in family, ``phenorank`` all built-ins, an empty
  value none).
- ``PHENORANK_BLOCK_PLUGINS``: comma-separated entry-point or distribution names never loaded.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .code import code_identity
from .contracts import BASES, FAMILIES, Plugin, PluginError

ENTRY_POINT_GROUP = "phenorank"


@dataclass(frozen=True)
class Provider:
    """Who ships a plugin: the distribution, its version and the entry point."""

    dist: str
    version: str
    entry_point: str

    def __str__(self) -> str:
        return f"{self.dist} ({self.entry_point})"


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not be loaded; the others work without it."""

    entry_point: str
    dist: str
    error: str

    def __str__(self) -> str:
        return (f"plugin {self.entry_point!r} of {self.dist} failed to load ({self.error}); it is left out. "
                f"Fix or uninstall it, or set PHENORANK_BLOCK_PLUGINS={self.entry_point} to skip it quietly")


@dataclass(frozen=True)
class PluginInfo:
    family: str
    name: str
    provider: Provider | str
    cls: type[Plugin] = field(compare=False)

    @cached_property
    def code(self) -> str:
        """The producing code's identity, part of every result key: distribution and version, and
        a hash of the source the class runs (see :func:`code_identity`)."""
        version = f"{self.provider.dist}=={self.provider.version}" if isinstance(self.provider, Provider) else None
        return code_identity(self.cls, version)

    @property
    def description(self) -> str:
        """The plugin's ``description``, else the first sentence of its docstring, whole (a
        docstring's first line often stops mid-sentence)."""
        if self.cls.description:
            return self.cls.description.strip()
        sentences = doc_sentences(self.cls)
        return sentences[0] if sentences else ""

    def parameters(self) -> list[tuple[str, Any, str, str]]:
        """(name, default, type, meaning) per parameter; the meaning is every sentence of the
        docstring that names the parameter (``name``, `name` or name=), or "" when none does."""
        sentences = doc_sentences(self.cls)
        out = []
        for key, default in self.cls.defaults.items():
            pattern = re.compile(rf"(``{re.escape(key)}``|`{re.escape(key)}`|\b{re.escape(key)}=)")
            meaning = " ".join(s for s in sentences if pattern.search(s)) or COMMON_MEANINGS.get(key, "")
            out.append((key, default, type(default).__name__, meaning))
        return out


# What a parameter of these names means in every plugin that has it, where its docstring is silent.
COMMON_MEANINGS = {
    "seed": "Random seed: the same seed gives the same result.",
    "label": "The metadata column holding each item's class (condition by default).",
    "bootstrap": "Resamples of wells for the 95% interval (0: no interval).",
    "classes": "The classes compared, in this order.",
    "where": "Only items matching COLUMN=VALUE or COLUMN!=VALUE.",
    "balance": "none, or min: every class drawn down to the smallest one's size.",
    "epochs": "Passes over the training data.",
    "batch_size": "Items per optimizer step.",
    "lr": "Learning rate of the optimizer.",
    "control": "The negative control: a condition or treatment value.",
    "by": "The metadata column whose groups are treated separately (plate; none for all rows together).",
    "group": "Metadata columns that make one treatment group.",
}


def doc_sentences(cls: type) -> list[str]:
    """The class docstring as whole sentences (line breaks joined, split after . ! ? and ;)."""
    text = " ".join((cls.__doc__ or "").split())
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text) if s.strip()]


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[int, Provider], list[BrokenPlugin]]:
    """A plugin manager with every permitted entry point of the group loaded.

    Returns the manager, per registered plugin object its provider (the distribution that ships
    it, its version and the entry-point name), and the entry points that failed to import: one
    broken third-party package must not take every command down with it.
    """
    pm = pluggy.PluginManager("phenorank")
    pm.add_hookspecs(hookspecs)
    allow = _names_from_env("PHENORANK_LOAD_PLUGINS")
    block = _names_from_env("PHENORANK_BLOCK_PLUGINS") or set()
    providers: dict[int, Provider] = {}
    broken: list[BrokenPlugin] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        names = {ep.name, dist}
        if (allow is not None and not names & allow) or names & block:
            continue
        if pm.has_plugin(ep.name):
            raise PluginError(
                f"two entry points of group {ENTRY_POINT_GROUP!r} are named {ep.name!r}; "
                f"the second comes from distribution {dist!r} (PHENORANK_BLOCK_PLUGINS={dist} leaves it out)"
            )
        try:
            plugin = ep.load()
        except Exception as exc:  # ImportError, SyntaxError, anything its import runs
            broken.append(BrokenPlugin(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        pm.register(plugin, name=ep.name)
        providers[id(plugin)] = Provider(dist, ep.dist.version if ep.dist is not None else "?", ep.name)
    try:
        pm.check_pending()  # a misspelt hook name fails here instead of being ignored
    except pluggy.PluginValidationError as exc:
        provider = providers.get(id(exc.plugin), exc.plugin)
        raise PluginError(f"plugin {provider}: {exc} (PHENORANK_BLOCK_PLUGINS="
                          f"{getattr(provider, 'entry_point', provider)} leaves it out)") from None
    return pm, providers, broken


class Registry:
    """Every plugin class by family and name, with who provides it."""

    def __init__(self, pm: pluggy.PluginManager, providers: dict[int, Provider] | None = None,
                 broken: list[BrokenPlugin] | None = None):
        self.pm = pm
        self.broken = list(broken or [])
        providers = providers or {}
        self._plugins: dict[str, dict[str, PluginInfo]] = {family: {} for family in FAMILIES}
        for family in FAMILIES:
            hook = getattr(pm.hook, f"register_{family}s")
            for impl in reversed(hook.get_hookimpls()):  # registration order
                provider = providers.get(id(impl.plugin), impl.plugin_name)
                impl.function(register=self._registrar(family, provider))

    def _registrar(self, family: str, provider: Provider | str):
        def register(cls: type[Plugin]) -> None:
            base = BASES[family]
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(f"{provider} registered {cls!r} as a {family}, but it is not a {base.__name__} subclass")
            if not cls.name:
                raise PluginError(f"{provider} registered {family} class {cls.__name__} without a name")
            known = self._plugins[family].get(cls.name)
            if known is not None:
                raise PluginError(
                    f"{family} name {cls.name!r} is registered twice: by {known.provider} and by {provider}"
                )
            self._plugins[family][cls.name] = PluginInfo(family, cls.name, provider, cls)

        return register

    def add(self, cls: type[Plugin], provider: str = "__main__") -> None:
        """Register a plugin class in this process only (a notebook's own ranker), checked as an
        entry point's would be."""
        if not (isinstance(cls, type) and issubclass(cls, Plugin)) or cls.family not in FAMILIES:
            raise PluginError(f"{cls!r} is not a plugin class (a subclass of one of the family bases)")
        self._registrar(cls.family, provider)(cls)

    def names(self, family: str) -> list[str]:
        return list(self._plugins[family])

    def info(self, family: str, name: str) -> PluginInfo:
        if family not in self._plugins:
            raise PluginError(f"unknown plugin family {family!r}; families: {', '.join(FAMILIES)}")
        try:
            return self._plugins[family][name]
        except KeyError:
            available = ", ".join(self._plugins[family]) or "none"
            unloaded = "".join(f"; {b}" for b in self.broken)
            raise PluginError(f"no {family} named {name!r}; available: {available}{unloaded}") from None

    def get(self, family: str, name: str) -> type[Plugin]:
        return self.info(family, name).cls

    def create(self, family: str, name: str, params: dict[str, Any] | None = None) -> Plugin:
        info = self.info(family, name)
        plugin = info.cls(**coerce_params(info.cls, params or {}))
        plugin.code = info.code  # the distribution's version, not only the source, enters result keys
        return plugin

    def all(self) -> list[PluginInfo]:
        return [info for family in FAMILIES for info in self._plugins[family].values()]


# Parameters whose name says what values make sense: counts, sizes and rates above zero; seeds,
# penalties and strengths at or above zero; probabilities and fractions within [0, 1]. A rule
# whose bound the plugin's own default breaks (clustering's k=0, "choose for me") is relaxed to
# the default's side.
POSITIVE = frozenset({"lr", "restarts", "components", "epochs", "batch_size", "patience", "tile", "input_size",
                      "n_neighbors", "hidden_dim", "projection_dim", "temperature", "max_images",
                      "null_size", "max_width", "reduce_above", "blur_kernel", "k"})
NON_NEGATIVE = frozenset({"weight_decay", "min_delta", "bootstrap", "min_dist", "seed", "stride", "smooth", "min_steps",
                          "min_distance", "min_area", "sharpness", "brightness", "contrast"})
FRACTIONS = frozenset({"test_fraction", "validation", "threshold", "dihedral_p", "jitter_p", "blur_p",
                       "sharpness_p"})


def coerce_params(cls: type[Plugin], params: dict[str, Any]) -> dict[str, Any]:
    """Turn command-line strings into the types of the plugin's defaults, and refuse numbers that
    cannot be meant (NaN, infinities, a zero or negative count or rate)."""
    out = {}
    for key, value in params.items():
        default = cls.defaults.get(key)
        if not isinstance(value, str) or default is None or isinstance(default, str):
            out[key] = value
        elif isinstance(default, bool):
            out[key] = value.lower() in {"1", "true", "yes", "on"}
        else:
            try:
                if isinstance(default, (list, tuple)):  # "0.4,1" -> [0.4, 1.0], typed like the default's items
                    kind = type(default[0]) if default and not isinstance(default[0], str) else str
                    out[key] = [kind(part.strip()) for part in value.split(",") if part.strip()]
                else:
                    out[key] = type(default)(float(value)) if isinstance(default, int) and _whole(value) \
                        else type(default)(value)
            except (ValueError, OverflowError):
                raise PluginError(
                    f"{cls.family} {cls.name!r}: parameter {key}={value!r} is not a {type(default).__name__}"
                ) from None
        _check_number(cls, key, out[key], default)
    return out


def _whole(text: str) -> bool:
    try:
        return float(text).is_integer()
    except (ValueError, OverflowError):
        return False


def _check_number(cls: type[Plugin], key: str, value: Any, default: Any) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        problem = None
        if item != item or item in (float("inf"), float("-inf")):
            problem = "must be a finite number"
        elif key in POSITIVE and item <= 0 and not (isinstance(default, (int, float)) and default <= 0):
            problem = "must be greater than 0"
        elif key in (POSITIVE | NON_NEGATIVE) and item < 0:
            problem = "must not be negative"
        elif key in FRACTIONS and not 0 <= item <= 1:
            problem = "must lie between 0 and 1"
        if problem:
            raise PluginError(f"{cls.family} {cls.name!r}: parameter {key}={value!r} {problem}")


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use (no work at import time)."""
    global _registry
    if _registry is None:
        _registry = Registry(*build_plugin_manager())
        for problem in _registry.broken:
            print(f"Warning: {problem}", file=sys.stderr)
    return _registry


def reset_registry() -> None:
    """Forget the loaded plugins, so the next ``get_registry`` scans the entry points again."""
    global _registry
    _registry = None
