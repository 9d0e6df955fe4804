"""Ingest: plate entries -> hashed, loaded and preprocessed stacks -> crops and metadata in the store.

Each file is identified by the hash of its bytes. A file whose crop for the same preprocessing
parameters is stored already costs only that hash (and a metadata update when its manifest row
changed). A file that cannot be used goes to ``rejects`` with the reason and the batch goes on.
Results are written in small transactions, in input order, so an interrupted ingest (even
``kill -9``) keeps every batch it finished and a re-run does the rest.

With ``workers`` > 1, that many threads hash, read and preprocess files while this thread writes
the results to the store in input order.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from pathlib import Path

import numpy as np

from ..registry.code import source_hash
from ..registry.contracts import Loader
from .allocator import keep_large_blocks
from .files import is_file, open_binary, stamp
from .image_quality import WINDOW, layer_statistics
from .manifest import ManifestEntry, split_location, split_region
from .preprocess import PreprocessError, PreprocessParams, preprocess_stack
from .preprocess_chain import group_of
from .store import Store

WRITE_EVERY = 64  # files per transaction: what a kill -9 can cost, about a second of work


@dataclass
class IngestReport:
    ingested: int = 0  # preprocessed and stored
    cached: int = 0  # unchanged: only hashed
    updated: int = 0  # content known, metadata changed: rewritten without preprocessing
    rejected: list[tuple[str, str]] = field(default_factory=list)
    pairs: int = 0
    unpaired_wells: int = 0
    enlarged: int = 0  # images whose crop is smaller than the crop size, so it was scaled up
    smallest_side: int | None = None


_buffers = threading.local()  # one read buffer per worker thread, reused for every file


def content_id(*paths: str | os.PathLike) -> str:
    """A stable image id: the 128-bit xxHash (XXH3) of the file's bytes (of all its channel
    files, in order), read in 1 MiB pieces (they stay in the CPU cache between read and hash)."""
    import xxhash

    view = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(1 << 20))
    digest = xxhash.xxh3_128()
    for path in paths:
        read = 0
        with open_binary(path) as handle:
            while n := handle.readinto(view):
                digest.update(view[:n])
                read += n
        if read == 0:
            raise PreprocessError(f"empty file (0 bytes){f': {path}' if len(paths) > 1 else ''}")
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _file_id(path: str, size: int, changed: str) -> str:
    return content_id(path)


def region_id(path: str, region: str) -> str:
    """The id of one image among several in a file: its file's content hash and its region
    (the file is hashed once, however many tiles it holds)."""
    import xxhash

    return xxhash.xxh3_128(f"{_file_id(path, *stamp(path))}#{region}".encode()).hexdigest()


def place(entry: ManifestEntry) -> dict:
    """Where a file would have gone on its plate: kept with a reject so that the plate map can
    show the well as rejected rather than empty."""
    return {"plate": entry.plate, "well": entry.well, "day": entry.day}


def expand_entries(entries: list[ManifestEntry], loader: Loader, advance: Callable[[int], None] = lambda n=1: None
                   ) -> tuple[list[ManifestEntry], list[tuple[str, str]]]:
    """Each entry as the images its file holds (``Loader.expand``; most loaders: the file itself).
    A file that cannot be opened is returned with the reason and its place, and the others go on."""
    expanded, rejects = [], []
    for entry in entries:
        advance(1)
        try:
            items = loader.expand(entry.location) if is_file(entry.location) else [(entry.location, {})]
        except ValueError as exc:  # PluginError included: the reason names what is wrong with the file
            rejects.append((entry.location, str(exc), place(entry)))
            continue
        for location, fields in items:
            if location == entry.location and not fields:
                expanded.append(entry)
                continue
            fields = dict(fields)
            condition = str(fields.pop("condition", entry.condition))
            region = split_region(location)[1]
            expanded.append(dataclasses.replace(entry, condition=condition, region=region,
                                                source=f"{entry.source} #{region}", extra={**fields, **entry.extra}))
    return expanded, rejects


def read_image(location: str, loader: Loader) -> np.ndarray:
    """One stored path -> (L, H, W): the file, or its channel files (joined by ``|``) stacked,
    or one region of a file (``file#t=3&y=0&x=0&size=128``), read by the loader that made it."""
    files, region = split_location(location)
    if len(files) == 1 or region:
        return loader.read(location)
    parts = []
    for path in files:
        try:
            parts.append(loader.read(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise PreprocessError("channel files differ in size: " + ", ".join(
            f"{Path(f).name} {p.shape[1]}x{p.shape[2]}" for f, p in zip(files, parts)))
    if len({p.dtype for p in parts}) > 1:
        raise PreprocessError("channel files differ in pixel type: " + ", ".join(
            f"{Path(f).name} {p.dtype}" for f, p in zip(files, parts)))
    return np.concatenate(parts)


# -- the per-file work, run by worker threads ----------------------------------------------------
def process_file(task: tuple[str, ...], loader: Loader, params: PreprocessParams,
                 cached_ids: frozenset[str], chain=None) -> dict:
    """Hash, and unless its crop is stored already, read and preprocess one file (through the
    preprocessor ``chain`` first, with the states of the task's group, its plate)."""
    location, source, *group = task
    keep_large_blocks()  # here, not at a pool's start: a Dask worker runs this too
    try:
        paths, region = split_location(location)
        base = paths[0]
        missing = [f for f in paths if not is_file(f)]
        if missing:
            raise PreprocessError(f"file not found ({source}{f': {missing[0]}' if len(paths) > 1 else ''})")
        image_id = region_id(base, region) if region else content_id(*paths)
        if image_id in cached_ids:
            return {"status": "cached", "image_id": image_id}
        stack = read_image(location, loader)
        crop = preprocess_stack(chain.apply(stack, group[0] if group else "") if chain else stack, params)
        return {
            "status": "new", "image_id": image_id, "stats": layer_statistics(stack, WINDOW),
            "shape": {"n_layers": stack.shape[0], "height": stack.shape[1], "width": stack.shape[2],
                      "dtype": str(stack.dtype.newbyteorder("="))},
            "crop": {"image_id": image_id, "preprocess_key": params.key, "size": params.size,
                     "crop_x": crop.crop_x, "crop_y": crop.crop_y, "crop_side": crop.crop_side,
                     "layers_used": crop.layers_used, "pixels": crop.pixels.astype("<u2").tobytes()},
        }
    except Exception as exc:  # one bad file must not stop the batch; the reason is kept
        reason = str(exc) if isinstance(exc, (PreprocessError, ValueError)) else f"{type(exc).__name__}: {exc}"
        return {"status": "error", "reason": reason or type(exc).__name__}


@contextmanager
def _one_core_per_worker() -> Iterator[None]:
    """One core per worker: the parallelism comes from the workers, not from OpenCV or BLAS. An
    OpenBLAS thread spins for a while after each call, however small, so with BLAS at its
    default two ingest workers ran no faster than one (and two processes three times slower)."""
    import cv2

    from .threads import single_threaded_blas

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with single_threaded_blas():
            yield
    finally:
        cv2.setNumThreads(before)


# (tasks, work, failed) -> results in task order; ``failed(task, reason)`` makes the error result of
# a task that could not run where it was sent (a worker that died)
Executor = Callable[[Iterable, Callable, Callable[[object, str], dict]], Iterator[dict]]


def process_in_order(tasks: Iterable[tuple[str, str]], work: Callable[[tuple[str, str]], dict],
                     workers: int) -> Iterator[dict]:
    """``work`` over the tasks by ``workers`` threads, results in task order; at most eight results
    per worker wait to be consumed, so memory does not grow with the number of files.

    Threads rather than processes: the heavy steps (hashing, OpenCV) release the GIL, so threads
    scale like processes here without start-up time, pickling, or workers outliving a killed run.
    """
    with _one_core_per_worker():
        if workers <= 1:
            yield from map(work, tasks)
            return
        pool = ThreadPoolExecutor(workers, thread_name_prefix="phenorank-ingest")
        window: deque[Future] = deque()
        try:
            for task in tasks:
                window.append(pool.submit(work, task))
                if len(window) >= 8 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# -- the batch, in this process ---------------------------------------------------------------
def ingest(entries: list[ManifestEntry], loader: Loader, store: Store, run_id: str,
           params: PreprocessParams = PreprocessParams(), workers: int = 1,
           advance: Callable[[int], None] = lambda n=1: None,
           rejected: list[tuple[str, str]] = (), executor: Executor | None = None, chain=None) -> IngestReport:
    """Ingest entries as ``expand_entries`` gave them; ``rejected`` holds the files it could not
    open, stored in ``rejects`` with the others. ``executor``: where the per-file work runs
    (default: ``workers`` threads here; a Dask cluster through ``phenorank.distributed``); the
    results come back in file order and only this process writes. ``chain``: a fitted
    :class:`~phenorank.core.preprocess_chain.Chain` applied before the crop (its key must be
    ``params.chain``)."""
    report = IngestReport()
    records = store.image_records(params.key)
    # an image stored before phenorank kept artifact statistics is read once more to add them
    cached_ids = frozenset(image_id for image_id, record in records.items()
                           if record["has_crop"] and record["has_stats"])
    if chain is not None and chain.key != params.chain:
        raise ValueError("the preprocessing chain's key is not the one in the preprocessing parameters")
    column = chain.group_by if chain is not None else "plate"
    tasks = [(entry.location, entry.source, group_of(entry, column)) for entry in entries]
    store.write_crop_set(params.key, "image", {**params.__dict__, "loader": loader.name, "loader_params": loader.params,
                                               **({"preprocess": chain.describe()} if chain else {})}, run_id)
    work = functools.partial(process_file, loader=loader, params=params, cached_ids=cached_ids, chain=chain)
    known = set(records) | {r["metadata"]["path"] for r in records.values()} | store.rejected_paths()
    with store.threads(1):  # the workers keep the cores busy; DuckDB's small writes need no more
        results = (executor(tasks, work, lambda task, reason: {"status": "error", "reason": reason}) if executor
                   else process_in_order(tasks, work, workers))
        _collect(entries, results, records, known, store, run_id, report, advance, list(rejected))
    report.pairs, report.unpaired_wells = store.pair_counts()
    return report


def _collect(entries: list[ManifestEntry], results: Iterator[dict], records: dict[str, dict], known: set[str],
             store: Store, run_id: str, report: IngestReport, advance: Callable[[int], None],
             rejects: list[tuple[str, str]]) -> None:
    """Turn results into rows, written every ``WRITE_EVERY`` files in one transaction each.
    ``known`` holds the stored image ids and paths and the rejected paths; ``rejects`` starts
    with the files rejected before (unopenable ones)."""
    images: list[dict] = []
    crops: list[dict] = []
    stats: list[dict] = []
    seen: dict[str, str] = {}
    code = source_hash(("phenorank.core.image_quality",))

    def flush(last: bool = False) -> None:
        fresh = not any(i["image_id"] in known or i["path"] in known for i in images)
        store.write_images(images, crops, run_id, rejects, fresh=fresh, pairs=last, stats=stats)
        report.rejected.extend(reject[:2] for reject in rejects)
        for pending in (images, crops, rejects, stats):
            pending.clear()

    for entry, result in zip(entries, results):
        path, image_id = entry.location, result.get("image_id")
        metadata = entry.metadata()
        if result["status"] == "error":
            rejects.append((path, result["reason"], place(entry)))
        elif image_id in seen:
            rejects.append((path, f"same content as {seen[image_id]} (duplicate file)", place(entry)))
        elif result["status"] == "cached":
            seen[image_id] = path
            record = records[image_id]
            if record["metadata"] == metadata:
                report.cached += 1
            else:
                images.append({**metadata, "image_id": image_id, **record["shape"]})
                report.updated += 1
        else:
            seen[image_id] = path
            images.append({**metadata, "image_id": image_id, **result["shape"]})
            crops.append(result["crop"])
            stats.extend({**row, "image_id": image_id, "spectrum_window": WINDOW, "code": code}
                         for row in result.get("stats", ()))
            report.ingested += 1
            side = result["crop"]["crop_side"]
            if side < result["crop"]["size"]:
                report.enlarged += 1
                report.smallest_side = min(side, report.smallest_side or side)
        advance(1)
        if len(images) + len(rejects) >= WRITE_EVERY:
            flush()
    flush(last=True)
