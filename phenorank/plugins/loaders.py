"""Built-in loaders: TIFF / OME-TIFF stacks of focal layers (spheroids), multi-channel TIFF
(fluorescence), and PNG / JPEG / BMP images (8- or 16-bit, grayscale or colour channels).

Several single-channel files of one field of view (``..._ch1.tif``, ``..._ch2.tif``) are joined
into one multi-channel image by ingest, not by a loader (the ``{channel}`` field of a pattern).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Loader

LAYER_AXES = "ZCTQI"  # any one of these may hold the focal layers once singleton axes are dropped


class TiffStackLoader(Loader):
    """TIFF or OME-TIFF: one grayscale image, or a stack of focal layers (e.g. axes ZYX).

    Axes of length 1 (OME-TIFF's T, C, Z ...) are dropped. Uncompressed files are memory-mapped
    rather than copied, so a 30 MB stack costs no allocation; compressed files are decoded.
    """

    name = "tiff-stack"
    suffixes = (".tif", ".tiff", ".ome.tif", ".ome.tiff")

    def read(self, path: str) -> np.ndarray:
        return _as_layers(*read_series(path))


def read_series(path: str) -> tuple[np.ndarray, str]:
    """The first series of a TIFF and its axes: memory-mapped when uncompressed, else decoded;
    an unreadable, truncated or damaged file raises ValueError saying which."""
    import tifffile

    try:
        with _tifffile_complaints() as complaints, tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image")
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            dtype = series.dtype.newbyteorder(tif.byteorder)  # as stored in the file
            offset = series.dataoffset
            data = None if offset is not None else series.asarray()
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    size = os.path.getsize(path)
    if data is None:  # uncompressed and contiguous
        needed = offset + int(np.prod(shape)) * dtype.itemsize
        if needed > size:
            raise ValueError(f"truncated file: the image data needs {needed} bytes but the file has {size}")
        data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))
    elif complaints:  # tifffile decodes what it can of a damaged file and logs the rest
        raise ValueError(f"damaged TIFF ({size} bytes): {complaints[0]}")
    return data, axes


@contextmanager
def _tifffile_complaints() -> Iterator[list[str]]:
    """Collect tifffile's logged errors instead of letting them reach the terminal."""
    complaints: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            complaints.append(record.getMessage())

    logger = logging.getLogger("tifffile")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield complaints
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _drop_singletons(data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Drop axes of length 1 other than Y and X (OME-TIFF's T, C, Z ...)."""
    keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in "YX"]
    return data.reshape([data.shape[i] for i in keep]), "".join(axes[i] for i in keep)


def _as_layers(data: np.ndarray, axes: str) -> np.ndarray:
    if axes.endswith("S") and data.shape[-1] in (3, 4):
        raise ValueError(f"colour image (axes {axes}, shape {data.shape}): expected grayscale focal layers")
    data, axes = _drop_singletons(data, axes)
    if data.ndim == 2:
        return data[np.newaxis]
    if data.ndim == 3 and axes[0] in LAYER_AXES:
        return data
    raise ValueError(f"{data.ndim}-D image (axes {axes}, shape {data.shape}): "
                     "expected a 2-D image or a 3-D stack of focal layers")


class TiffChannelsLoader(TiffStackLoader):  # same files and suffixes, channels instead of layers
    """TIFF or OME-TIFF with fluorescence channels: axes CYX, YXS (RGB) or one 2-D channel."""

    name = "tiff-channels"
    axis = "channels"

    def read(self, path: str) -> np.ndarray:
        return as_channels(*read_series(path))


class ImageFileLoader(Loader):
    """PNG, JPEG or BMP: grayscale (one channel) or colour (its channels, RGB order), 8 or 16 bit."""

    name = "image-file"
    suffixes = (".png", ".jpg", ".jpeg", ".bmp")
    axis = "channels"

    def read(self, path: str) -> np.ndarray:
        import cv2

        data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if data is None:
            raise ValueError(f"not a readable image file ({os.path.getsize(path) if os.path.exists(path) else 0} bytes)")
        if data.ndim == 3:
            data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            if data.shape[2] == 4:
                data = data[..., :3]  # alpha says nothing about the cells
            if all(np.array_equal(data[..., 0], data[..., c]) for c in (1, 2)):
                data = data[..., :1]  # a grayscale image saved as RGB
            return np.moveaxis(data, -1, 0)
        return data[np.newaxis]


def as_channels(data: np.ndarray, axes: str) -> np.ndarray:
    """(C, H, W) from a TIFF series: singleton axes dropped, samples (S) moved to the front."""
    data, axes = _drop_singletons(data, axes)
    if data.ndim == 2:
        return data[np.newaxis]
    if data.ndim == 3 and axes.endswith("S"):  # interleaved RGB: copied, so each channel is contiguous
        return np.ascontiguousarray(np.moveaxis(data, -1, 0))
    if data.ndim == 3 and axes[0] in LAYER_AXES:
        return data
    raise ValueError(f"{data.ndim}-D image (axes {axes}, shape {data.shape}): expected channels x height x width")


@hookimpl
def register_loaders(register):
    from .tiled import TiledTiffLoader  # imports read_series from here

    register(TiffStackLoader)
    register(TiffChannelsLoader)
    register(ImageFileLoader)
    register(TiledTiffLoader)
