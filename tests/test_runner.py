"""Tests of the sweep runner, its executors and the atomic storage helpers."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments._toy import simulate_toy_batch, toy_cells
from shallowflow.experiments.cells import Cell, cell_seed
from shallowflow.experiments.executors import LocalExecutor, RayExecutor, make_executor
from shallowflow.experiments.runner import run_sweep
from shallowflow.storage import read_json, read_parquet, write_json_atomic, write_parquet_atomic

SCRIPT = Path(__file__).with_name("_sweep_script.py")


def by_d(cells, max_batch=None):
    """A plan: cells grouped by their d."""
    return [c["d"] for c in cells]


def cell_files(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "cells").glob("*.parquet"))


# --- cells and seeds ----------------------------------------------------------------------


def test_cell_id_is_sha1_of_canonical_json():
    cell = Cell({"n": 1700, "figure": "fig3"})
    expected = hashlib.sha1(b'{"figure":"fig3","n":1700}').hexdigest()[:16]
    assert cell.cell_id == expected
    assert Cell(figure="fig3", n=1700).cell_id == expected


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(), max_size=6))
def test_cell_id_ignores_key_order(knobs):
    reordered = dict(reversed(list(knobs.items())))
    assert Cell(knobs).cell_id == Cell(reordered).cell_id
    assert Cell(knobs) == Cell(reordered) == reordered


def test_cell_is_a_frozen_mapping_with_numpy_and_sequence_knobs():
    cell = Cell({"n": np.int64(3), "eta": np.float64(1.0), "grid": [1, 2], "ok": np.bool_(True)})
    assert cell == {"n": 3, "eta": 1.0, "grid": (1, 2), "ok": True}
    assert Cell({"n": 3, "eta": 1.0, "grid": (1, 2), "ok": True}).cell_id == cell.cell_id
    assert Cell({"n": 1}).cell_id != Cell({"n": 1.0}).cell_id
    with pytest.raises(TypeError, match="does not support item assignment"):
        cell["n"] = 4  # type: ignore[index]
    assert {cell: 1}[Cell(dict(cell))] == 1


def test_cell_seed_is_deterministic_and_order_free():
    cells = [Cell(c) for c in toy_cells(20)]
    seeds = {c.cell_id: cell_seed(7, c) for c in cells}
    for c in reversed(cells):
        assert cell_seed(7, c) == seeds[c.cell_id] == cell_seed(7, c.cell_id)
        assert cell_seed(7, dict(c)) == seeds[c.cell_id]
        assert 0 <= seeds[c.cell_id] < 2**32
    assert len(set(seeds.values())) == len(cells)
    assert cell_seed(8, cells[0]) != seeds[cells[0].cell_id]


def test_results_do_not_depend_on_cell_order(tmp_path):
    cells = toy_cells(6)
    forward = run_sweep(cells, simulate_toy_batch, tmp_path / "a", progress=False)
    backward = run_sweep(cells[::-1], simulate_toy_batch, tmp_path / "b", progress=False)
    key = ["cell_id", "run"]
    pdt.assert_frame_equal(
        forward.sort_values(key, ignore_index=True), backward.sort_values(key, ignore_index=True)
    )


# --- storage and layout -------------------------------------------------------------------


def test_storage_round_trips(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan], "c": ["x", "y"]})
    write_parquet_atomic(df, tmp_path / "sub" / "t.parquet")
    pdt.assert_frame_equal(read_parquet(tmp_path / "sub" / "t.parquet"), df)
    write_json_atomic({"b": [1, 2], "a": None}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"a": None, "b": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "sub"]


def test_sweep_layout_columns_and_order(tmp_path):
    cells = toy_cells(4, runs=3) + [{"n": 1, "runs": 2, "seed": 0, "grid": [1, 2]}]
    runs = run_sweep(cells, simulate_toy_batch, tmp_path, progress=True)
    assert list(runs.columns[:6]) == ["cell_id", "d", "figure", "n", "runs", "seed"]
    assert list(runs.columns[6:]) == ["run", "loss", "success", "grid"]  # union of columns
    assert runs["cell_id"].drop_duplicates().tolist() == [Cell(c).cell_id for c in cells]
    assert len(runs) == 4 * 3 + 2 and not runs.duplicated(["cell_id", "run"]).any()
    assert runs["grid"].iloc[-1] == "[1,2]"
    pdt.assert_frame_equal(read_parquet(tmp_path / "runs.parquet"), runs)
    manifest = read_json(tmp_path / "sweep.json")
    assert [c["cell_id"] for c in manifest["cells"]] == [Cell(c).cell_id for c in cells]
    assert len(cell_files(tmp_path)) == len(cells)


# --- resume -------------------------------------------------------------------------------


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    n_cells = 12
    reference = run_sweep(toy_cells(n_cells), simulate_toy_batch, tmp_path / "ref", progress=False)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), str(n_cells), "0.25"])
    try:
        deadline = time.monotonic() + 30
        while len(cell_files(out)) < 3 if out.exists() else True:
            assert proc.poll() is None, "the sweep finished before it could be killed"
            assert time.monotonic() < deadline, "no cell file appeared in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_done = len(cell_files(out))
    assert 3 <= n_done < n_cells
    assert not (out / "runs.parquet").exists()
    for path in cell_files(out):  # every file visible at its final name is complete
        assert len(read_parquet(path)) == 7

    resumed = run_sweep(toy_cells(n_cells), simulate_toy_batch, out, resume=True, progress=False)
    pdt.assert_frame_equal(resumed, reference)
    assert not resumed.duplicated(["cell_id", "run"]).any()
    pdt.assert_frame_equal(read_parquet(out / "runs.parquet"), reference)
    assert not list((out / "cells").glob(".*.tmp"))


def test_resume_recomputes_corrupt_cells_and_only_those(tmp_path):
    cells = toy_cells(5)
    reference = run_sweep(cells, simulate_toy_batch, tmp_path, progress=False)
    files = {p.stem: p for p in cell_files(tmp_path)}
    ids = [Cell(c).cell_id for c in cells]
    files[ids[1]].write_bytes(b"not parquet at all")
    data = files[ids[3]].read_bytes()
    files[ids[3]].write_bytes(data[: len(data) // 2])  # a truncated file
    (tmp_path / "cells" / f".{ids[4]}.parquet.abc.tmp").write_bytes(b"partial")
    seen: list[str] = []

    def recording(batch):
        seen.extend(Cell(c).cell_id for c in batch)
        return simulate_toy_batch(batch)

    resumed = run_sweep(cells, recording, tmp_path, resume=True, progress=False)
    assert sorted(seen) == sorted([ids[1], ids[3]])
    pdt.assert_frame_equal(resumed, reference)
    assert not list((tmp_path / "cells").glob(".*.tmp"))


def test_a_failing_cell_keeps_the_finished_ones(tmp_path):
    cells = toy_cells(5)

    def flaky(batch):
        if batch[0]["n"] == 12:
            raise RuntimeError("boom")
        return simulate_toy_batch(batch)

    with pytest.raises(RuntimeError, match="boom"):
        run_sweep(cells, flaky, tmp_path, progress=False)
    assert [p.stem for p in cell_files(tmp_path)] == sorted(Cell(c).cell_id for c in cells[:2])
    assert not (tmp_path / "runs.parquet").exists()
    resumed = run_sweep(cells, simulate_toy_batch, tmp_path, resume=True, progress=False)
    fresh = run_sweep(cells, simulate_toy_batch, tmp_path / "fresh", progress=False)
    pdt.assert_frame_equal(resumed, fresh)


def test_resume_of_finished_sweep_computes_nothing(tmp_path):
    cells = toy_cells(3)
    reference = run_sweep(cells, simulate_toy_batch, tmp_path, progress=False)

    def fail(batch):
        raise AssertionError("nothing should be recomputed")

    pdt.assert_frame_equal(run_sweep(cells, fail, tmp_path, resume=True), reference)


def test_resume_with_more_cells_reuses_finished_ones(tmp_path):
    run_sweep(toy_cells(3), simulate_toy_batch, tmp_path, progress=False)
    seen: list[dict] = []

    def recording(batch):
        seen.extend(batch)
        return simulate_toy_batch(batch)

    grown = run_sweep(toy_cells(5), recording, tmp_path, resume=True, progress=False)
    assert seen == toy_cells(5)[3:]
    fresh = run_sweep(toy_cells(5), simulate_toy_batch, tmp_path / "fresh", progress=False)
    pdt.assert_frame_equal(grown, fresh)


def test_same_manifest_recomputes_all_only_with_overwrite(tmp_path):
    cells = toy_cells(3)
    reference = run_sweep(cells, simulate_toy_batch, tmp_path, progress=False)
    seen: list[dict] = []

    def recording(batch):
        seen.extend(batch)
        return simulate_toy_batch(batch)

    # finished cells are a user's results: neither --resume nor --overwrite is refused
    with pytest.raises(ShallowflowInputError, match=r"out_dir.*3 finished cells.*--overwrite"):
        run_sweep(cells, recording, tmp_path, progress=False)
    assert seen == [] and len(cell_files(tmp_path)) == 3
    again = run_sweep(cells, recording, tmp_path, progress=False, overwrite=True)
    assert seen == cells
    pdt.assert_frame_equal(again, reference)


def test_different_manifest_without_resume_is_an_error(tmp_path):
    run_sweep(toy_cells(3), simulate_toy_batch, tmp_path, progress=False)
    with pytest.raises(ShallowflowInputError, match=r"out_dir.*resume") as info:
        run_sweep(toy_cells(4), simulate_toy_batch, tmp_path, progress=False)
    assert str(tmp_path) in str(info.value)
    assert len(cell_files(tmp_path)) == 3


def test_foreign_non_empty_out_dir_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ShallowflowInputError, match="not a sweep directory"):
        run_sweep(toy_cells(2), simulate_toy_batch, tmp_path, resume=True, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_second_runner_on_the_same_out_dir_is_refused(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    with open(tmp_path / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ShallowflowInputError, match="another shallowflow command is running"):
            run_sweep(toy_cells(2), simulate_toy_batch, tmp_path, progress=False)


# --- batching -----------------------------------------------------------------------------


def test_batches_group_by_key_and_respect_max_batch(tmp_path):
    cells = toy_cells(11)
    batches: list[list[dict]] = []

    def recording(batch, group=None):
        assert all(c["d"] == group for c in batch)
        batches.append(batch)
        return simulate_toy_batch(batch)

    batched = run_sweep(cells, recording, tmp_path / "b", plan=by_d, max_batch=3, progress=False)
    assert all(1 <= len(b) <= 3 for b in batches)
    assert all(len({c["d"] for c in b}) == 1 for b in batches)
    assert sorted(len(b) for b in batches) == [2, 3, 3, 3]  # d=2: 6 cells, d=3: 5 cells
    assert sorted(Cell(c).cell_id for b in batches for c in b) == sorted(
        Cell(c).cell_id for c in cells
    )
    single = run_sweep(cells, simulate_toy_batch, tmp_path / "s", progress=False)
    pdt.assert_frame_equal(batched, single)


def test_simulator_returning_wrong_number_of_tables_is_an_error(tmp_path):
    with pytest.raises(ShallowflowInputError, match="simulate_batch"):
        run_sweep(toy_cells(2), lambda batch: [], tmp_path / "a", progress=False)
    with pytest.raises(ShallowflowInputError, match="simulate_batch"):
        run_sweep(toy_cells(1), lambda batch: [{"a": 1}], tmp_path / "b", progress=False)


# --- executors ----------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_executor_starts_and_stops_its_own_session(tmp_path):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    executor = RayExecutor(num_cpus=1, object_store_memory=100 * 1024**2)
    cells = toy_cells(3)
    remote = run_sweep(cells, simulate_toy_batch, tmp_path / "ray", executor=executor)
    assert not ray.is_initialized()
    local = run_sweep(cells, simulate_toy_batch, tmp_path / "local", progress=False)
    pdt.assert_frame_equal(remote, local)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
        ignore_reinit_error=True,
    )
    yield ray
    ray.shutdown()


def test_local_and_ray_executors_give_identical_tables(tmp_path, ray_session):
    cells = toy_cells(8)
    local = run_sweep(cells, simulate_toy_batch, tmp_path / "local", progress=False)
    remote = run_sweep(
        cells,
        simulate_toy_batch,
        tmp_path / "ray",
        executor="ray",
        plan=by_d,
        max_batch=3,
        progress=False,
    )
    pdt.assert_frame_equal(remote, local)
    assert ray_session.is_initialized()  # a session we did not start is left running


def test_missing_ray_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ShallowflowInputError, match=r'pip install -e "\.\[ray\]"'):
        make_executor("ray")


def test_make_executor():
    assert isinstance(make_executor("local"), LocalExecutor)
    executor = LocalExecutor()
    assert make_executor(executor) is executor
    with pytest.raises(ShallowflowInputError, match="ray_address"):
        make_executor("local", ray_address="ray://head:10001")


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "kwargs", "param"),
    [
        ([], {}, "cells"),
        ([{"n": object()}], {}, "cells"),
        ([{"n": float("nan")}], {}, "cells"),
        ([{"n": 1}, {"n": 1}], {}, "cells"),
        ([{"cell_id": "x"}], {}, "cells"),
        ({"n": 1}, {}, "cells"),
        ([{"n": 1}], {"executor": "dask"}, "executor"),
        ([{"n": 1}], {"max_batch": 0}, "max_batch"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, cells, kwargs, param):
    with pytest.raises(ShallowflowInputError) as info:
        run_sweep(cells, simulate_toy_batch, tmp_path / "out", progress=False, **kwargs)
    assert info.value.param.startswith(param)
    assert not (tmp_path / "out").exists()
