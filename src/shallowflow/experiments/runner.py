"""The generic sweep runner: cells in, one table of runs out, resumable.

A sweep is a list of :class:`Cell` (one point of a protocol: a frozen
mapping of JSON knobs such as ``{"figure": "fig3", "n": 1700, "runs": 80,
"seed": 0}``). :func:`run_sweep` simulates each cell once with a
user-supplied batch simulator and stores it under ``out_dir``::

    out_dir/sweep.json              manifest: the cells, in order
    out_dir/cells/<cell_id>.parquet one file per finished cell
    out_dir/runs.parquet            all cells concatenated, in cell order

Each file is written atomically (:mod:`shallowflow.storage`), so a kill
loses at most the cells in flight, and ``resume=True`` picks up where it
stopped. Results do not depend on execution order or executor as long as the
simulator draws its randomness from :func:`cell_seed`.

Batching: a ``plan`` labels every cell of the sweep — all of them, finished or not,
so that a resumed sweep groups (and, for the engine, pads) its cells as the first
attempt did — and the cells still to run are sent group by group, with their label:
each group in one call, in batches of ``max_batch`` cells, or in calls of about
``call_seconds`` of expected work (:mod:`shallowflow.experiments.pacing`), so that
progress moves and a kill loses at most one call.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.cells import ID_COLUMN as _ID_COLUMN
from shallowflow.experiments.cells import Cell
from shallowflow.experiments.executors import Batch, BatchSimulator, Executor, make_executor
from shallowflow.experiments.pacing import (
    Group,
    Pacer,
    ProgressCallback,
    SweepProgress,
    cell_runs,
    rich_bar,
)
from shallowflow.storage import (
    TMP_SUFFIX,
    directory_lock,
    keep_finished,
    read_json,
    read_parquet,
    remove_temporaries,
    write_json_atomic,
    write_parquet_atomic,
)

__all__ = ["MANIFEST_FORMAT", "run_sweep", "with_knobs"]

MANIFEST_FORMAT = "shallowflow-sweep/1"


# --- sweep directory ----------------------------------------------------------------------


def _as_cells(cells: Iterable[Cell | Mapping[str, Any]]) -> list[Cell]:
    if isinstance(cells, Mapping | str):
        raise ShallowflowInputError("cells", "expected a list of cells (mappings of knobs)")
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise ShallowflowInputError("cells", f"cell {i} is not a mapping: {cell!r}")
        out.append(cell if isinstance(cell, Cell) else Cell(cell))
    if not out:
        raise ShallowflowInputError("cells", "the sweep has no cells; give at least one")
    seen: dict[str, int] = {}
    for i, cell in enumerate(out):
        if cell.cell_id in seen:
            raise ShallowflowInputError(
                "cells", f"cells {seen[cell.cell_id]} and {i} are identical: {cell!r}"
            )
        seen[cell.cell_id] = i
    return out


def _manifest(cells: Sequence[Cell]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "cells": [{"cell_id": c.cell_id, "knobs": json.loads(c.canonical_json)} for c in cells],
    }


def _cell_path(out_dir: Path, cell_id: str) -> Path:
    return out_dir / "cells" / f"{cell_id}.parquet"


def _prepare(
    out_dir: Path, manifest: dict[str, Any], resume: bool, overwrite: bool = False
) -> None:
    """Check ``out_dir`` against ``manifest``; clear old results unless resuming (and
    only with ``overwrite``: finished cells are a user's results)."""
    manifest_path = out_dir / "sweep.json"
    others = [
        p
        for p in out_dir.iterdir()
        if p.name != ".lock" and not (p.name.startswith(".") and p.name.endswith(TMP_SUFFIX))
    ]
    if others and not manifest_path.exists():
        raise ShallowflowInputError(
            "out_dir", f"{str(out_dir)!r} is not empty and is not a sweep directory (no sweep.json)"
        )
    if manifest_path.exists() and not resume:
        try:
            old = read_json(manifest_path)
        except (OSError, ValueError):
            old = None
        if old != manifest:
            raise ShallowflowInputError(
                "out_dir",
                f"{str(out_dir)!r} holds a different sweep; choose another out_dir, "
                "or pass resume=True (--resume) to reuse its finished cells",
            )
    cells_dir = out_dir / "cells"
    finished = list(cells_dir.glob("*.parquet")) if cells_dir.is_dir() else []
    if finished and not resume and not overwrite:
        what = f"{len(finished)} finished cells of this sweep"
        keep_finished(out_dir, what, param="out_dir", resumable=True)
    write_json_atomic(manifest, manifest_path)
    cells_dir.mkdir(exist_ok=True)
    remove_temporaries(cells_dir)
    remove_temporaries(out_dir)
    with contextlib.suppress(FileNotFoundError):  # exists only once its sweep has finished
        (out_dir / "runs.parquet").unlink()
    if not resume:
        for path in cells_dir.glob("*.parquet"):
            path.unlink()


def _is_valid(path: Path, cell_id: str) -> bool:
    try:
        df = read_parquet(path)
    except Exception:
        return False
    return _ID_COLUMN in df.columns and bool((df[_ID_COLUMN] == cell_id).all())


def _finished(out_dir: Path, cells: Sequence[Cell]) -> set[str]:
    """Ids of cells with a readable file; unreadable (corrupt) files are deleted."""
    done = set()
    for cell in cells:
        path = _cell_path(out_dir, cell.cell_id)
        if not path.exists():
            continue
        if _is_valid(path, cell.cell_id):
            done.add(cell.cell_id)
        else:
            path.unlink()
    return done


# --- batching and results -----------------------------------------------------------------


Plan = Callable[[Sequence[Cell], "int | None"], Sequence[Hashable]]
Work = Callable[[Sequence[Cell], Sequence[Any]], Sequence[float]]  # cells, their buckets


def _groups(
    cells: Sequence[Cell], todo: set[str], labels: Sequence[Hashable] | None, work: Work | None
) -> list[Group]:
    """The cells in ``todo`` grouped by label (first-appearance order), with their
    expected work (default: their runs); without labels, each cell alone."""
    costs = list(work(cells, labels)) if work is not None and labels is not None else None
    if costs is None:
        costs = [float(cell_runs(c)) for c in cells]
    if labels is None:
        return [(None, [c], [w]) for c, w in zip(cells, costs, strict=True) if c.cell_id in todo]
    groups: dict[Hashable, Group] = {}
    for cell, label, w in zip(cells, labels, costs, strict=True):
        if cell.cell_id in todo:
            group = groups.setdefault(label, (label, [], []))
            group[1].append(cell)
            group[2].append(float(w))
    return list(groups.values())


def _knob_column(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, tuple) else value


def with_knobs(df: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """``cell_id`` and the knobs as leading columns (knob values override same-named columns)."""
    rest = df.drop(columns=[c for c in df.columns if c in cell or c == _ID_COLUMN])
    head = {_ID_COLUMN: cell.cell_id} | {k: _knob_column(v) for k, v in cell.items()}
    front = pd.DataFrame({k: [v] * len(df) for k, v in head.items()}, index=rest.index)
    return pd.concat([front, rest], axis=1).reset_index(drop=True)


def _check_results(results: Any, batch: Sequence[Cell]) -> list[pd.DataFrame]:
    if not isinstance(results, list | tuple) or len(results) != len(batch):
        raise ShallowflowInputError(
            "simulate_batch",
            f"must return a list of {len(batch)} DataFrames (one per cell), got {results!r:.200}",
        )
    for cell, df in zip(batch, results, strict=True):
        if not isinstance(df, pd.DataFrame):
            raise ShallowflowInputError(
                "simulate_batch", f"returned {type(df).__name__} for cell {cell!r}, not a DataFrame"
            )
    return list(results)


def _execute(
    runner: Executor,
    simulate_batch: BatchSimulator,
    pacer: Pacer,
    out_dir: Path,
    report: Callable[[int, int], None],
) -> None:
    """Run the pacer's calls and write each cell's file as soon as its call returns;
    ``report(cells, runs)`` after each call."""
    calls: list[list[Cell]] = []

    def batches() -> Iterator[Batch]:
        for label, cells in pacer.calls():
            calls.append(cells)
            yield Batch([c.to_dict() for c in cells], label)

    finished = runner.run(simulate_batch, batches())
    try:
        for index, results in finished:
            pacer.finished(index)
            batch = calls[index]
            for cell, df in zip(batch, _check_results(results, batch), strict=True):
                write_parquet_atomic(with_knobs(df, cell), _cell_path(out_dir, cell.cell_id))
            report(len(batch), sum(cell_runs(c) for c in batch))
    finally:
        close = getattr(finished, "close", None)
        if close is not None:  # stops a generator's remaining work (e.g. cancels Ray tasks)
            close()


# --- the runner ---------------------------------------------------------------------------


def run_sweep(
    cells: Iterable[Cell | Mapping[str, Any]],
    simulate_batch: BatchSimulator,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    executor: str | Executor = "local",
    plan: Plan | None = None,
    max_batch: int | None = None,
    progress: bool | ProgressCallback = True,
    ray_address: str | None = None,
    overwrite: bool = False,
    work: Work | None = None,
    call_seconds: float | None = None,
) -> pd.DataFrame:
    """Simulate every cell once, storing each under ``out_dir``; return all runs.

    ``plan(cells, max_batch)`` labels every cell (all of them, finished or not); the
    cells to run that share a label go to ``simulate_batch(cells, group=label)`` in
    one call, or in calls of at most ``max_batch`` cells (default: the whole group;
    32 with ``executor="ray"``, so that a cluster shares the work), or, with
    ``call_seconds`` (not with Ray), in calls of about that many seconds of expected
    work: ``work(cells, labels)`` per cell, default its runs
    (:mod:`shallowflow.experiments.pacing`). Without a plan each cell is a call
    ``simulate_batch([cell])``. ``simulate_batch`` returns one table of runs per cell,
    in order. With ``executor="ray"`` it must be picklable by reference: a
    module-level function, or a ``functools.partial`` of one.

    ``progress``: a bar on a terminal (True), none (False), or a callback given a
    :class:`~shallowflow.experiments.pacing.SweepProgress` at the start and after each
    call (runs are each cell's ``runs`` knob, 1 without one).

    The returned table (also written to ``out_dir/runs.parquet``) has columns
    ``cell_id``, the knobs (sequence knobs as JSON strings), then the
    simulator's columns, cells in the given order. ``resume=True`` reuses the
    readable cell files already in ``out_dir``; without it, ``out_dir`` must be
    empty, new, or hold the same sweep with no finished cell, unless
    ``overwrite=True`` (then they are recomputed).
    """
    cell_list = _as_cells(cells)
    if max_batch is not None and (
        isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1
    ):
        raise ShallowflowInputError("max_batch", f"must be an integer >= 1, got {max_batch!r}")
    _check_seconds(call_seconds)
    if plan is not None and not callable(plan):
        raise ShallowflowInputError("plan", f"must be callable or None, got {plan!r}")
    if not callable(simulate_batch):
        raise ShallowflowInputError("simulate_batch", "must be callable")
    runner = make_executor(executor, ray_address=ray_address)
    if executor == "ray":  # a cluster runs calls side by side: no timing one by one
        max_batch, call_seconds = max_batch or 32, None

    labels = None if plan is None else list(plan(cell_list, max_batch))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ShallowflowInputError("out_dir", f"{str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    with directory_lock(out):
        _prepare(out, _manifest(cell_list), resume, overwrite)
        done = _finished(out, cell_list) if resume else set()
        todo = {c.cell_id for c in cell_list} - done
        pacer = Pacer(_groups(cell_list, todo, labels, work), call_seconds, max_batch)
        with _reporter(progress) as show:
            count = _Count(cell_list, done, pacer, show)
            _execute(runner, simulate_batch, pacer, out, count.add)
        frames = [read_parquet(_cell_path(out, c.cell_id)) for c in cell_list]
        runs = pd.concat(frames, ignore_index=True)
        write_parquet_atomic(runs, out / "runs.parquet")
    return runs


def _check_seconds(call_seconds: float | None) -> None:
    if call_seconds is None:
        return
    ok = isinstance(call_seconds, int | float) and not isinstance(call_seconds, bool)
    if not ok or not call_seconds > 0 or call_seconds == float("inf"):
        raise ShallowflowInputError(
            "call_seconds", f"must be a finite number of seconds > 0, or None; got {call_seconds!r}"
        )


def _reporter(progress: bool | ProgressCallback) -> contextlib.AbstractContextManager:
    if callable(progress):
        return contextlib.nullcontext(progress)
    return rich_bar(bool(progress))


class _Count:
    """Runs and cells done, told to ``show`` at the start and after each call."""

    def __init__(self, cells: Sequence[Cell], done: set[str], pacer: Pacer, show):
        self.cells = (sum(c.cell_id in done for c in cells), len(cells))
        self.runs = (
            sum(cell_runs(c) for c in cells if c.cell_id in done),
            sum(cell_runs(c) for c in cells),
        )
        self.calls, self.pacer, self.show = 0, pacer, show
        self._show()

    def add(self, cells: int, runs: int) -> None:
        self.cells = (self.cells[0] + cells, self.cells[1])
        self.runs = (self.runs[0] + runs, self.runs[1])
        self.calls += 1
        self._show()

    def _show(self) -> None:
        eta = self.pacer.eta() if self.runs[0] < self.runs[1] else 0.0
        self.show(SweepProgress(*self.runs, *self.cells, self.calls, eta))
