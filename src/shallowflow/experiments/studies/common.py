"""What every study shares: its design from a preset name, and the rows of its table
picked by their keys.

A study's table holds one number per row with its 95% interval in ``ci_low`` and
``ci_high``; its verdict reads rows back by the values of their key columns (``part``,
``variant``, ``n``, …), asks whether an interval holds a value (:func:`holds`) and writes
each as ``value [ci_low, ci_high]`` (:func:`shallowflow.report.format.ci`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from shallowflow.stats.frames import where

__all__ = ["design_of", "first", "holds", "select"]

D = TypeVar("D")


def design_of(presets: Mapping[str, D], design: D | str) -> D:
    """The design of preset ``design`` in ``presets`` (or ``design`` itself)."""
    return presets[design] if isinstance(design, str) else design


def select(table: pd.DataFrame, **keys: Any) -> pd.DataFrame:
    """The rows of ``table`` whose column ``k`` equals ``v`` for every ``k=v`` of
    ``keys``: a float by :func:`numpy.isclose` (NaN selects the rows where it is NaN),
    anything else exactly."""
    keep = np.ones(len(table), bool)
    for k, v in keys.items():
        column = table[k]
        if isinstance(v, float):
            same = np.isnan(column) if math.isnan(v) else np.isclose(column, v)
        else:
            same = column == v
        keep &= np.asarray(same, bool)
    return where(table, keep)


def first(table: pd.DataFrame, **keys: Any) -> dict[str, Any] | None:
    """The first row that :func:`select` picks, as a dict; None when there is none."""
    rows = select(table, **keys)
    return rows.iloc[0].to_dict() if len(rows) else None


def holds(row: Mapping[Any, Any], value: float) -> bool:
    """Whether the 95% interval [ci_low, ci_high] of ``row`` holds ``value``."""
    return bool(row["ci_low"] <= value <= row["ci_high"])
