"""Times read off recorded curves, and the mean of runs with its bootstrap interval.

A run's records are samples of a curve at increasing times; these helpers return when a
curve first crosses a level, as a small-initialisation study needs (the first plateau,
the order of the fits), without the engine knowing about it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["bootstrap_mean", "first_below", "paired_slopes", "staircase"]


def first_below(t: Any, values: Any, level: float) -> float:
    """The first time a positive curve is ≤ ``level``, log-linear between the records
    around it (the curve's own first time if it starts there; NaN if never)."""
    t, values = np.asarray(t, float), np.asarray(values, float)
    below = np.flatnonzero(values <= level)
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(t[0])
    hi, lo = math.log(values[k - 1]), math.log(values[k])
    return float(t[k - 1] + (t[k] - t[k - 1]) * (hi - math.log(level)) / (hi - lo))


def staircase(t: Any, count: Any, size: int) -> list[float]:
    """The first recorded time at which ``count`` reaches k, for k = 1 … ``size`` (NaN for
    a k never reached): a counting curve's steps."""
    t, count = np.asarray(t, float), np.asarray(count)
    return [
        float(t[np.argmax(count >= k)]) if (count >= k).any() else math.nan
        for k in range(1, size + 1)
    ]


def bootstrap_mean(values: Any, reps: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """The mean of the finite values with its 95% percentile bootstrap interval over them
    (all NaN when none is finite)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    reps_ = v[rng.integers(0, v.size, (reps, v.size))].mean(axis=1)
    lo, hi = np.percentile(reps_, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def paired_slopes(x: Any, y: Any, pair: Any, least: int = 3) -> np.ndarray:
    """The least-squares slope of y on x within each pair (a run measured at several x on
    the same draws), in the order of the sorted pairs; NaN for a pair with fewer than
    ``least`` finite y."""
    x, y, pair = np.asarray(x, float), np.asarray(y, float), np.asarray(pair)
    out = []
    for key in np.unique(pair):
        sel = (pair == key) & np.isfinite(y)
        out.append(np.polyfit(x[sel], y[sel], 1)[0] if sel.sum() >= least else math.nan)
    return np.asarray(out)
