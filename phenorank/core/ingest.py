"""Ingest: plate entries -> hashed, loaded and preprocessed stacks -> crops and metadata in the store.

Each file is identified by the hash of its bytes. A file whose crop for the same preprocessing
parameters is stored already costs only that hash (and a metadata update when its manifest row
changed). A file that cannot be used goes to ``rejects`` with the reason and the batch goes on.
Results are written in small transactions, in input order, so an interrupted ingest (even
``kill -9``) keeps every batch it finished and a re-run does the rest.

With ``workers`` > 1 the work is shared between this process and ``workers - 1`` spawned
processes; this process also writes to the store, and starts working at once instead of waiting
for the others to import their libraries.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from .preprocess import PreprocessError, PreprocessParams, preprocess_stack

if TYPE_CHECKING:
    from ..registry.contracts import Loader
    from .manifest import ManifestEntry
    from .store import Store

WRITE_EVERY = 32


@dataclass
class IngestReport:
    ingested: int = 0  # preprocessed and stored
    cached: int = 0  # unchanged: only hashed
    updated: int = 0  # content known, metadata changed: rewritten without preprocessing
    rejected: list[tuple[str, str]] = field(default_factory=list)
    pairs: int = 0
    unpaired_wells: int = 0
    notes: list[str] = field(default_factory=list)


def content_id(path: str | os.PathLike) -> str:
    """A stable image id: the 128-bit xxHash (XXH3) of the file's bytes."""
    import xxhash

    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise PreprocessError("empty file (0 bytes)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return xxhash.xxh3_128_hexdigest(data)


# -- the per-file work, run in this process or in a worker process ---------------------------
_state: dict = {}


def _set_state(loader: "Loader", params: PreprocessParams, cached_ids: frozenset[str]) -> None:
    _state.update(loader=loader, params=params, cached_ids=cached_ids)


def _init_worker(*state) -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per worker; parallelism comes from the workers
    _set_state(*state)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed (kill -9 leaves no time to stop it) must not linger."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def process_file(task: tuple[str, str]) -> dict:
    """Hash, and unless its crop is stored already, read and preprocess one file."""
    path, source = task
    try:
        if not os.path.isfile(path):
            raise PreprocessError(f"file not found ({source})")
        image_id = content_id(path)
        if image_id in _state["cached_ids"]:
            return {"status": "cached", "image_id": image_id}
        stack = _state["loader"].read(path)
        crop = preprocess_stack(stack, _state["params"])
        params = _state["params"]
        return {
            "status": "new", "image_id": image_id,
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
def _single_threaded_cv2() -> Iterator[None]:
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def process_in_order(tasks: Iterable[tuple[str, str]], workers: int, init_args: tuple,
                     notes: list[str] | None = None) -> Iterator[dict]:
    """``process_file`` over the tasks, results in task order, spread over ``workers`` processes
    of which this is one. Memory stays bounded: at most a few results wait to be written.

    Worker processes are spawned (a fork would copy this process's DuckDB and OpenCV thread
    pools, and OpenCV can hang in the child), so a script that calls this must guard its entry
    point with ``if __name__ == '__main__':``, as for any spawned multiprocessing.
    """
    notes = [] if notes is None else notes
    tasks = list(tasks)
    _set_state(*init_args)
    if workers <= 1 or len(tasks) < 2:
        with _single_threaded_cv2():
            for task in tasks:
                yield process_file(task)
        return

    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
        workers - 1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
        initargs=init_args)
    queued_limit, window_limit = 2 * (workers - 1), 8 * workers
    window: deque[tuple[tuple[str, str], Future | dict]] = deque()

    def outcome(task: tuple[str, str], item: Future | dict) -> dict:
        nonlocal executor
        if isinstance(item, dict):
            return item
        try:
            return item.result()
        except BrokenProcessPool as exc:
            give_up_workers(exc)
            return process_file(task)

    def give_up_workers(exc: Exception) -> None:
        """The workers died or could not start: carry on alone, and say so."""
        nonlocal executor
        if executor is not None:
            notes.append(f"worker processes stopped ({exc}); the rest ran in this process alone. "
                         "Calling ingest from a script? Put the call under `if __name__ == '__main__':`")
            executor.shutdown(wait=False, cancel_futures=True)
            executor = None

    def start(task: tuple[str, str]) -> Future | dict:
        if executor is not None:
            queued = sum(1 for _, item in window if isinstance(item, Future) and not item.done())
            if queued < queued_limit:
                try:
                    return executor.submit(process_file, task)
                except BrokenProcessPool as exc:
                    give_up_workers(exc)
        return process_file(task)  # this process takes its share

    try:
        with _single_threaded_cv2():
            for task in tasks:
                window.append((task, start(task)))
                while window and (isinstance(window[0][1], dict) or window[0][1].done()
                                  or len(window) > window_limit):
                    yield outcome(*window.popleft())
            while window:
                yield outcome(*window.popleft())
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


# -- the batch, in this process ---------------------------------------------------------------
def ingest(entries: list["ManifestEntry"], loader: "Loader", store: "Store", run_id: str,
           params: PreprocessParams = PreprocessParams(), workers: int = 1,
           advance: Callable[[int], None] = lambda n=1: None) -> IngestReport:
    report = IngestReport()
    records = store.image_records(params.key)
    cached_ids = frozenset(image_id for image_id, record in records.items() if record["has_crop"])
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

    tasks = [(str(entry.path), entry.source) for entry in entries]
    results = process_in_order(tasks, workers, (loader, params, cached_ids), report.notes)
    for entry, result in zip(entries, results):
        path, image_id = str(entry.path), result.get("image_id")
        metadata = entry.metadata()
        if result["status"] == "error":
            rejects.append((path, result["reason"]))
        elif image_id in seen:
            rejects.append((path, f"same content as {seen[image_id]} (duplicate file)"))
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
            report.ingested += 1
        advance(1)
        if len(images) + len(rejects) >= WRITE_EVERY:
            flush()
    flush()
    report.pairs, report.unpaired_wells = store.rebuild_pairs()
    return report
