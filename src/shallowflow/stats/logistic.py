"""The binomial logistic likelihood of success curves (SPEC §5, Figs. 3–5): the
Firth-penalised fit, its batched refits, and the profile likelihoods (plain and
penalised) of the crossing, whose cuts give its interval.

Runs at size n_i succeed k_i times out of R_i; in the standardised variable
``z = (n − c)/h`` the log-odds are ``η = b0 + b1 z``, and the curve crosses 1/2 at
``z = −b0/b1``. :mod:`.thresholds` builds the threshold N and its interval on these.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

FLAT = 1e-10  # |b1| below this (standardised units): no crossing, N undefined
# Slopes |b1| (standardised units) of the curves scanned for a higher mode by fit_point.
_SCAN_SLOPES = np.logspace(-2.0, 3.0, 16)
Likelihood = Literal["plain", "penalised", "both"]


def chi2_1(level: float) -> float:
    """Quantile ``χ²₁(level)`` of the chi-square law with one degree of freedom."""
    return float(special.ndtri(0.5 * (1.0 + level)) ** 2)


def profile_loglik(
    z: NDArray, k: NDArray, r: NDArray, z0: NDArray, sign: float, offset: float = 0.0
) -> NDArray:
    """``ℓ_p(z0) = sup_{β ≥ 0} Σ_i [k_i log σ(η_i) + (R_i − k_i) log σ(−η_i)]``,
    ``η_i = c + β·sign·(z0 − z_i)``, for each ``z0`` (the curve crossing the level σ(c) at
    ``z0``; ``c = offset``, 0 by default: the crossing of 1/2).

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
        p = special.expit(offset + b[:, None] * d)
        return (d * (k - r * p)).sum(1), (d * d * r * p * (1.0 - p)).sum(1)

    def loglik(b: NDArray) -> NDArray:
        eta = offset + b[:, None] * d
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
    return np.where(step, _step_limit(d == 0, k, r, offset), loglik(b))


def _step_limit(on: NDArray, k: NDArray, r: NDArray, offset: float) -> NDArray:
    """The log-likelihood of the step's limit: only the sizes on the step (``on``) keep a
    finite probability, σ(c); at c = 0 the sum is written as before (−R log 2)."""
    if offset == 0.0:
        return -np.log(2.0) * (on * r).sum(1)
    return -(on * (k * np.logaddexp(0.0, -offset) + (r - k) * np.logaddexp(0.0, offset))).sum(1)


# Slopes scanned to bracket the penalised profile's maximum (rows of d of unit maximum).
_SLOPES = np.r_[0.0, np.logspace(-4.0, 6.0, 31)]


def _penalised_along(
    d: NDArray, z: NDArray, k: NDArray, r: NDArray, b: NDArray, offset: float, slopes: bool
) -> tuple[NDArray, NDArray, NDArray]:
    """``ℓ(η) + ½ log det(Xᵀ W X)`` at ``η = c + b d`` (per row of ``d``; ``c = offset``) and,
    with ``slopes``, its first and second derivatives in ``b`` (else zeros).

    ``det = Σw · Σw (z − z̄)²`` with ``z̄ = Σwz/Σw``: Xᵀ W X in the basis ``(1, z − z̄)``, where
    it is diagonal, with the weights ``w = R p (1 − p)`` taken relative to the row's largest
    in log space, so that for a steep curve they neither underflow nor cancel. There, with
    ``u = d log w/db = (1 − 2p) d`` and ``v = d² log w/db² = −2 p (1 − p) d²``,
    ``(½ log det)' = ½ tr(M⁻¹M')`` and ``(½ log det)'' = ½ tr(M⁻¹M'') − ½ tr((M⁻¹M')²)``,
    ``M' = Σ w u x xᵀ``, ``M'' = Σ w (v + u²) x xᵀ``.
    """
    eta = offset + b[..., None] * d
    log_p, log_q = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    log_w = np.log(r) + log_p + log_q
    top = log_w.max(-1, keepdims=True)
    w = np.exp(log_w - top)
    mass = w.sum(-1)
    c = z - ((w * z).sum(-1) / mass)[..., None]
    var = (w * c * c).sum(-1)
    with np.errstate(divide="ignore"):
        value = (k * log_p + (r - k) * log_q).sum(-1) + top[..., 0] + 0.5 * np.log(mass * var)
    if not slopes:
        return value, np.zeros_like(value), np.zeros_like(value)
    p, pq = np.exp(log_p), np.exp(log_p + log_q)
    u, v = (1.0 - 2.0 * p) * d, -2.0 * pq * d * d
    with np.errstate(divide="ignore", invalid="ignore"):
        u1, u2, u12 = (w * u).sum(-1) / mass, (w * u * c * c).sum(-1) / var, (w * u * c).sum(-1)
        v1, v2 = (w * (v + u * u)).sum(-1) / mass, (w * (v + u * u) * c * c).sum(-1) / var
        cross = u12 * u12 / (mass * var)
    grad = (d * (k - r * p)).sum(-1) + 0.5 * (u1 + u2)
    hess = -(d * d * r * pq).sum(-1) + 0.5 * (v1 + v2) - 0.5 * (u1 * u1 + 2.0 * cross + u2 * u2)
    return value, grad, hess


def penalised_profile_loglik(
    z: NDArray, k: NDArray, r: NDArray, z0: NDArray, sign: float, offset: float = 0.0
) -> NDArray:
    """``ℓ*_p(z0) = sup_{β ≥ 0} ℓ(η) + ½ log det(Xᵀ W(η) X)``, ``η_i = c + β·sign·(z0 − z_i)``:
    the Firth-penalised log-likelihood of :func:`penalised` maximised over the curves
    crossing the level σ(c) at ``z0`` (``c = offset``), the profile penalised likelihood
    of Heinze & Schemper (2002); its maximum over ``z0`` is at the Firth estimate.

    The penalty falls to −∞ as ``β → ∞`` (every weight but those at ``z0`` vanishes), so
    the supremum is attained: a scan of ``β`` on a logarithmic grid brackets it, then
    safeguarded Newton steps on the exact derivatives refine it (bisection when a step
    leaves the bracket or the curvature is not negative). Rows of ``d`` are scaled to unit
    maximum, which leaves the supremum unchanged.
    """
    d = sign * (np.atleast_1d(np.asarray(z0, dtype=float))[:, None] - z)
    d /= np.abs(d).max(1, keepdims=True)
    scan = _penalised_along(d[:, None, :], z, k, r, _SLOPES[None, :], offset, False)[0]
    j = scan.argmax(1)
    best = scan[np.arange(j.size), j]
    lo, hi = _SLOPES[np.maximum(j - 1, 0)], _SLOPES[np.minimum(j + 1, _SLOPES.size - 1)]
    # Start at the vertex of the parabola through the scan's top three, in log β.
    m = np.clip(j, 2, _SLOPES.size - 2)
    v0, v1, v2 = (scan[np.arange(j.size), m + i] for i in (-1, 0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.clip(0.5 * (v0 - v2) / (v0 - 2.0 * v1 + v2), -1.0, 1.0)
    step = np.log(_SLOPES[2] / _SLOPES[1])
    vertex = _SLOPES[m] * np.exp(np.where(np.isfinite(shift), shift, 0.0) * step)
    b = np.where(j == m, vertex, _SLOPES[j])
    for _ in range(100):
        value, grad, hess = _penalised_along(d, z, k, r, b, offset, True)
        best = np.maximum(best, value)
        lo, hi = np.where(grad > 0, b, lo), np.where(grad > 0, hi, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = b - grad / hess
            # ℓ*(β*) − ℓ*(b) is ≈ g²/(2|h|) near β*, and ≤ |g| (hi − lo) where ℓ* is concave
            gap = np.minimum(
                np.abs(grad) * (hi - lo), np.where(hess < 0, grad * grad / -hess, np.inf)
            )
        if np.all(gap <= 1e-12):
            break
        inside = (hess < 0) & (newton >= lo) & (newton <= hi)
        b = np.where(inside, newton, 0.5 * (lo + hi))
    return best


def profile_interval(
    z: NDArray,
    k: NDArray,
    r: NDArray,
    beta: NDArray,
    qs: tuple[float, ...],
    offset: float = 0.0,
    likelihood: Likelihood = "both",
) -> list[tuple[float, float]]:
    """Profile-likelihood interval of the crossing ``z0`` of the level σ(``offset``) (1/2 by
    default) for each ``q = χ²₁(level)`` in ``qs``, in standardised units: the hull of

    - ``"plain"``: ``{z0 : 2 (ℓ̂ − ℓ_p(z0)) ≤ q}``, ``ℓ_p`` the binomial likelihood maximised
      over the slope with the crossing held at ``z0`` (:func:`profile_loglik`), ``ℓ̂`` its top;
    - ``"penalised"``: ``{z0 : 2 (ℓ̂* − ℓ*_p(z0)) ≤ q}``, the same for the Firth-penalised
      likelihood (:func:`penalised_profile_loglik`; Heinze & Schemper 2002, R's ``logistf``),
      top at the Firth fit ``beta``: it holds the estimate, but, preferring gentle curves, it
      keeps only the middle of a gap the data cannot resolve and under-covers there;
    - ``"both"`` (default): their union, every ``z0`` neither likelihood rejects: it holds
      the estimate and covers wherever the plain interval does.

    A side is infinite where a profile stays above its cut out to ``2^40`` ranges (no
    significant fall on that side). Each profile is scanned on a grid over the data's range
    and out there, through the Firth and plain MLE crossings (the smooth penalised one on a
    coarser grid); ``ℓ̂`` is the larger of the plain scan's top and the plain MLE's value
    (the scan's alone under separation, where the MLE runs off to a step), ``ℓ̂*`` that of
    the penalised scan and the Firth fit; each end is refined by false position (:func:`_hull`).
    """
    if not abs(beta[1]) > FLAT:
        return [(-np.inf, np.inf)] * len(qs)
    sign = float(np.sign(-beta[1]))
    span = float(z.max() - z.min())
    far = span * 2.0 ** np.arange(1, 41)
    mle = fit_batch(z, k[None, :], r, beta[None, :].copy(), iters=25, firth=False)[0]
    tops = [
        (offset - b[0]) / b[1]
        for b in (beta, mle)
        if np.sign(-b[1]) == sign and np.isfinite(b).all()
    ]
    ends = []
    if likelihood != "penalised":
        grid = _scan_grid(z, tops, 241, far)
        plain = profile_loglik(z, k, r, grid, sign, offset)
        top = float(plain.max())
        if len(tops) == 2:  # the plain MLE exists (or nearly): its log-likelihood tops the scan
            top = max(top, float(penalised(z, k, r, mle[None, :], firth=False)[0][0]))
        at = functools.partial(profile_loglik, z, k, r, sign=sign, offset=offset)
        ends.append(_hull(at, grid, plain, top, qs, span))
    known = ends[0] if ends else None
    if likelihood != "plain":
        grid = _scan_grid(z, tops, 61, far[::3])
        pen = penalised_profile_loglik(z, k, r, grid, sign, offset)
        top = max(float(pen.max()), float(penalised(z, k, r, beta[None, :])[0][0]))
        at = functools.partial(penalised_profile_loglik, z, k, r, sign=sign, offset=offset)
        ends.append(_hull(at, grid, pen, top, qs, span, known, smooth=True))
    return [
        (min(lo for lo, _ in side), max(hi for _, hi in side)) for side in zip(*ends, strict=True)
    ]


def _scan_grid(z: NDArray, tops: list, count: int, far: NDArray) -> NDArray:
    """The crossings a profile is scanned at: ``count`` evenly spaced over the data's
    range widened by its width on each side, the sizes, the fits' crossings ``tops``, and
    ``far`` beyond each end (offsets outward)."""
    span = float(z.max() - z.min())
    wide = np.linspace(z.min() - span, z.max() + span, count)
    return np.unique(np.concatenate([wide, z, tops, z.min() - far, z.max() + far]))


def _hull(
    profile: Callable[[NDArray], NDArray],
    grid: NDArray,
    ll: NDArray,
    top: float,
    qs: tuple[float, ...],
    span: float,
    known: list[tuple[float, float]] | None = None,
    smooth: bool = False,
) -> list[tuple[float, float]]:
    """Ends of the hull of ``{z0 : 2 (top − profile(z0)) ≤ q}`` per ``q``, from the profile's
    values ``ll`` on ``grid``: infinite on a side where the grid's last point is inside,
    else refined between the outermost point inside and its outer neighbour by Illinois
    false position (bisection where it stalls, as at a jump, unless the profile is
    ``smooth``), the inner end kept inside. An end whose bracket lies inside ``known`` (an
    interval per ``q`` that a union will hold anyway) is left unrefined."""
    cuts = top - 0.5 * np.repeat(qs, 2)
    inner, outer, bounded = [], [], []
    for cut in cuts[::2]:
        inside = np.flatnonzero(ll >= cut)
        for i, o in ((inside[0], inside[0] - 1), (inside[-1], inside[-1] + 1)):
            bounded.append(0 <= o < grid.size)
            inner.append(grid[i])
            outer.append(grid[min(max(o, 0), grid.size - 1)])
    inner, outer, bounded = np.array(inner), np.array(outer), np.array(bounded)
    settled = ~bounded
    if known is not None:
        lo, hi = np.array(known).T.repeat(2, axis=1)
        settled |= (lo <= outer) & (outer <= hi)
    f_in = g_in = ll[np.searchsorted(grid, inner)] - cuts  # g_in: f_in before any halving
    f_out = ll[np.searchsorted(grid, outer)] - cuts
    last, slow = np.zeros(inner.size), np.zeros(inner.size, dtype=bool)
    for _ in range(60):
        done = settled | (g_in <= 1e-7) | (np.abs(outer - inner) <= 1e-8 * span)
        if done.all():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            secant = (inner * f_out - outer * f_in) / (f_out - f_in)
        mid = np.where(done, inner, np.where(slow, 0.5 * (inner + outer), secant))
        f_mid = profile(mid) - cuts
        ok = f_mid >= 0
        slow = ~smooth & (np.where(ok, outer - mid, mid - inner) ** 2 > 0.25 * (outer - inner) ** 2)
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


def separation_gap(x: NDArray, k: NDArray, r: NDArray) -> tuple[float, float] | None:
    """The gap ``(n_a, n_b)`` between all-success and all-failure sizes, if completely separated."""
    succ, fail = k == r, k == 0
    if not (np.all(succ | fail) and succ.any() and fail.any()):
        return None
    for left, right in ((succ, fail), (fail, succ)):
        if x[left].max() < x[right].min():
            return float(x[left].max()), float(x[right].min())
    return None


def crossing(beta: NDArray, c: float, h: float) -> NDArray[np.float64]:
    """``N = c − h b0/b1`` per row of ``beta``; NaN where the curve is flat (no crossing)."""
    b0, b1 = beta[:, 0], beta[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(b1) > FLAT, c - h * b0 / b1, np.nan)


def information(z: NDArray, r: NDArray, eta: NDArray):
    """Probabilities, weights and the entries (a, b, d) of ``Xᵀ W X = [[a, b], [b, d]]``."""
    p = special.expit(eta)
    w = r * p * (1.0 - p)
    a, b, d = w.sum(-1), (w * z).sum(-1), (w * z * z).sum(-1)
    return p, w, a, b, d


def penalised(z: NDArray, k: NDArray, r: NDArray, beta: NDArray, firth: bool = True):
    """Firth-penalised log-likelihood and its (modified) score, batched over rows
    (the plain ones with ``firth=False``)."""
    eta = beta[..., :1] + beta[..., 1:] * z
    p, w, a, b, d = information(z, r, eta)
    det = np.maximum(a * d - b * b, 1e-300)
    loglik = (k * eta - r * np.logaddexp(0.0, eta)).sum(-1) + 0.5 * firth * np.log(det)
    a_, b_, d_, det_ = (v[..., None] for v in (a, b, d, det))
    lev = w * (d_ - 2.0 * b_ * z + a_ * z * z) / det_
    resid = k - r * p + firth * lev * (0.5 - p)
    score = np.stack([resid.sum(-1), (resid * z).sum(-1)], axis=-1)
    return loglik, score, (a, b, d, det)


def fit_point(z: NDArray, k: NDArray, r: NDArray) -> tuple[NDArray, bool]:
    """Penalised MLE: BFGS from the empirical-logit least-squares start, polished by scoring.

    The penalised likelihood is not concave: near separation, with few sizes or two close
    ones, it can have a gentle mode and a higher steep one (100: 40/40, 155: 14/40, 157:
    0/40 has modes at N = 142.8 and, higher, 154.7), and the start can lead to the lower.
    So the curves crossing 1/2 on a grid (the data's range ± its width, and around each size
    at 1/8, 1/4 and 1/2 of the gap to its nearest neighbour) with slopes of either sign
    from 10⁻² to 10³ are scanned; scoring from each local maximum of the scan along the
    crossing that comes within 1 of the fit finds the other modes, and the highest is kept
    (the BFGS fit unless another beats it by more
    than rounding). Converged when the modified score is below ``1e-8`` per run.
    """
    emp = special.logit((k + 0.5) / (r + 1.0))
    start = np.polynomial.polynomial.polyfit(z, emp, 1, w=np.sqrt(r))

    def objective(beta: NDArray) -> tuple[float, NDArray]:
        loglik, score, _ = penalised(z, k, r, beta)
        return -float(loglik), -score

    res = optimize.minimize(objective, start, jac=True, method="BFGS")
    beta = fit_batch(z, k[None, :], r, res.x[None, :])[0]
    best = float(penalised(z, k, r, beta[None, :])[0][0])
    starts = _mode_starts(z, k, r, best - 1.0)
    if starts.size:
        others = fit_batch(z, k[None, :], r, starts)
        values = penalised(z, k, r, others)[0]
        if values.max() > best + 1e-9 * (1.0 + abs(best)):
            beta = others[values.argmax()]
    _, score, _ = penalised(z, k, r, beta)
    return beta, bool(np.all(np.isfinite(beta)) and np.max(np.abs(score)) <= 1e-8 * r.sum())


def _mode_starts(z: NDArray, k: NDArray, r: NDArray, floor: float) -> NDArray:
    """Curves ``(b0, b1)`` at the local maxima, along the crossing, of the penalised
    likelihood scanned on :func:`fit_point`'s grid (per sign, the best slope at each
    crossing), those above ``floor``."""
    span, sizes = float(z.max() - z.min()), np.unique(z)
    gap = np.minimum(np.diff(sizes, prepend=-np.inf), np.diff(sizes, append=np.inf))
    near = sizes[:, None] + gap[:, None] * np.array([-0.5, -0.25, -0.125, 0.125, 0.25, 0.5])
    z0 = np.unique(np.r_[np.linspace(z.min() - span, z.max() + span, 61), near.ravel()])
    starts = []
    for b1 in (-_SCAN_SLOPES, _SCAN_SLOPES):
        curves = np.stack(np.broadcast_arrays(-b1 * z0[:, None], b1), -1)
        values = penalised(z, k, r, curves)[0]
        slope, top = values.argmax(1), values.max(1)
        edge = np.r_[-np.inf, top, -np.inf]
        peak = (top >= edge[:-2]) & (top >= edge[2:]) & (top > floor)
        starts.append(curves[np.flatnonzero(peak), slope[peak]])
    return np.concatenate(starts)


def fit_batch(
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
    loglik, score, info = penalised(z, k, r, beta, firth)
    for _ in range(iters):
        a, b, d, det = info
        step = np.stack([d * score[:, 0] - b * score[:, 1], a * score[:, 1] - b * score[:, 0]], 1)
        step /= det[:, None]
        step *= np.minimum(1.0, max_step / np.maximum(np.abs(step).max(1), 1e-300))[:, None]
        if np.abs(step).max() < 1e-9:
            break
        for _ in range(30):
            trial = beta + step
            new_loglik, new_score, new_info = penalised(z, k, r, trial, firth)
            ok = new_loglik >= loglik - 1e-12
            beta = np.where(ok[:, None], trial, beta)
            loglik = np.where(ok, new_loglik, loglik)
            score = np.where(ok[:, None], new_score, score)
            info = tuple(np.where(ok, new, old) for new, old in zip(new_info, info, strict=True))
            if ok.all():
                break
            step = np.where(ok[:, None], 0.0, 0.5 * step)
    return beta
