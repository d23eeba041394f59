"""The exact event-driven flow (solvers.exact, SPEC §3b): the rate of the trajectory,
crossings, Filippov sliding against an independent reference, GD → flow on sliding
data, tolerance, and the Fig. 6 rate against GD on the same draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from shallowflow.config import make_config
from shallowflow.engine import simulate
from shallowflow.experiments.figures import protocol
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers import exact, filippov, gd
from shallowflow.solvers.common import Outcome
from shallowflow.start import geometry_of, make_run

TIGHT = dict(x64=True, rtol=1e-10, atol=1e-12, solver="flow")


def _identity_error(res):
    """max over valid records of |log(L(0)/L(t)) − ∫₀ᵗ μ| / max(log(L(0)/L(t)), 1)."""
    worst = 0.0
    for r in range(res.runs):
        v = res.valid[r]
        loss_ = res.records["loss"][r][v]
        drop = np.log(loss_[0] / loss_)
        gap = np.abs(drop - res.records["mu_integral"][r][v]) / np.maximum(drop, 1.0)
        worst = max(worst, float(gap.max()))
    fin = np.log(res.init["loss0"] / res.final["loss"])
    end = np.abs(fin - res.final["mu_integral"]) / np.maximum(fin, 1.0)
    return max(worst, float(end.max())), float(fin.min())


@pytest.mark.parametrize(
    "knobs",
    [
        # orthogonal data: pairs hit their surfaces and stick
        dict(data="orthogonal", n=20, d=30, p=8, horizon=60.0, stop_loss=1e-9),
        # sphere data with n > d: pairs slide
        dict(data="sphere", n=30, d=8, p=6, horizon=60.0, stop_loss=0.0),
    ],
    ids=["orthogonal-sticky", "sphere-sliding"],
)
def test_rate_identity_along_exact_flow_runs(knobs):
    """log(L(0)/L(t)) = ∫₀ᵗ μ (SPEC §2) with μ the rate of the solution followed."""
    res = simulate(make_config(runs=2, seed=3, record=30, **TIGHT, **knobs))
    err, drop = _identity_error(res)
    assert drop > 1.0  # the loss fell by a factor e at least
    assert err <= 1e-6, err
    assert (res.final["crossings"] > 0).all()
    if knobs["data"] == "sphere":
        assert (res.final["slides"] > 0).all() and (res.final["max_sliding"] > 0).all()
        assert (res.final["max_violation"] <= 1e-9).all()
        assert (res.final["sliding_time"] > 0).all()
        # on a sliding surface p‖∇L‖²/L overstates the rate of the trajectory
        assert (res.final["mu_state"] >= res.final["mu"] * (1 - 1e-9)).all()
    else:
        assert (res.final["slides"] == 0).all()  # orthogonal data never slide
        # sticky pairs sit exactly on their surface: μ is also the state quantity
        np.testing.assert_allclose(res.final["mu_state"], res.final["mu"], rtol=1e-9)


def test_gd_converges_to_the_exact_flow_on_sliding_data():
    """Sphere data with n > d (pairs slide): GD(η) → the Filippov flow, error O(η)."""
    with jax.enable_x64(True):
        cfg = make_config(data="sphere", n=40, d=8, p=6, x64=True, seed=4)
        geom = geometry_of(cfg)
        start = make_run(jax.random.key(1), cfg)
        prob, s0 = start.prob, start.state
        horizon = 4.0
        ref = jax.jit(
            lambda: exact.solve(
                geom, prob, s0, jnp.array([0.0, horizon]), rtol=1e-11, atol=1e-13, stop_loss=0.0
            )
        )()
        assert int(ref.status) == Outcome.HORIZON
        assert int(ref.stats.slides) > 0 and int(ref.stats.max_sliding) > 1

        def theta(s):
            return np.concatenate([np.ravel(s.a), np.ravel(s.v)])

        target = theta(ref.final)
        run = jax.jit(
            lambda lr, steps: (
                gd.solve(
                    geom,
                    prob,
                    s0,
                    jnp.stack([jnp.zeros((), jnp.int32), steps]),
                    lr=lr,
                    stop_loss=0.0,
                ).final
            )
        )
        etas = (0.04, 0.02, 0.01, 0.005)
        errs = [
            np.linalg.norm(theta(run(jnp.asarray(e), jnp.int32(round(horizon / e)))) - target)
            / np.linalg.norm(target)
            for e in etas
        ]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.6) & (ratios < 2.6)), (errs, ratios)


# --------------------------------------------------------------------------- sliding

_TH = np.pi / 3
_X = np.array([[1.0, 0.0], [np.cos(_TH), np.sin(_TH)]])
_Y = np.array([2.0, -3.0])
_A0 = np.array([1.0, -1.0])
# neuron 0 exactly on the surface of example 1 (v ⊥ x_1), active on x_0; neuron 1
# active on x_1 only. Pair (0, 1) is attracting from both sides: a_0 r_1 < 0 and
# a_0 r_0 ⟨x_0, x_1⟩ > 0, so it slides; as neuron 1 fits y_1, λ climbs to 1 and the
# pair leaves to the active side.
_V0 = np.array([0.5 * np.array([np.sin(_TH), -np.cos(_TH)]), [-1.5, 1.2]])


def _reduced(t, s):
    """The flow on the surface u_01 = 0, by hand: neuron 0's dv projected off x_1."""
    a, v = s[:2], s[2:].reshape(2, 2)
    u = v @ _X.T
    act = u > 0
    act[0, 1] = False
    r = _Y - a @ (u * act) / 2
    da = (u * act) @ r / 2
    dv = (a[:, None] / 2) * ((act * r[None, :]) @ _X)
    q = _X[1] / np.linalg.norm(_X[1])
    dv[0] -= (dv[0] @ q) * q
    return np.concatenate([da, dv.ravel()])


def _lam(s):
    """λ = u̇⁻/(u̇⁻ − u̇⁺) of pair (0, 1) on its surface (SPEC §3b)."""
    a, v = s[:2], s[2:].reshape(2, 2)
    u = v @ _X.T
    act = u > 0
    act[0, 1] = False
    r = _Y - a @ (u * act) / 2
    down = (a[0] / 2) * r[0] * (_X[0] @ _X[1])
    up = down + (a[0] / 2) * r[1] * (_X[1] @ _X[1])
    return down / (down - up)


def test_sliding_segment_matches_the_reduced_flow_and_leaves_when_lambda_reaches_one():
    ref = solve_ivp(
        _reduced,
        (0.0, 1.6),
        np.concatenate([_A0, _V0.ravel()]),
        method="DOP853",
        rtol=1e-13,
        atol=1e-15,
        dense_output=True,
    )
    t_exit = brentq(lambda t: _lam(ref.sol(t)) - 1.0, 1.0, 1.6, xtol=1e-14)
    assert 0 < _lam(ref.sol(0.0)) < 1  # sliding from the start
    ts = np.linspace(0.0, 2.5, 51)
    with jax.enable_x64(True):
        out = jax.jit(
            lambda: exact.solve(
                Geometry("dense"),
                Problem(jnp.asarray(_X), jnp.asarray(_Y)),
                State(jnp.asarray(_A0), jnp.asarray(_V0)),
                jnp.asarray(ts),
                rtol=1e-12,
                atol=1e-14,
                stop_loss=0.0,
            )
        )()
    stats = out.stats
    assert int(stats.max_sliding) == 1 and float(stats.max_violation) <= 1e-9
    assert float(stats.sliding_time) == pytest.approx(t_exit, abs=1e-8)
    states = np.concatenate([np.asarray(out.states.a), np.asarray(out.states.v).reshape(51, 4)], 1)
    before = ts < t_exit
    reference = np.array([ref.sol(t) for t in ts[before]])
    np.testing.assert_allclose(states[before], reference, atol=1e-9)
    u01 = np.asarray(out.states.v)[:, 0] @ _X[1]
    assert np.max(np.abs(u01[before])) <= 1e-9  # held on the surface
    assert np.all(u01[ts > t_exit + 0.02] > 0)  # then active


# --------------------------------------------------------------------------- tolerance


def test_halving_rtol_moves_the_final_loss_within_the_tolerance():
    knobs = dict(data="sphere", n=40, d=8, p=6, x64=True, seed=4, solver="flow", runs=2)
    knobs |= dict(horizon=4.0, stop_loss=0.0, record=4)
    finals = []
    for rtol in (1e-6, 5e-7, 2.5e-7):
        res = simulate(make_config(rtol=rtol, atol=rtol * 1e-2, **knobs))
        assert (res.final["slides"] > 0).all()
        finals.append(res.final["loss"])
    tight = simulate(make_config(rtol=1e-11, atol=1e-13, **knobs)).final["loss"]
    for rtol, f in zip((1e-6, 5e-7, 2.5e-7), finals, strict=True):
        assert np.all(np.abs(f - tight) <= 10 * rtol * tight)
    assert np.all(np.abs(finals[0] - finals[1]) <= 10 * 1e-6 * tight)


# --------------------------------------------------------------------------- Fig. 6


def test_fig6_rate_of_the_exact_flow_is_the_rate_of_its_loss_and_gds():
    """Quick-preset Fig. 6 cell: the flow's μ(t_∞) is within 10% of −d/dt log L fitted
    over its last records, and of GD's μ(t_∞) on the same draws. The floored flow of
    before (flow-floor) reports a rate some 4x too large here, and fails."""
    cell = {k: v for k, v in protocol("fig6", "quick").cells[0].items() if k != "figure"}
    cell |= dict(runs=3, seed=3)

    def rates(solver):
        res = simulate(make_config(**(cell | {"solver": solver})))
        fitted = []
        for r in range(res.runs):
            v = res.valid[r]
            t, log_l = res.times[v][-4:], np.log(res.records["loss"][r][v][-4:])
            fitted.append(-np.polyfit(t, log_l, 1)[0])
        return float(res.final["mu_tail"].mean()), float(np.mean(fitted))

    gd_tail, _ = rates("gd")
    flow_tail, flow_fit = rates("flow")
    floor_tail, floor_fit = rates("flow-floor")
    assert abs(flow_tail / flow_fit - 1) <= 0.1
    assert abs(flow_tail / gd_tail - 1) <= 0.1
    assert abs(floor_tail / floor_fit - 1) > 0.1 or abs(floor_tail / gd_tail - 1) > 0.1


def test_exact_flow_stops_at_the_located_stop_time():
    """The stop L = stop_loss is an event located like a crossing: the run ends with its
    loss at the stop level (not below it by a step's worth), and converged."""
    res = simulate(make_config(data="orthogonal", n=12, d=20, runs=2, stop_loss=1e-4, **TIGHT))
    assert (res.final["status"] == Outcome.CONVERGED).all()
    np.testing.assert_allclose(res.final["loss"], res.cfg.solver.stop_loss, rtol=1e-6)
    gd_res = simulate(make_config(data="orthogonal", n=12, d=20, runs=2, stop_loss=1e-4, x64=True))
    assert (gd_res.final["loss"] < res.cfg.solver.stop_loss * (1 - 1e-3)).any()  # GD overshoots


def test_sliding_runs_shared_over_two_cpu_devices_finish():
    # Regression: LAPACK's batched Cholesky (jnp.linalg.cholesky) splits its batch over
    # the CPU runtime's thread pool and waits for it; with runs shared over two CPU
    # devices both pool threads waited at once and the program hung forever (zero CPU)
    # on sphere cells as small as n = 60, d = 40, p = 37. The solver must finish, and
    # give the runs it gives on one device.
    script = (
        "import json, numpy as np\n"
        "from shallowflow import make_config, simulate\n"
        "cfg = make_config(n=60, d=40, p=37, runs=2, solver='flow', horizon=0.2,\n"
        "                  horizon_factor=1.0, record=3, seed=3, x64=True)\n"
        "r = simulate(cfg)\n"
        "print(json.dumps([float(x) for x in r.final['loss']] + [int(r.final['slides'].sum())]))\n"
    )
    outs = []
    for flags in ("--xla_force_host_platform_device_count=2", ""):
        env = dict(os.environ, XLA_FLAGS=flags, SHALLOWFLOW_CPU_DEVICES="1", JAX_PLATFORMS="cpu")
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    shared, lone = outs
    assert shared[-1] > 0  # the runs slide (the Cholesky is exercised)
    np.testing.assert_allclose(shared[:-1], lone[:-1], rtol=1e-10)


def test_batched_cholesky_matches_lapack():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 12, 12))
    g = a @ a.transpose(0, 2, 1) + 1e-6 * np.eye(12)
    g[3] = np.eye(12)  # an empty neuron's (identity) block
    with jax.enable_x64(True):
        low = np.asarray(filippov.cholesky(jnp.asarray(g)))
    np.testing.assert_allclose(low, np.linalg.cholesky(g), rtol=0, atol=1e-10)
    assert np.all(np.triu(low, 1) == 0.0)


def test_plain_spd_solve_matches_numpy():
    """linalg.spd_solve (forward and backward substitution in plain XLA ops) solves
    (L Lᵀ) x = b as numpy does, for a batch and several right-hand sides."""
    from shallowflow import linalg

    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6, 6))
    g = a @ np.swapaxes(a, 1, 2) + 6 * np.eye(6)
    b = rng.standard_normal((4, 6, 3))
    with jax.enable_x64(True):
        x = np.asarray(linalg.spd_solve(linalg.cholesky(jnp.asarray(g)), jnp.asarray(b)))
        x1 = np.asarray(linalg.spd_solve(linalg.cholesky(jnp.asarray(g)), jnp.asarray(b[..., 0])))
    np.testing.assert_allclose(x, np.linalg.solve(g, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x1, np.linalg.solve(g, b[..., :1])[..., 0], rtol=1e-10, atol=1e-12)
    assert bool(linalg.is_positive_definite(jnp.asarray(g)).all())
    assert not bool(linalg.is_positive_definite(jnp.asarray(g - 100 * np.eye(6))).any())


def test_float32_flow_lands_its_events_without_looping(monkeypatch):
    """In float32 the tests 'the event is at the step's end' (s < 1 − 1e-12) and 'the
    events are together' (within 1e-9 of a step) rounded away: 1 − 1e-12 is 1 in
    float32, so an event just short of a step's end was found again and again and the
    default `simulate --solver flow` on n = 10 looped (19858 rejected attempts for 142
    steps, then on to the 5·10⁷ cap: minutes). Now it reaches the stop like float64,
    with about one rejection a step."""
    import shallowflow.solvers.flow as flow

    monkeypatch.setattr(flow, "EXACT_MAX_STEPS", 20_000)  # the old loop hits this
    knobs = dict(n=10, d=20, runs=2, record=5, solver="flow")
    cfg = make_config(**knobs)
    res = simulate(cfg)
    assert np.all(res.final["status"] == Outcome.CONVERGED), res.final
    assert np.all(res.final["loss"] <= cfg.solver.stop_loss * (1 + 1e-5))
    assert np.all(res.final["rejected"] <= 2 * res.final["steps"] + 50)
