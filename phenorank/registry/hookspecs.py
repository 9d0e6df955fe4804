"""Every hook a phenorank plugin can implement.

A plugin is a module (or object) with functions decorated by ``phenorank.hookimpl``. Each
``register_*`` hook receives a ``register`` callback; call it once per plugin class you provide::

    from phenorank import hookimpl

    @hookimpl
    def register_metrics(register):
        register(MyMetric)

The classes follow the contracts in :mod:`phenorank.registry.contracts`.
"""

import pluggy

hookspec = pluggy.HookspecMarker("phenorank")
hookimpl = pluggy.HookimplMarker("phenorank")


@hookspec
def register_loaders(register):
    """Register loader classes: they read one image file into an array of focal layers."""


@hookspec
def register_preprocessors(register):
    """Register preprocessor classes: steps applied to each file's channels before the crop."""


@hookspec
def register_segmenters(register):
    """Register segmenter classes: they find the objects (cells, nuclei) of an image."""


@hookspec
def register_encoders(register):
    """Register encoder classes: they turn preprocessed images into embedding vectors."""


@hookspec
def register_augmentations(register):
    """Register augmentation classes: they build the view transforms used to train encoders."""


@hookspec
def register_metrics(register):
    """Register metric classes: pairwise distances or similarities between embeddings."""


@hookspec
def register_transforms(register):
    """Register transform classes: they map an embedding set to a new one (normalize, whiten, select)."""


@hookspec
def register_rankers(register):
    """Register ranker classes: they fit on embeddings and give every image a score."""


@hookspec
def register_evaluators(register):
    """Register evaluator classes: they say how trustworthy a ranking or embedding is."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``phenorank`` command group."""
