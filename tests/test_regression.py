"""Logistic regression with Fisher-information intervals (stats.regression): the 2×2 closed
forms of the MLE and of Firth's estimate, the coverage of the intervals on planted
coefficients, a finite estimate under separation, the delta-method ratio, and the
refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from shallowflow.errors import ShallowflowInputError
from shallowflow.stats.regression import (
    logistic_regression,
    ratio_of_coefficients,
    threshold_shifts,
)

# a 2×2 table: x = 1 has A successes and B failures, x = 0 has C and D
A, B, C, D = 7, 3, 2, 9


def _table(a=A, b=B, c=C, d=D) -> tuple[np.ndarray, np.ndarray]:
    x = np.r_[np.ones(a + b), np.zeros(c + d)]
    y = np.r_[np.ones(a), np.zeros(b), np.ones(c), np.zeros(d)]
    return x, y


def test_mle_of_a_two_by_two_table_is_its_log_odds_ratio_with_woolf_error():
    x, y = _table()
    fit = logistic_regression(x, y, ["x"], firth=False)
    coef = fit["coef"]["x"]
    assert fit["converged"]
    np.testing.assert_allclose(coef["value"], np.log(A * D / (B * C)), rtol=1e-10)
    np.testing.assert_allclose(coef["se"], np.sqrt(1 / A + 1 / B + 1 / C + 1 / D), rtol=1e-8)
    np.testing.assert_allclose(fit["coef"]["intercept"]["value"], np.log(C / D), rtol=1e-10)
    np.testing.assert_allclose(coef["ci_high"] - coef["value"], 1.959964 * coef["se"], rtol=1e-6)


@pytest.mark.parametrize("counts", [(A, B, C, D), (5, 0, 0, 6)], ids=["table", "separated"])
def test_firth_estimate_of_a_two_by_two_table_adds_one_half_to_each_count(counts):
    """Haldane's correction; it stays finite when x separates the outcomes (b = c = 0),
    where the MLE is infinite."""
    a, b, c, d = counts
    fit = logistic_regression(*_table(*counts), ["x"])
    want = np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
    assert fit["converged"]
    np.testing.assert_allclose(fit["coef"]["x"]["value"], want, rtol=1e-8)
    assert np.isfinite(fit["coef"]["x"]["se"])


def _planted(rng, beta, rows=600):
    x = np.column_stack([rng.standard_normal(rows), rng.integers(0, 5, rows)])
    y = rng.random(rows) < special.expit(beta[0] + x @ beta[1:])
    return x, y.astype(float)


def test_intervals_cover_planted_coefficients_at_their_level():
    beta = np.array([0.3, -1.2, 0.5])
    rng = np.random.default_rng(0)
    hits = np.zeros(3)
    fits = 200
    for _ in range(fits):
        fit = logistic_regression(*_planted(rng, beta), ["u", "k"])
        for i, name in enumerate(("intercept", "u", "k")):
            c = fit["coef"][name]
            hits[i] += c["ci_low"] <= beta[i] <= c["ci_high"]
    # 95% intervals: binomial(200, 0.95) lies in [181, 197] with probability > 0.99
    assert np.all(hits >= 181) and np.all(hits <= 197), hits


def test_ratio_of_coefficients_is_the_offsetting_change_with_its_delta_interval():
    """−β_k/β_u: a unit of k moves the 1/2 crossing in u by 0.5/1.2; the delta interval
    covers it."""
    beta = np.array([0.3, -1.2, 0.5])
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(100):
        fit = logistic_regression(*_planted(rng, beta, rows=1000), ["u", "k"])
        r = ratio_of_coefficients(fit, "k", "u")
        np.testing.assert_allclose(
            r["value"], -fit["coef"]["k"]["value"] / fit["coef"]["u"]["value"], rtol=1e-14
        )
        hits += r["ci_low"] <= 0.5 / 1.2 <= r["ci_high"]
    assert 88 <= hits <= 100


def test_threshold_shifts_recover_a_planted_shift_and_skip_a_constant_term():
    """logit P = −8 (n − 1 − 0.2 f): a unit of f moves the crossing in n by +0.2; a term
    that never varies leaves its model unfitted (None)."""
    rng = np.random.default_rng(2)
    n = rng.uniform(0.5, 1.5, 4000)
    f = rng.integers(0, 2, 4000).astype(float)
    y = (rng.random(4000) < special.expit(-8.0 * (n - 1.0 - 0.2 * f))).astype(float)
    out = threshold_shifts(n - 1.0, {"f": f, "c": np.ones(4000)}, y, {"f": ("f",), "c": ("c",)})
    shift = out["f"]["shift"]["f"]
    assert shift["ci_low"] <= 0.2 <= shift["ci_high"] and shift["ci_high"] - shift["ci_low"] < 0.1
    assert out["c"] is None


@pytest.mark.parametrize(
    ("x", "y", "names", "match"),
    [
        (np.ones((5, 1)), np.r_[0, 1, 0, 1, 1], ["x"], "covariates"),
        (np.arange(5.0)[:, None], np.r_[0, 1, 0, 1, 2], ["x"], "outcome"),
        (np.arange(5.0)[:, None], np.r_[0, 1, 0, 1, 1], ["x", "z"], "names"),
        (np.r_[0, np.nan, 1, 2, 3][:, None], np.r_[0, 1, 0, 1, 1], ["x"], "covariates"),
    ],
    ids=["constant", "not-binary", "names", "nan"],
)
def test_bad_input_is_refused_naming_the_parameter(x, y, names, match):
    with pytest.raises(ShallowflowInputError, match=match):
        logistic_regression(x, y, names)
