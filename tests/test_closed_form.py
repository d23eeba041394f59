"""Tests of shallowflow.theory.closed_form (SPEC §4): exact group flow, staircase, rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from shallowflow.errors import ShallowflowInputError
from shallowflow.theory.closed_form import (
    asymptotic_rate,
    group_flow,
    group_loss_curve,
    limit_transition_times,
    rank_one_flow,
    rank_one_loss,
    rate_exponent_prediction,
    staircase,
    staircase_limit,
    staircase_time_scale,
    transition_times,
    transition_widths,
)

ODE = dict(method="DOP853", rtol=1e-12, atol=1e-14)

C = np.array([1.0, 0.5, -0.3, 0.8])
C_HAT = C / np.linalg.norm(C)
S, N = 1.3, 7.0
_OFF = np.array([0.3, -0.5, 0.7, 0.4])

# (b0, v0): aligned/non-aligned × balanced/unbalanced, negative branch, zero starts.
STARTS = {
    "aligned_balanced": (0.1, 0.1 * C_HAT),
    "aligned_delta_pos": (0.3, 0.05 * C_HAT),
    "aligned_delta_neg": (0.02, 0.2 * C_HAT),
    "aligned_delta_very_neg": (0.01, 3.0 * C_HAT),
    "nonaligned_balanced": (0.2, 0.2 * _OFF / np.linalg.norm(_OFF)),
    "nonaligned_unbalanced": (0.05, np.array([0.1, 0.2, -0.1, 0.05])),
    "negative_branch": (-0.2, -0.1 * C_HAT + np.array([0.01, 0.0, 0.02, 0.0])),
    "b0_zero": (0.0, 0.1 * C_HAT),
    "b0_zero_nonaligned": (0.0, np.array([0.1, 0.0, 0.0, 0.2])),
    "zero": (0.0, np.zeros(4)),
}


def _reference(b0, v0, c, s, n, t):
    """solve_ivp of the (b, v) flow of SPEC §4, with the residual r = y − b s v as extra
    state so that the loss keeps its relative accuracy near convergence."""
    y = c * s
    k = len(c)

    def rhs(_, z):
        b, v, r = z[0], z[1 : k + 1], z[k + 1 :]
        db = s * (r @ v) / n
        dv = b * s * r / n
        return np.concatenate([[db], dv, -s * (db * v + b * dv)])

    z0 = np.concatenate([[b0], v0, y - b0 * s * v0])
    sol = solve_ivp(rhs, (0.0, t[-1]), z0, t_eval=t, **ODE)
    assert sol.success
    z = sol.y.T
    return z[:, 0], z[:, 1 : k + 1], (z[:, k + 1 :] ** 2).sum(1) / (2 * n)


def _horizon(b0, v0):
    """A time by which the closed-form loss has dropped by 1e-11 (60 if it never does)."""
    grid = np.geomspace(1.0, 1e4, 200)
    loss = rank_one_loss(b0, v0, C, S, N, np.concatenate([[0.0], grid]))
    done = np.nonzero(loss[1:] < 1e-11 * loss[0])[0]
    return float(grid[done[0]]) if done.size else 60.0


def _raises(param, fn, *args, **kwargs):
    with pytest.raises(ShallowflowInputError) as info:
        fn(*args, **kwargs)
    assert info.value.param == param, str(info.value)


# ---------------------------------------------------------------------------
# rank-one closed form vs numerical integration


@pytest.mark.parametrize("name", sorted(STARTS))
def test_rank_one_matches_ode(name):
    b0, v0 = STARTS[name]
    t = np.linspace(0.0, _horizon(b0, v0), 300)
    b_ref, v_ref, loss_ref = _reference(b0, v0, C, S, N, t)
    b, v = rank_one_flow(b0, v0, C, S, N, t)
    loss = rank_one_loss(b0, v0, C, S, N, t)
    assert b.shape == (300,) and v.shape == (300, 4)
    theta_ref = np.column_stack([b_ref, v_ref])
    theta = np.column_stack([b, v])
    scale = np.maximum(np.linalg.norm(theta_ref, axis=1), 1e-300)
    assert np.max(np.linalg.norm(theta - theta_ref, axis=1) / scale) <= 1e-6
    keep = loss_ref >= 1e-12 * loss_ref[0]  # the reference's own accuracy floor
    assert keep.sum() > 100
    assert np.max(np.abs(loss[keep] - loss_ref[keep]) / loss_ref[keep]) <= 1e-6
    if name != "zero":
        assert loss[-1] < 1e-10 * loss[0]  # the window reaches near-convergence


@pytest.mark.parametrize(("b0", "v0"), [(0.1, [0.3, 0.2]), (0.4, [0.1, -0.2]), (0.0, [0.2, 0.1])])
def test_zero_labels_match_ode(b0, v0):
    c, t = np.zeros(2), np.linspace(0.0, 200.0, 100)
    b_ref, v_ref, loss_ref = _reference(b0, np.array(v0), c, S, N, t)
    b, v = rank_one_flow(b0, v0, c, S, N, t)
    np.testing.assert_allclose(np.column_stack([b, v]), np.column_stack([b_ref, v_ref]), atol=1e-9)
    loss = rank_one_loss(b0, v0, c, S, N, t)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-6, atol=1e-300)


def test_negative_branch_and_fixed_point():
    b0, v0 = STARTS["negative_branch"]
    t = np.array([0.0, 1e3, 1e20 * N])
    b, v = rank_one_flow(b0, v0, C, S, N, t)
    assert np.all(np.isfinite(b)) and np.all(np.isfinite(v))
    assert b[-1] < 0
    np.testing.assert_allclose(b[-1] * v[-1], C, rtol=1e-12, atol=1e-14)
    assert rank_one_loss(b0, v0, C, S, N, t)[-1] == 0.0


@pytest.mark.parametrize("rel", [-1e-15, -1e-13, 0.0, 1e-13, 1e-15])
def test_balanced_up_to_rounding(rel):
    # δ of rounding size, of either sign, must not blow up the residual formula
    t = np.linspace(0.0, 40.0, 50)
    b0, v0 = 0.3, 0.3 * C_HAT
    ref = rank_one_loss(b0, v0, C, S, N, t)
    loss = rank_one_loss(b0, v0 * (1 + rel), C, S, N, t)
    np.testing.assert_allclose(loss, ref, rtol=1e-9)


def test_zero_start_is_a_fixed_point():
    b, v = rank_one_flow(0.0, np.zeros(3), [1.0, 2.0, 3.0], 1.0, 5.0, [0.0, 1.0, 1e30])
    assert np.all(b == 0) and np.all(v == 0)


@pytest.mark.parametrize("name", sorted(STARTS))
def test_balance_is_conserved(name):
    b0, v0 = STARTS[name]
    t = np.concatenate([[0.0], np.geomspace(1e-3, 1e22, 200)])
    b, v = rank_one_flow(b0, v0, C, S, N, t)
    delta = b**2 - (v**2).sum(1)
    scale = b0**2 + v0 @ v0 + np.linalg.norm(C)
    np.testing.assert_allclose(delta, b0**2 - v0 @ v0, rtol=0, atol=1e-12 * scale)


def test_huge_n_and_times_are_finite():
    c = np.array([3.0, -1.0])
    t = np.array([0.0, 1e9, 1e18, 1e30, 1e38])
    b, v = rank_one_flow(1e-3, [1e-3, 0.0], c, 1.0, 1e18, t)
    loss = rank_one_loss(1e-3, [1e-3, 0.0], c, 1.0, 1e18, t)
    assert np.all(np.isfinite(b)) and np.all(np.isfinite(v)) and np.all(np.isfinite(loss))
    assert loss[-1] == 0.0 and loss[0] > 0


# ---------------------------------------------------------------------------
# mean-field network of SPEC §1 on orthogonal data, group initialisation


def _mean_field_reference(y, norms, a0, w0, t):
    """Full mean-field flow (SPEC §1) with x_i = s_i e_i; W[j, i] = ⟨w_j, x_i⟩ / s_i."""
    p, n = w0.shape

    def rhs(_, z):
        a, w = z[:p], z[p:].reshape(p, n)
        pre = w * norms
        act = np.maximum(pre, 0.0)
        r = y - (a @ act) / p
        da = act @ r / n
        dw = (a[:, None] / n) * (r * norms) * (pre > 0)
        return np.concatenate([da, dw.ravel()])

    sol = solve_ivp(rhs, (0.0, t[-1]), np.concatenate([a0, w0.ravel()]), t_eval=t, **ODE)
    assert sol.success
    a, w = sol.y[:p].T, sol.y[p:].T.reshape(len(t), p, n)
    r = y - np.einsum("tj,tji->ti", a, np.maximum(w * norms, 0.0)) / p
    return a, w, (r**2).sum(1) / (2 * n)


def _network(covered_all: bool):
    rng = np.random.default_rng(3)
    groups = [np.array([0, 1, 2]), np.array([3, 4, 5, 6]), np.array([7])]
    signs = [1.0, -1.0, 1.0]
    n = 8 if covered_all else 9  # example 8, if present, belongs to no group
    norms = np.empty(n)
    y = np.empty(n)
    w0 = -rng.uniform(0.1, 0.5, size=(3, n))
    for j, (idx, sg, s) in enumerate(zip(groups, signs, [1.0, 1.5, 2.0], strict=True)):
        norms[idx] = s
        y[idx] = sg * rng.uniform(1.0, 2.0, size=idx.size)
        w0[j, idx] = rng.uniform(0.05, 0.3, size=idx.size)
    if not covered_all:
        norms[8], y[8] = 1.2, 0.7
    a0 = np.array(signs) * (np.linalg.norm(w0, axis=1) + rng.uniform(0.0, 0.5, size=3))
    u0 = np.zeros(n)
    for j, idx in enumerate(groups):
        u0[idx] = w0[j, idx]
    return y, norms, groups, a0, u0, w0


@pytest.mark.parametrize("covered_all", [True, False])
def test_group_flow_matches_mean_field_ode(covered_all):
    y, norms, groups, a0, u0, w0 = _network(covered_all)
    t = np.linspace(0.0, 50.0, 200)
    a_ref, w_ref, loss_ref = _mean_field_reference(y, norms, a0, w0, t)
    loss = group_loss_curve(y, norms, groups, a0, u0, t)
    a, u = group_flow(y, norms, groups, a0, u0, t)
    keep = loss_ref >= 1e-8 * loss_ref[0]
    assert keep.sum() > 50
    assert np.max(np.abs(loss[keep] - loss_ref[keep]) / loss_ref[keep]) <= 1e-6
    assert loss[-1] < 1e-6 * loss[0] if covered_all else loss[-1] > 0
    np.testing.assert_allclose(a, a_ref, rtol=1e-6, atol=1e-9)
    for j, idx in enumerate(groups):
        np.testing.assert_allclose(u[:, idx], w_ref[:, j, idx], rtol=1e-6, atol=1e-9)
        off = np.setdiff1d(np.arange(len(y)), idx)
        assert np.all(w_ref[:, j, off] == w0[j, off])  # inactive coordinates never move


def test_activation_crossing_is_reported():
    # sign(a_j) ≠ sign(y_i): the activation of the example reaches 0 in finite time.
    y, norms, groups, a0, u0 = [1.0, 1.0], [1.0, 1.0], [np.array([0, 1])], [-0.5], [0.2, 0.2]
    group_loss_curve(y, norms, groups, a0, u0, [0.0, 0.01])
    _raises("t", group_loss_curve, y, norms, groups, a0, u0, [0.0, 100.0])


# ---------------------------------------------------------------------------
# staircase (Fig. 2)


def test_staircase_is_the_group_closed_form():
    n, m = 40, np.array([1.0, 2.0])
    for p in (2, 3):
        groups = [np.arange(20), np.arange(20, 40)] + [np.array([], dtype=int)] * (p - 2)
        y = np.repeat(m, 20)
        u0 = np.full(n, 1.0 / math.sqrt(20))  # w_j = ĉ_{G_j}, a_j = 1: b0 = ‖v0‖ = 1/√p
        u = np.linspace(0.0, 1.0, 60)
        t = u * staircase_time_scale(n)
        loss = group_loss_curve(y, np.ones(n), groups, np.ones(p), u0, t)
        np.testing.assert_allclose(staircase(n, m, u, p=p), loss / loss[0], rtol=1e-9, atol=1e-15)


def test_staircase_converges_to_its_limit():
    m = [1.0, 2.0]
    u_star = limit_transition_times(m)
    np.testing.assert_allclose(u_star, math.sqrt(2) / (4 * np.array(m)))
    u = np.array([0.0, 0.05, 0.12, 0.26, 0.5, 0.8, 5.0])  # away from u* ≈ 0.177, 0.354
    limit = staircase_limit(m, u)
    np.testing.assert_allclose(limit, [1.0, 1.0, 1.0, 0.2, 0.0, 0.0, 0.0])
    errors = []
    for n in (1e3, 1e6, 1e12, 1e18):
        ln = staircase(n, m, u)
        assert np.all(np.isfinite(ln)) and ln[0] == 1.0
        assert np.all(np.diff(ln) <= 0)
        errors.append(np.abs(ln - limit)[1:-1])
    errors = np.array(errors)
    assert np.all(np.diff(errors.max(axis=1)) < 0)
    assert np.all(errors[-1] < errors[0])
    assert errors[-1].max() < 0.05


def test_staircase_value_at_the_jump():
    m, p = [1.0, 2.0], 2
    u_star = limit_transition_times(m)
    q = p * np.array(m) / math.sqrt(2)
    lim = staircase_limit(m, u_star, p=p)
    # u_1 = u*(m=1) comes after u_2 = u*(m=2): group 2 is gone, group 1 fully present
    np.testing.assert_allclose(
        lim, [0.2 * (q[0] / (1 + q[0])) ** 2, 0.2 + 0.8 * (q[1] / (1 + q[1])) ** 2]
    )
    np.testing.assert_allclose(staircase(1e300, m, u_star, p=p), lim, rtol=1e-2)


def test_transition_times_and_widths():
    m = np.array([1.0, 2.0])
    for level in (0.1, 0.5, 0.9):
        for n in (1e2, 1e9):
            t = transition_times(n, [1.5], level=level)
            u = t / staircase_time_scale(n)
            np.testing.assert_allclose(staircase(n, [1.5], u), level, rtol=1e-9)
    # a quarter of the loss is left where b² = (‖c‖ + b0²)/2: t = n log(1 + p‖c‖)/(2‖c‖),
    # i.e. SPEC's (n/‖y_G‖) log(p ‖y_G‖), halved, up to O(1/(p‖y_G‖))
    for n in (1e2, 1e18):
        y_norm = m * math.sqrt(n / 2)
        exact = n * np.log1p(2 * y_norm) / (2 * y_norm)
        np.testing.assert_allclose(transition_times(n, m, level=0.25), exact, rtol=1e-12)
        spec = n * np.log(2 * y_norm) / (2 * y_norm)
        assert np.all(np.abs(exact / spec - 1) <= 1.01 / (2 * y_norm * np.log(2 * y_norm)))
    scaled = [transition_times(k, m) / staircase_time_scale(k) for k in (1e6, 1e12, 1e18, 1e100)]
    gaps = [np.max(np.abs(s - limit_transition_times(m))) for s in scaled]
    assert np.all(np.diff(gaps) < 0) and gaps[-1] < 1e-2
    # relative widths shrink like 1/log n
    ns = np.array([1e3, 1e6, 1e12, 1e18, 1e60])
    widths = np.array([transition_widths(k, m) for k in ns])
    assert np.all(np.diff(widths, axis=0) < 0)
    scaled_w = widths * np.log(ns)[:, None]
    assert scaled_w.max() / scaled_w.min() < 1.5
    asymptote = 2 * math.log((0.1**-0.5 - 1) / (0.9**-0.5 - 1))
    np.testing.assert_allclose(transition_widths(1e300, m) * math.log(1e300), asymptote, rtol=0.03)
    slope = np.polyfit(1 / np.log(ns), widths[:, 0], 1)[0]
    assert slope == pytest.approx(asymptote, rel=0.3)


# ---------------------------------------------------------------------------
# asymptotic rate


@pytest.mark.parametrize(
    ("name", "aligned"),
    [
        ("aligned_balanced", True),
        ("aligned_delta_pos", True),
        ("aligned_delta_neg", True),
        ("nonaligned_balanced", False),
        ("nonaligned_unbalanced", False),
        ("negative_branch", False),
    ],
)
def test_asymptotic_rate_matches_closed_form(name, aligned):
    b0, v0 = STARTS[name]
    delta = b0**2 - v0 @ v0
    rate = asymptotic_rate(np.linalg.norm(C * S), S, N, delta=delta, aligned=aligned)
    t0 = 60.0
    while rank_one_loss(b0, v0, C, S, N, [t0])[0] > 1e-40:
        t0 *= 1.5
    h = 1e-3 / rate
    loss = rank_one_loss(b0, v0, C, S, N, [t0 - h, t0 + h])
    measured = -(math.log(loss[1]) - math.log(loss[0])) / (2 * h)
    assert measured == pytest.approx(rate, rel=1e-3)


def test_rate_exponent():
    beta = 0.6
    ns = np.array([1e4, 1e8, 1e12])
    rates = [asymptotic_rate(1.5 * math.sqrt(k**beta), 1.0, k) for k in ns]
    slope = np.polyfit(np.log(ns), np.log(rates), 1)[0]
    assert slope == pytest.approx(rate_exponent_prediction(beta), abs=1e-9)
    assert rate_exponent_prediction(0.0) == -1.0 and rate_exponent_prediction(1.0) == -0.5


# ---------------------------------------------------------------------------
# bad input


def test_bad_input_names_the_parameter():
    t = [0.0, 1.0]
    _raises("c", rank_one_flow, 0.1, [0.1, 0.2], [1.0, 2.0, 3.0], 1.0, 5.0, t)
    _raises("v0", rank_one_flow, 0.1, [[0.1]], [1.0], 1.0, 5.0, t)
    _raises("s", rank_one_flow, 0.1, [0.1, 0.2], [1.0, 2.0], [1.0, 1.0 + 1e-9], 5.0, t)
    _raises("s", rank_one_loss, 0.1, [0.1, 0.2], [1.0, 2.0], [1.0, 1.0, 1.0], 5.0, t)
    _raises("n", rank_one_flow, 0.1, [0.1], [1.0], 1.0, 0.0, t)
    _raises("n", rank_one_loss, 0.1, [0.1], [1.0], 1.0, -3.0, t)
    _raises("t", rank_one_flow, 0.1, [0.1], [1.0], 1.0, 5.0, [-1.0])
    _raises("b0", rank_one_flow, math.nan, [0.1], [1.0], 1.0, 5.0, t)
    _raises("u", staircase, 100, [1.0, 2.0], [-0.1])
    y, norms, groups, a0, u0, _ = _network(True)
    bad_norms = norms.copy()
    bad_norms[0] = 1.1
    _raises("norms", group_loss_curve, y, bad_norms, groups, a0, u0, t)
    _raises("norms", group_flow, y, norms[:-1], groups, a0, u0, t)
    _raises("groups", group_loss_curve, y, norms, groups[:2], a0, u0, t)
    overlap = [groups[0], np.array([2, 3]), groups[2]]
    _raises("groups", group_loss_curve, y, norms, overlap, a0, u0, t)
    _raises("u0", group_loss_curve, y, norms, groups, a0, -u0, t)
    _raises("n", staircase, 0, [1.0, 2.0], [0.1])
    _raises("p", staircase, 100, [1.0, 2.0], [0.1], p=1)
    _raises("magnitudes", staircase_limit, [1.0, -2.0], [0.1])
    _raises("level", transition_times, 100, [1.0], level=1.5)
    _raises("n", asymptotic_rate, 1.0, 1.0, -1.0)
    _raises("beta", rate_exponent_prediction, 2.0)


def test_fixed_point_rate_is_the_late_decay_of_the_group_flow_with_unequal_norms():
    """The rank-one flow of one group with unequal norms, integrated to convergence: its
    late −d/dt log ℓ equals fixed_point_rate; with one norm it is asymptotic_rate."""
    from shallowflow.theory.closed_form import fixed_point_rate

    y, s, n = np.array([1.4, 1.9, 1.1]), np.array([1.0, 1.7, 1.3]), 12.0
    theta0 = np.array([0.9, 0.3, 0.5, 0.2])  # b, v: a generic start, v not along y

    def field(t, th):
        b, v = th[0], th[1:]
        r = y - b * s * v
        return np.concatenate([[np.sum(r * s * v) / n], b * r * s / n])

    def loss(th):
        return 0.5 * np.sum((y - th[0] * s * th[1:]) ** 2) / n

    t = np.array([40.0, 70.0])  # converged, the loss still far above rounding (1e-9 to 1e-15)
    sol = solve_ivp(field, (0, t[-1]), theta0, t_eval=t, **ODE)
    assert 1e-20 < loss(sol.y[:, 1]) < loss(sol.y[:, 0]) < 1e-6
    late = np.log(loss(sol.y[:, 0]) / loss(sol.y[:, 1])) / (t[1] - t[0])
    delta = theta0[0] ** 2 - np.sum(theta0[1:] ** 2)
    assert late == pytest.approx(fixed_point_rate(y, s, delta, n), rel=1e-5)
    common = fixed_point_rate(y, np.full(3, 1.3), delta, n)
    assert common == pytest.approx(asymptotic_rate(np.linalg.norm(y), 1.3, n, delta), rel=1e-12)
    one = fixed_point_rate(y[:1], s[:1], delta, n)
    assert one == pytest.approx(asymptotic_rate(y[0], s[0], n, delta, aligned=True), rel=1e-12)
