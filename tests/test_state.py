"""Final states in the user's coordinates, and runs continued from them (issue 17, §2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shallowflow import make_config, simulate
from shallowflow.api import run_simulation
from shallowflow.errors import ShallowflowInputError
from shallowflow.io import load_state, save_state

# GD, float64, no stop (stop loss 0): T1 steps, then T2 more from the kept state.
BASE = dict(n=12, p=8, runs=2, seed=3, x64=True, stop_loss=0.0, record=5, keep_state=True)
T1, T2 = 30, 20


def _state(out):
    with np.load(out / "state.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize(("geometry", "d"), [("dense", 6), ("reduced", 30), ("diagonal", 20)])
def test_continuing_a_kept_state_equals_one_long_run(tmp_path, geometry, d):
    """T1 steps, then T2 steps from the saved W, a on the same data (same seed): the
    state and the loss of one run of T1 + T2 steps, to 1e-12 in float64."""
    data = "orthogonal" if geometry == "diagonal" else "sphere"
    knobs = BASE | dict(d=d, geometry=geometry, data=data)
    run_simulation(tmp_path / "first", horizon=float(T1), **knobs)
    first = _state(tmp_path / "first")
    assert set(first) == {"W", "a"}
    assert first["W"].shape == (2, 8, d) and first["a"].shape == (2, 8)
    state = str(tmp_path / "first" / "state.npz")
    rest = {k: v for k, v in knobs.items() if k != "runs"}  # the file's runs
    run_simulation(tmp_path / "then", horizon=float(T2), state_file=state, **rest)
    run_simulation(tmp_path / "long", horizon=float(T1 + T2), **knobs)
    then, long = _state(tmp_path / "then"), _state(tmp_path / "long")
    assert not np.allclose(first["W"], long["W"], atol=1e-6)  # the second leg moved it
    for k in ("W", "a"):
        np.testing.assert_allclose(then[k], long[k], rtol=0, atol=1e-12 * np.abs(long[k]).max())
    # The loss, on the scale of L(0): near interpolation it is a sum of squares of small
    # residuals, each a difference of O(1) terms, so its rounding is relative to L(0).
    tables = [pd.read_parquet(tmp_path / f / "final.parquet") for f in ("then", "long")]
    scale = tables[1]["loss0"].max()
    np.testing.assert_allclose(
        tables[0]["final_loss"], tables[1]["final_loss"], rtol=0, atol=1e-12 * scale
    )


def test_the_api_returns_the_saved_arrays(tmp_path):
    """``simulate(cfg).states`` holds what state.npz holds: W (R, p, d), a (R, p)."""
    knobs = BASE | dict(d=30, horizon=5.0)
    res = simulate(make_config(**knobs))
    run_simulation(tmp_path, **knobs)
    saved = _state(tmp_path)
    assert set(res.states) == {"W", "a"}
    for k in ("W", "a"):
        np.testing.assert_array_equal(res.states[k], saved[k])


def test_state_run_picks_one_run_and_is_checked(tmp_path):
    W = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4) + 1.0
    a = np.arange(6, dtype=float).reshape(2, 3) + 1.0
    path = tmp_path / "s.npz"
    np.savez(path, W=W, a=a)
    W1, a1 = load_state(path, 1)
    np.testing.assert_array_equal(W1, W[1])
    np.testing.assert_array_equal(a1, a[1])
    Ws, _ = load_state(path)
    assert Ws.shape == (2, 3, 4)
    with pytest.raises(ShallowflowInputError, match=r"state_run: must be in 0\.\.1 .* got 2"):
        load_state(path, 2)
    single = tmp_path / "one.npz"
    save_state(single, W[0], a[0])
    with pytest.raises(ShallowflowInputError, match="state_run: must be 0 for a single-run"):
        load_state(single, 1)
    with pytest.raises(ShallowflowInputError, match=r"runs: --runs 5 differs .* 2 runs"):
        run_simulation(None, d=4, n=5, runs=5, state_file=str(path), horizon=2.0)


def test_every_run_starts_from_state_run_k(tmp_path):
    """--state-run K: every run starts from run K's state (a at step 0 is a(0))."""
    knobs = BASE | dict(d=30, horizon=4.0)
    run_simulation(tmp_path / "first", **knobs)
    first = _state(tmp_path / "first")
    cfg_knobs = knobs | dict(horizon=1.0, keep_state=False, init="file", p=8)
    cfg_knobs |= dict(state_file=str(tmp_path / "first" / "state.npz"), state_run=1)
    from shallowflow.api import load_user

    loaded, user = load_user(cfg_knobs)
    np.testing.assert_array_equal(user.W, first["W"][1])
    assert loaded["runs"] == 2  # --runs as given: each run starts from run 1


def test_implicit_states_say_what_they_hold_and_are_refused_as_starts(tmp_path):
    knobs = BASE | dict(d=10**6, n=6, p=5, init="gaussian", horizon=3.0, x64=False)
    res = simulate(make_config(**knobs))
    assert res.cfg.run.geometry == "implicit"
    assert set(res.states) == {"a", "V", "off2"}
    assert res.states["V"].shape == (2, 5, 6) and res.states["off2"].shape == (2, 5)
    path = tmp_path / "state.npz"
    np.savez(path, **res.states)
    with pytest.raises(ShallowflowInputError, match="state: .* implicit-d state .* needs W"):
        load_state(path)


def test_a_state_file_refuses_an_init_and_state_run_needs_a_file(tmp_path):
    path = tmp_path / "s.npz"
    save_state(path, np.ones((3, 4)), np.ones(3))
    with pytest.raises(ShallowflowInputError, match="init: 'balanced' does not apply"):
        run_simulation(None, d=4, n=5, init="balanced", state_file=str(path), horizon=2.0)
    with pytest.raises(ShallowflowInputError, match="state_run: picks a run of a state file"):
        make_config(n=5, d=4, state_run=0)
