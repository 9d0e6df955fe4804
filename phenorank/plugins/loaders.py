"""Built-in loaders: TIFF / OME-TIFF stacks of focal layers (spheroids), multi-channel TIFF
(fluorescence), and PNG / JPEG / BMP images (8- or 16-bit, grayscale or colour channels).

Several single-channel files of one field of view (``..._ch1.tif``, ``..._ch2.tif``) are joined
into one multi-channel image by ingest, not by a loader (the ``{channel}`` field of a pattern).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from phenorank import hookimpl
from phenorank.registry import Loader

LAYER_AXES = "ZCTQI"  # any one of these may hold the focal layers once singleton axes are dropped


class TiffStackLoader(Loader):
    """TIFF or OME-TIFF: one grayscale image, or a stack of focal layers, in any of the layouts
    people write.

    Read as layers: axes ZYX (OME-TIFF, ImageJ hyperstacks whose other axes have length 1), one
    page per layer (a ``TiffWriter`` loop, with or without metadata), and 16-bit samples
    (``tifffile.imwrite(path, stack)`` of a (3, H, W) or (4, H, W) array stores them as planar
    samples, axes SYX). 8-bit samples are a colour picture and are refused, unless ``axes`` says
    otherwise: ``-p tiff-stack.axes=ZYX`` names the file's dimensions (one letter each; Z, C, T,
    Q, I or S for the layers). Uncompressed files are memory-mapped, compressed ones decoded.
    """

    name = "tiff-stack"
    suffixes = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
    defaults = {"axes": ""}

    def read(self, path: str) -> np.ndarray:
        data, axes = read_series(path, self.max_pixels)
        return _as_layers(data, axes, str(self.params["axes"]).upper())


class _Refused(ValueError):
    """The file is readable but refused; the message is the whole reason."""


def read_series(path: str, max_pixels: int = Loader.max_pixels) -> tuple[np.ndarray, str]:
    """The image of a TIFF and its axes: its first series, or every page as one stack when each
    page is a series of its own (a file written page by page). Memory-mapped when uncompressed,
    else decoded after checking the decoded size against ``max_pixels``. An unreadable,
    truncated, damaged or oversized file raises ValueError saying which."""
    import tifffile

    from phenorank.core.files import is_url, open_binary, size as file_size

    remote = is_url(path)  # read through a file object: decoded, never memory-mapped
    try:
        with contextlib.ExitStack() as opened, _tifffile_complaints() as complaints, \
                tifffile.TiffFile(opened.enter_context(open_binary(path)) if remote else path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image")
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            dtype = series.dtype.newbyteorder(tif.byteorder)  # as stored in the file
            paged = len(tif.series) > 1 and all(len(s.pages) == 1 for s in tif.series)
            if paged:
                shape, axes = _page_stack(tif.series)
            offset = None if paged or remote else series.dataoffset
            pixels = int(np.prod(shape, dtype=np.float64))
            if offset is None and pixels > max_pixels:
                raise _Refused(f"the image would decode to {pixels:,} pixels (shape {shape}), more than the limit "
                               f"of {max_pixels:,} (ingest --max-pixels)")
            data = None
            if paged:
                data = np.stack([s.asarray() for s in tif.series])
            elif offset is None:
                data = series.asarray()
    except _Refused as exc:
        raise ValueError(str(exc)) from None
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, MemoryError) as exc:
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    size = file_size(path)
    if data is None:  # uncompressed and contiguous
        needed = offset + pixels * dtype.itemsize
        if needed > size:
            raise ValueError(f"truncated file: the image data needs {needed} bytes but the file has {size}")
        data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    elif complaints:  # tifffile decodes what it can of a damaged file and logs the rest
        raise ValueError(f"damaged TIFF ({size} bytes): {complaints[0]}")
    return data, axes


def _page_stack(series: list) -> tuple[tuple[int, ...], str]:
    """Shape and axes of single-page series read as one stack (axes IYX); pages that differ in
    size or pixel type are refused, naming the first that differs."""
    first = series[0]
    for index, other in enumerate(series[1:], start=1):
        if tuple(other.shape) != tuple(first.shape) or other.dtype != first.dtype:
            raise _Refused(f"pages of different size or type: page 0 is {tuple(first.shape)} {first.dtype}, page "
                           f"{index} is {tuple(other.shape)} {other.dtype}; write one image per file, or equal pages")
    return (len(series), *first.shape), "I" + first.axes


@contextmanager
def _tifffile_complaints() -> Iterator[list[str]]:
    """Collect tifffile's logged errors instead of letting them reach the terminal."""
    complaints: list[str] = []
    owner = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # ingest reads files on several threads at once: another file's complaint is not this one's
            if record.thread == owner:
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


def _override_axes(data: np.ndarray, axes: str, given: str) -> str:
    if not given:
        return axes
    if len(given) != data.ndim or len(set(given)) != len(given) or not {"Y", "X"} <= set(given):
        raise ValueError(f"axes {given!r} do not fit the data of shape {data.shape} (the file says {axes!r}; "
                         "give one letter per dimension, with Y and X, e.g. ZYX)")
    return given


def _as_layers(data: np.ndarray, axes: str, given: str = "") -> np.ndarray:
    axes = _override_axes(data, axes, given)
    if "S" in axes and data.dtype == np.uint8 and not given:
        raise ValueError(f"8-bit colour image (axes {axes}, shape {data.shape}): expected grayscale focal layers "
                         f"(if the samples are layers, say so: -p tiff-stack.axes={axes.replace('S', 'Z')})")
    data, axes = _drop_singletons(data, axes)
    layer_axes = LAYER_AXES + "S"
    if data.ndim == 2:
        return data[np.newaxis]
    if data.ndim == 3 and axes[0] in layer_axes and axes[1:] == "YX":
        return data
    if data.ndim == 3 and axes[2] in layer_axes and axes[:2] == "YX":  # interleaved samples
        return np.ascontiguousarray(np.moveaxis(data, -1, 0))
    raise ValueError(f"{data.ndim}-D image (axes {axes}, shape {data.shape}): expected a 2-D image or a 3-D stack "
                     "of focal layers (a time-lapse or several channels: the tiff-tiles or tiff-channels loader)")


class TiffChannelsLoader(TiffStackLoader):  # same files and suffixes, channels instead of layers
    """TIFF or OME-TIFF with fluorescence channels: axes CYX, YXS (RGB) or one 2-D channel."""

    name = "tiff-channels"
    axis = "channels"

    def read(self, path: str) -> np.ndarray:
        data, axes = read_series(path, self.max_pixels)
        return as_channels(data, _override_axes(data, axes, str(self.params["axes"]).upper()))


class ImageFileLoader(Loader):
    """PNG, JPEG or BMP: grayscale (one channel) or colour (its channels, RGB order), 8 or 16 bit."""

    name = "image-file"
    suffixes = (".png", ".jpg", ".jpeg", ".bmp")
    axis = "channels"

    def read(self, path: str) -> np.ndarray:
        import cv2

        from phenorank.core.files import is_url, open_binary

        if is_url(path):
            with open_binary(path) as handle:
                encoded = np.frombuffer(handle.read(), np.uint8)
            data = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
            length = encoded.size
        else:
            data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            length = os.path.getsize(path) if os.path.exists(path) else 0
        if data is None:
            raise ValueError(f"not a readable image file ({length} bytes)")
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
    if data.ndim == 3 and axes[0] in LAYER_AXES + "S":  # planar samples too
        return data
    raise ValueError(f"{data.ndim}-D image (axes {axes}, shape {data.shape}): expected channels x height x width")


@hookimpl
def register_loaders(register):
    from .tiled import TiledTiffLoader  # imports read_series from here

    register(TiffStackLoader)
    register(TiffChannelsLoader)
    register(ImageFileLoader)
    register(TiledTiffLoader)
