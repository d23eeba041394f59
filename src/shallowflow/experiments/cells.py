"""The engine as a batch simulator for the sweep runner.

``simulate_batch(list[dict], group=None) -> list[DataFrame]`` is module-level, so
Ray pickles it by reference. Each cell is a dict of
:class:`~shallowflow.config.SimConfig` knobs plus bookkeeping tags (``figure``,
``tag``); its ``seed`` knob is the *sweep* seed, and the engine runs with
``cell_seed(seed, cell)``, so results depend only on the cell's knobs, never
on batching, order or executor. :func:`plan_cells` is the runner's plan: the engine's
buckets (:func:`shallowflow.engine.plan`) over all the cells of a sweep, so that the
cells of a bucket run in one compiled call, padded the same way whatever is left to
run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from shallowflow.config import SimConfig, make_config
from shallowflow.engine import Bucket, plan, simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.runner import Cell, cell_seed
from shallowflow.results import runs_table
from shallowflow.trajectory import signature

__all__ = ["TAGS", "cell_config", "plan_cells", "simulate_batch", "simulate_cell"]

TAGS = ("figure", "tag")  # knobs that label a cell but are not SimConfig fields


def cell_config(knobs: Mapping[str, Any]) -> SimConfig:
    """The :class:`SimConfig` of a cell: its knobs without tags, seed = ``cell_seed``."""
    cell = Cell(knobs)
    conf = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cell.items() if k not in TAGS}
    conf["seed"] = cell_seed(int(conf.get("seed", 0)), cell)
    return make_config(**conf)


def plan_cells(cells: Sequence[Mapping[str, Any]], max_batch: int | None = None) -> list[Bucket]:
    """The engine bucket of every cell (the runner's plan)."""
    return plan([cell_config(c) for c in cells], max_cells=max_batch)


def _table(cfg: SimConfig, res) -> pd.DataFrame:
    df = runs_table(res)
    df["cell_seed"] = cfg.run.seed
    return df


def simulate_batch(cells: list[dict[str, Any]], group: Bucket | None = None) -> list[pd.DataFrame]:
    """One table of runs per cell (``results.runs_table`` plus its engine seed), in
    order; the cells of one ``group`` (a bucket of :func:`plan_cells`) share compiled
    calls."""
    cfgs = [cell_config(c) for c in cells]
    buckets = None
    if group is not None:
        for cfg in cfgs:
            fits = all(
                x <= y
                for x, y in zip((cfg.data.n, cfg.data.d, cfg.init.p), group.shape, strict=True)
            )
            if signature(cfg) != group.sig or not fits:
                raise ShallowflowInputError("group", f"a cell does not fit its bucket: {cfg!r}")
        buckets = [group] * len(cfgs)
    return [_table(c, r) for c, r in zip(cfgs, simulate_many(cfgs, buckets=buckets), strict=True)]


def simulate_cell(knobs: Mapping[str, Any], group: Bucket | None = None) -> pd.DataFrame:
    """One row per run of the cell (``results.runs_table``), plus its engine seed."""
    return simulate_batch([dict(knobs)], group)[0]
