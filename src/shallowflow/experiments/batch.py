"""The engine as the sweep runner's batch simulator.

``simulate_batch(list[dict], group=None) -> list[DataFrame]`` is module-level, so
Ray pickles it by reference. Each cell is a dict of
:class:`~shallowflow.config.SimConfig` knobs plus bookkeeping tags (``figure``,
``tag``); its ``seed`` knob is the *sweep* seed, and the engine runs with
``cell_seed(seed, cell)``, so results depend only on the cell's knobs, never
on batching, order or executor. :func:`plan_cells` is the runner's plan: the engine's
buckets (:func:`shallowflow.planning.plan`) over all the cells of a sweep, so that the
cells of a bucket run in one compiled call, padded the same way whatever is left to
run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import pandas as pd

from shallowflow.config import SimConfig
from shallowflow.engine import simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.experiments.executors import BatchSimulator
from shallowflow.experiments.pacing import CALL_SECONDS
from shallowflow.experiments.runner import run_sweep
from shallowflow.planning import MAX_WASTE, Bucket, cell_work, plan
from shallowflow.results import SimResult, runs_table
from shallowflow.trajectory import signature

__all__ = [
    "call_seconds",
    "cell_table",
    "cells_work",
    "plan_cells",
    "run_cells",
    "simulate_batch",
    "simulate_cell",
    "simulate_results",
]


def plan_cells(
    cells: Sequence[Mapping[str, Any]], max_batch: int | None = None, max_waste: float = MAX_WASTE
) -> list[Bucket]:
    """The engine bucket of every cell (the runner's plan; ``max_waste``: the padded work
    a bucket may have over its cells' own, :func:`shallowflow.planning.plan`)."""
    return plan([cell_config(c) for c in cells], max_cells=max_batch, max_waste=max_waste)


def cells_work(cells: Sequence[Cell], buckets: Sequence[Bucket]) -> list[float]:
    """The expected work of each cell in its bucket (the runner's ``work``: it sizes the
    calls, :mod:`shallowflow.experiments.pacing`)."""
    return [cell_work(cell_config(c), b.shape) for c, b in zip(cells, buckets, strict=True)]


def call_seconds() -> float | None:
    """The runner's call budget: about a minute on CPU, where a dead run costs nothing
    (:mod:`shallowflow.engine`); none on accelerators, where the runs of a call go side
    by side and the widest call that fits the memory budget is the fastest."""
    return CALL_SECONDS if jax.default_backend() == "cpu" else None


def cell_table(cfg: SimConfig, res) -> pd.DataFrame:
    """A cell's table of runs: ``results.runs_table`` and the cell's engine seed."""
    df = runs_table(res)
    df["cell_seed"] = cfg.run.seed
    return df


def simulate_results(
    cells: list[dict[str, Any]], group: Bucket | None = None
) -> list[tuple[SimConfig, SimResult]]:
    """Each cell's configuration and :class:`~shallowflow.results.SimResult` (its records
    too), in order; the cells of one ``group`` (a bucket of :func:`plan_cells`) share
    compiled calls."""
    cfgs = [cell_config(c) for c in cells]
    buckets = None
    if group is not None:
        for cfg in cfgs:
            fits = all(
                x <= y
                for x, y in zip(
                    (cfg.data.n, cfg.data.d, cfg.init.p, cfg.data.test_n), group.shape, strict=True
                )
            )
            if signature(cfg) != group.sig or not fits:
                raise ShallowflowInputError("group", f"a cell does not fit its bucket: {cfg!r}")
        buckets = [group] * len(cfgs)
    return list(zip(cfgs, simulate_many(cfgs, buckets=buckets), strict=True))


def simulate_batch(cells: list[dict[str, Any]], group: Bucket | None = None) -> list[pd.DataFrame]:
    """One table of runs per cell (``results.runs_table`` plus its engine seed), in
    order (:func:`simulate_results`)."""
    return [cell_table(c, r) for c, r in simulate_results(cells, group)]


def simulate_cell(knobs: Mapping[str, Any], group: Bucket | None = None) -> pd.DataFrame:
    """One row per run of the cell (``results.runs_table``), plus its engine seed."""
    return simulate_batch([dict(knobs)], group)[0]


def run_cells(
    cells: Sequence[Cell | Mapping[str, Any]],
    out: str | os.PathLike[str],
    simulator: BatchSimulator = simulate_batch,
    **options: Any,
) -> pd.DataFrame:
    """Simulate a sweep's cells with the engine, planned into its buckets, in calls
    sized by :func:`call_seconds` unless ``options`` say otherwise
    (:func:`shallowflow.experiments.runner.run_sweep` with ``options``); ``simulator``
    makes each cell's table (default :func:`simulate_batch`; a study may add per-run
    columns read from the records, from :func:`simulate_results`)."""
    options = {"call_seconds": call_seconds()} | options
    return run_sweep(cells, simulator, out, plan=plan_cells, work=cells_work, **options)
