"""Data generators and labels (SPEC §5), as pure functions of a key.

Every generator returns explicit inputs ``X`` of a static shape ``(N, D)``; labels are
made separately. The true sizes ``n ≤ N`` and ``d ≤ D`` may be traced values: the
entries outside the leading ``n × d`` block are exact zeros (padding, see
:mod:`shallowflow.engine`). Draws are *padding-stable*: the leading block of a padded
draw is exactly the unpadded draw with the same key, because

- a 1-D draw gives entry ``i`` from the counter ``i`` alone (JAX's partitionable
  threefry, which :mod:`shallowflow` switches on), so a longer draw extends a shorter
  one, and
- a 2-D draw takes row ``i`` from its own key ``fold_in(key, i)`` (:func:`rows`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow.activations import relu

DATA = ("sphere", "orthogonal", "gaussian", "correlated")

# A true size (n, d, p) or a value knob (ρ, σ, ...) of a draw: a Python number for one
# run, one entry per run of a host array when runs are stacked, traced in the program.
Size = int | np.ndarray | jax.Array
Real = float | np.ndarray | jax.Array
# The paper's ranges (SPEC §5): input norms ρ_i ~ U[1, 2], label magnitudes m_i ~ U[1, 2];
# the knobs x_norms and label_range change them (bounds traced like ρ or σ).
PAPER_RANGE = (1.0, 2.0)


def static_shape(shape: tuple[int, int] | None, n: Size, d: Size) -> tuple[int, int]:
    """The static (N, D) of a draw: ``shape``, or, when it is None, the true sizes, which
    must then be concrete integers."""
    return (operator.index(n), operator.index(d)) if shape is None else shape


def mask(length: int, size) -> jax.Array:
    """``[i < size for i in range(length)]``: the real entries of a padded axis."""
    return jnp.arange(length) < size


def rows(key: jax.Array, draw: Callable, shape: tuple[int, int], dtype=jnp.float32) -> jax.Array:
    """A (rows, cols) draw whose row i is ``draw(fold_in(key, i), (cols,), dtype)``, so
    that any leading block of it is the same draw at the smaller shape."""
    n_rows, n_cols = shape
    one = lambda i: draw(jax.random.fold_in(key, i), (n_cols,), dtype)  # noqa: E731
    return jax.vmap(one)(jnp.arange(n_rows))


def block(x: jax.Array, n_rows, n_cols) -> jax.Array:
    """``x`` with every entry outside its leading ``n_rows × n_cols`` block set to 0."""
    keep = mask(x.shape[0], n_rows)[:, None] & mask(x.shape[1], n_cols)[None, :]
    return jnp.where(keep, x, 0.0)


def radii(key: jax.Array, n: int, dtype=jnp.float32, norms=PAPER_RANGE) -> jax.Array:
    """ρ_i ~ U[lo, hi], the input norms; the paper's U[1, 2] by default (SPEC §5)."""
    return jax.random.uniform(key, (n,), dtype, norms[0], norms[1])


def check_range(bounds: tuple[float, float]) -> tuple[float, float]:
    """A range [lo, hi] of a uniform draw: 0 < lo ≤ hi (ValueError otherwise)."""
    lo, hi = bounds
    if not 0 < lo <= hi:
        raise ValueError(f"a range lo,hi needs 0 < lo <= hi; got {lo:g},{hi:g}")
    return bounds


def check_ranges(law: str, labels: str, x_norms, label_range) -> None:
    """Refuse a range that the data law or the labels do not draw (ValueError "knob: …")."""
    if tuple(x_norms) != PAPER_RANGE and law not in ("sphere", "orthogonal", "correlated"):
        raise ValueError(f"x_norms: {law!r} data draw no norms; sphere, orthogonal, correlated do")
    if tuple(label_range) != PAPER_RANGE and labels != "paper":
        raise ValueError(f"label_range: {labels!r} labels draw no magnitudes; 'paper' labels do")


def _normalised(g: jax.Array, rho: jax.Array, n) -> jax.Array:
    """Rows ρ_i g_i/‖g_i‖ for the n real rows, zero rows after them."""
    norm = jnp.linalg.norm(g, axis=1, keepdims=True)
    real = mask(g.shape[0], n)[:, None]
    return jnp.where(real, rho[:, None] * g / jnp.where(real, norm, 1.0), 0.0)


def sphere(
    key: jax.Array, n: Size, d: Size, dtype=jnp.float32, shape=None, norms=PAPER_RANGE
) -> jax.Array:
    """x_i = ρ_i g_i/‖g_i‖, g_i ~ N(0, I_d), ρ_i ~ U[1,2] (SPEC §5; ``norms``: U[lo, hi])."""
    shape = static_shape(shape, n, d)
    kg, kr = jax.random.split(key)
    g = block(rows(kg, jax.random.normal, shape, dtype), n, d)
    return _normalised(g, radii(kr, shape[0], dtype, norms), n)


def orthogonal(
    key: jax.Array, n: Size, d: Size, dtype=jnp.float32, shape=None, norms=PAPER_RANGE
) -> jax.Array:
    """x_i = ρ_i e_i, the first n basis vectors (SPEC §5, Fig. 6); needs n ≤ d."""
    big_n, big_d = static_shape(shape, n, d)
    x = jnp.eye(big_n, big_d, dtype=dtype) * radii(key, big_n, dtype, norms)[:, None]
    return block(x, n, d)


def gaussian(key: jax.Array, n: Size, d: Size, dtype=jnp.float32, shape=None) -> jax.Array:
    """x_i ~ N(0, I_d/d) i.i.d."""
    shape = static_shape(shape, n, d)
    g = rows(key, jax.random.normal, shape, dtype)
    return block(g, n, d) / jnp.sqrt(jnp.asarray(d, dtype))


def correlated_frame(key: jax.Array, n: Size, d: Size, dtype=jnp.float32, shape=None):
    """(u_0, …, u_n) of :func:`correlated` as the columns of Q (D, N + 1): the QR of
    d × (n+1) Gaussian columns (column c from ``fold_in(key, c)``); padded columns and rows
    are zero, so the QR's leading n + 1 columns are those of the unpadded draw (to
    rounding)."""
    big_n, big_d = static_shape(shape, n, d)
    g = block(rows(key, jax.random.normal, (big_n + 1, big_d), dtype), n + 1, d)
    q, _ = jnp.linalg.qr(g.T, mode="reduced")
    return q


def correlated(
    key: jax.Array, n: Size, d: Size, rho: Real, dtype=jnp.float32, shape=None, norms=PAPER_RANGE
) -> jax.Array:
    """x_i = ρ_i (√(1−ρ) u_i + √ρ u_0) with u_0..u_n orthonormal (random,
    :func:`correlated_frame`), so that every pair of directions has correlation exactly ρ;
    needs n + 1 ≤ d."""
    big_n, big_d = static_shape(shape, n, d)
    kq, kr = jax.random.split(key)
    q = correlated_frame(kq, n, d, dtype, shape)  # (D, N + 1)
    u = jnp.sqrt(1.0 - rho) * q[:, 1:].T + jnp.sqrt(rho) * q[:, 0][None, :]
    return block(radii(kr, big_n, dtype, norms)[:, None] * u, n, d)


def generate(
    name: str,
    key: jax.Array,
    n: Size,
    d: Size,
    rho: Real = 0.0,
    dtype=jnp.float32,
    shape=None,
    norms=PAPER_RANGE,
) -> jax.Array:
    """Dispatch to a named generator. ``shape`` = the padded (N, D), default (n, d);
    ``norms`` = the range of ρ_i (sphere, orthogonal, correlated)."""
    if name == "sphere":
        return sphere(key, n, d, dtype, shape, norms)
    if name == "orthogonal":
        return orthogonal(key, n, d, dtype, shape, norms)
    if name == "gaussian":
        return gaussian(key, n, d, dtype, shape)
    if name == "correlated":
        return correlated(key, n, d, rho, dtype, shape, norms)
    raise ValueError(f"data: unknown generator {name!r}; allowed: {DATA}")


def paper_labels(
    key: jax.Array, n: Size, dtype=jnp.float32, length: int | None = None, magnitudes=PAPER_RANGE
):
    """y_i = s_i m_i with s_i Rademacher and m_i ~ U[1, 2] (SPEC §5; ``magnitudes``:
    U[lo, hi]); ``length`` ≥ n pads with zeros."""
    size = int(n) if length is None else length  # a traced n needs its padded length
    ks, km = jax.random.split(key)
    s = jax.random.rademacher(ks, (size,), dtype)
    y = s * jax.random.uniform(km, (size,), dtype, magnitudes[0], magnitudes[1])
    return jnp.where(mask(size, n), y, 0.0)


def teacher(key: jax.Array, n_dim: int, k: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """The teacher network of :func:`teacher_labels`: a*_l Rademacher (k,), w*_l ~ N(0, I)
    (k, n_dim), row l from ``fold_in``."""
    ka, kw = jax.random.split(key)
    a = jax.random.rademacher(ka, (k,), dtype)
    return a, rows(kw, jax.random.normal, (k, n_dim), dtype)


def teach(a: jax.Array, pre: jax.Array) -> jax.Array:
    """The teacher's outputs (1/√k) Σ_l a*_l σ(pre_li) from its pre-activations (k, n).
    The teacher is a ReLU network whatever the student's activation: the labelling rule
    is part of the data law, not of the model trained on it."""
    return a @ relu.sigma(pre) / jnp.sqrt(jnp.asarray(a.shape[0], a.dtype))


def teacher_labels(key: jax.Array, pre_fn, n_dim: int, k: int, dtype=jnp.float32) -> jax.Array:
    """y_i = (1/√k) Σ_l a*_l σ(⟨w*_l, x_i⟩), σ the ReLU, a*_l Rademacher, w*_l ~ N(0, I).

    ``pre_fn(w_star)`` returns ⟨w*_l, x_i⟩ as a (k, n) array in whatever coordinates
    the data live (w* is Gaussian, hence so are its reduced coordinates); padded
    examples are zero vectors, so their labels are 0.
    """
    a, w = teacher(key, n_dim, k, dtype)
    return teach(a, pre_fn(w))
