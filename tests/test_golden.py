"""Golden outputs: a small sweep of every figure, a user sweep and the quick ledger give
the tables, verdicts and JSON stored in ``tests/golden/``.

The figures' sweeps are the quick protocols cut down (fewer sizes and runs) and run in
float64, so that their numbers do not depend on the machine beyond rounding; the quick
ledger runs as ``shallowflow verify --preset quick`` does, without conjecture1 (below).
Floats are compared to a relative 1e-6 (float64 sweeps: one device against two already
moves a long run's final loss by 3e-9) or 1e-3 (the ledger, partly float32), rounding-
level errors (drifts) to an absolute 1e-7; text is compared with its numbers masked and
the numbers compared to the same tolerance or to one unit in their last printed digit.

``SHALLOWFLOW_GOLDEN=write pytest tests/test_golden.py`` rewrites the golden files: do
that only for a deliberate change of results, and say why in the commit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shallowflow.experiments.figures import protocol
from shallowflow.experiments.reproduce import run_protocol
from shallowflow.experiments.sweepfile import run_sweep_file
from shallowflow.storage import read_json, read_parquet
from shallowflow.verify import run_verify

GOLDEN = Path(__file__).parent / "golden"
# The quick ledger but conjecture1, which runs the Conjecture-1 study (about 100 s): its
# check is tested on a tiny design (tests/test_study.py) and CI runs the whole ledger.
LEDGER = "lemma1,width,theorem1,orthogonal_bounds,proposition2,theorem2,scaling"
WRITE = os.environ.get("SHALLOWFLOW_GOLDEN") == "write"
RTOL_X64 = 1e-6
RTOL_LEDGER = 1e-3
# Quantities that are themselves rounding errors (balance drifts, solver errors): their
# size depends on the order of sums (the device count, the CPU), so they are compared
# on an absolute scale.
ROUNDING = re.compile(r"drift|violation|err")
ATOL_ROUNDING = 1e-7

# The quick protocols cut down: (sizes kept, runs per cell); float64 throughout.
CUTS = {
    "fig3": (lambda c: c["n"] in (130, 280, 430), 6),
    "fig4": (lambda c: c["d"] in (20, 40), 4),
    "fig5": (lambda c: c["p"] in (30, 60), 4),
    "fig6": (lambda c: c["n"] in (600, 900, 1200), 4),
}
SWEEP = """name = "golden"
runs = 3
seed = 4
[base]
d = 30
x64 = true
[grid]
n = [16, 24]
p = [6, 9]
"""


def _small(figure: str):
    proto = protocol(figure, "quick")
    if figure not in CUTS:
        return proto
    keep, runs = CUTS[figure]
    cells = [c | {"runs": runs, "x64": True} for c in proto.cells if keep(c)]
    return dataclasses.replace(proto, cells=cells)


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """Every golden artifact, produced once: {name: path}."""
    out = tmp_path_factory.mktemp("golden")
    for fig in ("fig2", "fig3", "fig4", "fig5", "fig6"):
        run_protocol(_small(fig), out, progress=False)
    run_protocol(_small("fig3"), out / "adaptive", progress=False, adaptive=True)
    (out / "golden.toml").write_text(SWEEP)
    run_sweep_file(out / "golden.toml", out / "sweep", progress=False)
    run_verify("quick", out=out / "verify", only=LEDGER, progress=False)
    return out


ARTIFACTS = [
    *(f"{fig}/{name}" for fig in ("fig3", "fig4", "fig5", "fig6") for name in ("runs.parquet",)),
    *(
        f"{fig}/{name}"
        for fig in ("fig2", "fig3", "fig4", "fig5", "fig6")
        for name in ("points.parquet", "summary.json")
    ),
    "adaptive/fig3/runs.parquet",
    "adaptive/fig3/points.parquet",
    "adaptive/fig3/summary.json",
    "sweep/runs.parquet",
    "sweep/points.parquet",
    "verify/verify.json",
]


def _golden_name(artifact: str) -> str:
    return artifact.replace("/", "__")


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_golden(produced, artifact):
    got = produced / artifact
    want = GOLDEN / _golden_name(artifact)
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        shutil.copyfile(got, want)
        pytest.skip("golden file written")
    rtol = RTOL_LEDGER if artifact.startswith("verify/") else RTOL_X64
    if artifact.endswith(".parquet"):
        assert_same_table(read_parquet(got), read_parquet(want), rtol)
    else:
        assert_same_json(_drop_volatile(read_json(got)), _drop_volatile(read_json(want)), rtol)


# --------------------------------------------------------------------------- comparison

_NUMBER = re.compile(r"[-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
VOLATILE = {"seconds", "images", "figure"}  # wall times and paths


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def _close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + atol


def _last_digit(text: str) -> float:
    """One unit in the last printed digit of a number as printed."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def assert_same_text(got: str, want: str, rtol: float, where: str = "") -> None:
    """Same words; the numbers in them equal to ``rtol`` or to one unit in their last
    printed digit (rounding may tip it)."""
    assert _NUMBER.sub("#", got) == _NUMBER.sub("#", want), f"{where}: {got!r} != {want!r}"
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(want), strict=True):
        x, y = (float(s.replace("−", "-")) for s in (a, b))
        unit = max(_last_digit(a), _last_digit(b))
        ok = _close(x, y, rtol, ATOL_ROUNDING) or abs(x - y) <= unit * 1.01
        assert ok, f"{where}: {a} != {b} in {got!r}"


def assert_same_json(got, want, rtol: float, where: str = "$") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert set(got) == set(want), f"{where}: keys {set(got) ^ set(want)}"
        for k in want:
            assert_same_json(got[k], want[k], rtol, f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_json(g, w, rtol, f"{where}[{i}]")
    elif isinstance(want, bool) or want is None:
        assert got == want, f"{where}: {got!r} != {want!r}"
    elif isinstance(want, int | float):
        assert isinstance(got, int | float) and not isinstance(got, bool), where
        atol = ATOL_ROUNDING if ROUNDING.search(where) else 0.0
        assert _close(float(got), float(want), rtol, atol), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, str):
        assert isinstance(got, str), where
        assert_same_text(got, want, rtol, where)
    else:  # pragma: no cover
        assert got == want, where


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame, rtol: float) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        g, w = got[col], want[col]
        if pd.api.types.is_float_dtype(w):
            assert pd.api.types.is_numeric_dtype(g), col
            gv, wv = g.to_numpy(float), w.to_numpy(float)
            np.testing.assert_array_equal(np.isnan(gv), np.isnan(wv), err_msg=col)
            ok = ~np.isnan(wv)
            atol = ATOL_ROUNDING if ROUNDING.search(col) else 0.0
            np.testing.assert_allclose(gv[ok], wv[ok], rtol=rtol, atol=atol, err_msg=col)
        else:
            assert g.tolist() == w.tolist(), col


def test_text_comparison_masks_only_numbers():
    assert_same_text("N = 12.5 [1, 2]", "N = 12.5 [1, 2]", 1e-9)
    with pytest.raises(AssertionError):
        assert_same_text("N = 12.5, linear: yes", "N = 12.5, linear: no", 1e-9)
    with pytest.raises(AssertionError):
        assert_same_text("N = 12.5", "N = 13.5", 1e-9)
    assert_same_text("slope −0.4812", "slope −0.4813", 1e-9)  # the last printed digit


# --------------------------------------------------------------------------- stored sweeps

STORED = GOLDEN / "stored"  # sweep directories written by shallowflow 0.1 (cells only)


def _never(*args, **kwargs):
    raise AssertionError("a stored cell was recomputed")


@pytest.mark.parametrize("name", ["fig3", "sweep"])
def test_stored_sweeps_resume_without_recomputing(tmp_path, monkeypatch, name):
    """A sweep directory written by an earlier version resumes: every cell id still
    matches, so nothing is simulated and the table is the stored cells'."""
    from shallowflow.experiments import batch

    out = tmp_path / name
    shutil.copytree(STORED / name, out)
    monkeypatch.setattr(batch, "simulate_batch", _never)
    if name == "fig3":
        run_protocol(_small("fig3"), tmp_path, progress=False, resume=True)
    else:
        (tmp_path / "g.toml").write_text(SWEEP)
        run_sweep_file(tmp_path / "g.toml", out, progress=False, resume=True)
    stored = sorted((STORED / name / "cells").glob("*.parquet"))
    want = pd.concat([read_parquet(p) for p in stored]).sort_values(["cell_id", "run"])
    got = read_parquet(out / "runs.parquet").sort_values(["cell_id", "run"])
    assert_same_table(got.reset_index(drop=True), want.reset_index(drop=True), 0.0)
