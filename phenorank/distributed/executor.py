"""Per-file work (read + preprocess, or segment + crop) on Dask workers, results back in task order
to the client, which alone writes to the store.

The pipeline calls an executor as ``executor(tasks, work, failed)``: ``work(task) -> result``
runs on a worker; the results come back in task order (so the rows are exactly those of the
in-process path), at most ``window`` per worker in flight so memory stays flat. The store's
guarantees stay the client's: it commits every ``WRITE_EVERY`` results in one transaction, and a
re-run does only what is missing.

Failures:
- a bad file: the work function catches it and returns an error result (a reject), as in-process;
- a worker that dies (killed, out of memory, a segfault in a reader): Dask runs the task again on
  another worker; a file that has killed ``distributed.scheduler.allowed-failures`` + 1 workers
  (Dask's default: 3 + 1) is rejected with that reason instead of being retried forever;
- anything else that goes wrong around the task (a result that cannot travel back) is that
  file's reject too, with the exception named.

Plugins travel inside ``work`` by cloudpickle: a plugin installed as a package is imported by name
on the worker from its own environment, one registered at run time (a notebook) travels by value.
:meth:`ClusterExecutor.check` loads them on every worker before any file is sent, and a worker
that cannot stops the command with the plugin and the worker named.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

from ..core.pipeline import PipelineError


def _identity(value):
    return value


def _apply(work: Callable, task):
    return work(task)


def _load(payload: bytes) -> None:
    import cloudpickle

    cloudpickle.loads(payload)


class ClusterExecutor:
    def __init__(self, client, retries: int = 2, window: int = 4):
        self.client = client
        self.retries = retries
        self.window = window

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def check(self, **plugins) -> None:
        """Every worker can load these plugins (``family=plugin`` or ``family=[plugins]``), or a
        PipelineError naming the plugin and a worker that cannot."""
        import cloudpickle

        pairs = [(family, p) for family, given in plugins.items()
                 for p in (given if isinstance(given, (list, tuple)) else [given])]
        for family, plugin in pairs:
            answers = self.client.run(_load, cloudpickle.dumps(plugin), on_error="return")
            failed = {worker: answer for worker, answer in answers.items() if isinstance(answer, BaseException)}
            if failed:
                worker, error = next(iter(failed.items()))
                raise PipelineError(
                    f"{len(failed)} of {len(answers)} Dask workers cannot load {family} plugin {plugin.name!r} "
                    f"(e.g. {worker}: {type(error).__name__}: {error}); install the same packages, plugins included, "
                    "in the workers' environment")

    def __call__(self, tasks: Iterable, work: Callable, failed: Callable[[object, str], dict]) -> Iterator[dict]:
        import dask
        from distributed.scheduler import KilledWorker

        in_flight: deque = deque()
        limit = self.window * self.workers
        # the work (plugins, settings, the ids stored already) goes to the cluster once, not with each
        # file; as a task result rather than scattered data, so a worker that dies holding it is no loss
        # (the scheduler computes it again)
        shared = self.client.submit(_identity, work, pure=False)

        def submit(task):
            # a chunk of crops is a few MB of the graph by design: the client is the one who reads the store
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "256MB"}):
                return self.client.submit(_apply, shared, task, pure=False, retries=self.retries)

        def result_of(task, future, again: bool = True) -> dict:
            try:
                return future.result()
            except KilledWorker:
                # a worker that died also fails the tasks queued on it: one more try, alone, tells
                # the file that kills its reader from one that was only nearby
                if again:
                    return result_of(task, submit(task), again=False)
                return failed(task, "it killed every Dask worker that read it (more than the scheduler's "
                                    "allowed-failures): a file that crashes its reader (memory, a corrupt "
                                    "compressed stream?)")
            except Exception as exc:  # the task could not run or its result could not travel: this file only
                if again:
                    return result_of(task, submit(task), again=False)
                return failed(task, f"on the cluster: {type(exc).__name__}: {exc}")
            finally:
                future.release()

        for task in tasks:
            in_flight.append((task, submit(task)))
            if len(in_flight) >= limit:
                yield result_of(*in_flight.popleft())
        while in_flight:
            yield result_of(*in_flight.popleft())
        shared.release()
