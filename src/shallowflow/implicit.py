"""Implicit-d sampling: reduced coordinates drawn without forming a d-vector (SPEC §3).

For n ≤ d Gaussian vectors g_1..g_n in R^d, G = [g_1 … g_n] = Q R with Q Haar and
R upper triangular with independent entries (Bartlett decomposition):
R_kk = √χ²_{d−k} (k = 0..n−1) and R_kl ~ N(0, 1) for k < l. So the coordinates of
g_i in the basis Q are the columns of R. A Gaussian w ~ N(0, s² I_d) independent of
the data has in-span coordinates N(0, s² I_n) and off-span squared norm s² χ²_{d−n}.
The cost is O(n²) whatever d is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def chi2(key: jax.Array, df: jax.Array | float, shape=(), dtype=jnp.float32) -> jax.Array:
    """χ²_df samples as 2·Gamma(df/2), valid for huge df (d up to 10⁹ and beyond)."""
    df = jnp.asarray(df, dtype)
    return 2.0 * jax.random.gamma(key, df / 2.0, shape, dtype)


def bartlett(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """R (n×n), the triangular Gram factor of n i.i.d. N(0, I_d) vectors (n ≤ d)."""
    kd, ko = jax.random.split(key)
    dfs = jnp.asarray(d, dtype) - jnp.arange(n, dtype=dtype)
    diag = jnp.sqrt(chi2(kd, dfs, (n,), dtype))
    off = jnp.triu(jax.random.normal(ko, (n, n), dtype), k=1)
    return off + jnp.diag(diag)


def implicit_data(key: jax.Array, name: str, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """Reduced data z (n×n), z_i = Qᵀ x_i, for ``sphere`` or ``gaussian`` data."""
    kb, kr = jax.random.split(key)
    g = bartlett(kb, n, d, dtype).T  # row i = coordinates of g_i
    if name == "gaussian":
        return g / jnp.sqrt(jnp.asarray(d, dtype))
    if name == "sphere":
        rho = jax.random.uniform(kr, (n,), dtype, 1.0, 2.0)
        return rho[:, None] * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    raise ValueError(f"data: implicit sampling needs 'sphere' or 'gaussian', got {name!r}")


def implicit_gaussian_w(
    key: jax.Array, p: int, n: int, d: int, scale2: float, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array]:
    """w_j ~ N(0, (scale2/d) I_d) as (v, off2): in-span coordinates (p×n) and the
    off-span squared norms (p,), distributed as (scale2/d) χ²_{d−n}."""
    kv, ko = jax.random.split(key)
    s2 = jnp.asarray(scale2 / d, dtype)
    v = jax.random.normal(kv, (p, n), dtype) * jnp.sqrt(s2)
    off2 = s2 * chi2(ko, jnp.maximum(d - n, 0), (p,), dtype) if d > n else jnp.zeros(p, dtype)
    return v, off2
