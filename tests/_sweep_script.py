"""Run a toy sweep (for the kill/resume test): python _sweep_script.py OUT_DIR N_CELLS SLEEP."""

from __future__ import annotations

import functools
import sys

from shallowflow.experiments._toy import simulate_toy_batch, toy_cells
from shallowflow.experiments.runner import run_sweep

if __name__ == "__main__":
    out_dir, n_cells, sleep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    simulate = functools.partial(simulate_toy_batch, sleep=sleep)
    run_sweep(toy_cells(n_cells), simulate, out_dir, resume=True, progress=False)
