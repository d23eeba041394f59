"""Build one run's start — data, labels, θ(0) — in working coordinates, from a key.

``make_run`` is pure and jit/vmap-able (the configuration is static), so R runs
with keys split from one seed are built in a single compiled call.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow import data as datagen
from shallowflow import implicit
from shallowflow import init as initmod
from shallowflow.config import SimConfig
from shallowflow.geometry import Geometry, to_working
from shallowflow.model import Problem, State
from shallowflow.observables import covered


class UserArrays(NamedTuple):
    """Arrays supplied by the user (any may be None): data X, y and state W, a."""

    X: jax.Array | None = None
    y: jax.Array | None = None
    W: jax.Array | None = None
    a: jax.Array | None = None


class RunStart(NamedTuple):
    """A run's start: data, θ(0), the off-span ‖w_j‖² and the number of draws used."""

    prob: Problem
    state: State
    off2: jax.Array
    draws: jax.Array


def dtype_of(cfg: SimConfig):
    return jnp.float64 if cfg.x64 else jnp.float32


def geometry_of(cfg: SimConfig) -> Geometry:
    return Geometry(cfg.resolved_geometry, cfg.precision)


def _labels(key, cfg: SimConfig, n_dim: int, pre_fn, user: UserArrays, dtype):
    if cfg.labels == "file" or (
        user.y is not None and cfg.labels == "paper" and cfg.data == "file"
    ):
        return jnp.asarray(user.y, dtype)
    if cfg.labels == "teacher":
        return datagen.teacher_labels(key, pre_fn, n_dim, cfg.teacher_width, dtype)
    return datagen.paper_labels(key, cfg.n, dtype)


def _random_w(key: jax.Array, cfg: SimConfig, scale2, dtype) -> jax.Array:
    """The explicit (p, d) first layer of the random initialisations."""
    if cfg.init == "gaussian" or cfg.w_law == "gaussian":
        return initmod.gaussian_w(key, cfg.width, cfg.d, scale2, dtype)
    return initmod.uniform_w(key, cfg.width, cfg.d, dtype)


def _draw(key: jax.Array, cfg: SimConfig, user: UserArrays) -> RunStart:
    dtype = dtype_of(cfg)
    kx, ky, kw, ka = jax.random.split(key, 4)
    n, d, p = cfg.n, cfg.d, cfg.width
    kind = cfg.resolved_geometry
    scale2 = initmod.w_variance(cfg.init, cfg.w_law, cfg.sigma)

    if kind == "implicit":
        z = implicit.implicit_data(kx, cfg.data, n, d, dtype)
        y = _labels(ky, cfg, n, lambda w: w @ z.T, user, dtype)
        v, off2 = implicit.implicit_gaussian_w(kw, p, n, d, scale2, dtype)
    elif kind == "diagonal" and cfg.data == "orthogonal" and cfg.init not in ("file", "group"):
        # x_i = ρ_i e_i: working coordinates without the d×n frame (exactly what
        # to_working gives: v = W[:, :n], the off-span part is W[:, n:]).
        z = datagen.radii(kx, n, dtype)
        y = _labels(ky, cfg, d, lambda w: w[..., :n] * z, user, dtype)
        W = _random_w(kw, cfg, scale2, dtype)
        v, off2 = W[:, :n], jnp.sum(W[:, n:] ** 2, axis=1)
    else:
        X = (
            jnp.asarray(user.X, dtype)
            if cfg.data == "file"
            else datagen.generate(cfg.data, kx, n, d, cfg.rho, dtype)
        )
        y = _labels(ky, cfg, d, lambda w: w @ X.T, user, dtype)
        if cfg.init == "file":
            W = jnp.asarray(user.W, dtype)
        elif cfg.init == "group":
            a, u, _ = initmod.group_state(kw, y, p, d, dtype)
            W = u @ (X / jnp.linalg.norm(X, axis=1, keepdims=True))
        else:
            W = _random_w(kw, cfg, scale2, dtype)
        z, v, off2 = to_working(kind, X, W)

    if cfg.init == "file":
        a = jnp.asarray(user.a, dtype)
    elif cfg.init != "group":
        a = initmod.second_layer(ka, cfg.init, jnp.sqrt(jnp.sum(v * v, 1) + off2), cfg.sigma)
    v, off2 = v * cfg.w_scale, off2 * cfg.w_scale**2
    return RunStart(Problem(z, y), State(a, v), off2, jnp.ones((), jnp.int32))


def make_run(
    key: jax.Array, cfg: SimConfig, user: UserArrays = UserArrays(), max_draws: int = 1000
) -> RunStart:
    """Draw one run's data and θ(0). With ``cfg.require_coverage`` (Fig. 6), data and
    initialisation are redrawn until every example is covered (at most ``max_draws``
    times; ``draws`` reports how many were used, and a run never covered keeps its
    last draw, which the coverage observable then reports)."""
    start = _draw(key, cfg, user)
    if not cfg.require_coverage:
        return start
    geom = geometry_of(cfg)

    def need(carry):
        s, _ = carry
        return (~jnp.all(covered(geom, s.state, s.prob))) & (s.draws < max_draws)

    def redraw(carry):
        s, k = carry
        k, sub = jax.random.split(k)
        new = _draw(sub, cfg, user)
        return new._replace(draws=s.draws + 1), k

    out, _ = jax.lax.while_loop(need, redraw, (start, jax.random.fold_in(key, 1)))
    return out
