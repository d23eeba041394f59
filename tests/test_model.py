"""Tests of the model (SPEC §1), μ (SPEC §2) and coverage/width (SPEC §2), in float64
against formulas written out independently of shallowflow."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shallowflow import model, observables
from shallowflow.activations import leaky
from shallowflow.config import make_config
from shallowflow.geometry import Geometry
from shallowflow.observables import covered
from shallowflow.start import geometry_of, make_run
from shallowflow.theory.width import coverage_failure_bound, width

DENSE = Geometry("dense")


def _random_problem(seed: int, n: int = 5, d: int = 4, p: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n)
    W = rng.normal(size=(p, d))
    a = rng.normal(size=p)
    return X, y, a, W


def _explicit(X, y, a, W, slope):
    """SPEC §1 written out with loops: L, da/dt, dW/dt and h."""
    n, d = X.shape
    p = a.shape[0]

    def sig(u):
        return u if u > 0 else slope * u

    def dsig(u):
        return 1.0 if u > 0 else slope

    h = np.zeros(n)
    for i in range(n):
        for j in range(p):
            h[i] += a[j] * sig(W[j] @ X[i]) / p
    r = y - h
    loss = np.sum(r**2) / (2 * n)
    da = np.zeros(p)
    dW = np.zeros((p, d))
    for j in range(p):
        for i in range(n):
            u = W[j] @ X[i]
            da[j] += r[i] * sig(u) / n
            dW[j] += (a[j] / n) * r[i] * dsig(u) * X[i]
    return loss, h, da, dW


def _state(a, W):
    return model.State(jnp.asarray(a), jnp.asarray(W))


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_field_is_minus_p_grad_and_matches_componentwise_formulas(seed, slope):
    X, y, a, W = _random_problem(seed)
    p = a.shape[0]
    with jax.enable_x64(True):
        prob = model.Problem(jnp.asarray(X), jnp.asarray(y))
        s = _state(a, W)
        act = leaky(slope)
        fw = model.forward(DENSE, s, prob, act)
        field = model.vector_field(DENSE, s, prob, act)
        grad = jax.grad(lambda st_: model.loss(DENSE, st_, prob, act))(s)
        assert field.a.dtype == jnp.float64
        np.testing.assert_allclose(field.a, -p * grad.a, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(field.v, -p * grad.v, rtol=1e-12, atol=1e-14)

    loss, h, da, dW = _explicit(X, y, a, W, slope)
    np.testing.assert_allclose(fw.loss, loss, rtol=1e-13)
    np.testing.assert_allclose(fw.h, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(field.a, da, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(field.v, dW, rtol=1e-12, atol=1e-14)
    # the same with einsum, vectorised
    u = np.einsum("jd,id->ji", W, X)
    s_u = np.where(u > 0, u, slope * u)
    r = y - np.einsum("j,ji->i", a, s_u) / p
    # da_j is a sum of terms s_u·r of either sign: near zero it is rounding, on the scale
    # of the terms, not of the sum.
    terms = np.abs(s_u).max() * np.abs(r).max()
    atol = 64 * np.finfo(np.float64).eps * terms
    np.testing.assert_allclose(
        field.a, np.einsum("ji,i->j", s_u, r) / X.shape[0], rtol=1e-12, atol=atol
    )
    ds = np.where(u > 0, 1.0, slope)
    dW2 = np.einsum("j,ji,i,id->jd", a, ds, r, X) / X.shape[0]
    np.testing.assert_allclose(field.v, dW2, rtol=1e-12, atol=1e-14)


def test_relu_derivative_at_zero_is_zero():
    """SPEC §1: σ'(0) = 0, so an example on a neuron's boundary moves neither a_j nor w_j."""
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1.0, -1.0])
    W = np.array([[0.0, 1.0], [1.0, 1.0]])  # ⟨w_0, x_0⟩ = 0 exactly
    a = np.array([2.0, 1.0])
    with jax.enable_x64(True):
        f = model.vector_field(DENSE, _state(a, W), model.Problem(jnp.asarray(X), jnp.asarray(y)))
        f = model.State(np.asarray(f.a), np.asarray(f.v))
    _, _, da, dW = _explicit(X, y, a, W, 0.0)
    np.testing.assert_allclose(f.a, da, rtol=1e-14)
    np.testing.assert_allclose(f.v, dW, rtol=1e-14)
    assert f.v[0, 0] == 0.0  # no pull along x_0 for neuron 0


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_balance_is_conserved_by_the_field(slope):
    """Lemma 1: d/dt (a_j² − ‖w_j‖²) = 2 a_j F_a_j − 2 ⟨w_j, F_w_j⟩ = 0 (σ(u) = u σ'(u))."""
    X, y, a, W = _random_problem(7, n=6, d=5, p=8)
    with jax.enable_x64(True):
        prob = model.Problem(jnp.asarray(X), jnp.asarray(y))
        f = model.vector_field(DENSE, _state(a, W), prob, leaky(slope))
        rate = 2 * a * np.asarray(f.a) - 2 * np.sum(W * np.asarray(f.v), axis=1)
    assert np.max(np.abs(rate)) < 1e-13 * (1 + np.max(np.abs(f.a)))


def test_gd_step_changes_balance_by_eta_squared():
    """(a + ηF_a)² − ‖w + ηF_w‖² = a² − ‖w‖² + η²(F_a² − ‖F_w‖²): the first-order
    terms cancel (Lemma 1), so GD drifts by exactly the second-order term per step."""
    X, y, a, W = _random_problem(8, n=7, d=5, p=6)
    with jax.enable_x64(True):
        s, prob = _state(a, W), model.Problem(jnp.asarray(X), jnp.asarray(y))
        f = model.vector_field(DENSE, s, prob)
        fa, fv = np.asarray(f.a), np.asarray(f.v)
        b0 = np.asarray(observables.balance(s))
        for eta in (0.5, 0.05):
            moved = model.State(s.a + eta * f.a, s.v + eta * f.v)
            got = np.asarray(observables.balance(moved)) - b0
            want = eta**2 * (fa**2 - np.sum(fv**2, axis=1))
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
            assert np.max(np.abs(want)) > 1e-6  # the drift is there, and is second order


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("seed", [3, 4])
def test_mu_is_p_grad_sq_over_loss_and_log_loss_decay_rate(seed, slope):
    X, y, a, W = _random_problem(seed)
    p = a.shape[0]
    with jax.enable_x64(True):
        prob = model.Problem(jnp.asarray(X), jnp.asarray(y))
        s, act = _state(a, W), leaky(slope)
        mu = float(observables.mu(DENSE, s, prob, act))
        grad = jax.grad(lambda st_: model.loss(DENSE, st_, prob, act))(s)
        loss = float(model.loss(DENSE, s, prob, act))
        expected = p * float(model.sq_norm(grad)) / loss
        f = model.vector_field(DENSE, s, prob, act)
        h = 1e-6
        ahead = model.State(s.a + h * f.a, s.v + h * f.v)
        behind = model.State(s.a - h * f.a, s.v - h * f.v)
        fd = (
            math.log(float(model.loss(DENSE, behind, prob, act)))
            - math.log(float(model.loss(DENSE, ahead, prob, act)))
        ) / (2 * h)
    assert mu > 0
    np.testing.assert_allclose(mu, expected, rtol=1e-12)
    np.testing.assert_allclose(mu, fd, rtol=1e-6)


def test_orthogonal_mu_bounds_hold_for_random_states():
    """SPEC §2: (2/n) min ‖x_i‖² E_i ≤ μ ≤ (4/n) max ‖x_i‖² E_i on orthogonal data under
    Assumption 1, at any θ (not only along a trajectory)."""
    rng = np.random.default_rng(11)
    n, d, p = 6, 9, 10
    q, _ = np.linalg.qr(rng.normal(size=(d, n)))
    X = rng.uniform(1, 2, n)[:, None] * q.T
    with jax.enable_x64(True):
        for _ in range(20):
            W = rng.normal(size=(p, d)) * rng.uniform(0.1, 1.0)
            a = rng.choice([-1.0, 1.0], p) * (np.linalg.norm(W, axis=1) + rng.exponential(1, p))
            y = rng.normal(size=n) * 2
            s, prob = _state(a, W), model.Problem(jnp.asarray(X), jnp.asarray(y))
            fw = model.forward(DENSE, s, prob)
            lo, hi = observables.orthogonal_bounds(DENSE, s, prob, fw.pre)
            mu = observables.mu(DENSE, s, prob)
            u = W @ X.T
            E = (a**2) @ (u > 0).astype(float) / p
            x2 = np.sum(X**2, axis=1)
            np.testing.assert_allclose(lo, 2 * np.min(x2 * E) / n, rtol=1e-12)
            np.testing.assert_allclose(hi, 4 * np.max(x2 * E) / n, rtol=1e-12)
            assert lo <= mu * (1 + 1e-12) and mu <= hi * (1 + 1e-12)
            # the paper's constants with ‖x_i‖ ∈ [1, 2]
            assert lo >= 2 * np.min(E) / n - 1e-12 and hi <= 16 * np.max(E) / n + 1e-12


def _standard_loss(theta, X, y):
    """L̃(θ̃) with h̃(x) = Σ_j ã_j σ(⟨w̃_j, x⟩) (PyTorch-style scaling), written anew."""
    a, W = theta
    h = jnp.maximum(X @ W.T, 0.0) @ a
    return 0.5 * jnp.mean((y - h) ** 2)


def _rk4(f, y0, dt, steps, every):
    def step(y, _):
        k1 = f(y)
        k2 = f(jax.tree_util.tree_map(lambda u, k: u + 0.5 * dt * k, y, k1))
        k3 = f(jax.tree_util.tree_map(lambda u, k: u + 0.5 * dt * k, y, k2))
        k4 = f(jax.tree_util.tree_map(lambda u, k: u + dt * k, y, k3))
        y = jax.tree_util.tree_map(
            lambda u, a, b, c, e: u + dt / 6 * (a + 2 * b + 2 * c + e), y, k1, k2, k3, k4
        )
        return y, None

    def block(y, _):
        y, _ = jax.lax.scan(step, y, None, length=every)
        return y, y

    _, ys = jax.lax.scan(block, y0, None, length=steps // every)
    return ys


def test_mean_field_and_standard_scaling_give_the_same_trajectory():
    """SPEC §1: θ̃ = θ/√p under plain flow on L̃ equals the mean-field flow dθ/dt = −p∇L."""
    X, y, a, W = _random_problem(5, n=6, d=4, p=9)
    p = a.shape[0]
    with jax.enable_x64(True):
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        prob = model.Problem(Xj, yj)

        def mean_field(s):
            return model.vector_field(DENSE, s, prob)

        grad_std = jax.grad(_standard_loss)

        def standard(theta):
            g = grad_std(theta, Xj, yj)
            return tuple(-x for x in g)

        run = jax.jit(lambda f, y0: _rk4(f, y0, 1e-3, 3000, 500), static_argnums=0)
        ys = run(mean_field, _state(a, W))
        yt = run(standard, (jnp.asarray(a) / math.sqrt(p), jnp.asarray(W) / math.sqrt(p)))
        loss_end = float(model.loss(DENSE, model.State(ys.a[-1], ys.v[-1]), prob))
        loss0 = float(model.loss(DENSE, _state(a, W), prob))
    ya, yv = np.asarray(ys.a), np.asarray(ys.v)
    assert ya.dtype == np.float64
    np.testing.assert_allclose(np.asarray(yt[0]), ya / math.sqrt(p), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(yt[1]), yv / math.sqrt(p), rtol=1e-8, atol=1e-10)
    assert loss_end < 0.5 * loss0  # the trajectory is not trivial


# ---------------------------------------------------------------- width and coverage


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 10**6), eps=st.floats(1e-6, 0.99))
def test_width_is_the_smallest_p_with_union_bound_below_eps(n, eps):
    """p(n, ε) = ⌊log(n/ε)/log(4/3)⌋ + 1: n(3/4)^p < ε ≤ n(3/4)^(p−1)."""
    p = width(n, eps)
    x = math.log(n / eps) / math.log(4 / 3)
    assert p == math.floor(x) + 1
    assert n * 0.75**p < eps * (1 + 1e-9)
    if p > 1:
        assert n * 0.75 ** (p - 1) >= eps * (1 - 1e-9)
    assert coverage_failure_bound(n, p) == min(1.0, n * 0.75**p)


def test_width_values():
    assert width(100, 0.05) == 27
    assert width(1700, 0.05) == 37
    assert width(20, 0.2) == 17


COV_N, COV_D, COV_EPS, COV_R = 20, 10, 0.2, 2000


@pytest.fixture(scope="module")
def coverage_draws():
    """Per-example coverage of R independent draws (sphere data, paper init, p = p(n, ε)),
    and the same with only the first 3 neurons."""
    cfg = make_config(n=COV_N, d=COV_D, eps=COV_EPS)
    geom = geometry_of(cfg)

    def one(key):
        s = make_run(key, cfg)
        small = model.State(s.state.a[:3], s.state.v[:3])
        return covered(geom, s.state, s.prob), covered(geom, small, s.prob)

    keys = jax.random.split(jax.random.key(123), COV_R)
    full, small = jax.jit(jax.vmap(one))(keys)
    return cfg.init.p, np.asarray(full), np.asarray(small)


def test_all_examples_covered_with_probability_at_least_bound(coverage_draws):
    p, full, _ = coverage_draws
    assert p == width(COV_N, COV_EPS)
    frac = full.all(axis=1).mean()
    margin = math.sqrt(math.log(1e6) / (2 * COV_R))  # Hoeffding, one-sided, δ = 1e-6
    assert frac >= 1 - COV_N * 0.75**p - margin
    assert frac >= 1 - COV_EPS - margin
    assert frac < 1.0  # not trivially covered: the bound is nearly tight here


def test_single_example_uncovered_with_probability_three_quarters_power_p(coverage_draws):
    """Signs are symmetric and independent of the (symmetric) first layer, so
    P(i uncovered) = (3/4)^p exactly, here for p = 3 and for p = p(n, ε)."""
    p, full, small = coverage_draws
    for cov, width_ in ((small, 3), (full, p)):
        q = 0.75**width_
        miss = 1.0 - cov[:, 0].mean()
        sd = math.sqrt(q * (1 - q) / COV_R)
        assert abs(miss - q) <= 5 * sd + 1e-12, (width_, miss, q)
        pooled = 1.0 - cov.mean()  # all examples, same marginal probability
        assert abs(pooled - q) <= 5 * sd + 1e-12, (width_, pooled, q)


def test_paper_bounds_are_the_papers_constants_on_a_planted_state():
    """Fig. 6's μ_low = (2/n) min_i E_i and μ_upp = (16/n) max_i E_i (SPEC §5), beside
    the tight (2/n) min ‖x_i‖²E_i and (4/n) max ‖x_i‖²E_i (SPEC §2), on a state whose
    energies are known: orthogonal x_i = s_i e_i, E_i = (1/p) Σ_j a_j² 1[u_ji > 0]."""
    from shallowflow.geometry import Geometry
    from shallowflow.model import Problem, State, forward
    from shallowflow.observables import measure, orthogonal_bounds, paper_bounds

    s = jnp.array([1.0, 1.5, 2.0])  # ‖x_i‖
    a = jnp.array([2.0, -1.0, 3.0, 0.5])
    v = jnp.array([[1.0, -1.0, 0.0], [1.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    prob, state, geom = Problem(s, jnp.array([1.0, -1.0, 1.5])), State(a, v), Geometry("diagonal")
    active = np.asarray(v) > 0
    energy = (np.asarray(a)[:, None] ** 2 * active).sum(0) / 4
    np.testing.assert_allclose(energy, [(4 + 1 + 0.25) / 4, (1 + 0.25) / 4, (9 + 0.25) / 4])
    pre = forward(geom, state, prob).pre
    lo, hi = paper_bounds(state, prob, pre)
    assert float(lo) == pytest.approx(2 / 3 * energy.min(), rel=1e-6)
    assert float(hi) == pytest.approx(16 / 3 * energy.max(), rel=1e-6)
    lo_t, hi_t = orthogonal_bounds(geom, state, prob, pre)
    xe = np.asarray(s) ** 2 * energy
    assert float(lo_t) == pytest.approx(2 / 3 * xe.min(), rel=1e-6)
    assert float(hi_t) == pytest.approx(4 / 3 * xe.max(), rel=1e-6)
    m = measure(geom, state, prob, jnp.zeros(4), jnp.ones(()))
    assert float(m["mu_low"]) == float(lo) and float(m["mu_upp_tight"]) == float(hi_t)
