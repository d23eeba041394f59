"""The `flow` study (GD against the flow): its extrapolation recovers a planted N(η),
a null effect is not reported as one, and it runs end to end on a tiny design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from shallowflow.experiments.studies import flow as study
from shallowflow.experiments.studies import run_study
from shallowflow.experiments.studies.common import first
from shallowflow.stats.fits import extrapolate_to_zero
from shallowflow.storage import read_json, read_parquet

ETAS = (1.0, 0.5, 0.25, 0.125)
NS = tuple(range(100, 501, 50))


def _planted(n_of_eta, runs=200, slope=0.05, seed=0) -> pd.DataFrame:
    """Success ~ logistic(slope (N(η) − n)), the runs paired across η (one uniform per
    (n, run), as the study's η variants share their draws)."""
    rng = np.random.default_rng(seed)
    u = rng.random((len(NS), runs))
    rows = []
    for eta in ETAS:
        prob = special.expit(slope * (n_of_eta(eta) - np.asarray(NS, float)))
        for i, n in enumerate(NS):
            ok = u[i] < prob[i]
            rows.append(
                pd.DataFrame(
                    {
                        "tag": f"gd eta={eta:g}",
                        "lr": eta,
                        "n": n,
                        "d": 20,
                        "p": 10,
                        "run": np.arange(runs),
                        "success": ok,
                        "final_loss": np.where(ok, 0.0, 0.5),
                        "loss0": 1.0,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


DESIGN = study.Design(d=20, ns=NS, runs=200, boot=120)


def test_extrapolation_recovers_a_planted_first_order_shift():
    """N(η) = 300 − 60η: N₀ = 300 and N(1) = 240, an effect of −20%."""
    table, summary = study.summarise(_planted(lambda eta: 300 - 60 * eta), DESIGN)
    n0 = first(table, part="extrapolation")
    eff = first(table, part="effect")
    assert n0["ci_low"] <= 300 <= n0["ci_high"] and abs(n0["value"] - 300) < 15
    assert eff["ci_low"] <= -0.2 <= eff["ci_high"] and eff["ci_high"] < 0
    lines, numbers = study.verdict(table, summary)
    assert lines[0].startswith("N(η → 0) = ") and "moves the threshold by" in lines[0]
    assert numbers["resolved"] and "resolved" in lines[-1]


def test_a_null_effect_is_not_reported_as_one():
    table, summary = study.summarise(_planted(lambda eta: 300.0), DESIGN)
    eff = first(table, part="effect")
    # η's variants share their draws, so a null gives equal N(η) and a zero-width interval
    # at 0 (up to the rounding of the fits): it holds 0
    assert eff["ci_low"] <= study.ZERO_EFFECT and eff["ci_high"] >= -study.ZERO_EFFECT
    lines, numbers = study.verdict(table, summary)
    assert not numbers["resolved"] and "cannot be told apart" in lines[-1]


def test_the_step_law_is_chosen_by_aic():
    eta = np.array(ETAS)
    se = np.full(4, 1.0)
    assert extrapolate_to_zero(eta, 300 + 40 * eta, se)["best"] == "linear"
    quad = extrapolate_to_zero(eta, 300 + 40 * eta**2, se)
    assert quad["best"] == "quadratic" and quad["quadratic"]["N0"] == pytest.approx(300)
    assert extrapolate_to_zero(eta[:2], eta[:2], se[:2])["best"] is None


TINY = study.Design(
    d=8,
    ns=(6, 12, 18, 24, 30),
    runs=6,
    d6=60,
    ns6=(10, 20, 40),
    runs6=3,
    boot=40,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(study.PRESETS, "quick", TINY)
    out = tmp_path_factory.mktemp("flow_study")
    try:
        res = run_study("flow", "quick", out, progress=False)
    finally:
        mp.undo()
    return out, res


def test_the_study_runs_end_to_end_on_the_same_draws(tiny):
    out, res = tiny
    for name in ("runs.parquet", "table.parquet", "flow.png", "flow.pdf", "study.md"):
        assert (out / name).exists(), name
    runs = read_parquet(out / "runs.parquet")
    gd = runs[runs["tag"].str.startswith("gd ")]
    # equal time horizons: η = 1/8 takes 8 times the steps of η = 1 for the same time
    t = gd.groupby("lr")["t_final"].max()
    assert t.max() <= t[1.0] * (1 + 1e-9)
    # the steps share their draws: the same L(0), run by run
    loss0 = gd.pivot_table(index=["n", "run"], columns="lr", values="loss0")
    np.testing.assert_allclose(loss0.to_numpy(), loss0[[1.0]].to_numpy().repeat(4, 1), rtol=1e-12)
    assert read_json(out / "summary.json")["verdicts"] == res["verdicts"]


def test_smaller_steps_without_a_fall_give_a_bound_not_a_negative_threshold():
    """The paper preset's finding, planted: GD with η = 1 falls at N = 260 while the
    smaller steps succeed at every n of the grid. Their logistic crossings then lie off
    the grid (negative), which must not be extrapolated: the verdict states N > n_max
    for them and a bound on the effect of η = 1, 1 − hi(N(1))/n_max."""
    runs = _planted(lambda eta: 260.0 if eta == 1 else 5000.0)
    table, summary = study.summarise(runs, DESIGN)
    assert summary["extrapolation"]["best"] is None
    lines, numbers = study.verdict(table, summary)
    n1 = first(table, part="threshold", variant="gd eta=1")
    assert n1 is not None and n1["ci_low"] <= 260 <= n1["ci_high"]
    assert (
        lines[0].startswith("N(1) = ")
        and "against N > 500 for η = 1/2, η = 1/4, η = 1/8" in lines[0]
    )
    assert numbers["beyond"] == 500
    assert numbers["effect_below"] == pytest.approx(-(1 - n1["ci_high"] / 500))
    assert not any("-" in w and w[1:2].isdigit() for w in lines[0].split() if w.startswith("-"))
