"""The data dictionary (shallowflow.columns) documents every column that the real writers
write: simulate's tables (GD and the exact flow, with loss levels and the kernel's
rate), reproduce's runs and points tables (Figs. 2–6 on tiny cells; a sweep writes the
same tables) and a study's tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from shallowflow.api import run_simulation
from shallowflow.columns import describe, markdown
from shallowflow.experiments import studies
from shallowflow.experiments.figures import protocols
from shallowflow.experiments.reproduce import run_protocol
from shallowflow.experiments.studies import conjecture1


def _undocumented(path: Path) -> list[str]:
    return [c for c in pd.read_parquet(path).columns if describe(str(c)) is None]


def _tables(out: Path) -> list[Path]:
    paths = sorted(out.rglob("*.parquet"))
    assert paths, f"no table written under {out}"
    return paths


def test_describe_finds_names_and_patterns():
    assert describe("final_mu").units == "1/time"
    assert "level" in describe("final_level_mu_kernel_3").meaning
    assert describe("lr").meaning.startswith("knob: GD step")
    assert describe("final_nonsense") is None
    assert describe("final_level_mu_kernel_x") is None


@pytest.mark.parametrize(
    "knobs",
    [
        {"n": 12, "d": 8, "runs": 2},
        {
            "n": 6,
            "d": 8,
            "runs": 2,
            "data": "orthogonal",
            "solver": "flow",
            "stop_loss": 1e-6,
            "levels": (1e-2, 1e-3),
            "kernel": True,
            "x64": True,
            "horizon": 200.0,
        },
        {"n": 12, "d": 20, "runs": 2, "test_n": 4, "init": "standard", "a_scale": 0.5},
    ],
    ids=["gd", "flow-levels-kernel", "held-out"],
)
def test_simulate_columns_are_documented(tmp_path, knobs):
    run_simulation(tmp_path, **knobs)
    for path in _tables(tmp_path):
        assert _undocumented(path) == [], path.name


def _tiny(proto):
    """The protocol on 2-run cells: two values of its group, three small sizes each."""
    if proto.kind != "simulate":
        return proto
    groups: dict = {}
    for cell in proto.cells:
        groups.setdefault(cell.get(proto.group) if proto.group else None, []).append(cell)
    cells = []
    for group in list(groups.values())[:2]:
        for j, cell in enumerate(group[:3]):
            n = 6 + 4 * j
            d = max(n, 16) if cell.get("data") == "orthogonal" else cell["d"] // 10
            cells.append(cell | {"runs": 2, "n": n, "d": d})
    return dataclasses.replace(proto, cells=cells)


@pytest.mark.parametrize("name", ["fig2", "fig3", "fig4", "fig5", "fig6"])
def test_reproduce_columns_are_documented(tmp_path, name):
    proto = _tiny(protocols(name, "quick")[0])
    run_protocol(proto, tmp_path, progress=False)
    for path in _tables(tmp_path):
        assert _undocumented(path) == [], path


@pytest.mark.slow
def test_study_columns_are_documented(tmp_path, monkeypatch):
    design = conjecture1.Design(
        d=32,
        ns=(8, 12, 16),
        runs=2,
        side_ns=(8, 16),
        side_runs=2,
        horizon=40.0,
        windows=((8, 16),),
        variants=("gd",),
        boot=20,
    )
    monkeypatch.setitem(conjecture1.PRESETS, "tiny", design)
    monkeypatch.setattr(studies, "preset_name", lambda preset: preset)
    studies.run_study("conjecture1", "tiny", tmp_path, progress=False)
    for path in _tables(tmp_path):
        assert _undocumented(path) == [], path


def test_markdown_lists_every_entry_once():
    text = markdown()
    assert text.count("| `mu` |") == 1
    assert "| `final_level_t_<k>` |" in text
