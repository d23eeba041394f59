"""The threshold's point estimate and its interval come from one likelihood.

``fit_threshold`` estimates N by the Firth-penalised likelihood; its profile interval
must be that likelihood's too, or near separation the estimate can fall outside its own
interval (``reproduce fig5 --preset paper`` printed ``p = 390: N = 391.5 [367.2, 390.1]``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from shallowflow.stats.thresholds import fit_level, fit_threshold

# The evaluations of Fig. 5's adaptive search at p = 390 (paper preset).
FIG5_N = [270, 355, 370, 470, 675, 880, 1080]
FIG5_K = [10, 10, 6, 0, 0, 0, 0]


def test_fig5_p390_estimate_inside_its_interval():
    fit = fit_threshold(FIG5_N, FIG5_K, [10] * 7)
    assert fit.ci_low <= fit.threshold <= fit.ci_high, (fit.threshold, fit.ci_low, fit.ci_high)


@st.composite
def planted_designs(draw):
    """3–9 distinct sizes, 4–40 runs each, successes drawn from a planted logistic fall
    ``P(n) = σ(−(n − N)/scale)``, from gentle (scale ≫ spacing) to near-separated
    (scale ≪ spacing), N anywhere from below the sizes to above them."""
    m = draw(st.integers(3, 9))
    gaps = draw(st.lists(st.integers(1, 60), min_size=m - 1, max_size=m - 1))
    n = 100.0 + np.cumsum([0, *gaps]).astype(float)
    runs = np.array(draw(st.lists(st.integers(4, 40), min_size=m, max_size=m)))
    planted = draw(st.floats(n[0] - 20.0, n[-1] + 20.0))
    scale = draw(st.sampled_from([0.01, 0.5, 2.0, 5.0, 15.0, 50.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    prob = special.expit(-(n - planted) / scale)
    return n, np.random.default_rng(seed).binomial(runs, prob), runs


@settings(max_examples=150, deadline=None)
@given(design=planted_designs(), level=st.sampled_from([0.68, 0.95]))
def test_estimate_inside_its_interval(design, level):
    n, k, runs = design
    fit = fit_threshold(n, k, runs, level=level)
    if np.isfinite(fit.threshold):
        assert fit.ci_low <= fit.threshold <= fit.ci_high, (fit.ci_low, fit.threshold, fit.ci_high)


@settings(max_examples=60, deadline=None)
@given(design=planted_designs(), q=st.sampled_from([0.1, 0.5, 0.9]))
def test_level_estimate_inside_its_interval(design, q):
    n, k, runs = design
    fit = fit_level(n, k, runs, q)
    if np.isfinite(fit.threshold):
        assert fit.ci_low <= fit.threshold <= fit.ci_high, (fit.ci_low, fit.threshold, fit.ci_high)
