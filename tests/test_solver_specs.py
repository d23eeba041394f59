"""Solvers as specs (issue 18, item 4): a solver is one module.

A toy solver is defined here, in the test, not in the package: explicit Euler,
θ_{k+1} = θ_k + η F(θ_k), F = −p∇L, recorded at integer steps (a discrete solver, like
GD). Registered from the test, it runs through the public ``simulate`` and through a
sweep (``run_cells`` on two cells) without any change to the engine or the trajectory,
and it is GD step for step: on a run that neither stops nor diverges (stop loss 0), the
two compute the same sums in the same order, so they agree to rounding in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shallowflow import make_config, simulate
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.batch import run_cells
from shallowflow.model import field_from_forward, forward
from shallowflow.solvers import GD, SOLVERS, ExactFlow, FloorFlow, SolveArgs, Solver, register
from shallowflow.solvers.common import Outcome, Trajectory
from shallowflow.storage import read_parquet

EPS64 = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Euler(Solver):
    """Explicit Euler with step ``lr`` (traced), recorded at integer steps; it never
    stops early and reports no μ(t_∞) (NaN) and no levels."""

    lr: float

    discrete: ClassVar[bool] = True
    measures_levels: ClassVar[bool] = False

    @property
    def unit(self) -> float:
        return self.lr

    def solve(self, args: SolveArgs) -> Trajectory:
        geom, z = args.geom.for_solver(args.prob.z)
        prob, act, grid = args.prob._replace(z=z), args.act, args.grid

        def step(_, state):
            field = field_from_forward(geom, state, prob, forward(geom, state, prob, act), act)
            return jax.tree_util.tree_map(lambda x, f: x + self.lr * f, state, field)

        def upto(carry, g):
            state, k = carry
            state = jax.lax.fori_loop(k, g, step, state)
            return (state, jnp.maximum(k, g)), state

        k0 = jnp.zeros((), grid.dtype)
        (final, k), states = jax.lax.scan(upto, (args.state0, k0), grid)
        dtype = args.state0.a.dtype
        return Trajectory(
            times=grid.astype(dtype) * self.lr,
            states=states,
            valid=grid <= k,
            final=final,
            t_final=k.astype(dtype) * self.lr,
            steps=k,
            status=jnp.asarray(Outcome.HORIZON, jnp.int32),
            tail_rate=jnp.asarray(jnp.nan, dtype),
        )


@pytest.fixture
def euler(monkeypatch):
    """The toy solver, known as solver='euler' for this test only."""
    monkeypatch.setitem(SOLVERS, "euler", GD)  # a slot register() may overwrite
    register("euler", Euler)
    return "euler"


KNOBS = dict(n=12, d=8, p=6, runs=2, seed=3, x64=True, lr=0.5, horizon=40.0, record=9)
KNOBS |= dict(stop_loss=0.0, geometry="dense")


def _assert_same_run(res, ref):
    """Records and final state agree to rounding: the same steps, summed alike."""
    assert set(res.records) == set(ref.records)
    for name, want in ref.records.items():
        got, want = res.records[name], np.nan_to_num(want)  # ReLU-only nulls agree too
        got = np.nan_to_num(got)
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=0, atol=64 * EPS64 * scale, err_msg=name)
    for name in ("W", "a"):
        got, want = res.states[name], ref.states[name]
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=0, atol=64 * EPS64 * scale, err_msg=name)
    np.testing.assert_array_equal(res.times, ref.times)


def test_a_solver_defined_in_a_test_runs_through_simulate_and_equals_gd(euler):
    res = simulate(make_config(**KNOBS, solver=euler, keep_state=True))
    ref = simulate(make_config(**KNOBS, keep_state=True))
    assert (ref.final["status"] == Outcome.HORIZON).all()  # GD ran the whole horizon too
    np.testing.assert_array_equal(res.final["steps"], ref.final["steps"])
    _assert_same_run(res, ref)
    # both discrete: μ is the realised rate between records, from the same losses
    np.testing.assert_allclose(res.records["mu"], ref.records["mu"], rtol=1e-12, atol=64 * EPS64)


def test_a_solver_defined_in_a_test_runs_through_a_sweep(euler, tmp_path):
    """Two cells through the sweep runner (planned, bucketed, stored); each cell's runs
    are GD's from the same engine seed (the sweep derives it from the cell's knobs)."""
    cells = [dict(KNOBS, solver=euler, n=n) for n in (10, 12)]
    got = run_cells(cells, tmp_path, progress=False)
    assert set(got["solver"]) == {"euler"} and len(got) == 2 * KNOBS["runs"]
    assert len(read_parquet(tmp_path / "runs.parquet")) == len(got)
    for n, rows in got.groupby("n"):
        ref = simulate(make_config(**(KNOBS | dict(n=n, seed=int(rows["cell_seed"].iloc[0])))))
        rows = rows.sort_values("run")
        np.testing.assert_allclose(
            rows["final_loss"].to_numpy(), ref.final["loss"], rtol=1e-12, atol=0
        )


def test_an_unregistered_solver_is_refused_with_the_known_names():
    with pytest.raises(ShallowflowInputError, match=r"solver: unknown 'euler'; allowed: \('gd'"):
        make_config(solver="euler")


def test_register_takes_only_solver_specs():
    with pytest.raises(TypeError, match="register: .* is not a Solver subclass"):
        register("not-a-solver", dict)  # type: ignore[arg-type]
    assert "not-a-solver" not in SOLVERS


@pytest.mark.parametrize(
    "spec, static, values",
    [
        (GD(lr=0.5, stop_rule="authors"), GD(lr=0.0, stop_rule="authors"), (0.5,)),
        (ExactFlow(rtol=1e-5, atol=1e-7), ExactFlow(rtol=0.0, atol=0.0), (1e-5, 1e-7)),
        (
            FloorFlow(rtol=1e-5, atol=1e-7, dtmin=1e-2, method="dopri5"),
            FloorFlow(rtol=0.0, atol=0.0, dtmin=0.0, method="dopri5"),
            (1e-5, 1e-7, 1e-2),
        ),
    ],
)
def test_a_spec_splits_into_its_compiled_part_and_its_run_values(spec, static, values):
    """Two specs that differ only in traced values share one compiled part; ``bind``
    undoes ``split``."""
    part, got = spec.split()
    assert part == static and got == values
    assert part.bind(got) == spec
    other = type(spec).from_knobs({**spec.__dict__, spec.traced()[0]: 0.25})
    assert other.split()[0] == part and other != spec


def test_the_clock_converts_steps_and_times_one_way_for_each_solver():
    """GD's grid is integer steps of η (time kη); a flow's grid is time; the default
    horizon is T(n, p) paper steps, T·η for GD and T for a flow (SPEC §5)."""
    gd, flow = GD(lr=0.25), ExactFlow(rtol=1e-5, atol=1e-7)
    grid = gd.record_grid(10.0, 5, "linear")
    np.testing.assert_array_equal(grid, [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(gd.times(grid), [0.0, 2.5, 5.0, 7.5, 10.0])
    np.testing.assert_array_equal(flow.record_grid(10.0, 5, "linear"), [0.0, 2.5, 5.0, 7.5, 10.0])
    assert gd.steps(10.0) == 40 and gd.default_horizon(40) == 10.0
    assert flow.default_horizon(40) == 40.0 and flow.tail_window(100) == 100
    assert gd.tail_window(100) == 400  # μ(t_∞)'s 100 units of time: 400 steps of 1/4
    cfg = make_config(n=10, d=5, lr=0.25)
    assert cfg.solver.spec == GD(lr=0.25) and cfg.solver.steps(cfg.solver.horizon) > 0


# config.json of `shallowflow simulate --n 10 --d 5 --solver flow-floor --record 7
# --dtmin 0.01 --runs 2`, written by main before the solvers became specs (1d2a9dd).
OLD_CONFIG_JSON = {
    "data": "sphere", "n": 10, "d": 5, "rho": 0.0, "labels": "paper", "teacher_width": 4,
    "data_file": None, "test_n": 0, "test_data": None, "p": 19, "init": "asymmetric",
    "w_law": "uniform", "sigma": 1.0, "w_scale": 1.0, "a_scale": 1.0,
    "require_coverage": False, "activation": "relu", "state_file": None, "state_run": None,
    "solver": "flow-floor", "lr": 1.0, "rtol": 1e-05, "atol": 1e-07, "dtmin": 0.01,
    "method": "tsit5", "horizon": 28.0, "stop_loss": 0.05, "diverge_factor": 1000000.0,
    "stop_rule": "inclusive", "record": 7, "grid": "linear", "tail": 100,
    "keep_state": False, "kernel": False, "levels": [], "runs": 2, "seed": 0,
    "geometry": "dense", "x64": False, "precision": "highest", "memory_gb": 2.0,
}  # fmt: skip


def test_a_config_json_written_before_the_renames_loads_to_the_same_config():
    """Spec fields now carry their knobs' names (dtmin, record, solver); config.json
    stores knobs by name, so an old one loads and writes back unchanged."""
    cfg = make_config(**OLD_CONFIG_JSON)
    # knobs added since (the range knobs) take their defaults, which draw as before
    added = {"x_norms": (1.0, 2.0), "label_range": (1.0, 2.0), "fitted": False}
    assert cfg.knobs() == {**OLD_CONFIG_JSON, "levels": ()} | added
    assert cfg.solver.spec == FloorFlow(rtol=1e-5, atol=1e-7, dtmin=0.01, method="tsit5")
    assert cfg.record.record == 7 and cfg.solver.solver == "flow-floor"


def test_sweep_cell_ids_and_seeds_are_those_main_computed():
    """Stored sweeps resume: a cell's id and engine seed, computed on main before this
    change (1d2a9dd) and hard-coded here, are unchanged."""
    from shallowflow.experiments.cells import Cell, cell_config

    cell = dict(n=10, d=5, solver="flow-floor", dtmin=0.01, record=7, runs=2, seed=3)
    assert Cell(cell).cell_id == "bd40a9e9a9253a50"
    assert cell_config(cell).run.seed == 2955982984
