"""Tests of configuration validation and derived knobs (SPEC §2, §5): bad input raises
ShallowflowInputError naming the parameter and the allowed range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shallowflow.config import horizon_steps, make_config
from shallowflow.errors import ShallowflowInputError
from shallowflow.io import validate_data
from shallowflow.theory.width import width


def _bad(param: str, *fragments: str, **knobs) -> ShallowflowInputError:
    with pytest.raises(ShallowflowInputError) as info:
        make_config(**knobs)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.param == param, str(err)
    msg = str(err)
    assert msg.startswith(f"{param}:")
    for frag in fragments:
        assert frag in msg, msg
    return err


@pytest.mark.parametrize(
    "knobs, param, fragments",
    [
        (dict(n=0), "n", ("1",)),
        (dict(n=-3), "n", ("1",)),
        (dict(p=0), "p", ("1",)),
        (dict(lr=0), "lr", ("0",)),
        (dict(lr=-1.0), "lr", ("0",)),
        (dict(eps=0.0), "eps", ("0",)),
        (dict(eps=1.0), "eps", ("1",)),
        (dict(d=0), "d", ("1",)),
        (dict(runs=0), "runs", ("1",)),
        (dict(record=1), "record", ("2",)),
        (dict(activation_slope=1.0), "activation_slope", ("1",)),
        (dict(rtol=0.0), "rtol", ("0",)),
        (dict(memory_gb=0.0), "memory_gb", ("0",)),
    ],
)
def test_out_of_range_numbers_name_the_parameter_and_range(knobs, param, fragments):
    _bad(param, *fragments, **knobs)


@pytest.mark.parametrize(
    "param, value, allowed",
    [
        ("data", "foo", ("sphere", "orthogonal", "gaussian")),
        ("init", "foo", ("asymmetric", "balanced", "gaussian", "group")),
        ("solver", "foo", ("gd", "flow")),
        ("geometry", "foo", ("dense", "reduced", "diagonal", "implicit")),
        ("labels", "foo", ("paper", "teacher")),
        ("method", "foo", ("tsit5",)),
    ],
)
def test_unknown_names_list_the_allowed_ones(param, value, allowed):
    _bad(param, *allowed, **{param: value})


def test_orthogonal_data_need_n_at_most_d():
    err = _bad("n", "n <= d", data="orthogonal", n=11, d=10)
    assert "11" in str(err) and "10" in str(err)
    make_config(data="orthogonal", n=10, d=10)  # the boundary case is allowed


@pytest.mark.parametrize(
    "knobs, param",
    [
        (dict(data="correlated", n=10, d=10), "n"),
        (dict(init="group", data="sphere"), "init"),
        (dict(geometry="diagonal", data="sphere"), "geometry"),
        (dict(geometry="implicit", data="sphere", n=5, d=50), "geometry"),  # uniform w
        (dict(data="file"), "data_file"),
        (dict(init="file"), "state_file"),
        (dict(nonsense=1), "nonsense"),
    ],
)
def test_inconsistent_combinations(knobs, param):
    _bad(param, **knobs)


def test_config_is_immutable():
    """Every spec is frozen: assigning a field (n lives in cfg.data) or a spec is refused
    by pydantic's frozen-instance check, not by any other error."""
    from pydantic import ValidationError

    cfg = make_config(n=5, d=3)
    with pytest.raises(ValidationError, match=r"(?s)DataSpec\nn\n.*Instance is frozen"):
        cfg.data.n = 6  # type: ignore[misc]
    with pytest.raises(ValidationError, match=r"(?s)SimConfig\ndata\n.*Instance is frozen"):
        cfg.data = cfg.data  # type: ignore[misc]
    assert cfg.data.n == 5
    assert hash(cfg) == hash(make_config(n=5, d=3))


@pytest.mark.parametrize(
    "X, y, param",
    [
        (np.ones((3, 2)), np.ones(4), "y"),  # mismatched lengths
        (np.ones((3, 2)), np.ones((3, 1)), "y"),  # y not 1-D
        (np.ones(3), None, "X"),  # X not 2-D
        (np.zeros((0, 2)), None, "X"),  # n = 0
        (np.array([[1.0, np.nan], [0.0, 1.0]]), None, "X"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), None, "X"),
        (np.eye(2), np.array([1.0, -np.inf]), "y"),
        (np.eye(2), np.array([np.nan, 1.0]), "y"),
    ],
)
def test_bad_user_data(X, y, param):
    with pytest.raises(ShallowflowInputError) as info:
        validate_data(X, y)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}:")


def test_nonfinite_message_locates_the_entry():
    X = np.eye(3)
    X[2, 1] = np.nan
    with pytest.raises(ShallowflowInputError, match=r"row 2, column 1"):
        validate_data(X)


# ------------------------------------------------------------------ derived knobs


def test_defaults_are_the_papers():
    cfg = make_config()
    knobs = (cfg.data.data, cfg.data.labels, cfg.init.init, cfg.solver.solver)
    assert knobs == ("sphere", "paper", "asymmetric", "gd")
    assert cfg.solver.lr == 1.0
    assert cfg.init.p == width(cfg.data.n, 0.05)
    assert cfg.solver.stop_loss == pytest.approx(1 / (2 * cfg.data.n))


@pytest.mark.parametrize("n, p", [(1, 1), (20, 21), (1300, 36), (2000, 38)])
def test_horizon_is_papers_T(n, p):
    """T(n, p) = ⌊1.5 √(np) log(np) / 4⌋ + 1 steps (SPEC §5)."""
    want = math.floor(1.5 * math.sqrt(n * p) * math.log(n * p) / 4) + 1
    assert horizon_steps(n, p) == want
    cfg = make_config(n=n, p=p, lr=0.5, horizon_factor=10)
    assert cfg.solver.horizon == pytest.approx(10 * want * 0.5)
    assert make_config(n=n, p=p, solver="flow").solver.horizon == want
    assert make_config(n=n, p=p, horizon=7.5).solver.horizon == 7.5


def test_width_and_threshold_overrides():
    cfg = make_config(n=100, eps=0.05)
    assert cfg.init.p == 27
    assert make_config(n=100, p=5).init.p == 5
    assert make_config(n=100, stop_loss=1e-3).solver.stop_loss == 1e-3


@pytest.mark.parametrize(
    "knobs, kind",
    [
        (dict(data="orthogonal", n=5, d=9), "diagonal"),
        (dict(data="sphere", n=5, d=9), "reduced"),  # uniform w: not rotation invariant
        (dict(data="sphere", n=5, d=9, init="gaussian"), "implicit"),
        (dict(data="gaussian", n=5, d=9, w_law="gaussian"), "implicit"),
        (dict(data="sphere", n=9, d=5), "dense"),
        (dict(data="sphere", n=5, d=5, init="gaussian"), "dense"),
        (dict(data="orthogonal", n=5, d=9, geometry="dense"), "dense"),
    ],
)
def test_resolved_geometry(knobs, kind):
    assert make_config(**knobs).run.geometry == kind


# ----------------------------------------------------------------- issue 11 regressions


@pytest.mark.parametrize(
    "knobs, param",
    [
        (dict(lr=math.inf), "lr"),
        (dict(lr=math.nan), "lr"),
        (dict(horizon=math.inf), "horizon"),
        (dict(init="gaussian", sigma=math.inf), "sigma"),
        (dict(w_scale=math.inf), "w_scale"),
        (dict(data="correlated", d=40, rho=math.nan), "rho"),
        (dict(stop_loss=math.inf), "stop_loss"),
    ],
)
def test_non_finite_numbers_are_refused(knobs, param):
    _bad(param, "finite", **knobs)


def test_gd_horizon_cannot_overflow_the_step_counter():
    # 1e12 (and 3e9) steps overflowed the int32 step grid: rows after the stop showed
    # the initial loss.
    _bad("horizon", "2^30", horizon=1e12)
    _bad("horizon", "2^30", horizon=3e9)
    _bad("horizon", "2^30", horizon=3e9, lr=2.0, n=10, d=5)  # 1.5e9 steps
    make_config(horizon=2.0**30)  # the boundary is allowed
    make_config(horizon=1e12, solver="flow")  # the flow counts time, not steps


def test_seeds_are_32_bit():
    # jax.random.key(2**32) is the key of seed 0: a larger seed silently repeated seed 0.
    _bad("seed", "4294967295", seed=2**32)
    _bad("seed", "0", seed=-1)
    make_config(seed=2**32 - 1)


@pytest.mark.parametrize(
    "knobs, param",
    [
        (dict(data="sphere", rho=0.9), "rho"),  # was ignored, yet recorded
        (dict(data="sphere", labels="file"), "labels"),  # was a traceback
    ],
)
def test_knobs_that_do_not_apply_are_refused(knobs, param):
    _bad(param, **knobs)
    make_config(data="correlated", d=2000, rho=0.9)


@pytest.mark.parametrize(
    "knobs, param",
    [
        (dict(p=10**8), "p"),  # was RESOURCE_EXHAUSTED after compiling
        (dict(n=10**8), "n"),
        (dict(runs=10**8), "runs"),  # hung building the results
    ],
)
def test_cells_that_cannot_fit_are_refused_with_the_estimate(knobs, param):
    _bad(param, "GiB", **knobs)


def test_sweep_seed_obeys_the_seed_rules():
    from shallowflow.experiments.sweepfile import sweep_cells

    with pytest.raises(ShallowflowInputError) as info:
        sweep_cells({"seed": -1, "base": {"n": 10, "d": 5}, "grid": {"p": [2, 3]}})
    assert info.value.param == "seed"


def test_float32_runs_refuse_knobs_beyond_float32():
    _bad("w_scale", "float32", w_scale=1e300)  # was inf on device
    make_config(w_scale=1e300, x64=True)


def test_auto_rule_is_the_text_of_the_knobs_that_may_be_left_out():
    from shallowflow.config import KNOBS, auto_rule

    assert auto_rule("stop_loss") == "1/(2n)"
    assert auto_rule("lr") is None
    assert {"p", "horizon", "stop_loss", "geometry"} <= {k for k in KNOBS if auto_rule(k)}


# config.json as main wrote it at ecd9dd6, before the spec fields took their knobs'
# names (DataSpec.law, .file, .test_file and InitSpec.law, .file were aliased to the
# knobs data, data_file, test_data, init, state_file): `cfg.knobs()` of a run from a
# data file, a state file and a held-out file, after load_user, printed on main.
FILES_CONFIG_JSON = {
    "data": "file", "n": 6, "d": 8, "rho": 0.0, "labels": "file", "teacher_width": 4,
    "data_file": "train.npz", "test_n": 3, "test_data": "test.npz",
    "x_norms": [1.0, 2.0], "label_range": [1.0, 2.0], "p": 5, "init": "file",
    "w_law": "uniform", "sigma": 1.0, "w_scale": 1.0, "a_scale": 1.0,
    "require_coverage": False, "activation": "relu", "state_file": "theta0.npz",
    "state_run": None, "solver": "gd", "lr": 1.0, "rtol": 1e-05, "atol": 1e-07,
    "dtmin": 0.01, "method": "tsit5", "horizon": 7.0, "stop_loss": 0.08333333333333333,
    "diverge_factor": 1000000.0, "stop_rule": "inclusive", "record": 50, "grid": "linear",
    "tail": 100, "keep_state": False, "kernel": False, "fitted": False, "levels": [],
    "runs": 2, "seed": 0, "geometry": "reduced", "x64": False, "precision": "highest",
    "memory_gb": 2.0,
}  # fmt: skip


def test_a_config_json_with_files_written_before_the_renames_loads_by_knob_name():
    """config.json stores knobs by name: the renamed fields read the old file's keys,
    hold its values and write it back unchanged (JSON lists read back as tuples); a sweep
    cell of the renamed knobs keeps the id and seed main gave it (printed at ecd9dd6)."""
    from shallowflow.experiments.cells import Cell, cell_config

    cfg = make_config(**FILES_CONFIG_JSON)
    data, init = cfg.data, cfg.init
    assert (data.data, data.data_file, data.test_data) == ("file", "train.npz", "test.npz")
    assert (init.init, init.state_file) == ("file", "theta0.npz")
    tuples = {k: tuple(v) for k, v in FILES_CONFIG_JSON.items() if isinstance(v, list)}
    assert cfg.knobs() == FILES_CONFIG_JSON | tuples
    cell = dict(data="orthogonal", init="balanced", n=6, d=12, p=5, runs=2, seed=1)
    assert Cell(cell).cell_id == "f3976dd2dcf69722"
    made = cell_config(cell)
    assert made.run.seed == 3531324615
    assert (made.data.data, made.init.init) == ("orthogonal", "balanced")
