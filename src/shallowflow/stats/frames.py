"""Typed row selection on tables.

pandas-stubs types ``frame[mask]`` as ``Series | DataFrame`` (the same operator also
selects a column), so each study would otherwise need a cast at every filter.
:func:`where` says once what the studies mean: the rows of a table that satisfy a
condition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["where"]


def where(frame: pd.DataFrame, mask: Any) -> pd.DataFrame:
    """The rows of ``frame`` where the boolean ``mask`` (a Series aligned with it, or an
    array of its length) holds, as a DataFrame."""
    keep = np.asarray(mask, dtype=bool)
    if keep.shape != (len(frame),):
        raise ValueError(f"mask: expected {len(frame)} booleans, got shape {keep.shape}")
    return frame.iloc[np.flatnonzero(keep)]
