"""Training crops on local disk, read one at a time: training memory bounded by the batch.

Training visits every crop once per epoch in random order, from one process or from several
(data-loader workers, one process per GPU). A DuckDB connection serves only the process that
opened it, and holding 100k crops as float32 takes 11 GB, so the crops are copied once from the
store, in one streaming scan of 1024 rows at a time, into a flat file of 16-bit pixels next to the model, and each item is read
from it with one ``pread`` (no memory map, so nothing of the file counts as the process's memory
and page cache is the kernel's to reclaim). The channel mean and standard deviation that the
encoders standardise with are summed while copying.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import numpy as np


class CropFile:
    """``(N, C, S, S)`` float32 crops in [0, 1], as ``crops[i]`` or ``crops.read(indices)``."""

    def __init__(self, path: str | Path, count: int, channels: int, size: int,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.path = str(path)
        self.shape = (count, channels, size, size)
        self.mean, self.std = mean, std
        self._item_bytes = channels * size * size * 2
        self._fd: int | None = None

    @classmethod
    def from_store(cls, store, ids: list[str], preprocess_key: str, path: str | Path,
                   chunk: int = 1024) -> "CropFile":
        """Copy the crops of ``ids`` from the store into ``path``, in the order of ``ids`` (so a
        seeded training repeats), in one streaming scan of the store with DuckDB's own memory
        capped meanwhile."""
        position = {image_id: i for i, image_id in enumerate(ids)}
        total = squares = None
        shape = None
        with open(path, "wb") as handle, store.memory_limit("512MB"), \
                closing(store.stream_crops(ids, preprocess_key, chunk)) as crops:
            for chunk_ids, pixels in crops:
                if shape is None:
                    shape = pixels.shape[1:]
                    total, squares = np.zeros(shape[0]), np.zeros(shape[0])
                pixels = pixels.astype("<u2", copy=False)
                item_bytes = pixels[0].nbytes
                for image_id, item in zip(chunk_ids, pixels):
                    os.pwrite(handle.fileno(), item.tobytes(), position[image_id] * item_bytes)
                as64 = pixels.astype(np.float64) / 65535.0
                total += as64.sum(axis=(0, 2, 3))
                squares += (as64 ** 2).sum(axis=(0, 2, 3))
        if shape is None:
            raise ValueError("no crops to train on")
        n = len(ids) * shape[1] * shape[2]
        mean = total / n
        variance = np.maximum(squares - n * mean ** 2, 0.0) / max(n - 1, 1)  # unbiased, as torch.std
        return cls(path, len(ids), shape[0], shape[1], mean.astype(np.float32),
                   np.sqrt(variance).astype(np.float32))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"crop {index} of {len(self)}")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        raw = os.pread(self._fd, self._item_bytes, index * self._item_bytes)
        return np.frombuffer(raw, dtype="<u2").reshape(self.shape[1:]).astype(np.float32) / 65535.0

    def read(self, indices) -> np.ndarray:
        return np.stack([self[i] for i in indices]) if len(indices) else np.zeros((0, *self.shape[1:]), np.float32)

    def __getstate__(self) -> dict:  # a data-loader worker opens the file itself
        return {**self.__dict__, "_fd": None}

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass
