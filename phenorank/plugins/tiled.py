"""A loader that cuts multi-dimensional TIFFs (time-lapse, label masks alongside) into tiles.

One file such as a wound-healing time course (axes ``CTYX``: channels x time x height x width)
becomes many images: every frame is cut into ``tile`` x ``tile`` squares every ``stride`` pixels
(plus a last row and column flush with the edge, so the whole frame is covered). Some channels
are the picture; others can be label masks (0 = background, one integer per object), from which
each tile gets its ground truth: ``<mask>_coverage`` (fraction of the tile's pixels inside an
object) and ``<mask>_count`` (objects whose centroid lies in the tile); in a time-lapse also
``<mask>_coverage_gain``, the coverage minus the same place's coverage at the first time point.

Each tile is stored as its own image, at the location ``file#t=3&y=64&x=128&size=128``; its
fields are ``time`` (the frame's index on the T axis), ``tile_y``, ``tile_x``, ``sample`` (the
tile's place, so a bootstrap resamples places with their whole time course) and the truths.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from phenorank.core.manifest import join_region, split_region
from phenorank.registry import Loader, PluginError

from .loaders import read_series


def _numbers(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise PluginError(f"tiff-tiles: {what} must be channel numbers such as 0,1, got {text!r}") from None


class TiledTiffLoader(Loader):
    """Multi-dimensional TIFF (e.g. axes CTYX) cut into tiles per time point; label-mask channels give per-tile truth."""

    name = "tiff-tiles"
    suffixes = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
    axis = "channels"
    defaults = {"axes": "", "channels": "", "masks": "", "tile": 128, "stride": 0, "condition": ""}

    def __init__(self, **params):
        super().__init__(**params)
        self.tile = int(self.params["tile"])
        self.stride = int(self.params["stride"]) or self.tile
        if self.tile < 8 or self.stride < 1:
            raise PluginError(f"tiff-tiles: tile must be at least 8 pixels and stride at least 1 "
                              f"(got tile={self.tile}, stride={self.stride})")
        self.image_channels = _numbers(self.params["channels"], "channels")
        self.masks: dict[str, int] = {}
        for part in str(self.params["masks"]).split(","):
            if not part.strip():
                continue
            name, eq, index = part.partition("=")
            if not (eq and name.strip().isidentifier() and index.strip().isdigit()):
                raise PluginError(f"tiff-tiles: masks must look like nuclei=2,cytoplasm=3, got {part!r}")
            self.masks[name.strip()] = int(index)
        overlap = set(self.masks.values()) & set(self.image_channels)
        if overlap:
            raise PluginError(f"tiff-tiles: channel(s) {sorted(overlap)} are both image channels and masks")

    # -- the file as (channel, time, y, x) --------------------------------------------------
    def _frames(self, path: str) -> tuple[np.ndarray, bool]:
        """The file's data as a (C, T, Y, X) view (memory-mapped where the file allows), and
        whether the file has a time axis."""
        from phenorank.core.files import stamp

        data, file_axes = _opened(path, *stamp(path), self.max_pixels)
        axes = (str(self.params["axes"]) or file_axes).upper()
        if len(axes) != data.ndim or len(set(axes)) != len(axes):
            raise ValueError(f"axes {axes!r} do not fit the data of shape {data.shape} "
                             f"(the file says {file_axes!r}; give one letter per dimension, e.g. CTYX)")
        if "Y" not in axes or "X" not in axes:
            raise ValueError(f"axes {axes!r} name no Y and X")
        for letter, n in zip(axes, data.shape):
            if letter not in "CTYX" and n != 1:
                raise ValueError(f"axis {letter} has {n} planes (shape {data.shape}, axes {axes}); the tile loader "
                                 "reads channels (C) and time points (T) of single planes")
        index = tuple(slice(None) if letter in "CTYX" else 0 for letter in axes)
        data, axes = data[index], "".join(a for a in axes if a in "CTYX")
        has_time = "T" in axes
        for letter in "CT":  # a missing channel or time axis is one of length 1
            if letter not in axes:
                data, axes = data[np.newaxis], letter + axes
        return np.transpose(data, [axes.index(a) for a in "CTYX"]), has_time

    def _channels(self, n: int, path: str) -> list[int]:
        wanted = self.image_channels or [c for c in range(n) if c not in self.masks.values()]
        bad = [c for c in wanted + list(self.masks.values()) if not 0 <= c < n]
        if bad:
            raise ValueError(f"channel(s) {bad} asked for, but {os.path.basename(path)} has {n} (0..{n - 1})")
        if not wanted:
            raise ValueError("every channel is a mask: no image channel left")
        return wanted

    def starts(self, length: int) -> list[int]:
        """Tile origins along one side: every ``stride`` pixels, plus one flush with the far edge."""
        if length < self.tile:
            raise ValueError(f"frames of {length} pixels are smaller than the tile ({self.tile})")
        origins = list(range(0, length - self.tile + 1, self.stride))
        if origins[-1] + self.tile < length:
            origins.append(length - self.tile)
        return origins

    def expand(self, path: str) -> list[tuple[str, dict]]:
        frames, has_time = self._frames(path)
        n_channels, n_times, height, width = frames.shape
        self._channels(n_channels, path)
        stem = os.path.basename(path).split(".")[0]
        ys, xs = self.starts(height), self.starts(width)
        items, first = [], {}
        for t in range(n_times):
            truths = {name: _mask_truth(np.asarray(frames[index, t]), ys, xs, self.tile)
                      for name, index in self.masks.items()}
            first = first or truths
            for y in ys:
                for x in xs:
                    fields = {"tile_y": y, "tile_x": x, "sample": f"{stem} y{y} x{x}"}
                    if has_time:
                        fields["time"] = t
                    for name, truth in truths.items():
                        fields[f"{name}_coverage"], fields[f"{name}_count"] = truth[(y, x)]
                        if has_time:
                            fields[f"{name}_coverage_gain"] = round(truth[(y, x)][0] - first[name][(y, x)][0], 6)
                    if self.params["condition"]:
                        fields["condition"] = self._condition(fields)
                    region = (f"t={t}&" if has_time else "") + f"y={y}&x={x}&size={self.tile}"
                    items.append((join_region(path, region), fields))
        return items

    def _condition(self, fields: dict) -> str:
        try:
            return str(self.params["condition"]).format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise PluginError(f"tiff-tiles: condition {self.params['condition']!r} cannot be filled in ({exc}); "
                              f"fields: {', '.join(fields)}") from None

    def read(self, path: str) -> np.ndarray:
        file, region = split_region(path)
        frames, _ = self._frames(file)
        channels = self._channels(frames.shape[0], file)
        if not region:  # the whole file: every frame's image channels would be ambiguous
            if frames.shape[1] != 1:
                raise ValueError(f"{frames.shape[1]} time points: tiff-tiles reads one tile or frame at a time")
            return np.ascontiguousarray(frames[channels, 0])
        where = dict(part.split("=") for part in region.split("&"))
        t, y, x, size = (int(where.get(k, 0)) for k in ("t", "y", "x", "size"))
        if t >= frames.shape[1] or y + size > frames.shape[2] or x + size > frames.shape[3]:
            raise ValueError(f"tile {region} lies outside the data (C, T, Y, X = {frames.shape})")
        return np.ascontiguousarray(frames[channels, t, y:y + size, x:x + size])


@functools.lru_cache(maxsize=4)
def _opened(path: str, size: int, mtime_ns: str, max_pixels: int) -> tuple[np.ndarray, str]:
    """``read_series`` once per file version, not once per tile: parsing a TIFF's pages costs
    more than cutting a tile, and holds the GIL. A memory map is shared read-only by all
    threads; a compressed file is decoded once."""
    return read_series(path, max_pixels)


def _mask_truth(labels: np.ndarray, ys: list[int], xs: list[int], tile: int) -> dict[tuple[int, int], tuple[float, int]]:
    """Per tile origin: the fraction of pixels inside an object, and the objects centred in it."""
    labels = labels.astype(np.int64, copy=False)
    inside = labels > 0
    flat = labels.ravel()
    counts = np.bincount(flat)
    rows, cols = np.indices(labels.shape)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    cy = np.bincount(flat, weights=rows.ravel())[present] / counts[present]
    cx = np.bincount(flat, weights=cols.ravel())[present] / counts[present]
    truth = {}
    for y in ys:
        for x in xs:
            coverage = float(inside[y:y + tile, x:x + tile].mean())
            centred = int(((cy >= y) & (cy < y + tile) & (cx >= x) & (cx < x + tile)).sum())
            truth[(y, x)] = (round(coverage, 6), centred)
    return truth
