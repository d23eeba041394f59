"""Executors: where the batches of a sweep are simulated.

An executor maps a batch simulator ``simulate_batch(list[dict]) ->
list[DataFrame]`` over a sequence of :class:`Batch` es and yields ``(index,
results)`` pairs *as batches complete*, in any order. A batch carries the group
label that the runner's plan gave its cells (e.g. the engine's compiled bucket); the
simulator receives it as ``simulate_batch(cells, group=label)`` when it is not
None. The driver (the runner) writes results to disk as they arrive, so what a kill
loses is only what is in flight, whichever executor runs the batches.

- ``local``: in-process, one batch after another, in order.
- ``ray``: one Ray task per batch, on an existing cluster (``address``) or
  on a small local one; one GPU per task when the cluster has GPUs. Ray
  pickles ``simulate_batch`` by reference, so it must be a module-level
  function (or a ``functools.partial`` of one) importable on the workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from shallowflow.errors import ShallowflowInputError

__all__ = [
    "EXECUTORS",
    "Batch",
    "BatchSimulator",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
]

# simulate_batch(cells) -> one table per cell; called with group=label for a labelled batch
BatchSimulator = Callable[..., list[pd.DataFrame]]

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Batch:
    """Cells simulated in one call, and the plan's label of their group (or None)."""

    cells: list[dict[str, Any]]
    group: Hashable | None = None


def call_batch(simulate_batch: BatchSimulator, batch: Batch) -> list[pd.DataFrame]:
    """``simulate_batch(cells)``, with ``group=`` when the batch has a label."""
    if batch.group is None:
        return simulate_batch(batch.cells)
    return simulate_batch(batch.cells, group=batch.group)


@runtime_checkable
class Executor(Protocol):
    """Runs batches of cells; yields ``(batch_index, results)`` as they finish."""

    def run(
        self, simulate_batch: BatchSimulator, batches: Iterable[Batch]
    ) -> Iterator[tuple[int, list[pd.DataFrame]]]:
        """Yield ``(batch_index, tables)`` for each batch as it finishes."""
        ...


class LocalExecutor:
    """Sequential, in-process execution (any callable works, closures included)."""

    def run(
        self, simulate_batch: BatchSimulator, batches: Iterable[Batch]
    ) -> Iterator[tuple[int, list[pd.DataFrame]]]:
        """Yield ``(index, tables)`` for each batch, in order."""
        for index, batch in enumerate(batches):
            yield index, call_batch(simulate_batch, batch)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ShallowflowInputError(
            "executor",
            "'ray' needs the optional dependency Ray; install it with "
            "pip install -e \".[ray]\" (or pip install 'ray>=2.9').",
        ) from err
    return ray


class RayExecutor:
    """One Ray task per batch; results are collected with ``ray.wait``.

    If Ray is already initialised in this process, that session is used and
    left running. Otherwise ``run`` connects to ``address`` (an existing
    cluster) or starts a light local instance (``num_cpus`` CPUs, no
    dashboard, a small object store) and shuts it down when done.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        object_store_memory: int = 512 * 1024**2,
    ):
        self.address = address
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory

    def _init(self, ray: Any) -> bool:
        """Initialise Ray unless it already is; return whether we did."""
        if ray.is_initialized():
            return False
        if self.address is not None:
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=True)
        else:
            ray.init(
                num_cpus=self.num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=self.object_store_memory,
                ignore_reinit_error=True,
                log_to_driver=True,
            )
        return True

    def run(
        self, simulate_batch: BatchSimulator, batches: Iterable[Batch]
    ) -> Iterator[tuple[int, list[pd.DataFrame]]]:
        """Yield ``(index, tables)`` for each batch as its Ray task finishes."""
        ray = _import_ray()
        started = self._init(ray)
        pending: dict[Any, int] = {}
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            task = ray.remote(call_batch).options(num_gpus=1 if gpus > 0 else 0)
            fn_ref = ray.put(simulate_batch)
            pending = {task.remote(fn_ref, batch): i for i, batch in enumerate(batches)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    yield index, ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)
            if started:
                ray.shutdown()


def make_executor(
    executor: str | Executor = "local", *, ray_address: str | None = None
) -> Executor:
    """Return the executor named ``executor`` (``"local"`` or ``"ray"``), or pass one through."""
    if not isinstance(executor, str):
        if isinstance(executor, Executor):
            return executor
        raise ShallowflowInputError(
            "executor", f"expected one of {EXECUTORS} or an Executor, got {executor!r}"
        )
    if executor == "local":
        if ray_address is not None:
            raise ShallowflowInputError(
                "ray_address", "only meaningful with executor='ray' (got executor='local')"
            )
        return LocalExecutor()
    if executor == "ray":
        _import_ray()
        return RayExecutor(ray_address)
    raise ShallowflowInputError(
        "executor", f"unknown executor {executor!r}; choose one of {EXECUTORS}"
    )
