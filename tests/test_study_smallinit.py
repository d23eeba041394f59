"""The smallinit study: its curve readers and fits recover planted plateaus, slopes and
norm ratios and do not invent them (synthetic runs tables), and it runs end to end on a
tiny design, where the engine's plateaus match the escape-rate prediction and no learned
interpolator beats the least norm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shallowflow.columns import describe
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.studies import measures as mt
from shallowflow.experiments.studies import run_study
from shallowflow.experiments.studies import smallinit as study
from shallowflow.stats.curves import first_below, paired_slopes, staircase
from shallowflow.storage import read_json, read_parquet

TINY = study.Design(
    n=8,
    epsilons=(1e-1, 1e-2, 1e-3, 1e-4),
    runs=6,
    flow_runs=3,
    sphere_d=20,
    sphere_runs=3,
    norm_ns=(8, 16, 32),
    norm_runs=4,
    records=200,
    boot=200,
    draws=1000,
)


def test_curve_readers_find_planted_crossings_steps_and_slopes():
    t = np.linspace(0.0, 10.0, 11)
    loss = np.exp(-0.3 * t)  # log-linear: the crossing of 0.5 is exact between records
    assert first_below(t, loss, 0.5) == pytest.approx(math.log(2) / 0.3, rel=1e-12)
    assert first_below(t, loss, 1.0) == 0.0 and math.isnan(first_below(t, loss, 1e-3))
    count = np.array([0, 0, 1, 1, 3, 3, 3, 4, 4, 4, 4])
    assert staircase(t, count, 5)[:4] == [2.0, 4.0, 4.0, 7.0]
    assert math.isnan(staircase(t, count, 5)[4])
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(5.0), 3)
    pair = np.repeat([2, 0, 1], 5)
    slope = np.array([1.0, 2.0, 3.0])[pair]  # pair k has slope k + 1, given out of order
    y = slope * x + rng.normal(0, 1e-9, x.size)
    np.testing.assert_allclose(paired_slopes(x, y, pair), [1.0, 2.0, 3.0], rtol=1e-8)


def _synthetic(slope, ratio, rng, runs: int = 16) -> pd.DataFrame:
    """A runs table with t₁ = B_r log(1/ε) + c_r (B_r around ``slope(ε)``'s mean), the
    fits one saddle after another, and ‖θ‖² = ``ratio(n)`` × the least norm (√n·p)."""
    rows = []
    b = slope + 0.1 * rng.standard_normal(runs)
    for arm in study.ARMS:
        for eps in TINY.epsilons:
            for r in range(runs):
                t1 = b[r] * math.log(1 / eps) + 2.0 + 0.05 * rng.standard_normal()
                fits = list(t1 * np.repeat([1.0, 1.3, 1.6], [3, 3, 2]))
                rows.append(
                    dict(tag=arm, run=r, w_scale=eps, plateau_time=t1, fit_times=fits)
                    | dict(grown_times=[t1] * 5 + [math.nan] * 13, final_grown_neurons=5)
                )
    for n in TINY.norm_ns:
        for r in range(runs):
            least = 18 * math.sqrt(n) * (1 + 0.05 * rng.standard_normal())
            theta = least * ratio(n) * (1 + 0.02 * rng.standard_normal())
            rows.append(
                dict(tag="norm", run=r, n=n, p=18, min_norm2=least, final_theta_norm2=theta)
                | dict(w_scale=1e-4, plateau_time=1.0, fit_times=[1.0], grown_times=[1.0])
            )
    return pd.DataFrame(rows).assign(success=True)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(1)
    return study.summarise(_synthetic(2.5, lambda n: 1.5, rng), TINY)


def test_a_planted_plateau_slope_and_a_bounded_ratio_are_found(planted):
    table, summary = planted
    for arm in study.ARMS:
        row = mt.get(table, "plateau", arm, "slope")
        assert row["ci_low"] < 2.5 < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.2
    spread = mt.get(table, "fits", "gd", "last/first", 1e-4)
    assert spread["value"] == pytest.approx(1.6, rel=1e-12)
    ratio = mt.get(table, "exponent", "gd", "ratio late")
    assert ratio["ci_low"] < 0 < ratio["ci_high"]
    late = mt.get(table, "exponent", "gd", "least_p")
    assert late["ci_low"] < 0.5 < late["ci_high"]
    lines, _ = study.verdict(table, summary)
    assert lines[0].startswith("The first plateau lasts B·log(1/ε) + c with B = 2.5")
    assert "bounded: no growth on the largest n" in lines[0]
    assert "one saddle after another" in lines[2]


def test_a_null_slope_is_not_reported_and_a_growing_ratio_is():
    rng = np.random.default_rng(2)
    table, summary = study.summarise(_synthetic(0.0, lambda n: 1.2 * n**0.3, rng), TINY)
    row = mt.get(table, "plateau", "gd", "slope")
    assert row["ci_low"] < 0 < row["ci_high"]  # t₁ does not depend on ε: no slope invented
    pred = mt.get(table, "prediction", "gd", "slope")
    assert "below it" in study._against(row, pred)
    growth = mt.get(table, "exponent", "gd", "ratio late")
    assert growth["ci_low"] < 0.3 < growth["ci_high"]
    assert "still growing on the largest n" in study.verdict(table, summary)[0][0]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("smallinit")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(study.PRESETS, "quick", TINY)
        res = run_study("smallinit", "quick", out, progress=False)
    return out, res


def test_study_writes_its_files_and_matches_the_escape_prediction(tiny_study):
    out, res = tiny_study
    for name in ("runs.parquet", "table.parquet", "summary.json", "smallinit.png", "study.md"):
        assert (out / name).exists(), name
    assert read_json(out / "study.json")["verdicts"] == res["verdicts"]
    assert res["verdicts"][0].startswith("The first plateau lasts B·log(1/ε) + c with B = ")
    table = read_parquet(out / "table.parquet")
    for arm in ("gd", "flow"):  # the engine's plateaus against SPEC §4's escape rate
        row, pred = (
            mt.get(table, "plateau", arm, "slope"),
            mt.get(table, "prediction", arm, "slope"),
        )
        assert row["ci_low"] <= pred["value"] <= row["ci_high"], (arm, row, pred)


def test_runs_fit_in_order_and_never_beat_the_least_norm(tiny_study):
    out, _ = tiny_study
    runs = read_parquet(out / "runs.parquet")
    assert runs["success"].all()
    for fits, t_final in zip(runs["fit_times"], runs["t_final"], strict=True):
        f = np.asarray(fits, float)
        assert np.all(np.diff(f) >= 0) and f[-1] <= t_final  # every example fitted in time
    ortho = runs[runs["data"] == "orthogonal"]
    # the least norm of an interpolator of the labels fitted (rounding: 1e-12 relative)
    assert np.all(ortho["final_theta_norm2"] >= ortho["min_norm2"] * (1 - 1e-12))
    assert runs.loc[runs["data"] == "sphere", "min_norm2"].isna().all()


def test_study_resumes_without_recomputing_and_refuses_to_replace(tiny_study, monkeypatch):
    out, res = tiny_study
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(study, "simulate_results", lambda *a, **k: pytest.fail("recomputed"))
    again = run_study("smallinit", "quick", out, progress=False, resume=True)
    assert again["verdicts"] == res["verdicts"]
    with pytest.raises(ShallowflowInputError, match="finished cells"):
        run_study("smallinit", "quick", out, progress=False)


def test_presets_span_the_asked_range_of_epsilon():
    for design in study.PRESETS.values():
        assert max(design.epsilons) == 1e-1 and min(design.epsilons) == 1e-6
        assert study.horizon(design.n, 1e-6) > study.horizon(design.n, 1e-1)


def test_every_column_it_writes_is_documented(tiny_study):
    out, _ = tiny_study
    for name in ("runs.parquet", "table.parquet"):
        columns = read_parquet(out / name).columns
        assert [c for c in columns if describe(str(c)) is None] == [], name
