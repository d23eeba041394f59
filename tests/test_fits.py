"""Tests for stats/fits.py: Fig. 5's growth laws compared by likelihood (``growth_laws``), and
the activations study's width laws (constant, log, power) with their intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shallowflow.errors import ShallowflowInputError
from shallowflow.stats.fits import (
    GROWTH_LAWS,
    WIDTH_LAWS,
    growth_laws,
    law_interval,
    law_table,
    power_interval,
)

P = np.arange(50.0, 401.0, 10.0)  # Fig. 5's widths (paper preset)
TRUTH = {  # each law through N ≈ 150–550 over P, like Fig. 5's thresholds
    "power": ({"gamma": 0.5, "c": 27.4}, lambda p: 27.4 * p**0.5),
    "linear": ({"a": 0.6, "b": 130.0}, lambda p: 0.6 * p + 130.0),
    "log": ({"a": 120.0, "b": -260.0}, lambda p: 120.0 * np.log(p) - 260.0),
}


@pytest.mark.parametrize("law", GROWTH_LAWS)
def test_noiseless_data_recovered_exactly(law):
    params, curve = TRUTH[law]
    n = curve(P)
    se = 0.05 * n
    fit = growth_laws(P, n, se)
    assert fit["best"] == law and fit["n"] == P.size
    for name, value in params.items():
        assert fit[law][name] == pytest.approx(value, rel=1e-8)
    assert fit[law]["chi2"] == pytest.approx(0.0, abs=1e-12)
    assert fit[law]["weight"] == max(fit[other]["weight"] for other in GROWTH_LAWS)
    # with the SEs known, the parameter SEs do not depend on the residuals: γ's is
    # 1/√(Σ (∂f/∂γ / se)²) to first order for the power law
    assert 0 < fit[law]["se_" + next(iter(params))] < np.inf


def test_true_law_wins_by_aic():
    """Gaussian noise at known SEs of 5% of N on Fig. 5's 36 widths. Measured over 2000 data
    sets per law: the true law wins by AIC in 98.6% (power), 98.8% (linear) and 91.1% (log)
    of them, the log law losing to the power law (8.9%), which it resembles over
    p = 50..400. Here 200 sets per law, asserting ≥ 85% (a 91% rate fails that with
    probability ~2e-3)."""
    rng = np.random.default_rng(0)
    for law, (_, curve) in TRUTH.items():
        n = curve(P)
        se = 0.05 * n
        wins = [
            growth_laws(P, n + se * rng.standard_normal(P.size), se)["best"] == law
            for _ in range(200)
        ]
        assert np.mean(wins) >= 0.85, (law, np.mean(wins))


def test_power_law_slope_and_its_se_are_calibrated():
    _, curve = TRUTH["power"]
    rng = np.random.default_rng(1)
    n = curve(P)
    se = 0.05 * n
    fits = [growth_laws(P, n + se * rng.standard_normal(P.size), se)["power"] for _ in range(300)]
    gamma = np.array([f["gamma"] for f in fits])
    se_gamma = np.array([f["se_gamma"] for f in fits])
    assert abs(gamma.mean() - 0.5) < 3 * gamma.std() / math.sqrt(gamma.size)
    assert np.median(se_gamma) == pytest.approx(gamma.std(), rel=0.15)
    chi2 = np.array([f["chi2"] for f in fits])
    assert chi2.mean() == pytest.approx(P.size - 2, rel=0.1)  # χ² with m − 2 dof


def test_weights_sum_to_one_and_aic_is_consistent():
    rng = np.random.default_rng(2)
    n = TRUTH["log"][1](P)
    se = 0.08 * n
    fit = growth_laws(P, n + se * rng.standard_normal(P.size), se)
    weights = np.array([fit[law]["weight"] for law in GROWTH_LAWS])
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    aic = np.array([fit[law]["aic"] for law in GROWTH_LAWS])
    assert fit["best"] == GROWTH_LAWS[int(np.argmin(aic))]
    for law in GROWTH_LAWS:
        f = fit[law]
        const = float(np.sum(np.log(2 * math.pi * se**2)))
        assert f["loglik"] == pytest.approx(-0.5 * (f["chi2"] + const))
        assert f["aic"] == pytest.approx(4 - 2 * f["loglik"])
        assert f["delta_aic"] == pytest.approx(f["aic"] - aic.min())
        assert f["aicc"] - f["aic"] == pytest.approx(12 / (P.size - 3))  # same for every law
        assert f["dof"] == P.size - 2


def test_a_point_with_a_huge_se_barely_moves_the_fit():
    rng = np.random.default_rng(3)
    n = TRUTH["power"][1](P)
    se = 0.05 * n
    noisy = n + se * rng.standard_normal(P.size)
    base = growth_laws(P, noisy, se)
    wild = growth_laws(np.r_[P, 200.0], np.r_[noisy, 5000.0], np.r_[se, 1e7])
    dropped = growth_laws(np.r_[P, 200.0], np.r_[noisy, 5000.0], np.r_[se, np.inf])
    for law in GROWTH_LAWS:
        for name in ("gamma", "c") if law == "power" else ("a", "b"):
            assert wild[law][name] == pytest.approx(base[law][name], rel=1e-6)
            assert dropped[law][name] == pytest.approx(base[law][name], rel=1e-12)
    assert wild["best"] == base["best"] and dropped["n"] == P.size


def test_degenerate_input():
    one = growth_laws([100.0, 100.0], [300.0, 310.0], [5.0, 5.0])
    assert one["best"] is None and math.isnan(one["power"]["gamma"])
    none = growth_laws([100.0, 200.0], [300.0, 400.0], [0.0, np.nan])
    assert none["n"] == 0 and none["best"] is None
    with pytest.raises(ShallowflowInputError) as err:
        growth_laws([1.0, 2.0], [1.0, 2.0], [1.0])
    assert err.value.param == "se"


# ------------------------------------------------------------- WIDTH_LAWS (activations study)

N_GRID = 2.0 ** np.arange(5, 11)  # the activations study's n = 32 … 1024
WIDTH_TRUTH = {
    "constant": lambda n: np.full_like(n, 4.0),
    "log": lambda n: 3.5 * np.log(n) - 2.0,
    "power": lambda n: 1.5 * n**0.45,
}


def test_constant_law_is_the_weighted_mean_with_one_parameter():
    """The constant law's level is Σ(y/se²)/Σ(1/se²) with se (Σ 1/se²)^(−1/2), and its AIC
    counts one parameter, so on constant data it beats the two-parameter laws by ≥ 2 −
    their gain in χ² (each nests the constant)."""
    rng = np.random.default_rng(5)
    se = rng.uniform(0.2, 0.6, N_GRID.size)
    y = 4.0 + se * rng.standard_normal(N_GRID.size)
    fit = growth_laws(N_GRID, y, se, laws=WIDTH_LAWS)
    w = 1 / se**2
    assert fit["constant"]["b"] == pytest.approx(np.sum(w * y) / np.sum(w), rel=1e-12)
    assert fit["constant"]["se_b"] == pytest.approx(1 / math.sqrt(np.sum(w)), rel=1e-12)
    assert fit["constant"]["dof"] == N_GRID.size - 1
    assert fit["constant"]["aic"] == pytest.approx(2 - 2 * fit["constant"]["loglik"])
    for law in ("log",):  # a log p + b with a = 0 is the constant: χ² can only fall
        gain = fit["constant"]["chi2"] - fit[law]["chi2"]
        assert gain >= -1e-9
        assert fit[law]["aic"] - fit["constant"]["aic"] == pytest.approx(2 - gain)
    with pytest.raises(ShallowflowInputError, match="laws: must be among"):
        growth_laws(N_GRID, y, se, laws=("constant", "cubic"))


@pytest.mark.parametrize("law", WIDTH_LAWS)
def test_width_laws_tell_the_planted_law_and_cover_its_parameter(law):
    """p_0.9-like values (se 0.6 neurons) on the activations study's six n: the planted law
    wins by AIC in most sets, and its key parameter's 95% interval (law_table) covers the
    truth in about 95% of them."""
    truth = {"constant": 4.0, "log": 3.5, "power": 0.45}[law]
    rng = np.random.default_rng(6)
    y0, se = WIDTH_TRUTH[law](N_GRID), np.full(N_GRID.size, 0.6)
    wins, covers = [], []
    for _ in range(200):
        rows = {r["law"]: r for r in law_table(N_GRID, y0 + se * rng.standard_normal(y0.size), se)}
        wins.append(rows[law]["best"])
        covers.append(rows[law]["ci_low"] <= truth <= rows[law]["ci_high"])
    # measured: 81% (constant: the log law gains 2 in χ² by chance in ~16%), 90%, 100%
    assert np.mean(wins) >= {"constant": 0.7, "log": 0.75, "power": 0.9}[law], np.mean(wins)
    assert 0.9 <= np.mean(covers) <= 0.99, np.mean(covers)


def test_law_interval_is_the_power_interval_for_the_power_law():
    rng = np.random.default_rng(7)
    y = WIDTH_TRUTH["power"](N_GRID) * (1 + 0.05 * rng.standard_normal(N_GRID.size))
    fit = growth_laws(N_GRID, y, 0.05 * y, laws=WIDTH_LAWS)
    lo, hi, _ = power_interval(fit["power"])
    assert law_interval(fit["power"], "power") == (fit["power"]["gamma"], lo, hi)
