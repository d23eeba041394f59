"""Dense linear algebra in plain XLA ops, for what runs inside the engine's compiled
programs: a batched Cholesky factorisation, its solves, and a test of positive
definiteness. Not LAPACK or BLAS custom calls: on CPU LAPACK's batched kernels split a
batch over the runtime's thread pool and wait on it, which deadlocked when runs were
shared over several CPU devices (every pool thread waited at once), and linear algebra
called from several CPU devices at once crashed the process; these loops have neither
problem and also run on accelerators.
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


def _substitute(low: jax.Array, b: jax.Array, transpose: bool) -> jax.Array:
    """Solve L x = b (forward) or Lᵀ x = b (backward) for lower L (p, K, K) and
    b (p, K, M), one row of x at a time."""
    k = low.shape[-1]
    idx = jnp.arange(k)

    def row(step, x):
        i = k - 1 - step if transpose else step
        coef = low[:, :, i] if transpose else low[:, i, :]  # (Lᵀ)[i, :] or L[i, :]
        known = (idx > i) if transpose else (idx < i)
        acc = jnp.einsum("pk,pkm->pm", jnp.where(known, coef, 0.0), x)
        return x.at[:, i, :].set((b[:, i, :] - acc) / low[:, i, i][:, None])

    return jax.lax.fori_loop(0, k, row, jnp.zeros_like(b))


def spd_solve(chol: jax.Array, b: jax.Array) -> jax.Array:
    """(L Lᵀ)⁻¹ b for lower factors L (p, K, K) and right-hand sides b (p, K, ...), by
    forward and backward substitution."""
    b3 = b if b.ndim == 3 else b[..., None]
    x = _substitute(chol, _substitute(chol, b3, transpose=False), transpose=True)
    return x if b.ndim == 3 else x[..., 0]


def is_positive_definite(g: jax.Array) -> jax.Array:
    """Whether each symmetric matrix of a batch (p, K, K) is positive definite: every
    Cholesky pivot is finite and positive (Sylvester's criterion, in exact arithmetic)."""
    pivots = jnp.diagonal(cholesky(g), axis1=-2, axis2=-1)
    return jnp.all(jnp.isfinite(pivots) & (pivots > 0), axis=-1)
