"""One Dormand–Prince 5(4) step (7 stages, first same as last, embedded 4th-order error
estimate; Dormand & Prince 1980) of any field (:func:`dopri_step`): the exact flow's with
the activation pattern frozen (:func:`dopri`), or the field of a C¹ activation
(:mod:`.smooth`); the step's continuous extension (:func:`dense`, Shampine 1986: 4th
order, the order of the error estimate, from the stages already computed); and the
location of the first root of a pre-activation on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.model import State
from shallowflow.solvers.filippov import Eval, FieldData, Pattern, field

# Dormand–Prince 5(4): stage coefficients (the last row is the 5th-order solution) and
# the weights of the error estimate (5th − 4th order).
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
# Shampine's continuous extension: the weights d_i of its last term h Σ d_i k_i (:func:`dense`)
_D = (
    -12715105075 / 11282082432,
    0.0,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380423,
)
SCAN = 16  # samples of the Hermite interpolant when looking for the first root


def axpy(y: State, h, ks, weights) -> State:
    """y + h Σ w_k k_k."""

    def comb(x, *parts):
        acc = x
        for w, part in zip(weights, parts, strict=False):
            if w != 0.0:
                acc = acc + (h * w) * part
        return acc

    return jax.tree_util.tree_map(comb, y, *ks)


class Step(NamedTuple):
    """One Dormand–Prince 5(4) step: the new state, the field there, ∫μ dt carried to the
    step's end, the error estimate, and the last term of the continuous extension of θ
    and of q (:func:`dense`)."""

    y1: State
    ev1: Any  # the evaluation of the field used (filippov.Eval for the exact flow)
    q1: jax.Array
    err: jax.Array
    e_y: State  # h Σ d_i k_i
    e_q: jax.Array  # h Σ d_i μ_i


def dopri(data: FieldData, y: State, ev0: Eval, q, h, pat: Pattern, gram, scale) -> Step:
    """One Dormand–Prince step of size h from y (field ev0 there), pattern frozen."""
    return dopri_step(lambda yi: field(data, yi, pat, gram), y, ev0, q, h, scale, data.p)


def dopri_step(fn: Callable[[State], Any], y: State, ev0, q, h, scale, p) -> Step:
    """One Dormand–Prince step of size h from y for the field ``fn`` (state → an
    evaluation with ``f`` the field, ``loss`` and ``mu``; ``ev0`` = fn(y)), carrying
    q = ∫μ dt. ``scale`` = (atol, rtol, real entries of θ), ``p`` the true width."""
    ks, mus = [ev0.f], [ev0.mu]
    for i in range(1, 7):
        yi = axpy(y, h, ks, _A[i])
        ev = fn(yi)
        ks.append(ev.f)
        mus.append(ev.mu)
    y1 = yi  # the 7th stage point is the 5th-order solution (first same as last)
    q1 = q + h * sum(w * m for w, m in zip(_A[6], mus[:6], strict=True))
    e = axpy(jax.tree_util.tree_map(jnp.zeros_like, y), h, ks, _E)
    tol = jax.tree_util.tree_map(
        lambda a, b: scale[0] + scale[1] * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y1
    )
    pairs = zip(jax.tree_util.tree_leaves(e), jax.tree_util.tree_leaves(tol), strict=True)
    err = jnp.sqrt(sum(jnp.sum((x / t) ** 2) for x, t in pairs) / scale[2])
    # The loss's own error, relative to the loss: late in training the residuals are
    # small differences y − h, and a tolerance on θ alone leaves them inaccurate
    # (hence a wrong rate). dL ≈ ∇L·e = −⟨F(y1), e⟩/p, free from the last stage.
    e_loss = -sum(jnp.sum(f * x) for f, x in zip(ev.f, e, strict=True)) / p
    err = jnp.maximum(err, jnp.abs(e_loss) / (scale[1] * ev.loss + scale[0] ** 2))
    e_y = axpy(jax.tree_util.tree_map(jnp.zeros_like, y), h, ks, _D)
    e_q = h * sum(w * m for w, m in zip(_D, mus, strict=True))
    return Step(y1, ev, q1, err, e_y, e_q)


def hermite(s, u0, d0, u1, d1, h, e: float | jax.Array = 0.0):
    """The step's continuous extension on s ∈ [0, 1] (Shampine 1986, 4th order): the
    cubic Hermite interpolant of the values u0, u1 and time derivatives d0, d1 at the
    ends, plus s²(1 − s)²·e with ``e`` = h Σ d_i k_i (:class:`Step`); e = 0 leaves the
    cubic Hermite interpolant."""
    s2, s3 = s * s, s * s * s
    cubic = (
        (2 * s3 - 3 * s2 + 1) * u0
        + (s3 - 2 * s2 + s) * h * d0
        + (-2 * s3 + 3 * s2) * u1
        + (s3 - s2) * h * d1
    )
    return cubic + (s2 - 2 * s3 + s2 * s2) * e


def dense(s, y0: State, f0: State, st: Step, f1: State, h) -> State:
    """θ at t₀ + s·h on the step's continuous extension (:func:`hermite`), from θ and the
    field at both ends: no new evaluation of the field."""
    return jax.tree_util.tree_map(
        lambda a, da, b, db, e: hermite(s, a, da, b, db, h, e), y0, f0, st.y1, f1, st.e_y
    )


def first_root(
    u0,
    d0,
    u1,
    d1,
    h,
    want_positive,
    candidates,
    thr: float | jax.Array = 0.0,
    e: float | jax.Array = 0.0,
):
    """For each candidate pair, the first s ∈ (0, 1] where its u on the continuous
    extension (:func:`hermite`, last term ``e``) leaves its side by more than ``thr``
    (u < −thr for a pair that should stay ≥ 0, u > thr otherwise); 2 if none. The
    margin keeps a pair that starts on its surface (u = 0 to rounding) from being found
    there again at s = 0."""
    sign = jnp.where(want_positive, 1.0, -1.0)

    def bad(s):
        return sign * hermite(s, u0, d0, u1, d1, h, e) < -thr

    grid = jnp.linspace(0.0, 1.0, SCAN + 1)[1:]
    first = jnp.full(u0.shape, 2.0, u0.dtype)
    lo = jnp.zeros(u0.shape, u0.dtype)
    for s in reversed(list(grid)):  # the earliest sample with the pair out of its side
        hit = bad(s)
        first = jnp.where(hit, s, first)
    lo = jnp.maximum(first - 1.0 / SCAN, 0.0)
    hi = jnp.minimum(first, 1.0)

    def bisect(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        out = bad(mid)
        return jnp.where(out, a, mid), jnp.where(out, mid, b)

    lo, hi = jax.lax.fori_loop(0, 40, bisect, (lo, hi))
    return jnp.where(candidates & (first <= 1.0), hi, 2.0)
