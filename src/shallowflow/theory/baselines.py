"""Closed-form predictors to set a trained network against (SPEC §1, §6): the
minimum-norm linear predictor, the tangent kernel's ridgeless regression at θ(0) (the
lazy, NTK baseline) and random features (the first layer frozen at θ(0)).

Every predictor here is a minimum-norm least-squares solution ``c = A⁺b``, computed by
the SVD (:func:`min_norm_solve`; for the symmetric kernel matrix by its eigenvalues,
:func:`psd_min_norm_solve`) with singular values below ``RCOND·σ_max`` dropped.
When ``A`` has full row rank that is the minimum-norm *interpolator* ``Aᵀ(AAᵀ)⁻¹b``;
otherwise it is the minimum-norm least-squares fit, which does not interpolate.

The data come in a run's working coordinates (SPEC §3, :mod:`shallowflow.heldout`):
training inputs ``z_i = Qᵀx_i`` (n, m), test inputs ``zt_k = Qᵀx_k`` (T, m) and the test
points' off-span pre-activations ``ct_jk = ⟨w_j − Q v_j, x_k⟩`` (p, T). That is exact:
every x_i lies in the span, so ``⟨x_k, x_i⟩ = ⟨zt_k, z_i⟩``, ``⟨w_j, x_i⟩ = ⟨v_j, z_i⟩``
and ``⟨w_j, x_k⟩ = ⟨v_j, zt_k⟩ + ct_jk``; a linear predictor ``⟨β, x⟩`` fitted to the
training set has β in the span, so ``⟨β, x_k⟩ = ⟨Qᵀβ, zt_k⟩``.

**Linear**: ``h(x) = ⟨β, x⟩``, ``β = X⁺y`` (``Xᵀ(XXᵀ)⁻¹y`` when n ≤ d; least squares
when n > d).

**Tangent kernel (lazy) regression.** Linearise the network at θ₀,
``h_θ(x) ≈ h_θ₀(x) + ⟨∇h_θ₀(x), θ − θ₀⟩``, and run the flow dθ/dt = −p∇L on the
linearised model from θ₀. Its residuals obey ``dr/dt = −(1/n) Θ(X, X) r`` and θ − θ₀
stays in the span of the ∇h_θ₀(x_i), so the flow ends at the minimum-norm correction
``θ − θ₀ = Jᵀ(JJᵀ)⁻¹(y − h_θ₀(X))`` (J the (n, |θ|) Jacobian) and predicts

    f(x) = h_θ₀(x) + Θ(x, X) Θ(X, X)⁻¹ (y − h_θ₀(X)),

with the tangent kernel of *both* layers in the mean-field scaling,
``Θ(x, x') = p⟨∇_θ h(x), ∇_θ h(x')⟩ = (1/p) Σ_j [σ(u_j)σ(u'_j) + a_j² σ'(u_j)σ'(u'_j)
⟨x, x'⟩]``, u_j = ⟨w_j, x⟩ (``n·K`` of :mod:`shallowflow.kernel`; the factor p and 1/n
cancel in f). The output at θ₀ is *kept*: the linearised flow starts there, and in the
mean-field scaling h_θ₀ is of order 1/√p, not negligible, so dropping it would compare
the network with a different model. Θ(X, X) has rank ≤ p(m + 1); it is invertible in
the designs used here (n ≤ p(m + 1) with features in general position), and its
pseudo-inverse otherwise.

**Random features**: the first layer frozen at θ₀ and the second layer
``â = argmin ‖a‖ s.t. (1/p) Σ_j a_j σ(⟨w_j, x_i⟩) = y_i``, i.e. ``â = Φ⁺y`` with
``Φ_ij = σ(u_ji)/p``: the minimum-norm interpolator when p ≥ n (and Φ has rank n), the
minimum-norm least-squares fit when p < n (the paper's widths p(n, ε) ~ log n are
below n, so there it does not interpolate).

**Null**: f = 0, whose test loss ½·mean(y²) is what a predictor without signal does
at best on labels independent of x.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

RCOND = 1e-12  # singular values below RCOND·σ_max count as zero in every A⁺b
PREDICTORS = ("linear", "ntk", "rf", "null")


class Split(NamedTuple):
    """One run's training and test sets and θ₀ in working coordinates (module doc):
    ``z`` (n, m), ``y`` (n,), ``zt`` (T, m), ``ct`` (p, T), ``yt`` (T,), ``a`` (p,),
    ``v`` (p, m)."""

    z: Array
    y: Array
    zt: Array
    ct: Array
    yt: Array
    a: Array
    v: Array


def relu(u: Array) -> Array:
    """σ(u) = max(u, 0) (SPEC §1)."""
    return np.maximum(u, 0.0)


def relu_grad(u: Array) -> Array:
    """σ'(u) = 1[u > 0], σ'(0) = 0 (SPEC §1)."""
    return (u > 0).astype(u.dtype)


def min_norm_solve(A: Array, b: Array, rcond: float = RCOND) -> Array:
    """``A⁺b``: the least-norm c among the minimisers of ‖Ac − b‖ (SVD, singular values
    below ``rcond·σ_max`` dropped); ``Aᵀ(AAᵀ)⁻¹b`` when A has full row rank."""
    return np.asarray(np.linalg.lstsq(A, b, rcond=rcond)[0], np.float64)


def psd_min_norm_solve(K: Array, b: Array, rcond: float = RCOND) -> Array:
    """``K⁺b`` for a symmetric positive semi-definite K, from its eigendecomposition
    (eigenvalues below ``rcond·λ_max`` dropped): :func:`min_norm_solve`'s answer, since
    K's singular values are its eigenvalues, at the cost of one ``eigh``."""
    lam, vec = np.linalg.eigh(K)
    keep = lam > rcond * lam[-1]
    return vec[:, keep] @ ((vec[:, keep].T @ b) / lam[keep])


def tangent_kernel(a: Array, u1: Array, u2: Array, gram: Array) -> Array:
    """Θ(x, x') = (1/p) Σ_j [σ(u_j)σ(u'_j) + a_j² σ'(u_j)σ'(u'_j) ⟨x, x'⟩] between the
    points with pre-activations ``u1`` (p, N1) and ``u2`` (p, N2); ``gram`` (N1, N2) holds
    their inner products ⟨x, x'⟩ (module doc)."""
    p = a.shape[0]
    s = relu(u1).T @ relu(u2)
    g = (relu_grad(u1).T * a**2) @ relu_grad(u2)
    return (s + gram * g) / p


def predictions(split: Split, rcond: float = RCOND) -> dict[str, tuple[Array, Array]]:
    """Each predictor's outputs ``(on the training set, on the test set)`` (module doc)."""
    z, y, zt, a, v = split.z, split.y, split.zt, split.a, split.v
    p = a.shape[0]
    u, ut = v @ z.T, v @ zt.T + split.ct
    h0, h0t = a @ relu(u) / p, a @ relu(ut) / p
    beta = min_norm_solve(z, y, rcond)
    kernel = tangent_kernel(a, u, u, z @ z.T)
    coef = psd_min_norm_solve(kernel, y - h0, rcond)
    ntk_train = h0 + kernel @ coef
    ntk_test = h0t + tangent_kernel(a, ut, u, zt @ z.T) @ coef
    a_rf = min_norm_solve(relu(u).T / p, y, rcond)
    return {
        "linear": (z @ beta, zt @ beta),
        "ntk": (ntk_train, ntk_test),
        "rf": (relu(u).T @ a_rf / p, relu(ut).T @ a_rf / p),
        "null": (np.zeros_like(y), np.zeros_like(split.yt)),
    }


def half_mse(y: Array, f: Array) -> float:
    """(1/(2N)) Σ_k (y_k − f_k)², the loss of SPEC §1 (and the test loss of §6)."""
    return float(0.5 * np.mean((y - f) ** 2))


def losses(split: Split, rcond: float = RCOND) -> dict[str, float]:
    """``train_loss_<name>`` and ``test_loss_<name>`` of every predictor (module doc)."""
    out = {}
    for name, (train, test) in predictions(split, rcond).items():
        out[f"train_loss_{name}"] = half_mse(split.y, train)
        out[f"test_loss_{name}"] = half_mse(split.yt, test)
    return out
