"""Tests of shallowflow.theory.smallinit (SPEC §4, §6): the least ‖θ‖² of an interpolator
on orthogonal data against a numerical minimisation, and the escape rates against the
flow integrated from a small start."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

from shallowflow.errors import ShallowflowInputError
from shallowflow.theory.smallinit import escape_rates, min_norm2, min_norm_interpolator

Y = np.array([1.5, -1.2, 1.8, 1.1, -1.9])
S = np.array([1.3, 1.9, 1.0, 1.6, 1.2])
P = 3


def _outputs(a: np.ndarray, omega: np.ndarray, s: np.ndarray) -> np.ndarray:
    """h(x_i) = (1/p) Σ_j a_j s_i max(ω_ji, 0) (SPEC §1 on x_i = s_i e_i)."""
    return (a @ np.maximum(omega, 0.0)) * s / a.size


def test_the_closed_form_interpolator_interpolates_at_the_stated_norm():
    a, omega = min_norm_interpolator(Y, S, P)
    np.testing.assert_allclose(_outputs(a, omega, S), Y, rtol=1e-14)
    norm2 = float(a @ a + np.sum(omega**2))
    d = Y / S
    by_hand = 2 * P * (np.linalg.norm(d[d > 0]) + np.linalg.norm(d[d < 0]))
    assert norm2 == pytest.approx(min_norm2(Y, S, P), rel=1e-14)
    assert min_norm2(Y, S, P) == pytest.approx(by_hand, rel=1e-14)


@pytest.mark.parametrize("p, seed", [(3, 0), (4, 1)])
def test_numerical_minimisation_never_beats_the_closed_form_and_reaches_it(p, seed):
    """SLSQP on min ‖θ‖² subject to h(x_i) = y_i over θ = (a, Ω), from twelve random
    starts. The coordinates are kept ω_ji ≥ 0: a negative one adds to ‖θ‖² and nothing
    to h (σ(u) = 0 for u ≤ 0), so this loses no minimiser, and it keeps the constraints'
    Jacobian from vanishing where ReLU is flat. Every end that interpolates is ≥ the
    closed form (up to the constraint tolerance), and the best equals it to 1e-9."""
    n, bound = Y.size, min_norm2(Y, S, p)
    rng = np.random.default_rng(seed)
    bounds = [(None, None)] * p + [(0.0, None)] * (p * n)

    def residual(x):
        return _outputs(x[:p], x[p:].reshape(p, n), S) - Y

    found = []
    for _ in range(12):
        x0 = np.concatenate([2 * rng.normal(size=p), np.abs(rng.normal(size=p * n))])
        res = minimize(
            lambda x: float(x @ x),
            x0,
            jac=lambda x: 2 * x,
            bounds=bounds,
            constraints=[{"type": "eq", "fun": residual}],
            method="SLSQP",
            options={"maxiter": 2000, "ftol": 1e-15},
        )
        if np.max(np.abs(residual(res.x))) < 1e-10:
            found.append(float(res.x @ res.x))
    assert len(found) >= 6, found
    # an end within 1e-10 of the constraints may undercut by about that much, not more
    assert min(found) >= bound * (1 - 1e-9)
    assert min(found) == pytest.approx(bound, rel=1e-9)


def test_the_minimum_does_not_depend_on_the_width_beyond_the_factor_p():
    assert min_norm2(Y, S, 7) / 7 == pytest.approx(min_norm2(Y, S, 2) / 2, rel=1e-15)
    with pytest.raises(ShallowflowInputError, match="p: must be an integer ≥ 2"):
        min_norm2(Y, S, 1)
    with pytest.raises(ShallowflowInputError, match="norms: must be finite and > 0"):
        min_norm2(Y, -S, 3)


def _field(t, theta, y, s, p):
    """The mean-field flow of SPEC §1 on x_i = s_i e_i, θ = (a, Ω) flattened."""
    a, omega = theta[:p], theta[p:].reshape(p, y.size)
    act = omega > 0
    r = y - (a @ np.where(act, omega, 0.0)) * s / p
    da = (np.where(act, omega, 0.0) * s) @ r / y.size
    domega = a[:, None] * act * (r * s)[None, :] / y.size
    return np.concatenate([da, domega.ravel()])


def test_escape_rates_are_the_growth_rates_of_the_flow_from_a_small_start():
    """From θ(0) = 10⁻¹⁴ θ₀ with each neuron active only on examples of its own sign (so
    no pair meets its surface), log(a_j² + ‖w_j‖²) grows at 2λ_j while θ stays small."""
    p, n = 3, Y.size
    signs = np.array([1.0, -1.0, 1.0])
    active = np.array(
        [[1, 0, 1, 1, 0], [0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=bool
    )  # right-sign sets only
    rng = np.random.default_rng(1)
    omega0 = np.where(active, rng.uniform(0.5, 1.0, (p, n)), 0.0)
    a0 = signs * rng.uniform(1.0, 2.0, p)
    theta0 = 1e-14 * np.concatenate([a0, omega0.ravel()])
    lam = escape_rates(Y, S, active, signs)
    t = np.array([20.0, 30.0])  # past the transient, θ still below 1e-5
    sol = solve_ivp(_field, (0, t[-1]), theta0, t_eval=t, args=(Y, S, p), rtol=1e-11, atol=1e-30)
    a, omega = sol.y[:p], sol.y[p:].reshape(p, n, -1)
    size = a**2 + np.sum(omega**2, axis=1)
    growth = np.log(size[:, 1] / size[:, 0]) / (2 * (t[1] - t[0]))
    assert np.max(np.abs(sol.y)) < 1e-5  # still in the linear phase
    np.testing.assert_allclose(growth, lam, rtol=1e-3)


def test_escape_rates_count_only_active_examples_of_the_neurons_sign():
    active = np.ones((2, Y.size), bool)
    lam = escape_rates(Y, S, active, [1.0, -1.0])
    pos, neg = Y > 0, Y < 0
    want = [np.linalg.norm((Y * S)[pos]) / Y.size, np.linalg.norm((Y * S)[neg]) / Y.size]
    np.testing.assert_allclose(lam, want, rtol=1e-15)
    with pytest.raises(ShallowflowInputError, match="active: must be"):
        escape_rates(Y, S, np.ones((2, 3), bool), [1.0, -1.0])
