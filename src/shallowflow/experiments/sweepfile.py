"""User sweeps from a TOML or YAML file, run by the generic runner.

A sweep file holds a ``[base]`` table of SimConfig knobs, a ``[grid]`` table
of knob → list of values (the cartesian product, first key slowest), and
optionally ``runs``, ``seed`` (the sweep seed) and ``name``::

    name = "tiny"
    runs = 4
    seed = 0
    [base]
    d = 30
    [grid]
    n = [10, 20]

``run_sweep_file(path, out)`` writes ``out/runs.parquet`` (the runner),
``out/points.parquet`` (success fraction with Hoeffding bars per cell) and
``out/sweep.png``/``.pdf``.
"""

from __future__ import annotations

import itertools
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.config import MAX_SEED, make_config
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.cells import TAGS, cell_config
from shallowflow.stats.thresholds import success_bars
from shallowflow.storage import write_parquet_atomic

__all__ = ["load_sweep", "run_sweep_file", "sweep_cells", "sweep_points"]

_TOP = {"name", "runs", "seed", "base", "grid"}


def load_sweep(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sweep file: ``.toml`` with tomllib, ``.yaml``/``.yml`` with PyYAML."""
    path = Path(path)
    if path.is_dir():
        raise ShallowflowInputError(
            "sweep_file", f"{str(path)!r} is a directory; give a .toml or .yaml sweep file"
        )
    if not path.is_file():
        raise ShallowflowInputError("sweep_file", f"no such file: {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        else:
            raise ShallowflowInputError("sweep_file", f"expected .toml, .yaml or .yml: {path.name}")
    except ShallowflowInputError:
        raise
    except Exception as err:  # tomllib's and PyYAML's parse errors, bad encodings
        raise ShallowflowInputError("sweep_file", f"cannot parse {path.name}: {err}") from None
    if not isinstance(spec, dict):
        raise ShallowflowInputError("sweep_file", "the file must hold a table/mapping at top level")
    unknown = set(spec) - _TOP
    if unknown:
        raise ShallowflowInputError(
            "sweep_file", f"unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP)}"
        )
    if not spec.get("base") and not spec.get("grid"):
        raise ShallowflowInputError(
            "sweep_file", f"{path.name} defines no cell: give [base] knobs and/or [grid] lists"
        )
    return spec


def sweep_cells(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Cells of a sweep: ``base`` knobs updated by each point of the ``grid`` product.

    Every cell is validated (``make_config``) before anything runs.
    """
    base = dict(spec.get("base") or {})
    grid = dict(spec.get("grid") or {})
    for key, values in grid.items():
        if key in ("runs", "seed"):
            raise ShallowflowInputError(
                f"grid.{key}", f"{key} is set once per sweep (top level or [base]), not a grid"
            )
        if not isinstance(values, list) or not values:
            raise ShallowflowInputError(f"grid.{key}", "must be a non-empty list of values")
    base.setdefault("runs", spec.get("runs", 16))
    base.setdefault("seed", spec.get("seed", 0))
    seed = base["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        make_config(**{k: v for k, v in base.items() if k not in TAGS})  # the API's message
        raise ShallowflowInputError("seed", f"must be an integer in [0, 2^32 - 1], got {seed!r}")
    base.setdefault("tag", spec.get("name", "sweep"))
    cells = [
        base | dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())
    ]
    for cell in cells:  # once per cell: the sweep's plan and batches reuse it
        try:
            cell_config(cell)
        except ShallowflowInputError:  # make_config's message, as the CLI and API give it
            make_config(**{k: v for k, v in cell.items() if k not in TAGS})
            raise
    return cells


def sweep_points(runs: pd.DataFrame, knobs: list[str]) -> pd.DataFrame:
    """Per cell: the varied knobs, runs, successes, fraction with 95% Hoeffding bars,
    median final loss and median μ(t_∞)."""
    g = runs.groupby("cell_id", sort=False)
    pts = g.agg(
        runs=("success", "size"),
        successes=("success", "sum"),
        median_final_loss=("final_loss", "median"),
        median_mu_tail=("mu_tail", "median"),
    )
    first = g[knobs + ["n"]].first() if "n" not in knobs else g[knobs].first()
    pts = first.join(pts).reset_index()
    pts["fraction"] = pts["successes"] / pts["runs"]
    lo, hi = success_bars(pts["successes"].to_numpy(), pts["runs"].to_numpy())
    pts["bar_low"], pts["bar_high"] = lo, hi
    return pts


def run_sweep_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Run the sweep described by ``path`` into ``out``; return the per-cell points table."""
    from shallowflow.plots import plot_success, save

    spec = load_sweep(path)
    cells = sweep_cells(spec)
    runs = run_cells(
        cells,
        out,
        resume=resume,
        executor=executor,
        progress=progress,
        ray_address=ray_address,
        overwrite=overwrite,
    )
    varied = [k for k in (spec.get("grid") or {}) if k not in TAGS]
    points = sweep_points(runs, varied)
    write_parquet_atomic(points, Path(out) / "points.parquet")
    x = "n" if "n" in varied or not varied else varied[0]
    plot_pts = points.rename(columns={k: f"knob:{k}" for k in varied if k != x})
    if x not in plot_pts:
        plot_pts[x] = np.arange(len(plot_pts))
    save(
        plot_success(plot_pts, x=x, title=str(spec.get("name", Path(path).stem))),
        Path(out) / "sweep",
    )
    return points
