"""Logistic regression of a per-run outcome on several covariates, with Fisher-information
intervals (the mechanism of a study: success against what a run started from and what
it did, e.g. the fraction of neurons violating Assumption 1 and the a_j that changed sign).

The model is ``P(y_i = 1) = σ(x_iᵀβ)`` (σ the logistic function, x_i with a leading 1).
The estimate maximises Firth's penalised log-likelihood (Firth 1993)

    ℓ*(β) = Σ_i [y_i x_iᵀβ − log(1 + e^{x_iᵀβ})] + ½ log det I(β),   I(β) = Xᵀ W X,

``W = diag(p_i (1 − p_i))``, by Newton steps on the modified score
``U*(β) = Xᵀ (y − p + h ⊙ (½ − p))`` (``h`` the diagonal of the hat matrix
``W^{1/2} X I⁻¹ Xᵀ W^{1/2}``), halving a step until ℓ* does not fall. The penalty keeps
β finite when a covariate separates successes from failures (as a run's sign changes may),
and removes the O(1/n) bias of the MLE; ``firth=False`` gives the plain MLE. The
interval of each coefficient is Wald's, ``β_k ± z σ_k`` with ``σ_k² = (I(β̂)⁻¹)_kk``.
Two closed forms check it (tests/test_regression.py): with one binary covariate the MLE
is the log odds ratio of the 2×2 table with ``σ² = 1/a + 1/b + 1/c + 1/d``, and Firth's
estimate is the same table's with ½ added to each count (Haldane's correction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from shallowflow.errors import require

__all__ = ["logistic_regression", "ratio_of_coefficients", "threshold_shifts"]


def _penalised(x: NDArray, y: NDArray, beta: NDArray, firth: bool):
    """ℓ* (or ℓ), the modified (or plain) score and the information at ``beta``."""
    eta = x @ beta
    p = special.expit(eta)
    w = p * (1.0 - p)
    info = x.T @ (w[:, None] * x)
    sign, logdet = np.linalg.slogdet(info)
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    resid = y - p
    if firth:
        loglik += 0.5 * (logdet if sign > 0 else -np.inf)
        solved = np.linalg.lstsq(info, (x * w[:, None]).T, rcond=None)[0]
        hat = np.einsum("ij,ji->i", x, solved)  # h_i = w_i x_iᵀ I⁻¹ x_i
        resid = resid + hat * (0.5 - p)
    return loglik, x.T @ resid, info


def _newton(x: NDArray, y: NDArray, firth: bool, iters: int = 100) -> tuple[NDArray, bool]:
    """β̂ by Newton steps on the (modified) score, with step-halving on ℓ*."""
    beta = np.zeros(x.shape[1])
    loglik, score, info = _penalised(x, y, beta, firth)
    for _ in range(iters):
        step = np.linalg.lstsq(info, score, rcond=None)[0]
        step *= min(1.0, 5.0 / max(float(np.abs(step).max()), 1e-300))  # no wild first steps
        for _ in range(40):
            new = _penalised(x, y, beta + step, firth)
            if new[0] >= loglik - 1e-12:
                break
            step = 0.5 * step
        beta = beta + step
        loglik, score, info = new
        if float(np.abs(step).max()) < 1e-10:
            break
    ok = bool(np.all(np.isfinite(beta)) and np.max(np.abs(score)) <= 1e-6 * max(1, len(y)))
    return beta, ok


def logistic_regression(
    covariates: ArrayLike,
    outcome: ArrayLike,
    names: Sequence[str],
    *,
    firth: bool = True,
    level: float = 0.95,
) -> dict[str, Any]:
    """Logistic regression of ``outcome`` (0/1, one per row) on the columns of
    ``covariates`` (rows × k, no constant: an intercept is added) named ``names``
    (module doc): ``{"coef": {name: {value, se, ci_low, ci_high}}, "cov": Var(β̂),
    "names", "loglik", "rows", "converged"}``; the intercept is ``"intercept"``."""
    x = np.asarray(covariates, float)
    y = np.asarray(outcome, float)
    x = x[:, None] if x.ndim == 1 else x
    require(x.ndim == 2 and x.shape[0] == y.size, "covariates", "must have one row per outcome")
    require(x.shape[1] == len(names), "names", f"must name the {x.shape[1]} covariates")
    require(bool(np.all(np.isfinite(x))), "covariates", "must be finite")
    require(bool(np.all((y == 0) | (y == 1))), "outcome", "must be 0 or 1")
    require(0.0 < level < 1.0, "level", "must lie in (0, 1)")
    design = np.column_stack([np.ones(y.size), x])
    require(
        y.size > design.shape[1] and np.linalg.matrix_rank(design) == design.shape[1],
        "covariates",
        "need more rows than coefficients and no column constant or collinear with others",
    )
    beta, converged = _newton(design, y, firth)
    loglik, _, info = _penalised(design, y, beta, firth)
    cov = np.linalg.inv(info)
    z = float(stats.norm.ppf(0.5 + level / 2))
    coef = {}
    for k, name in enumerate(("intercept", *names)):
        se = math.sqrt(max(float(cov[k, k]), 0.0))
        b = float(beta[k])
        coef[name] = {"value": b, "se": se, "ci_low": b - z * se, "ci_high": b + z * se}
    return {
        "coef": coef,
        "cov": cov.tolist(),
        "names": ["intercept", *names],
        "loglik": loglik,
        "rows": int(y.size),
        "converged": converged,
    }


def ratio_of_coefficients(
    fit: dict[str, Any], num: str, den: str, level: float = 0.95
) -> dict[str, float]:
    """``−β_num/β_den`` with its delta-method interval: in a model linear in the log-odds,
    the change of ``den``'s covariate that offsets one unit of ``num``'s (e.g. the shift
    of a threshold in n per unit of another covariate)."""
    k, j = fit["names"].index(num), fit["names"].index(den)
    cov = np.asarray(fit["cov"], float)
    bk, bj = fit["coef"][num]["value"], fit["coef"][den]["value"]
    value = -bk / bj
    grad = np.array([-1.0 / bj, bk / bj**2])
    sub = cov[np.ix_([k, j], [k, j])]
    se = math.sqrt(max(float(grad @ sub @ grad), 0.0))
    z = float(stats.norm.ppf(0.5 + level / 2))
    return {"value": value, "se": se, "ci_low": value - z * se, "ci_high": value + z * se}


def threshold_shifts(
    offset: ArrayLike,
    covariates: dict[str, ArrayLike],
    outcome: ArrayLike,
    models: dict[str, Sequence[str]],
) -> dict[str, dict[str, Any] | None]:
    """Per model (name → its terms): the logistic regression of ``outcome`` on
    ``offset`` (named ``"n"``, e.g. n/N − 1) and the terms' ``covariates``, with each
    term's shift of the 1/2 crossing in ``offset``, −β_term/β_n
    (:func:`ratio_of_coefficients`), under ``"shift"``. A model with a column or an
    outcome that does not vary is None (nothing to fit)."""
    cols = {"n": np.asarray(offset, float)} | {
        k: np.asarray(v, float) for k, v in covariates.items()
    }
    y = np.asarray(outcome, float)
    out: dict[str, dict[str, Any] | None] = {}
    for model, terms in models.items():
        names = ["n", *terms]
        if any(np.ptp(cols[t]) == 0 for t in names) or np.ptp(y) == 0:
            out[model] = None
            continue
        fit = logistic_regression(np.column_stack([cols[t] for t in names]), y, names)
        fit["shift"] = {t: ratio_of_coefficients(fit, t, "n") for t in terms}
        out[model] = fit
    return out
