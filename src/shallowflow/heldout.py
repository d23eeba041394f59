"""Held-out data (SPEC §6): more examples of the training law, and the test loss
L_test(θ) = (1/(2N)) Σ_k (y_k − h_θ(x_k))², in every geometry.

Why it is exact in every geometry: ``⟨w_j, x⟩ = ⟨v_j, Qᵀx⟩ + ⟨w_j − Q v_j, x⟩``, and the
off-span part ``w_j − Q v_j`` never moves (SPEC §3). So a test point is kept as its
working coordinates ``z_k = Qᵀ x_k`` and, per neuron, the constant
``c_jk = ⟨w_j − Q v_j, x_k⟩``; its pre-activations are ``⟨v_j, z_k⟩ + c_jk`` at every
time. Test points outside the training span (all of them when d ≫ n) are carried whole
by c. The implicit geometry never forms a d-vector: there the test points' parts outside
the training span, and each w_j's components along them, are sampled in reduced
coordinates too (:func:`implicit_points`).

Padding: test arrays have a static size T ≥ N; padded test points have z = 0, c = 0 and
y = 0, and the mean uses the true N.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow import implicit
from shallowflow.activations import Activation, relu
from shallowflow.data import (
    PAPER_RANGE,
    Size,
    block,
    correlated_frame,
    generate,
    mask,
    radii,
    rows,
)
from shallowflow.geometry import PRECISIONS
from shallowflow.model import State

# Offsets folded into a run's key for its held-out draws: the training draws, from the
# run's key split in four, are the same with or without a held-out set.
POINTS_KEY, LABELS_KEY = 0x7E57, 0x7E58


class HeldOut(NamedTuple):
    """Held-out examples of one run: working coordinates ``z`` (T, M), off-span
    pre-activations ``c`` (P, T) (module doc), labels ``y`` (T,), true count ``n``."""

    z: jax.Array
    c: jax.Array
    y: jax.Array
    n: Size


def check(law: str, n: int, d: int, test_n: int, test_data: str | None, geometry: str) -> None:
    """Refuse a held-out set that cannot be drawn or represented (ValueError "knob: …")."""
    if test_data and test_n < 1:
        raise ValueError("test_n: read from the --test-data file's rows; load it with load_user")
    if test_data and geometry == "implicit":
        raise ValueError(
            "test_data: the implicit geometry never forms the training data's d-vectors, so "
            "user test points have no coordinates there; use --geometry reduced"
        )
    if not test_n or test_data:
        return
    if law == "file":
        raise ValueError("test_n: draws from a law; with --data FILE give --test-data FILE")
    extra = {"orthogonal": 0, "correlated": 1}.get(law)
    if extra is not None and n + extra + test_n > d:
        raise ValueError(
            f"test_n: {law} test points are orthogonal to the training points and to each "
            f"other, so need n + {extra} + test_n <= d; got n={n}, test_n={test_n}, d={d}"
        )
    if geometry == "implicit" and n + test_n > d:
        raise ValueError(
            f"test_n: the implicit geometry needs n + test_n <= d (got {n} + {test_n} > "
            f"{d}); use --geometry reduced"
        )


def test_loss(state: State, held: HeldOut, p, act: Activation = relu) -> jax.Array:
    """L_test(θ) = (1/(2N)) Σ_k (y_k − h_θ(x_k))², pre-activations ⟨v_j, z_k⟩ + c_jk
    (padded neurons have a_j = 0 and padded points are masked, whatever σ(0))."""
    pre = jnp.matmul(state.v, held.z.T, precision=PRECISIONS["highest"]) + held.c
    h = state.a @ act.sigma(pre) / p
    r = jnp.where(mask(held.y.shape[0], held.n), held.y - h, 0.0)
    return 0.5 * jnp.sum(r * r) / held.n


def coordinates(X_t: jax.Array, q: jax.Array | None, off: jax.Array) -> tuple:
    """(z, c) of explicit test points X_t (T, D) for the frame Q (D, M) and the off-span
    parts ``off`` (P, D) of the first layer; dense geometry (q None): z = X_t, c = 0."""
    hi = PRECISIONS["highest"]
    if q is None:
        return X_t, jnp.zeros((off.shape[0], X_t.shape[0]), X_t.dtype)
    return jnp.matmul(X_t, q, precision=hi), jnp.matmul(off, X_t.T, precision=hi)


def explicit_points(
    key: jax.Array,
    law: str,
    n,
    d,
    test_n,
    rho,
    dtype,
    shape,
    train: tuple[jax.Array, int],
    norms=PAPER_RANGE,
) -> jax.Array:
    """N = ``test_n`` test points (T, D) of the training law, norms ρ_k ~ U[``norms``]
    (SPEC §6). Orthogonal data:
    ρ_k e_{n+k}; correlated data: ρ_k (√(1−ρ) u'_k + √ρ u_0) with the training points'
    u_0 and u'_k orthonormal, orthogonal to every training u_i (``train``: the training
    draw's key and padded N, whose frame is drawn again); others: i.i.d. draws."""
    big_t, big_d = shape
    if law == "orthogonal":
        hot = jnp.arange(big_d)[None, :] == n + jnp.arange(big_t)[:, None]
        return block(hot * radii(key, big_t, dtype, norms)[:, None], test_n, d)
    if law != "correlated":
        return generate(law, key, test_n, d, rho, dtype, shape, norms)
    kq, kr = jax.random.split(key)
    q = correlated_frame(jax.random.split(train[0])[0], n, d, dtype, (train[1], big_d))
    q = jnp.where(mask(q.shape[1], n + 1)[None, :], q, 0.0)
    g = block(rows(kq, jax.random.normal, shape, dtype), test_n, d)
    g = g - jnp.matmul(jnp.matmul(g, q, precision=PRECISIONS["highest"]), q.T)
    u, _ = jnp.linalg.qr(g.T, mode="reduced")  # (D, T): new directions, off the span
    x = jnp.sqrt(1.0 - rho) * u.T + jnp.sqrt(rho) * q[:, 0][None, :]
    return block(radii(kr, big_t, dtype, norms)[:, None] * x, test_n, d)


class ImplicitPoints(NamedTuple):
    """Implicit test points: in-span coordinates ``z`` (T, M) and coordinates ``zeta``
    (T, T) along an orthonormal basis of their parts outside the training span."""

    z: jax.Array
    zeta: jax.Array


def implicit_points(
    key: jax.Array, law: str, n, d, test_n, dtype, size_n: int, size_t: int, norms=PAPER_RANGE
):
    """N test points of a rotation-invariant law in reduced coordinates (SPEC §3, §6),
    sphere norms ρ_k ~ U[``norms``].

    A Gaussian g independent of the training set has in-span coordinates N(0, I_n); the
    parts of N such vectors outside the span are i.i.d. N(0, I_{d−n}) there, so their
    coordinates in an orthonormal basis of their own span are the columns of a Bartlett
    factor of dimension d − n (:func:`shallowflow.implicit.bartlett`; needs n + N ≤ d)."""
    kin, kb, kr = jax.random.split(key, 3)
    z = block(rows(kin, jax.random.normal, (size_t, size_n), dtype), test_n, n)
    zeta = implicit.bartlett(kb, test_n, jnp.asarray(d) - n, dtype, size_t).T
    if law == "gaussian":
        scale = jnp.ones(size_t, dtype) / jnp.sqrt(jnp.asarray(d, dtype))
    else:  # sphere: ρ_k g_k/‖g_k‖
        norm2 = jnp.sum(z * z, 1) + jnp.sum(zeta * zeta, 1)
        real = mask(size_t, test_n)
        rho = radii(kr, size_t, dtype, norms)
        scale = jnp.where(real, rho / jnp.sqrt(jnp.where(real, norm2, 1)), 0)
    return ImplicitPoints(z * scale[:, None], zeta * scale[:, None])


def implicit_offsets(key: jax.Array, pts: ImplicitPoints, off2, p, n, d, test_n) -> jax.Array:
    """c (P, T) for implicit test points: the off-span part of w_j is isotropic in the
    (d − n)-dim complement with squared norm off2_j, so its coordinates along the N
    orthonormal directions of ``zeta`` are √off2_j γ_j/√(‖γ_j‖² + χ²_{d−n−N}), γ_j ~
    N(0, I_N) (a uniform direction's first N coordinates); off2 is kept as drawn."""
    kg, kc = jax.random.split(key)
    width, size_t = off2.shape[0], pts.zeta.shape[0]
    dtype = off2.dtype
    gam = block(rows(kg, jax.random.normal, (width, size_t), dtype), p, test_n)
    rest_df = jnp.asarray(d, dtype) - n - test_n
    rest = jnp.where(
        rest_df > 0, implicit.chi2(kc, jnp.maximum(rest_df, 1.0), (width,), dtype), 0.0
    )
    total = jnp.sum(gam * gam, 1) + rest
    o = gam * jnp.sqrt(off2 / jnp.where(total > 0, total, 1.0))[:, None]
    return jnp.matmul(o, pts.zeta.T, precision=PRECISIONS["highest"])
