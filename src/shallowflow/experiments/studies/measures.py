"""A study's table of measures: one row per number, with its 95% interval.

Rows hold ``part`` (which part of the study), ``arm`` (the variant), ``measure``, ``x``
(the ε, σ or n it is taken at; NaN for a fit over them), ``value``, ``ci_low``,
``ci_high`` and ``runs`` (the runs it rests on). The smallinit and groupinit studies
write such tables; :func:`get` reads a row back, :func:`shallowflow.report.format.ci`
prints it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.studies.common import first
from shallowflow.report.format import ci
from shallowflow.stats.curves import bootstrap_mean

__all__ = ["converged", "errorbars", "get", "lines", "mean", "row"]

_MISSING = {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "runs": 0}


def row(part: str, arm: str, measure: str, x: Any, stat: tuple) -> dict[str, Any]:
    """A row; ``stat`` is (value, ci_low, ci_high) or (value, ci_low, ci_high, runs)."""
    value, lo, hi, *used = stat
    cells = {"part": part, "arm": arm, "measure": measure, "x": float(x), "value": float(value)}
    return cells | {"ci_low": float(lo), "ci_high": float(hi), "runs": int(used[0]) if used else 0}


def mean(values: Any, boot: int, rng: np.random.Generator) -> tuple[float, float, float, int]:
    """The mean of the finite values, its 95% bootstrap interval and their number."""
    used = int(np.isfinite(np.asarray(values, float)).sum())
    return (*bootstrap_mean(values, boot, rng), used)


def get(table: pd.DataFrame, part: str, arm: str, measure: str, x: float = math.nan) -> dict:
    """The row of (part, arm, measure) at ``x`` (NaN: the row over all x); NaNs if none."""
    found = first(table, part=part, arm=arm, measure=measure, x=float(x))
    return found if found is not None else dict(_MISSING)


def lines(table: pd.DataFrame) -> list[str]:
    """Each row as a line: part, arm, measure, x, the value with its interval, its runs."""
    return [
        f"{r['part']} · {r['arm']} · {r['measure']}"
        + ("" if math.isnan(r["x"]) else f" · {r['x']:g}")
        + f": {ci(r, 4)} ({r['runs']} runs)"
        for r in table.to_dict("records")
    ]


def errorbars(rows: Any) -> np.ndarray:
    """The (2, k) ``yerr`` of rows for matplotlib's errorbar (0 where an end is NaN)."""
    low, high = rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]
    return np.nan_to_num(np.abs(np.vstack([low, high])))


def converged(runs: pd.DataFrame) -> dict[str, float]:
    """The fraction of successful runs per ``tag``."""
    return {
        str(t): float(np.mean(runs.loc[runs["tag"] == t, "success"]))
        for t in sorted(set(runs["tag"]))
    }
