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


def compact(slots: jax.Array) -> jax.Array:
    """Occupied slots first (stable)."""
    order = jnp.argsort(slots < 0, axis=1, stable=True)
    return jnp.take_along_axis(slots, order, axis=1)


def settle(data: FieldData, y: State, pat: Pattern, k_slots: int) -> Pattern:
    """Make each neuron's sliding set consistent: the Filippov field of a neuron with
    several pairs on their surfaces is the minimal-norm element of a box (one
    D ∈ [s, 1] per pair), so a pair whose λ falls outside [0, 1] is not sliding but
    active (λ > 1) or inactive (λ < 0). Active-set iteration: drop the worst pair of
    each neuron, re-solve, until every λ is in [0, 1] (at most K rounds)."""
    rows = jnp.arange(pat.slots.shape[0])

    def violation(p: Pattern):
        ev = field(data, y, p, gram(data, p.slots))
        lam = sliding_lambdas(data, y, p, ev)
        return lam, jnp.where(p.slots >= 0, jnp.maximum(lam - 1.0, -lam), 0.0)

    def cond(carry):
        p, it = carry
        return (it < k_slots) & jnp.any(violation(p)[1] > 1e-12)

    def body(carry):
        p, it = carry
        lam, viol = violation(p)
        worst = jnp.argmax(viol, axis=1)
        drop = jnp.max(viol, axis=1) > 1e-12
        example = jnp.where(drop, p.slots[rows, worst], p.mode.shape[1])
        side = jnp.where(lam[rows, worst] > 1.0, ACTIVE, INACTIVE).astype(jnp.int8)
        mode = p.mode.at[rows, example].set(side, mode="drop")
        slots = p.slots.at[rows, worst].set(jnp.where(drop, -1, p.slots[rows, worst]))
        return Pattern(mode, compact(slots)), it + 1

    return jax.lax.while_loop(cond, body, (pat, jnp.zeros((), jnp.int32)))[0]
