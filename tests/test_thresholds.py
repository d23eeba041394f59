"""Tests for stats/thresholds.py: Hoeffding bars and the threshold N(d, p)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from shallowflow.errors import ShallowflowInputError
from shallowflow.stats import logistic as lg
from shallowflow.stats.design import adaptive_threshold
from shallowflow.stats.thresholds import (
    clopper_pearson,
    fit_level,
    fit_threshold,
    hoeffding_halfwidth,
    paired_bootstrap,
    success_bars,
)

# Fig. 3's grid and runs, with a planted logistic threshold.
GRID = np.arange(1300, 2101, 50)
RUNS = 80
PLANTED, SCALE = 1700.0, 50.0
N_REPS, N_BOOT = 200, 300


def planted_probability(n):
    return special.expit(-(np.asarray(n, dtype=float) - PLANTED) / SCALE)


def simulate(n: int, runs: int, rng_seed: int) -> int:
    return int(np.random.default_rng(rng_seed).binomial(runs, planted_probability(n)))


@pytest.fixture(scope="module")
def grid_fits():
    fits = []
    for seed in range(N_REPS):
        k = np.random.default_rng(seed).binomial(RUNS, planted_probability(GRID))
        fits.append(fit_threshold(GRID, k, RUNS, n_boot=N_BOOT, seed=seed))
    return fits


# --------------------------------------------------------------------------- Hoeffding bars


def test_hoeffding_halfwidth_formulas():
    r = np.array([20, 80, 500])
    np.testing.assert_allclose(hoeffding_halfwidth(r), np.sqrt(np.log(2 / 0.05) / (2 * r)))
    np.testing.assert_allclose(
        hoeffding_halfwidth(r, 0.05, one_sided=True), np.sqrt(np.log(1 / 0.05) / (2 * r))
    )
    assert hoeffding_halfwidth(80, alpha=0.1) == pytest.approx(np.sqrt(np.log(20) / 160))
    assert isinstance(hoeffding_halfwidth(80), float)


def test_success_bars_clipped_and_one_sided():
    k, r = np.array([0, 1, 40, 79, 80]), 80
    lower, upper = success_bars(k, r)
    two, one = np.sqrt(np.log(40) / 160), np.sqrt(np.log(20) / 160)
    np.testing.assert_allclose([lower[0], upper[0]], [0.0, one])
    np.testing.assert_allclose([lower[-1], upper[-1]], [1.0 - one, 1.0])
    np.testing.assert_allclose([lower[2], upper[2]], [0.5 - two, 0.5 + two])
    assert lower[1] == 0.0 and upper[1] == pytest.approx(1 / 80 + two)  # clipped below
    assert upper[3] == 1.0 and lower[3] == pytest.approx(79 / 80 - two)  # clipped above


@given(runs=st.integers(1, 500), data=st.data())
def test_success_bars_bracket_fraction(runs, data):
    k = data.draw(st.integers(0, runs))
    lower, upper = success_bars([k], [runs])
    assert 0.0 <= lower[0] <= k / runs <= upper[0] <= 1.0


# --------------------------------------------------------------------------- threshold fit


def test_fit_recovers_planted_threshold(grid_fits):
    covered = np.mean([f.ci_low <= PLANTED <= f.ci_high for f in grid_fits])
    estimates = np.array([f.threshold for f in grid_fits])
    slopes = np.array([f.slope for f in grid_fits])
    print(
        f"coverage {covered:.3f}, bias {estimates.mean() - PLANTED:+.2f}, sd {estimates.std():.2f}"
    )
    assert covered >= 0.85
    assert abs(estimates.mean() - PLANTED) < 4 * estimates.std() / np.sqrt(N_REPS) + 0.5
    assert abs(np.median(slopes) * SCALE - 1.0) < 0.1
    assert all(f.converged and f.n_runs == RUNS * GRID.size for f in grid_fits)


def test_fit_curve_is_consistent():
    k = np.random.default_rng(7).binomial(RUNS, planted_probability(GRID))
    fit = fit_threshold(GRID, k, RUNS, n_boot=50)
    assert fit.predict(fit.threshold) == pytest.approx(0.5)
    assert fit.intercept == pytest.approx(fit.slope * fit.threshold)
    assert fit.ci_low < fit.threshold < fit.ci_high
    assert fit.ci_width == pytest.approx(fit.ci_high - fit.ci_low)


def test_point_and_bootstrap_optimisers_agree():
    k = np.random.default_rng(3).binomial(RUNS, planted_probability(GRID)).astype(float)
    z = (GRID - GRID.mean()) / GRID.std()
    r = np.full(GRID.size, float(RUNS))
    beta, converged = lg.fit_point(z, k, r)
    batch = lg.fit_batch(z, k[None, :], r, np.zeros((1, 2)))
    assert converged
    np.testing.assert_allclose(batch[0], beta, atol=1e-6)


def test_increasing_curve_gives_negative_slope():
    k = np.random.default_rng(5).binomial(RUNS, 1.0 - planted_probability(GRID))
    fit = fit_threshold(GRID, k, RUNS, n_boot=50)
    assert fit.slope < 0 and abs(fit.threshold - PLANTED) < 30


def test_flat_data_has_no_threshold():
    fit = fit_threshold(GRID, np.full(GRID.size, 40), RUNS, n_boot=20)
    assert np.isnan(fit.threshold) and fit.slope == pytest.approx(0.0)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(2, 12),
    data=st.data(),
    runs=st.integers(1, 100),
    step=st.sampled_from([1.0, 10.0, 50.0]),
)
def test_separated_data_threshold_in_gap(size, data, runs, step):
    gap = data.draw(st.integers(1, size - 1))
    n = 1000.0 + step * np.arange(size)
    k = np.where(np.arange(size) < gap, runs, 0)
    fit = fit_threshold(n, k, runs, n_boot=30)
    assert fit.converged
    assert n[gap - 1] <= fit.threshold <= n[gap]
    if runs >= 2:  # the penalised estimate itself sits well inside the gap
        middle = 0.5 * (n[gap - 1] + n[gap])
        assert abs(fit.threshold - middle) < 0.1 * step


def test_separated_fig3_grid():
    k = np.where(GRID <= 1650, RUNS, 0)
    fit = fit_threshold(GRID, k, RUNS, n_boot=200)
    assert fit.converged and fit.threshold == pytest.approx(1675.0, abs=0.5)
    assert 1650 <= fit.ci_low < fit.ci_high <= 1700
    assert fit.slope > 0


def test_single_run_separation_is_clipped():
    n = 1000.0 + np.arange(10)
    k = np.r_[1, np.zeros(9)]
    fit = fit_threshold(n, k, 1)
    assert 1000.0 <= fit.threshold <= 1001.0
    # one success below nine failures: a significant fall for the plain likelihood, whose
    # interval is bounded and holds the whole gap (1000, 1001) the data cannot resolve; with
    # one run per size the penalty weighs as much as the data, and the penalised likelihood
    # cannot reject a gentle curve crossing far below: the union is unbounded there
    z = (n - n.mean()) / n.std()
    beta, _ = lg.fit_point(z, k, np.ones(10))
    q = (lg.chi2_1(0.95),)
    plain = lg.profile_interval(z, k, np.ones(10), beta, q, likelihood="plain")[0]
    lo, hi = (n.mean() + n.std() * e for e in plain)
    assert np.isfinite(lo) and lo < 1000.0 and 1001.0 < hi < 1009.0
    assert fit.ci_low == -np.inf and hi <= fit.ci_high < 1009.0
    boot = fit_threshold(n, k, 1, n_boot=200, interval="bootstrap")
    assert boot.ci_low == -np.inf and np.isfinite(boot.ci_high)


# --------------------------------------------------------------------------- the interval


def test_bootstrap_interval_is_the_previous_one():
    """``interval="bootstrap"`` gives what the percentile bootstrap gave before the profile
    interval became the default (numbers from commit cd36d5a)."""
    k = np.random.default_rng(7).binomial(RUNS, planted_probability(GRID))
    par = fit_threshold(GRID, k, RUNS, n_boot=200, seed=3, interval="bootstrap")
    non = fit_threshold(
        GRID, k, RUNS, n_boot=200, seed=3, interval="bootstrap", bootstrap="nonparametric"
    )
    assert par.threshold == pytest.approx(1703.1263298377428, rel=1e-9)
    assert (par.ci_low, par.ci_high) == pytest.approx((1692.4977892016943, 1715.6337153489317))
    assert (non.ci_low, non.ci_high) == pytest.approx((1692.4983780073408, 1713.7606318370738))


@settings(max_examples=30, deadline=None)
@given(
    runs=st.lists(st.integers(1, 30), min_size=3, max_size=8),
    steep=st.floats(0.5, 20),
    seed=st.integers(0, 2**32 - 1),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_profile_loglik_is_the_supremum_over_the_slope(runs, steep, seed, sign):
    rng = np.random.default_rng(seed)
    r = np.array(runs, dtype=float)
    z = np.sort(rng.normal(size=r.size))
    k = rng.binomial(r.astype(int), special.expit(-steep * z)).astype(float)
    z0 = np.r_[rng.normal(size=3) * 2, z[1], 1e6]
    got = lg.profile_loglik(z, k, r, z0, sign)
    for value, t in zip(got, z0, strict=True):
        d = sign * (t - z) / np.abs(t - z).max()  # β in units of 1/max|d|: the sup is unchanged

        def nll(b, d=d):
            return -float(
                np.sum(k * special.log_expit(b * d) + (r - k) * special.log_expit(-b * d))
            )

        scales = [0.0, *10.0 ** np.arange(-4.0, 9.0)]
        brute = min(nll(b) for b in scales)
        for lo, hi in zip(scales, scales[1:], strict=False):
            res = optimize.minimize_scalar(
                nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10 * hi}
            )
            brute = min(brute, res.fun)
        assert value == pytest.approx(-brute, abs=1e-6)


def _drops(z, k, r, ends, sign, offset=0.0):
    """Twice the fall of the plain and of the penalised profile from their tops (on a fine
    grid) to each of ``ends`` (standardised), the statistics whose cut ends the interval."""
    grid = np.linspace(-3, 3, 20001)
    out = []
    for profile in (lg.profile_loglik, lg.penalised_profile_loglik):
        top = profile(z, k, r, grid, sign, offset).max()
        out.append(2 * (top - profile(z, k, r, np.asarray(ends), sign, offset)))
    return np.array(out)


def test_profile_interval_ends_are_the_likelihood_ratio_cut():
    """Each end of the interval (the union of the plain and the penalised likelihood's) is
    the χ²₁(0.95) cut of one profile, and the other has fallen at least as far there."""
    k = np.random.default_rng(11).binomial(RUNS, planted_probability(GRID)).astype(float)
    fit = fit_threshold(GRID, k, RUNS)
    c, h = GRID.mean(), GRID.std()
    z, r = (GRID - c) / h, np.full(GRID.size, float(RUNS))
    drops = _drops(z, k, r, (np.array([fit.ci_low, fit.ci_high]) - c) / h, 1.0)
    np.testing.assert_allclose(drops.min(0), 3.8415, atol=2e-3)  # χ²₁(0.95)
    assert fit.ci_low < fit.threshold < fit.ci_high
    # the one-sigma counterpart: half the χ²₁ = 1 interval, about the 95% half-width / 1.96
    assert fit.se == pytest.approx(fit.ci_width / (2 * 1.96), rel=0.15)


def test_se_profile_and_bootstrap_agree_on_a_smooth_curve():
    k = np.random.default_rng(12).binomial(RUNS, planted_probability(GRID))
    prof = fit_threshold(GRID, k, RUNS)
    boot = fit_threshold(GRID, k, RUNS, n_boot=1000, interval="bootstrap")
    assert 0 < prof.se < np.inf and 0 < boot.se < np.inf
    assert prof.se == pytest.approx(boot.se, rel=0.25)
    assert prof.ci_width == pytest.approx(boot.ci_width, rel=0.25)


def test_separated_interval_is_the_unresolved_gap():
    """All successes up to 280, all failures from 330: any N in the gap fits as well as any
    other (a step), so the interval is the gap, not a band around its middle."""
    ns = np.arange(130, 431, 50)
    fit = fit_threshold(ns, np.where(ns <= 280, 24, 0), 24)
    assert fit.ci_low == pytest.approx(280.0, abs=1e-3) and fit.ci_low >= 280.0
    assert fit.ci_high == pytest.approx(330.0, abs=1e-3) and fit.ci_high <= 330.0
    assert fit.se == pytest.approx(25.0, abs=1e-3)


def test_interval_unbounded_without_a_significant_fall():
    ns = np.arange(130, 431, 50)
    fit = fit_threshold(ns, [13, 12, 11, 12, 13, 11, 12], 24)
    assert (fit.ci_low, fit.ci_high, fit.se) == (-np.inf, np.inf, np.inf)
    # a fall that is significant but could still end far beyond the range on the right
    fit = fit_threshold(ns, [24, 24, 24, 24, 24, 24, 20], 24)
    assert np.isfinite(fit.ci_low) and fit.ci_high > 430


STEEP = [(280.0, 25.0), (190.0, 25.0), (290.0, 4.0), (300.0, 6.0)]


@pytest.mark.parametrize(("planted", "scale"), STEEP)
def test_grid_coverage_when_the_fall_is_sharper_than_the_spacing(planted, scale):
    """Fig. 3's quick grid (n = 130..430 step 50, 24 runs): 150 data sets per placement.
    The percentile bootstrap covered the off-centre steep placement (290, 1/s = 4) in 24%
    of cases; the profile interval covers it, the smooth ones too (measured off-suite,
    400 sets: see the report of this change)."""
    ns = np.arange(130, 431, 50)
    prob = special.expit(-(ns - planted) / scale)
    hits = []
    for seed in range(150):
        k = np.random.default_rng(seed).binomial(24, prob)
        fit = fit_threshold(ns, k, 24)
        hits.append(fit.ci_low <= planted <= fit.ci_high)
    assert np.mean(hits) >= 0.9


counts = st.lists(st.tuples(st.integers(1, 60), st.floats(0, 1)), min_size=3, max_size=10)


def _data(rows):
    runs = np.array([r for r, _ in rows])
    return runs, np.floor(runs * np.array([f for _, f in rows])).astype(int)


@settings(max_examples=40, deadline=None)
@given(rows=counts, shift=st.floats(-1e4, 1e4), scale=st.floats(0.1, 100))
def test_threshold_equivariant_under_affine_n(rows, shift, scale):
    runs, k = _data(rows)
    n = np.arange(len(rows)) * 10.0
    base = fit_threshold(n, k, runs, n_boot=20, seed=1)
    assume(np.isfinite(base.threshold) and abs(base.threshold) < 1e4)
    moved = fit_threshold(scale * n + shift, k, runs, n_boot=20, seed=1)
    tol = 1e-5 * (abs(shift) + scale * (abs(base.threshold) + 100))
    assert moved.threshold == pytest.approx(scale * base.threshold + shift, abs=tol)
    assert moved.slope == pytest.approx(base.slope / scale, rel=1e-4, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(rows=counts)
def test_threshold_reflects_with_success_failure_swap(rows):
    runs, k = _data(rows)
    n = np.arange(len(rows)) * 10.0
    fit = fit_threshold(n, k, runs, n_boot=20)
    assume(np.isfinite(fit.threshold) and abs(fit.threshold) < 1e4)
    mirror = fit_threshold(-n, runs - k, runs, n_boot=20)
    assert mirror.threshold == pytest.approx(-fit.threshold, abs=1e-4 * (abs(fit.threshold) + 10))
    assert mirror.slope == pytest.approx(fit.slope, rel=1e-4, abs=1e-9)


# --------------------------------------------------------------------------- adaptive design


def test_adaptive_matches_grid_width_with_fewer_runs(grid_fits):
    target = float(np.median([f.ci_width for f in grid_fits]))
    grid_runs = RUNS * GRID.size
    results = [
        adaptive_threshold(simulate, 1300, 2100, 20, target, grid_runs, seed=s, n_boot=200)
        for s in range(30)
    ]
    used = np.array([res.total_runs for res in results])
    covered = np.mean([res.fit.ci_low <= PLANTED <= res.fit.ci_high for res in results])
    print(f"target {target:.1f}, runs {used.mean():.0f} vs {grid_runs}, coverage {covered:.2f}")
    assert all(res.reached_target and res.fit.ci_width <= target for res in results)
    assert used.max() < grid_runs and used.mean() < 0.6 * grid_runs
    assert covered >= 0.8
    for res in results:
        assert res.total_runs == sum(r for _, r, _ in res.evaluations) == res.fit.n_runs
        assert all(1300 <= n <= 2100 and 0 <= k <= r for n, r, k in res.evaluations)


def test_adaptive_respects_budget_and_step():
    res = adaptive_threshold(simulate, 1300, 2100, 30, 1e-3, 400, seed=1, n_step=50, n_boot=50)
    assert not res.reached_target and res.total_runs == 400
    assert all((n - 1300) % 50 == 0 for n, _, _ in res.evaluations)
    assert res.evaluations[-1][1] == 400 - 13 * 30  # last batch cut to the budget


# --------------------------------------------------------------------------- bad input


def _fit(**kw):
    args = dict(n=GRID[:3], successes=[5, 3, 1], runs=6)
    return lambda: fit_threshold(**(args | kw))


def _adapt(**kw):
    args = dict(
        simulate=simulate, n_min=1300, n_max=2100, runs_per_point=10, target_width=10.0
    ) | dict(max_runs=200)
    return lambda: adaptive_threshold(**(args | kw))


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda: hoeffding_halfwidth(0), "runs"),
        (lambda: hoeffding_halfwidth([]), "runs"),
        (lambda: hoeffding_halfwidth(10, alpha=0.0), "alpha"),
        (lambda: success_bars([], []), "successes"),
        (lambda: success_bars([3], [2]), "successes"),
        (lambda: success_bars([-1], [2]), "successes"),
        (lambda: success_bars([1, 2], [2, 2, 2]), "runs"),
        (_fit(n=[], successes=[], runs=[]), "n"),
        (_fit(n=[1, 1, 1]), "n"),
        (_fit(n=[1, 2, np.nan]), "n"),
        (_fit(successes=[7, 3, 1]), "successes"),
        (_fit(successes=[-1, 3, 1]), "successes"),
        (_fit(successes=[1.5, 3, 1]), "successes"),
        (_fit(successes=[5, 3]), "successes"),
        (_fit(runs=0), "runs"),
        (_fit(n_boot=0), "n_boot"),
        (_fit(level=1.0), "level"),
        (_fit(bootstrap="jackknife"), "bootstrap"),
        (_fit(interval="wald"), "interval"),
        (_adapt(n_max=1300), "n_max"),
        (_adapt(n_step=0), "n_step"),
        (_adapt(runs_per_point=0), "runs_per_point"),
        (_adapt(target_width=0.0), "target_width"),
        (_adapt(max_runs=10), "max_runs"),
        (_adapt(simulate=lambda n, r, s: r + 1), "simulate"),
    ],
)
def test_bad_input_names_parameter(call, param):
    with pytest.raises(ShallowflowInputError) as err:
        call()
    assert err.value.param == param


def test_fig3_verdict_says_no_fall_when_the_crossing_is_off_the_grid():
    """Fig. 3 (quick) under the exact flow: success 1.00, 0.92, 0.96, 1.00, ... at
    n = 130..430 has no fall on the grid; the logistic crossing then lies far outside
    it (a negative N was printed as the threshold). The verdict must say that the curve
    does not cross 1/2 on the grid, name the grid, and never print the crossing as N."""
    import pandas as pd

    from shallowflow.experiments.figures import fig3

    ns = [130, 180, 230, 280, 330, 380, 430]
    wins = [25, 23, 24, 25, 25, 25, 24]
    rows = [
        {
            "n": n,
            "d": 100,
            "p": 10,
            "success": i < w,
            "final_loss": 0.0 if i < w else 0.5,
            "loss0": 1.0,
        }
        for n, w in zip(ns, wins, strict=True)
        for i in range(25)
    ]
    pts, summary = fig3.summarise(pd.DataFrame(rows), None)  # pyright: ignore[reportArgumentType]
    assert not summary["threshold"]["inside_grid"]
    lines, sharp = fig3.verdict(pts, summary, None)  # pyright: ignore[reportArgumentType]
    assert not sharp
    text = " ".join(lines)
    assert "does not cross 1/2 on the grid n = 130–430 (success fraction 0.92–1)" in text
    assert f"threshold N = {summary['threshold']['N']:.4g}" not in text


# --------------------------------------------------------------------------- paired bootstrap


def _paired_hits(rng, thresholds, runs=100, shared=True):
    """Variants × GRID × runs successes, u < P(n; N_v): one uniform per (n, run) shared
    by every variant (shared draws), or one per variant."""
    u = rng.random((GRID.size, runs))
    rows = []
    for big_n in thresholds:
        prob = special.expit(-(GRID.astype(float) - big_n) / SCALE)[:, None]
        rows.append((u if shared else rng.random(u.shape)) < prob)
    return np.stack(rows)


def test_paired_bootstrap_gives_identical_variants_identical_replicates():
    hits = _paired_hits(np.random.default_rng(0), [PLANTED, PLANTED])
    reps = paired_bootstrap(GRID, hits, 200)
    assert reps.shape == (200, 2)
    np.testing.assert_allclose(reps[:, 0], reps[:, 1], rtol=1e-9)
    fit = fit_threshold(GRID, hits[0].sum(1), hits.shape[2])
    assert abs(np.median(reps[:, 0]) - fit.threshold) < 0.5 * SCALE  # centred on the fit


def test_paired_bootstrap_ratio_covers_a_planted_shift():
    """N = 1700 against 1615 (a shift of −5%) on shared draws: the percentile interval
    of the ratio covers 0.95 in most experiments and is narrower than the unpaired one."""
    rng = np.random.default_rng(1)
    covered, paired, unpaired = 0, [], []
    for _ in range(30):
        hits = _paired_hits(rng, [PLANTED, 0.95 * PLANTED])
        reps = paired_bootstrap(GRID, hits, 300, seed=int(rng.integers(1 << 30)))
        lo, hi = np.percentile(reps[:, 1] / reps[:, 0], [2.5, 97.5])
        covered += lo <= 0.95 <= hi
        paired.append(hi - lo)
        apart = np.stack(
            [paired_bootstrap(GRID, h[None], 300, seed=s)[:, 0] for s, h in enumerate(hits)]
        )
        unpaired.append(np.subtract(*np.percentile(apart[1] / apart[0], [97.5, 2.5])))
    assert covered >= 25
    assert np.median(paired) < np.median(unpaired)


def test_paired_bootstrap_refuses_hits_of_the_wrong_shape():
    with pytest.raises(ShallowflowInputError, match="hits"):
        paired_bootstrap(GRID, np.ones((GRID.size, 4), bool), 10)


# --------------------------------------------------------------------------- other levels


LOG_P = np.log2([1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64])  # the activations study's grid


def test_fit_level_at_one_half_is_fit_threshold():
    """q = 1/2: the crossing, the profile interval and se are those of fit_threshold, bit for
    bit (the offset logit(1/2) = 0 leaves the likelihood's arithmetic unchanged)."""
    for seed in range(5):
        k = np.random.default_rng(seed).binomial(RUNS, planted_probability(GRID))
        a, b = fit_threshold(GRID, k, RUNS), fit_level(GRID, k, RUNS, 0.5)
        assert (a.threshold, a.ci_low, a.ci_high, a.se) == (b.threshold, b.ci_low, b.ci_high, b.se)


@pytest.mark.parametrize("slope", [1.5, 4.0, 10.0])
def test_fit_level_profile_interval_covers_the_planted_ninety_percent_point(slope):
    """A success curve rising in log₂ p, P = σ(s (x − x½)), 24 runs per p: the 95% profile
    interval of x_0.9 = x½ + logit(0.9)/s covers it in about 95% of 300 data sets, from a
    smooth rise to one sharper than the grid's spacing; the point is where the fitted
    curve is 0.9."""
    rng = np.random.default_rng(int(slope * 10))
    x_half = 3.0
    truth = x_half + special.logit(0.9) / slope
    hits = []
    for _ in range(300):
        k = rng.binomial(24, special.expit(slope * (LOG_P - x_half)))
        fit = fit_level(LOG_P, k, 24, 0.9)
        hits.append(fit.ci_low <= truth <= fit.ci_high)
        if np.isfinite(fit.threshold):
            assert fit.predict(fit.threshold) == pytest.approx(0.9, abs=1e-9)
    assert 0.92 <= np.mean(hits) <= 0.985, np.mean(hits)


def test_fit_level_profile_ends_are_the_likelihood_ratio_cut():
    """At each end of the interval of x_0.9 the best curve through (end, 0.9) is χ²₁(0.95)/2
    below the best curve, for the plain or the penalised likelihood (the one reaching
    further; the other is at least as far below): the profiles with the offset logit(0.9)."""
    k = np.random.default_rng(3).binomial(24, special.expit(3.0 * (LOG_P - 3.0)))
    fit = fit_level(LOG_P, k, 24, 0.9)
    c, h = LOG_P.mean(), LOG_P.std()
    z, r = (LOG_P - c) / h, np.full(LOG_P.size, 24.0)
    ends = (np.array([fit.ci_low, fit.ci_high]) - c) / h
    drops = _drops(z, k.astype(float), r, ends, -1.0, special.logit(0.9))
    np.testing.assert_allclose(drops.min(0), 3.8415, atol=2e-3)


def test_fit_level_refuses_a_level_outside_zero_one():
    with pytest.raises(ShallowflowInputError, match="q: must lie in"):
        fit_level(LOG_P, np.zeros(LOG_P.size, int), 24, 1.0)


def test_clopper_pearson_closed_forms():
    """All successes: the lower end is (α/2)^(1/R); none: the upper end is 1 − (α/2)^(1/R);
    5 of 10: (0.1871, 0.8129), the textbook values."""
    assert clopper_pearson(16, 16) == pytest.approx((0.025 ** (1 / 16), 1.0), rel=1e-12)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)), rel=1e-12)
    assert clopper_pearson(5, 10) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    with pytest.raises(ShallowflowInputError, match="successes: must be <= runs"):
        clopper_pearson(11, 10)
