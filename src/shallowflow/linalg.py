"""Dense linear algebra in plain XLA ops, for what runs inside the engine's compiled
programs: a batched Cholesky factorisation, its solves, and a test of positive
definiteness. Not LAPACK: on CPU its batched kernels split a batch over the runtime's
thread pool and wait on it, which deadlocked when runs were shared over several CPU
devices (every pool thread waited at once), and concurrent LAPACK calls from the devices
crashed the process; these loops have neither problem and also run on accelerators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cholesky", "is_positive_definite", "spd_solve"]


def cholesky(g: jax.Array) -> jax.Array:
    """Lower Cholesky factors of a batch (p, K, K) of symmetric matrices, column by
    column (module doc). A matrix that is not positive definite gets a non-positive or
    NaN pivot on the diagonal (:func:`is_positive_definite`)."""
    k = g.shape[-1]
    idx = jnp.arange(k)

    def column(j, low):
        row = low[:, j, :]  # L[j, :j] (zeros beyond)
        diag = jnp.sqrt(g[:, j, j] - jnp.sum(row * row, axis=-1))
        col = (g[:, :, j] - jnp.einsum("pik,pk->pi", low, row)) / diag[:, None]
        col = jnp.where(idx > j, col, jnp.where(idx == j, diag[:, None], 0.0))
        return low.at[:, :, j].set(col)

    return jax.lax.fori_loop(0, k, column, jnp.zeros_like(g))


def spd_solve(chol: jax.Array, b: jax.Array) -> jax.Array:
    """(L Lᵀ)⁻¹ b for lower factors L (p, K, K) and right-hand sides b (p, K, ...)."""
    b3 = b if b.ndim == 3 else b[..., None]
    y = jax.lax.linalg.triangular_solve(chol, b3, left_side=True, lower=True)
    x = jax.lax.linalg.triangular_solve(chol, y, left_side=True, lower=True, transpose_a=True)
    return x if b.ndim == 3 else x[..., 0]


def is_positive_definite(g: jax.Array) -> jax.Array:
    """Whether each symmetric matrix of a batch (p, K, K) is positive definite: every
    Cholesky pivot is finite and positive (Sylvester's criterion, in exact arithmetic)."""
    pivots = jnp.diagonal(cholesky(g), axis1=-2, axis2=-1)
    return jnp.all(jnp.isfinite(pivots) & (pivots > 0), axis=-1)
