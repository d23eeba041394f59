"""The field with the activation pattern frozen, and the Filippov field of sliding
pairs (SPEC §3b): the pieces the exact flow (:mod:`.exact`) integrates.

With the pattern frozen, σ(u) = u·D_h and σ'(u) = D_g with D fixed, so the field is a
polynomial in θ. The only discontinuous part of F is dv_j's, affine in each D_ji; the
D's that keep u_ji = 0 for every sliding pair of neuron j solve one small linear system
per neuron, and the resulting dv_j is dv_j projected off span{x_i : i ∈ S_j} (the
minimal-norm element of the Clarke subdifferential), from the Gram matrix of the
sliding examples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.geometry import Geometry
from shallowflow.linalg import cholesky, spd_solve
from shallowflow.model import State

INACTIVE, ACTIVE, SLIDING = 0, 1, 2


class Pattern(NamedTuple):
    """``mode`` (p, n) in {INACTIVE, ACTIVE, SLIDING}; each neuron's sliding examples
    in ``slots`` (p, K), −1 for an empty slot, occupied slots first."""

    mode: jax.Array
    slots: jax.Array


class FieldData(NamedTuple):
    """One run's data for the field: layout, labels, true sizes."""

    geom: Geometry
    z: jax.Array  # solver layout (geom.for_solver)
    rows: jax.Array  # examples as rows (n, m); (n,) norms for the diagonal geometry
    y: jax.Array
    sq: jax.Array  # ‖x_i‖²
    n: jax.Array
    p: jax.Array
    slope: float


class Eval(NamedTuple):
    """The field at a state with its by-products: the loss, μ, pre-activations, residuals and
    the sliding terms."""

    f: State  # the field followed (Filippov on sliding surfaces)
    loss: jax.Array
    mu: jax.Array  # ‖F‖²/(pL)
    u: jax.Array  # pre-activations (p, n)
    r: jax.Array  # residuals (n,)
    coef: jax.Array  # (p, K): the sliding terms of dv_j are −Z_Sᵀ coef_j


def gram(data: FieldData, slots: jax.Array):
    """Z_S (p, K, m), the sliding examples of each neuron (zero rows for empty slots),
    and the Cholesky factor of Z_S Z_Sᵀ (+1 on the diagonal of empty slots)."""
    empty = slots < 0
    zs = jnp.where(empty[..., None], 0.0, data.rows[jnp.maximum(slots, 0)])
    g = (
        jnp.einsum("pkm,plm->pkl", zs, zs)
        + jnp.eye(slots.shape[1], dtype=zs.dtype) * empty[:, :, None]
    )
    return zs, cholesky(g)


def field(data: FieldData, y: State, pat: Pattern, gram) -> Eval:
    """F with the pattern frozen (σ(u) = u·D_h, σ'(u) = D_g), sliding neurons projected."""
    s = data.slope
    u = data.geom.preact(y.v, data.z)
    d_h = jnp.where(pat.mode == ACTIVE, 1.0, s)
    d_g = jnp.where(pat.mode == ACTIVE, 1.0, jnp.where(pat.mode == INACTIVE, s, 0.0))
    sig = u * d_h
    h = y.a @ sig / data.p
    r = data.y - h  # padded examples: y = 0 and u = 0, so r = 0
    loss = 0.5 * jnp.sum(r * r) / data.n
    da = sig @ r / data.n
    dv = data.geom.pullback((y.a[:, None] / data.n) * r[None, :] * d_g, data.z)
    coef = jnp.zeros(pat.slots.shape, dv.dtype)
    if gram is not None:
        zs, chol = gram
        coef = spd_solve(chol, jnp.einsum("pkm,pm->pk", zs, dv))
        dv = dv - jnp.einsum("pkm,pk->pm", zs, coef)
    f = State(da, dv)
    mu = (jnp.sum(da * da) + jnp.sum(dv * dv)) / (data.p * loss)
    return Eval(f, loss, mu, u, r, coef)


def dudt(data: FieldData, f: State) -> jax.Array:
    """u̇ = ⟨v̇_j, x_i⟩ for every pair."""
    return data.geom.preact(f.v, data.z)


def sliding_lambdas(data: FieldData, y: State, pat: Pattern, ev: Eval) -> jax.Array:
    """λ of each slot's sliding pair (p, K): D = (n/(a_j r_i))·(−coef)… from
    Σ_S D_k r_k (a_j/n) x_k = −Z_Sᵀ coef; λ = (D − s)/(1 − s). Empty slots: 1/2."""
    s = data.slope
    r_k = ev.r[jnp.maximum(pat.slots, 0)]
    denom = y.a[:, None] * r_k / data.n
    d = -ev.coef / jnp.where(denom == 0, 1.0, denom)
    lam = (d - s) / (1.0 - s)
    return jnp.where((pat.slots >= 0) & (denom != 0), lam, 0.5)


def onto_surfaces(data: FieldData, y: State, on: jax.Array) -> State:
    """θ with v_j moved the least so that u_ji = 0 for every pair in ``on`` (p, K) (slots
    of example indices, −1 empty): v_j − Z_Bᵀ(Z_B Z_Bᵀ)⁻¹ Z_B v_j."""
    zs, chol = gram(data, on)
    v = y.v - jnp.einsum("pkm,pk->pm", zs, spd_solve(chol, jnp.einsum("pkm,pm->pk", zs, y.v)))
    return State(y.a, v)


def _as_pattern(base: jax.Array, on: jax.Array, bmode: jax.Array) -> Pattern:
    """The pattern with the pairs in ``on`` (p, K) set to ``bmode``; its sliding slots
    are the sliding ones of ``on``, in place (empty slots anywhere are inert)."""
    rows = jnp.arange(on.shape[0])[:, None]
    cols = jnp.where(on >= 0, on, base.shape[1])
    mode = base.at[rows, cols].set(bmode.astype(base.dtype), mode="drop")
    return Pattern(mode, jnp.where((on >= 0) & (bmode == SLIDING), on, -1).astype(jnp.int32))


def violations(data: FieldData, y: State, base, on, bmode, tol):
    """How far each pair of ``on`` is from a consistent Filippov mode, in units of λ
    (SPEC §3b), beyond ``tol`` (> 0: violated), and the mode that repairs it.

    A sliding pair needs λ ∈ [0, 1]; an active one u̇⁺ ≥ 0, an inactive one u̇⁻ ≤ 0,
    measured against the jump u̇⁺ − u̇⁻ ≈ (1 − s)(a_j r_i/n)‖x_i‖² so that entry and
    exit use one tolerance (a pair leaving at λ = 1 + tol lands with u̇⁺ > 0 and is not
    put back). A violated pair that is attracting (a_j r_i < 0) slides; one that is not
    flips to the other side. Also returns the field there and the sliding λ's."""
    pat = _as_pattern(base, on, bmode)
    ev = field(data, y, pat, gram(data, pat.slots))
    lam = sliding_lambdas(data, y, pat, ev)
    idx = jnp.maximum(on, 0)
    rate = jnp.take_along_axis(dudt(data, ev.f), idx, axis=1)
    c = y.a[:, None] * ev.r[idx] / data.n
    dv_size = jnp.sqrt(jnp.sum(ev.f.v * ev.f.v, axis=1))[:, None] * jnp.sqrt(data.sq[idx])
    jump = (1.0 - data.slope) * jnp.abs(c) * data.sq[idx] + jnp.finfo(c.dtype).eps * dv_size
    side = jnp.where(bmode == ACTIVE, -1.0, 1.0)  # active: u̇ < 0 is wrong; inactive: > 0
    off = side * rate / jnp.where(jump > 0, jump, 1.0)
    viol = jnp.where(bmode == SLIDING, jnp.maximum(lam - 1.0, -lam), off) - tol
    viol = jnp.where(on >= 0, viol, -1.0)
    out = jnp.where(bmode == ACTIVE, INACTIVE, ACTIVE)
    fix = jnp.where(bmode == SLIDING, jnp.where(lam > 1.0, ACTIVE, INACTIVE), out)
    fix = jnp.where((bmode != SLIDING) & (c < 0), SLIDING, fix)
    return viol, fix.astype(bmode.dtype), ev, lam


class Resolved(NamedTuple):
    """A landing resolved: the modes of every pair and the field there."""

    pat: Pattern  # the modes; sliding slots in place (free slots anywhere)
    ev: Eval  # the field there
    lam: jax.Array  # λ of the sliding slots
    consistent: jax.Array  # every pair in a consistent mode
    evals: jax.Array  # field evaluations spent


def resolve(data: FieldData, y: State, base, on, bmode, tol, rounds: int):
    """The consistent Filippov modes of the pairs ``on`` (p, K) at their surfaces, from
    the first guess ``bmode``: a mixed complementarity problem per neuron (u̇ of the
    pairs at 0 is affine in their D ∈ [s, 1]: u̇ = b + Z_B Z_Bᵀ diag(a_j r/n) D).
    Least-index single principal pivoting (Murty 1974): each round repairs, per neuron,
    the first violated pair. On the attracting pairs the matrix is −G·diag|c|, a
    P-matrix (principal minors det G_SS·Π|c| > 0), for which this rule terminates at the
    unique solution; ``rounds`` bounds it anyway."""
    rows = jnp.arange(on.shape[0])

    def cond(carry):
        viol, it = carry[1], carry[-1]
        return (it < rounds) & jnp.any(viol > 0)

    def body(carry):
        bm, viol, fix, _, _, it = carry
        first = jnp.argmax(viol > 0, axis=1)
        hit = jnp.any(viol > 0, axis=1)
        bm = bm.at[rows, first].set(jnp.where(hit, fix[rows, first], bm[rows, first]))
        return (bm, *violations(data, y, base, on, bm, tol), it + 1)

    zero = jnp.zeros((), jnp.int32)
    bm, viol, _, ev, lam, it = jax.lax.while_loop(
        cond, body, (bmode, *violations(data, y, base, on, bmode, tol), zero)
    )
    return Resolved(_as_pattern(base, on, bm), ev, lam, ~jnp.any(viol > 0), it + 1)
