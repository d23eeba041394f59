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
from shallowflow import heldout, implicit, inits
from shallowflow.config import SimConfig
from shallowflow.data import Real, Size, block, mask
from shallowflow.errors import ShallowflowInputError
from shallowflow.geometry import PRECISIONS, Geometry, frame, to_working
from shallowflow.heldout import HeldOut
from shallowflow.model import Problem, State
from shallowflow.observables import all_covered


class UserArrays(NamedTuple):
    """Arrays supplied by the user (any may be None): data X, y, state W, a and held-out
    data Xt, yt; host arrays as read from the files, device arrays inside the program."""

    X: jax.Array | np.ndarray | None = None
    y: jax.Array | np.ndarray | None = None
    W: jax.Array | np.ndarray | None = None
    a: jax.Array | np.ndarray | None = None
    Xt: jax.Array | np.ndarray | None = None
    yt: jax.Array | np.ndarray | None = None


class Lift(NamedTuple):
    """What takes a working first layer back to the user's coordinates,
    w_j = off_j + Q v_j (:func:`shallowflow.geometry.to_user`): the frame Q (D, M) and
    the off-span parts off_j (P, D), constant along the flow (SPEC §3)."""

    frame: jax.Array
    off: jax.Array


class RunStart(NamedTuple):
    """A run's start: data, θ(0), the off-span ‖w_j‖² and the number of draws used;
    ``lift`` when asked for (``keep``) in a geometry with an explicit W (not implicit);
    ``held`` the held-out examples, if any (:mod:`shallowflow.heldout`)."""

    prob: Problem
    state: State
    off2: jax.Array
    draws: jax.Array
    lift: Lift | None = None
    held: HeldOut | None = None


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
    test: str = ""  # held-out examples: "" none, "draw" (test_n of the law) or "file"

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
    a_scale: Real
    test_n: Size
    # the ranges [lo, hi] of the input norms and of the paper labels' magnitudes
    norm_lo: Real = 1.0
    norm_hi: Real = 2.0
    label_lo: Real = 1.0
    label_hi: Real = 2.0

    @property
    def norms(self) -> tuple[Real, Real]:
        """The range of the input norms ρ_i (data.radii)."""
        return self.norm_lo, self.norm_hi

    @property
    def magnitudes(self) -> tuple[Real, Real]:
        """The range of the paper labels' magnitudes m_i (data.paper_labels)."""
        return self.label_lo, self.label_hi


class Shape(NamedTuple):
    """Static array sizes of a start: examples N, input dimension D, neurons P, held-out
    examples T."""

    n: int
    d: int
    p: int
    t: int = 0


def draw_spec(cfg: SimConfig) -> DrawSpec:
    """The static (compiled) part of a run's start, read from its config."""
    return DrawSpec(
        cfg.data.data,
        cfg.data.labels,
        cfg.init.init,
        cfg.init.w_law,
        cfg.run.geometry,
        cfg.data.teacher_width,
        cfg.run.x64,
        cfg.init.require_coverage,
        "file" if cfg.data.test_data else ("draw" if cfg.data.test_n else ""),
    )


def draw_values(cfg: SimConfig) -> DrawValues:
    """The cell's value knobs, as Python numbers (the engine stacks them per run)."""
    return DrawValues(
        cfg.data.n,
        cfg.data.d,
        cfg.init.p,
        cfg.init.w_scale,
        cfg.init.sigma,
        cfg.data.rho,
        cfg.init.a_scale,
        cfg.data.test_n,
        *cfg.data.x_norms,
        *cfg.data.label_range,
    )


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
    return datagen.paper_labels(key, vals.n, spec.dtype, size, vals.magnitudes)


def _random_w(key: jax.Array, spec: DrawSpec, vals: DrawValues, scale2, shape) -> jax.Array:
    """The explicit (p, d) first layer of the random initialisations."""
    if spec.init == "gaussian" or spec.w_law == "gaussian":
        return inits.gaussian_w(key, vals.p, vals.d, scale2, spec.dtype, shape)
    return inits.uniform_w(key, vals.p, vals.d, spec.dtype, shape)


def _test_labels(keys, spec: DrawSpec, vals: DrawValues, user: UserArrays, size, pre_fn, n_dim):
    """Held-out labels by the training rule: the file's, the same teacher (the training
    labels' key ``keys[0]``), or fresh paper labels (``keys[1]``)."""
    if user.yt is not None:
        return jnp.asarray(user.yt, spec.dtype)
    if spec.labels == "teacher":
        a, w = datagen.teacher(keys[0], n_dim, spec.teacher_width, spec.dtype)
        return jnp.where(mask(size, vals.test_n), datagen.teach(a, pre_fn(w)), 0.0)
    return datagen.paper_labels(keys[1], vals.test_n, spec.dtype, size, vals.magnitudes)


class _Part(NamedTuple):
    """Data and first layer in working coordinates, before the scales; ``a`` when the
    initialisation set it with W (file, group)."""

    z: jax.Array
    y: jax.Array
    v: jax.Array
    off2: jax.Array
    lift: Lift | None = None
    a: jax.Array | None = None
    held: HeldOut | None = None


def _implicit(keys, spec: DrawSpec, shape: Shape, vals: DrawValues, user, keep) -> _Part:
    kx, ky, kw, kt, kl = keys
    n, big_n, dtype = vals.n, shape.n, spec.dtype
    scale2 = inits.w_variance(spec.init, spec.w_law, vals.sigma)
    z = implicit.implicit_data(kx, spec.data, n, vals.d, dtype, big_n, vals.norms)
    y = _labels(ky, spec, big_n, lambda w: w @ z.T, user, vals, big_n)
    v, off2 = implicit.implicit_gaussian_w(kw, vals.p, n, vals.d, scale2, dtype, (shape.p, big_n))
    if not spec.test:
        return _Part(z, y, v, off2)
    pts = heldout.implicit_points(
        kt, spec.data, n, vals.d, vals.test_n, dtype, big_n, shape.t, vals.norms
    )
    c = heldout.implicit_offsets(
        jax.random.fold_in(kt, 1), pts, off2, vals.p, n, vals.d, vals.test_n
    )
    ext = jax.random.fold_in(ky, heldout.LABELS_KEY)  # the teacher off the training span

    def pre(w):
        w_ext = datagen.rows(ext, jax.random.normal, (w.shape[0], shape.t), dtype)
        return w @ pts.z.T + w_ext @ pts.zeta.T

    yt = _test_labels((ky, kl), spec, vals, user, shape.t, pre, big_n)
    return _Part(z, y, v, off2, held=HeldOut(pts.z, c, yt, vals.test_n))


def _test_points(keys, spec: DrawSpec, shape: Shape, vals: DrawValues, user) -> jax.Array:
    """Explicit held-out inputs (T, D): the user's, or drawn (:func:`heldout.explicit_points`)."""
    if spec.test == "file":
        if user.Xt is None:  # a programming error: config and arrays disagree
            raise ShallowflowInputError("test_data", "not loaded (shallowflow.api.load_user)")
        return block(jnp.asarray(user.Xt, spec.dtype), vals.test_n, vals.d)
    size = (shape.t, shape.d)
    return heldout.explicit_points(
        keys[3], spec.data, vals.n, vals.d, vals.test_n, vals.rho, spec.dtype, size,
        (keys[0], shape.n), vals.norms,
    )  # fmt: skip


def _held(keys, spec, shape, vals, user, q, off) -> HeldOut | None:
    """The held-out set of an explicit geometry, in working coordinates."""
    if not spec.test:
        return None
    X_t = _test_points(keys, spec, shape, vals, user)
    zt, c = heldout.coordinates(X_t, q, off)
    pre = lambda w: w @ X_t.T  # noqa: E731
    yt = _test_labels((keys[1], keys[4]), spec, vals, user, shape.t, pre, shape.d)
    return HeldOut(zt, c, yt, vals.test_n)


def _diagonal(keys, spec: DrawSpec, shape: Shape, vals: DrawValues, user, keep) -> _Part:
    # x_i = ρ_i e_i: working coordinates without the d×n frame (exactly what
    # to_working gives: v = W[:, :n], the off-span part is W[:, n:]).
    kx, ky, kw = keys[:3]
    n, big_n, big_d, dtype = vals.n, shape.n, shape.d, spec.dtype
    scale2 = inits.w_variance(spec.init, spec.w_law, vals.sigma)
    z = jnp.where(mask(big_n, n), datagen.radii(kx, big_n, dtype, vals.norms), 0.0)
    y = _labels(ky, spec, big_d, lambda w: w[..., :big_n] * z, user, vals, big_n)
    W = _random_w(kw, spec, vals, scale2, (shape.p, big_d))
    v = jnp.where(mask(big_n, n)[None, :], W[:, :big_n], 0.0)
    off2 = jnp.sum(jnp.where(mask(big_d, n)[None, :], 0.0, W * W), axis=1)
    lift = None
    if keep or spec.test:  # Q = the first n unit vectors; off_j = the rest of w_j
        q = jnp.eye(big_d, big_n, dtype=dtype) * mask(big_n, n)[None, :]
        lift = Lift(q, jnp.where(mask(big_d, n)[None, :], 0.0, W))
    held = _held(keys, spec, shape, vals, user, *(lift or (None, None)))
    return _Part(z, y, v, off2, lift if keep else None, held=held)


def _explicit(keys, spec: DrawSpec, shape: Shape, vals: DrawValues, user, keep) -> _Part:
    kx, ky, kw = keys[:3]
    n, d, p, dtype, kind = vals.n, vals.d, vals.p, spec.dtype, spec.geometry
    big_n, big_d, big_p = shape.n, shape.d, shape.p
    X = (
        block(jnp.asarray(user.X, dtype), n, d)
        if spec.data == "file"
        else datagen.generate(spec.data, kx, n, d, vals.rho, dtype, (big_n, big_d), vals.norms)
    )
    y = _labels(ky, spec, big_d, lambda w: w @ X.T, user, vals, big_n)
    a = None
    if spec.init == "file":
        W = jnp.asarray(user.W, dtype)
    elif spec.init == "group":
        a, u, _ = inits.group_state(kw, y, p, d, dtype, n, big_p)
        norms = jnp.linalg.norm(X, axis=1, keepdims=True)
        W = u @ (X / jnp.where(norms > 0, norms, 1.0))
    else:
        scale2 = inits.w_variance(spec.init, spec.w_law, vals.sigma)
        W = _random_w(kw, spec, vals, scale2, (big_p, big_d))
    z, v, off2 = to_working(kind, X, W, jnp.minimum(n, d))
    lift = None
    if (keep or spec.test) and kind != "dense":
        q = frame(kind, X, jnp.minimum(n, d))
        lift = Lift(q, W - jnp.matmul(v, q.T, precision=PRECISIONS["highest"]))
    frame_off = lift or (None, jnp.zeros_like(W))
    held = _held(keys, spec, shape, vals, user, *frame_off)
    return _Part(z, y, v, off2, lift if keep else None, a, held)


def _draw(
    key: jax.Array,
    spec: DrawSpec,
    shape: Shape,
    vals: DrawValues,
    user: UserArrays,
    keep: bool = False,
) -> RunStart:
    kx, ky, kw, ka = jax.random.split(key, 4)
    held_keys = (
        jax.random.fold_in(key, heldout.POINTS_KEY),
        jax.random.fold_in(key, heldout.LABELS_KEY),
    )
    keys = (kx, ky, kw, *held_keys)
    if spec.geometry == "implicit":
        body = _implicit
    elif (
        spec.geometry == "diagonal"
        and spec.data == "orthogonal"
        and spec.init
        not in (
            "file",
            "group",
        )
    ):
        body = _diagonal
    else:
        body = _explicit
    part = body(keys, spec, shape, vals, user, keep)
    z, v, off2, a = part.z, part.v, part.off2, part.a
    if spec.init == "file":
        a = jnp.asarray(user.a, spec.dtype)
    elif spec.init == "standard":
        a = inits.standard_a(ka, vals.p, shape.p, spec.dtype)
    elif spec.init != "group":
        w_norm = jnp.sqrt(jnp.sum(v * v, 1) + off2)
        a = inits.second_layer(ka, spec.init, w_norm, vals.sigma, vals.p)
    if a is None:  # only a bug can get here: group and file initialisations set a
        raise RuntimeError(f"init {spec.init!r} left the second layer unset")
    w_factor, a_factor = vals.w_scale, vals.a_scale
    if spec.init == "standard":  # θ = √p θ̃ (inits.standard_a)
        root = jnp.sqrt(jnp.asarray(vals.p, spec.dtype))
        w_factor, a_factor = w_factor * root, a_factor * root
    v, off2, a = v * w_factor, off2 * w_factor**2, a * a_factor
    lift = part.lift if part.lift is None else part.lift._replace(off=part.lift.off * w_factor)
    held = part.held if part.held is None else part.held._replace(c=part.held.c * w_factor)
    prob = Problem(z, part.y, vals.n, vals.p)
    return RunStart(prob, State(a, v), off2, jnp.ones((), jnp.int32), lift, held)


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
    shape = Shape(cfg.data.n, cfg.data.d, cfg.init.p, cfg.data.test_n)
    vals = draw_values(cfg)
    start = make_padded_run(key, draw_spec(cfg), shape, vals, user, max_draws, keep)
    return start._replace(prob=start.prob._replace(n=None, p=None))
