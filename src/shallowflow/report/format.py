"""How numbers read in verdicts and reports: one formatting of values, of yes/no
answers and of a value with its uncertainty."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ci", "fmt", "plus_minus", "value", "yes"]


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits; ``∞`` or ``−∞`` for an infinite value (an
    interval unbounded on that side), ``nan`` for a missing one."""
    if x is not None and np.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def ci(
    row: Mapping[Any, Any],
    digits: int = 3,
    key: str = "value",
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    unit: str = "",
) -> str:
    """``row[key] [ci_low, ci_high]`` to ``digits`` significant digits, each number read
    as scale·(x − shift) followed by ``unit`` (``scale=100, shift=1, unit="%"``: a ratio
    as a change in percent)."""
    plain = scale == 1.0 and shift == 0.0

    def one(k: str) -> str:
        return fmt(row[k] if plain else scale * (row[k] - shift), digits) + unit

    return f"{one(key)} [{one('ci_low')}, {one('ci_high')}]"


def yes(cond: bool) -> str:
    """``yes`` or ``no``, as a verdict line says it."""
    return "yes" if cond else "no"


def plus_minus(value: float, se: float) -> str:
    """``value ± se`` with the uncertainty to two significant digits and the value to
    the same decimal place (never "−0.48 ± 0.00")."""
    if not (np.isfinite(value) and np.isfinite(se)) or se <= 0:
        return f"{value:+.3g} ± {se:.2g}"
    decimals = max(0, 1 - int(np.floor(np.log10(se))))
    return f"{value:+.{decimals}f} ± {se:.{decimals}f}"


def value(x) -> str:
    """Any measured value as it reads in a list of numbers: floats to 4 significant
    digits, containers item by item."""
    if isinstance(x, bool | int):
        return str(x)
    if isinstance(x, float):
        return str(x) if not np.isfinite(x) else f"{x:.4g}"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(value(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {value(v)}" for k, v in x.items()) + "}"
    return str(x)
