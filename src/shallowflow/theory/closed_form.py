"""Exact closed form of the group-initialisation flow on orthogonal data (SPEC §4).

One group ``G`` with a common example norm ``s`` is a rank-one factorisation
flow on ``θ = (b, v) ∈ R^{1+k}``: plain gradient flow on
``ℓ(b, v) = (1/(2n)) Σ_{i∈G} (y_i − b s v_i)²``. With ``c = y_G / s``,
``δ = b² − ‖v‖²`` (conserved) and the time ``τ = s² t / n`` it reads

    dθ/dτ = (A − b² I) θ,   A = K + δ E,   K = [[0, cᵀ], [c, 0]],   E = e0 e0ᵀ.

``Z = θθᵀ`` solves the Riccati equation ``dZ/dτ = AZ + ZA − 2 Z E Z``, hence

    θ(τ) = φ(τ) / √D(τ),   φ(τ) = e^{Aτ} θ0,   D(τ) = 1 + 2 ∫₀^τ (e0ᵀ φ(u))² du.

``A`` is zero off ``span{e0, (0, ĉ)}`` and acts on it as ``M = [[δ, γ], [γ, 0]]``
(``γ = ‖c‖``), with eigenvalues ``λ± = (δ ± Δ)/2``, ``Δ = √(δ² + 4γ²)``, so
``e0ᵀφ`` is a sum of two exponentials and ``D`` a sum of exponentials. Every
exponential is evaluated scaled by ``e^{−λ+ τ}`` (the growth of ``φ``), which
keeps times up to ``τ ~ 1e20`` free of overflow, and the residual
``γ − bα`` (``α = ⟨v, ĉ⟩``) has its own exact formula, free of the cancellation
of ``γ − bα`` near convergence. See ``_planar_flow`` for the algebra.

The public functions translate to the mean-field network of SPEC §1
(``b = a_j/√p``, ``v_i = ⟨w_j, x_i/‖x_i‖⟩/√p``), give the staircase of Fig. 2 and
the asymptotic rate of a group (Proposition-2-type exponents).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import expit

from shallowflow.errors import ShallowflowInputError, require

_NORM_RTOL = 1e-12

Array = NDArray[np.float64]


# ---------------------------------------------------------------------------
# Exact planar solution


class _Planar(NamedTuple):
    """Solution reduced to ``span{e0, (0, ĉ)}`` plus the orthogonal part of ``v``."""

    b: Array  # b(τ)
    alpha: Array  # α(τ) = ⟨v(τ), ĉ⟩
    perp: Array  # v_⊥(τ) = perp(τ) · v_⊥(0)
    resid: Array  # γ − b(τ) α(τ), exact


def _exp(coef: float, rate: float, tau: Array) -> Array:
    """``coef · e^{rate τ}``, exactly 0 when ``coef == 0`` (``rate`` may then be > 0)."""
    if coef == 0.0:
        return np.zeros_like(tau)
    return coef * np.exp(rate * tau)


def _int_exp(coef: float, lam: float, shift: float, tau: Array) -> Array:
    """``coef · e^{−shift τ} ∫₀^τ e^{λ u} du`` without overflow when ``shift ≥ max(λ, 0)``."""
    if coef == 0.0:
        return np.zeros_like(tau)
    base = tau if lam == 0.0 else -np.expm1(-abs(lam) * tau) / abs(lam)
    return coef * base * np.exp((max(lam, 0.0) - shift) * tau)


class _Eigen(NamedTuple):
    """Spectrum of ``M = [[δ, γ], [γ, 0]]``: ``λ± = (δ ± Δ)/2``, ``u+ = (cos ψ, sin ψ)``."""

    big_delta: float
    lam_p: float
    lam_m: float
    cs: float
    sn: float


def _eigen(delta: float, gamma: float) -> _Eigen:
    big_delta = math.hypot(delta, 2.0 * gamma)
    if delta >= 0.0:  # λ+ λ− = −γ²: take the root free of cancellation
        lam_p = 0.5 * (delta + big_delta)
        lam_m = -2.0 * gamma**2 / (delta + big_delta) if big_delta > 0.0 else 0.0
    else:
        lam_p = 2.0 * gamma**2 / (big_delta - delta)
        lam_m = 0.5 * (delta - big_delta)
    if gamma > 0.0:
        psi = 0.5 * math.atan2(2.0 * gamma, delta)
        return _Eigen(big_delta, lam_p, lam_m, math.cos(psi), math.sin(psi))
    # M = diag(δ, 0): exact eigenvectors, not cos(π/2) ≈ 6e-17
    cs, sn = (1.0, 0.0) if delta >= 0.0 else (0.0, 1.0)
    return _Eigen(big_delta, lam_p, lam_m, cs, sn)


def _planar_flow(b0: float, alpha0: float, nu: float, gamma: float, tau: Array) -> _Planar:
    """Exact flow ``dθ/dτ = (A − b² I) θ`` from ``(b0, α0 ĉ + v_⊥0)``, ``ν = ‖v_⊥0‖²``.

    With ``u± = (cos ψ, sin ψ), (−sin ψ, cos ψ)``, ``ψ = ½ atan2(2γ, δ)``, the
    eigenvectors of ``M`` and ``(b0, α0) = P u+ + Q u−``:
    ``e0ᵀφ = α+ e^{λ+τ} + α− e^{λ−τ}`` with ``α+ = P cos ψ``, ``α− = −Q sin ψ``, and
    ``D = 1 + 2[α+² g(2λ+) + 2α+α− g(δ) + α−² g(2λ−)]``, ``g(λ) = ∫₀^τ e^{λu} du``.
    Everything is scaled by ``e^{−κτ}`` (``φ``) or ``e^{−2κτ}`` (``D``), ``κ`` the
    growth rate of ``φ``.
    """
    delta = b0 * b0 - alpha0 * alpha0 - nu
    eig = _eigen(delta, gamma)
    cs, sn = eig.cs, eig.sn
    pp = b0 * cs + alpha0 * sn
    qq = -b0 * sn + alpha0 * cs
    kappa = eig.lam_p if (pp != 0.0 and eig.lam_p > 0.0) else 0.0
    ap, am = pp * cs, -qq * sn
    scaled_d = np.exp(-2.0 * kappa * tau) + 2.0 * (
        _int_exp(ap * ap, 2.0 * eig.lam_p, 2.0 * kappa, tau)
        + _int_exp(2.0 * ap * am, delta, 2.0 * kappa, tau)
        + _int_exp(am * am, 2.0 * eig.lam_m, 2.0 * kappa, tau)
    )
    root = np.sqrt(scaled_d)
    grow_p = _exp(1.0 if pp != 0.0 else 0.0, eig.lam_p - kappa, tau)
    grow_m = np.exp((eig.lam_m - kappa) * tau)
    b = (pp * cs * grow_p - qq * sn * grow_m) / root
    alpha = (pp * sn * grow_p + qq * cs * grow_m) / root
    perp = np.exp(-kappa * tau) / root
    if gamma == 0.0:
        return _Planar(b, alpha, perp, -b * alpha)
    num = _scaled_residual(b0, alpha0, nu, gamma, pp, qq, eig, kappa, tau)
    return _Planar(b, alpha, perp, num / scaled_d)


def _scaled_residual(
    b0: float,
    alpha0: float,
    nu: float,
    gamma: float,
    pp: float,
    qq: float,
    eig: _Eigen,
    kappa: float,
    tau: Array,
) -> Array:
    """``e^{−2κτ} N(τ)`` with ``N = (γ − bα) D``, free of the cancellation in ``γ − bα``.

    Using ``cos²ψ = λ+/Δ``, ``sin²ψ = −λ−/Δ``, the ``e^{2λ±τ}`` parts cancel exactly:
    ``N = γ(1 − (P² − Q²)/Δ) − (PQ/Δ)(δ e^{δτ} + 4γ² g(δ))``. With the conservation
    law ``(P² − Q²)δ − 4PQγ = Δ(δ + ν)`` this is also ``N = −(γν + PQΔ e^{δτ})/δ``.
    The second form divides by δ, and δ, PQ carry rounding errors of order
    eps·scale: it is used for ``δ < 0`` not tiny against that scale, where it keeps
    a relative accuracy uniform in τ for an aligned start (the first form loses
    relative accuracy like ``e^{|δ|τ}`` there).
    """
    delta = b0 * b0 - alpha0 * alpha0 - nu
    big_delta, pq, shift = eig.big_delta, pp * qq, 2.0 * kappa
    scale = b0 * b0 + alpha0 * alpha0 + nu
    if delta < 0.0 and 1e4 * abs(delta) >= 2.0 * scale + scale * big_delta / gamma:
        const = _exp(gamma * nu, -shift, tau)
        return -(const + _exp(pq * big_delta, delta - shift, tau)) / delta
    const = _exp(gamma * (1.0 - (pp * pp - qq * qq) / big_delta), -shift, tau)
    return const - (
        _exp(pq * delta / big_delta, delta - shift, tau)
        + _int_exp(4.0 * gamma**2 * pq / big_delta, delta, shift, tau)
    )


# ---------------------------------------------------------------------------
# Input checks


def _positive(value: float, param: str) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    require(
        ok and math.isfinite(value) and value > 0,
        param,
        f"must be a finite number > 0; got {value!r}",
    )
    return float(value)


def _vector(value: ArrayLike, param: str, size: int | None = None) -> Array:
    arr = np.asarray(value, dtype=np.float64)
    require(arr.ndim == 1, param, f"must be a 1-D array; got shape {arr.shape}")
    if size is not None:
        require(arr.shape[0] == size, param, f"must have length {size}; got {arr.shape[0]}")
    require(bool(np.all(np.isfinite(arr))), param, "must be finite")
    return arr


def _times(t: ArrayLike, param: str = "t") -> Array:
    arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
    require(arr.ndim == 1, param, f"must be a scalar or a 1-D array; got shape {arr.shape}")
    require(bool(np.all(np.isfinite(arr) & (arr >= 0))), param, "times must be finite and ≥ 0")
    return arr


def _common_norm(s: float | ArrayLike, k: int, param: str = "s") -> float:
    """The group's common example norm; the closed form needs all ``‖x_i‖`` equal."""
    arr = np.atleast_1d(np.asarray(s, dtype=np.float64))
    require(arr.ndim == 1 and arr.shape[0] in (1, k), param, f"must be a scalar or length {k}")
    require(bool(np.all(np.isfinite(arr) & (arr > 0))), param, "norms must be finite and > 0")
    spread = float(arr.max() - arr.min())
    if spread > _NORM_RTOL * float(arr.max()):
        msg = (
            f"norms within a group must be equal (relative spread {spread / arr.max():.3g} > 1e-12)"
        )
        raise ShallowflowInputError(param, msg)
    return float(arr.mean())


# ---------------------------------------------------------------------------
# One group


class _Group(NamedTuple):
    planar: _Planar
    c_hat: Array
    v_perp0: Array
    nu: float
    s: float
    n: float


def _solve_group(b0: float, v0: Array, c: Array, s: float, n: float, t: Array) -> _Group:
    gamma = float(np.linalg.norm(c))
    if gamma > 0.0:
        c_hat = c / gamma
    else:  # any unit vector will do: A = δE does not see ĉ
        v_norm = float(np.linalg.norm(v0))
        c_hat = v0 / v_norm if v_norm > 0.0 else np.eye(v0.shape[0])[0]
    alpha0 = float(c_hat @ v0)
    v_perp0 = v0 - alpha0 * c_hat
    if gamma == 0.0:
        v_perp0 = np.zeros_like(v0)
    nu = float(v_perp0 @ v_perp0)
    planar = _planar_flow(float(b0), alpha0, nu, gamma, s * s * t / n)
    return _Group(planar, c_hat, v_perp0, nu, s, n)


def _group_state(g: _Group) -> tuple[Array, Array]:
    v = g.planar.alpha[:, None] * g.c_hat + g.planar.perp[:, None] * g.v_perp0
    return g.planar.b, v


def _group_loss(g: _Group) -> Array:
    pl = g.planar
    return g.s**2 / (2.0 * g.n) * (pl.resid**2 + (pl.b * pl.perp) ** 2 * g.nu)


def _rank_one_inputs(
    b0: float, v0: ArrayLike, c: ArrayLike, s: float | ArrayLike, n: float, t: ArrayLike
) -> _Group:
    ok = isinstance(b0, int | float | np.integer | np.floating) and not isinstance(b0, bool)
    require(ok and math.isfinite(b0), "b0", f"must be a finite number; got {b0!r}")
    v0_arr = _vector(v0, "v0")
    require(v0_arr.shape[0] >= 1, "v0", "must have at least one entry")
    c_arr = _vector(c, "c", v0_arr.shape[0])
    s_val = _common_norm(s, v0_arr.shape[0])
    return _solve_group(float(b0), v0_arr, c_arr, s_val, _positive(n, "n"), _times(t))


def rank_one_flow(
    b0: float, v0: ArrayLike, c: ArrayLike, s: float | ArrayLike, n: float, t: ArrayLike
) -> tuple[Array, Array]:
    """Exact ``(b(t), v(t))`` of the rank-one group flow of SPEC §4.

    Plain gradient flow on ``ℓ(b, v) = (1/(2n)) Σ_i (y_i − b s v_i)²`` with
    ``c = y_G/s``, solved as ``θ(τ) = e^{Aτ}θ0 / √D(τ)``, ``τ = s² t/n`` (module
    docstring). ``s`` is the common norm (scalar, or the k norms, which must agree
    to 1e-12 relative). Returns ``b`` of shape ``(T,)`` and ``v`` of shape ``(T, k)``.
    """
    return _group_state(_rank_one_inputs(b0, v0, c, s, n, t))


def rank_one_loss(
    b0: float, v0: ArrayLike, c: ArrayLike, s: float | ArrayLike, n: float, t: ArrayLike
) -> Array:
    """Exact ``ℓ(b(t), v(t)) = (s²/(2n)) ‖c − b v‖²`` along the flow of SPEC §4.

    Computed as ``(s²/(2n)) [(γ − bα)² + b² ‖v_⊥‖²]`` with the cancellation-free
    residual ``γ − bα``, so it keeps full relative accuracy near convergence.
    """
    return _group_loss(_rank_one_inputs(b0, v0, c, s, n, t))


# ---------------------------------------------------------------------------
# Mean-field network with a group initialisation


class _Network(NamedTuple):
    y: Array
    norms: Array
    groups: list[NDArray[np.intp]]
    a0: Array
    u0: Array


def _group_indices(groups: Sequence[ArrayLike], n: int) -> list[NDArray[np.intp]]:
    """Disjoint integer index arrays into ``range(n)``, one per neuron."""
    owned = np.zeros(n, dtype=bool)
    out = []
    for j, g in enumerate(groups):
        idx = np.asarray(g)
        ok = idx.ndim == 1 and (idx.size == 0 or np.issubdtype(idx.dtype, np.integer))
        require(ok, "groups", f"groups[{j}] must be a 1-D integer index array")
        idx = idx.astype(np.intp)
        in_range = bool(np.all((idx >= 0) & (idx < n)))
        require(in_range, "groups", f"groups[{j}] has indices outside [0, {n})")
        fresh = not bool(np.any(owned[idx])) and np.unique(idx).size == idx.size
        require(fresh, "groups", f"groups must be disjoint (groups[{j}] repeats an index)")
        owned[idx] = True
        out.append(idx)
    return out


def _network_inputs(
    y: ArrayLike, norms: ArrayLike, groups: Sequence[ArrayLike], a0: ArrayLike, u0: ArrayLike
) -> _Network:
    y_arr = _vector(y, "y")
    n = y_arr.shape[0]
    require(n >= 1, "y", "needs at least one example")
    norms_arr = _vector(norms, "norms", n)
    require(bool(np.all(norms_arr > 0)), "norms", "must be > 0")
    a0_arr = _vector(a0, "a0")
    require(len(groups) == a0_arr.shape[0], "groups", f"needs one entry per neuron ({len(a0_arr)})")
    u0_arr = _vector(u0, "u0", n)
    idx_list = _group_indices(groups, n)
    for j, idx in enumerate(idx_list):
        if idx.size:
            _common_norm(norms_arr[idx], idx.size, "norms")
            require(bool(np.all(u0_arr[idx] > 0)), "u0", f"must be > 0 on groups[{j}] (active)")
    return _Network(y_arr, norms_arr, idx_list, a0_arr, u0_arr)


def _network_groups(net: _Network, t: Array) -> list[_Group | None]:
    p, n = net.a0.shape[0], net.y.shape[0]
    out: list[_Group | None] = []
    for j, idx in enumerate(net.groups):
        if idx.size == 0:
            out.append(None)
            continue
        s = float(net.norms[idx].mean())
        b0 = net.a0[j] / math.sqrt(p)
        out.append(_solve_group(b0, net.u0[idx] / math.sqrt(p), net.y[idx] / s, s, n, t))
    return out


def group_flow(
    y: ArrayLike,
    norms: ArrayLike,
    groups: Sequence[ArrayLike],
    a0: ArrayLike,
    u0: ArrayLike,
    t: ArrayLike,
) -> tuple[Array, Array]:
    """Exact mean-field flow (SPEC §1) of orthogonal data from a group initialisation (§4).

    Data ``x_i ⟂ x_k`` with ``‖x_i‖ = norms[i]``; neuron ``j`` is active exactly on
    ``groups[j]`` (disjoint index arrays, one per neuron, possibly empty) and
    ``u0[i] = ⟨w_j(0), x_i/‖x_i‖⟩ > 0`` for the owner ``j`` of ``i``. Each group is
    a rank-one flow with ``b = a_j/√p``, ``v_i = u_i/√p`` (``rank_one_flow``).
    Returns ``a(t)`` of shape ``(T, p)`` and ``u(t)`` of shape ``(T, n)``; ``u_i``
    of an example in no group is returned as ``u0[i]`` (no neuron moves along it).
    Raises if an activation ``u_i`` leaves ``(0, ∞)`` at a requested time, since
    the closed form stops applying there.
    """
    net = _network_inputs(y, norms, groups, a0, u0)
    t_arr = _times(t)
    sqrt_p = math.sqrt(net.a0.shape[0])
    a = np.broadcast_to(net.a0, (t_arr.shape[0], net.a0.shape[0])).copy()
    u = np.broadcast_to(net.u0, (t_arr.shape[0], net.y.shape[0])).copy()
    for j, (idx, g) in enumerate(zip(net.groups, _network_groups(net, t_arr), strict=True)):
        if g is None:
            continue
        b, v = _group_state(g)
        a[:, j], u[:, idx] = sqrt_p * b, sqrt_p * v
    _check_active(net, u)
    return a, u


def _check_active(net: _Network, u: Array) -> None:
    for j, idx in enumerate(net.groups):
        if idx.size and not bool(np.all(u[:, idx] > 0)):
            msg = f"neuron {j} stops being active on its group; the closed form of SPEC §4 fails"
            raise ShallowflowInputError("t", msg)


def group_loss_curve(
    y: ArrayLike,
    norms: ArrayLike,
    groups: Sequence[ArrayLike],
    a0: ArrayLike,
    u0: ArrayLike,
    t: ArrayLike,
) -> Array:
    """Exact loss ``L(t) = (1/(2n)) Σ_i r_i(t)²`` (SPEC §1) of the group flow of §4.

    ``r_i = y_i − (1/p) a_j s_i u_i`` for ``i ∈ G_j`` and ``r_i = y_i`` for an
    example in no group. Arguments as in ``group_flow``; each group's part is the
    cancellation-free ``rank_one_loss``.
    """
    net = _network_inputs(y, norms, groups, a0, u0)
    t_arr = _times(t)
    n = net.y.shape[0]
    owned = np.zeros(n, dtype=bool)
    loss = np.zeros_like(t_arr)
    solved = _network_groups(net, t_arr)
    sqrt_p = math.sqrt(net.a0.shape[0])
    u = np.broadcast_to(net.u0, (t_arr.shape[0], n)).copy()
    for idx, g in zip(net.groups, solved, strict=True):
        if g is None:
            continue
        owned[idx] = True
        loss += _group_loss(g)
        u[:, idx] = sqrt_p * _group_state(g)[1]
    _check_active(net, u)
    return loss + float(net.y[~owned] @ net.y[~owned]) / (2.0 * n)


# ---------------------------------------------------------------------------
# Staircase (SPEC §4, Fig. 2)
#
# G groups of size n/G, unit norms, labels of magnitude m_k on group k, one
# neuron per group (p ≥ G, extra neurons inactive), start a_j = 1 and
# w_j = unit vector along the group's labels: u_i = ĉ_i, so b0 = ‖v0‖ = 1/√p
# (balanced, aligned). Then b² is logistic and the group's residual is
#   (γ − b²(τ)) / (γ − b0²) = 1 / (1 + (b0²/γ) (e^{2γτ} − 1)),  γ = m_k √(n/G), τ = t/n.


def _magnitudes(magnitudes: ArrayLike) -> Array:
    m = _vector(magnitudes, "magnitudes")
    require(m.shape[0] >= 1 and bool(np.all(m > 0)), "magnitudes", "must be ≥ 1 numbers > 0")
    return m


def _neurons(p: int | None, n_groups: int) -> int:
    p_val = n_groups if p is None else p
    ok = isinstance(p_val, int | np.integer) and not isinstance(p_val, bool) and p_val >= n_groups
    require(ok, "p", f"must be an integer ≥ len(magnitudes) = {n_groups}; got {p!r}")
    return int(p_val)


def _staircase_inputs(n: float, magnitudes: ArrayLike, p: int | None) -> tuple[float, Array, int]:
    n_val = _positive(n, "n")
    require(n_val > 1.0, "n", f"must be > 1 (time scale √n log n); got {n!r}")
    m = _magnitudes(magnitudes)
    require(n_val >= m.shape[0], "n", f"needs at least one example per group (n ≥ {m.shape[0]})")
    return n_val, m, _neurons(p, m.shape[0])


def _log_expm1(x: Array) -> Array:
    """``log(e^x − 1)`` for ``x ≥ 0`` (``−inf`` at 0), stable for large ``x``."""
    with np.errstate(divide="ignore"):
        return x + np.log(-np.expm1(-x))


def staircase_time_scale(n: float) -> float:
    """Rescaling of time for the staircase: ``t = u · √n log n`` (SPEC §4, Fig. 2).

    Group k is learnt at ``t_k ≈ n log(p‖y_{G_k}‖)/(2‖y_{G_k}‖)`` with
    ``‖y_{G_k}‖ = m_k √(n/G)``, i.e. ``t_k ≈ √(nG) log n /(4 m_k)``: in ``u`` the
    transitions converge to ``u_k = √G/(4 m_k)``.
    """
    n_val = _positive(n, "n")
    require(n_val > 1.0, "n", "must be > 1")
    return math.sqrt(n_val) * math.log(n_val)


def staircase(n: float, magnitudes: ArrayLike, u: ArrayLike, p: int | None = None) -> Array:
    """Rescaled staircase loss ``L_n(u) = L(t)/L(0)``, ``t = u √n log n`` (SPEC §4, Fig. 2).

    Closed form of the setting above (module comment): groups of equal size
    ``n/G`` (it need not be an integer: only ``‖y_G‖ = m_k √(n/G)`` enters),
    ``L(t)/L(0) = Σ_k w_k f_k(t)`` with ``w_k ∝ (γ_k − 1/p)²`` and
    ``√f_k = 1/(1 + (b0²/γ_k)(e^{2γ_k t/n} − 1))``. Finite for n up to 1e18 and beyond.
    """
    n_val, m, p_val = _staircase_inputs(n, magnitudes, p)
    u_arr = _times(u, "u")
    gamma = m * math.sqrt(n_val / m.shape[0])
    b0_sq = 1.0 / p_val
    t = u_arr * staircase_time_scale(n_val)
    x = 2.0 * gamma[None, :] * (t[:, None] / n_val)
    root_f = expit(-(np.log(b0_sq / gamma)[None, :] + _log_expm1(x)))
    w = (gamma - b0_sq) ** 2
    return (root_f**2 @ w) / w.sum()


def limit_transition_times(magnitudes: ArrayLike) -> Array:
    """Limits ``u_k = √G/(4 m_k)`` of the rescaled transition times (SPEC §4, Fig. 2)."""
    m = _magnitudes(magnitudes)
    return math.sqrt(m.shape[0]) / (4.0 * m)


def staircase_limit(magnitudes: ArrayLike, u: ArrayLike, p: int | None = None) -> Array:
    """The n → ∞ limit ``L_∞(u)`` of ``staircase`` (SPEC §4, Fig. 2): a step function.

    ``L_∞(u) = Σ_k (m_k²/Σ_j m_j²) 1[u < u_k]`` with ``u_k = √G/(4 m_k)``. At
    ``u = u_k`` exactly the limit exists too: group k keeps the fraction
    ``(q/(1+q))²``, ``q = p m_k/√G``, of its loss.
    """
    m = _magnitudes(magnitudes)
    p_val = _neurons(p, m.shape[0])
    u_arr = _times(u, "u")
    u_k = limit_transition_times(m)
    q = p_val * m / math.sqrt(m.shape[0])
    at = (q / (1.0 + q)) ** 2
    frac = np.where(u_arr[:, None] < u_k, 1.0, np.where(u_arr[:, None] == u_k, at, 0.0))
    return frac @ (m**2) / float(m @ m)


def _level_times(n: float, m: Array, p: int, level: float) -> Array:
    """Times where each group keeps the fraction ``level`` of its loss."""
    gamma = m * math.sqrt(n / m.shape[0])
    return n * np.log1p((level**-0.5 - 1.0) * gamma * p) / (2.0 * gamma)


def transition_times(
    n: float, magnitudes: ArrayLike, p: int | None = None, level: float = 0.5
) -> Array:
    """Time ``t_k`` at which group k has lost ``1 − level`` of its loss (SPEC §4).

    Exact inversion of the logistic: ``t_k = n log(1 + (level^{−1/2} − 1) p γ_k)/(2γ_k)``,
    ``γ_k = m_k √(n/G)``; for large n, ``t_k ≈ (n/‖y_{G_k}‖) log(p‖y_{G_k}‖)/2``.
    Divide by ``staircase_time_scale(n)`` for the rescaled time ``u``.
    """
    n_val, m, p_val = _staircase_inputs(n, magnitudes, p)
    require(0.0 < level < 1.0, "level", f"must be in (0, 1); got {level!r}")
    return _level_times(n_val, m, p_val, level)


def transition_widths(
    n: float, magnitudes: ArrayLike, p: int | None = None, lo: float = 0.1, hi: float = 0.9
) -> Array:
    """Relative width ``(t_k(lo) − t_k(hi)) / t_k(1/2)`` of each transition (SPEC §4).

    ``t_k(q)`` is the time at which group k keeps the fraction q of its loss. As
    ``n → ∞`` the width times ``log n`` tends to ``2 log((lo^{−1/2} − 1)/(hi^{−1/2} − 1))``.
    """
    n_val, m, p_val = _staircase_inputs(n, magnitudes, p)
    require(0.0 < lo < hi < 1.0, "lo", f"need 0 < lo < hi < 1; got lo={lo!r}, hi={hi!r}")
    centre = _level_times(n_val, m, p_val, 0.5)
    return (_level_times(n_val, m, p_val, lo) - _level_times(n_val, m, p_val, hi)) / centre


# ---------------------------------------------------------------------------
# Asymptotic rate


def asymptotic_rate(
    label_norm: float, s: float, n: float, delta: float = 0.0, aligned: bool = False
) -> float:
    """Late-time rate ``−d/dt log L`` of one group's loss (SPEC §4, §2 "μ").

    Linearisation at the fixed point ``b² = λ+``, ``v = α ĉ``: in time ``τ`` the
    Hessian of ``ℓ`` has eigenvalues ``Δ = √(δ² + 4γ²)`` (in the plane of ``e0``,
    ``ĉ``), ``λ+ = (δ + Δ)/2`` (on ``v ⟂ c``, multiplicity k − 1) and 0 (along the
    conserved δ). The loss decays at twice the smallest excited one, in time t:
    ``(s²/n) 2λ+`` for a generic start, ``(s²/n) 2Δ`` if ``v0 ∥ c`` (or k = 1).
    ``γ = ‖y_G‖/s``; balanced (δ = 0): ``2 s ‖y_G‖/n``, or ``4 s‖y_G‖/n`` aligned.
    """
    label_norm = _positive(label_norm, "label_norm")
    s_val, n_val = _positive(s, "s"), _positive(n, "n")
    require(math.isfinite(delta), "delta", "must be finite")
    gamma = label_norm / s_val
    big_delta = math.hypot(delta, 2.0 * gamma)
    lam_p = 0.5 * (delta + big_delta) if delta >= 0 else 2.0 * gamma**2 / (big_delta - delta)
    return s_val**2 / n_val * 2.0 * (big_delta if aligned else lam_p)


def fixed_point_rate(y: ArrayLike, norms: ArrayLike, delta: float, n: float) -> float:
    """Late-time rate ``−d/dt log L`` of one group whose examples may differ in norm
    (SPEC §4): ``2 λ_min(K)`` at the fixed point the group's flow reaches.

    The group's ``(b, v)`` follows gradient flow on ``ℓ = (1/(2n)) Σ_i (y_i − b s_i v_i)²``
    with ``δ = b² − ‖v‖²`` conserved; it converges to ``v_i = D_i/b``, ``D_i = y_i/s_i``,
    where ``b⁴ − δ b² − ‖D‖² = 0``: ``b² = (δ + √(δ² + 4‖D‖²))/2``. There the residuals
    follow ``dr/dt = −K r`` with the tangent kernel ``K = (q qᵀ + b² diag(s²))/n``,
    ``q_i = y_i/b``. With one norm s this is :func:`asymptotic_rate` (``2Δ s²/n`` for one
    example, ``2 b² s²/n = 2λ₊ s²/n`` for more); with unequal norms the slowest direction
    weighs the smallest ``s_i`` most."""
    y_arr = _vector(y, "y")
    s = _vector(norms, "norms", y_arr.shape[0])
    require(bool(np.all(s > 0)), "norms", "must be > 0")
    require(bool(np.all(y_arr != 0)), "y", "labels must be non-zero")
    require(math.isfinite(delta), "delta", "must be finite")
    n_val = _positive(n, "n")
    d2 = float(np.sum((y_arr / s) ** 2))
    b2 = (
        0.5 * (delta + math.sqrt(delta**2 + 4 * d2))
        if delta >= 0
        else 2 * d2 / (math.sqrt(delta**2 + 4 * d2) - delta)
    )
    q2 = y_arr**2 / b2
    return 2.0 * _min_eig_rank_one(b2 * s**2, q2) / n_val


def _min_eig_rank_one(d: Array, q2: Array) -> float:
    """λ_min(diag(d) + q qᵀ), q_i² = ``q2``: the root in [d₍₁₎, d₍₂₎] of the secular
    equation 1 + Σ_i q_i²/(d_i − λ) = 0 (a rank-one update interlaces the d_i); d₍₁₎
    itself when two d_i tie there. O(k) per evaluation, where eigvalsh is O(k³)."""
    if d.size == 1:
        return float(d[0] + q2[0])
    order = np.argsort(d)
    d, q2 = d[order], q2[order]
    lo, hi = float(d[0]), float(d[1])
    if hi - lo <= 1e-14 * hi or q2[0] == 0.0:
        return lo

    def secular(lam: float) -> float:
        return 1.0 + float(np.sum(q2 / (d - lam)))

    margin = 1e-15 * hi
    a, b = lo + margin, hi - margin
    if not (secular(a) < 0.0 < secular(b)):  # rounding at the ends: take the dense way
        return float(np.linalg.eigvalsh(np.diag(d) + np.outer(np.sqrt(q2), np.sqrt(q2)))[0])
    root = brentq(secular, a, b, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    return float(cast(float, root))


def rate_exponent_prediction(beta: float) -> float:
    """Exponent e in ``rate ≍ n^e`` for groups of ``k_n ≍ n^β`` examples (SPEC §4).

    ``‖y_G‖ ≍ √k_n`` with bounded labels, so ``asymptotic_rate ≍ √k_n/n``:
    ``e = −(1 − β/2)``, from −1 (one example per neuron) to −1/2 (one group).
    """
    require(0.0 <= beta <= 1.0, "beta", f"must be in [0, 1]; got {beta!r}")
    return -(1.0 - beta / 2.0)
