"""The tangent kernel and the asymptotic rate of the flow it gives (SPEC §1–§2).

Along dθ/dt = −p∇L the residuals r_i = y_i − h_θ(x_i) obey dr/dt = −K r with the tangent
kernel K_ik = (p/n) ⟨∂h(x_i)/∂θ, ∂h(x_k)/∂θ⟩. In working coordinates ∂h(x_i)/∂a_j =
S_ji/p and ∂h(x_i)/∂v_j = a_j D_ji z_i/p, with u = ⟨v_j, z_i⟩, S_ji = σ(u_ji), D_ji =
σ'(u_ji) (σ any activation of :mod:`shallowflow.activations`; σ'(0) = 0 for ReLU) and
G_ik = ⟨z_i, z_k⟩ = ⟨x_i, x_k⟩, so

    K = (1/(n p)) [Sᵀ S + G ∘ (Dᵀ diag(a²) D)].

Since L = |r|²/(2n), −d/dt log L = 2 rᵀKr/|r|². Near an interpolating limit θ_∞ whose
activation pattern no longer changes, K is constant to O(|r|) and r aligns with K's
bottom eigenvector, so L decays at μ_∞ = 2 λ_min(K(θ_∞)) over the examples that move.

Orthogonal data (diagonal geometry, z_i = s_i = ‖x_i‖): G = diag(s²), so K is a diagonal
plus a rank-≤p term, K = diag(c) + U Uᵀ with c_i = s_i² Σ_j a_j² D_ji²/(n p) (for ReLU
s_i² E_i/n, E_i the energies of SPEC §2) and U = Sᵀ/√(n p). Its smallest eigenvalue is
found by bisection on a test of positive definiteness (:func:`lowrank_min_eig`) in
O(n p²) per iteration, never forming the n×n matrix.

The pattern is read from θ as it is: a pair at u_ji = 0 exactly has D_ji = σ'(0). On
orthogonal data that is the flow's own linearisation (the exact flow holds a pair driven
to its surface exactly at 0, and x_i is orthogonal to every other example). On other data
a pair can slide at the limit (SPEC §3b): the flow is then confined to u_ji = 0, dv_j is
projected off span{x_i : (j, i) sliding}, neuron j's term of K has ⟨P_j x_k, P_j x_l⟩ for
G_kl, and the K above overestimates the rate (sphere data n = 12, d = 40, p = 30: 0.7316
against the flow's 0.7249, which the projected kernel gives to 2e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.activations import Activation, relu
from shallowflow.geometry import PRECISIONS, Geometry
from shallowflow.linalg import cholesky, is_positive_definite, spd_solve
from shallowflow.model import Problem, State

_HI = PRECISIONS["highest"]


def _gram(geom: Geometry, z: jax.Array) -> jax.Array:
    """G_ik = ⟨z_i, z_k⟩ = ⟨x_i, x_k⟩ (rotation invariant, so exact in any geometry)."""
    if geom.diagonal:
        return jnp.diag(z * z)
    zr = z.T if geom.transposed else z
    return jnp.matmul(zr, zr.T, precision=_HI)


def _sigma(act: Activation, state: State, prob: Problem, pre: jax.Array) -> jax.Array:
    """S = σ(u) (p, n), zero on padded neurons and examples: with σ(0) ≠ 0 (softplus) their
    u = 0 would otherwise give them ∂h/∂a_j ≠ 0 (model.Problem)."""
    s = act.sigma(pre)
    if act.zero_at_zero:
        return s
    real = prob.neuron_mask(state)[:, None] & prob.example_mask()[None, :]
    return jnp.where(real, s, 0.0)


def tangent_kernel(
    geom: Geometry, state: State, prob: Problem, act: Activation = relu
) -> jax.Array:
    """K = (1/(n p)) [SᵀS + G ∘ (Dᵀ diag(a²) D)], the (n, n) tangent kernel
    K_ik = (p/n) ⟨∂h(x_i)/∂θ, ∂h(x_k)/∂θ⟩ (module doc), n and p the true sizes.
    Padded examples (z_i = 0) have zero rows and columns; padded neurons add nothing."""
    pre = geom.preact(state.v, prob.z)
    n, p = prob.sizes(state)
    s, dg = _sigma(act, state, prob, pre), act.grad(pre)
    ss = jnp.matmul(s.T, s, precision=_HI)
    dd = jnp.matmul(dg.T, (state.a**2)[:, None] * dg, precision=_HI)
    return (ss + _gram(geom, prob.z) * dd) / (n * p)


def diagonal_parts(
    state: State, prob: Problem, act: Activation = relu
) -> tuple[jax.Array, jax.Array]:
    """(c, U) with K = diag(c) + U Uᵀ on orthogonal data (diagonal geometry, u = v z):
    c_i = s_i² Σ_j a_j² σ'(u_ji)²/(n p), U = σ(u)ᵀ/√(n p) (n, p)."""
    pre = state.v * prob.z[None, :]
    n, p = prob.sizes(state)
    dg = act.grad(pre)
    c = prob.z**2 * ((state.a**2) @ (dg * dg)) / (n * p)
    return c, _sigma(act, state, prob, pre).T / jnp.sqrt(n * p)


def _below(lam, c, u, mask) -> jax.Array:
    """Whether λ > λ_min(A), A = diag(c) + UUᵀ on the masked rows: A − λI is not
    positive definite (module doc of :func:`lowrank_min_eig`)."""
    q = u.shape[1]
    eps = jnp.finfo(c.dtype).eps
    tiny = 4 * eps * (jnp.abs(c) + jnp.abs(lam)) + jnp.finfo(c.dtype).tiny
    delta = jnp.where(mask, c - lam, jnp.inf)
    low = delta <= tiny  # N: diag(c) − λI is not positive there
    cand = jnp.argsort(jnp.where(mask, c, jnp.inf))[:q]  # N lies among the q smallest c
    outside = jnp.any(low) & (jnp.sum(low) > jnp.sum(low[cand]))
    w = jnp.where(low, 0.0, 1.0 / jnp.where(low, 1.0, delta))
    g = jnp.eye(q, dtype=c.dtype) + jnp.matmul((u * w[:, None]).T, u, precision=_HI)
    uc, in_n = u[cand], low[cand]
    quad = uc @ spd_solve(cholesky(g[None]), uc.T[None])[0]  # U_N G⁻¹ U_Nᵀ
    both = in_n[:, None] & in_n[None, :]
    s = jnp.where(both, quad, 0.0) + jnp.diag(jnp.where(in_n, delta[cand], 1.0))
    return outside | ~is_positive_definite(s[None])[0]


def lowrank_min_eig(
    c: jax.Array, u: jax.Array, mask: jax.Array, iterations: int | None = None
) -> jax.Array:
    """λ_min of A = diag(c) + U Uᵀ (U (n, q)) restricted to the rows in ``mask`` (U = 0
    elsewhere), without forming A: O(n q² + q³) per bisection step, in plain XLA ops.

    Test (λ ≤ λ_min iff A − λI is positive semidefinite): split the rows into
    N = {c_i ≤ λ} and P = {c_i > λ}. The P block (C_P − λ) + U_P U_Pᵀ is positive
    definite, so A − λI ≻ 0 iff its Schur complement on N is, which by Woodbury is
        S = (C_N − λ) + U_N G⁻¹ U_Nᵀ,   G = I_q + U_Pᵀ (C_P − λ)⁻¹ U_P ≻ 0,
    a |N|×|N| matrix with |N| ≤ q below the bracket's top; its positive definiteness
    is read off a Cholesky factorisation (:mod:`shallowflow.linalg`). Bracket:
    c_min ≤ λ_min (A ⪰ C) and λ_min ≤ min(min_i A_ii, c_(q+1)) (the Rayleigh quotient of
    e_i, at most Weyl's c_min + λ_max(UᵀU); and λ_1(A) ≤ λ_{q+1}(C) for a positive
    rank-q update). Bisection is geometric once the lower end is positive (relative
    precision), else arithmetic; a fixed number of ``iterations`` (default 100 in
    float64, 50 in float32: rounding level for any bracket ratio hi/λ_min up to ~1e15)
    keeps it jit- and vmap-able.
    """
    if iterations is None:
        iterations = 100 if c.dtype == jnp.float64 else 50
    big = jnp.asarray(jnp.inf, c.dtype)
    cm = jnp.where(mask, c, big)
    hi = jnp.min(jnp.where(mask, c + jnp.sum(u * u, axis=1), big))
    if c.shape[0] > u.shape[1]:
        hi = jnp.minimum(hi, jnp.sort(cm)[u.shape[1]])
    lo = jnp.minimum(jnp.min(cm), hi)

    def step(_, bounds):
        lo, hi = bounds
        mid = jnp.where(lo > 0, jnp.sqrt(lo) * jnp.sqrt(hi), 0.5 * (lo + hi))
        below = _below(mid, c, u, mask)
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, step, (lo, hi))
    return 0.5 * (lo + hi)


def _dense_min_eig(k: jax.Array, mask: jax.Array) -> jax.Array:
    """λ_min of K on the masked rows and columns, by one dense eigvalsh."""
    # The others are replaced by 2·max_i K_ii on the diagonal and 0 off it: the matrix is
    # then block diagonal, K_MM ⊕ cI with c ≥ min_i K_ii ≥ λ_min(K_MM), so the smallest
    # eigenvalue is K_MM's. No "+1": c stays at K's scale, whose eigvalsh error (ε‖·‖)
    # must not grow for small kernels.
    diag = jnp.diagonal(k)
    c = 2 * jnp.max(jnp.where(mask, diag, 0.0))
    both = mask[:, None] & mask[None, :]
    km = jnp.where(both, k, 0.0) + jnp.diag(jnp.where(mask, 0.0, c))
    return jnp.linalg.eigvalsh(km)[0]


def mu_inf_kernel(geom: Geometry, state: State, prob: Problem, act: Activation = relu) -> jax.Array:
    """μ_∞ = 2 λ_min(K) over the moving examples: the asymptotic rate −d/dt log L of the
    flow near an interpolating limit with a fixed activation pattern (module doc).

    Moving: real examples with K_ii > 0 (for ReLU: u_ji > 0 for some j; such a pair
    moves h(x_i) through a_j even when a_j = 0). An example with K_ii = 0 has a zero
    row in K (K ⪰ 0): its residual is frozen, it does not take part in the decay and is
    left out of the minimum, as are padded examples. With no moving example the rate is
    0. Orthogonal data (diagonal geometry) use the diagonal-plus-low-rank structure
    (:func:`lowrank_min_eig`), other geometries one dense eigvalsh of K."""
    if geom.diagonal:
        c, u = diagonal_parts(state, prob, act)
        moving = prob.example_mask() & (c + jnp.sum(u * u, axis=1) > 0)
        lam = lowrank_min_eig(c, jnp.where(moving[:, None], u, 0.0), moving)
    else:
        k = tangent_kernel(geom, state, prob, act)
        moving = prob.example_mask() & (jnp.diagonal(k) > 0)
        lam = _dense_min_eig(k, moving)
    return jnp.where(jnp.any(moving), 2 * lam, 0.0)
