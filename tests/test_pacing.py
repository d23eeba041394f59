"""Calls sized by time (shallowflow.experiments.pacing): the sizes follow the measured
throughput, the progress counts are right, a kill loses only the call in flight, and
the sizes of the calls change no number and compile nothing new."""

from __future__ import annotations

import pandas.testing as pdt
import pytest

from shallowflow.compilation import CompileCounter
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments import pacing
from shallowflow.experiments._toy import simulate_toy_batch, toy_cells
from shallowflow.experiments.batch import cells_work, plan_cells, run_cells, simulate_batch
from shallowflow.experiments.cells import Cell
from shallowflow.experiments.runner import run_sweep


class Clock:
    """A fake wall clock, moved by the fake simulator."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def by_d(cells, max_batch=None):
    return [c["d"] for c in cells]


class Killed(Exception):
    pass


def timed_simulator(clock: Clock, sizes: list[int], kill_at: int | None = None):
    """Each run costs 1 s of fake time, the first call 100 s more (its compilation);
    call number ``kill_at`` (from 1) dies in flight."""

    def simulate(batch, group=None):
        if kill_at is not None and len(sizes) + 1 == kill_at:
            raise Killed
        clock.now += (0.0 if sizes else 100.0) + sum(c["runs"] for c in batch)
        sizes.append(len(batch))
        return simulate_toy_batch(batch)

    return simulate


def test_calls_follow_the_measured_throughput_and_the_counts_are_right(tmp_path, monkeypatch):
    """Two groups of 6 cells of 7 runs, a budget of 20 s at 1 s per run. The first call
    of a group is one cell; the second is sized by the first's throughput, which paid
    100 s of compilation (1 cell); later ones by the calls after the first (2 cells
    = 14 s; 3 would be 21 s). After each call the runs done grow by that call's runs
    and the ETA is the runs left (1 run per second)."""
    clock = Clock()
    monkeypatch.setattr(pacing, "_clock", clock)
    sizes: list[int] = []
    events: list[pacing.SweepProgress] = []
    cells = toy_cells(12)
    run_sweep(
        cells,
        timed_simulator(clock, sizes),
        tmp_path,
        plan=by_d,
        call_seconds=20.0,
        progress=events.append,
    )
    assert sizes == [1, 1, 2, 2, 1, 2, 2, 1]
    assert [e.calls for e in events] == list(range(len(sizes) + 1))
    done = [0]
    for k in sizes:
        done.append(done[-1] + 7 * k)
    assert [e.runs_done for e in events] == done
    assert all(e.runs_total == 84 and e.cells_total == 12 for e in events)
    assert [e.cells_done for e in events] == [d // 7 for d in done]
    assert events[0].eta_seconds is None
    assert events[1].eta_seconds == pytest.approx(77 * 107 / 7)  # the compiling call's rate
    assert [e.eta_seconds for e in events[2:]] == pytest.approx([e.runs_left for e in events[2:]])
    assert events[-1].runs_left == 0 and events[-1].eta_seconds == 0.0


def test_a_killed_sweep_resumes_recomputing_only_the_call_in_flight(tmp_path, monkeypatch):
    """Killed during its 4th call (2 cells, after 1 + 1 + 2 cells were written), the
    sweep keeps 4 cells; resumed, it simulates the 8 others only (the call in flight
    and those never started), its counts start at the finished cells, and its table is
    the uninterrupted one."""
    clock = Clock()
    monkeypatch.setattr(pacing, "_clock", clock)
    cells = toy_cells(12)
    options = dict(plan=by_d, call_seconds=20.0)
    with pytest.raises(Killed):
        run_sweep(cells, timed_simulator(clock, [], kill_at=4), tmp_path, progress=False, **options)
    assert len(list((tmp_path / "cells").glob("*.parquet"))) == 4
    simulated: list[str] = []

    def counting(batch, group=None):
        simulated.extend(Cell(c).cell_id for c in batch)
        return simulate_toy_batch(batch)

    events: list[pacing.SweepProgress] = []
    resumed = run_sweep(cells, counting, tmp_path, resume=True, progress=events.append, **options)
    assert len(simulated) == len(set(simulated)) == 8
    assert (events[0].runs_done, events[0].cells_done) == (28, 4)
    assert (events[-1].runs_done, events[-1].cells_done) == (84, 12)
    whole = run_sweep(cells, simulate_toy_batch, tmp_path / "whole", progress=False)
    pdt.assert_frame_equal(resumed, whole)


def test_a_callback_that_raises_stops_the_sweep_after_writing_its_call(tmp_path):
    """The edge may stop a sweep from its progress callback (a user's interrupt): the
    call it reports on is already written."""

    def stop_after_two(p: pacing.SweepProgress) -> None:
        if p.calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(toy_cells(5), simulate_toy_batch, tmp_path, progress=stop_after_two)
    assert len(list((tmp_path / "cells").glob("*.parquet"))) == 2


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "60"])
def test_call_seconds_must_be_a_positive_number(tmp_path, bad):
    with pytest.raises(ShallowflowInputError, match="call_seconds.*> 0"):
        run_sweep(toy_cells(1), simulate_toy_batch, tmp_path / "out", call_seconds=bad)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the engine

ENGINE_CELLS = [
    dict(figure="pacing", n=n, d=9, runs=3, record=5, seed=0, horizon=60.0)
    for n in (14, 17, 19, 21)
]


def test_engine_calls_of_one_cell_give_the_one_call_table_and_compile_nothing_new(tmp_path):
    """The engine's sweep in calls of one cell each (a budget of 1 ns) against one call
    for the whole bucket: the same compiled shape (the bucket's), so no program is
    lowered after the first call, and every number equal bit for bit (each run is the
    same program on the same values, whatever the call it shares)."""
    assert len(set(plan_cells(ENGINE_CELLS))) == 1
    lowered: list[int] = []
    with CompileCounter() as counter:
        split = run_cells(
            ENGINE_CELLS,
            tmp_path / "split",
            call_seconds=1e-9,
            progress=lambda p: lowered.append(counter.programs),
        )
    assert len(lowered) == 1 + len(ENGINE_CELLS)  # one call per cell
    assert lowered[-1] == lowered[1]
    whole = run_cells(ENGINE_CELLS, tmp_path / "whole", call_seconds=None, progress=False)
    pdt.assert_frame_equal(split, whole, check_exact=True)


def test_engine_sweep_killed_in_a_call_resumes_that_call_only(tmp_path):
    """Killed in its third call, the engine's sweep keeps the first two cells; resumed,
    it simulates the runs of the other two only, and gives the uninterrupted table."""
    calls: list[int] = []

    def dies_third(batch, group=None):
        if len(calls) == 2:
            raise Killed
        calls.append(sum(c["runs"] for c in batch))
        return simulate_batch(batch, group)

    options = dict(plan=plan_cells, work=cells_work, call_seconds=1e-9)
    with pytest.raises(Killed):
        run_sweep(ENGINE_CELLS, dies_third, tmp_path, progress=False, **options)
    calls.clear()
    resumed = run_sweep(ENGINE_CELLS, dies_third, tmp_path, resume=True, progress=False, **options)
    assert sum(calls) == 2 * 3
    whole = run_cells(ENGINE_CELLS, tmp_path / "whole", call_seconds=None, progress=False)
    pdt.assert_frame_equal(resumed, whole, check_exact=True)
