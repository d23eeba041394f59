"""Estimates over runs with their intervals: means with a paired bootstrap, a success
fraction with Wilson's interval, a mean with its standard error, and the exponent in n
of a measure's mean with a bootstrap interval over runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.stats.fits import bootstrap_slopes, loglog_slope

__all__ = [
    "bootstrap_means",
    "exponent",
    "exponent_reps",
    "mean_se",
    "percentile_interval",
    "wilson",
]


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


def _per_n(
    runs: pd.DataFrame, column: str, ns: tuple | None
) -> tuple[list[tuple[Any, np.ndarray]], int]:
    """Per n (within ``ns``, ends included), the finite positive values of ``column``
    (the n with none left out), and the number of values before that."""
    groups = [(n, g[column].to_numpy(float)) for n, g in runs.groupby("n", sort=True)]
    if ns is not None:
        groups = [(n, v) for n, v in groups if ns[0] <= n <= ns[1]]
    kept = [(n, v[np.isfinite(v) & (v > 0)]) for n, v in groups]
    return [(n, v) for n, v in kept if v.size], int(sum(v.size for _, v in groups))


def _slope(
    kept: list[tuple[Any, np.ndarray]], boot: int, rng: np.random.Generator
) -> tuple[float, np.ndarray, int]:
    """The log-log slope of the per-n means of ``kept`` (:func:`_per_n`), its ``boot``
    bootstrap replicates over runs and the runs used; NaN with fewer than two n."""
    if len(kept) < 2:
        return math.nan, np.full(boot, math.nan), 0
    x, samples = np.array([n for n, _ in kept], float), [v for _, v in kept]
    slope = loglog_slope(x, [v.mean() for v in samples])
    return slope, bootstrap_slopes(x, samples, boot, rng), int(sum(v.size for v in samples))


def exponent_reps(
    runs: pd.DataFrame,
    column: str,
    boot: int,
    rng: np.random.Generator,
    ns: tuple | None = None,
) -> tuple[float, np.ndarray, int]:
    """The slope of log(mean ``column`` over runs) on log n (n within ``ns``), its
    ``boot`` bootstrap replicates over runs (:func:`~shallowflow.stats.fits.
    bootstrap_slopes`) and the runs used (non-finite or non-positive values left out);
    NaN with fewer than two n."""
    return _slope(_per_n(runs, column, ns)[0], boot, rng)


def exponent(
    runs: pd.DataFrame, column: str, boot: int, seed: int = 0, ns: tuple | None = None
) -> dict[str, Any]:
    """:func:`exponent_reps` as a row: the n range, the points and the runs used, the runs
    left out (``missing``), the slope and its 95% percentile interval."""
    kept, total = _per_n(runs, column, ns)
    used = int(sum(v.size for _, v in kept))
    row = {"n_min": math.nan, "n_max": math.nan, "points": len(kept), "runs": used}
    row["missing"] = total - used
    if len(kept) < 2:
        return row | {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    slope, reps, _ = _slope(kept, boot, np.random.default_rng(seed))
    lo, hi = np.percentile(reps, [2.5, 97.5])
    x = [int(n) for n, _ in kept]
    return row | {
        "n_min": min(x),
        "n_max": max(x),
        "slope": float(slope),
        "ci_low": float(lo),
        "ci_high": float(hi),
    }
