"""The engine as a batch simulator for the sweep runner.

``simulate_batch(list[dict]) -> list[DataFrame]`` is module-level, so Ray
pickles it by reference. Each cell is a dict of
:class:`~shallowflow.config.SimConfig` knobs plus bookkeeping tags (``figure``,
``tag``); its ``seed`` knob is the *sweep* seed, and the engine runs with
``cell_seed(seed, cell)``, so results depend only on the cell's knobs, never
on batching, order or executor.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from shallowflow.config import make_config
from shallowflow.engine import simulate
from shallowflow.experiments.runner import Cell, cell_seed
from shallowflow.results import runs_table

__all__ = ["TAGS", "cell_config", "shape_key", "simulate_batch", "simulate_cell"]

TAGS = ("figure", "tag")  # knobs that label a cell but are not SimConfig fields


def cell_config(knobs: Mapping[str, Any]):
    """The :class:`SimConfig` of a cell: its knobs without tags, seed = ``cell_seed``."""
    cell = Cell(knobs)
    conf = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cell.items() if k not in TAGS}
    conf["seed"] = cell_seed(int(conf.get("seed", 0)), cell)
    return make_config(**conf)


def simulate_cell(knobs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per run of the cell (``results.runs_table``), plus its engine seed."""
    cfg = cell_config(knobs)
    df = runs_table(simulate(cfg))
    df["cell_seed"] = cfg.seed
    return df


def simulate_batch(cells: list[dict[str, Any]]) -> list[pd.DataFrame]:
    """One table of runs per cell, in order (the runner's batch simulator)."""
    return [simulate_cell(c) for c in cells]


def shape_key(cell: Mapping[str, Any]) -> Hashable:
    """Cells with one compiled shape (n, d, p, data, solver) batch together."""
    return tuple(cell.get(k) for k in ("n", "d", "p", "data", "solver", "geometry"))
