"""Data geometries' generators and labels (SPEC §5), as pure functions of a key.

Every generator returns explicit inputs ``X`` (n, d); labels are made separately.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.model import activation

DATA = ("sphere", "orthogonal", "gaussian", "correlated")


def radii(key: jax.Array, n: int, dtype=jnp.float32) -> jax.Array:
    """ρ_i ~ U[1, 2], the paper's input norms (SPEC §5)."""
    return jax.random.uniform(key, (n,), dtype, 1.0, 2.0)


def sphere(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """x_i = ρ_i g_i/‖g_i‖, g_i ~ N(0, I_d), ρ_i ~ U[1,2] (SPEC §5)."""
    kg, kr = jax.random.split(key)
    g = jax.random.normal(kg, (n, d), dtype)
    return radii(kr, n, dtype)[:, None] * g / jnp.linalg.norm(g, axis=1, keepdims=True)


def orthogonal(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """x_i = ρ_i e_i, the first n basis vectors (SPEC §5, Fig. 6); needs n ≤ d."""
    return jnp.eye(n, d, dtype=dtype) * radii(key, n, dtype)[:, None]


def gaussian(key: jax.Array, n: int, d: int, dtype=jnp.float32) -> jax.Array:
    """x_i ~ N(0, I_d/d) i.i.d."""
    return jax.random.normal(key, (n, d), dtype) / jnp.sqrt(jnp.asarray(d, dtype))


def correlated(key: jax.Array, n: int, d: int, rho: float, dtype=jnp.float32) -> jax.Array:
    """x_i = ρ_i (√(1−ρ) u_i + √ρ u_0) with u_0..u_n orthonormal (random), so that
    every pair of directions has correlation exactly ρ; needs n + 1 ≤ d."""
    kq, kr = jax.random.split(key)
    q, _ = jnp.linalg.qr(jax.random.normal(kq, (d, n + 1), dtype), mode="reduced")
    u = jnp.sqrt(1.0 - rho) * q[:, 1:].T + jnp.sqrt(rho) * q[:, 0][None, :]
    return radii(kr, n, dtype)[:, None] * u


def generate(name: str, key: jax.Array, n: int, d: int, rho: float = 0.0, dtype=jnp.float32):
    """Dispatch to a named generator."""
    if name == "sphere":
        return sphere(key, n, d, dtype)
    if name == "orthogonal":
        return orthogonal(key, n, d, dtype)
    if name == "gaussian":
        return gaussian(key, n, d, dtype)
    if name == "correlated":
        return correlated(key, n, d, rho, dtype)
    raise ValueError(f"data: unknown generator {name!r}; allowed: {DATA}")


def paper_labels(key: jax.Array, n: int, dtype=jnp.float32) -> jax.Array:
    """y_i = s_i m_i with s_i Rademacher and m_i ~ U[1, 2] (SPEC §5)."""
    ks, km = jax.random.split(key)
    s = jax.random.rademacher(ks, (n,), dtype)
    return s * jax.random.uniform(km, (n,), dtype, 1.0, 2.0)


def teacher_labels(key: jax.Array, pre_fn, n_dim: int, k: int, dtype=jnp.float32) -> jax.Array:
    """y_i = (1/√k) Σ_l a*_l σ(⟨w*_l, x_i⟩), a*_l Rademacher, w*_l ~ N(0, I).

    ``pre_fn(w_star)`` returns ⟨w*_l, x_i⟩ as a (k, n) array in whatever coordinates
    the data live (w* is Gaussian, hence so are its reduced coordinates).
    """
    ka, kw = jax.random.split(key)
    a = jax.random.rademacher(ka, (k,), dtype)
    w = jax.random.normal(kw, (k, n_dim), dtype)
    return a @ activation(pre_fn(w)) / jnp.sqrt(jnp.asarray(k, dtype))
