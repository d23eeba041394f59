"""The width study: its fits recover planted laws and do not invent effects (synthetic
thresholds tables), and it runs end to end on a tiny design (three (d, p) groups, a few
runs): files, verdict, resume, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shallowflow.cli import app
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.studies import run_study
from shallowflow.experiments.studies import width as study
from shallowflow.stats.fits import common_exponent
from shallowflow.storage import read_json, read_parquet

TINY = study.Design(pairs=((10, 30), (20, 30), (10, 120)), runs=4, exponents=(-1, -0.5, 0, 0.5, 1))
DS = (10, 20, 40, 80, 160)
PS = (30, 60, 120, 240, 480)
REL = 0.03  # relative error of a planted threshold


def _planted(beta, cp, rng, rel=REL) -> pd.DataFrame:
    """A thresholds table of the paper preset's cross design with N = C(p)·d^β(p)
    and errors of ``rel``·N (β: a number or a function of p)."""
    rows = []
    for d, p in study.PRESETS["paper"].pairs:
        b = beta(p) if callable(beta) else beta
        n = cp(p) * d**b
        rows.append({"d": d, "p": p, "N": n * (1 + rel * rng.standard_normal()), "se": rel * n})
    return pd.DataFrame(rows)


def _power(p):
    return 4.0 * (p / 30) ** 0.3


def _log(p):
    return 3.0 * np.log(p) - 6.0


def test_fits_recover_a_planted_beta_and_power_law_of_c():
    res = study.analyse(_planted(1.3, _power, np.random.default_rng(0)))
    for b in res["betas"]:
        assert b["ci_low"] < 1.3 < b["ci_high"], b
        assert b["ci_high"] - b["ci_low"] < 0.25
    assert {b["p"] for b in res["betas"]} == set(PS)  # d = 10, 40 at least at every p
    for arm in res["cp"]:  # C(p) read at d = 10, 20 and 40
        assert arm["best"] == "power" and arm["power"]["gamma"] == pytest.approx(0.3, abs=0.06)
    ratio = res["relax"][0]  # N(d, 480)/N(d, 30) = C(480)/C(30) = 16^0.3
    assert ratio["ci_low"] < 16**0.3 < ratio["ci_high"]


def test_fits_tell_a_planted_log_law_of_c_from_a_power():
    res = study.analyse(_planted(1.0, _log, np.random.default_rng(1), rel=0.01))
    assert [arm["best"] for arm in res["cp"]] == ["log"] * 3  # at d = 10, 20, 40
    assert "log law" in study._law(res["cp"][0])


def test_beta_interval_covers_the_planted_exponent():
    rng = np.random.default_rng(2)
    rows = [study._beta(_planted(0.8, _power, rng), 30) for _ in range(100)]
    assert np.mean([r["ci_low"] <= 0.8 <= r["ci_high"] for r in rows]) >= 0.9


def test_a_null_effect_of_p_on_beta_is_not_reported_and_a_planted_one_is():
    rng = np.random.default_rng(3)
    null = [study.analyse(_planted(1.2, _power, rng))["dependence"]["p_value"] for _ in range(100)]
    assert np.mean(np.array(null) < 0.05) <= 0.12  # the test's 5% level, with sampling slack
    line = study._dependence({"p_value": float(np.median(null))})
    assert line.startswith("no dependence of β on p detected")

    def beta(p):
        return 1.0 + 0.15 * np.log2(p / 30)  # 1.0 at p = 30, 1.6 at p = 480

    planted = [study.analyse(_planted(beta, _power, rng))["dependence"] for _ in range(20)]
    assert all(dep["p_value"] < 0.05 for dep in planted)
    assert study._dependence(planted[0]).startswith("β depends on p")


def _verdict(table: pd.DataFrame) -> list[str]:
    table = table.assign(
        ci_low=table["N"] - 2 * table["se"], ci_high=table["N"] + 2 * table["se"], inside_grid=True
    )
    summary = {"runs": 1000, "evaluations": 100} | study.analyse(table)
    return study.verdict(table, summary)[0]


def test_verdict_states_beta_against_one_half_and_the_law_of_c():
    lines = _verdict(_planted(1.0, _log, np.random.default_rng(6), rel=0.01))
    head = lines[0]
    assert head.startswith("N ∝ d^β with β = 0.99") and "p = 30, d = 10–160" in head
    assert "against the theory's 1/2: excluded, N grows faster" in head
    assert "against Fig. 4's 1: consistent" in head and "no dependence of β on p" in head
    assert "log law" in head and not any("edge of their window" in x for x in lines)
    half = _verdict(_planted(0.5, _power, np.random.default_rng(7)))[0]
    assert "against the theory's 1/2: consistent" in half


def test_common_exponent_estimates_the_shared_beta_and_each_c():
    rng = np.random.default_rng(4)
    x = np.tile([10.0, 20.0, 40.0], 3)
    group = np.repeat(["a", "b", "c"], 3)
    c = {"a": 2.0, "b": 3.0, "c": 5.0}
    n = np.array([c[g] for g in group]) * x**1.25
    res = common_exponent(x, group, n * (1 + 0.01 * rng.standard_normal(9)), 0.01 * n)
    assert res["beta"] == pytest.approx(1.25, abs=4 * res["se_beta"])
    assert res["c"] == pytest.approx(c, rel=0.1) and res["df"] == 2


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("width")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(study.PRESETS, "quick", TINY)
        res = run_study("width", "quick", out, progress=False)
    return out, res


def test_study_writes_its_runs_table_figure_and_report(tiny_study):
    out, res = tiny_study
    for name in ("runs.parquet", "table.parquet", "summary.json", "width.png", "width.pdf"):
        assert (out / name).exists(), name
    for name in ("study.md", "study.html"):
        assert "N ∝ d^β" in (out / name).read_text()
    assert read_json(out / "study.json")["verdicts"] == res["verdicts"]
    table = read_parquet(out / "table.parquet")
    assert sorted(zip(table["d"], table["p"], strict=True)) == sorted(TINY.pairs)
    runs = read_parquet(out / "runs.parquet")
    assert set(runs["group"]) == {study.group_name(d, p) for d, p in TINY.pairs}
    for (d, p), g in runs.groupby(["d", "p"]):  # every evaluation of a group at its fixed p
        assert set(g["group"]) == {study.group_name(d, p)}
    assert (table["runs"].sum(), len(runs)) == (len(runs), res["runs"])
    assert np.isfinite(table["N"]).all()
    assert read_json(out / "summary.json")["verdicts"] == res["verdicts"]
    assert res["verdicts"][0].startswith("N ∝ d^β with β = ")
    assert "against the theory's 1/2" in res["verdicts"][0]


def test_study_resumes_without_recomputing_and_refuses_to_replace(tiny_study, monkeypatch):
    out, res = tiny_study
    from shallowflow.experiments import adaptive

    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(adaptive, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
    again = run_study("width", "quick", out, progress=False, resume=True)
    assert again["verdicts"] == res["verdicts"]
    with pytest.raises(ShallowflowInputError, match="finished adaptive evaluations"):
        run_study("width", "quick", out, progress=False)


def test_study_command_refuses_a_bad_preset_before_writing(tmp_path):
    res = CliRunner().invoke(
        app, ["study", "width", "--preset", "huge", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "preset:" in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_presets_span_the_asked_ranges():
    """The issue's design: d over a factor 16 at least, p from 30 to 480 at least."""
    for design in study.PRESETS.values():
        ds = [d for d, p in design.pairs if p == 30]
        ps = [p for d, p in design.pairs if d == 10]
        assert max(ds) / min(ds) >= 16 and min(ps) == 30 and max(ps) >= 480


def test_study_all_gives_width_its_row_with_who_asked(tiny_study, tmp_path):
    """``study all`` (here with only this study, resumed from the tiny study's
    evaluations: nothing recomputed) has a row for the question with who asked it and
    the headline."""
    import shutil

    from shallowflow.experiments import adaptive
    from shallowflow.experiments.studies.questions import run_all

    src, res = tiny_study
    shutil.copytree(src, tmp_path / "width")
    with pytest.MonkeyPatch.context() as m:
        m.setitem(study.PRESETS, "quick", TINY)
        m.setattr(adaptive, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
        m.setattr("shallowflow.experiments.studies.STUDIES", {"width": study})
        run_all("quick", tmp_path, progress=False, resume=True)
    md = (tmp_path / "open_questions.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| {study.QUESTION[:30]}"))
    assert study.ASKED_BY in row and "N ∝ d^β with β = " in row and "(width/study.md)" in row


def test_adaptive_search_still_refuses_a_figure_without_thresholds(tmp_path):
    from shallowflow.experiments.adaptive import run_adaptive
    from shallowflow.experiments.figures import protocol

    with pytest.raises(ShallowflowInputError, match="only .* have thresholds"):
        run_adaptive(protocol("fig6", "quick"), tmp_path / "fig6")
    assert not (tmp_path / "fig6").exists()
