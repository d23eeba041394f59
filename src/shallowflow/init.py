"""Initialisations θ(0) = (a, W) (SPEC §5 and §4), as pure functions of a key.

The second layer is built from the row norms ``‖w_j‖`` so the same rules work when
W is only known through reduced coordinates (``‖w_j‖² = ‖v_j‖² + off2_j``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INITS = ("asymmetric", "balanced", "gaussian", "group")


def uniform_w(key: jax.Array, p: int, d: int, dtype=jnp.float32) -> jax.Array:
    """w_j with i.i.d. coordinates U(−1/√d, 1/√d) (the paper's, SPEC §5)."""
    b = 1.0 / jnp.sqrt(jnp.asarray(d, dtype))
    return jax.random.uniform(key, (p, d), dtype, -b, b)


def gaussian_w(key: jax.Array, p: int, d: int, scale2: float, dtype=jnp.float32) -> jax.Array:
    """w_j ~ N(0, (scale2/d) I_d), so E‖w_j‖² = scale2."""
    return jax.random.normal(key, (p, d), dtype) * jnp.sqrt(scale2 / d)


def w_variance(init: str, w_law: str, sigma: float) -> float:
    """E‖w_j‖² of the chosen first-layer law: 1/3 for the uniform law (and its
    Gaussian twin of equal variance), σ² for the ``gaussian`` initialisation."""
    return sigma**2 if init == "gaussian" else 1.0 / 3.0


def second_layer(key: jax.Array, init: str, w_norm: jax.Array, sigma: float = 1.0) -> jax.Array:
    """a_j from the rule of the initialisation:

    - ``asymmetric``: a_j = s_j (‖w_j‖ + E_j), E_j ~ Exp(1) (SPEC §5);
    - ``balanced`` / ``group``-free balanced: a_j = s_j ‖w_j‖;
    - ``gaussian``: a_j ~ N(0, σ²).
    """
    ks, ke = jax.random.split(key)
    dtype = w_norm.dtype
    s = jax.random.rademacher(ks, w_norm.shape, dtype)
    if init == "asymmetric":
        return s * (w_norm + jax.random.exponential(ke, w_norm.shape, dtype))
    if init == "balanced":
        return s * w_norm
    if init == "gaussian":
        return sigma * jax.random.normal(ke, w_norm.shape, dtype)
    raise ValueError(f"init: unknown rule {init!r}; allowed: {INITS}")


def group_assignment(y: jax.Array, p: int) -> tuple[jax.Array, jax.Array]:
    """Split examples into p groups of equal label sign (SPEC §4).

    The positive examples go round-robin to the first ``p_+`` neurons and the
    negative ones to the others, with ``p_+`` proportional to the number of
    positive labels (at least one neuron per sign present, when p ≥ 2).
    Returns ``(owner, sign)``: ``owner[i]`` is the neuron of example i and
    ``sign[j]`` the sign of a_j.
    """
    n = y.shape[0]
    pos = y > 0
    n_pos = jnp.sum(pos)
    p_pos = jnp.clip(
        jnp.round(p * n_pos / n), jnp.where(n_pos > 0, 1, 0), jnp.where(n_pos < n, p - 1, p)
    ).astype(jnp.int32)
    rank_pos = jnp.cumsum(pos) - 1
    rank_neg = jnp.cumsum(~pos) - 1
    owner = jnp.where(
        pos, rank_pos % jnp.maximum(p_pos, 1), p_pos + rank_neg % jnp.maximum(p - p_pos, 1)
    )
    sign = jnp.where(jnp.arange(p) < p_pos, 1.0, -1.0).astype(y.dtype)
    return owner.astype(jnp.int32), sign


def group_state(
    key: jax.Array, y: jax.Array, p: int, d: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Group initialisation for orthogonal data (SPEC §4), in the data's own basis.

    Neuron j is active exactly on its group G_j: ``u[j, i] = ⟨w_j, x_i/‖x_i‖⟩`` is
    U(0, 1/√d) for i ∈ G_j and 0 otherwise, and a_j = sign_j (‖w_j‖ + E_j) with the
    sign of its group's labels. Returns ``(a, u, owner)``, u of shape (p, n).
    """
    ku, ke = jax.random.split(key)
    owner, sign = group_assignment(y, p)
    n = y.shape[0]
    mag = jax.random.uniform(ku, (n,), dtype, 0.0, 1.0) / jnp.sqrt(jnp.asarray(d, dtype))
    u = jnp.where(owner[None, :] == jnp.arange(p)[:, None], mag[None, :], 0.0)
    a = sign * (jnp.linalg.norm(u, axis=1) + jax.random.exponential(ke, (p,), dtype))
    return a, u, owner
