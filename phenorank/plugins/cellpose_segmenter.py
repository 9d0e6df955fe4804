"""Cellpose as a segmenter (seed 004), from the optional extra ``pip install 'phenorank[cellpose]'``.

The model file is the user's (a Cellpose 3 model such as ``cyto3`` or one they trained), since
phenorank never downloads: ``-p cellpose.model=/path/to/model``. Seed 004 segmented whole cells
from two channels, the cytoplasm stain with the nucleus stain as Cellpose's second channel
(``nucleus_channel``), so each mask holds the cytoplasm around its nucleus.
"""

from __future__ import annotations

import os

import numpy as np

from phenorank.registry import PluginError, Segmenter

INSTALL = "pip install 'phenorank[cellpose]'"


class CellposeSegmenter(Segmenter):
    """Cellpose 3 on one channel (``channel``) or two (``channel`` = cytoplasm, ``nucleus_channel``
    = nucleus, 0-based channel numbers of the image); ``diameter`` in pixels (0: the model's
    own), Cellpose's ``flow_threshold`` and ``cellprob_threshold``. Runs on the CPU unless a GPU
    is present."""

    name = "cellpose"
    defaults = {"model": "", "channel": 0, "nucleus_channel": -1, "diameter": 0.0, "flow_threshold": 0.4,
                "cellprob_threshold": 0.0}

    def __init__(self, **params):
        super().__init__(**params)
        self._model = None

    def __getstate__(self):  # sent to worker processes without the loaded network
        return {**self.__dict__, "_model": None}

    def load(self):
        if self._model is not None:
            return self._model
        try:
            from cellpose import models
        except ImportError:
            raise PluginError(f"cellpose: the Cellpose package is not installed; install the extra: {INSTALL}") from None
        path = self.params["model"]
        if not path:
            raise PluginError("cellpose: give the model file with -p cellpose.model=/path/to/model (a Cellpose 3 "
                              "model such as cyto3 or your own; phenorank never downloads one)")
        if not os.path.isfile(path):
            raise PluginError(f"cellpose: model file {path} does not exist")
        import torch

        try:
            self._model = models.CellposeModel(gpu=torch.cuda.is_available(), pretrained_model=path)
        except Exception as exc:  # cellpose raises many kinds for a file that is not its model
            raise PluginError(f"cellpose: cannot load {path} as a Cellpose model: {type(exc).__name__}: {exc}") from None
        return self._model

    def segment(self, image: np.ndarray) -> np.ndarray:
        channel, nucleus = int(self.params["channel"]), int(self.params["nucleus_channel"])
        for c in (channel, nucleus):
            if c >= image.shape[0]:
                raise PluginError(f"cellpose: channel {c} asked for, the image has {image.shape[0]}")
        model = self.load()
        if nucleus >= 0:  # Cellpose's two-channel input: [cytoplasm, nucleus], channels given 1-based
            planes, channels = np.stack([image[channel], image[nucleus]]), [1, 2]
        else:
            planes, channels = image[channel][None], [0, 0]
        masks, *_ = model.eval(planes, channels=channels, channel_axis=0,
                               diameter=float(self.params["diameter"]) or None,
                               flow_threshold=float(self.params["flow_threshold"]),
                               cellprob_threshold=float(self.params["cellprob_threshold"]))
        return np.asarray(masks, dtype=np.int32)
