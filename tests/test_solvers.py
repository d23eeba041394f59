"""Tests of the solvers (SPEC §1–§2): GD is the Euler scheme of the flow and converges
to it as η → 0; the flow conserves the balance (Lemma 1); stopping and divergence."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shallowflow import model, observables
from shallowflow.config import make_config
from shallowflow.engine import simulate
from shallowflow.solvers import exact, gd
from shallowflow.solvers.common import Outcome
from shallowflow.start import geometry_of, make_run

T_FIX = 8.0
ETAS = (0.2, 0.1, 0.05)
ORTH = dict(data="orthogonal", n=10, d=10, p=8, seed=2)


def _theta(s: model.State) -> np.ndarray:
    return np.concatenate([np.ravel(s.a), np.ravel(s.v)]).astype(np.float64)


def _gd_vs_flow(x64: bool):
    """θ_GD(T) at η, η/2, η/4 and a tight flow θ(T) on one orthogonal problem."""
    cfg = make_config(x64=x64, **ORTH)
    geom = geometry_of(cfg)
    start = jax.jit(lambda k: make_run(k, cfg))(jax.random.key(2))
    prob, s0 = start.prob, start.state
    dtype = s0.a.dtype
    tight = dict(rtol=1e-10, atol=1e-12) if x64 else dict(rtol=1e-6, atol=1e-8)
    grid = jnp.linspace(0.0, T_FIX, 1601, dtype=dtype)  # fine: μ jumps at kinks
    ref = exact.solve(geom, prob, s0, grid, stop_loss=0.0, **tight)

    @jax.jit
    def run_gd(lr, steps):
        grid_ = jnp.stack([jnp.zeros((), jnp.int32), steps])
        return gd.solve(geom, prob, s0, grid_, lr=lr, stop_loss=0.0).final

    finals = [run_gd(jnp.asarray(eta, dtype), jnp.int32(round(T_FIX / eta))) for eta in ETAS]
    return geom, prob, s0, ref, finals


def _check_gd_converges_to_flow(x64: bool):
    geom, prob, s0, ref, finals = _gd_vs_flow(x64)
    assert int(ref.status) == Outcome.HORIZON and float(ref.t_final) == pytest.approx(T_FIX)
    assert int(ref.stats.crossings) > 0  # the run meets kinks
    target = _theta(ref.final)
    errs = [np.linalg.norm(_theta(f) - target) / np.linalg.norm(target) for f in finals]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(1.6 <= r <= 2.6 for r in ratios), (errs, ratios)
    assert errs[-1] < 0.05
    # GD balance drift per step is η²(F_a² − ‖F_w‖²), so its total at fixed T is O(η)
    b0 = np.asarray(observables.balance(s0), np.float64)
    drift = [np.max(np.abs(np.asarray(observables.balance(f)) - b0)) for f in finals]
    assert all(1.6 <= drift[k] / drift[k + 1] <= 2.6 for k in range(2)), drift
    # the flow's own loss obeys L(t) = L(0) exp(−∫₀ᵗ μ) (SPEC §2), ∫μ integrated by the
    # solver along the solution it follows
    loss = np.asarray(jax.vmap(lambda s: model.loss(geom, s, prob))(ref.states), np.float64)
    assert np.all(np.diff(loss) <= 1e-6 * loss[0])  # a gradient flow decreases L
    integral = np.asarray(ref.integral, np.float64)
    atol = 1e-7 if x64 else 2e-3
    np.testing.assert_allclose(np.log(loss[0] / loss), integral, rtol=0, atol=atol)
    assert integral[-1] > 1.0  # the loss fell by a factor e at least
    print(f"GD→flow errors {errs}, ratios {ratios}, balance drifts {drift}")


def test_gd_converges_to_flow_first_order_float64():
    """Fixed T, orthogonal data: ‖θ_GD(T) − θ(T)‖ halves when η halves (Euler is order 1)."""
    with jax.enable_x64(True):
        _check_gd_converges_to_flow(x64=True)


# ----------------------------------------------------------------- the true flow


def test_flow_conserves_balance_and_signs(flow64):
    """Lemma 1 under the flow (float64, orthogonal data: no sliding): the relative drift
    of a_j² − ‖w_j‖² stays below 1e-6, and no a_j changes sign (Assumption 1)."""
    res = flow64
    cfg = res.cfg
    assert (res.final["status"] == Outcome.CONVERGED).all()
    assert res.init["assumption1"].all()
    drift = res.records["balance_drift_rel"][res.valid]
    assert drift.max() < 1e-6, drift.max()
    assert (res.final["balance_drift_rel"] < 1e-6).all()
    keys = jax.random.split(jax.random.key(cfg.run.seed), cfg.run.runs)
    with jax.enable_x64(True):
        a0s = np.asarray(jax.jit(jax.vmap(lambda k: make_run(k, cfg).state.a))(keys))
        for r in range(cfg.run.runs):
            a0 = a0s[r]
            a_end = res.states["a"][r]
            assert np.all(np.sign(a_end) == np.sign(a0))
            # |a_j| stays ≥ its conserved floor √(a_j(0)² − ‖w_j(0)‖²) > 0
            assert np.all(np.abs(a_end) > 0)
    loss = res.records["loss"]
    for r in range(cfg.run.runs):
        ok = res.valid[r]
        assert np.all(np.diff(loss[r][ok]) <= 0)  # L decreases along a gradient flow


# ------------------------------------------------- stopping, divergence, batching

H = 60


@pytest.fixture(scope="module")
def gd_batch():
    """Three runs, every step recorded; run 1 has its data scaled by 30 so that GD at
    η = 1 diverges. Solved batched (vmap) and one by one."""
    cfg = make_config(n=20, d=10, seed=0)
    geom = geometry_of(cfg)
    draw = jax.jit(lambda k: make_run(k, cfg))
    starts = [draw(k) for k in jax.random.split(jax.random.key(0), 3)]
    probs = [s.prob for s in starts]
    probs[1] = model.Problem(30.0 * probs[1].z, probs[1].y)
    states = [s.state for s in starts]
    grid = jnp.arange(H + 1, dtype=jnp.int32)

    def solve(prob, s0):
        return gd.solve(geom, prob, s0, grid, lr=1.0, stop_loss=cfg.solver.stop_loss)

    def stack(xs):
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)

    batched = jax.jit(jax.vmap(solve))(stack(probs), stack(states))
    single = jax.jit(solve)
    alone = [single(p, s) for p, s in zip(probs, states, strict=True)]
    return cfg, geom, probs, batched, alone


def _run(traj, r):
    return jax.tree_util.tree_map(lambda x: x[r], traj)


def test_gd_step_is_theta_plus_eta_field(gd_batch):
    """θ_{k+1} = θ_k − η p ∇L(θ_k) (η = 1): the recorded GD states are the Euler iterates."""
    cfg, geom, probs, _, alone = gd_batch
    t = alone[0]
    s = _run(t.states, 0)
    for k in range(6):
        np.testing.assert_allclose(t.states.a[k], s.a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(t.states.v[k], s.v, rtol=1e-5, atol=1e-6)
        f = model.vector_field(geom, s, probs[0])
        s = model.State(s.a + f.a, s.v + f.v)
    np.testing.assert_allclose(t.times, np.arange(H + 1), rtol=1e-6)


def test_gd_stops_at_first_step_below_threshold(gd_batch):
    cfg, geom, probs, batched, _ = gd_batch
    thr = cfg.solver.stop_loss
    assert thr == pytest.approx(1 / (2 * cfg.data.n))
    converged = 0
    for r in (0, 2):
        t = _run(batched, r)
        loss = np.asarray(jax.vmap(lambda s, p=probs[r]: model.loss(geom, s, p))(t.states))
        k = int(t.steps)
        if int(t.status) == Outcome.CONVERGED:
            converged += 1
            assert k < H
            assert loss[k] <= thr and np.all(loss[:k] > thr)
            assert float(model.loss(geom, t.final, probs[r])) <= thr
        else:
            assert int(t.status) == Outcome.HORIZON and k == H and np.all(loss > thr)
        np.testing.assert_array_equal(np.asarray(t.valid), np.arange(H + 1) <= k)
        assert float(t.t_final) == pytest.approx(k * 1.0)
    assert converged >= 1


def test_divergence_is_flagged_and_isolated(gd_batch):
    cfg, geom, probs, batched, alone = gd_batch
    bad = _run(batched, 1)
    assert int(bad.status) == Outcome.DIVERGED
    loss0 = float(model.loss(geom, jax.tree_util.tree_map(lambda x: x[0], bad.states), probs[1]))
    loss_end = float(model.loss(geom, bad.final, probs[1]))
    assert np.isfinite(loss_end) and loss_end <= cfg.solver.diverge_factor * loss0
    assert np.isfinite(np.asarray(bad.final.a)).all() and np.isfinite(np.asarray(bad.final.v)).all()
    assert int(bad.steps) < H
    # the other runs of the batch are those solved alone
    for r in (0, 2):
        got, want = _run(batched, r), alone[r]
        assert int(got.status) == int(want.status) and int(got.steps) == int(want.steps)
        for x, y in zip(
            jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert math.isfinite(float(alone[1].tail_rate))


@pytest.mark.parametrize("grid", [[0, 3, 7, H], [0, H], list(range(0, H + 1, 5))])
def test_diverged_run_keeps_last_finite_iterate_whatever_the_grid(gd_batch, grid):
    """The diverged run ends at θ_{k−1}, the Euler iterate just before the first bad
    loss, replayed from the record anchors; it must not depend on where records are."""
    cfg, geom, probs, _, alone = gd_batch
    s0 = jax.tree_util.tree_map(lambda x: x[0], alone[1].states)
    g = jnp.asarray(grid, jnp.int32)
    got = jax.jit(lambda: gd.solve(geom, probs[1], s0, g, lr=1.0, stop_loss=cfg.solver.stop_loss))()
    assert int(got.status) == Outcome.DIVERGED
    k = int(got.steps)
    assert k == int(alone[1].steps)
    s, losses = s0, []
    for _ in range(k + 1):
        losses.append(float(model.loss(geom, s, probs[1])))
        if len(losses) <= k:
            f = model.vector_field(geom, s, probs[1])
            s = model.State(s.a + f.a, s.v + f.v)
    nxt = model.vector_field(geom, s, probs[1])
    after = float(model.loss(geom, model.State(s.a + nxt.a, s.v + nxt.v), probs[1]))
    assert np.isfinite(losses).all() and max(losses) <= cfg.solver.diverge_factor * losses[0]
    assert not (np.isfinite(after) and after <= cfg.solver.diverge_factor * losses[0])
    np.testing.assert_allclose(np.asarray(got.final.v), np.asarray(s.v), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.final.a), np.asarray(s.a), rtol=1e-4, atol=1e-5)


def test_gd_tail_rate_is_a_window_in_time_whatever_the_step():
    """SPEC §5: μ(t_∞) is the mean of 2(L_k − L_{k+1})/(L_k + L_{k+1}) over the last 100
    steps at η = 1, and for another η the same window in time, a rate per unit of time.
    At η = 1/4 it matches the exact flow's (a rate per unit of time, window 100), not a
    per-step rate four times smaller."""
    knobs = dict(
        data="orthogonal", n=30, d=40, w_scale=0.01, require_coverage=True, x64=True, runs=2,
        record=4, seed=2, horizon=5000.0, stop_loss=1e-12 / 60,
    )  # fmt: skip
    gd = simulate(make_config(**knobs, lr=0.25))
    flow = simulate(make_config(**knobs, solver="flow", rtol=1e-10, atol=1e-13))
    np.testing.assert_allclose(gd.final["mu_tail"], flow.final["mu_tail"], rtol=0.02)
    # the window: 100 units of time, i.e. 400 steps of η = 1/4
    late = gd.final["t_final"] - 100.0
    assert (late > 0).all()


def test_an_unknown_solver_name_is_an_error():
    """solvers.solve ran flow-floor for any name it did not know; now a name is looked
    up once, in the registry, and the configuration refuses an unknown one."""
    from shallowflow.errors import ShallowflowInputError
    from shallowflow.solvers import solver_class

    with pytest.raises(ShallowflowInputError, match=r"solver: unknown 'flow-flor'; allowed"):
        solver_class("flow-flor")
    with pytest.raises(ShallowflowInputError, match=r"solver: unknown 'flow-flor'; allowed"):
        make_config(solver="flow-flor", **ORTH)


def test_the_authors_stop_rule_never_tests_the_loss_at_step_T():
    """A planted run whose loss first falls below the stop loss at step T exactly: our
    inclusive rule counts it converged at T, the authors' rule (steps 0..T−1 tested)
    leaves it at the horizon, on the same trajectory; a crossing before T is the same
    stop under both rules."""
    T = 12
    knobs = dict(n=10, d=6, p=6, runs=1, seed=4, x64=True, horizon=float(T), record=T + 1)
    free = simulate(make_config(**knobs, stop_loss=0.0))
    loss = free.records["loss"][0]  # L_0 … L_T
    stop = math.sqrt(loss[T] * loss[T - 1])  # strictly between L_T and L_{T−1}
    assert np.all(loss[:T] > stop * (1 + 1e-9)) and loss[T] < stop * (1 - 1e-9)
    ours = simulate(make_config(**knobs, stop_loss=stop))
    theirs = simulate(make_config(**knobs, stop_loss=stop, stop_rule="authors"))
    assert ours.final["status"][0] == Outcome.CONVERGED and ours.final["steps"][0] == T
    assert theirs.final["status"][0] == Outcome.HORIZON and theirs.final["steps"][0] == T
    np.testing.assert_array_equal(theirs.final["loss"], ours.final["loss"])
    early = math.sqrt(loss[T - 3] * loss[T - 4])  # first below it at step T − 3
    for rule in ("inclusive", "authors"):
        res = simulate(make_config(**knobs, stop_loss=early, stop_rule=rule))
        assert res.final["status"][0] == Outcome.CONVERGED and res.final["steps"][0] == T - 3


def test_the_authors_stop_rule_is_refused_for_the_flows():
    from shallowflow.errors import ShallowflowInputError

    with pytest.raises(ShallowflowInputError, match="stop_rule: 'authors' is a rule of GD"):
        make_config(n=10, d=6, solver="flow", stop_rule="authors")
