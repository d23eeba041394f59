"""Convergence-probability statistics: Hoeffding bars and the threshold N(d, p).

SPEC §5, Figs. 3–5. A run at size ``n`` succeeds when ``L(θ_T) ≤ 1/(2n)``; with
``R`` runs per point the success fraction gets Hoeffding bars, and the
threshold ``N`` is the ``n`` where the success probability crosses 1/2 in the
logistic model

    P(success | n) = 1 / (1 + exp(s (n − N))),

``s > 0`` for a fall from likely to unlikely convergence (either sign is fit).

The fit is binomial maximum likelihood with Firth's penalty
``½ log det I(β)`` (Jeffreys prior; Firth 1993, Heinze & Schemper 2002), in the
standardised variable ``z = (n − c)/h`` with log-odds ``η = b0 + b1 z``.  The
penalty keeps the estimate finite for perfectly separated data (all successes
below some ``n``, all failures above) and removes the O(1/R) bias of the MLE.
The interval is by default the profile-likelihood (likelihood-ratio) interval of
``N`` (Venzon & Moolgavkar 1988): every ``N₀`` whose best curve crossing 1/2 at
``N₀`` is within ``χ²₁(level)/2`` of the best curve's log-likelihood.  Unlike a
bootstrap from the fitted curve it does not take the fitted slope as known:
when the fall is sharper than the spacing of the sizes (near-separated data)
it spans the whole gap the data cannot resolve.  And it needs only the
likelihood, which is the same whether the sizes were fixed in advance or chosen
from the data as they came (:func:`adaptive_threshold`), where a parametric
bootstrap replays the realised design as if it were fixed.  Its coverage under
both designs is checked on planted curves (tests/test_thresholds.py,
tests/test_adaptive.py).  A percentile bootstrap of the per-point counts
remains available.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from shallowflow.errors import ShallowflowInputError, require

__all__ = [
    "AdaptiveResult",
    "ThresholdFit",
    "adaptive_threshold",
    "fit_threshold",
    "hoeffding_halfwidth",
    "success_bars",
]

Bootstrap = Literal["parametric", "nonparametric"]
Interval = Literal["profile", "bootstrap"]
Simulate = Callable[[int, int, int], int]
_FLAT = 1e-10  # |b1| below this (standardised units): no crossing, N undefined
_ONE_SIGMA = float(special.ndtr(-1.0))  # tail beyond one sigma: [16%, 84%] is ±1σ


# --------------------------------------------------------------------------- Hoeffding bars


def hoeffding_halfwidth(
    runs: ArrayLike, alpha: float = 0.05, one_sided: bool = False
) -> float | NDArray[np.float64]:
    """Hoeffding half-width of a success fraction over ``runs`` runs (SPEC §5, Fig. 3).

    Two-sided: ``√(log(2/α) / (2R))``; one-sided: ``√(log(1/α) / (2R))``.
    By Hoeffding's inequality the fraction is within this distance of the
    success probability with probability at least ``1 − α``.
    """
    r = np.asarray(runs, dtype=float)
    require(r.size > 0, "runs", "must be non-empty")
    require(bool(np.all(r >= 1)), "runs", "must be >= 1")
    _check_alpha(alpha)
    width = np.sqrt(np.log((1.0 if one_sided else 2.0) / alpha) / (2.0 * r))
    return float(width) if width.ndim == 0 else width


def success_bars(
    successes: ArrayLike, runs: ArrayLike, alpha: float = 0.05
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper Hoeffding bars of the success fraction ``k/R`` (SPEC §5, Fig. 3).

    ``k/R ± √(log(2/α)/(2R))`` clipped to [0, 1]; where the fraction is 0 (or 1)
    the bar is one-sided: ``[0, √(log(1/α)/(2R))]`` (or ``[1 − √(log(1/α)/(2R)), 1]``).
    """
    k, r = _counts(successes, runs)
    frac = k / r
    two = hoeffding_halfwidth(r, alpha)
    one = hoeffding_halfwidth(r, alpha, one_sided=True)
    lower = np.where(frac == 1.0, 1.0 - one, frac - two)
    upper = np.where(frac == 0.0, one, frac + two)
    lower = np.where(frac == 0.0, 0.0, lower)
    upper = np.where(frac == 1.0, 1.0, upper)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


# --------------------------------------------------------------------------- threshold fit


@dataclass(frozen=True)
class ThresholdFit:
    """Fitted logistic threshold ``P(success | n) = 1/(1 + exp(slope (n − threshold)))``.

    ``intercept`` is the log-odds of success at ``n = 0`` (``slope · threshold``),
    so ``logit P(n) = intercept − slope · n``.  ``[ci_low, ci_high]`` is the
    interval of ``threshold`` at ``level`` (profile likelihood unless asked for
    a bootstrap); ``se`` its one-sigma counterpart, half the width of the
    68.27% interval of the same kind (``inf`` when that is unbounded); ``n_runs``
    the total number of runs fitted; ``converged`` whether the optimiser met
    its tolerance.
    """

    threshold: float
    ci_low: float
    ci_high: float
    slope: float
    intercept: float
    n_runs: int
    converged: bool
    level: float = 0.95
    se: float = math.nan

    @property
    def ci_width(self) -> float:
        """Width ``ci_high − ci_low`` of the interval."""
        return self.ci_high - self.ci_low

    def predict(self, n: ArrayLike) -> NDArray[np.float64]:
        """Fitted success probability at ``n``."""
        n = np.asarray(n, dtype=float)
        return special.expit(self.intercept - self.slope * n)


def fit_threshold(
    n: ArrayLike,
    successes: ArrayLike,
    runs: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bootstrap: Bootstrap = "parametric",
    interval: Interval = "profile",
) -> ThresholdFit:
    """Threshold ``N`` where the success probability crosses 1/2 (SPEC §5, Figs. 3–5).

    Maximises the Firth-penalised binomial log-likelihood
    ``Σ_i [k_i η_i − R_i log(1 + e^{η_i})] + ½ log det(Xᵀ W X)``,
    ``η_i = b0 + b1 z_i``, ``z_i = (n_i − c)/h``, ``W = diag(R_i p_i (1 − p_i))``;
    then ``N = c − h b0/b1`` and ``s = −b1/h``.  Repeated ``n`` are allowed.
    Under complete separation (all successes at ``n ≤ n_a``, all failures at
    ``n ≥ n_b``, or mirrored) every ``N`` in ``(n_a, n_b)`` is a limit of
    maximisers; the penalised estimate falls near the middle of the gap and is
    clipped to ``[n_a, n_b]`` (which only binds with one run per point).  Data
    with a flat fitted curve (no crossing at all) give ``N = NaN``.

    ``interval="profile"`` (default): the likelihood-ratio interval
    ``{N₀ : 2 (ℓ̂ − ℓ_p(N₀)) ≤ χ²₁(level)}`` (its hull), with ``ℓ_p(N₀)`` the
    (unpenalised) binomial log-likelihood maximised over the slope, of the
    fitted sign, with the crossing held at ``N₀``, and ``ℓ̂`` its maximum.  It
    is infinite on a side where the curve can cross arbitrarily far away (no
    significant fall on that side).  ``n_boot``, ``seed`` and ``bootstrap`` are
    then unused.

    ``interval="bootstrap"``: the percentile interval (outward nearest rank) of ``N``
    over ``n_boot`` bootstrap replicates drawn with ``numpy.random.default_rng(seed)``:
    ``k*_i ~ Bin(R_i, p̂_i)`` from the fitted curve (``"parametric"``) or from the observed fractions
    ``k_i/R_i`` (``"nonparametric"``); replicates without a crossing count as
    ``±∞`` on the side the fitted curve implies, so the interval can be infinite.
    It takes the fitted slope as known and under-covers when the fall is
    sharper than the spacing of ``n`` or the sizes were chosen adaptively.
    """
    x = np.asarray(n, dtype=float)
    require(x.ndim == 1 and x.size > 0, "n", "must be a non-empty 1-D array")
    require(bool(np.all(np.isfinite(x))), "n", "must be finite")
    k, r = _counts(successes, runs)
    require(k.shape == x.shape, "successes", f"must have the shape of n {x.shape}")
    require(np.unique(x).size >= 2, "n", "needs at least two distinct values")
    require(isinstance(n_boot, int | np.integer) and n_boot >= 1, "n_boot", "must be an int >= 1")
    require(0.0 < level < 1.0, "level", "must lie in (0, 1)")
    require(bootstrap in ("parametric", "nonparametric"), "bootstrap", "parametric|nonparametric")
    require(interval in ("profile", "bootstrap"), "interval", "profile|bootstrap")

    boot = (n_boot, seed, bootstrap) if interval == "bootstrap" else None
    return _fit(tuple(x), tuple(k), tuple(r), level, boot)


@functools.lru_cache(maxsize=4096)
def _fit(
    x: tuple[float, ...],
    k: tuple[float, ...],
    r: tuple[float, ...],
    level: float,
    boot: tuple[int, int, Bootstrap] | None,
) -> ThresholdFit:
    """:func:`fit_threshold` on validated data (``boot``: the bootstrap's ``(n_boot, seed,
    kind)``, ``None`` for the profile interval), memoised: the adaptive design refits the
    same evaluations on every replay, and a fit is a pure function of its arguments."""
    x, k, r = np.array(x), np.array(k), np.array(r)
    c, h = float(np.mean(x)), float(np.std(x))
    z = (x - c) / h
    beta, converged = _fit_point(z, k, r)
    threshold = float(_threshold(beta[None, :], c, h)[0])
    gap = _separation_gap(x, k, r)
    if gap is not None:
        threshold = float(np.clip(threshold, *gap))
    if boot is None:
        (lo, hi), (lo1, hi1) = _profile_interval(z, k, r, beta, (_chi2_1(level), 1.0))
        ci = (c + h * lo, c + h * hi)
        se = 0.5 * h * (hi1 - lo1)
    else:
        reps = _bootstrap(z, k, r, beta, c, h, *boot)
        tail = 0.5 * (1.0 - level)
        ci = tuple(float(np.quantile(reps, q, method=m)) for q, m in _outward(tail))
        lo1, hi1 = (float(np.quantile(reps, q, method=m)) for q, m in _outward(_ONE_SIGMA))
        se = 0.5 * (hi1 - lo1)
    slope = float(-beta[1] / h)
    return ThresholdFit(
        threshold=threshold,
        ci_low=float(ci[0]),
        ci_high=float(ci[1]),
        slope=slope,
        intercept=slope * threshold if np.isfinite(threshold) else float(beta[0]),
        n_runs=int(r.sum()),
        converged=converged,
        level=level,
        se=float(se),
    )


# --------------------------------------------------------------------------- adaptive design


@dataclass(frozen=True)
class AdaptiveResult:
    """Outcome of :func:`adaptive_threshold`.

    ``evaluations`` lists ``(n, runs, successes)`` in the order simulated;
    ``reached_target`` says whether the interval width met the target before
    the run budget ran out.
    """

    fit: ThresholdFit
    evaluations: tuple[tuple[int, int, int], ...]
    total_runs: int
    reached_target: bool


def adaptive_threshold(
    simulate: Simulate,
    n_min: int,
    n_max: int,
    runs_per_point: int,
    target_width: float,
    max_runs: int,
    seed: int = 0,
    n_step: int = 1,
    n_init: int = 5,
    n_boot: int = 400,
    level: float = 0.95,
) -> AdaptiveResult:
    """Sequential design for the threshold ``N`` (SPEC §5, Figs. 4–5 without a full grid).

    Starts with ``n_init`` evenly spaced sizes in ``[n_min, n_max]``, then
    repeatedly fits (:func:`fit_threshold`) and spends ``runs_per_point`` more
    runs at the next size of the cycle ``N̂, ci_low, ci_high`` (rounded to the
    grid ``n_min + j·n_step``, clipped to the range): bisection on the crossing,
    with the interval ends keeping the slope identified.  Stops once
    ``ci_high − ci_low ≤ target_width`` or after ``max_runs`` runs in all (the
    last batch is cut to fit the budget).

    ``simulate(n, runs, rng_seed)`` returns the number of successes among
    ``runs`` runs at size ``n``; its seeds come from ``default_rng(seed)``.
    """
    require(n_step >= 1, "n_step", "must be >= 1")
    require(n_max - n_min >= n_step, "n_max", "must exceed n_min by at least n_step")
    require(runs_per_point >= 1, "runs_per_point", "must be >= 1")
    require(target_width > 0, "target_width", "must be > 0")
    require(n_init >= 2, "n_init", "must be >= 2")
    require(max_runs >= n_init * runs_per_point, "max_runs", "must cover the initial design")
    rng = np.random.default_rng(seed)
    grid = np.arange(n_min, n_max + 1, n_step)
    evals: list[tuple[int, int, int]] = []

    def run(size: int, runs: int) -> None:
        hits = simulate(int(size), runs, int(rng.integers(2**63)))
        h = np.asarray(hits, dtype=float)
        ok = h.ndim == 0 and float(h).is_integer() and 0 <= h <= runs
        require(ok, "simulate", f"returned {hits!r} successes of {runs} runs")
        evals.append((int(size), runs, int(hits)))

    for size in np.unique(_snap(np.linspace(n_min, n_max, n_init), grid)):
        run(size, runs_per_point)
    step = 0
    while True:
        fit = _fit_evals(evals, n_boot, int(rng.integers(2**63)), level)
        used = sum(e[1] for e in evals)
        done = bool(fit.ci_width <= target_width)
        if done or used >= max_runs:
            return AdaptiveResult(fit, tuple(evals), used, done)
        target = (fit.threshold, fit.ci_low, fit.ci_high)[step % 3]
        if not np.isfinite(target):
            target = fit.threshold if np.isfinite(fit.threshold) else 0.5 * (n_min + n_max)
        run(_snap(np.array([target]), grid)[0], min(runs_per_point, max_runs - used))
        step += 1


# --------------------------------------------------------------------------- internals


def _check_alpha(alpha: float) -> None:
    require(0.0 < alpha < 1.0, "alpha", "must lie in (0, 1)")


def _counts(successes: ArrayLike, runs: ArrayLike) -> tuple[NDArray, NDArray]:
    """Validated (successes, runs) as float arrays of one shape."""
    k = np.asarray(successes, dtype=float)
    r = np.asarray(runs, dtype=float)
    require(k.size > 0, "successes", "must be non-empty")
    require(r.size > 0, "runs", "must be non-empty")
    try:
        k, r = np.broadcast_arrays(k, r)
    except ValueError:
        raise ShallowflowInputError("runs", f"shape {r.shape} != successes {k.shape}") from None
    require(bool(np.all(np.isfinite(k) & (k == np.round(k)))), "successes", "must be integers")
    require(bool(np.all(np.isfinite(r) & (r == np.round(r)))), "runs", "must be integers")
    require(bool(np.all(r >= 1)), "runs", "must be >= 1")
    require(bool(np.all(k >= 0)), "successes", "must be >= 0")
    require(bool(np.all(k <= r)), "successes", "must be <= runs")
    return k, r


def _snap(values: NDArray, grid: NDArray) -> NDArray[np.int64]:
    """Nearest points of the evenly spaced ``grid`` (at least two points)."""
    idx = np.rint((values - grid[0]) / (grid[1] - grid[0])).astype(np.int64)
    return grid[np.clip(idx, 0, grid.size - 1)]


def _fit_evals(
    evals: list[tuple[int, int, int]], n_boot: int, seed: int, level: float
) -> ThresholdFit:
    n, r, k = (np.array(col) for col in zip(*evals, strict=True))
    return fit_threshold(n, k, r, n_boot=n_boot, seed=seed, level=level)


def _chi2_1(level: float) -> float:
    """Quantile ``χ²₁(level)`` of the chi-square law with one degree of freedom."""
    return float(special.ndtri(0.5 * (1.0 + level)) ** 2)


def _outward(tail: float) -> tuple[tuple[float, str], tuple[float, str]]:
    """Quantile levels and nearest-rank methods of a percentile interval, rounded outward."""
    return (tail, "lower"), (1.0 - tail, "higher")


def _bootstrap(
    z: NDArray,
    k: NDArray,
    r: NDArray,
    beta: NDArray,
    c: float,
    h: float,
    n_boot: int,
    seed: int,
    kind: Bootstrap,
) -> NDArray[np.float64]:
    """``n_boot`` bootstrap replicates of ``N`` (``fit_threshold(interval="bootstrap")``)."""
    rng = np.random.default_rng(seed)
    p_boot = special.expit(beta[0] + beta[1] * z) if kind == "parametric" else k / r
    k_boot = rng.binomial(r.astype(np.int64), p_boot, size=(n_boot, z.size)).astype(float)
    b_boot = _fit_batch(z, k_boot, r, np.broadcast_to(beta, (n_boot, 2)).copy())
    boot = _threshold(b_boot, c, h)
    # A flat replicate (no crossing in range) puts N beyond the side the point fit implies.
    flat = np.isnan(boot) & (b_boot[:, 0] != 0.0) & (beta[1] != 0.0)
    boot[flat] = np.inf * np.sign(b_boot[flat, 0]) * np.sign(-beta[1])
    return boot


def _profile_loglik(z: NDArray, k: NDArray, r: NDArray, z0: NDArray, sign: float) -> NDArray:
    """``ℓ_p(z0) = sup_{β ≥ 0} Σ_i [k_i log σ(η_i) + (R_i − k_i) log σ(−η_i)]``,
    ``η_i = β·sign·(z0 − z_i)``, for each ``z0`` (the curve crossing 1/2 at ``z0``).

    Concave in ``β``, so the score ``g(β) = Σ_i d_i (k_i − R_i σ(β d_i))`` decreases:
    the maximum is at ``β = 0`` if ``g(0) ≤ 0``; at ``β → ∞`` (the limit, a step at
    ``z0``) if ``g(∞) = 0``, i.e. no run is on the wrong side of ``z0``; otherwise at
    the root of ``g``, found by safeguarded Newton steps inside a growing bracket.
    Each row of ``d`` is scaled to unit maximum, which leaves the supremum unchanged
    and keeps ``β`` of order one for a far ``z0``.
    """
    d = sign * (np.atleast_1d(np.asarray(z0, dtype=float))[:, None] - z)
    d /= np.abs(d).max(1, keepdims=True)

    def score(b: NDArray) -> tuple[NDArray, NDArray]:
        p = special.expit(b[:, None] * d)
        return (d * (k - r * p)).sum(1), (d * d * r * p * (1.0 - p)).sum(1)

    def loglik(b: NDArray) -> NDArray:
        eta = b[:, None] * d
        return -(k * np.logaddexp(0.0, -eta) + (r - k) * np.logaddexp(0.0, eta)).sum(1)

    step = ((d < 0) * k + (d > 0) * (r - k)).sum(1) == 0  # sup is the step's limit
    lo, hi = np.zeros(d.shape[0]), np.ones(d.shape[0])
    live = ~step & (score(lo)[0] > 0)
    for _ in range(200):
        grow = live & (score(hi)[0] > 0)
        if not grow.any():
            break
        lo, hi = np.where(grow, hi, lo), np.where(grow, 16.0 * hi, hi)
    b = np.where(live, 0.5 * (lo + hi), 0.0)
    for _ in range(100):
        g, curv = score(b)
        lo, hi = np.where(g > 0, b, lo), np.where(g > 0, hi, b)
        # ℓ(β*) − ℓ(b) is ≤ |g| (hi − lo) by concavity, and ≈ g²/(2 curv) near β*.
        gap = np.minimum(np.abs(g) * (hi - lo), g * g / np.maximum(curv, 1e-300))
        if np.all(~live | (gap <= 1e-12)):
            break
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            newton = b + g / curv
        inside = (newton >= lo) & (newton <= hi)
        b = np.where(live, np.where(inside, newton, 0.5 * (lo + hi)), 0.0)
    limit = -np.log(2.0) * ((d == 0) * r).sum(1)
    return np.where(step, limit, loglik(b))


def _profile_interval(
    z: NDArray, k: NDArray, r: NDArray, beta: NDArray, qs: tuple[float, ...]
) -> list[tuple[float, float]]:
    """Hull of ``{z0 : 2 (ℓ̂ − ℓ_p(z0)) ≤ q}`` for each ``q`` in ``qs`` (standardised units).

    ``ℓ_p`` is scanned on a grid over the data's range and out to ``2^40`` ranges
    on each side (beyond that: infinite), through the Firth and plain MLE crossings;
    ``ℓ̂`` is the larger of the scan's top and the plain MLE's log-likelihood (the
    scan's alone under separation, where the MLE runs off to a step); each end is
    refined by false position, keeping the inner point inside.
    """
    if not abs(beta[1]) > _FLAT:
        return [(-np.inf, np.inf)] * len(qs)
    sign = float(np.sign(-beta[1]))
    span = float(z.max() - z.min())
    far = span * 2.0 ** np.arange(1, 41)
    mle = _fit_batch(z, k[None, :], r, beta[None, :].copy(), iters=25, firth=False)[0]
    tops = [-b[0] / b[1] for b in (beta, mle) if np.sign(-b[1]) == sign and np.isfinite(b).all()]
    grid = np.unique(np.concatenate([
        np.linspace(z.min() - span, z.max() + span, 241), z, tops, z.min() - far, z.max() + far,
    ]))  # fmt: skip
    ll = _profile_loglik(z, k, r, grid, sign)
    ll_max = float(ll.max())
    if len(tops) == 2:  # the plain MLE exists (or nearly): its log-likelihood tops the scan
        ll_max = max(ll_max, float(_penalised(z, k, r, mle[None, :], firth=False)[0][0]))
    cuts = ll_max - 0.5 * np.repeat(qs, 2)
    # Per (q, side): the outermost grid point inside and its outer neighbour.
    inner, outer, bounded = [], [], []
    for cut in cuts[::2]:
        inside = np.flatnonzero(ll >= cut)
        for i, o in ((inside[0], inside[0] - 1), (inside[-1], inside[-1] + 1)):
            bounded.append(0 <= o < grid.size)
            inner.append(grid[i])
            outer.append(grid[min(max(o, 0), grid.size - 1)])
    inner, outer, bounded = np.array(inner), np.array(outer), np.array(bounded)
    f_in = g_in = ll[np.searchsorted(grid, inner)] - cuts  # g_in: f_in before any halving
    f_out = ll[np.searchsorted(grid, outer)] - cuts
    last, slow = np.zeros(inner.size), np.zeros(inner.size, dtype=bool)
    # Illinois false position (bisection where it stalls, as at a jump), inner end inside.
    for _ in range(60):
        done = ~bounded | (g_in <= 1e-7) | (np.abs(outer - inner) <= 1e-8 * span)
        if done.all():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            secant = (inner * f_out - outer * f_in) / (f_out - f_in)
        mid = np.where(done, inner, np.where(slow, 0.5 * (inner + outer), secant))
        f_mid = _profile_loglik(z, k, r, mid, sign) - cuts
        ok = f_mid >= 0
        slow = np.where(ok, outer - mid, mid - inner) ** 2 > 0.25 * (outer - inner) ** 2
        f_out = np.where(ok & (last > 0), 0.5 * f_out, f_out)
        f_in = np.where(~ok & (last < 0), 0.5 * f_in, f_in)
        inner, f_in, g_in = (
            np.where(ok, mid, inner),
            np.where(ok, f_mid, f_in),
            np.where(ok, f_mid, g_in),
        )
        outer, f_out = np.where(ok, outer, mid), np.where(ok, f_out, f_mid)
        last = np.where(ok, 1.0, -1.0)
    ends = np.where(bounded, inner, np.tile([-np.inf, np.inf], len(qs)))
    return [(float(ends[2 * j]), float(ends[2 * j + 1])) for j in range(len(qs))]


def _separation_gap(x: NDArray, k: NDArray, r: NDArray) -> tuple[float, float] | None:
    """The gap ``(n_a, n_b)`` between all-success and all-failure sizes, if completely separated."""
    succ, fail = k == r, k == 0
    if not (np.all(succ | fail) and succ.any() and fail.any()):
        return None
    for left, right in ((succ, fail), (fail, succ)):
        if x[left].max() < x[right].min():
            return float(x[left].max()), float(x[right].min())
    return None


def _threshold(beta: NDArray, c: float, h: float) -> NDArray[np.float64]:
    """``N = c − h b0/b1`` per row of ``beta``; NaN where the curve is flat (no crossing)."""
    b0, b1 = beta[:, 0], beta[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(b1) > _FLAT, c - h * b0 / b1, np.nan)


def _information(z: NDArray, r: NDArray, eta: NDArray):
    """Probabilities, weights and the entries (a, b, d) of ``Xᵀ W X = [[a, b], [b, d]]``."""
    p = special.expit(eta)
    w = r * p * (1.0 - p)
    a, b, d = w.sum(-1), (w * z).sum(-1), (w * z * z).sum(-1)
    return p, w, a, b, d


def _penalised(z: NDArray, k: NDArray, r: NDArray, beta: NDArray, firth: bool = True):
    """Firth-penalised log-likelihood and its (modified) score, batched over rows
    (the plain ones with ``firth=False``)."""
    eta = beta[..., :1] + beta[..., 1:] * z
    p, w, a, b, d = _information(z, r, eta)
    det = np.maximum(a * d - b * b, 1e-300)
    loglik = (k * eta - r * np.logaddexp(0.0, eta)).sum(-1) + 0.5 * firth * np.log(det)
    a_, b_, d_, det_ = (v[..., None] for v in (a, b, d, det))
    lev = w * (d_ - 2.0 * b_ * z + a_ * z * z) / det_
    resid = k - r * p + firth * lev * (0.5 - p)
    score = np.stack([resid.sum(-1), (resid * z).sum(-1)], axis=-1)
    return loglik, score, (a, b, d, det)


def _fit_point(z: NDArray, k: NDArray, r: NDArray) -> tuple[NDArray, bool]:
    """Penalised MLE: BFGS from the empirical-logit least-squares start, polished by scoring.

    Converged when the modified score is below ``1e-8`` per run.
    """
    emp = special.logit((k + 0.5) / (r + 1.0))
    start = np.polynomial.polynomial.polyfit(z, emp, 1, w=np.sqrt(r))

    def objective(beta: NDArray) -> tuple[float, NDArray]:
        loglik, score, _ = _penalised(z, k, r, beta)
        return -float(loglik), -score

    res = optimize.minimize(objective, start, jac=True, method="BFGS")
    beta = _fit_batch(z, k[None, :], r, res.x[None, :])[0]
    _, score, _ = _penalised(z, k, r, beta)
    return beta, bool(np.all(np.isfinite(beta)) and np.max(np.abs(score)) <= 1e-8 * r.sum())


def _fit_batch(
    z: NDArray,
    k: NDArray,
    r: NDArray,
    beta: NDArray,
    iters: int = 60,
    max_step: float = 5.0,
    firth: bool = True,
) -> NDArray:
    """Penalised (or, ``firth=False``, plain) MLE for every row of ``k`` at once: Fisher
    scoring with step-halving."""
    loglik, score, info = _penalised(z, k, r, beta, firth)
    for _ in range(iters):
        a, b, d, det = info
        step = np.stack([d * score[:, 0] - b * score[:, 1], a * score[:, 1] - b * score[:, 0]], 1)
        step /= det[:, None]
        step *= np.minimum(1.0, max_step / np.maximum(np.abs(step).max(1), 1e-300))[:, None]
        if np.abs(step).max() < 1e-9:
            break
        for _ in range(30):
            trial = beta + step
            new_loglik, new_score, new_info = _penalised(z, k, r, trial, firth)
            ok = new_loglik >= loglik - 1e-12
            beta = np.where(ok[:, None], trial, beta)
            loglik = np.where(ok, new_loglik, loglik)
            score = np.where(ok[:, None], new_score, score)
            info = tuple(np.where(ok, new, old) for new, old in zip(new_info, info, strict=True))
            if ok.all():
                break
            step = np.where(ok[:, None], 0.0, 0.5 * step)
    return beta
