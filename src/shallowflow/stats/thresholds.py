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
The interval is by default a profile-likelihood (likelihood-ratio) interval of ``N``
(Venzon & Moolgavkar 1988): every ``N₀`` whose best curve crossing 1/2 at ``N₀`` is
within ``χ²₁(level)/2`` of the best curve, for the plain likelihood or for the penalised
one, whichever reaches further.  The penalised likelihood's own interval (Heinze &
Schemper 2002, R's ``logistf``) is the one that holds its maximum, the estimate, which
the plain one can miss near separation (Fig. 5, p = 390: N = 391.5 against [367.2,
390.1]); the plain one spans the whole gap the data cannot resolve when the fall is
sharper than the spacing of the sizes, where the penalty, preferring gentle curves,
keeps only the gap's middle (a step at 340 between sizes 330 and 380: covered by 0% of
its penalised intervals).  Their union does both.  Unlike a bootstrap from the fitted
curve it does not take the fitted slope as known, and it needs only the likelihood,
which is the same whether the sizes were fixed in advance or chosen from the data as
they came (:func:`~shallowflow.stats.design.adaptive_threshold`), where a parametric
bootstrap replays the realised design as if it were fixed.  Its coverage under both
designs is checked on planted curves (tests/test_thresholds.py, tests/test_adaptive.py,
tests/test_threshold_interval.py).  A percentile bootstrap of the per-point counts
remains available.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from shallowflow.errors import ShallowflowInputError, require
from shallowflow.stats.logistic import (
    chi2_1,
    crossing,
    fit_batch,
    fit_point,
    profile_interval,
    separation_gap,
)

__all__ = [
    "ThresholdFit",
    "clopper_pearson",
    "fit_level",
    "fit_threshold",
    "hoeffding_halfwidth",
    "paired_bootstrap",
    "success_bars",
]

Bootstrap = Literal["parametric", "nonparametric"]
Interval = Literal["profile", "bootstrap"]
FLAT = 1e-10  # |b1| below this (standardised units): no crossing, N undefined
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


def clopper_pearson(successes: int, runs: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a success probability from ``successes`` of
    ``runs``: the Beta quantiles ``B(α/2; k, R − k + 1)`` and ``B(1 − α/2; k + 1, R − k)``,
    α = 1 − level (0 and 1 at the ends: with k = R the lower end is ``(α/2)^{1/R}``)."""
    k, r = _counts(successes, runs)
    require(k.size == 1, "successes", "one count at a time")
    require(0.0 < level < 1.0, "level", "must lie in (0, 1)")
    k, r, alpha = float(k.item()), float(r.item()), 1.0 - level
    lo = 0.0 if k == 0 else float(special.betaincinv(k, r - k + 1, alpha / 2))
    hi = 1.0 if k == r else float(special.betaincinv(k + 1, r - k, 1 - alpha / 2))
    return lo, hi


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
    clipped to ``[n_a, n_b]`` (which only binds with one run per point).  The penalised
    likelihood can have two modes (:func:`~shallowflow.stats.logistic.fit_point`): ``N`` is
    the higher's.  Data with a flat fitted curve (no crossing at all) give ``N = NaN``.

    ``interval="profile"`` (default): the hull of the likelihood-ratio set
    ``{N₀ : 2 (ℓ̂ − ℓ_p(N₀)) ≤ χ²₁(level) or 2 (ℓ̂* − ℓ*_p(N₀)) ≤ χ²₁(level)}``, with
    ``ℓ_p(N₀)`` the binomial log-likelihood and ``ℓ*_p(N₀)`` the penalised one above, each
    maximised over the slope, of the fitted sign, with the crossing held at ``N₀``, and
    ``ℓ̂``, ``ℓ̂*`` their maxima (``ℓ̂*`` at ``N``, which is therefore inside).  It is
    infinite on a side where either profile stays above its cut however far away the curve
    crosses (no significant fall on that side).  ``n_boot``, ``seed`` and ``bootstrap``
    are then unused.

    ``interval="bootstrap"``: the percentile interval (outward nearest rank) of ``N``
    over ``n_boot`` bootstrap replicates drawn with ``numpy.random.default_rng(seed)``:
    ``k*_i ~ Bin(R_i, p̂_i)`` from the fitted curve (``"parametric"``) or from the observed fractions
    ``k_i/R_i`` (``"nonparametric"``); replicates without a crossing count as
    ``±∞`` on the side the fitted curve implies, so the interval can be infinite.
    It takes the fitted slope as known and under-covers when the fall is
    sharper than the spacing of ``n`` or the sizes were chosen adaptively.
    """
    x, k, r = _curve(n, successes, runs, "n")
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
    return _fit_arrays(np.array(x), np.array(k), np.array(r), level, boot)


def _fit_arrays(
    x: NDArray,
    k: NDArray,
    r: NDArray,
    level: float,
    boot: tuple[int, int, Bootstrap] | None,
) -> ThresholdFit:
    """:func:`_fit` on the data as arrays."""
    c, h = float(np.mean(x)), float(np.std(x))
    z = (x - c) / h
    beta, converged = fit_point(z, k, r)
    threshold = float(crossing(beta[None, :], c, h)[0])
    gap = separation_gap(x, k, r)
    if gap is not None:
        threshold = float(np.clip(threshold, *gap))
    if boot is None:
        (lo, hi), (lo1, hi1) = profile_interval(z, k, r, beta, (chi2_1(level), 1.0))
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


def fit_level(x: ArrayLike, successes: ArrayLike, runs: ArrayLike, q: float, level: float = 0.95):
    """The ``x`` where the success probability crosses ``q`` in the logistic model of
    :func:`fit_threshold` (which is ``q = 1/2``), ``logit P(x) = intercept − slope·x``:
    ``x_q = (intercept − logit q)/slope`` from the same Firth-penalised fit, clipped to
    the gap of completely separated data (a step crosses every level there), with the
    profile-likelihood interval of ``x_q`` itself, the hull of
    ``{x₀ : 2 (ℓ̂ − ℓ_p(x₀)) ≤ χ²₁(level) or 2 (ℓ̂* − ℓ*_p(x₀)) ≤ χ²₁(level)}``, the plain
    and the penalised profile maximised over the slope with the curve held through
    ``(x₀, q)`` (a one-parameter constraint, as for 1/2). Returns a :class:`ThresholdFit` whose
    ``threshold`` is ``x_q`` (NaN for a flat curve) and ``se`` half its 68.27% interval."""
    x, k, r = _curve(x, successes, runs, "x")
    require(0.0 < q < 1.0, "q", f"must lie in (0, 1); got {q!r}")
    require(0.0 < level < 1.0, "level", "must lie in (0, 1)")
    c, h = float(np.mean(x)), float(np.std(x))
    z, offset = (x - c) / h, float(special.logit(q))
    beta, converged = fit_point(z, k, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = c + h * (offset - beta[0]) / beta[1] if abs(beta[1]) > FLAT else math.nan
    gap = separation_gap(x, k, r)
    if gap is not None and np.isfinite(at):
        at = float(np.clip(at, *gap))
    (lo, hi), (lo1, hi1) = profile_interval(z, k, r, beta, (chi2_1(level), 1.0), offset)
    slope = float(-beta[1] / h)
    return ThresholdFit(
        threshold=float(at),
        ci_low=c + h * lo,
        ci_high=c + h * hi,
        slope=slope,
        intercept=offset + slope * at if np.isfinite(at) else float(beta[0] - beta[1] * c / h),
        n_runs=int(r.sum()),
        converged=converged,
        level=level,
        se=0.5 * h * (hi1 - lo1),
    )


def paired_bootstrap(n: ArrayLike, hits: ArrayLike, reps: int, seed: int = 0) -> NDArray:
    """Thresholds of several variants run on shared draws, resampled together: ``hits``
    (variants × sizes × runs) holds run r at size n_s of every variant from the same
    draw, and each of the ``reps`` replicates resamples the runs of every size once,
    for every variant alike (``numpy.random.default_rng(seed)``), then refits each
    variant's Firth-penalised curve (:func:`fit_threshold`'s point estimate) and returns
    its crossing: an array (reps × variants), NaN where a replicate's curve is flat.
    Ratios or differences of the columns then keep the pairing of the draws."""
    x = np.asarray(n, dtype=float)
    h = np.asarray(hits, dtype=bool)
    require(h.ndim == 3 and h.shape[1] == x.size, "hits", "must be variants × sizes × runs")
    require(np.unique(x).size >= 2, "n", "needs at least two distinct values")
    require(isinstance(reps, int | np.integer) and reps >= 1, "reps", "must be an int >= 1")
    runs = h.shape[2]
    idx = np.random.default_rng(seed).integers(0, runs, (reps, x.size, runs))
    c, scale = float(np.mean(x)), float(np.std(x))
    z, r = (x - c) / scale, np.full(x.size, float(runs))
    out = np.empty((reps, h.shape[0]))
    for v, variant in enumerate(h):
        k = np.take_along_axis(np.broadcast_to(variant, idx.shape), idx, axis=2).sum(2)
        beta, _ = fit_point(z, variant.sum(1).astype(float), r)
        start = np.broadcast_to(beta, (reps, 2)).copy()
        out[:, v] = crossing(fit_batch(z, k.astype(float), r, start), c, scale)
    return out


# --------------------------------------------------------------------------- internals


def _check_alpha(alpha: float) -> None:
    require(0.0 < alpha < 1.0, "alpha", "must lie in (0, 1)")


def _curve(
    x: ArrayLike, successes: ArrayLike, runs: ArrayLike, name: str
) -> tuple[NDArray, NDArray, NDArray]:
    """Validated points of a success curve: ``x`` (called ``name``) a finite, non-empty
    1-D array with two distinct values or more, and its counts (:func:`_counts`)."""
    x = np.asarray(x, dtype=float)
    require(x.ndim == 1 and x.size > 0, name, "must be a non-empty 1-D array")
    require(bool(np.all(np.isfinite(x))), name, "must be finite")
    k, r = _counts(successes, runs)
    require(k.shape == x.shape, "successes", f"must have the shape of {name} {x.shape}")
    require(np.unique(x).size >= 2, name, "needs at least two distinct values")
    return x, k, r


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


def _outward(
    tail: float,
) -> tuple[tuple[float, Literal["lower"]], tuple[float, Literal["higher"]]]:
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
    b_boot = fit_batch(z, k_boot, r, np.broadcast_to(beta, (n_boot, 2)).copy())
    boot = crossing(b_boot, c, h)
    # A flat replicate (no crossing in range) puts N beyond the side the point fit implies.
    flat = np.isnan(boot) & (b_boot[:, 0] != 0.0) & (beta[1] != 0.0)
    boot[flat] = np.inf * np.sign(b_boot[flat, 0]) * np.sign(-beta[1])
    return boot
