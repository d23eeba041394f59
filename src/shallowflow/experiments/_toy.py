"""A deterministic toy batch simulator for testing the sweep runner.

Module-level (hence importable by subprocesses and Ray workers). Each cell
needs knobs ``seed`` (the sweep seed) and ``runs``; its runs draw from
``numpy.random.default_rng(cell_seed(seed, cell))``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.cells import Cell, cell_seed


def simulate_toy_cell(cell: dict[str, Any]) -> pd.DataFrame:
    """Runs of one cell: ``run``, a uniform ``loss`` scaled by ``n``, ``success``."""
    rng = np.random.default_rng(cell_seed(cell["seed"], Cell(cell)))
    runs = int(cell["runs"])
    loss = rng.random(runs) * cell.get("n", 1)
    return pd.DataFrame(
        {
            "run": np.arange(runs, dtype=np.int64),
            "loss": loss,
            "success": loss < 0.5 * cell.get("n", 1),
        }
    )


def simulate_toy_batch(
    cells: list[dict[str, Any]], group: Any = None, *, sleep: float = 0.0
) -> list[pd.DataFrame]:
    """One table per cell; sleeps ``sleep`` seconds per cell (to test kills); ``group``
    (a plan's label) is ignored."""
    out = []
    for cell in cells:
        time.sleep(sleep)
        out.append(simulate_toy_cell(cell))
    return out


def toy_cells(n_cells: int, *, runs: int = 7, seed: int = 123) -> list[dict[str, Any]]:
    """A toy sweep: ``n_cells`` cells ``n = 10, 11, ...`` with two values of ``d``."""
    return [
        {"figure": "toy", "n": 10 + i, "d": 2 + i % 2, "runs": runs, "seed": seed}
        for i in range(n_cells)
    ]
