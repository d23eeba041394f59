"""Build one run's start — data, labels, θ(0) — in working coordinates, from a key.

``make_run`` is pure and jit/vmap-able. What is baked into a compiled program (the
data law, labels, initialisation, geometry: a :class:`DrawSpec`) is kept apart from
what may differ between the runs of one compiled call (the true sizes n, d, p and the
value knobs: :class:`DrawValues`), so that runs of cells with different n, d and p
share one program: their arrays are padded to a bucket's shape (:class:`Shape`) and
the padding is exactly inert (see :class:`shallowflow.model.Problem`). Every draw is
padding-stable (:mod:`shallowflow.data`): a padded run starts from exactly the numbers
of the same run alone.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import data as datagen
from shallowflow import implicit, inits
from shallowflow.config import SimConfig
from shallowflow.data import Real, Size, block, mask
from shallowflow.geometry import PRECISIONS, Geometry, frame, to_working
from shallowflow.model import Problem, State
from shallowflow.observables import all_covered


class UserArrays(NamedTuple):
    """Arrays supplied by the user (any may be None): data X, y and state W, a; host
    arrays as read from the files, device arrays inside the program."""

    X: jax.Array | np.ndarray | None = None
    y: jax.Array | np.ndarray | None = None
    W: jax.Array | np.ndarray | None = None
    a: jax.Array | np.ndarray | None = None


class Lift(NamedTuple):
    """What takes a working first layer back to the user's coordinates,
    w_j = off_j + Q v_j (:func:`shallowflow.geometry.to_user`): the frame Q (D, M) and
    the off-span parts off_j (P, D), constant along the flow (SPEC §3)."""

    frame: jax.Array
    off: jax.Array


class RunStart(NamedTuple):
    """A run's start: data, θ(0), the off-span ‖w_j‖² and the number of draws used;
    ``lift`` when asked for (``keep``) in a geometry with an explicit W (not implicit)."""

    prob: Problem
    state: State
    off2: jax.Array
    draws: jax.Array
    lift: Lift | None = None


class DrawSpec(NamedTuple):
    """The static part of a start: laws and geometry (one compiled program each)."""

    data: str
    labels: str
    init: str
    w_law: str
    geometry: str
    teacher_width: int
    x64: bool
    require_coverage: bool = False

    @property
    def dtype(self):
        """The float dtype of the run (float64 with ``x64``)."""
        return jnp.float64 if self.x64 else jnp.float32


class DrawValues(NamedTuple):
    """The per-run part of a start (traced): true sizes and value knobs (Python numbers
    for one run, host arrays when the runs of a call are stacked)."""

    n: Size
    d: Size
    p: Size
    w_scale: Real
    sigma: Real
    rho: Real


class Shape(NamedTuple):
    """Static array sizes of a start: examples N, input dimension D, neurons P."""

    n: int
    d: int
    p: int


def draw_spec(cfg: SimConfig) -> DrawSpec:
    """The static (compiled) part of a run's start, read from its config."""
    return DrawSpec(
        cfg.data.law,
        cfg.data.labels,
        cfg.init.law,
        cfg.init.w_law,
        cfg.run.geometry,
        cfg.data.teacher_width,
        cfg.run.x64,
        cfg.init.require_coverage,
    )


def draw_values(cfg: SimConfig) -> DrawValues:
    """The cell's value knobs, as Python numbers (the engine stacks them per run)."""
    return DrawValues(
        cfg.data.n, cfg.data.d, cfg.init.p, cfg.init.w_scale, cfg.init.sigma, cfg.data.rho
    )


def working_dim(geometry: str, n, d, minimum=min):
    """m, the size of a neuron's working coordinates v_j (SPEC §3); ``minimum=jnp.minimum``
    for traced sizes."""
    if geometry == "dense":
        return d
    if geometry in ("diagonal", "implicit"):
        return n
    return minimum(n, d)


def dtype_of(cfg: SimConfig):
    """float64 with ``x64``, else float32."""
    return jnp.float64 if cfg.run.x64 else jnp.float32


def geometry_of(cfg: SimConfig) -> Geometry:
    """The config's geometry (SPEC §3) at its matmul precision."""
    return Geometry(cfg.run.geometry, cfg.run.precision)


def _labels(key, spec: DrawSpec, n_dim: int, pre_fn, user: UserArrays, vals, size: int):
    if spec.labels == "file" or (
        user.y is not None and spec.labels == "paper" and spec.data == "file"
    ):
        return jnp.asarray(user.y, spec.dtype)
    if spec.labels == "teacher":
        y = datagen.teacher_labels(key, pre_fn, n_dim, spec.teacher_width, spec.dtype)
        return jnp.where(mask(size, vals.n), y, 0.0)
    return datagen.paper_labels(key, vals.n, spec.dtype, size)


def _random_w(key: jax.Array, spec: DrawSpec, vals: DrawValues, scale2, shape) -> jax.Array:
    """The explicit (p, d) first layer of the random initialisations."""
    if spec.init == "gaussian" or spec.w_law == "gaussian":
        return inits.gaussian_w(key, vals.p, vals.d, scale2, spec.dtype, shape)
    return inits.uniform_w(key, vals.p, vals.d, spec.dtype, shape)


def _draw(
    key: jax.Array,
    spec: DrawSpec,
    shape: Shape,
    vals: DrawValues,
    user: UserArrays,
    keep: bool = False,
) -> RunStart:
    dtype = spec.dtype
    kx, ky, kw, ka = jax.random.split(key, 4)
    n, d, p = vals.n, vals.d, vals.p
    big_n, big_d, big_p = shape
    kind = spec.geometry
    scale2 = inits.w_variance(spec.init, spec.w_law, vals.sigma)
    lift = None

    if kind == "implicit":
        z = implicit.implicit_data(kx, spec.data, n, d, dtype, big_n)
        y = _labels(ky, spec, big_n, lambda w: w @ z.T, user, vals, big_n)
        v, off2 = implicit.implicit_gaussian_w(kw, p, n, d, scale2, dtype, (big_p, big_n))
    elif kind == "diagonal" and spec.data == "orthogonal" and spec.init not in ("file", "group"):
        # x_i = ρ_i e_i: working coordinates without the d×n frame (exactly what
        # to_working gives: v = W[:, :n], the off-span part is W[:, n:]).
        z = jnp.where(mask(big_n, n), datagen.radii(kx, big_n, dtype), 0.0)
        y = _labels(ky, spec, big_d, lambda w: w[..., :big_n] * z, user, vals, big_n)
        W = _random_w(kw, spec, vals, scale2, (big_p, big_d))
        v = jnp.where(mask(big_n, n)[None, :], W[:, :big_n], 0.0)
        off2 = jnp.sum(jnp.where(mask(big_d, n)[None, :], 0.0, W * W), axis=1)
        if keep:  # Q = the first n unit vectors; off_j = the rest of w_j
            q = jnp.eye(big_d, big_n, dtype=dtype) * mask(big_n, n)[None, :]
            lift = Lift(q, jnp.where(mask(big_d, n)[None, :], 0.0, W))
    else:
        X = (
            block(jnp.asarray(user.X, dtype), n, d)
            if spec.data == "file"
            else datagen.generate(spec.data, kx, n, d, vals.rho, dtype, (big_n, big_d))
        )
        y = _labels(ky, spec, big_d, lambda w: w @ X.T, user, vals, big_n)
        if spec.init == "file":
            W = jnp.asarray(user.W, dtype)
        elif spec.init == "group":
            a, u, _ = inits.group_state(kw, y, p, d, dtype, n, big_p)
            norms = jnp.linalg.norm(X, axis=1, keepdims=True)
            W = u @ (X / jnp.where(norms > 0, norms, 1.0))
        else:
            W = _random_w(kw, spec, vals, scale2, (big_p, big_d))
        z, v, off2 = to_working(kind, X, W, jnp.minimum(n, d))
        if keep and kind != "dense":
            q = frame(kind, X, jnp.minimum(n, d))
            lift = Lift(q, W - jnp.matmul(v, q.T, precision=PRECISIONS["highest"]))

    if spec.init == "file":
        a = jnp.asarray(user.a, dtype)
    elif spec.init != "group":
        w_norm = jnp.sqrt(jnp.sum(v * v, 1) + off2)
        a = inits.second_layer(ka, spec.init, w_norm, vals.sigma, p)
    v, off2 = v * vals.w_scale, off2 * vals.w_scale**2
    if lift is not None:
        lift = lift._replace(off=lift.off * vals.w_scale)
    prob = Problem(z, y, n, p)
    return RunStart(prob, State(a, v), off2, jnp.ones((), jnp.int32), lift)


def make_padded_run(
    key: jax.Array,
    spec: DrawSpec,
    shape: Shape,
    vals: DrawValues,
    user: UserArrays = UserArrays(),
    max_draws: int = 1000,
    keep: bool = False,
) -> RunStart:
    """Draw one run's data and θ(0) into arrays of the static ``shape`` (with ``keep``,
    also its :class:`Lift` back to the user's coordinates).

    With ``spec.require_coverage`` (Fig. 6), data and initialisation are redrawn until
    every example is covered (at most ``max_draws`` times; ``draws`` reports how many
    were used, and a run never covered keeps its last draw, which the coverage
    observable then reports)."""
    start = _draw(key, spec, shape, vals, user, keep)
    if not spec.require_coverage:
        return start
    geom = Geometry(spec.geometry)

    def need(carry):
        s, _ = carry
        return ~all_covered(geom, s.state, s.prob) & (s.draws < max_draws)

    def redraw(carry):
        s, k = carry
        k, sub = jax.random.split(k)
        new = _draw(sub, spec, shape, vals, user, keep)
        return new._replace(draws=s.draws + 1), k

    out, _ = jax.lax.while_loop(need, redraw, (start, jax.random.fold_in(key, 1)))
    return out


def make_run(
    key: jax.Array,
    cfg: SimConfig,
    user: UserArrays = UserArrays(),
    max_draws: int = 1000,
    keep: bool = False,
) -> RunStart:
    """Draw one run's data and θ(0) at the cell's own sizes (no padding): the start of
    the engine's run with this key (:func:`make_padded_run`; ``keep``: with its lift,
    whose frame Q takes a kept W back to working coordinates, v = W Q)."""
    shape = Shape(cfg.data.n, cfg.data.d, cfg.init.p)
    vals = draw_values(cfg)
    start = make_padded_run(key, draw_spec(cfg), shape, vals, user, max_draws, keep)
    return start._replace(prob=start.prob._replace(n=None, p=None))
