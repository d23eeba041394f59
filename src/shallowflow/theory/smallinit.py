"""Small initialisation on orthogonal data: how fast a neuron leaves the origin, and the
least ‖θ‖² of an interpolator (SPEC §4, §6).

Throughout: pairwise orthogonal data ``x_i = s_i e_i`` (``s_i = ‖x_i‖``, ``e_i``
orthonormal), the mean-field ReLU network ``h_θ(x) = (1/p) Σ_j a_j σ(⟨w_j, x⟩)`` and its
flow ``dθ/dt = −p∇L`` (SPEC §1), ``‖θ‖² = Σ_j a_j² + ‖w_j‖²`` (SPEC §6), and the
coordinates ``ω_ji = ⟨w_j, e_i⟩``, so that ``⟨w_j, x_i⟩ = s_i ω_ji``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shallowflow.errors import require

__all__ = ["escape_draws", "escape_rates", "min_norm2", "min_norm_interpolator"]

Array = NDArray[np.float64]


def _data(y: ArrayLike, norms: ArrayLike) -> tuple[Array, Array]:
    y_arr = np.asarray(y, dtype=np.float64)
    s = np.asarray(norms, dtype=np.float64)
    require(
        y_arr.ndim == 1 and y_arr.size >= 1,
        "y",
        f"must be a non-empty 1-D array; got {y_arr.shape}",
    )
    require(
        s.shape == y_arr.shape, "norms", f"must have the shape of y {y_arr.shape}; got {s.shape}"
    )
    require(bool(np.all(np.isfinite(y_arr))), "y", "must be finite")
    require(bool(np.all(np.isfinite(s) & (s > 0))), "norms", "must be finite and > 0")
    return y_arr, s


def _width(p: int, y: Array) -> int:
    signs = int(np.any(y > 0)) + int(np.any(y < 0))
    ok = isinstance(p, int | np.integer) and not isinstance(p, bool) and p >= max(signs, 1)
    require(ok, "p", f"must be an integer ≥ {max(signs, 1)} (one neuron per label sign); got {p!r}")
    return int(p)


def min_norm2(y: ArrayLike, norms: ArrayLike, p: int) -> float:
    """The least ``‖θ‖²`` of a width-``p`` interpolator of orthogonal data (SPEC §6):
    ``2p(‖D₊‖ + ‖D₋‖)``, ``D₊ = (y_i/s_i)`` over the examples with ``y_i > 0`` and ``D₋ =
    (|y_i|/s_i)`` over those with ``y_i < 0``.

    **Derivation.** (1) Rescaling ``(a_j, w_j) → (c a_j, w_j/c)``, c > 0, leaves h unchanged
    (σ is positively 1-homogeneous) and ``min_c c²a_j² + ‖w_j‖²/c² = 2|a_j|‖w_j‖``: the
    least norm is ``min 2 Σ_j |a_j| ‖w_j‖`` over interpolators. (2) Only the coordinates
    ``ω_ji > 0`` enter h; setting the others (and the part of ``w_j`` off the data's span)
    to 0 keeps h and lowers ‖w_j‖, so take ``ω_j ≥ 0``. (3) With ``β_j = a_j ω_j ∈ R^n``
    (all its entries of the sign of ``a_j``), ``|a_j|‖w_j‖ = ‖β_j‖`` and interpolation
    reads ``(1/p) Σ_j a_j s_i ω_ji = y_i``, i.e. ``Σ_j β_j = p D`` with ``D_i = y_i/s_i``.
    (4) Put ``P = Σ_{a_j > 0} β_j ≥ 0`` and ``N = −Σ_{a_j < 0} β_j ≥ 0``; the triangle
    inequality gives ``Σ_j ‖β_j‖ ≥ ‖P‖ + ‖N‖``, and ``P − N = pD`` forces ``P = pD⁺ + Z``,
    ``N = pD⁻ + Z`` with ``Z ≥ 0`` (``D^±`` the positive and negative parts of D). For
    vectors ≥ 0, ``‖pD^± + Z‖ ≥ p‖D^±‖``. So ``‖θ‖² ≥ 2p(‖D⁺‖ + ‖D⁻‖)``, with equality for
    one neuron per label sign (:func:`min_norm_interpolator`): the formula of SPEC §6, no
    factor off. In the usual scaling ``θ̃ = θ/√p`` (SPEC §1) the least norm is
    ``2(‖D₊‖ + ‖D₋‖) ≍ √n`` for bounded labels and norms.
    """
    y_arr, s = _data(y, norms)
    _width(p, y_arr)
    d = y_arr / s
    return float(2 * p * (np.linalg.norm(d[d > 0]) + np.linalg.norm(d[d < 0])))


def min_norm_interpolator(y: ArrayLike, norms: ArrayLike, p: int) -> tuple[Array, Array]:
    """A width-``p`` interpolator of least ``‖θ‖²`` (:func:`min_norm2`): ``(a, Ω)`` with
    ``Ω`` the (p, n) coordinates ``ω_ji`` (w_j = Σ_i ω_ji e_i). Neuron 0 carries
    ``a_0 = √(p‖D₊‖)``, ``ω_0 = a_0 D⁺/‖D₊‖``; neuron 1 the same for ``D₋`` with
    ``a_1 < 0``; the others are 0 (a fixed point of the flow)."""
    y_arr, s = _data(y, norms)
    p = _width(p, y_arr)
    d = y_arr / s
    a, omega = np.zeros(p), np.zeros((p, y_arr.size))
    j = 0
    for sign in (1.0, -1.0):
        part = np.where(sign * d > 0, sign * d, 0.0)
        size = float(np.linalg.norm(part))
        if size > 0:
            a[j] = sign * np.sqrt(p * size)
            omega[j] = np.sqrt(p * size) * part / size
            j += 1
    return a, omega


def escape_rates(y: ArrayLike, norms: ArrayLike, active: ArrayLike, signs: ArrayLike) -> Array:
    """The rate at which each neuron leaves a small start, ``λ_j = ‖(y_i s_i)_{i ∈ A_j}‖/n``,
    ``A_j = {i : ω_ji(0) > 0, sign(a_j) y_i > 0}`` (``active``: (p, n) booleans
    ``ω_ji(0) > 0``; ``signs``: (p,) the signs of ``a_j(0)``).

    **Why.** From ``θ(0) = ε θ₀`` the residuals stay ``r ≈ y`` until some neuron is of
    order 1, and the flow of SPEC §1 is linear in each neuron: ``dω_ji/dt = (a_j/n) y_i s_i``
    on its active examples, ``da_j/dt = (1/n) Σ_i y_i s_i ω_ji``. A coordinate with
    ``a_j y_i < 0`` falls to 0 and stays there (on orthogonal data an inactive pair gets
    no gradient, SPEC §3b) and ``a_j`` keeps its sign (``a_j² − ‖w_j‖²`` is conserved,
    Lemma 1), so each neuron grows as ``e^{λ_j t}``, λ_j the top eigenvalue of
    ``[[0, cᵀ], [c, 0]]``, ``c_i = y_i s_i/n`` on ``A_j``. This is SPEC §4's group rate
    (``γ s²/n = s‖y_G‖/n`` with γ = ‖y_G‖/s, :mod:`~shallowflow.theory.closed_form`, δ → 0)
    for the group ``A_j``. Neuron j's product ``a_j ω_j`` reaches order 1 at
    ``t_j = log(1/ε)/λ_j + O(1)``: the loss first falls at ``log(1/ε)/max_j λ_j + O(1)``,
    so the first plateau's length grows with slope ``1/max_j λ_j`` in log(1/ε)."""
    y_arr, s = _data(y, norms)
    act = np.asarray(active, dtype=bool)
    sg = np.sign(np.asarray(signs, dtype=np.float64))
    require(act.ndim == 2 and act.shape[1] == y_arr.size, "active", f"must be (p, {y_arr.size})")
    require(sg.shape == (act.shape[0],), "signs", f"must have length p = {act.shape[0]}")
    own = act & (sg[:, None] * y_arr[None, :] > 0)
    c = y_arr * s / y_arr.size
    return np.sqrt(own.astype(np.float64) @ (c * c))


def escape_draws(n: int, p: int, draws: int, rng: np.random.Generator) -> dict[str, Array]:
    """``draws`` independent draws, under SPEC §5's laws on orthogonal data, of the fastest
    neuron's escape rate ``max_j λ_j`` (:func:`escape_rates`), the size of its set
    ``|A_j*|`` and the share of the loss that set carries, ``Σ_{A_j*} y_i²/Σ_i y_i²``.

    The laws: ``y_i = ±U[1, 2]``, ``s_i = ρ_i ~ U[1, 2]``, the signs of the coordinates
    ``ω_ji`` of a first layer with i.i.d. symmetric coordinates (the paper's uniform one,
    or a Gaussian) and of ``a_j`` independent and fair, redrawn together until every
    example is covered (``require_coverage``, SPEC §2), as the engine draws them. Only
    signs and ``y, ρ`` enter λ_j, so the scale ε and the magnitudes of θ₀ do not."""
    require(isinstance(n, int) and n >= 1, "n", f"must be an integer ≥ 1; got {n!r}")
    require(isinstance(p, int) and p >= 1, "p", f"must be an integer ≥ 1; got {p!r}")
    rate, size, share = (np.empty(draws) for _ in range(3))
    for k in range(draws):
        while True:
            y = rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.0, n)
            active = rng.random((p, n)) < 0.5
            signs = rng.choice([-1.0, 1.0], p)
            own = active & (signs[:, None] * y[None, :] > 0)
            if own.any(axis=0).all():
                break
        lam = escape_rates(y, rng.uniform(1.0, 2.0, n), active, signs)
        j = int(np.argmax(lam))
        rate[k], size[k] = lam[j], own[j].sum()
        share[k] = float(y[own[j]] @ y[own[j]] / (y @ y))
    return {"rate": rate, "size": size, "share": share}
