"""Held-out data and the norm observables (SPEC §6): the test loss is exact in every
geometry (a teacher started at itself has test loss 0; padded runs equal lone runs),
orthogonal test points are orthogonal to the training set, and the norms are read from
the states."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from shallowflow import data as datagen
from shallowflow import heldout, make_config, simulate
from shallowflow.api import load_user, run_simulation
from shallowflow.engine import plan, simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.io import save_data
from shallowflow.start import UserArrays, make_run

X64 = float(np.finfo(np.float64).eps)


def _teacher(seed: int, d: int, k: int):
    """The teacher of run 0 of a cell with this seed (start.py: labels from the second of
    the run key's four), as the student's θ: w_j = w*_j, a_j = p a*_j/√k with p = k."""
    key = jax.random.fold_in(jax.random.key(seed), 0)
    with jax.enable_x64(True):
        a, w = datagen.teacher(jax.random.split(key, 4)[1], d, k, np.float64)
    return np.asarray(w), np.sqrt(k) * np.asarray(a)


def _final(**knobs) -> dict:
    knobs, user = load_user(knobs)
    return simulate(make_config(**knobs), user).final


@pytest.mark.parametrize("geometry", ["dense", "reduced"])
def test_a_student_started_at_its_teacher_has_test_loss_zero(tmp_path, geometry):
    """Teacher labels, student of the teacher's width started at the teacher: the
    training and test losses are 0 (to rounding of the labels, |y| ≲ 10), for drawn
    held-out points and for a user file without labels (the teacher labels it)."""
    n, d, k, seed = 10, 12, 4, 5
    W, a = _teacher(seed, d, k)
    state = tmp_path / "teacher.npz"
    np.savez(state, W=W, a=a)
    knobs = dict(
        n=n, d=d, labels="teacher", teacher_width=k, seed=seed, runs=1, x64=True,
        horizon=3.0, geometry=geometry, state_file=str(state),
    )  # fmt: skip
    drawn = _final(test_n=7, **knobs)
    assert drawn["loss"].max() <= 100 * X64
    assert drawn["test_loss"].max() <= 100 * X64
    rng = np.random.default_rng(0)
    save_data(tmp_path / "test.npz", rng.standard_normal((9, d)))
    from_file = _final(test_data=str(tmp_path / "test.npz"), **knobs)
    assert from_file["test_loss"].max() <= 100 * X64
    # the check can fail: the same file with the teacher's labels shifted by 0.1
    Xt = np.load(tmp_path / "test.npz")["X"]
    with jax.enable_x64(True):
        yt = datagen.teach(a / np.sqrt(k), W @ Xt.T) + 0.1
    save_data(tmp_path / "shifted.npz", Xt, np.asarray(yt))
    shifted = _final(test_data=str(tmp_path / "shifted.npz"), **knobs)
    np.testing.assert_allclose(shifted["test_loss"], 0.5 * 0.1**2, rtol=1e-12)


@pytest.mark.parametrize("law", ["orthogonal", "correlated"])
def test_orthogonal_test_points_are_orthogonal_to_the_training_set(law):
    """Orthogonal data: test points ρ_k e_{n+k}, orthogonal to the training points and
    to each other. Correlated data: every pair, training or test, has correlation ρ."""
    n, d, t, rho = 6, 15, 5, 0.3
    key = jax.random.key(1)
    kx, kt = jax.random.split(key)
    with jax.enable_x64(True):
        X = np.asarray(datagen.generate(law, kx, n, d, rho, np.float64, (n + 2, d + 3)))
        Xt = np.asarray(
            heldout.explicit_points(kt, law, n, d, t, rho, np.float64, (t + 1, d + 3), (kx, n + 2))
        )
    X, Xt = X[:n], Xt[:t]
    assert np.all(Xt[:, d:] == 0) and np.all(X[:, d:] == 0)
    both = np.concatenate([X, Xt])
    norms = np.linalg.norm(both, axis=1)
    assert np.all((norms >= 1) & (norms <= 2))
    cos = both @ both.T / np.outer(norms, norms)
    want = np.where(np.eye(n + t, dtype=bool), 1.0, 0.0 if law == "orthogonal" else rho)
    np.testing.assert_allclose(cos, want, rtol=0, atol=64 * X64)


def test_orthogonal_test_points_have_no_working_coordinates():
    """In the diagonal geometry the test points lie off the training span: z = 0, and
    their pre-activations ⟨w_j, x_k⟩ = ρ_k W[j, n+k] are all in the constant c."""
    cfg = make_config(n=6, d=20, p=5, data="orthogonal", test_n=4, runs=1, x64=True)
    assert cfg.run.geometry == "diagonal"
    with jax.enable_x64(True):
        start = make_run(jax.random.key(2), cfg)
    assert np.all(np.asarray(start.held.z) == 0)
    assert np.abs(np.asarray(start.held.c)).min() > 0


CELLS = {
    "dense": dict(geometry="dense"),
    "reduced": dict(),
    "diagonal": dict(data="orthogonal"),
    "implicit": dict(init="gaussian"),
}


@pytest.mark.parametrize("geometry", list(CELLS))
def test_a_padded_run_equals_the_lone_run(geometry):
    """Two cells of different n, d, p and test_n in one bucket (padded to the larger)
    give the test loss and norms of each cell alone."""
    base = dict(runs=2, x64=True, horizon=15.0, stop_loss=0.0, lr=0.5, **CELLS[geometry])
    small = make_config(n=8, d=30, p=6, test_n=3, **base)
    big = make_config(n=11, d=34, p=7, test_n=5, **base)
    assert small.run.geometry == geometry
    buckets = plan([small, big])
    assert buckets[0] == buckets[1]  # one program, padded
    together = simulate_many([small, big], buckets=buckets)
    alone = simulate(small)
    for name in ("test_loss", "theta_norm2", "loss"):
        got, want = together[0].records[name], alone.records[name]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=name)
    np.testing.assert_array_equal(
        together[0].records["grown_neurons"], alone.records["grown_neurons"]
    )


def test_norms_are_the_states_and_small_starts_grow():
    """theta_norm2 is Σ_j a_j² + ‖w_j‖² of the kept states; from a small start (both
    layers × 0.02) on orthogonal data some neurons grow tenfold, and grown_neurons counts
    exactly those."""
    cfg = make_config(
        n=8, d=20, p=6, data="orthogonal", w_scale=0.02, a_scale=0.02, runs=2, x64=True,
        solver="gd", lr=0.5, horizon=400.0, keep_state=True, geometry="dense",
    )  # fmt: skip
    res = simulate(cfg)
    with jax.enable_x64(True):
        starts = [
            make_run(jax.random.fold_in(jax.random.key(cfg.run.seed), r), cfg) for r in (0, 1)
        ]
    for r, start in enumerate(starts):
        n0 = np.asarray(start.state.a) ** 2 + np.sum(np.asarray(start.state.v) ** 2, 1)
        a, W = res.states["a"][r], res.states["W"][r]
        n2 = a**2 + np.sum(W**2, 1)
        np.testing.assert_allclose(res.final["theta_norm2"][r], n2.sum(), rtol=1e-12)
        np.testing.assert_allclose(res.records["theta_norm2"][r, 0], n0.sum(), rtol=1e-12)
        assert res.final["grown_neurons"][r] == np.sum(n2 >= 100 * n0)
    assert res.final["grown_neurons"].max() > 0  # the case tests something


@pytest.mark.parametrize(
    "knobs, match",
    [
        (dict(data="orthogonal", n=10, d=12, test_n=3), "test_n: orthogonal test points"),
        (dict(data="correlated", rho=0.1, n=10, d=13, test_n=3), "n \\+ 1 \\+ test_n <= d"),
        (
            dict(init="gaussian", n=10, d=12, test_n=3, geometry="implicit"),
            "test_n: the implicit geometry needs n \\+ test_n <= d",
        ),
        (dict(data="file", data_file="x.npz", test_n=3), "test_n: draws from a law"),
        (dict(test_data="t.npz"), "test_n: read from the --test-data file"),
        (dict(test_n=-1), "test_n"),
        (dict(a_scale=0.0), "a_scale"),
    ],
)
def test_bad_held_out_knobs_are_refused_before_computing(knobs, match):
    with pytest.raises(ShallowflowInputError, match=match):
        make_config(**knobs)


def test_auto_geometry_leaves_implicit_when_the_test_points_do_not_fit():
    cfg = make_config(init="gaussian", n=10, d=12, test_n=3)
    assert cfg.run.geometry == "reduced"
    assert make_config(init="gaussian", n=10, d=14, test_n=3).run.geometry == "implicit"


def test_a_test_file_is_checked_at_the_edge(tmp_path):
    """Its columns must be d, and without y only a teacher can label it; nothing is
    written when it is refused."""
    save_data(tmp_path / "t.npz", np.ones((3, 5)))
    with pytest.raises(ShallowflowInputError, match="test_data: X has 5 columns"):
        run_simulation(tmp_path / "a", d=6, n=4, test_data=str(tmp_path / "t.npz"))
    with pytest.raises(ShallowflowInputError, match="test_data: the file has no y"):
        run_simulation(tmp_path / "b", d=5, n=4, test_data=str(tmp_path / "t.npz"))
    with pytest.raises(ShallowflowInputError, match="test_data: the implicit geometry"):
        run_simulation(
            tmp_path / "c", d=5, n=4, labels="teacher", init="gaussian", geometry="implicit",
            test_data=str(tmp_path / "t.npz"),
        )  # fmt: skip
    assert not any((tmp_path / x).exists() for x in "abc")


def test_user_test_data_uses_its_labels():
    """With y in the file, the test loss is (1/(2N)) Σ (y − h)² of those labels: at θ(0)
    with a = 0 it is (1/(2N)) Σ y²."""
    n, d = 5, 4
    rng = np.random.default_rng(1)
    Xt, yt = rng.standard_normal((3, d)), rng.standard_normal(3)
    W, a = rng.standard_normal((2, d)), np.zeros(2)
    cfg = make_config(
        n=n, d=d, p=2, init="file", state_file="s", test_data="t", test_n=3, runs=1,
        x64=True, horizon=1.0, geometry="dense",
    )  # fmt: skip
    res = simulate(cfg, UserArrays(W=W, a=a, Xt=Xt, yt=yt))
    np.testing.assert_allclose(res.records["test_loss"][0, 0], 0.5 * np.mean(yt**2), rtol=1e-14)
