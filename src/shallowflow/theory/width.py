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


def coverage_probability(n: int, p: int) -> float:
    """P(every example covered at θ(0)) on orthogonal data, exactly (SPEC §2, "Coverage").

    With ``x_i = ρ_i e_i``, the signs of ``u_ji = ρ_i w_ji``, of ``a_j`` and of ``y_i``
    independent and symmetric, example i is covered unless every neuron j with
    ``sign(a_j) = sign(y_i)`` has ``w_ji ≤ 0``. Given the k neurons with ``a_j > 0`` the
    examples are independent, each covered with probability
    ``1 − (2^{−k} + 2^{−(p−k)})/2``, so
    ``P = Σ_k C(p, k) 2^{−p} [1 − (2^{−k} + 2^{−(p−k)})/2]^n``. The examples share the
    signs of a, so by Jensen (``(1 − m)^n`` is convex in m, and the mean miss is
    ``(3/4)^p``) P is above the guess ``(1 − (3/4)^p)^n`` that takes them independent."""
    n, p = _check_count(n, "n"), _check_count(p, "p")
    total = 0.0
    for k in range(p + 1):
        miss = 0.5 * (2.0**-k + 2.0 ** -(p - k))
        total += math.comb(p, k) * 2.0**-p * math.exp(n * math.log1p(-miss))
    return total


def coverage_width(n: int, q: float) -> int:
    """The smallest p with :func:`coverage_probability` ``(n, p) ≥ q``: the width that
    a network needs on orthogonal data when success means coverage at θ(0) (ReLU)."""
    n = _check_count(n, "n")
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 < float(q) < 1.0:
        raise ShallowflowInputError("q", f"must be a number in the open interval (0, 1); got {q!r}")
    p = 1
    while coverage_probability(n, p) < q:
        p += 1
    return p
