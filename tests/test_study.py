"""The Conjecture-1 study: its exponents, its verdict, its files, and the verify check
that reads it (on a tiny design: two sizes, a few runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shallowflow.cli import app
from shallowflow.experiments.studies import conjecture1 as study
from shallowflow.experiments.studies import run_study
from shallowflow.storage import read_json, read_parquet
from shallowflow.verify.checks import conjecture1 as check
from shallowflow.verify.ledger import Verdict

TINY = study.Design(
    d=60,
    ns=(20, 30, 45),
    runs=3,
    side_ns=(20, 45),
    side_runs=2,
    horizon=40.0,
    windows=((20, 30), (30, 45)),
    variants=("gd", "flow", "w_0.1"),
    boot=200,
)


def _planted(exponent: float, ns=(100, 200, 400, 800), runs=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        pd.DataFrame({"n": n, "x": n**exponent * np.exp(0.1 * rng.standard_normal(runs))})
        for n in ns
    ]
    return pd.concat(rows, ignore_index=True)


def test_exponent_recovers_a_planted_slope_with_its_interval():
    row = study.exponent(_planted(-0.6), "x", boot=400)
    assert row["slope"] == pytest.approx(-0.6, abs=0.03)
    assert row["ci_low"] < -0.6 < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.1
    runs = _planted(-0.6)
    runs.loc[:3, "x"] = np.nan  # runs that never reached the level are left out, and counted
    assert study.exponent(runs, "x", boot=50)["missing"] == 4
    window = study.exponent(_planted(-0.6), "x", boot=50, ns=(200, 400))
    assert (window["n_min"], window["n_max"], window["points"]) == (200, 400, 2)


@pytest.mark.parametrize(
    "lo, hi, word",
    [(-0.6, -0.45, "−1/2"), (-1.1, -0.9, "−1"), (-0.8, -0.7, "neither"), (-1.5, -1.2, "steeper")],
)
def test_supported_names_the_exponent_the_interval_holds(lo, hi, word):
    assert word in study.supported({"slope": (lo + hi) / 2, "ci_low": lo, "ci_high": hi})


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(study.PRESETS, "quick", TINY)
    out = tmp_path_factory.mktemp("study")
    try:
        res = run_study("conjecture1", "quick", out, progress=False)
    finally:
        mp.undo()
    return out, res


def test_study_writes_its_table_figure_and_report(tiny_study):
    out, res = tiny_study
    for name in ("runs.parquet", "table.parquet", "summary.json", "conjecture1.png"):
        assert (out / name).exists(), name
    for name in ("study.md", "study.html", "study.json"):
        assert "support" in (out / name).read_text()
    table = read_parquet(out / "table.parquet")
    assert set(table["part"]) == {"stop level", "solver", "init", "range of n", "mechanism"}
    assert len(table[(table["part"] == "stop level")]) == 5 * 3  # 5 levels × 3 measures
    assert read_json(out / "summary.json")["verdicts"] == res["verdicts"]
    assert res["verdicts"][0].startswith("Under the Fig. 6 protocol")


def test_study_runs_reach_every_level_and_the_variants_are_paired(tiny_study):
    out, _ = tiny_study
    runs = read_parquet(out / "runs.parquet")
    assert runs["success"].all()
    for k, level in enumerate(study.LEVELS):
        assert np.isfinite(runs[f"final_level_t_{k}"]).all()
        assert (runs[f"final_level_loss_{k}"] <= level / (2 * runs["n"])).all()
    # at each n the variants start from the same draws: the same L(0) run by run
    both = runs[runs["n"].isin(TINY.side_ns) & (runs["run"] < TINY.side_runs)]
    loss0 = both.pivot_table(index=["n", "run"], columns="tag", values="loss0")
    np.testing.assert_allclose(loss0["flow"], loss0["gd"], rtol=1e-12)
    # the exact flow's rate at the end is its asymptotic rate: the kernel's, to 1%
    flow = runs[runs["tag"] == "flow"]
    np.testing.assert_allclose(flow["final_mu"], flow["final_mu_inf_kernel"], rtol=0.01)


def test_study_resumes_without_recomputing(tiny_study, monkeypatch):
    out, res = tiny_study
    from shallowflow.experiments import batch

    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(batch, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
    again = run_study("conjecture1", "quick", out, progress=False, resume=True)
    assert again["verdicts"] == res["verdicts"]


def test_verify_check_reads_the_study_and_fails_outside_the_proven_range():
    p = {"design": TINY, "target": -0.5}
    res = check.conjecture1(p)
    assert res.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE)
    lo, hi = res.numbers["ci95"]
    assert lo <= res.numbers["exponent_mu_inf"] <= hi
    assert "support" in res.summary and "Fig. 6 protocol" in res.summary
    planted = check.conjecture1(p | {"target": hi + 1.0, "bounds": (hi + 1.0, hi + 2.0)})
    assert planted.verdict == Verdict.FAIL
    holds = check.conjecture1(p | {"target": res.numbers["exponent_mu_inf"]})
    assert holds.verdict == Verdict.PASS


def test_study_command_refuses_bad_input_before_computing(tmp_path):
    runner = CliRunner()
    for args, param in ((["nope"], "study"), (["conjecture1", "--preset", "huge"], "preset")):
        res = runner.invoke(app, ["study", *args, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and f"{param}:" in res.output, res.output
        assert not (tmp_path / "o").exists()
