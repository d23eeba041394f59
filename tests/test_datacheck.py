"""Tests of shallowflow.theory.width and shallowflow.theory.datacheck (SPEC §2)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shallowflow.errors import ShallowflowInputError
from shallowflow.theory.datacheck import (
    check_data,
    d_needed,
    format_report,
    interaction,
    is_orthogonal,
)
from shallowflow.theory.width import coverage_failure_bound, width, width_paper


def _raises(param, fn, *args, **kwargs):
    with pytest.raises(ShallowflowInputError) as info:
        fn(*args, **kwargs)
    assert info.value.param == param, str(info.value)


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def _equicorrelated(n: int, rho: float) -> np.ndarray:
    """Unit rows x_i = √(1−ρ) e_i + √ρ e_n in d = n + 1: ⟨x_i, x_k⟩ = ρ for i ≠ k."""
    X = np.zeros((n, n + 1))
    X[np.arange(n), np.arange(n)] = math.sqrt(1.0 - rho)
    X[:, n] = math.sqrt(rho)
    return X


# ------------------------------------------------------------------ width


@pytest.mark.parametrize(
    ("n", "eps", "code", "paper"),
    [
        # log(n/ε)/log(4/3) and 4 log(n/ε), worked by hand:
        (100, 0.05, 27, 31),  # log 2000 = 7.6009: 26.42 → 27; 30.40 → 31
        (1, 0.5, 3, 3),  # log 2 = 0.6931: 2.41 → 3; 2.77 → 3
        (1000, 0.01, 41, 47),  # log 1e5 = 11.513: 40.02 → 41; 46.05 → 47
        (1300, 0.05, 36, 41),  # log 26000 = 10.166: 35.34 → 36; 40.66 → 41
        (2100, 0.05, 38, 43),  # log 42000 = 10.645: 37.004 → 38; 42.58 → 43
    ],
)
def test_width_by_hand(n, eps, code, paper):
    assert width(n, eps) == code
    assert width_paper(n, eps) == paper


def test_coverage_failure_bound_by_hand():
    assert coverage_failure_bound(1, 1) == 0.75
    assert coverage_failure_bound(100, 27) == pytest.approx(100 * 0.75**27)
    assert coverage_failure_bound(100, 1) == 1.0


@given(st.integers(1, 10**9), st.floats(1e-9, 0.999))
@settings(max_examples=200, deadline=None)
def test_width_is_the_smallest_p_meeting_the_union_bound(n, eps):
    p = width(n, eps)
    assert n * 0.75**p <= eps * (1 + 1e-9)
    assert n * 0.75 ** (p - 1) >= eps * (1 - 1e-9)
    assert coverage_failure_bound(n, p) <= eps * (1 + 1e-9)


def test_width_bad_inputs():
    for bad_n in (0, -3, 2.5, True, "10"):
        _raises("n", width, bad_n, 0.05)
        _raises("n", width_paper, bad_n, 0.05)
    for bad_eps in (0.0, 1.0, -0.1, 2.0, float("nan")):
        _raises("eps", width, 10, bad_eps)
        _raises("eps", width_paper, 10, bad_eps)
    _raises("p", coverage_failure_bound, 10, 0)
    _raises("n", coverage_failure_bound, 0, 3)


# ------------------------------------------------------------------ κ(X)


@given(st.integers(1, 20), st.integers(0, 10), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_orthogonal_planted(n, extra_d, seed):
    rng = np.random.default_rng(seed)
    d = n + extra_d
    X = np.zeros((n, d))
    X[np.arange(n), np.arange(n)] = rng.uniform(1.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    assert interaction(X) == 0.0 and is_orthogonal(X)
    res = check_data(X)
    assert res["orthogonal"] and res["kappa"] == 0.0 and res["rank"] == n
    assert res["prediction"]["regime"] == "orthogonal"
    rotated = X @ _rotation(d, rng)
    assert interaction(rotated) < 1e-12 and is_orthogonal(rotated)
    res = check_data(rotated)
    assert res["orthogonal"] and res["rank"] == n


@given(st.integers(2, 30), st.floats(0.0, 0.99), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_equicorrelated_kappa_is_rho(n, rho, seed):
    rng = np.random.default_rng(seed)
    X = _equicorrelated(n, rho)
    assert abs(interaction(X) - rho) < 1e-10
    scaled = X * rng.uniform(0.1, 10.0, n)[:, None]  # κ is scale-free
    assert abs(interaction(scaled) - rho) < 1e-10
    rotated = X @ _rotation(n + 1, rng)
    assert abs(interaction(rotated) - rho) < 1e-10
    if rho == 0.0 or rho > 1e-9:  # away from the tolerance, where rounding decides
        assert is_orthogonal(X) == (rho == 0.0)


def test_kappa_takes_absolute_values():
    X = np.array([[1.0, 0.0], [-0.6, 0.8]])
    assert interaction(X) == pytest.approx(0.6, abs=1e-15)


@given(st.integers(1, 25), st.integers(1, 12), st.integers(1, 30), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_blockwise_kappa_matches_full_gram(n, d, block, seed):
    X = np.random.default_rng(seed).standard_normal((n, d))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = np.abs(U @ U.T)
    np.fill_diagonal(C, 0.0)
    expected = min(1.0, C.max()) if n > 1 else 0.0
    assert interaction(X, block_size=block) == pytest.approx(expected, abs=1e-14)
    assert interaction(X) == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sphere_kappa_in_sub_gaussian_band(seed):
    n, d, delta = 200, 2000, 0.05
    g = np.random.default_rng(seed).standard_normal((n, d))
    X = g / np.linalg.norm(g, axis=1, keepdims=True)
    band = math.sqrt(2.0 * math.log(n * n / delta) / d)
    kappa = interaction(X)
    assert 0.5 * band <= kappa <= 1.1 * band


def test_sphere_data_at_d_needed_is_weakly_interacting():
    n = 20
    d = d_needed(n)
    g = np.random.default_rng(7).standard_normal((n, d))
    res = check_data(g / np.linalg.norm(g, axis=1, keepdims=True))
    assert res["n_kappa"] <= 1.0
    assert res["prediction"]["regime"] == "weakly_interacting"


# ------------------------------------------------------------------ d_needed, rank


def test_d_needed_by_hand():
    # 2 n² log(n²/δ)/c²: n = 10, δ = 0.05 → 200 · log 2000 = 1520.18
    assert d_needed(10) == 1521
    assert d_needed(10, delta=0.05, c=2.0) == math.ceil(1520.1804 / 4)
    assert d_needed(1, delta=0.5) == math.ceil(2 * math.log(2))
    _raises("n", d_needed, 0)
    _raises("delta", d_needed, 10, delta=1.0)
    _raises("c", d_needed, 10, c=0.0)


@given(st.integers(1, 15), st.integers(1, 15), st.integers(0, 15), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_rank_deficient_data(n, d, r, seed):
    r = min(r, n, d)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    if r == 0:
        _raises("X", check_data, np.zeros((n, d)))
        return
    assert check_data(X)["rank"] == r


# ------------------------------------------------------------------ check_data


def test_check_data_keys_json_and_regimes():
    rng = np.random.default_rng(3)
    n = 50
    X = rng.standard_normal((n, 200))
    y = rng.uniform(1.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    res = check_data(X, y, eps_list=(0.05, 0.1))
    for key in (
        "n",
        "d",
        "rank",
        "orthogonal",
        "kappa",
        "n_kappa",
        "d_needed",
        "x_norm_min",
        "x_norm_max",
        "y_norm_min",
        "y_norm_max",
        "widths",
        "prediction",
    ):
        assert key in res
    assert json.loads(json.dumps(res)) == res
    assert (res["n"], res["d"], res["rank"]) == (50, 200, 50)
    assert res["widths"] == {"0.05": width(n, 0.05), "0.1": width(n, 0.1)}
    assert res["n_kappa"] == pytest.approx(n * res["kappa"])
    assert res["d_needed"] == d_needed(n)
    assert res["prediction"]["regime"] == "outside"
    assert "no guarantee" in res["prediction"]["statement"]
    assert res["prediction"]["x_norms_in_paper_range"] is False
    assert res["prediction"]["y_in_paper_range"] is True
    assert 1.0 <= res["y_norm_min"] <= res["y_norm_max"] <= 2.0
    text = format_report(res)
    assert "κ" in text and "outside" in text and "|y_i|" in text


def test_check_data_orthogonal_paper_setting():
    # Fig. 6 data: x_i = ρ_i e_i with ρ_i ∈ [1, 2]
    rng = np.random.default_rng(0)
    n, d = 30, 60
    X = np.zeros((n, d))
    X[np.arange(n), np.arange(n)] = rng.uniform(1.0, 2.0, n)
    res = check_data(X, rng.uniform(1.0, 2.0, n))
    pred = res["prediction"]
    assert pred["regime"] == "orthogonal" and "1/√n" in pred["statement"]
    assert pred["x_norms_in_paper_range"] and pred["y_in_paper_range"]
    assert res["y_norm_min"] is not None
    assert json.loads(json.dumps(res)) == res


def test_check_data_weakly_interacting_cut():
    n, rho = 10, 0.05  # n κ = 0.5
    res = check_data(_equicorrelated(n, rho))
    assert res["prediction"]["regime"] == "weakly_interacting"
    assert "Theorem 1" in res["prediction"]["statement"]
    assert res["prediction"]["y_in_paper_range"] is None
    assert res["y_norm_min"] is None and res["y_norm_max"] is None
    assert res["prediction"]["x_norms_in_paper_range"]  # unit rows, up to rounding
    res = check_data(_equicorrelated(n, rho), weak_cut=0.25)
    assert res["prediction"]["regime"] == "outside"


def test_single_example():
    res = check_data(np.array([[1.0, 2.0]]))
    assert res["kappa"] == 0.0 and res["n"] == 1 and res["rank"] == 1


def test_bad_inputs():
    X = np.ones((3, 4))
    X[1] = 0.0
    _raises("X", interaction, X)
    _raises("X", check_data, X)
    X = np.eye(3)
    X[0, 1] = np.nan
    _raises("X", interaction, X)
    _raises("X", check_data, X)
    _raises("X", interaction, np.ones(5))
    _raises("X", check_data, np.ones(5))
    _raises("X", check_data, np.ones((0, 3)))
    _raises("y", check_data, np.eye(3), np.ones(2))
    _raises("eps", check_data, np.eye(3), eps_list=(0.0,))
    _raises("block_size", interaction, np.eye(3), block_size=0)
