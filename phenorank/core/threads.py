"""Thread counts set on purpose: a small torch model (a few narrow layers on batches of 32) spends
its time in per-operation overhead, where a second thread only adds synchronisation; on 2 shared
cores the predictor and softmax loops took 218 CPU-s with 2 threads against 37 with 1. BLAS is
held to one thread where a second one changes results or takes another worker's core."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS / OpenMP thread, for two reasons met on 2 cores:

    - the same numbers wherever a fit runs: a logistic regression on few, wide rows is
      ill-conditioned, so L-BFGS stops where its tolerance allows, and the rounding of a 2-thread
      BLAS sum (this process) against a 1-thread one (a Dask worker) moved its probabilities by up
      to 0.06 under one result key; such fits are too small to gain from a second thread;
    - workers that each own a core: an OpenBLAS thread spins for a while after every call, however
      small, and takes the core of the worker beside it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
