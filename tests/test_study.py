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
from shallowflow.stats.resample import exponent
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
    row = exponent(_planted(-0.6), "x", boot=400)
    assert row["slope"] == pytest.approx(-0.6, abs=0.03)
    assert row["ci_low"] < -0.6 < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.1
    runs = _planted(-0.6)
    runs.loc[:3, "x"] = np.nan  # runs that never reached the level are left out, and counted
    assert exponent(runs, "x", boot=50)["missing"] == 4
    window = exponent(_planted(-0.6), "x", boot=50, ns=(200, 400))
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


def test_study_all_writes_one_row_per_question_linking_each_study(tiny_study, tmp_path):
    """``study all`` runs every study into out/<name> (here resumed from the tiny study's
    cells: nothing is recomputed) and its report has a row per question with who asked
    it, the study's headline and links that resolve to the study's section and figure."""
    import shutil

    from shallowflow.experiments import batch
    from shallowflow.experiments.studies import STUDIES
    from shallowflow.experiments.studies.questions import run_all

    src, res = tiny_study
    shutil.copytree(src, tmp_path / "conjecture1")
    with pytest.MonkeyPatch.context() as m:
        m.setitem(study.PRESETS, "quick", TINY)
        m.setattr(batch, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
        m.setattr("shallowflow.experiments.studies.STUDIES", {"conjecture1": study})
        out = run_all("quick", tmp_path, progress=False, resume=True)
    assert set(STUDIES) >= {"conjecture1"}
    assert out["studies"]["conjecture1"]["verdicts"] == res["verdicts"]
    md = (tmp_path / "open_questions.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| {study.QUESTION[:30]}"))
    assert study.ASKED_BY in row and res["verdicts"][0].split(":")[0] in row
    assert "(conjecture1/study.md)" in row and "(#conjecture1)" in row
    html = (tmp_path / "open_questions.html").read_text()
    assert '<a href="conjecture1/study.html#conjecture1">' in html and 'id="conjecture1"' in html
    assert 'id="conjecture1"' in (tmp_path / "conjecture1" / "study.html").read_text()
    assert "![conjecture1](conjecture1/conjecture1.png)" in md
    assert read_json(tmp_path / "open_questions.json")["questions"][0]["asked_by"] == study.ASKED_BY


def test_study_all_refuses_a_bad_preset_before_writing(tmp_path):
    res = CliRunner().invoke(
        app, ["study", "all", "--preset", "huge", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "preset:" in res.output, res.output
    assert not (tmp_path / "o").exists()
