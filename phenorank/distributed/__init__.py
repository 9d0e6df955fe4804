"""Running ingest and objects on a Dask cluster: workers read, preprocess and segment; the client
is the only writer to the DuckDB store (see :mod:`phenorank.distributed.executor`)."""

from .cluster import ENV, cluster_from, connect
from .executor import ClusterExecutor

__all__ = ["ENV", "ClusterExecutor", "cluster_from", "connect"]
