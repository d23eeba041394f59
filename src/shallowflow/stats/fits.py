"""Fits of laws to measured points: lines, growth laws, log-log slopes and their
bootstrap over runs (SPEC §5: Fig. 4's linear N(d), Fig. 5's growth of N(p), Fig. 6's
slopes of log-rate against log n).

Fig. 5's growth laws are compared by likelihood (:func:`growth_laws`): each is fitted
to the thresholds by weighted least squares with their standard errors, and ranked by
AIC with Akaike weights (Burnham & Anderson 2002, §2.9), not by the R² of unweighted
fits to point estimates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize

from shallowflow.errors import require

__all__ = [
    "GROWTH_LAWS",
    "bootstrap_slopes",
    "growth_laws",
    "linear_fit",
    "loglog_slope",
]

GROWTH_LAWS = ("power", "linear", "log")  # N = c p^γ, N = a p + b, N = a log p + b


def linear_fit(x: Any, y: Any) -> dict[str, float]:
    """Least squares ``y = a x + b``: slope, intercept, their standard errors and R²."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.unique(x).size < 2:
        return {"a": math.nan, "b": math.nan, "se_a": math.nan, "se_b": math.nan, "r2": math.nan}
    (a, b), res, *_ = np.polyfit(x, y, 1, full=True)
    pred = a * x + b
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    dof = x.size - 2
    s2 = ss_res / dof if dof > 0 else math.nan
    sxx = float(np.sum((x - x.mean()) ** 2))
    se_a = math.sqrt(s2 / sxx) if dof > 0 else math.nan
    se_b = math.sqrt(s2 * (1 / x.size + x.mean() ** 2 / sxx)) if dof > 0 else math.nan
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"a": float(a), "b": float(b), "se_a": se_a, "se_b": se_b, "r2": r2}


def growth_laws(p: Any, n: Any, se: Any) -> dict[str, Any]:
    """Fig. 5's three laws for ``N(p)`` fitted to thresholds ``N̂_k ± se_k`` and ranked by AIC.

    Each law ``f`` (power ``c p^γ``, linear ``a p + b``, log ``a log p + b``) is fitted
    by weighted least squares on ``N`` itself: the maximum of the Gaussian
    log-likelihood with the standard errors taken as known,
    ``log L = −½ Σ_k [((N̂_k − f(p_k))/se_k)² + log(2π se_k²)]``, so ``χ² = −2 log L +
    const``.  ``AIC = 2K − 2 log L`` with ``K = 2`` parameters for every law;
    ``delta_aic = AIC − min AIC`` and the Akaike weights ``exp(−Δ/2) / Σ exp(−Δ/2)``.
    Since ``K`` is the same for the three laws, AICc (``AIC + 2K(K+1)/(m−K−1)``, also
    given) shifts them all alike and ranks and weighs them as AIC does.

    ``se_k`` is each threshold's one-sigma error, e.g. ``ThresholdFit.se`` (half its
    68.27% profile-likelihood interval).  Points with a non-finite or non-positive
    ``se`` (an unbounded interval), a non-finite ``N`` or ``p ≤ 0`` are left out (``n``
    counts those kept).  Per law: the parameters (``gamma, c`` or
    ``a, b``) with their standard errors ``se_<name>`` from the inverse of ``JᵀWJ``
    (known variances; if ``chi2/dof`` is well above 1 the law misfits or the SEs are
    too small, and they should be scaled by ``√(chi2/dof)``), ``chi2``, ``dof``,
    ``loglik``, ``aic``, ``aicc``, ``delta_aic`` and ``weight``; ``best`` is the law
    of least AIC (``None`` with fewer than two distinct ``p``).
    """
    p, n, se = (np.asarray(v, dtype=float).ravel() for v in (p, n, se))
    require(p.size == n.size == se.size, "se", f"lengths differ: {p.size}, {n.size}, {se.size}")
    keep = np.isfinite(p) & (p > 0) & np.isfinite(n) & np.isfinite(se) & (se > 0)
    p, n, se = p[keep], n[keep], se[keep]
    out: dict[str, Any] = {"n": int(p.size), "best": None}
    for law in GROWTH_LAWS:
        out[law] = _law_fit(law, p, n, se) if np.unique(p).size >= 2 else _law_nan(law)
    aic = np.array([out[law]["aic"] for law in GROWTH_LAWS])
    if np.isfinite(aic).any():
        delta = aic - np.nanmin(aic)
        weight = np.exp(-0.5 * np.where(np.isfinite(delta), delta, np.inf))
        weight /= weight.sum()
        for law, d, w in zip(GROWTH_LAWS, delta, weight, strict=True):
            out[law] |= {"delta_aic": float(d), "weight": float(w)}
        out["best"] = GROWTH_LAWS[int(np.nanargmin(aic))]
    return out


_LAW_PARAMS = {"power": ("gamma", "c"), "linear": ("a", "b"), "log": ("a", "b")}


def _law_nan(law: str) -> dict[str, float]:
    names = _LAW_PARAMS[law]
    stats = ("chi2", "dof", "loglik", "aic", "aicc", "delta_aic", "weight")
    return {k: math.nan for k in (*names, *(f"se_{v}" for v in names), *stats)}


def _curve(law: str, theta: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``f(p)`` of a law with parameters ``theta`` (``(γ, c)`` or ``(a, b)``)."""
    if law == "power":
        return theta[1] * p ** theta[0]
    return theta[0] * (p if law == "linear" else np.log(p)) + theta[1]


def _law_fit(law: str, p: np.ndarray, n: np.ndarray, se: np.ndarray) -> dict[str, float]:
    """Weighted least squares of one law (see :func:`growth_laws`)."""
    if law == "power":
        theta, jac = _power_fit(p, n, se)
    else:
        x = p if law == "linear" else np.log(p)
        jac = np.column_stack([x, np.ones_like(x)])
        theta = np.linalg.lstsq(jac / se[:, None], n / se, rcond=None)[0]
    chi2 = float(np.sum(((n - _curve(law, theta, p)) / se) ** 2))
    cov = np.linalg.pinv((jac / se[:, None]).T @ (jac / se[:, None]))
    loglik = -0.5 * (chi2 + float(np.sum(np.log(2.0 * math.pi * se**2))))
    m, k = p.size, 2
    names = _LAW_PARAMS[law]
    return (
        {name: float(v) for name, v in zip(names, theta, strict=True)}
        | {f"se_{name}": float(math.sqrt(cov[i, i])) for i, name in enumerate(names)}
        | {"chi2": chi2, "dof": m - k, "loglik": loglik, "aic": 2 * k - 2 * loglik}
        | {"aicc": 2 * k - 2 * loglik + (2 * k * (k + 1) / (m - k - 1) if m > k + 1 else math.nan)}
    )


def _power_fit(p: np.ndarray, n: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(γ, c)`` of ``N = c p^γ`` by weighted least squares on N (Levenberg–Marquardt from
    the log-log fit weighted by ``(N/se)²``), and the Jacobian ``∂f/∂(γ, c)`` there."""
    pos = n > 0
    if np.unique(p[pos]).size >= 2:
        w = n[pos] / se[pos]
        x = np.column_stack([np.log(p[pos]), np.ones(pos.sum())])
        gamma, log_c = np.linalg.lstsq(x * w[:, None], np.log(n[pos]) * w, rcond=None)[0]
    else:
        gamma, log_c = 1.0, math.log(max(float(np.mean(np.abs(n))), 1e-300))
    # Parametrised by log c so the scale is O(1); c > 0 (N grows from positive values).
    res = optimize.least_squares(
        lambda t: (np.exp(t[1]) * p ** t[0] - n) / se,
        [gamma, log_c],
        # scipy's jac is unannotated (typed from its default, a str); a callable is documented
        jac=lambda t: (  # pyright: ignore[reportArgumentType]
            np.column_stack([np.exp(t[1]) * p ** t[0] * np.log(p), np.exp(t[1]) * p ** t[0]])
            / se[:, None]
        ),
        method="lm",
        xtol=1e-14,
        ftol=1e-14,
        gtol=1e-14,
    )
    gamma, c = float(res.x[0]), float(np.exp(res.x[1]))
    return np.array([gamma, c]), np.column_stack([c * p**gamma * np.log(p), p**gamma])


def loglog_slope(x: Any, y: Any) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def bootstrap_slopes(
    x: Any, samples: Sequence[np.ndarray], reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``reps`` bootstrap slopes of log(mean) against log x: each replicate resamples the
    runs of every point with replacement (``samples[i]`` holds point i's runs)."""
    log_x = np.log(np.asarray(x, float))
    out = np.empty(reps)
    for b in range(reps):
        means = [s[rng.integers(0, s.size, s.size)].mean() for s in samples]
        out[b] = np.polyfit(log_x, np.log(means), 1)[0]
    return out
