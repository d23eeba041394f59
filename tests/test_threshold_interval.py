"""The threshold's point estimate and its interval come from one likelihood.

``fit_threshold`` estimates N by the Firth-penalised likelihood; its profile interval
must be that likelihood's too, or near separation the estimate can fall outside its own
interval (``reproduce fig5 --preset paper`` printed ``p = 390: N = 391.5 [367.2, 390.1]``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from shallowflow.stats import logistic as lg
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


# (sizes, runs per size, planted N, 1/s) of P(n) = 1/(1 + exp(s (n − N))): Fig. 3-like
# designs, from a fall gentler than the spacing of the sizes to a step off the middle of
# a gap (where the penalised interval alone keeps only the gap's middle).
FIG3 = np.arange(130.0, 431.0, 50.0)
NINE, EIGHT = np.linspace(100.0, 500.0, 9), np.linspace(100.0, 500.0, 8)
PLANTED = [
    (FIG3, 24, 280.0, 25.0),
    (FIG3, 24, 290.0, 4.0),
    (FIG3, 12, 340.0, 1.0),
    (NINE, 10, 260.0, 40.0),
    (NINE, 10, 330.0, 10.0),
    (NINE, 16, 205.0, 3.0),
    (EIGHT, 16, 250.0, 15.0),
    (EIGHT, 16, 370.0, 60.0),
]
SETS = 60  # data sets per placement


def test_coverage_of_planted_thresholds():
    """On 8 × 60 planted data sets the 95% interval (the union of the plain and the
    penalised likelihood's) holds the plain likelihood's interval (the one before it), so it
    covers the planted N wherever that did. Its pooled coverage is at least the 0.1%
    quantile of Bin(480, 0.95), 440/480: a true 95% fails with probability 7e-4. Measured
    off-suite (2400 sets, 12 placements): plain 97.0%, union 97.7%, the penalised interval
    alone 81.6% (0% for a step at 340 between sizes 330 and 380, 54% for a fall of scale 4
    at 290 on the quick Fig. 3 grid)."""
    q = (lg.chi2_1(0.95),)
    covers = {"plain": 0, "both": 0}
    for i, (ns, runs, planted, scale) in enumerate(PLANTED):
        rng = np.random.default_rng(i)
        c, h = ns.mean(), ns.std()
        z, r = (ns - c) / h, np.full(ns.size, float(runs))
        for _ in range(SETS):
            k = rng.binomial(runs, special.expit(-(ns - planted) / scale)).astype(float)
            beta, _ = lg.fit_point(z, k, r)
            plain = c + h * np.array(lg.profile_interval(z, k, r, beta, q, likelihood="plain")[0])
            both = c + h * np.array(lg.profile_interval(z, k, r, beta, q)[0])
            tol = 1e-6 * (ns[-1] - ns[0])  # each end is refined to ~1e-7 in log-likelihood
            assert both[0] <= plain[0] + tol and both[1] >= plain[1] - tol
            covers["plain"] += bool(plain[0] <= planted <= plain[1])
            covers["both"] += bool(both[0] <= planted <= both[1])
    total = len(PLANTED) * SETS
    print({kind: f"{hits / total:.3f}" for kind, hits in covers.items()})
    assert covers["both"] >= covers["plain"]
    assert covers["both"] >= stats.binom.ppf(0.001, total, 0.95)
