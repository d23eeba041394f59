"""Tests of the batched engine and result tables: stopping, divergence, determinism,
chunking, dtypes, and the orthogonal-data μ bounds along real runs (SPEC §2, §5)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from shallowflow.config import horizon_steps, make_config
from shallowflow.engine import devices_for, plan, simulate
from shallowflow.results import runs_table, summary, trajectory_table
from shallowflow.solvers.common import Outcome
from shallowflow.start import UserArrays
from shallowflow.trajectory import record_grid

BASE = dict(n=20, d=10, runs=4, record=10, seed=1)


@pytest.fixture(scope="module")
def base():
    return simulate(make_config(**BASE))


def _leaves(res):
    return jax.tree_util.tree_leaves((res.valid, res.records, res.final, res.init))


def test_gd_stops_early_below_one_over_2n(base):
    cfg = base.cfg
    thr = 1 / (2 * cfg.data.n)
    assert cfg.solver.stop_loss == pytest.approx(thr)
    horizon = horizon_steps(cfg.data.n, cfg.init.p)
    assert cfg.solver.horizon == horizon * cfg.solver.lr
    np.testing.assert_array_equal(base.times, record_grid(cfg) * cfg.solver.lr)
    status, steps = base.final["status"], base.final["steps"]
    assert (status == Outcome.CONVERGED).sum() >= 2
    for r in range(base.runs):
        np.testing.assert_array_equal(base.valid[r], base.times <= base.final["t_final"][r])
        assert base.final["t_final"][r] == pytest.approx(steps[r] * cfg.solver.lr)
        before = base.valid[r] & (base.times < base.final["t_final"][r])
        assert (base.records["loss"][r][before] > thr).all()
        if status[r] == Outcome.CONVERGED:
            assert base.final["loss"][r] <= thr and steps[r] < horizon
        else:
            assert status[r] == Outcome.HORIZON and steps[r] == horizon
            assert base.final["loss"][r] > thr
    assert (base.init["loss0"] == base.records["loss"][:, 0]).all()


def test_same_seed_gives_identical_numbers_and_runs_differ(base):
    again = simulate(make_config(**BASE))
    for x, y in zip(_leaves(base), _leaves(again), strict=True):
        np.testing.assert_array_equal(x, y)
    loss0 = base.init["loss0"]
    assert len(np.unique(loss0)) == base.runs  # each run draws its own problem


def test_chunks_of_one_give_the_results_of_one_batch(base):
    """memory_gb tiny forces chunks of one run per device: every run is then solved
    without the others beside it in the batch (vmap on accelerators, lax.map on CPU),
    and must give the same numbers."""
    cfg = make_config(memory_gb=1e-9, **BASE)
    ndev = len(jax.local_devices())
    chunk = plan([cfg])[0].chunk
    assert chunk == ndev
    assert plan([base.cfg])[0].chunk == base.runs
    calls = []
    chunked = simulate(cfg, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(min(k, base.runs), base.runs) for k in range(chunk, base.runs + chunk, chunk)]
    np.testing.assert_array_equal(chunked.valid, base.valid)
    np.testing.assert_array_equal(chunked.final["status"], base.final["status"])
    np.testing.assert_array_equal(chunked.final["steps"], base.final["steps"])
    # float32: the same up to roundoff (under vmap XLA may fuse a batch of 1 differently)
    for got, want in ((chunked.records, base.records), (chunked.final, base.final)):
        for name in want:
            scale = float(np.nanmax(np.abs(want[name])))
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5 * scale)


def test_huge_step_is_flagged_diverged_with_finite_records():
    res = simulate(make_config(lr=1e4, **BASE))
    assert (res.final["status"] == Outcome.DIVERGED).all()
    for name, rec in res.records.items():
        if name == "thm1_const":  # undefined (NaN, a null in tables) where min_fit ≤ 0
            fit = res.records["min_fit"][res.valid]
            assert np.array_equal(np.isfinite(rec[res.valid]), fit > 0)
            continue
        assert np.isfinite(rec[res.valid]).all(), name
    for name in ("loss", "mu", "t_final", "balance_drift"):
        assert np.isfinite(res.final[name]).all(), name
    assert (res.final["loss"] <= res.cfg.solver.diverge_factor * res.init["loss0"]).all()
    table = runs_table(res)
    assert (table["outcome"] == "diverged").all() and not table["success"].any()


def test_tables_have_one_row_per_run_and_per_record(base):
    runs = runs_table(base)
    assert len(runs) == base.runs
    np.testing.assert_array_equal(runs["run"], np.arange(base.runs))
    np.testing.assert_array_equal(runs["success"], base.final["status"] == Outcome.CONVERGED)
    np.testing.assert_allclose(runs["final_loss"], base.final["loss"])
    assert (runs["p"] == base.cfg.init.p).all() and (runs["n"] == base.cfg.data.n).all()
    num = runs.select_dtypes("number")
    assert not num.drop(columns=["final_thm1_const"], errors="ignore").isna().any().any()

    traj = trajectory_table(base)
    assert len(traj) == int(base.valid.sum()) + base.runs
    assert traj["final"].sum() == base.runs
    assert not traj.select_dtypes("number").drop(columns="thm1_const").isna().any().any()
    # Theorem 1's constant is null exactly where it is undefined (min_fit ≤ 0)
    np.testing.assert_array_equal(traj["thm1_const"].isna(), traj["min_fit"] <= 0)
    for r in range(base.runs):
        rows = traj[(traj["run"] == r) & ~traj["final"]]
        np.testing.assert_allclose(rows["t"], base.times[base.valid[r]])
        np.testing.assert_allclose(rows["loss"], base.records["loss"][r][base.valid[r]])
        fin = traj[(traj["run"] == r) & traj["final"]]
        assert fin["t"].item() == pytest.approx(base.final["t_final"][r])
        assert fin["loss"].item() == pytest.approx(base.final["loss"][r])
    s = summary(base)
    assert s["runs"] == base.runs
    assert s["success_fraction"] == pytest.approx(
        np.mean(base.final["status"] == Outcome.CONVERGED)
    )


def _check_mu_bounds(res, rtol):
    """The bounds are about the state: μ = p‖∇L‖²/L at θ (``mu_state``)."""
    assert res.init["assumption1"].all()
    v = res.valid
    lo, mu, hi = (res.records[k][v] for k in ("mu_low_tight", "mu_state", "mu_upp_tight"))
    assert (lo > 0).all()
    assert (lo <= mu * (1 + rtol)).all(), np.min(mu / lo)
    assert (mu <= hi * (1 + rtol)).all(), np.max(mu / hi)
    f = res.final
    assert (f["mu_low_tight"] <= f["mu_state"] * (1 + rtol)).all() and (
        f["mu_state"] <= f["mu_upp_tight"] * (1 + rtol)
    ).all()
    # the paper's bounds (2/n) min E_i ≤ tight ≤ μ ≤ tight ≤ (16/n) max E_i, ‖x_i‖ ∈ [1, 2]
    n = res.cfg.data.n
    lo_paper, hi_paper = (res.records[k][v] for k in ("mu_low", "mu_upp"))
    np.testing.assert_allclose(lo_paper, 2 * res.records["energy_min"][v] / n, rtol=1e-12)
    np.testing.assert_allclose(hi_paper, 16 * res.records["energy_max"][v] / n, rtol=1e-12)
    assert (lo_paper <= lo * (1 + rtol)).all() and (hi <= hi_paper * (1 + rtol)).all()


def test_orthogonal_mu_bounds_along_gd_paper_protocol(orth_gd):
    res = orth_gd
    assert res.cfg.solver.lr == 1.0 and res.cfg.init.w_scale == 0.01
    assert (res.init["coverage0"] == res.cfg.data.n).all() and (res.init["draws"] >= 1).all()
    assert (res.final["status"] == Outcome.CONVERGED).all()
    assert (res.final["loss"] <= res.cfg.solver.stop_loss).all()
    _check_mu_bounds(res, rtol=1e-9)


def test_orthogonal_mu_bounds_along_the_flow(flow64):
    _check_mu_bounds(flow64, rtol=1e-9)


def test_float64_option_gives_float64_outputs(flow64, orth_gd):
    for res in (flow64, orth_gd):
        assert res.cfg.run.x64
        for name in ("loss", "mu", "mu_low", "balance_drift"):
            assert res.records[name].dtype == np.float64, name
            assert res.final[name].dtype == np.float64, name
        assert res.init["loss0"].dtype == np.float64
    assert flow64.states["a"].dtype == np.float64


def test_record_grid():
    cfg = make_config(n=20, d=10, record=7, horizon=30, lr=0.5)
    g = record_grid(cfg)
    assert g[0] == 0 and g[-1] == 60 and len(g) == 7 and np.all(np.diff(g) > 0)
    glog = record_grid(make_config(n=20, d=10, record=7, horizon=30, grid="log"))
    assert glog[0] == 0 and glog[-1] == 30 and np.all(np.diff(glog) > 0)
    gf = record_grid(make_config(n=20, d=10, record=5, horizon=3.0, solver="flow"))
    np.testing.assert_allclose(gf, np.linspace(0, 3, 5))


_ONE_DEVICE = """
import sys, numpy as np, jax
from shallowflow.config import make_config
from shallowflow.engine import simulate
assert len(jax.local_devices()) == 1
res = simulate(make_config(**eval(sys.argv[1])))
np.savez(sys.argv[2], valid=res.valid, **{f"r_{k}": v for k, v in res.records.items()},
         **{f"f_{k}": v for k, v in res.final.items()})
"""


@pytest.mark.parametrize("knobs", [dict(BASE, runs=3), dict(data="orthogonal", n=12, d=20, runs=3)])
def test_runs_shared_over_devices_match_one_device(knobs, tmp_path):
    """With several local devices (``use_cpu_devices``: one per core) the runs are
    shared out, padded to a multiple of the devices; the numbers are those of a
    process with a single device."""
    import os
    import subprocess
    import sys

    if len(jax.local_devices()) < 2:
        pytest.skip("one local device: nothing is shared out")
    out = tmp_path / "one.npz"
    env = dict(os.environ, SHALLOWFLOW_CPU_DEVICES="1")
    subprocess.run([sys.executable, "-c", _ONE_DEVICE, repr(knobs), str(out)], env=env, check=True)
    one = np.load(out)
    many = simulate(make_config(**knobs))
    np.testing.assert_array_equal(one["valid"], many.valid)
    np.testing.assert_array_equal(one["f_status"], many.final["status"])
    np.testing.assert_array_equal(one["f_steps"], many.final["steps"])
    for name, want in many.records.items():
        scale = float(np.nanmax(np.abs(want)))
        np.testing.assert_allclose(one[f"r_{name}"], want, rtol=1e-5, atol=1e-6 * scale)


def test_user_arrays_too_big_to_copy_to_every_device_keep_one_device():
    bucket = plan([make_config(**BASE)])[0]
    ndev = len(jax.local_devices())
    assert devices_for(bucket, UserArrays(), 2.0) == ndev
    small = UserArrays(X=np.zeros((20, 10)), y=np.zeros(20))
    assert devices_for(bucket, small, 2.0) == ndev
    # a quarter of 1e-6 GB: 268 bytes < 2 × 840 bytes
    assert devices_for(bucket, small, 1e-6) == 1


def test_theorem1_constant_is_null_where_it_is_undefined(tmp_path):
    # n·μ / min_i(h_i/y_i) means something only where min_i h_i/y_i > 0; it was −115 at
    # t = 0 in the default cell and ±inf where the minimum was 0.
    import pandas as pd

    from shallowflow.storage import write_parquet_atomic

    res = simulate(make_config(n=40, d=10, runs=3, record=8, seed=2))
    fit, const = res.records["min_fit"], res.records["thm1_const"]
    live = res.valid
    assert (live & (fit <= 0)).any() and (live & (fit > 0)).any()  # both cases occur
    assert np.all(np.isnan(const[live & (fit <= 0)]))
    assert np.all(np.isfinite(const[live & (fit > 0)]) & (const[live & (fit > 0)] > 0))
    path = tmp_path / "traj.parquet"
    write_parquet_atomic(trajectory_table(res), path)
    col = pd.read_parquet(path)[["min_fit", "thm1_const"]]
    np.testing.assert_array_equal(col["thm1_const"].isna(), col["min_fit"] <= 0)
    assert (col["thm1_const"].dropna() > 0).all() and not np.isinf(col["thm1_const"]).any()


def test_fitted_counts_the_examples_within_half_their_label_and_is_off_by_default():
    """``fitted`` (RecordSpec.fitted) at the end equals the count |r_i| < |y_i|/2 read from
    the kept final state and the run's own data (``make_run`` with the run's key); without
    the knob no column is added (stored tables keep their columns)."""
    from shallowflow.start import make_run

    knobs = dict(n=8, d=8, data="orthogonal", runs=3, x64=True, record=6, lr=0.5)
    cfg = make_config(**knobs, fitted=True, keep_state=True, horizon=6.0)
    res = simulate(cfg)
    for r in range(cfg.run.runs):
        with jax.enable_x64(True):  # the engine's precision for this cell
            start = make_run(jax.random.fold_in(jax.random.key(cfg.run.seed), r), cfg)
            rho, y = np.asarray(start.prob.z), np.asarray(start.prob.y)
        W, a = res.states["W"][r], res.states["a"][r]
        h = a @ np.maximum(W[:, : cfg.data.n] * rho, 0.0) / cfg.init.p
        assert res.final["fitted"][r] == np.sum(np.abs(y - h) < np.abs(y) / 2)
    assert 0 < res.final["fitted"].sum() < cfg.run.runs * cfg.data.n  # neither none nor all
    assert np.all(np.diff(res.records["fitted"], axis=1)[res.valid[:, 1:]] >= -1)
    assert "final_fitted" not in runs_table(simulate(make_config(**knobs)))
