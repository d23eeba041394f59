"""Tests of configuration validation and derived knobs (SPEC §2, §5): bad input raises
ShallowflowInputError naming the parameter and the allowed range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shallowflow.config import SimConfig, horizon_steps, make_config
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
    cfg = make_config(n=5, d=3)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.n = 6  # type: ignore[misc]
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
    cfg = SimConfig()
    assert (cfg.data, cfg.labels, cfg.init, cfg.solver) == ("sphere", "paper", "asymmetric", "gd")
    assert cfg.lr == 1.0 and cfg.eps == 0.05
    assert cfg.width == width(cfg.n, 0.05)
    assert cfg.threshold == pytest.approx(1 / (2 * cfg.n))


@pytest.mark.parametrize("n, p", [(1, 1), (20, 21), (1300, 36), (2000, 38)])
def test_horizon_is_papers_T(n, p):
    """T(n, p) = ⌊1.5 √(np) log(np) / 4⌋ + 1 steps (SPEC §5)."""
    want = math.floor(1.5 * math.sqrt(n * p) * math.log(n * p) / 4) + 1
    assert horizon_steps(n, p) == want
    cfg = make_config(n=n, p=p, lr=0.5, horizon_factor=10)
    assert cfg.t_end == pytest.approx(10 * want * 0.5)
    assert make_config(n=n, p=p, solver="flow").t_end == want
    assert make_config(n=n, p=p, horizon=7.5).t_end == 7.5


def test_width_and_threshold_overrides():
    cfg = make_config(n=100, eps=0.05)
    assert cfg.width == 27
    assert make_config(n=100, p=5).width == 5
    assert make_config(n=100, stop_loss=1e-3).threshold == 1e-3


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
    assert make_config(**knobs).resolved_geometry == kind
