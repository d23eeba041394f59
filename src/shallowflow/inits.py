"""Initialisations θ(0) = (a, W) (SPEC §5 and §4), as pure functions of a key.

The second layer is built from the row norms ``‖w_j‖`` so the same rules work when
W is only known through reduced coordinates (``‖w_j‖² = ‖v_j‖² + off2_j``).

Padding (see :mod:`shallowflow.data`): arrays have static shapes (P, D) and the true
sizes p ≤ P, d ≤ D may be traced. Padded neurons get a_j = 0 and w_j = 0, a fixed
point of the flow; draws are padding-stable (row j of W from ``fold_in(key, j)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.data import Real, Size, block, mask, rows, static_shape

INITS = ("asymmetric", "balanced", "gaussian", "group", "standard")


def uniform_w(key: jax.Array, p: Size, d: Size, dtype=jnp.float32, shape=None) -> jax.Array:
    """w_j with i.i.d. coordinates U(−1/√d, 1/√d) (the paper's, SPEC §5); ``shape`` =
    the padded (P, D), default (p, d)."""
    b = 1.0 / jnp.sqrt(jnp.asarray(d, dtype))

    def draw(k, size, dt):
        return jax.random.uniform(k, size, dt, -b, b)

    return block(rows(key, draw, static_shape(shape, p, d), dtype), p, d)


def gaussian_w(
    key: jax.Array, p: Size, d: Size, scale2: Real, dtype=jnp.float32, shape=None
) -> jax.Array:
    """w_j ~ N(0, (scale2/d) I_d), so E‖w_j‖² = scale2."""
    g = rows(key, jax.random.normal, static_shape(shape, p, d), dtype)
    return block(g, p, d) * jnp.sqrt(scale2 / jnp.asarray(d, dtype))


def w_variance(init: str, w_law: str, sigma):
    """E‖w_j‖² of the chosen first-layer law: 1/3 for the uniform law (and its
    Gaussian twin of equal variance), σ² for the ``gaussian`` initialisation."""
    return sigma**2 if init == "gaussian" else 1.0 / 3.0


def second_layer(
    key: jax.Array, init: str, w_norm: jax.Array, sigma: Real = 1.0, p: Size | None = None
) -> jax.Array:
    """a_j from the rule of the initialisation (zero for padded neurons j ≥ p):

    - ``asymmetric``: a_j = s_j (‖w_j‖ + E_j), E_j ~ Exp(1) (SPEC §5);
    - ``balanced`` / ``group``-free balanced: a_j = s_j ‖w_j‖;
    - ``gaussian``: a_j ~ N(0, σ²).
    """
    ks, ke = jax.random.split(key)
    dtype = w_norm.dtype
    s = jax.random.rademacher(ks, w_norm.shape, dtype)
    if init == "asymmetric":
        a = s * (w_norm + jax.random.exponential(ke, w_norm.shape, dtype))
    elif init == "balanced":
        a = s * w_norm
    elif init == "gaussian":
        a = jax.random.normal(ke, w_norm.shape, dtype) * sigma
    else:
        raise ValueError(f"init: unknown rule {init!r}; allowed: {INITS}")
    return a if p is None else jnp.where(mask(a.shape[0], p), a, 0.0)


def group_assignment(y: jax.Array, p, n=None, width: int | None = None):
    """Split examples into p groups of equal label sign (SPEC §4).

    The positive examples go round-robin to the first ``p_+`` neurons and the
    negative ones to the others, with ``p_+`` proportional to the number of
    positive labels (at least one neuron per sign present, when p ≥ 2).
    Returns ``(owner, sign)``: ``owner[i]`` is the neuron of example i and
    ``sign[j]`` the sign of a_j. Padding: ``y`` may hold ``n`` real labels followed
    by zeros and ``sign`` has ``width`` ≥ p entries (the padded ones are 0).
    """
    n = y.shape[0] if n is None else n
    width = p if width is None else width
    real = mask(y.shape[0], n)
    pos = (y > 0) & real
    n_pos = jnp.sum(pos)
    p_pos = jnp.clip(
        jnp.round(p * n_pos / n), jnp.where(n_pos > 0, 1, 0), jnp.where(n_pos < n, p - 1, p)
    ).astype(jnp.int32)
    rank_pos = jnp.cumsum(pos) - 1
    rank_neg = jnp.cumsum(~pos & real) - 1
    owner = jnp.where(
        pos, rank_pos % jnp.maximum(p_pos, 1), p_pos + rank_neg % jnp.maximum(p - p_pos, 1)
    )
    j = jnp.arange(width)
    sign = jnp.where(j < p_pos, 1.0, jnp.where(j < p, -1.0, 0.0)).astype(y.dtype)
    return jnp.where(real, owner, -1).astype(jnp.int32), sign


def group_state(
    key: jax.Array, y: jax.Array, p, d, dtype=jnp.float32, n=None, width: int | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Group initialisation for orthogonal data (SPEC §4), in the data's own basis.

    Neuron j is active exactly on its group G_j: ``u[j, i] = ⟨w_j, x_i/‖x_i‖⟩`` is
    U(0, 1/√d) for i ∈ G_j and 0 otherwise, and a_j = sign_j (‖w_j‖ + E_j) with the
    sign of its group's labels. Returns ``(a, u, owner)``, u of shape (p, n) (padded:
    (width, len(y)), zero outside the real block; owner −1 for padded examples).
    """
    width = p if width is None else width
    ku, ke = jax.random.split(key)
    owner, sign = group_assignment(y, p, n, width)
    mag = jax.random.uniform(ku, y.shape, dtype, 0.0, 1.0) / jnp.sqrt(jnp.asarray(d, dtype))
    u = jnp.where(owner[None, :] == jnp.arange(width)[:, None], mag[None, :], 0.0)
    a = sign * (jnp.linalg.norm(u, axis=1) + jax.random.exponential(ke, (width,), dtype))
    return a, u, owner


def standard_a(key: jax.Array, p, width: int, dtype=jnp.float32) -> jax.Array:
    """ã_j ~ U(−1/√p, 1/√p): PyTorch's ``nn.Linear(p, 1, bias=False)`` default (SPEC §6),
    zero for padded neurons j ≥ p.

    **The standard initialisation, mapped exactly.** PyTorch's default for a layer of
    fan-in f is U(±1/√f): w̃_jk ~ U(±1/√d) (:func:`uniform_w`) and ã_j ~ U(±1/√p), for
    the network h̃(x) = Σ_j ã_j σ(⟨w̃_j, x⟩) and the loss L̃(θ̃) = (1/(2n)) Σ_i (y_i −
    h̃(x_i))². Our network is h_θ = (1/p) Σ_j a_j σ(⟨w_j, x⟩) with the flow
    dθ/dt = −p∇L(θ) and GD θ ← θ − ηp∇L(θ) (SPEC §1). Put θ = √p θ̃. Then, σ being
    positively 1-homogeneous, h_θ = (1/p) Σ_j √p ã_j σ(√p ⟨w̃_j, x⟩) = h̃_θ̃, so
    L(θ) = L̃(θ̃) with the same 1/(2n), and ∇_θ L(θ) = ∇L̃(θ̃)/√p. Hence
    dθ̃/dt = (1/√p)(−p)(1/√p)∇L̃(θ̃) = −∇L̃(θ̃), and θ̃_{k+1} = θ̃_k − η∇L̃(θ̃_k): plain
    gradient flow and plain GD with the same step η on the same loss, at the same times
    t = kη. Nothing in the loss or the time is rescaled. (PyTorch's ``MSELoss`` is
    (1/n) Σ r², twice L̃: its GD with step η' is ours with η = 2η'.) The start applies
    θ = √p θ̃ after ``w_scale``/``a_scale`` (:mod:`shallowflow.start`).
    """
    b = 1.0 / jnp.sqrt(jnp.asarray(p, dtype))
    a = jax.random.uniform(key, (width,), dtype, -b, b)
    return jnp.where(mask(width, p), a, 0.0)
