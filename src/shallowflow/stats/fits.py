"""Fits of laws to measured points: lines, growth laws, log-log slopes and their
bootstrap over runs (SPEC §5: Fig. 4's linear N(d), Fig. 5's growth of N(p), Fig. 6's
slopes of log-rate against log n)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap_slopes", "growth_fits", "linear_fit", "loglog_slope"]


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


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0


def growth_fits(p: Any, n: Any) -> dict[str, dict[str, float]]:
    """Three laws for ``N(p)`` (Fig. 5), each with R² measured on N itself.

    power ``N = c p^γ`` (least squares in log-log), linear ``N = a p + b``,
    log ``N = a log p + b``.
    """
    p, n = np.asarray(p, float), np.asarray(n, float)
    power = linear_fit(np.log(p), np.log(n))
    lin = linear_fit(p, n)
    log = linear_fit(np.log(p), n)
    out = {
        "power": {"gamma": power["a"], "se_gamma": power["se_a"], "c": math.exp(power["b"])},
        "linear": {"a": lin["a"], "b": lin["b"]},
        "log": {"a": log["a"], "b": log["b"]},
    }
    if p.size >= 2:
        out["power"]["r2"] = _r2(n, out["power"]["c"] * p ** out["power"]["gamma"])
        out["linear"]["r2"] = lin["r2"]
        out["log"]["r2"] = log["r2"]
    return out


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
