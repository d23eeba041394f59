"""Estimates over runs with their intervals: means with a paired bootstrap, a success
fraction with Wilson's interval, a mean with its standard error."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bootstrap_means", "mean_se", "percentile_interval", "wilson"]


def bootstrap_means(
    values: dict[str, np.ndarray], reps: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """``reps`` bootstrap replicates of the mean of each array of ``values`` (one entry per
    run, the same runs in every array), the runs resampled jointly: a paired bootstrap, so
    that a ratio of two replicates' means carries the runs' correlation."""
    size = next(iter(values.values())).size
    idx = np.random.default_rng(seed).integers(0, size, (reps, size))
    return {name: x[idx].mean(axis=1) for name, x in values.items()}


def percentile_interval(
    estimate: float, replicates: np.ndarray, level: float = 0.95
) -> dict[str, float]:
    """``estimate`` with the percentile interval of its bootstrap ``replicates``."""
    lo, hi = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
    return {"value": float(estimate), "ci_low": float(lo), "ci_high": float(hi)}


def wilson(ok: np.ndarray, z: float = 1.96) -> dict[str, float]:
    """The fraction of True in ``ok`` with its Wilson score interval (95% for z = 1.96),
    which stays inside [0, 1] and is not empty at a fraction of 0 or 1."""
    total, f = ok.size, float(np.mean(ok))
    centre = (f + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(f * (1 - f) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return {"value": f, "ci_low": max(0.0, centre - half), "ci_high": min(1.0, centre + half)}


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """The mean of the finite entries of ``x`` and its standard error (NaN with fewer
    than two; the mean NaN with none)."""
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
