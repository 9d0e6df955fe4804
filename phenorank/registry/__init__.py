"""The plugin registry: hookspecs, contracts and the manager that loads entry points."""

from .contracts import (
    FAMILIES,
    Augmentation,
    Encoder,
    Evaluation,
    Evaluator,
    Loader,
    Metric,
    Plugin,
    PluginError,
    Preprocessor,
    Ranker,
    Samples,
    Segmenter,
    Subject,
    TrainConfig,
    Transform,
)
from .hookspecs import hookimpl
from .manager import PluginInfo, Registry, get_registry, reset_registry

__all__ = [
    "FAMILIES", "Augmentation", "Encoder", "Evaluation", "Evaluator", "Loader", "Metric", "Plugin",
    "PluginError", "PluginInfo", "Preprocessor", "Ranker", "Registry", "Samples", "Segmenter", "Subject", "TrainConfig", "Transform", "get_registry",
    "hookimpl", "reset_registry",
]
