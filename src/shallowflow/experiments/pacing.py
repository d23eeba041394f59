"""Calls sized by time, and the progress they report.

A long group of cells (one compiled bucket) sent as one call shows no progress, writes
nothing until it returns, and loses everything when killed. The :class:`Pacer` cuts
each group into calls of about ``seconds`` of expected work: the first call of a group
is one cell, which measures the group's throughput (expected work per second; the
work of a cell is any unit comparable within its group, e.g. the engine's
horizon-weighted work, :func:`shallowflow.planning.cell_work`); each later call takes the
next cells whose work fits ``seconds`` at the throughput measured so far (at least one
cell, at most ``max_batch``). A call holds whole cells, so each cell is written as soon
as its call returns and a kill loses only the call in flight. The sizes of the calls
never change a number: each cell's runs are computed as they would be alone.

After each call the runner reports a :class:`SweepProgress` to a callback (the edge
draws it: :func:`rich_bar`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

from shallowflow.experiments.cells import Cell

__all__ = ["CALL_SECONDS", "Pacer", "SweepProgress", "rich_bar"]

CALL_SECONDS = 60.0  # expected work of one call at most (a kill loses at most this)
_clock = time.perf_counter  # the wall clock the calls are timed by (a test replaces it)

Group = tuple[Hashable, list[Cell], list[float]]  # label, cells, their expected work


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands after a call (or at its start, ``calls == 0``)."""

    runs_done: int
    runs_total: int
    cells_done: int
    cells_total: int
    calls: int  # calls finished in this session
    eta_seconds: float | None  # the work left over the measured throughput (None: unknown)

    @property
    def runs_left(self) -> int:
        """Runs still to simulate."""
        return self.runs_total - self.runs_done


ProgressCallback = Callable[[SweepProgress], None]


def cell_runs(cell: Cell) -> int:
    """The runs of a cell: its ``runs`` knob (1 without one)."""
    return int(cell.get("runs", 1))


class Pacer:
    """Yields each group's calls (module doc); :meth:`finished` times each one."""

    def __init__(self, groups: Sequence[Group], seconds: float | None, max_batch: int | None):
        self.groups = list(groups)
        self.seconds = seconds
        self.max_batch = max_batch
        self.work_left = sum(sum(w) for _, _, w in self.groups)
        self._sent: list[tuple[int, float, float]] = []  # (group, work, start) per call
        self._timed: list[tuple[int, float, float]] = []  # (group, work, seconds)
        self._group = 0

    def rate(self) -> float | None:
        """Expected work per second in the current group: its calls after the first
        (which pays the compilation), or the first alone."""
        calls = [(w, t) for g, w, t in self._timed if g == self._group]
        calls = calls[1:] or calls
        seconds = sum(t for _, t in calls)
        return sum(w for w, _ in calls) / seconds if calls and seconds > 0 else None

    def _take(self, work: Sequence[float]) -> int:
        cap = min(len(work), self.max_batch or len(work))
        if self.seconds is None:
            return cap
        rate = self.rate()
        if rate is None:
            return 1
        k, total = 1, work[0]
        while k < cap and total + work[k] <= rate * self.seconds:
            total += work[k]
            k += 1
        return k

    def calls(self) -> Iterator[tuple[Hashable, list[Cell]]]:
        """The calls, lazily: each is sized when it is asked for, from the calls that
        have finished by then (all of them, with an executor that runs one at a time)."""
        for group, (label, cells, work) in enumerate(self.groups):
            self._group = group
            lo = 0
            while lo < len(cells):
                k = self._take(work[lo:])
                self._sent.append((group, sum(work[lo : lo + k]), _clock()))
                yield label, cells[lo : lo + k]
                lo += k

    def finished(self, index: int) -> None:
        """Record that call ``index`` (in the order yielded) has returned."""
        group, work, start = self._sent[index]
        self._timed.append((group, work, _clock() - start))
        self.work_left -= work

    def eta(self) -> float | None:
        """Seconds left: the work left over the current group's throughput."""
        rate = self.rate()
        return None if rate is None else max(self.work_left, 0.0) / rate


@contextlib.contextmanager
def rich_bar(enabled: bool) -> Iterator[ProgressCallback]:
    """A progress bar on stderr (runs done of all, cells, elapsed, ETA), drawn only on
    a terminal; yields the callback that moves it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs, {task.fields[cells]} cells"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        console=console,
        disable=not (enabled and console.is_terminal and not console.is_dumb_terminal),
    )
    task = bar.add_task("sweep", total=None, cells="", eta="?")

    def update(p: SweepProgress) -> None:
        left = p.eta_seconds
        eta = "?" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        cells = f"{p.cells_done}/{p.cells_total}"
        bar.update(task, completed=p.runs_done, total=p.runs_total, cells=cells, eta=eta)

    with bar:
        yield update
