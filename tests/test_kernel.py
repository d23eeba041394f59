"""Tests of the tangent kernel and the asymptotic rate μ_∞ = 2 λ_min(K) (kernel.py), in
float64 against autodiff Jacobians, dense NumPy eigensolves and the exact flow's tail."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shallowflow import model, observables
from shallowflow.activations import leaky
from shallowflow.config import make_config
from shallowflow.engine import simulate
from shallowflow.geometry import Geometry, to_working
from shallowflow.kernel import lowrank_min_eig, mu_inf_kernel, tangent_kernel
from shallowflow.start import geometry_of, make_run

DIAG = Geometry("diagonal")


def _random(seed: int, kind: str, n: int = 7, d: int = 9, p: int = 5):
    """A random state and problem in working coordinates (NumPy arrays)."""
    rng = np.random.default_rng(seed)
    if kind == "diagonal":
        q, _ = np.linalg.qr(rng.normal(size=(d, n)))
        X = rng.uniform(1, 2, n)[:, None] * q.T
    else:
        X = rng.normal(size=(n, d))
    W = rng.normal(size=(p, d))
    a = rng.normal(size=p)
    y = rng.normal(size=n)
    with jax.enable_x64(True):
        z, v, _ = to_working(kind, jnp.asarray(X), jnp.asarray(W))
    return np.array(z), np.array(v), a, y


def _jacobian_kernel(geom: Geometry, a, v, z, y, slope: float) -> np.ndarray:
    """(p/n) J Jᵀ with J = ∂h(θ)/∂θ, θ = (a, v), by autodiff in float64."""

    def h(a_, v_):
        return model.forward(geom, model.State(a_, v_), model.Problem(z, y), leaky(slope)).h

    with jax.enable_x64(True):
        ja, jv = jax.jacfwd(h, argnums=(0, 1))(jnp.asarray(a), jnp.asarray(v))
    n, p = len(y), len(a)
    J = np.concatenate([np.asarray(ja), np.asarray(jv).reshape(n, -1)], axis=1)
    return (p / n) * J @ J.T


def _reference_mu(k: np.ndarray) -> float:
    """2 λ_min of K on the examples with K_ii > 0, by a dense NumPy eigvalsh."""
    moving = np.diag(k) > 0
    return 2 * np.linalg.eigvalsh(k[np.ix_(moving, moving)])[0]


def kernel_error(seed: int, kind: str, slope: float) -> float:
    """Largest |K − (p/n) J Jᵀ| relative to max |K|."""
    z, v, a, y = _random(seed, kind)
    with jax.enable_x64(True):
        geom = Geometry(kind)
        state, prob = model.State(jnp.asarray(a), jnp.asarray(v)), model.Problem(z, y)
        k = np.asarray(tangent_kernel(geom, state, prob, leaky(slope)))
        ref = _jacobian_kernel(geom, a, v, z, y, slope)
        # −d/dt log L = p‖∇L‖²/L = 2 rᵀKr/|r|² at any state (off sliding surfaces)
        r = np.asarray(model.forward(geom, state, prob, leaky(slope)).r)
        mu = float(observables.mu(geom, state, prob, leaky(slope)))
    assert abs(2 * r @ k @ r / (r @ r) - mu) <= 1e-12 * mu
    return float(np.max(np.abs(k - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("slope", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["dense", "reduced", "diagonal"])
def test_tangent_kernel_is_p_over_n_jacobian_gram(kind, slope):
    for seed in range(2):
        assert kernel_error(seed, kind, slope) <= 1e-12


def _diagonal_state(seed: int, n: int = 60, p: int = 8, frozen: int = 0, zeros: int = 0):
    """Orthogonal data (z = norms), a random state; ``frozen`` examples active under no
    neuron, ``zeros`` pre-activations exactly 0 among the active ones."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(1, 2, n)
    v = rng.normal(size=(p, n))
    a = rng.choice([-1.0, 1.0], p) * rng.uniform(0.5, 2.0, p)
    v[:, :frozen] = -np.abs(v[:, :frozen])
    pos = np.argwhere(v[:, frozen:] > 0)[:zeros]
    v[pos[:, 0], pos[:, 1] + frozen] = 0.0
    return z, v, a, rng.normal(size=n)


def mu_error(geom: Geometry, z, v, a, y, slope: float = 0.0) -> float:
    """|mu_inf_kernel − 2 λ_min(dense NumPy, moving examples)| relative."""
    with jax.enable_x64(True):
        state, prob = model.State(jnp.asarray(a), jnp.asarray(v)), model.Problem(z, y)
        got = float(jax.jit(mu_inf_kernel, static_argnums=(0, 3))(geom, state, prob, leaky(slope)))
    ref = _reference_mu(_jacobian_kernel(geom, a, v, z, y, slope))
    return abs(got - ref) / ref


STRUCTURED_CASES = {
    "random": dict(seed=0),
    "frozen and zeros": dict(seed=1, frozen=5, zeros=12),
    "small start": dict(seed=2, frozen=3, zeros=4, scale=0.01),  # K nearly diagonal
    "large coupling": dict(seed=3, zeros=6, scale=10.0),
    "duplicate": dict(seed=4, duplicate=True),  # an eigenvalue exactly equal to a c_i
}


def structured_case(name: str):
    case = dict(STRUCTURED_CASES[name])
    scale, dup = case.pop("scale", 1.0), case.pop("duplicate", False)
    z, v, a, y = _diagonal_state(**case)
    v = v * scale
    if dup:  # example 1 copies example 0: e_0 − e_1 is an eigenvector, at eigenvalue c_0
        z[1], v[:, 1] = z[0], v[:, 0]
        v[:, 0] *= 1e-3 / np.max(np.abs(v[:, 0]))
        v[:, 1] = v[:, 0]
    return z, v, a, y


@pytest.mark.parametrize("slope", [0.0, 0.2])
@pytest.mark.parametrize("name", list(STRUCTURED_CASES))
def test_structured_mu_matches_dense_eigensolve(name, slope):
    z, v, a, y = structured_case(name)
    assert mu_error(DIAG, z, v, a, y, slope) <= 1e-10


@pytest.mark.parametrize("kind", ["dense", "reduced"])
def test_dense_mu_matches_numpy_on_moving_examples(kind):
    z, v, a, y = _random(5, kind, n=12, d=15, p=6)
    # Examples 0 and 1 on the negative side of every neuron (v_j's first coordinate
    # positive, theirs negative and alone): frozen residuals, left out of the minimum.
    v[:, 0] = np.abs(v[:, 0]) + 3.0
    z[:2] = 0.0
    z[:2, 0] = -1.0, -1.5
    k = _jacobian_kernel(Geometry(kind), a, v, z, y, 0.0)
    assert np.all(np.diag(k)[:2] == 0) and np.sum(np.diag(k) > 0) >= 6
    assert mu_error(Geometry(kind), z, v, a, y) <= 1e-10


def _pad(z, v, a, y, big_n: int, big_p: int, diagonal: bool):
    n, p = len(y), len(a)
    zp = np.zeros((big_n,) + z.shape[1:])
    zp[:n] = z
    vp = np.zeros((big_p, big_n if diagonal else v.shape[1]))
    vp[:p, : v.shape[1]] = v
    return (
        zp,
        vp,
        np.concatenate([a, np.zeros(big_p - p)]),
        np.concatenate([y, np.zeros(big_n - n)]),
    )


@pytest.mark.parametrize("kind", ["dense", "diagonal"])
def test_padded_equals_unpadded(kind):
    if kind == "diagonal":
        z, v, a, y = structured_case("frozen and zeros")
    else:
        z, v, a, y = _random(6, kind, n=10, d=8, p=6)
    zp, vp, ap, yp = _pad(z, v, a, y, len(y) + 7, len(a) + 3, kind == "diagonal")
    geom = Geometry(kind)
    with jax.enable_x64(True):
        fn = jax.jit(mu_inf_kernel, static_argnums=0)
        alone = float(fn(geom, model.State(a, v), model.Problem(z, y)))
        sizes = jnp.asarray(len(y)), jnp.asarray(len(a))  # traced, as in the engine
        padded_prob = model.Problem(zp, yp, *sizes)
        padded = float(fn(geom, model.State(ap, vp), padded_prob))
        k = np.asarray(tangent_kernel(geom, model.State(ap, vp), padded_prob))
        k0 = np.asarray(tangent_kernel(geom, model.State(a, v), model.Problem(z, y)))
    n = len(y)
    np.testing.assert_allclose(k[:n, :n], k0, rtol=1e-13, atol=1e-16)
    assert np.all(k[n:] == 0) and np.all(k[:, n:] == 0)
    assert abs(padded - alone) <= 1e-12 * alone


@pytest.mark.parametrize("kind", ["dense", "diagonal"])
def test_vmap_over_states_and_float32(kind):
    if kind == "diagonal":
        cases = [structured_case(c) for c in ("random", "frozen and zeros", "large coupling")]
    else:
        cases = [_random(s, kind, n=10, d=8, p=6) for s in (7, 8, 9)]
    geom = Geometry(kind)
    with jax.enable_x64(True):
        z, v, a, y = (np.stack(x) for x in zip(*cases, strict=True))

        def one(a_, v_, z_, y_):
            return mu_inf_kernel(geom, model.State(a_, v_), model.Problem(z_, y_))

        batched = np.asarray(jax.jit(jax.vmap(one))(a, v, z, y))
        single = np.array([float(one(c[2], c[1], c[0], c[3])) for c in cases])
        f32 = np.asarray(jax.vmap(one)(*(x.astype(np.float32) for x in (a, v, z, y))))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-12)
    np.testing.assert_allclose(f32, single, rtol=2e-4)


def test_lowrank_min_eig_brackets_and_edge_cases():
    """Diagonal plus rank q against eigvalsh, with a masked row: first a decoupled row
    (U_i = 0) holding the smallest c_i, so λ_min = c_min exactly, the bracket's lower
    end; then the same row coupled."""
    rng = np.random.default_rng(3)
    c = rng.uniform(0.5, 2.0, 40)
    u = rng.normal(size=(40, 3))
    mask = np.ones(40, bool)
    mask[5] = False
    u[5] = 0.0
    u[7], c[7] = 0.0, 0.1  # decoupled, the smallest c
    with jax.enable_x64(True):
        got = float(lowrank_min_eig(jnp.asarray(c), jnp.asarray(u), jnp.asarray(mask)))
        a = np.diag(c) + u @ u.T
        ref = np.linalg.eigvalsh(a[np.ix_(mask, mask)])[0]
        assert abs(got - ref) <= 1e-13 * ref
        u[7] = 1.0
        got = float(lowrank_min_eig(jnp.asarray(c), jnp.asarray(u), jnp.asarray(mask)))
        a = np.diag(c) + u @ u.T
        ref = np.linalg.eigvalsh(a[np.ix_(mask, mask)])[0]
        assert abs(got - ref) <= 1e-12 * ref


# -------------------------------------------------------------------------- the tail rate

# The exact flow to a tiny loss on orthogonal data (Fig. 6's start: W scaled by 0.01 after
# drawing a, redrawn until covered). The stop is 1e-24·L(0), not 1e-30·L(0): at
# L = 1e-30 the residuals r_i = y_i − h(x_i) ~ 7e-15 are ~30 ulps of y_i ~ 1.5, and the
# rounding of y − h (≈ 1 ulp per example) is a few % of |r|²; its components lie off
# K's bottom eigenvector, so the measured −d/dt log L is biased up by 15-20% there
# (measured with n = 24, seed 1). At 1e-24 rounding is 1e-6 of |r|² and the rate has
# converged to 0.2% (the slowest run has an eigen-gap of 1.6%).
TAIL_ORTHOGONAL = dict(
    data="orthogonal",
    n=24,
    d=24,
    w_scale=0.01,
    require_coverage=True,
    solver="flow",
    rtol=1e-10,
    atol=1e-14,
    x64=True,
    keep_state=True,
    record=3,
    runs=3,
    seed=1,
    horizon=5000.0,
)
# Sphere data with n < d under the flow. The run is one whose limit has no pair on an
# activation surface: a pair sliding at the limit constrains the flow (dv_j projected off
# the sliding x_i), and the σ'(0) = 0 kernel then overestimates the rate (run 2 of this
# seed, with runs=3: 0.7316 against a measured 0.7249; see kernel.py's module doc).
TAIL_SPHERE = dict(
    data="sphere",
    n=12,
    d=40,
    p=30,
    solver="flow",
    rtol=1e-10,
    atol=1e-14,
    x64=True,
    keep_state=True,
    record=3,
    runs=1,
    seed=1,
    horizon=5000.0,
)
TAIL_DROP = 1e-24


def tail_errors(knobs: dict) -> np.ndarray:
    """(final μ − mu_inf_kernel) / mu_inf_kernel per run, the flow stopped at
    TAIL_DROP·L(0) (the smallest L(0) of the runs)."""
    cfg = make_config(**knobs)
    geom = geometry_of(cfg)
    key = jax.random.key(cfg.run.seed)
    with jax.enable_x64(True):
        draws = [jax.random.fold_in(key, r) for r in range(cfg.run.runs)]
        starts = [make_run(k, cfg, keep=True) for k in draws]
        loss0 = min(float(model.loss(geom, s.state, s.prob)) for s in starts)
    res = simulate(make_config(**knobs, stop_loss=TAIL_DROP * loss0))
    assert np.all(res.final["loss"] <= TAIL_DROP * loss0 * 1.01)
    errors = []
    with jax.enable_x64(True):
        for r, start in enumerate(starts):
            v = jnp.asarray(res.states["W"][r]) @ start.lift.frame  # working coordinates
            state = model.State(jnp.asarray(res.states["a"][r]), v)
            if not geom.diagonal:  # the premise: no pair held on a surface (see above)
                fw = model.forward(geom, state, start.prob)
                assert not np.any(observables.on_surface(geom, state, start.prob, fw).pre == 0)
            mu_inf = float(mu_inf_kernel(geom, state, start.prob))
            errors.append((res.final["mu"][r] - mu_inf) / mu_inf)
    return np.array(errors)


@pytest.mark.parametrize(
    "knobs",
    [TAIL_ORTHOGONAL, pytest.param(TAIL_SPHERE, marks=pytest.mark.slow)],  # a 2nd compile
    ids=["orthogonal", "sphere"],
)
def test_flow_tail_rate_converges_to_kernel_rate(knobs):
    """The flow's −d/dt log L at the stop is within 1% of 2 λ_min(K), and above it:
    2 rᵀKr/|r|² ≥ 2 λ_min (up to the rounding of r)."""
    errors = tail_errors(knobs)
    assert np.all((errors <= 0.01) & (errors >= -1e-6)), errors
