"""Which Dask cluster to use: ``local[:N]`` (a LocalCluster of N single-threaded worker
processes started here and stopped after the command), ``tcp://HOST:PORT`` (a scheduler that
is already running: SLURM through dask-jobqueue, Kubernetes, ``dask scheduler`` by hand), or
``$PHENORANK_CLUSTER`` when no option is given."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from ..core.pipeline import PipelineError

ENV = "PHENORANK_CLUSTER"
SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")
# each worker is one process on one core: libraries must not start their own thread pools in it
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def cluster_from(option: str | None) -> str | None:
    """The cluster asked for: the option, else ``$PHENORANK_CLUSTER``, else None (in-process)."""
    spec = (option or os.environ.get(ENV) or "").strip()
    if spec and spec not in ("none", "off") and not spec.startswith("local") and not spec.startswith(SCHEMES):
        raise PipelineError(f"cluster {spec!r}: use local, local:N (N worker processes here) or the scheduler's "
                            "address, e.g. tcp://10.0.0.5:8786")
    return spec if spec and spec not in ("none", "off") else None


@contextmanager
def connect(spec: str) -> Iterator:
    """A ``distributed.Client`` on the cluster ``spec``; a local cluster is stopped on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PipelineError("--cluster needs dask.distributed: pip install 'dask[distributed]'") from None
    cluster = None
    if spec.startswith("local"):
        count = spec.partition(":")[2]
        try:
            workers = int(count) if count else max(1, os.cpu_count() or 1)
        except ValueError:
            raise PipelineError(f"cluster {spec!r}: local:N takes a number of workers") from None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR, env=WORKER_ENV)
        client = Client(cluster)
    else:
        try:
            client = Client(spec, timeout="20s")
        except OSError as exc:
            raise PipelineError(f"no Dask scheduler answers at {spec}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
