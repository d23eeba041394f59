"""Data geometries: how pre-activations ⟨w_j, x_i⟩ are computed (SPEC §3).

``dw_j/dt`` always lies in span{x_i}, so with Q (d×m) an orthonormal basis of the
span, ``v_j = Qᵀ w_j`` follows the same flow with data ``z_i = Qᵀ x_i`` and the
off-span part of ``w_j`` never moves. The geometries are:

- ``dense``: z = X, v = W (no reduction; O(ndp) per step);
- ``reduced``: z = Qᵀ X (n×m, m = rank ≤ min(n, d)); O(nmp) per step;
- ``diagonal``: orthogonal data, Qᵀ x_i = ‖x_i‖ e_i; z holds the norms (n,), v is
  p×n and the pre-activations are ``v * z``; O(np) per step;
- ``implicit``: the reduced geometry, with z and v sampled directly in reduced
  coordinates for rotation-invariant laws (see :mod:`shallowflow.implicit`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp

GEOMETRIES = ("dense", "reduced", "diagonal", "implicit")

PRECISIONS = {
    "highest": jax.lax.Precision.HIGHEST,
    "high": jax.lax.Precision.HIGH,
    "default": jax.lax.Precision.DEFAULT,
}


@dataclass(frozen=True)
class Geometry:
    """How to compute P = (⟨w_j, x_i⟩)_{j,i} and pull a (p, n) matrix back to v-space.

    ``precision`` is the matmul precision: ``highest`` (full float32, no TF32) by
    default; ``high``/``default`` are faster on GPUs and only used on request.
    ``transposed``: z is stored (m, n) rather than (n, m) (see :meth:`for_solver`).
    """

    kind: str = "dense"
    precision: str = "highest"
    transposed: bool = False

    @property
    def diagonal(self) -> bool:
        """Whether this is the orthogonal-data geometry (one coordinate per example)."""
        return self.kind == "diagonal"

    def preact(self, v: jax.Array, z: jax.Array) -> jax.Array:
        """P[j, i] = ⟨v_j, z_i⟩ (or v[j, i]·z[i] for the diagonal geometry)."""
        if self.diagonal:
            return v * z[None, :]
        zt = z if self.transposed else z.T
        return jnp.matmul(v, zt, precision=PRECISIONS[self.precision])

    def pullback(self, m: jax.Array, z: jax.Array) -> jax.Array:
        """Σ_i m[j, i] z_i for each j: the v-space image of a (p, n) weight matrix."""
        if self.diagonal:
            return m * z[None, :]
        i_axis = 1 if self.transposed else 0
        dims = (((1,), (i_axis,)), ((), ()))
        return jax.lax.dot_general(m, z, dims, precision=PRECISIONS[self.precision])

    def sq_norms(self, z: jax.Array) -> jax.Array:
        """‖x_i‖² for every example (rotation invariant, so exact in any geometry)."""
        if self.diagonal:
            return z * z
        return jnp.sum(z * z, axis=0 if self.transposed else -1)

    def for_solver(self, z: jax.Array) -> tuple[Geometry, jax.Array]:
        """The geometry and data a solver loop should use: the same numbers, with the
        data of a matrix geometry stored transposed (m, n). Both GEMMs of a step then
        read z along its rows; on XLA:CPU this is ~1.5x faster for skinny problems
        (n ≫ m ≫ p, as in Fig. 3; see benchmarks/). Call it once, outside the loop."""
        if self.diagonal or self.transposed:
            return self, z
        # The barrier makes the transposed copy real: without it XLA's layout
        # assignment may turn the transpose into a relabelled view of z (seen with
        # two records: 1.6x slower).
        return replace(self, transposed=True), jax.lax.optimization_barrier(z.T)


def to_working(
    kind: str, X: jax.Array, W: jax.Array, m=None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Map explicit data X (n, d) and first layer W (p, d) to working coordinates.

    Returns ``(z, v, off2)`` where ``off2[j] = ‖w_j − Q Qᵀ w_j‖²`` is the squared
    norm of the off-span part, constant along the flow, so that
    ``‖w_j‖² = ‖v_j‖² + off2[j]`` (SPEC §3).

    Padding: X may have zero rows and columns after its real block, W zero rows and
    columns. ``m`` is then the real working dimension of the reduced geometry,
    min(n, d): the QR's later columns (directions that the zero columns of Xᵀ add,
    orthogonal to the data) are dropped, so z and v are exactly 0 there and those
    components of w_j count in off2, as in the unpadded map.
    """
    if kind == "dense":
        return X, W, jnp.zeros(W.shape[0], W.dtype)
    q = frame(kind, X, m)
    hi = PRECISIONS["highest"]
    v = jnp.matmul(W, q, precision=hi)
    off = W - jnp.matmul(v, q.T, precision=hi)
    off2 = jnp.sum(off * off, axis=1)
    z = jnp.linalg.norm(X, axis=1) if kind == "diagonal" else jnp.matmul(X, q, precision=hi)
    return z, v, off2


def frame(kind: str, X: jax.Array, m=None) -> jax.Array:
    """Q (d×m), the orthonormal basis of span{x_i} in which v_j = Qᵀ w_j (SPEC §3): the
    normalised x_i for the diagonal geometry, X's QR factor otherwise (later columns past
    ``m`` dropped, see :func:`to_working`)."""
    if kind == "diagonal":
        s = jnp.linalg.norm(X, axis=1)
        return X.T / jnp.where(s > 0, s, 1.0)[None, :]
    if kind in ("reduced", "implicit"):
        q, _ = jnp.linalg.qr(X.T, mode="reduced")
        if m is not None:
            q = jnp.where(jnp.arange(q.shape[1])[None, :] < m, q, 0.0)
        return q
    raise ValueError(f"geometry: unknown kind {kind!r}; allowed: {GEOMETRIES}")


def to_user(v: jax.Array, q: jax.Array, off: jax.Array) -> jax.Array:
    """w_j = off_j + Q v_j: a first layer back in the user's coordinates (p, d), from its
    working coordinates ``v``, the frame ``q`` (:func:`frame`) and the off-span part
    ``off`` (p, d), which the flow never moves."""
    return off + jnp.matmul(v, q.T, precision=PRECISIONS["highest"])


def to_dense(kind: str, z: jax.Array, n: int) -> jax.Array:
    """Explicit data matrix in working coordinates (n, m): the diagonal geometry's
    ``diag(z)``, otherwise ``z`` itself. Used by observables needing Gram entries."""
    return jnp.diag(z) if kind == "diagonal" else z


def working_dim(geometry: str, n, d, minimum=min):
    """m, the size of a neuron's working coordinates v_j (SPEC §3): d in the dense
    geometry, n in the diagonal and implicit ones, min(n, d) reduced;
    ``minimum=jnp.minimum`` for traced sizes."""
    if geometry == "dense":
        return d
    if geometry in ("diagonal", "implicit"):
        return n
    return minimum(n, d)


def run_bytes(geometry: str, n: int, d: int, p: int, records: int, x64: bool) -> int:
    """Device memory one run of these sizes needs (an estimate, also the engine's chunk
    rule): data, first layer, pre-activations and recorded states."""
    m = working_dim(geometry, n, d)
    explicit = 0 if geometry == "implicit" else n * d + p * d
    per_run = explicit + n * m + p * m * (records + 4) + 8 * p * n
    return per_run * (8 if x64 else 4)
