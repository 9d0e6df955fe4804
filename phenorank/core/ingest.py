"""Ingest: manifest rows -> loaded stacks -> preprocessed crops and metadata in the store.

A file that cannot be used goes to ``rejects`` with the reason and the batch goes on. Results are
written in small transactions, so an interrupted ingest keeps what it finished and a re-run
only pays the content hash for files already done.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from ..registry.contracts import Loader
from .manifest import ManifestEntry
from .preprocess import PreprocessError, PreprocessParams, preprocess_stack
from .store import Store

WRITE_EVERY = 32


@dataclass
class IngestReport:
    ingested: int = 0
    cached: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


def content_id(path) -> str:
    """A stable image id: the hash of the file's bytes."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest(entries: list[ManifestEntry], loader: Loader, store: Store, run_id: str,
           params: PreprocessParams = PreprocessParams(),
           advance: Callable[[int], None] = lambda n=1: None) -> IngestReport:
    report = IngestReport()
    images: list[dict] = []
    crops: list[dict] = []
    rejects: list[tuple[str, str]] = []
    seen: dict[str, str] = {}

    def flush() -> None:
        store.write_images(images, crops, run_id)
        store.write_rejects(rejects, run_id)
        report.rejected += rejects
        for pending in (images, crops, rejects):
            pending.clear()

    for entry in entries:
        path = str(entry.path)
        try:
            if not entry.path.is_file():
                raise PreprocessError(f"file not found (manifest line {entry.line})")
            image_id = content_id(entry.path)
            if image_id in seen:
                raise PreprocessError(f"same content as {seen[image_id]} (duplicate file)")
            seen[image_id] = path
            known = store.cached_image(image_id, params.key)
            if known is not None:
                images.append({**entry.metadata(), "image_id": image_id, **known})
                report.cached += 1
            else:
                stack = loader.read(path)
                crop = preprocess_stack(stack, params)
                images.append({**entry.metadata(), "image_id": image_id, "n_layers": stack.shape[0],
                               "height": stack.shape[1], "width": stack.shape[2], "dtype": str(stack.dtype)})
                crops.append({"image_id": image_id, "preprocess_key": params.key, "size": params.size,
                              "crop_x": crop.crop_x, "crop_y": crop.crop_y, "crop_side": crop.crop_side,
                              "layers_used": crop.layers_used, "pixels": crop.pixels.astype("<u2").tobytes()})
                report.ingested += 1
        except Exception as exc:  # one bad file must not stop the batch; the reason is kept
            rejects.append((path, _reason(exc)))
        advance(1)
        if len(images) >= WRITE_EVERY:
            flush()
    flush()
    return report


def _reason(exc: Exception) -> str:
    if isinstance(exc, PreprocessError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
