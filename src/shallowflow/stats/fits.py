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
from scipy import optimize, stats

from shallowflow.errors import require

__all__ = [
    "GROWTH_LAWS",
    "STEP_LAWS",
    "WIDTH_LAWS",
    "bootstrap_slopes",
    "common_exponent",
    "extrapolate_to_zero",
    "growth_laws",
    "law_interval",
    "law_table",
    "linear_fit",
    "loglog_slope",
    "power_exponent",
    "power_interval",
    "ratio_interval",
]

GROWTH_LAWS = ("power", "linear", "log")  # N = c p^γ, N = a p + b, N = a log p + b
WIDTH_LAWS = ("constant", "log", "power")  # p = b, p = a log n + b, p = c n^γ (activations)


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


def growth_laws(p: Any, n: Any, se: Any, laws: tuple[str, ...] = GROWTH_LAWS) -> dict[str, Any]:
    """Fig. 5's three laws for ``N(p)`` fitted to thresholds ``N̂_k ± se_k`` and ranked by AIC.

    Each law ``f`` (power ``c p^γ``, linear ``a p + b``, log ``a log p + b``; with
    ``laws`` also ``constant``, ``N = b``) is fitted
    by weighted least squares on ``N`` itself: the maximum of the Gaussian
    log-likelihood with the standard errors taken as known,
    ``log L = −½ Σ_k [((N̂_k − f(p_k))/se_k)² + log(2π se_k²)]``, so ``χ² = −2 log L +
    const``.  ``AIC = 2K − 2 log L`` with ``K = 2`` parameters for power, linear and log
    (``K = 1`` for the constant);
    ``delta_aic = AIC − min AIC`` and the Akaike weights ``exp(−Δ/2) / Σ exp(−Δ/2)``.
    Where ``K`` is the same for the laws, AICc (``AIC + 2K(K+1)/(m−K−1)``, also
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
    require(set(laws) <= set(_LAW_PARAMS), "laws", f"must be among {tuple(_LAW_PARAMS)}")
    out: dict[str, Any] = {"n": int(p.size), "best": None}
    for law in laws:
        out[law] = _law_fit(law, p, n, se) if np.unique(p).size >= 2 else _law_nan(law)
    aic = np.array([out[law]["aic"] for law in laws])
    if np.isfinite(aic).any():
        delta = aic - np.nanmin(aic)
        weight = np.exp(-0.5 * np.where(np.isfinite(delta), delta, np.inf))
        weight /= weight.sum()
        for law, d, w in zip(laws, delta, weight, strict=True):
            out[law] |= {"delta_aic": float(d), "weight": float(w)}
        out["best"] = laws[int(np.nanargmin(aic))]
    return out


_LAW_PARAMS = {
    "power": ("gamma", "c"),
    "linear": ("a", "b"),
    "log": ("a", "b"),
    "constant": ("b",),
}


def _law_nan(law: str) -> dict[str, float]:
    names = _LAW_PARAMS[law]
    stats = ("chi2", "dof", "loglik", "aic", "aicc", "delta_aic", "weight")
    return {k: math.nan for k in (*names, *(f"se_{v}" for v in names), *stats)}


def _curve(law: str, theta: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``f(p)`` of a law with parameters ``theta`` (``(γ, c)`` or ``(a, b)``)."""
    if law == "power":
        return theta[1] * p ** theta[0]
    if law == "constant":
        return np.full_like(p, theta[0])
    return theta[0] * (p if law == "linear" else np.log(p)) + theta[1]


def _law_fit(law: str, p: np.ndarray, n: np.ndarray, se: np.ndarray) -> dict[str, float]:
    """Weighted least squares of one law (see :func:`growth_laws`)."""
    if law == "power":
        theta, jac = _power_fit(p, n, se)
    else:
        x = p if law == "linear" else np.log(p)
        jac = np.ones((p.size, 1)) if law == "constant" else np.column_stack([x, np.ones_like(x)])
        theta = np.linalg.lstsq(jac / se[:, None], n / se, rcond=None)[0]
    chi2 = float(np.sum(((n - _curve(law, theta, p)) / se) ** 2))
    cov = np.linalg.pinv((jac / se[:, None]).T @ (jac / se[:, None]))
    loglik = -0.5 * (chi2 + float(np.sum(np.log(2.0 * math.pi * se**2))))
    m, k = p.size, len(_LAW_PARAMS[law])
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


STEP_LAWS = {"linear": 1, "quadratic": 2}  # N(η) = N₀ + c η^k


def extrapolate_to_zero(eta: Any, value: Any, se: Any) -> dict[str, Any]:
    """The limit ``N₀`` of ``N(η)`` as the step ``η → 0`` (SPEC §1: GD → the flow).

    Each law ``N(η) = N₀ + c η^k`` (``linear``, k = 1: GD's first-order error;
    ``quadratic``, k = 2) is fitted by weighted least squares with the standard errors
    ``se`` taken as known (the Gaussian likelihood of :func:`growth_laws`); both have two
    parameters, so AIC ranks them as χ² does. Returns, per law, ``N0``, ``c``, their
    standard errors, ``chi2`` and ``aic``, and ``best``: the law of least AIC (ties:
    linear). With fewer than three points or a non-finite error, ``best`` is None.
    """
    x, y, s = (np.asarray(v, float) for v in (eta, value, se))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(s) & (s > 0)
    out: dict[str, Any] = {"points": int(ok.sum()), "best": None}
    if ok.sum() < 3:
        return out
    x, y, s = x[ok], y[ok], s[ok]
    for law, k in STEP_LAWS.items():
        design = np.stack([np.ones_like(x), x**k], axis=1) / s[:, None]
        coef, *_ = np.linalg.lstsq(design, y / s, rcond=None)
        cov = np.linalg.inv(design.T @ design)
        chi2 = float(np.sum((design @ coef - y / s) ** 2))
        loglik = -0.5 * (chi2 + float(np.sum(np.log(2.0 * math.pi * s**2))))
        out[law] = {
            "N0": float(coef[0]),
            "c": float(coef[1]),
            "se_N0": float(math.sqrt(cov[0, 0])),
            "se_c": float(math.sqrt(cov[1, 1])),
            "chi2": chi2,
            "dof": int(x.size - 2),
            "aic": 4.0 - 2.0 * loglik,
        }
    out["best"] = min(STEP_LAWS, key=lambda law: (out[law]["aic"], STEP_LAWS[law]))
    return out


def power_interval(fit: dict[str, float], level: float = 0.95) -> tuple[float, float, float]:
    """``(lo, hi, S²)``: the interval of a power law's exponent (``growth_laws(...)
    ["power"]``), ``γ ± z·se_γ·S`` with the scale factor ``S = √(χ²/dof)`` where that
    exceeds 1 (the law misfits or the thresholds' errors are too small), else ``S = 1``
    (the Particle Data Group's convention for inconsistent measurements: it widens the
    interval by the misfit without the t quantile of a handful of dof, which would treat
    the known errors as unknown)."""
    gamma, se, chi2, dof = (fit.get(k, math.nan) for k in ("gamma", "se_gamma", "chi2", "dof"))
    scale = max(1.0, chi2 / dof) if np.isfinite(chi2) and dof > 0 else 1.0
    half = float(stats.norm.ppf(0.5 + level / 2)) * se * math.sqrt(scale)
    return gamma - half, gamma + half, scale


def law_interval(fit: dict[str, float], law: str, level: float = 0.95) -> tuple[float, ...]:
    """``(value, lo, hi)``: the key parameter of one law of :func:`growth_laws` (power: γ;
    log and linear: the slope a; constant: the level b) with its interval
    ``value ± z·se·S``, ``S`` the misfit's scale of :func:`power_interval`."""
    if law == "power":
        lo, hi, _ = power_interval(fit, level)
        return fit["gamma"], lo, hi
    key = "b" if law == "constant" else "a"
    value, se, chi2, dof = (fit.get(k, math.nan) for k in (key, f"se_{key}", "chi2", "dof"))
    scale = max(1.0, chi2 / dof) if np.isfinite(chi2) and dof > 0 else 1.0
    half = float(stats.norm.ppf(0.5 + level / 2)) * se * math.sqrt(scale)
    return value, value - half, value + half


def law_table(x: Any, y: Any, se: Any, laws: tuple[str, ...] = WIDTH_LAWS) -> list[dict[str, Any]]:
    """:func:`growth_laws` of ``laws`` as rows: per law its key parameter with the 95%
    interval of :func:`law_interval` (``law``, ``value``, ``ci_low``, ``ci_high``),
    ``delta_aic``, ``points`` (the values kept) and ``best`` (least AIC)."""
    fit = growth_laws(x, y, se, laws)
    keys = ("law", "value", "ci_low", "ci_high")
    return [
        dict(zip(keys, (law, *law_interval(fit[law], law)), strict=True))
        | {"delta_aic": fit[law]["delta_aic"], "points": fit["n"], "best": law == fit["best"]}
        for law in laws
    ]


def power_exponent(x: Any, n: Any, se: Any, level: float = 0.95) -> dict[str, Any]:
    """The power law ``N = C x^β`` fitted to thresholds ``N̂_k ± se_k`` (the power law of
    :func:`growth_laws`): ``beta`` with its interval (:func:`power_interval`), ``C``,
    ``chi2``, ``dof``, ``scale`` (S²), ``fit_p`` (the χ² goodness of fit, nan without
    dof) and ``points`` (the thresholds kept)."""
    fit = growth_laws(x, n, se)
    power = fit["power"]
    lo, hi, scale = power_interval(power, level)
    chi2, dof = power["chi2"], power["dof"]
    fit_p = float(stats.chi2.sf(chi2, dof)) if np.isfinite(chi2) and dof > 0 else math.nan
    return {"beta": power["gamma"], "ci_low": lo, "ci_high": hi, "C": power["c"]} | {
        "chi2": chi2,
        "dof": dof,
        "scale": scale,
        "fit_p": fit_p,
        "points": fit["n"],
    }


def common_exponent(x: Any, group: Any, n: Any, se: Any) -> dict[str, Any]:
    """Does the exponent of ``N = C_g x^β`` depend on the group ``g``?

    Fits one ``β`` and a ``C_g`` per group to thresholds ``N̂_k ± se_k`` by weighted
    least squares on ``N`` (errors as known, as :func:`growth_laws`), and each group's
    own power law; under equal exponents ``Δχ² = χ²_joint − Σ_g χ²_g`` has ``G − 1``
    degrees of freedom (G groups with two distinct x at least).  When the groups' own
    fits leave ``φ = Σ χ²_g / Σ dof_g > 1`` (overdispersion) the test is the F test of
    ``Δχ²/(G − 1)`` against ``φ``, else the χ² test.  Returns ``beta`` and ``se_beta``
    (scaled by ``√φ``), ``c`` (group → C_g), ``chi2``, ``dof``, ``delta_chi2``, ``df``,
    ``scale`` (φ) and ``p_value`` (nan with fewer than two groups)."""
    x, n, se = (np.asarray(v, dtype=float).ravel() for v in (x, n, se))
    group = np.asarray(group).ravel()
    keep = np.isfinite(x) & (x > 0) & np.isfinite(n) & (n > 0) & np.isfinite(se) & (se > 0)
    x, n, se, group = x[keep], n[keep], se[keep], group[keep]
    labels = [g for g in dict.fromkeys(group.tolist()) if np.unique(x[group == g]).size >= 2]
    out: dict[str, Any] = {"groups": len(labels), "p_value": math.nan, "c": {}}
    if not labels:
        return out | {"beta": math.nan, "se_beta": math.nan}
    sel = np.isin(group, labels)
    x, n, se, group = x[sel], n[sel], se[sel], group[sel]
    index = np.array([labels.index(g) for g in group.tolist()])
    own = [
        growth_laws(x[index == i], n[index == i], se[index == i])["power"]
        for i in range(len(labels))
    ]
    chi2_own = float(sum(f["chi2"] for f in own))
    dof_own = int(sum(f["dof"] for f in own))
    theta, jac = _joint_power_fit(x, n, se, index, own)
    chi2 = float(np.sum(((theta[1:][index] * x ** theta[0] - n) / se) ** 2))
    scale = max(1.0, chi2_own / dof_own) if dof_own > 0 else 1.0
    cov = np.linalg.pinv((jac / se[:, None]).T @ (jac / se[:, None])) * scale
    df = len(labels) - 1
    delta = chi2 - chi2_own
    if df > 0:
        test = (
            stats.f.sf(delta / df / scale, df, dof_own) if scale > 1.0 else stats.chi2.sf(delta, df)
        )
        out["p_value"] = float(test)
    return out | {
        "beta": float(theta[0]),
        "se_beta": float(math.sqrt(cov[0, 0])),
        "c": {g: float(c) for g, c in zip(labels, theta[1:], strict=True)},
        "chi2": chi2,
        "dof": int(x.size - len(labels) - 1),
        "delta_chi2": float(delta),
        "df": df,
        "scale": float(scale),
    }


def _joint_power_fit(x, n, se, index, own) -> tuple[np.ndarray, np.ndarray]:
    """``(β, C_1 … C_G)`` of ``N = C_g x^β`` by weighted least squares (from the groups'
    own fits' mean exponent), and the Jacobian ``∂f/∂(β, C)`` at the optimum."""
    groups = len(own)
    start = np.array([np.mean([f["gamma"] for f in own])] + [math.log(f["c"]) for f in own])

    def model(t):
        return np.exp(t[1:][index]) * x ** t[0]

    def jac(t):
        j = np.zeros((x.size, groups + 1))
        j[:, 0] = model(t) * np.log(x)
        j[np.arange(x.size), 1 + index] = model(t)
        return j / se[:, None]

    res = optimize.least_squares(
        lambda t: (model(t) - n) / se,
        start,
        jac=jac,  # pyright: ignore[reportArgumentType]  (scipy types jac by its str default)
        method="lm",
        xtol=1e-14,
        ftol=1e-14,
    )
    beta, c = float(res.x[0]), np.exp(res.x[1:])
    full = np.zeros((x.size, groups + 1))
    full[:, 0] = c[index] * x**beta * np.log(x)
    full[np.arange(x.size), 1 + index] = x**beta
    return np.concatenate([[beta], c]), full


def ratio_interval(num: float, se_num: float, den: float, se_den: float, level: float = 0.95):
    """``(r, lo, hi)``: the ratio ``num/den`` of two independent estimates with the
    interval ``r·exp(∓z s)``, ``s² = (se_num/num)² + (se_den/den)²`` (delta method on
    log r, which keeps the interval positive)."""
    r = num / den
    half = float(stats.norm.ppf(0.5 + level / 2)) * math.hypot(se_num / num, se_den / den)
    return float(r), float(r * math.exp(-half)), float(r * math.exp(half))
