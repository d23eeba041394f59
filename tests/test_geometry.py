"""Tests of the data geometries and implicit-d sampling (SPEC §3): every representation
gives the same trajectory, and implicit sampling has the law of dense sampling."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from shallowflow import data, implicit, inits, model, observables
from shallowflow.config import make_config
from shallowflow.engine import simulate
from shallowflow.geometry import Geometry, to_working
from shallowflow.start import geometry_of, make_run

N, D, P = 5, 12, 7


def _orthogonal_X(rng, n=N, d=D):
    """Pairwise orthogonal rows in a random rotation (not the basis vectors)."""
    q, _ = np.linalg.qr(rng.normal(size=(d, n)))
    return rng.uniform(1, 2, n)[:, None] * q.T


def _sphere_X(rng, n=N, d=D):
    g = rng.normal(size=(n, d))
    return rng.uniform(1, 2, n)[:, None] * g / np.linalg.norm(g, axis=1, keepdims=True)


def _init(rng, n=N, d=D, p=P):
    W = rng.uniform(-1, 1, size=(p, d)) / math.sqrt(d)
    a = rng.choice([-1.0, 1.0], p) * (np.linalg.norm(W, axis=1) + rng.exponential(1, p))
    y = rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n)
    return W, a, y


@functools.partial(jax.jit, static_argnames=("kind", "lr", "steps"))
def _euler(kind, z, y, a, v, lr, steps):
    """Plain Euler/GD steps θ += η F(θ), recording L and μ at every step."""
    geom = Geometry(kind)
    prob = model.Problem(z, y)

    def step(s, _):
        rec = (model.loss(geom, s, prob), observables.mu(geom, s, prob))
        f = model.vector_field(geom, s, prob)
        return model.State(s.a + lr * f.a, s.v + lr * f.v), rec

    _, (loss, mu) = jax.lax.scan(step, model.State(a, v), None, length=steps)
    return loss, mu


def _trajectory(kind, X, W, a, y, steps=300, lr=0.05):
    z, v, off2 = to_working(kind, jnp.asarray(X), jnp.asarray(W))
    loss, mu = _euler(kind, z, jnp.asarray(y), jnp.asarray(a), v, lr, steps)
    return np.asarray(loss), np.asarray(mu)


@pytest.mark.parametrize(
    "data_name, d, kinds",
    [
        ("orthogonal", D, ("dense", "reduced", "diagonal", "implicit")),
        ("sphere", D, ("dense", "reduced")),
        ("sphere", 3, ("dense", "reduced")),  # d < n: the span is all of R^d
    ],
)
def test_to_working_preserves_preactivations_and_norms(data_name, d, kinds):
    rng = np.random.default_rng(0)
    X = _orthogonal_X(rng, d=d) if data_name == "orthogonal" else _sphere_X(rng, d=d)
    W, _, _ = _init(rng, d=d)
    with jax.enable_x64(True):
        for kind in kinds:
            z, v, off2 = to_working(kind, jnp.asarray(X), jnp.asarray(W))
            pre = np.asarray(Geometry(kind).preact(v, z))
            np.testing.assert_allclose(pre, W @ X.T, rtol=1e-12, atol=1e-14, err_msg=kind)
            w2 = np.asarray(jnp.sum(v * v, axis=1) + off2)
            np.testing.assert_allclose(w2, np.sum(W**2, axis=1), rtol=1e-12, err_msg=kind)
            x2 = np.asarray(Geometry(kind).sq_norms(z))
            np.testing.assert_allclose(x2, np.sum(X**2, axis=1), rtol=1e-12, err_msg=kind)
            if kind != "dense":
                assert v.shape == (P, min(N, d))
                # the off-span part is orthogonal to the data: it never moves
                assert np.all(np.asarray(off2) >= 0)


@pytest.mark.parametrize("kind", ["dense", "reduced", "diagonal"])
def test_solver_layout_gives_the_same_field_and_loss(kind):
    """``for_solver`` stores the data transposed for the solver loop; the vector field,
    loss and μ computed from it equal those of the plain layout."""
    rng = np.random.default_rng(3)
    X = _orthogonal_X(rng) if kind == "diagonal" else _sphere_X(rng)
    W, a, y = _init(rng)
    with jax.enable_x64(True):
        z, v, _ = to_working(kind, jnp.asarray(X), jnp.asarray(W))
        geom = Geometry(kind)
        geom_t, z_t = geom.for_solver(z)
        assert geom_t.transposed == (kind != "diagonal")
        if kind != "diagonal":
            assert z_t.shape == z.shape[::-1]
        s, y = model.State(jnp.asarray(a), v), jnp.asarray(y)
        plain, packed = model.Problem(z, y), model.Problem(z_t, y)
        for f in (model.vector_field, model.loss, observables.mu):
            want, got = f(geom, s, plain), f(geom_t, s, packed)
            leaves = jax.tree_util.tree_leaves
            for w, g in zip(leaves(want), leaves(got), strict=True):
                np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(geom_t.sq_norms(z_t), geom.sq_norms(z), rtol=1e-14)


@pytest.mark.parametrize(
    "data_name, kinds",
    [("orthogonal", ("dense", "reduced", "diagonal")), ("sphere", ("dense", "reduced"))],
)
def test_geometries_give_the_same_trajectory_float64(data_name, kinds):
    rng = np.random.default_rng(1)
    X = _orthogonal_X(rng) if data_name == "orthogonal" else _sphere_X(rng)
    W, a, y = _init(rng)
    with jax.enable_x64(True):
        ref_loss, ref_mu = _trajectory("dense", X, W, a, y)
        assert ref_loss.dtype == np.float64
        assert ref_loss[-1] < 0.5 * ref_loss[0]  # a real, converging trajectory
        for kind in kinds[1:]:
            loss, mu = _trajectory(kind, X, W, a, y)
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-9, err_msg=kind)
            np.testing.assert_allclose(mu, ref_mu, rtol=1e-9, err_msg=kind)


@pytest.mark.parametrize(
    "extra", [{}, {"labels": "teacher"}, {"init": "gaussian"}, {"init": "balanced"}]
)
def test_config_geometry_only_changes_the_representation_float64(extra):
    """Same seed, ``geometry`` = dense / reduced / diagonal: the same draw (labels, a,
    pre-activations, ‖w_j‖) and hence the same trajectory. (The diagonal geometry
    draws orthogonal data without building X: this checks that shortcut.)"""
    base = dict(data="orthogonal", n=N, d=D, p=P, x64=True, seed=5, **extra)
    key = jax.random.split(jax.random.key(5), 1)[0]
    out = {}
    with jax.enable_x64(True):
        for kind in ("dense", "reduced", "diagonal"):
            cfg = make_config(geometry=kind, **base)
            s = make_run(key, cfg)
            pre = geometry_of(cfg).preact(s.state.v, s.prob.z)
            w2 = jnp.sum(s.state.v**2, axis=1) + s.off2
            traj = _euler(kind, s.prob.z, s.prob.y, s.state.a, s.state.v, 0.05, 300)
            out[kind] = [np.asarray(x) for x in (s.prob.y, s.state.a, pre, w2, *traj)]
    names = ("y", "a", "pre", "w2", "loss", "mu")
    for kind in ("reduced", "diagonal"):
        for name, ref, got in zip(names, out["dense"], out[kind], strict=True):
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-13, err_msg=f"{kind} {name}")
    assert out["dense"][4][-1] < 0.5 * out["dense"][4][0]


def test_engine_geometries_agree(orth_gd):
    """The engine (GD, float64) on the Fig. 6 protocol: the dense geometry gives the
    trajectory of the diagonal one (auto)."""
    assert orth_gd.cfg.run.geometry == "diagonal"
    other = simulate(make_config(**{**orth_gd.cfg.knobs(), "geometry": "dense"}))
    np.testing.assert_array_equal(other.valid, orth_gd.valid)
    np.testing.assert_array_equal(other.final["status"], orth_gd.final["status"])
    np.testing.assert_array_equal(other.init["draws"], orth_gd.init["draws"])
    v = orth_gd.valid
    for name in ("loss", "mu", "mu_low", "mu_upp"):
        np.testing.assert_allclose(
            other.records[name][v], orth_gd.records[name][v], rtol=1e-9, err_msg=name
        )
    np.testing.assert_array_equal(other.final["steps"], orth_gd.final["steps"])


# ------------------------------------------------------------ implicit-d sampling

S, NI, DI = 2000, 8, 64
W_SCALE2 = 1.0 / 3.0


NAMES = ("sphere", "gaussian")


@jax.jit
def _dense_draws(keys):
    def one(key):
        out = []
        for gen, k in zip((data.sphere, data.gaussian), jax.random.split(key), strict=True):
            kx, kw = jax.random.split(k)
            X = gen(kx, NI, DI)
            W = inits.gaussian_w(kw, 3, DI, W_SCALE2)
            out.append((X @ X.T, W @ X.T, jnp.sum(W * W, axis=1)))
        return out

    return jax.vmap(one)(keys)


@jax.jit
def _implicit_draws(keys):
    def one(key):
        out = []
        for name, k in zip(NAMES, jax.random.split(key), strict=True):
            kx, kw = jax.random.split(k)
            z = implicit.implicit_data(kx, name, NI, DI)
            v, off2 = implicit.implicit_gaussian_w(kw, 3, NI, DI, W_SCALE2)
            out.append((z @ z.T, v @ z.T, jnp.sum(v * v, axis=1) + off2))
        return out

    return jax.vmap(one)(keys)


@pytest.fixture(scope="module")
def all_draws():
    dense = _dense_draws(jax.random.split(jax.random.key(10), S))
    impl = _implicit_draws(jax.random.split(jax.random.key(20), S))
    return {
        name: ([np.asarray(x) for x in dense[c]], [np.asarray(x) for x in impl[c]])
        for c, name in enumerate(NAMES)
    }


@pytest.fixture(params=NAMES)
def draws(all_draws, request):
    return (request.param, *all_draws[request.param])


P_MIN = 1e-4  # ~20 KS tests, fixed seeds (deterministic p-values)


def test_implicit_gram_entries_match_dense_in_law(draws):
    name, (g_d, _, _), (g_i, _, _) = draws
    for i, k in ((0, 0), (NI - 1, NI - 1), (0, 1), (NI - 2, NI - 1), (0, NI - 1)):
        res = stats.ks_2samp(g_i[:, i, k], g_d[:, i, k])
        assert res.pvalue > P_MIN, (name, i, k, res.pvalue)
    # moments: off-diagonal mean 0; for gaussian data E⟨x_i,x_k⟩² = 1/d, E‖x_i‖² = 1
    off = g_i[:, 0, NI - 1]
    assert abs(off.mean()) < 5 * off.std() / math.sqrt(S)
    if name == "gaussian":
        assert abs(np.mean(off**2) * DI - 1) < 0.15
        last = g_i[:, NI - 1, NI - 1]  # ‖g‖²/d ~ χ²_d/d: mean 1, variance 2/d
        assert abs(last.mean() - 1) < 5 * math.sqrt(2 / DI / S)
        assert abs(last.var() * DI / 2 - 1) < 0.15
    else:
        diag = np.sqrt(g_i[:, 0, 0])  # ρ ~ U[1, 2]
        assert diag.min() >= 1 - 1e-5 and diag.max() <= 2 + 1e-5
        assert stats.kstest(diag, stats.uniform(1, 1).cdf).pvalue > P_MIN


def test_implicit_first_layer_matches_dense_in_law(draws):
    name, (_, pr_d, w2_d), (_, pr_i, w2_i) = draws
    for j, i in ((0, 0), (2, NI - 1)):
        res = stats.ks_2samp(pr_i[:, j, i], pr_d[:, j, i])
        assert res.pvalue > P_MIN, (name, j, i, res.pvalue)
    res = stats.ks_2samp(w2_i[:, 0], w2_d[:, 0])
    assert res.pvalue > P_MIN, (name, "w2", res.pvalue)
    # ‖w_j‖² ~ (s²/d) χ²_d: mean s², variance 2 s⁴/d
    assert abs(w2_i.mean() / W_SCALE2 - 1) < 5 * math.sqrt(2 / DI / w2_i.size)
    assert abs(w2_i[:, 0].var() / (2 * W_SCALE2**2 / DI) - 1) < 0.15


def test_implicit_sampling_at_d_one_billion():
    """Sphere data (the Bartlett factor is shared with gaussian data) at d = 10⁹."""
    d, R = 10**9, 64
    keys = jax.random.split(jax.random.key(7), R)

    def one(key):
        kx, kw = jax.random.split(key)
        z = implicit.implicit_data(kx, "sphere", NI, d)
        v, off2 = implicit.implicit_gaussian_w(kw, 3, NI, d, W_SCALE2)
        return z, jnp.sum(v * v, axis=1) + off2, v @ z.T

    z, w2, pre = (np.asarray(x, np.float64) for x in jax.jit(jax.vmap(one))(keys))
    assert np.isfinite(z).all() and np.isfinite(w2).all() and np.isfinite(pre).all()
    norms = np.linalg.norm(z, axis=2)  # = ρ_i ~ U[1, 2]
    assert norms.min() >= 1 - 1e-5 and norms.max() <= 2 + 1e-5
    assert norms.std() > 0.2  # the radii are drawn, not fixed
    np.testing.assert_allclose(w2, W_SCALE2, rtol=1e-3)  # ‖w_j‖² → s² as d → ∞
    corr = np.einsum("rid,rkd->rik", z, z) / (norms[:, :, None] * norms[:, None, :])
    off = corr[:, ~np.eye(NI, dtype=bool)] * math.sqrt(d)  # ≈ N(0, 1)
    assert np.abs(off).max() < 6
    assert 0.8 < off.std() < 1.2
    # ⟨w_j, x_i⟩ has variance s²‖x_i‖²/d
    scaled = pre / (np.sqrt(W_SCALE2 / d) * norms[:, None, :])
    assert 0.8 < scaled.std() < 1.2
