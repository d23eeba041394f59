"""Where a data set sits with respect to the theory (SPEC §2, "Interaction level").

``κ(X) = max_{i≠k} |⟨x_i, x_k⟩| / (‖x_i‖ ‖x_k‖)``. Theorem 1 needs pairwise
correlations of order 1/n, i.e. ``n κ(X)`` bounded by a small constant. The
paper's constant is not reproduced: this module uses the cut ``n κ ≤ weak_cut``
(default 1) as a heuristic boundary of the weak-interaction regime and reports
``κ``, ``n κ`` and the dimension sub-Gaussian data would need,
``d = 2 n² log(n²/δ) / c²`` (from ``κ ≈ √(2 log(n²/δ)/d)``).
"""

from __future__ import annotations

import math

import numpy as np

from shallowflow.errors import ShallowflowInputError
from shallowflow.io import validate_data
from shallowflow.theory.width import width, width_paper

_BLOCK_ELEMENTS = 1 << 22  # entries of one block of the Gram matrix (32 MiB of float64)
PAPER_NORM_RANGE = (1.0, 2.0)  # the paper assumes ‖x_i‖ ∈ [1, 2] and |y_i| ∈ [1, 2]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ShallowflowInputError(
            "X",
            f"{zero.size} row(s) have zero norm (first: row {zero[0]}); κ(X) needs every x_i ≠ 0",
        )
    return X / norms[:, None]


def interaction(X: object, *, block_size: int | None = None) -> float:
    """Interaction level ``κ(X) = max_{i≠k} |⟨x_i,x_k⟩| / (‖x_i‖‖x_k‖)`` (SPEC §2).

    The Gram matrix of the normalised rows is formed ``block_size`` rows at a
    time (upper triangle only), so memory stays O(block_size · n) besides X.
    By convention κ = 0 for n = 1 (no pairs). Zero rows raise.
    """
    X, _ = validate_data(X)
    if block_size is not None and (isinstance(block_size, bool) or block_size < 1):
        raise ShallowflowInputError("block_size", f"must be an integer ≥ 1; got {block_size!r}")
    return _kappa(X, block_size)


def _kappa(X: np.ndarray, block_size: int | None = None) -> float:
    n = X.shape[0]
    U = _unit_rows(X)
    block_size = block_size or max(1, _BLOCK_ELEMENTS // n)
    kappa = 0.0
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        G = U[start:stop] @ U[start:].T  # rows start..stop against columns start..n
        diag = np.arange(stop - start)
        G[diag, diag] = 0.0
        kappa = max(kappa, float(np.abs(G).max(initial=0.0)))
    return min(kappa, 1.0)  # rounding can push |cos| a hair above 1


def is_orthogonal(X: object, tol: float = 1e-10) -> bool:
    """Whether the rows are pairwise orthogonal: ``κ(X) ≤ tol`` (cosines, so scale-free)."""
    return interaction(X) <= tol


def d_needed(n: int, delta: float = 0.05, c: float = 1.0) -> int:
    """Dimension at which sub-Gaussian data of n points have ``n κ ≤ c`` w.p. ≥ 1 − δ.

    From ``κ ≈ √(2 log(n²/δ)/d)`` (SPEC §2): ``d = ⌈2 n² log(n²/δ) / c²⌉``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ShallowflowInputError("n", f"must be an integer ≥ 1; got {n!r}")
    if not 0.0 < delta < 1.0:
        raise ShallowflowInputError("delta", f"must be in the open interval (0, 1); got {delta!r}")
    if not c > 0.0:
        raise ShallowflowInputError("c", f"must be > 0; got {c!r}")
    n = int(n)
    return math.ceil(2.0 * n * n * math.log(n * n / delta) / (c * c))


def numerical_rank(X: np.ndarray, rtol: float | None = None) -> int:
    """Number of singular values above ``rtol · σ_max`` (default rtol = max(n, d) · eps)."""
    s = np.linalg.svd(X, compute_uv=False)
    if rtol is None:
        rtol = max(X.shape) * np.finfo(np.float64).eps
    return int(np.sum(s > rtol * s[0])) if s[0] > 0 else 0


def _in_paper_range(lo: float, hi: float, slack: float = 1e-9) -> bool:
    """Whether [lo, hi] ⊂ [1, 2] up to rounding (unit-normalised rows have ‖x‖ = 1 ± ulp)."""
    return PAPER_NORM_RANGE[0] - slack <= lo and hi <= PAPER_NORM_RANGE[1] + slack


def _prediction(res: dict, weak_cut: float) -> dict:
    n, n_kappa, dn = res["n"], res["n_kappa"], res["d_needed"]
    x_ok = _in_paper_range(res["x_norm_min"], res["x_norm_max"])
    y_ok = None
    if res["y_norm_min"] is not None:
        y_ok = _in_paper_range(res["y_norm_min"], res["y_norm_max"])
    width_text = ", ".join(f"p(n, {e}) = {p}" for e, p in res["widths"].items())
    if res["orthogonal"]:
        regime = "orthogonal"
        statement = (
            "orthogonal data: rate between 1/n and 1/√n (Prop. 1; Conjecture 1: 1/√n); "
            f"Theorem 1 also applies (n κ = 0) with p ≥ p(n, ε): {width_text}"
        )
    elif n_kappa <= weak_cut:
        regime = "weakly_interacting"
        statement = (
            f"weakly interacting (n κ = {n_kappa:.3g} ≤ {weak_cut:g}): Theorem 1: with "
            f"p ≥ p(n, ε) ({width_text}), convergence with probability ≥ 1 − ε at rate ≥ C/n"
        )
    else:
        regime = "outside"
        statement = (
            f"outside the weak-interaction regime (n κ = {n_kappa:.3g} > {weak_cut:g}): "
            f"no guarantee; sub-Gaussian data with n = {n} would need d ≈ {dn:.3g}"
        )
    notes = []
    if not x_ok:
        notes.append("‖x_i‖ outside [1, 2]: the constants of Theorem 1 change with the range")
    if y_ok is False:
        notes.append("|y_i| outside [1, 2]: the constants of Theorem 1 change with the range")
    if y_ok is None:
        notes.append("no labels: the |y_i| ∈ [1, 2] assumption could not be checked")
    return {
        "regime": regime,
        "statement": statement,
        "weak_cut": float(weak_cut),
        "x_norms_in_paper_range": x_ok,
        "y_in_paper_range": y_ok,
        "notes": notes,
    }


def check_data(
    X: object,
    y: object = None,
    eps_list: tuple[float, ...] = (0.01, 0.05, 0.1),
    *,
    orth_tol: float = 1e-10,
    weak_cut: float = 1.0,
    delta: float = 0.05,
    rank_rtol: float | None = None,
) -> dict:
    """Summarise a data set against the theory; the result is JSON-serialisable.

    Keys: ``n``, ``d``, ``rank``, ``orthogonal`` (κ ≤ ``orth_tol``), ``kappa``,
    ``n_kappa``, ``d_needed`` (``d_needed(n, delta, c=weak_cut)``), ``delta``,
    ``x_norm_min``/``x_norm_max`` (‖x_i‖), ``y_norm_min``/``y_norm_max`` (|y_i|,
    None without labels), ``widths`` and ``widths_paper`` ({str(ε): p}, SPEC §2),
    and ``prediction`` (regime, statement, whether the paper's [1, 2] norm ranges
    hold). The weak-interaction cut ``n κ ≤ weak_cut`` is a heuristic.
    """
    X, y = validate_data(X, y)
    n, d = X.shape
    kappa = _kappa(X)
    x_norms = np.linalg.norm(X, axis=1)
    res = {
        "n": int(n),
        "d": int(d),
        "rank": numerical_rank(X, rank_rtol),
        "orthogonal": bool(kappa <= orth_tol),
        "kappa": float(kappa),
        "n_kappa": float(n * kappa),
        "d_needed": d_needed(n, delta, c=weak_cut),
        "delta": float(delta),
        "x_norm_min": float(x_norms.min()),
        "x_norm_max": float(x_norms.max()),
        "y_norm_min": None if y is None else float(np.abs(y).min()),
        "y_norm_max": None if y is None else float(np.abs(y).max()),
        "widths": {repr(float(e)): width(n, e) for e in eps_list},
        "widths_paper": {repr(float(e)): width_paper(n, e) for e in eps_list},
    }
    res["prediction"] = _prediction(res, weak_cut)
    return res


def _yes(flag: bool | None) -> str:
    return {True: "yes", False: "no", None: "n/a"}[flag]


def format_report(result: dict) -> str:
    """Human-readable text of a :func:`check_data` result."""
    r, pred = result, result["prediction"]
    lines = [
        f"data: n = {r['n']} examples, d = {r['d']} dimensions, numerical rank {r['rank']}",
        f"interaction: κ = {r['kappa']:.4g}, n κ = {r['n_kappa']:.4g} "
        f"(weak-interaction cut: n κ ≤ {pred['weak_cut']:g}); orthogonal: {_yes(r['orthogonal'])}",
        f"d needed by sub-Gaussian data for n κ ≤ {pred['weak_cut']:g} "
        f"(δ = {r['delta']:g}): {r['d_needed']:.3g}",
        f"‖x_i‖ ∈ [{r['x_norm_min']:.4g}, {r['x_norm_max']:.4g}] "
        f"(paper's [1, 2]: {_yes(pred['x_norms_in_paper_range'])})",
    ]
    if r["y_norm_min"] is not None:
        lines.append(
            f"|y_i| ∈ [{r['y_norm_min']:.4g}, {r['y_norm_max']:.4g}] "
            f"(paper's [1, 2]: {_yes(pred['y_in_paper_range'])})"
        )
    ws = ", ".join(f"ε = {e}: {p}" for e, p in r["widths"].items())
    wp = ", ".join(f"ε = {e}: {p}" for e, p in r["widths_paper"].items())
    lines += [f"width p(n, ε) (code): {ws}", f"width ⌈4 log(n/ε)⌉ (paper): {wp}"]
    lines.append(f"prediction [{pred['regime']}]: {pred['statement']}")
    lines += [f"note: {note}" for note in pred["notes"]]
    return "\n".join(lines)
