"""Where chunks of scenarios are settled: threads of this process (the default), or tasks on a Dask cluster
(`--executor dask` starts a local one for the command; `--executor dask:tcp://HOST:PORT` uses one you run), for
sweeps and designs that outgrow one machine. The same chunk function runs either way, so the figures are the same to
the penny (a test checks a sweep and a design on a local cluster against the threads).

What crosses the wire: to a worker, the dataset's folder (the worker reads and checks it once, by content, as any
process does: `inputs.cache.checked_dataset`; on a cluster of several machines the folder must be at the same path on each),
the resolved version (a pydantic model), the run parameters, the parameter names and the chunk's values; back, the
chunk's results (a sweep: grants, bounds and floors, int64/int8 arrays; a design: each candidate's constraint and
objective values). docs/scale.md has the measured overhead per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from fundform.base.errors import UsageProblem

if TYPE_CHECKING:
    from fundform.inputs.dataset import Dataset


class Threads:
    """Chunks on threads of this process (the array work releases the interpreter)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers

    def map(self, fn: Callable, items: list) -> Iterable:
        if len(items) <= 1:
            return map(fn, items)
        pool = ThreadPoolExecutor(max_workers=max(1, self.workers or min(os.cpu_count() or 1, len(items))))
        try:
            return list(pool.map(fn, items))
        finally:
            pool.shutdown()

    def close(self) -> None:
        return None


class Dask:
    """Chunks as tasks on a Dask distributed cluster: a local one (a worker process per core) or one at `address`."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageProblem("--executor dask needs the optional extra: pip install 'fundform[distributed]'") \
                from None
        self.cluster = None
        if address:
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            self.client = Client(self.cluster)

    def map(self, fn: Callable, items: list) -> Iterable:
        """The results in order, each fetched when the caller reaches it (a sweep spills each chunk to disk before
        the next arrives, so memory stays bounded by a chunk here too)."""
        futures = self.client.map(fn, items, pure=False)
        for f in futures:
            yield f.result()
            f.release()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


Executor = Threads | Dask  # where a sweep's or a design's chunks run


def executor(spec: str | None, workers: int | None = None) -> Executor:
    """`local` (default), `dask` (a local cluster for this command) or `dask:tcp://HOST:PORT`."""
    if spec in (None, "", "local", "threads"):
        return Threads(workers)
    if spec == "dask":
        return Dask(None, workers)
    if spec.startswith("dask:"):
        return Dask(spec[5:], workers)
    raise UsageProblem(f"--executor {spec}: choose local, dask, or dask:tcp://HOST:PORT")


def worker_data(directory: str, allow_implausible: bool) -> Dataset:
    """The dataset on a worker: read and checked once per worker process, by content."""
    from fundform.inputs.cache import checked_dataset

    return checked_dataset(Path(directory), allow_implausible)
