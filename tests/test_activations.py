"""Activations as specs (issue 18, item 1; SPEC §6): σ′ is the derivative of σ, the field
is −p∇L, the generalised Lemma 1 holds along the exact flow, padded runs are the lone
runs, GD converges to the smooth flow at first order, the geometries stay exact, and
the knob reaches config.json (its old alias still loads)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from shallowflow import model, observables
from shallowflow.activations import (
    gelu,
    leaky,
    monomial,
    parse_activation,
    relu,
    relu_power,
    softplus,
)
from shallowflow.cli import app
from shallowflow.config import make_config
from shallowflow.engine import plan, simulate, simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.geometry import Geometry, to_working
from shallowflow.solvers import ExactFlow, SolveArgs, gd, smooth
from shallowflow.start import geometry_of, make_run

NAMES = [
    "relu",
    "leaky:0.1",
    "relu_power:2",
    "relu_power:3",
    "monomial:2",
    "monomial:3",
    "softplus:5",
    "softplus:0.5",
    "gelu",
]
EPS = float(np.finfo(np.float64).eps)


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trips_and_its_derivative_is_jax_grad(name):
    """name ↔ spec, equal specs hash equal; σ′ = d/du σ away from the kink at 0; the
    declared degree k is Euler's uσ′ = kσ; σ(0) = 0 exactly when the spec says so."""
    act = parse_activation(name)
    assert act.name == name and parse_activation(act.name) == act
    assert hash(parse_activation(name)) == hash(act)
    with jax.enable_x64(True):
        u = jnp.linspace(-3.0, 3.0, 601)
        u = u[jnp.abs(u) > 1e-2]  # the kink of relu, leaky, relu_power
        want = jax.vmap(jax.grad(act.sigma))(u)
        got = act.grad(u)
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=16 * EPS * scale)
        if act.degree is not None:
            np.testing.assert_allclose(
                u * got, act.degree * act.sigma(u), rtol=1e-13, atol=16 * EPS * scale
            )
        assert (float(act.sigma(jnp.zeros(()))) == 0.0) == act.zero_at_zero


def test_leaky_zero_is_relu_bit_for_bit():
    """leaky:0, the alias activation_slope=0 and the default are one spec and one config,
    hence one compiled program and the same numbers."""
    assert parse_activation("leaky:0") is relu or parse_activation("leaky:0") == relu
    assert leaky(-0.0) == relu and leaky(-0.0).name == "relu"
    base = dict(n=12, d=20, p=6, runs=2, record=4, horizon=15.0, x64=True)
    cfgs = [make_config(**base), make_config(**base, activation="leaky:0")]
    cfgs.append(make_config(**base, activation_slope=0.0))
    assert cfgs[0] == cfgs[1] == cfgs[2]
    ref = simulate(cfgs[0])
    other = simulate(make_config(**cfgs[1].knobs()))
    for name, value in ref.records.items():
        np.testing.assert_array_equal(other.records[name], value, err_msg=name)


def _problem(seed: int, n: int = 5, d: int = 4, p: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    y = rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n)
    W = rng.normal(size=(p, d)) / np.sqrt(d)
    a = rng.normal(size=p)
    return X, y, a, W


@pytest.mark.parametrize("name", NAMES)
def test_field_is_minus_p_times_jax_grad_of_the_loss(name):
    act = parse_activation(name)
    X, y, a, W = _problem(1)
    geom = Geometry("dense")
    with jax.enable_x64(True):
        prob = model.Problem(jnp.asarray(X), jnp.asarray(y))
        s = model.State(jnp.asarray(a), jnp.asarray(W))
        field = model.vector_field(geom, s, prob, act)
        grad = jax.grad(lambda st: model.loss(geom, st, prob, act))(s)
    p = a.shape[0]
    pairs = ((field.a, grad.a), (field.v, grad.v))
    for got, want in ((np.asarray(f), -p * np.asarray(g)) for f, g in pairs):
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=64 * EPS * scale)


@pytest.mark.parametrize("name", ["leaky:0.1", "relu_power:2", "monomial:3"])
def test_generalised_lemma1_holds_along_the_exact_flow(name):
    """k a_j² − ‖w_j‖² is constant along the flow (SPEC §6) to the solver's tolerance;
    for k ≠ 1 Lemma 1's a_j² − ‖w_j‖² is not (so the k is needed)."""
    act = parse_activation(name)
    cfg = make_config(n=8, d=12, p=6, x64=True, activation=name, geometry="dense")
    with jax.enable_x64(True):
        start = make_run(jax.random.key(2), cfg)
        s0 = start.state
        grid = jnp.asarray([0.0, 3.0])
        run = ExactFlow(rtol=1e-11, atol=1e-13).solve(
            SolveArgs(
                geom=geometry_of(cfg),
                prob=start.prob,
                state0=s0,
                grid=grid,
                stop_loss=jnp.asarray(0.0),
                diverge_factor=jnp.asarray(1e6),
                act=act,
                tail=1,
                max_steps=200_000,
                size=jnp.asarray(s0.a.size + s0.v.size),
                levels=None,
            )
        )
        end = run.final
        b0, b1 = observables.balance(s0, act), observables.balance(end, act)
        moved = float(jnp.max(jnp.abs(end.a**2 - s0.a**2)))
        scale = float(jnp.max(s0.a**2 + jnp.sum(s0.v**2, axis=1)))
        drift = float(jnp.max(jnp.abs(b1 - b0)))
        plain = observables.balance(s0, relu), observables.balance(end, relu)
    assert float(run.t_final) == pytest.approx(3.0)
    assert moved > 1e-2 * scale  # the run moved
    assert drift < 1e-8 * scale
    if act.degree != 1:
        assert float(jnp.max(jnp.abs(plain[1] - plain[0]))) > 1e3 * drift


def test_no_conservation_law_is_null_not_a_number():
    """softplus and GELU have no Lemma 1: balance is None and the drift columns null;
    the ReLU-only quantities are null for every activation but ReLU, coverage for those
    without an inactive side (SPEC §6)."""
    X, y, a, W = _problem(4)
    geom = Geometry("dense")
    with jax.enable_x64(True):
        prob = model.Problem(jnp.asarray(X), jnp.asarray(y))
        s = model.State(jnp.asarray(a), jnp.asarray(W))
        out = {}
        for name in ("relu", "leaky:0.1", "relu_power:2", "softplus:5", "gelu"):
            act = parse_activation(name)
            b = observables.balance(s, act)
            got = observables.measure(geom, s, prob, b, jnp.asarray(1.0), act)
            out[name] = {k: float(v) for k, v in got.items()}
    assert observables.balance(s, softplus(5)) is None
    for name in ("softplus:5", "gelu"):
        assert np.isnan(out[name]["balance_drift"]) and np.isnan(out[name]["coverage"])
        assert all(np.isnan(out[name][k]) for k in observables.RELU_ONLY)
        assert np.isfinite(out[name]["mu"]) and np.isfinite(out[name]["loss"])
    assert out["relu_power:2"]["balance_drift"] == 0.0  # defined: k = 2
    assert np.isfinite(out["relu_power:2"]["coverage"])
    assert all(np.isnan(out["relu_power:2"][k]) for k in observables.RELU_ONLY)
    assert all(np.isfinite(out["relu"][k]) for k in ("mu_low", "mu_upp", "energy_min"))
    # leaky ReLU: a conservation law and coverage, but the bounds are proven for ReLU
    # only (issue 18, SPEC §6), so they are null, not a number that looks proven
    assert out["leaky:0.1"]["balance_drift"] == 0.0 and np.isfinite(out["leaky:0.1"]["coverage"])
    assert all(np.isnan(out["leaky:0.1"][k]) for k in observables.RELU_ONLY)


# Small cells per geometry; each is also run padded beside larger cells of its program.
PADDED = {
    "dense": dict(data="sphere", n=14, d=8, p=5, geometry="dense"),
    "reduced": dict(data="gaussian", n=10, d=20, p=5, geometry="reduced"),
    "diagonal": dict(data="orthogonal", n=10, d=20, p=5, w_scale=0.1),
    "implicit": dict(data="sphere", n=8, d=30, p=5, w_law="gaussian"),
}


def _assert_padded_is_lone(knobs: dict, tol: float) -> None:
    cfg = make_config(**knobs)
    grow = 16 if cfg.data.data == "orthogonal" else 9
    big = cfg.knobs() | dict(n=cfg.data.n + 5, d=cfg.data.d + grow, p=cfg.init.p + 3, seed=1)
    others = [make_config(**big), make_config(**(big | dict(p=cfg.init.p + 1, seed=2)))]
    buckets = plan([cfg, *others])
    assert buckets[0] == buckets[1] == buckets[2]  # one program for the three
    assert buckets[0].shape != (cfg.data.n, cfg.data.d, cfg.init.p)  # cfg is padded
    padded, alone = simulate_many([cfg, *others])[0], simulate(cfg)
    np.testing.assert_array_equal(alone.final["status"], padded.final["status"])
    for group in ("records", "final", "init"):
        want, got = getattr(alone, group), getattr(padded, group)
        assert set(want) == set(got)
        for name in set(want) - {"steps", "rejected", "evals"}:
            w, g = np.asarray(want[name], float), np.asarray(got[name], float)
            np.testing.assert_array_equal(np.isnan(w), np.isnan(g), err_msg=name)
            ok = ~np.isnan(w)
            scale = max(float(np.max(np.abs(w[ok]), initial=0.0)), 1.0)
            np.testing.assert_allclose(g[ok], w[ok], rtol=tol, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize(
    "name, case",
    [
        ("softplus:5", "dense"),
        ("softplus:5", "reduced"),
        ("softplus:5", "diagonal"),
        ("softplus:5", "implicit"),
        ("gelu", "dense"),
        ("gelu", "reduced"),
        ("gelu", "diagonal"),
    ],
)
def test_padded_gd_run_equals_the_lone_run(name, case):
    """σ(0) ≠ 0 (softplus): padded examples and neurons are masked, so the padded run is
    the lone one (model.Problem); with the kernel's rate on orthogonal data."""
    knobs = dict(runs=2, seed=5, x64=True, record=5, horizon=20.0, activation=name)
    _assert_padded_is_lone(knobs | PADDED[case], 1e-10)


def test_padded_smooth_flow_run_equals_the_lone_run():
    knobs = dict(runs=2, seed=5, x64=True, record=4, horizon=6.0, activation="softplus:5")
    knobs |= dict(solver="flow", rtol=1e-10, atol=1e-12, stop_loss=0.0)
    _assert_padded_is_lone(knobs | PADDED["dense"], 1e-8)


def test_smooth_flow_stops_at_its_stopping_time_and_carries_the_rate():
    """The C¹ flow locates L(t) = stop_loss (log L within rtol below it), and its ∫μ dt
    equals log(L(0)/L(t)) along the way (SPEC §2)."""
    rtol = 1e-9
    knobs = dict(n=10, d=16, p=8, runs=2, record=6, x64=True, activation="gelu")
    res = simulate(make_config(**knobs, solver="flow", rtol=rtol, atol=1e-11, horizon=60.0))
    stop = res.cfg.solver.stop_loss
    assert list(res.final["status"]) == [1, 1]  # converged (Outcome.CONVERGED)
    gap = np.log(stop) - np.log(res.final["loss"])
    assert np.all((gap >= 0) & (gap <= rtol))
    v = res.valid
    want = np.log(res.records["loss"][:, :1] / res.records["loss"])
    np.testing.assert_allclose(res.records["mu_integral"][v], want[v], atol=1e-6)
    assert res.final["crossings"].sum() == 0 and "evals_per_event" not in res.final


def test_gd_converges_to_the_smooth_flow_at_first_order():
    """C¹ σ: GD with step η = T/N is Euler's method for the flow, an error of order η at
    time T: the error halves when η does (three halvings)."""
    act = softplus(2.0)
    cfg = make_config(n=6, d=5, p=4, x64=True, geometry="dense", activation=act.name)
    horizon = 2.0
    with jax.enable_x64(True):
        start = make_run(jax.random.key(3), cfg)
        geom, prob, s0 = geometry_of(cfg), start.prob, start.state
        flow = smooth.solve(
            geom, prob, s0, jnp.asarray([0.0, horizon]), act=act, rtol=1e-12, atol=1e-14,
            stop_loss=0.0,
        )  # fmt: skip
        assert float(flow.t_final) == horizon

        @jax.jit
        def run(lr, steps):
            grid = jnp.stack([jnp.zeros((), jnp.int32), steps])
            return gd.solve(geom, prob, s0, grid, lr=lr, stop_loss=0.0, act=act, tail=1).final

        errors = []
        for steps in (20, 40, 80, 160):
            end = run(jnp.asarray(horizon / steps), jnp.asarray(steps, jnp.int32))
            errors.append(float(model.sq_norm(jax.tree.map(jnp.subtract, end, flow.final))))
    ratios = np.sqrt(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(ratios, 2.0, atol=0.15)


def test_the_floored_flow_agrees_with_the_smooth_flow():
    """For a C¹ σ there are no kinks, so diffrax's floored flow never needs its floor and
    meets its tolerance: the two flow solvers give the same trajectory."""
    knobs = dict(n=8, d=6, p=5, x64=True, geometry="dense", activation="gelu", runs=1)
    knobs |= dict(record=4, horizon=5.0, stop_loss=0.0, rtol=1e-10, atol=1e-12, dtmin=1e-6)
    ends = [simulate(make_config(**knobs, solver=s)) for s in ("flow", "flow-floor")]
    for name in ("loss", "mu_state", "theta_norm2"):
        want, got = (r.records[name] for r in ends)
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8 * scale, err_msg=name)
    assert ends[0].records["loss"][0, -1] < 0.5 * ends[0].records["loss"][0, 0]


@pytest.mark.parametrize(
    "kind, name", [("reduced", "softplus:3"), ("diagonal", "gelu"), ("implicit", "relu_power:2")]
)
def test_geometry_is_exact_for_any_sigma(kind, name):
    """σ acts on ⟨w_j, x_i⟩ only, which every geometry computes exactly (SPEC §3): the
    same trajectory (Euler steps of the field) as the dense geometry."""
    act = parse_activation(name)
    rng = np.random.default_rng(6)
    n, d, p = 6, 12, 5
    X = np.zeros((n, d))
    X[np.arange(n), np.arange(n)] = rng.uniform(1, 2, n)  # orthogonal: every geometry
    y = rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n)
    W = rng.normal(size=(p, d)) / np.sqrt(d)
    a = rng.choice([-1.0, 1.0], p) * (np.linalg.norm(W, axis=1) + 0.5)
    out = {}
    with jax.enable_x64(True):
        for g in ("dense", kind):
            z, v, _ = to_working(g, jnp.asarray(X), jnp.asarray(W))
            geom, prob = Geometry(g), model.Problem(z, jnp.asarray(y))
            s, losses = model.State(jnp.asarray(a), v), []
            for _ in range(60):
                losses.append(float(model.loss(geom, s, prob, act)))
                f = model.vector_field(geom, s, prob, act)
                s = model.State(s.a + 0.1 * f.a, s.v + 0.1 * f.v)
            out[g] = np.array(losses)
    assert out["dense"][-1] < 0.9 * out["dense"][0]
    np.testing.assert_allclose(out[kind], out["dense"], rtol=1e-10)


def test_cli_activation_reaches_config_json(tmp_path):
    runner = CliRunner()
    small = ["--n", "10", "--d", "16", "--runs", "1", "--record", "3", "--horizon", "4"]
    res = runner.invoke(
        app, ["simulate", *small, "--activation", "softplus:5", "--solver", "flow", "--out",
              str(tmp_path / "a")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["activation"] == "softplus:5" and "activation_slope" not in cfg
    assert make_config(**cfg).init.activation == "softplus:5"
    both = ["--activation", "gelu", "--activation-slope", "0.1", "--out", str(tmp_path / "b")]
    res = runner.invoke(app, ["simulate", *small, *both])
    assert res.exit_code == 2 and "activation: give activation or" in res.output


@pytest.mark.parametrize(
    "text, match",
    [
        ("monomial:1", r"activation: monomial needs an integer B >= 2"),
        ("leaky:1.5", r"activation: leaky slope must be in \[0, 1\)"),
        ("relu_power:5", r"activation: relu_power needs K in 2, 3"),
        ("foo", r"activation: unknown 'foo'; allowed: relu \| leaky:S"),
        ("softplus:0", r"activation: softplus needs B > 0"),
    ],
)
def test_bad_activation_names_the_knob(text, match):
    with pytest.raises(ShallowflowInputError, match=match):
        parse_activation(text)
    with pytest.raises(ShallowflowInputError, match=match):
        make_config(activation=text)


def test_constructors_check_their_ranges():
    assert relu_power(3).degree == 3 and monomial(4).degree == 4 and gelu.degree is None
    with pytest.raises(ShallowflowInputError, match=r"activation: leaky slope"):
        leaky(1.0)
    with pytest.raises(ShallowflowInputError, match=r"require_coverage: coverage means u > 0"):
        make_config(activation="gelu", require_coverage=True)


# config.json as main wrote it before issue 18 (cfg.knobs() of
# make_config(n=40, d=60, runs=3, record=5, seed=3, activation_slope=0.1), printed on
# main at e206af2).
OLD_CONFIG = {
    "data": "sphere", "n": 40, "d": 60, "rho": 0.0, "labels": "paper", "teacher_width": 4,
    "data_file": None, "test_n": 0, "test_data": None, "p": 24, "init": "asymmetric",
    "w_law": "uniform", "sigma": 1.0, "w_scale": 1.0, "a_scale": 1.0,
    "require_coverage": False, "activation_slope": 0.1, "state_file": None,
    "state_run": None, "solver": "gd", "lr": 1.0, "rtol": 1e-05, "atol": 1e-07,
    "dtmin": 0.01, "method": "tsit5", "horizon": 80.0, "stop_loss": 0.0125,
    "diverge_factor": 1000000.0, "stop_rule": "inclusive", "record": 5, "grid": "linear",
    "tail": 100, "keep_state": False, "kernel": False, "levels": [], "runs": 3, "seed": 3,
    "geometry": "reduced", "x64": False, "precision": "highest", "memory_gb": 2.0,
}  # fmt: skip


def test_old_config_json_loads_and_cell_ids_are_stable():
    cfg = make_config(**OLD_CONFIG)
    assert cfg.init.activation == "leaky:0.1"
    assert make_config(**cfg.knobs()) == cfg  # the new file reads back
    relu_cfg = make_config(**(OLD_CONFIG | {"activation_slope": 0.0}))
    assert relu_cfg.init.activation == "relu"
    # Cell ids hash a sweep's own knobs; printed on main at e206af2 with
    # Cell(knobs).cell_id for these knobs.
    plain = dict(n=40, d=60, p=10, solver="gd", runs=4)
    assert Cell(plain).cell_id == "6c8618a5dc9ecf5e"
    assert Cell(plain | {"activation_slope": 0.1}).cell_id == "771e490abae0c7c4"
    assert cell_config(plain).init.activation == "relu"
    assert cell_config(plain | {"activation_slope": 0.1}).init.activation == "leaky:0.1"
