"""Network width needed to cover every example (SPEC §2, "Coverage").

With symmetric random signs each pair (example i, neuron j) covers with
probability about 1/4, so all n examples are covered with probability
≥ 1 − n (3/4)^p ≥ 1 − ε once p ≥ log(n/ε)/log(4/3). Beside it, the paper's other
automatic size, its horizon T(n, p) (SPEC §5).
"""

from __future__ import annotations

import math
import numbers

from shallowflow.errors import ShallowflowInputError


def _check_count(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ShallowflowInputError(param, f"must be an integer ≥ 1; got {value!r}")
    return int(value)


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < float(eps) < 1.0:
        msg = f"must be a number in the open interval (0, 1); got {eps!r}"
        raise ShallowflowInputError("eps", msg)
    return float(eps)


def width(n: int, eps: float) -> int:
    """Width of the paper's code: ``p(n, ε) = ⌊log(n/ε) / log(4/3)⌋ + 1`` (SPEC §2)."""
    n, eps = _check_count(n, "n"), _check_eps(eps)
    return math.floor(math.log(n / eps) / math.log(4.0 / 3.0)) + 1


def horizon_steps(n: int, p: int) -> int:
    """The paper's horizon T(n, p) = ⌊1.5 √(np) log(np) / 4⌋ + 1 steps (SPEC §5)."""
    return int(math.floor(1.5 * math.sqrt(n * p) * math.log(n * p) / 4)) + 1


def width_paper(n: int, eps: float) -> int:
    """Width stated in the paper: ``⌈4 log(n/ε)⌉`` (SPEC §2)."""
    n, eps = _check_count(n, "n"), _check_eps(eps)
    return math.ceil(4.0 * math.log(n / eps))


def coverage_failure_bound(n: int, p: int) -> float:
    """Union bound on P(some example is uncovered): ``min(1, n (3/4)^p)`` (SPEC §2)."""
    n, p = _check_count(n, "n"), _check_count(p, "p")
    return min(1.0, n * 0.75**p)
