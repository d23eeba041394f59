"""Golden outputs: a small sweep of every figure, a user sweep and the quick ledger give
the tables, verdicts and JSON stored in ``tests/golden/``.

The figures' sweeps are the quick protocols cut down (fewer sizes and runs) and run in
float64, so that their numbers do not depend on the machine beyond rounding; the quick
ledger runs as ``shallowflow verify --preset quick`` does, without conjecture1 (below).

**The tolerance rule.** Each number ``x`` is compared with its golden value ``x₀`` as

    |x − x₀| ≤ rtol·max(|x|, |x₀|) + K·ε·S

- ``rtol`` is what a run's numbers legitimately move between machines: 1e-6 for the
  float64 sweeps (one device against two already moves a long run's final loss by 3e-9),
  1e-3 for the ledger, which is partly float32.
- ``K·ε·S`` is the rounding floor. ``ε`` is the machine epsilon of the artifact's dtype
  (float64 for the sweeps, float32 for the ledger), ``K = 16`` covers the growth of
  rounding through the few operations that follow a cancellation, and ``S`` is the
  magnitude of the quantities the number is computed from, read from the artifact
  itself: the largest magnitude in its table column, or among the numbers of the JSON
  object or list that holds it (an object groups one computation's results: a fit's
  coefficients with its χ² and AIC, a check's measurements), and never less than 1, the
  scale of the data and labels every artifact starts from.

A quantity that is zero up to rounding (the χ² of an exact fit, an AIC difference of equal
terms, a relative error between two computations of one thing) therefore compares on the
absolute scale ``K·ε·S`` and passes on any machine, while a number well above it compares
to ``rtol``. Text is compared with its numbers masked, and each number to the same
tolerance (``S`` of the object holding the text) or to one unit in its last printed digit.
``tests/test_golden_env.py`` runs part of this under a changed floating-point environment.

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


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """The rule of the module docstring: ``rtol`` and the rounding floor ``K·ε·S``."""

    rtol: float
    eps: float
    growth: float = 16.0  # K

    def atol(self, scale: float) -> float:
        return self.growth * self.eps * max(1.0, scale)

    def close(self, a: float, b: float, scale: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= self.rtol * max(abs(a), abs(b)) + self.atol(scale)


X64 = Tolerance(rtol=1e-6, eps=float(np.finfo(np.float64).eps))
LEDGER_TOL = Tolerance(rtol=1e-3, eps=float(np.finfo(np.float32).eps))
EXACT = Tolerance(rtol=0.0, eps=0.0)

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
    assert_same_artifact(got, want, LEDGER_TOL if artifact.startswith("verify/") else X64)


def assert_same_artifact(got: Path, want: Path, tol: Tolerance) -> None:
    if want.suffix == ".parquet":
        assert_same_table(read_parquet(got), read_parquet(want), tol)
    else:
        assert_same_json(_drop_volatile(read_json(got)), _drop_volatile(read_json(want)), tol)


# --------------------------------------------------------------------------- comparison

_NUMBER = re.compile(r"[-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
VOLATILE = {"seconds", "images", "figure"}  # wall times and paths


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def _last_digit(text: str) -> float:
    """One unit in the last printed digit of a number as printed."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _is_float(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _scale(values) -> float:
    """S of the numbers held together in one JSON object or list (the rule above)."""
    return max((abs(float(v)) for v in values if _is_float(v) and math.isfinite(v)), default=0.0)


def assert_same_text(got: str, want: str, tol: Tolerance, scale: float = 0.0, where="") -> None:
    """Same words; the numbers in them equal to the tolerance or to one unit in their last
    printed digit (rounding may tip it)."""
    assert _NUMBER.sub("#", got) == _NUMBER.sub("#", want), f"{where}: {got!r} != {want!r}"
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(want), strict=True):
        x, y = (float(s.replace("−", "-")) for s in (a, b))
        unit = max(_last_digit(a), _last_digit(b))
        ok = tol.close(x, y, scale) or abs(x - y) <= unit * 1.01
        assert ok, f"{where}: {a} != {b} in {got!r}"


def assert_same_json(got, want, tol: Tolerance, where: str = "$", scale: float = 0.0) -> None:
    """Compare a JSON tree; ``scale`` is S of the object or list holding ``want``."""
    if isinstance(want, dict | list):
        keys = list(want) if isinstance(want, dict) else range(len(want))
        assert isinstance(got, type(want)), f"{where}: {type(got).__name__}"
        if isinstance(want, dict):
            assert set(got) == set(want), f"{where}: keys {set(got) ^ set(want)}"
        else:
            assert len(got) == len(want), f"{where}: length"
        inner = _scale(want[k] for k in keys)
        for k in keys:
            sub = f"{where}.{k}" if isinstance(want, dict) else f"{where}[{k}]"
            assert_same_json(got[k], want[k], tol, sub, inner)
    elif isinstance(want, bool) or want is None:
        assert got == want, f"{where}: {got!r} != {want!r}"
    elif _is_float(want):
        assert _is_float(got), where
        assert tol.close(float(got), float(want), scale), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, str):
        assert isinstance(got, str), where
        assert_same_text(got, want, tol, scale, where)
    else:  # pragma: no cover
        assert got == want, where


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame, tol: Tolerance) -> None:
    """Compare tables column by column; S of a float column is its largest magnitude."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        g, w = got[col], want[col]
        if pd.api.types.is_float_dtype(w):
            assert pd.api.types.is_numeric_dtype(g), col
            gv, wv = g.to_numpy(float), w.to_numpy(float)
            np.testing.assert_array_equal(np.isnan(gv), np.isnan(wv), err_msg=col)
            ok = ~np.isnan(wv)
            atol = tol.atol(_scale(wv[ok]))
            np.testing.assert_allclose(gv[ok], wv[ok], rtol=tol.rtol, atol=atol, err_msg=col)
        else:
            assert g.tolist() == w.tolist(), col


def test_text_comparison_masks_only_numbers():
    tight = Tolerance(rtol=1e-9, eps=float(np.finfo(np.float64).eps))
    assert_same_text("N = 12.5 [1, 2]", "N = 12.5 [1, 2]", tight)
    with pytest.raises(AssertionError, match="linear: yes"):
        assert_same_text("N = 12.5, linear: yes", "N = 12.5, linear: no", tight)
    with pytest.raises(AssertionError, match="13.5"):
        assert_same_text("N = 12.5", "N = 13.5", tight)
    assert_same_text("slope −0.4812", "slope −0.4813", tight)  # the last printed digit


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
    assert_same_table(got.reset_index(drop=True), want.reset_index(drop=True), EXACT)
