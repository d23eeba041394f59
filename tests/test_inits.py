"""Initialisations with independent scales (SPEC §6): ``a_scale`` beside ``w_scale``, the
Assumption-1 columns, and the standard (PyTorch-default) initialisation mapped exactly
into the mean-field parametrisation by θ = √p θ̃."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shallowflow import make_config, simulate
from shallowflow.errors import ShallowflowInputError
from shallowflow.results import runs_table
from shallowflow.start import UserArrays, make_run


def _planted(norms: np.ndarray, a: np.ndarray, d: int = 5, seed: int = 0) -> dict:
    """Run a planted state (rows of W with the given norms, second layer a) for one step;
    return the per-run table's first row."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((norms.size, d))
    W *= (norms / np.linalg.norm(W, axis=1))[:, None]
    cfg = make_config(
        n=6, d=d, p=norms.size, init="file", state_file="<planted>", runs=1, x64=True, horizon=1.0
    )
    res = simulate(cfg, UserArrays(W=W, a=a))
    return runs_table(res).iloc[0].to_dict()


@pytest.mark.parametrize("broken", [None, 0, 2, 3])
def test_assumption1_columns_flip_exactly_where_a_is_below_w(broken):
    """Neuron ``broken`` gets |a_j| = (1 − δ)‖w_j‖, the others (1 + δ)‖w_j‖: the columns
    say exactly that (fraction, margin −δ‖w_j‖, and the all-neurons flag)."""
    norms = np.array([0.5, 1.0, 2.0, 3.0])
    delta = 1e-3
    factor = np.full(4, 1 + delta)
    if broken is not None:
        factor[broken] = 1 - delta
    signs = np.array([1.0, -1.0, 1.0, -1.0])
    row = _planted(norms, signs * factor * norms)
    p = norms.size
    assert row["assumption1"] == (broken is None)
    assert row["assumption1_fraction"] == (p if broken is None else p - 1) / p
    want = delta * norms.min() if broken is None else -delta * norms[broken]
    np.testing.assert_allclose(row["assumption1_margin"], want, rtol=1e-9)


def test_a_scale_multiplies_a_alone_and_breaks_assumption1_neuron_by_neuron():
    """a_scale = s gives a = s·a(1) bit for bit, W unchanged; the fraction of neurons with
    s|a_j| ≥ ‖w_j‖ is what the run reports."""
    base = dict(n=20, d=30, p=40, runs=1, x64=True, horizon=1.0, geometry="dense")
    key = jax.random.fold_in(jax.random.key(0), 0)
    s = 0.6
    cfg = make_config(**base, a_scale=s)
    with jax.enable_x64(True):
        one = make_run(key, make_config(**base))
        scaled = make_run(key, cfg)
    np.testing.assert_array_equal(scaled.state.a, s * np.asarray(one.state.a))
    np.testing.assert_array_equal(scaled.state.v, one.state.v)
    w = np.linalg.norm(np.asarray(one.state.v), axis=1)
    a = s * np.abs(np.asarray(one.state.a))
    assert 0 < np.mean(a >= w) < 1  # the case tests something
    row = runs_table(simulate(cfg)).iloc[0]
    assert row["assumption1_fraction"] == np.mean(a >= w)
    np.testing.assert_allclose(row["assumption1_margin"], np.min(a - w), rtol=1e-12)
    assert not row["assumption1"]


def test_standard_init_draws_pytorch_default_times_root_p():
    """θ̃ = θ/√p has PyTorch's nn.Linear law: W̃ in [−1/√d, 1/√d], ã in [−1/√p, 1/√p]."""
    d, p = 30, 400
    cfg = make_config(n=10, d=d, p=p, init="standard", runs=1, x64=True, geometry="dense")
    with jax.enable_x64(True):
        start = make_run(jax.random.key(3), cfg)
    wt = np.asarray(start.state.v) / np.sqrt(p)
    at = np.asarray(start.state.a) / np.sqrt(p)
    assert np.abs(wt).max() <= 1 / np.sqrt(d) and np.abs(at).max() <= 1 / np.sqrt(p)
    # uniform: the variances are b²/3 (to sampling error, 12 000 and 400 draws)
    np.testing.assert_allclose(wt.var(), 1 / (3 * d), rtol=0.05)
    np.testing.assert_allclose(at.var(), 1 / (3 * p), rtol=0.25)


def test_standard_init_equals_plain_gd_in_the_standard_parametrisation():
    """A network h̃ = Σ_j ã_j σ(⟨w̃_j, x⟩) trained by plain GD on (1/(2n)) Σ (y − h̃)² with
    step η equals our GD run under θ = √p θ̃ (inits.standard_a), 200 steps, float64."""
    n, d, p, lr, steps = 12, 8, 7, 0.5, 200
    knobs = dict(n=n, d=d, p=p, init="standard", runs=1, x64=True, geometry="dense")
    cfg = make_config(**knobs, lr=lr, horizon=steps * lr, stop_loss=0.0, keep_state=True)
    with jax.enable_x64(True):
        start = make_run(jax.random.fold_in(jax.random.key(cfg.run.seed), 0), cfg)
        X, y = start.prob.z, start.prob.y
        root = jnp.sqrt(float(p))
        theta = (start.state.a / root, start.state.v / root)

        def loss(th):
            h = jnp.maximum(X @ th[1].T, 0.0) @ th[0]
            return 0.5 * jnp.mean((y - h) ** 2)

        grad = jax.jit(jax.grad(loss))
        for _ in range(steps):
            g = grad(theta)
            theta = (theta[0] - lr * g[0], theta[1] - lr * g[1])
        res = simulate(cfg)
    assert int(res.final["steps"][0]) == steps
    np.testing.assert_allclose(res.states["a"][0] / np.sqrt(p), theta[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.states["W"][0] / np.sqrt(p), theta[1], rtol=0, atol=1e-12)
    assert np.abs(np.asarray(theta[0] - start.state.a / root)).max() > 1e-3  # it trained


def test_standard_init_refuses_a_gaussian_first_layer():
    with pytest.raises(ShallowflowInputError, match="w_law: 'standard' draws W"):
        make_config(init="standard", w_law="gaussian")
