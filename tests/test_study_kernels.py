"""The `kernels` study and its closed-form baselines: each predictor is the formula it
names (interpolation, minimum norm, the lazy flow's limit), a linear teacher is learnt
exactly, the runs' splits are the engine's own, a planted effect is found and a null one
(or random labels) is not reported as one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from shallowflow.columns import describe
from shallowflow.experiments.cells import Cell
from shallowflow.experiments.studies import kernels as study
from shallowflow.experiments.studies import run_study
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, forward
from shallowflow.storage import read_json, read_parquet
from shallowflow.theory import baselines
from shallowflow.theory.baselines import Split, min_norm_solve

EPS = float(np.finfo(np.float64).eps)


def _split(n=6, m=9, t=40, p=5, seed=0, y=None) -> Split:
    """Random data (n, m), test points (T, m) with off-span pre-activations, θ₀."""
    rng = np.random.default_rng(seed)
    z, zt = rng.normal(size=(n, m)), rng.normal(size=(t, m))
    a, v = rng.normal(size=p) + 2 * np.sign(rng.normal(size=p)), rng.normal(size=(p, m))
    y = rng.normal(size=n) if y is None else y
    return Split(z, y, zt, rng.normal(size=(p, t)), rng.normal(size=t), a, v)


def _residual_bound(A: np.ndarray, c: np.ndarray, b: np.ndarray, k: float = 64) -> float:
    """K·ε·(‖A‖‖c‖ + ‖b‖): the rounding floor of a solved system's residual."""
    return k * EPS * (np.linalg.norm(A, 2) * np.linalg.norm(c) + np.linalg.norm(b))


def test_every_closed_form_interpolates_where_it_can():
    """n ≤ m (linear), n ≤ p (random features), n ≤ p(m + 1) (tangent kernel): each
    predictor fits the training labels to rounding (the NTK its residual at θ₀)."""
    split = _split(n=5, m=9, p=7)
    p, u = split.a.size, split.v @ split.z.T
    h0 = split.a @ baselines.relu(u) / p
    systems = {
        "linear": (split.z, split.y),
        "rf": (baselines.relu(u).T / p, split.y),
        "ntk": (baselines.tangent_kernel(split.a, u, u, split.z @ split.z.T), split.y - h0),
    }
    fitted = baselines.predictions(split)
    for name, (A, b) in systems.items():
        c = min_norm_solve(A, b)
        residual = np.linalg.norm(split.y - fitted[name][0])
        assert residual <= _residual_bound(A, c, b), name
    assert np.all(fitted["null"][0] == 0)


def test_min_norm_solve_is_the_least_norm_interpolator():
    """c = A⁺b interpolates, lies in A's row space, and any other interpolator c + N w
    (N a basis of A's null space) is longer."""
    rng = np.random.default_rng(3)
    A, b = rng.normal(size=(4, 10)), rng.normal(size=4)
    c = min_norm_solve(A, b)
    assert np.linalg.norm(A @ c - b) <= _residual_bound(A, c, b)
    null = np.linalg.svd(A)[2][4:].T  # (10, 6) orthonormal basis of the null space
    assert np.abs(null.T @ c).max() <= 64 * EPS * np.linalg.norm(c)
    for _ in range(20):
        other = c + null @ rng.normal(size=6)
        assert np.linalg.norm(A @ other - b) <= _residual_bound(A, other, b)
        assert np.linalg.norm(other) > np.linalg.norm(c)


def test_the_kernel_solve_is_the_pseudo_inverse():
    """psd_min_norm_solve(K, b) = K⁺b = min_norm_solve(K, b) for a singular PSD K."""
    rng = np.random.default_rng(4)
    f = rng.normal(size=(8, 5))
    K, b = f @ f.T, rng.normal(size=8)  # rank 5
    got = baselines.psd_min_norm_solve(K, b)
    want = min_norm_solve(K, b)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e4 * EPS * np.abs(want).max())
    np.testing.assert_allclose(got, np.linalg.pinv(K, rcond=1e-12) @ b, rtol=0,
                               atol=1e4 * EPS * np.abs(want).max())  # fmt: skip


def _jacobian(a, v, x):
    """∂h_θ(x_i)/∂(a, v) (N, p + p·m) of the mean-field network (SPEC §1), by JAX."""
    geom = Geometry("dense")

    def h(theta):
        state = State(theta[: a.size], theta[a.size :].reshape(v.shape))
        return forward(geom, state, Problem(jnp.asarray(x), jnp.zeros(x.shape[0]))).h

    theta = jnp.concatenate([jnp.asarray(a), jnp.asarray(v).ravel()])
    return np.asarray(jax.jacobian(h)(theta))


def test_the_tangent_kernel_is_p_times_the_jacobians_inner_product():
    """Θ(x, x') = p⟨∇h(x), ∇h(x')⟩ (both layers, mean-field scaling), and the NTK
    predictor is h₀ + J_t J⁺ r₀: the end of the flow on the linearised network."""
    split = _split(n=6, m=4, t=7, p=5)
    split = split._replace(ct=np.zeros_like(split.ct))  # test points in the span (dense)
    p = split.a.size
    with jax.enable_x64(True):
        jac, jac_t = (_jacobian(split.a, split.v, x) for x in (split.z, split.zt))
    u, ut = split.v @ split.z.T, split.v @ split.zt.T
    kernel = baselines.tangent_kernel(split.a, ut, u, split.zt @ split.z.T)
    np.testing.assert_allclose(
        kernel, p * jac_t @ jac.T, rtol=0, atol=64 * EPS * np.abs(kernel).max()
    )
    h0, h0t = split.a @ baselines.relu(u) / p, split.a @ baselines.relu(ut) / p
    lazy = h0t + jac_t @ (np.linalg.pinv(jac) @ (split.y - h0))
    got = baselines.predictions(split)["ntk"][1]
    np.testing.assert_allclose(got, lazy, rtol=0, atol=1e-9 * np.abs(lazy).max())


def test_a_linear_teacher_is_learnt_exactly_at_n_equal_d():
    """y = ⟨β*, x⟩: at n = d the linear interpolator is β* (test loss 0 to rounding); at
    n < d it is not (the test can fail); random features recover a teacher that is
    linear in their features once n ≥ p."""
    rng = np.random.default_rng(5)
    d = 12
    beta = rng.normal(size=d)
    for n, exact in ((d, True), (d - 4, False)):
        split = _split(n=n, m=d, t=200, seed=n)
        split = split._replace(y=split.z @ beta, yt=split.zt @ beta)
        loss = baselines.losses(split)["test_loss_linear"]
        scale = float(np.mean(split.yt**2))
        assert (loss <= (1e4 * EPS) ** 2 * scale) == exact, (n, loss)
    split = _split(n=30, m=d, t=200, p=6, seed=9)
    split = split._replace(ct=np.zeros_like(split.ct))
    star = rng.normal(size=6)
    feat = lambda z: baselines.relu(split.v @ z.T).T @ star / 6  # noqa: E731
    split = split._replace(y=feat(split.z), yt=feat(split.zt))
    assert baselines.losses(split)["test_loss_rf"] <= (1e4 * EPS) ** 2 * np.mean(split.yt**2)


# --------------------------------------------------------------------------- planted


def _planted(factor: float, runs=40, seed=0) -> pd.DataFrame:
    """A runs table: the NTK's test loss ~ 0.2·LogNormal, the network's = ``factor``·NTK's
    run by run up to noise; linear and RF worse; random labels where every predictor is
    worse than predicting 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for tag in ("teacher 1", study.RANDOM):
        for n in (10, 40):
            ntk = 0.2 * rng.lognormal(0, 0.3, runs)
            net = factor * ntk * rng.lognormal(0, 0.05, runs)
            null = np.full(runs, 0.6)
            if tag == study.RANDOM:
                ntk, net = 0.8 + ntk, 0.8 + net
            rows.append(
                pd.DataFrame(
                    {
                        "tag": tag, "n": n, "run": np.arange(runs), "success": True,
                        "outcome": "converged", "final_test_loss": net,
                        "final_loss": 0.01, "test_loss_ntk": ntk, "test_loss_linear": 2 * ntk + 0.1,
                        "test_loss_rf": 3 * ntk + 0.1, "test_loss_null": null,
                    }
                    | {f"train_loss_{b}": 0.0 for b in ("linear", "ntk", "rf")}
                    | {"train_loss_null": 0.6}
                )
            )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


DESIGN = study.Design(d=10, ratios=(1.0, 4.0), runs=40, teachers=(1,), boot=300)


def test_a_planted_advantage_is_found():
    table, summary = study.summarise(_planted(0.5), DESIGN)
    lines, numbers = study.verdict(table, summary)
    ratio = numbers["headline"]["ratio"]
    assert numbers["headline"]["baseline"] == "ntk"
    assert ratio["ci_low"] <= 0.5 <= ratio["ci_high"] and ratio["ci_high"] < 1
    assert lines[0].startswith("Teacher of width 1, n/d = 4 (")
    assert "network test loss = " in lines[0] and "× [" in lines[0] and "better" in lines[0]
    assert numbers["best"]["teacher 1"] == {10: "network", 40: "network"}
    assert not any(numbers["signal"].values()) and "no predictor beats" in lines[-1]


def test_a_null_effect_is_not_reported_as_one():
    table, summary = study.summarise(_planted(1.0), DESIGN)
    lines, numbers = study.verdict(table, summary)
    ratio = numbers["headline"]["ratio"]
    assert ratio["ci_low"] < 1 < ratio["ci_high"]
    assert "not told apart" in lines[0] and "better" not in lines[0]
    assert any("runs would resolve" in line for line in lines)


def test_the_random_label_control_detects_a_leak():
    """A predictor that beats predicting 0 on random labels is reported (it must not)."""
    runs = _planted(1.0)
    leak = runs["tag"] == study.RANDOM
    runs.loc[leak, "test_loss_ntk"] = 0.3
    table, summary = study.summarise(runs, DESIGN)
    lines, numbers = study.verdict(table, summary)
    assert all(numbers["signal"].values())
    assert any("the control fails" in line for line in lines)


# --------------------------------------------------------------------------- end to end

TINY = study.Design(d=8, ratios=(2.0, 3.0), runs=4, test_n=1000, teachers=(1,), boot=100)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(study.PRESETS, "quick", TINY)
    out = tmp_path_factory.mktemp("kernels_study")
    try:
        res = run_study("kernels", "quick", out, progress=False)
    finally:
        mp.undo()
    return out, res


def test_the_study_runs_end_to_end(tiny):
    out, res = tiny
    for name in ("runs.parquet", "table.parquet", "kernels.png", "kernels.pdf", "study.md"):
        assert (out / name).exists(), name
    runs = read_parquet(out / "runs.parquet")
    assert set(runs["tag"]) == {"teacher 1", study.RANDOM}
    # the labellings at one n share their data and θ(0) (a paired design): the same
    # Assumption-1 margins, a function of θ(0) alone, run by run
    margins = runs.pivot_table(index=["n", "run"], columns="tag", values="assumption1_margin")
    np.testing.assert_array_equal(margins["teacher 1"], margins[study.RANDOM])
    for table in ("runs.parquet", "table.parquet"):
        cols = read_parquet(out / table).columns
        assert [c for c in cols if describe(str(c)) is None] == [], table
    assert read_json(out / "summary.json")["verdicts"] == res["verdicts"]
    assert res["verdicts"][0].startswith("Teacher of width 1, n/d = ")


def test_random_labels_come_out_as_no_signal(tiny):
    """On the paper's random labels no predictor beats predicting 0, whose test loss is
    ½·E[y²] = 7/6 for magnitudes U[1, 2]."""
    out, res = tiny
    assert not any(res["numbers"]["signal"].values())
    table = read_parquet(out / "table.parquet")
    null = table[(table["tag"] == study.RANDOM) & (table["predictor"] == "null")]
    null = null[null["measure"] == "test_loss"]
    # 1000 test labels: the mean of y²/2 has sd ≈ 0.6/√1000 ≈ 0.02
    assert np.all(np.abs(null["value"] - 7 / 6) < 0.1)


def test_the_splits_are_the_engines_own(tiny):
    """The redrawn starts give each run's recorded L(θ(0)) (the engine's own draw), and a
    wrong run index is refused."""
    out, _ = tiny
    runs = read_parquet(out / "runs.parquet")
    cell = study.cells(TINY)[0]
    mine = runs[runs["cell_id"] == Cell(cell).cell_id].sort_values("run")
    _, loss0 = study.splits(cell, mine["run"])
    np.testing.assert_allclose(loss0, mine["loss0"], rtol=1e-12)
    shifted = mine.assign(run=mine["run"] + 1)
    with pytest.raises(RuntimeError, match="redrawn starts disagree"):
        study.with_baselines(shifted, [cell])


def test_the_study_resumes_without_recomputing_and_refuses_to_clobber(tiny, monkeypatch):
    """With ``resume`` the stored networks are reused (nothing simulated) and the same
    verdicts come back; without it the stored sweep is refused."""
    from shallowflow.errors import ShallowflowInputError
    from shallowflow.experiments import batch

    out, res = tiny

    def never(*args, **kwargs):
        raise AssertionError("a stored cell was recomputed")

    monkeypatch.setattr(batch, "simulate_batch", never)
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    again = run_study("kernels", "quick", out, resume=True, progress=False)
    assert again["verdicts"] == res["verdicts"]
    with pytest.raises(ShallowflowInputError, match="resume"):
        run_study("kernels", "quick", out, progress=False)


def test_the_paired_bootstrap_keeps_what_the_runs_share():
    """A predictor at exactly twice another, run by run, has the ratio 2 in every paired
    replicate (an unpaired one would spread); Wilson's interval at 0 of 16 is
    [0, z²/(16 + z²)]."""
    from shallowflow.stats.resample import bootstrap_means, percentile_interval, wilson

    den = np.random.default_rng(0).lognormal(0, 1, 30)
    reps = bootstrap_means({"num": 2 * den, "den": den}, 200)
    ratio = percentile_interval(2.0, reps["num"] / reps["den"])
    np.testing.assert_allclose([ratio["ci_low"], ratio["ci_high"]], 2.0, rtol=1e-14)
    assert np.ptp(reps["den"]) > 0.1  # the means themselves do move
    w = wilson(np.zeros(16, bool))
    assert w["ci_low"] == 0 and w["ci_high"] == pytest.approx(1.96**2 / (16 + 1.96**2))
