"""Built-in loader: grayscale TIFF / OME-TIFF stacks of focal layers."""

from __future__ import annotations

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Loader


class TiffStackLoader(Loader):
    """TIFF or OME-TIFF: one grayscale image or a stack of focal layers (Z, Y, X)."""

    name = "tiff-stack"
    suffixes = (".tif", ".tiff", ".ome.tif", ".ome.tiff")

    def read(self, path: str) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
        if axes.endswith("S") and data.shape[-1] in (3, 4):
            raise ValueError(f"colour image (axes {axes}, shape {data.shape}): expected grayscale focal layers")
        keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in "YX"]
        data = data.reshape([data.shape[i] for i in keep])
        axes = "".join(axes[i] for i in keep)
        if data.ndim == 2:
            return data[np.newaxis]
        if data.ndim == 3:
            return data
        raise ValueError(f"{data.ndim}-D image (axes {axes}, shape {data.shape}): "
                         "expected a 2-D image or a 3-D stack of focal layers")


@hookimpl
def register_loaders(register):
    register(TiffStackLoader)
