"""Implicit-d sampling: reduced coordinates drawn without forming a d-vector (SPEC §3).

For n ≤ d Gaussian vectors g_1..g_n in R^d, G = [g_1 … g_n] = Q R with Q Haar and
R upper triangular with independent entries (Bartlett decomposition):
R_kk = √χ²_{d−k} (k = 0..n−1) and R_kl ~ N(0, 1) for k < l. So the coordinates of
g_i in the basis Q are the columns of R. A Gaussian w ~ N(0, s² I_d) independent of
the data has in-span coordinates N(0, s² I_n) and off-span squared norm s² χ²_{d−n}.
The cost is O(n²) whatever d is. Shapes may be padded (``size`` ≥ n, ``width`` ≥ p,
with n, p, d traced): entries outside the real block are 0 and the real block is the
unpadded draw (rows from ``fold_in``, see :mod:`shallowflow.data`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.data import PAPER_RANGE, _normalised, block, mask, radii, rows


def chi2(key: jax.Array, df: jax.Array | float, shape=(), dtype=jnp.float32) -> jax.Array:
    """χ²_df samples as 2·Gamma(df/2), valid for huge df (d up to 10⁹ and beyond)."""
    df = jnp.asarray(df, dtype)
    return 2.0 * jax.random.gamma(key, df / 2.0, shape, dtype)


def bartlett(key: jax.Array, n, d, dtype=jnp.float32, size: int | None = None) -> jax.Array:
    """R (n×n), the triangular Gram factor of n i.i.d. N(0, I_d) vectors (n ≤ d)."""
    size = n if size is None else size
    kd, ko = jax.random.split(key)
    real = mask(size, n)
    dfs = jnp.where(real, jnp.asarray(d, dtype) - jnp.arange(size, dtype=dtype), 1.0)
    diag = jnp.where(real, jnp.sqrt(chi2(kd, dfs, (size,), dtype)), 0.0)
    off = jnp.triu(rows(ko, jax.random.normal, (size, size), dtype), k=1)
    return block(off, n, n) + jnp.diag(diag)


def implicit_data(
    key: jax.Array, name: str, n, d, dtype=jnp.float32, size: int | None = None, norms=PAPER_RANGE
) -> jax.Array:
    """Reduced data z (n×n), z_i = Qᵀ x_i, for ``sphere`` (norms ρ_i ~ U[``norms``]) or
    ``gaussian`` data."""
    size = n if size is None else size
    kb, kr = jax.random.split(key)
    g = bartlett(kb, n, d, dtype, size).T  # row i = coordinates of g_i
    if name == "gaussian":
        return g / jnp.sqrt(jnp.asarray(d, dtype))
    if name == "sphere":
        return _normalised(g, radii(kr, size, dtype, norms), n)
    raise ValueError(f"data: implicit sampling needs 'sphere' or 'gaussian', got {name!r}")


def implicit_gaussian_w(
    key: jax.Array,
    p,
    n,
    d,
    scale2,
    dtype=jnp.float32,
    shape: tuple[int, int] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """w_j ~ N(0, (scale2/d) I_d) as (v, off2): in-span coordinates (p×n) and the
    off-span squared norms (p,), distributed as (scale2/d) χ²_{d−n}."""
    width, size = (p, n) if shape is None else shape
    kv, ko = jax.random.split(key)
    s2 = jnp.asarray(scale2, dtype) / jnp.asarray(d, dtype)
    v = block(rows(kv, jax.random.normal, (width, size), dtype), p, n) * jnp.sqrt(s2)
    extra = jnp.asarray(d, dtype) - jnp.asarray(n, dtype)
    chi = chi2(ko, jnp.where(extra > 0, extra, 1.0), (width,), dtype)
    off2 = jnp.where(mask(width, p) & (extra > 0), s2 * chi, 0.0)
    return v, off2
