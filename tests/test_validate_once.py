"""Validate once, at the boundary, before any file or directory exists (issue 18,
item 5): a bad knob leaves the output directory unwritten, and a sweep resolves each
cell's configuration once, however often its plan, work estimate and batches ask."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shallowflow.cli import app
from shallowflow.experiments import cells as cells_module
from shallowflow.experiments.batch import run_cells

runner = CliRunner()


@pytest.mark.parametrize(
    "args, knob",
    [
        (["--n", "10", "--d", "5", "--lr", "-1"], "lr"),
        (["--n", "10", "--d", "5", "--solver", "euler"], "solver"),
        (["--n", "20", "--d", "5", "--data", "orthogonal"], "n"),  # across knobs: n <= d
    ],
)
def test_simulate_with_a_bad_knob_writes_nothing(tmp_path, args, knob):
    out = tmp_path / "o"
    res = runner.invoke(app, ["simulate", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"{knob}:" in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()


def test_sweep_with_a_bad_knob_in_one_cell_writes_nothing(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("runs = 1\n[base]\nn = 10\nd = 5\n[grid]\nlr = [0.5, -1.0]\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", str(f), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "lr:" in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()


def test_a_sweep_resolves_each_cell_once(tmp_path, monkeypatch):
    """The runner plans all cells, estimates their work and simulates them in batches,
    each asking for the cells' configurations: make_config runs once per cell."""
    calls = []
    resolve = cells_module.make_config

    def counted(**knobs):
        calls.append(knobs["n"])
        return resolve(**knobs)

    monkeypatch.setattr(cells_module, "make_config", counted)
    cells_module._resolved.cache_clear()
    cells = [dict(n=n, d=6, p=4, runs=1, horizon=5.0, record=3, seed=11) for n in (7, 9)]
    run_cells(cells, tmp_path, progress=False)
    assert sorted(calls) == [7, 9]
