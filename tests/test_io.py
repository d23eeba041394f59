"""Tests of shallowflow.io: round-trips and validation of users' arrays."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shallowflow.errors import ShallowflowInputError
from shallowflow.io import (
    load_data,
    load_state,
    save_data,
    save_state,
    validate_data,
    validate_state,
)

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def data_sets(draw, with_labels=True, elements=FINITE):
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 6))
    X = draw(hnp.arrays(np.float64, (n, d), elements=elements))
    y = draw(hnp.arrays(np.float64, (n,), elements=elements)) if with_labels else None
    return X, y


def _raises(param, fn, *args, **kwargs) -> ShallowflowInputError:
    with pytest.raises(ShallowflowInputError) as info:
        fn(*args, **kwargs)
    assert info.value.param == param, str(info.value)
    assert str(info.value).startswith(f"{param}: ")
    return info.value


# ------------------------------------------------------------------ round-trips


@given(data_sets(), st.booleans())
@settings(max_examples=50, deadline=None)
def test_npz_round_trip_is_exact(data, keep_labels):
    X, y = data
    y = y if keep_labels else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        save_data(path, X, y)
        X2, y2 = load_data(path)
    assert X2.dtype == np.float64 and np.array_equal(X2, X)
    if y is None:
        assert y2 is None
    else:
        assert y2.dtype == np.float64 and np.array_equal(y2, y)


@given(data_sets(with_labels=False))
@settings(max_examples=50, deadline=None)
def test_npy_round_trip_is_exact(data):
    X, _ = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npy"
        save_data(path, X)
        X2, y2 = load_data(path)
    assert y2 is None and X2.dtype == np.float64 and np.array_equal(X2, X)


@given(data_sets(), st.booleans())
@settings(max_examples=50, deadline=None)
def test_csv_round_trip_is_close(data, keep_labels):
    X, y = data
    y = y if keep_labels else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        save_data(path, X, y)
        X2, y2 = load_data(path)
    np.testing.assert_allclose(X2, X, rtol=1e-15, atol=0)
    if y is None:
        assert y2 is None
    else:
        np.testing.assert_allclose(y2, y, rtol=1e-15, atol=0)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=FINITE),
    st.data(),
)
@settings(max_examples=50, deadline=None)
def test_state_round_trip_is_exact(W, data):
    a = data.draw(hnp.arrays(np.float64, (W.shape[0],), elements=FINITE))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.npz"
        save_state(path, W, a)
        W2, a2 = load_state(path)
    assert np.array_equal(W2, W) and np.array_equal(a2, a)
    assert W2.dtype == a2.dtype == np.float64


# ------------------------------------------------------------------ CSV conventions


def test_csv_without_header_is_all_x(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,3\n4,5,6\n")
    X, y = load_data(path)
    assert y is None and np.array_equal(X, [[1, 2, 3], [4, 5, 6]])


def test_csv_header_without_y_is_all_x(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    X, y = load_data(path)
    assert y is None and np.array_equal(X, [[1, 2], [3, 4]])


def test_csv_column_named_y_is_the_label(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(" f1 , y , f2\n1, -1.5, 2\n3, 2.5, 4\n")
    X, y = load_data(path)
    assert np.array_equal(X, [[1, 2], [3, 4]]) and np.array_equal(y, [-1.5, 2.5])


def test_csv_errors(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x0,x1\n1,2\n3,abc\n")
    assert "abc" in str(_raises("X", load_data, path))
    path.write_text("1,2\n3\n")
    _raises("X", load_data, path)
    path.write_text("x0,y,y\n1,2,3\n")
    _raises("y", load_data, path)
    path.write_text("y\n1\n2\n")  # labels but no features
    _raises("X", load_data, path)
    path.write_text("")
    assert "n = 0" in str(_raises("X", load_data, path))
    path.write_text("x0,x1,y\n1,nan,2\n")
    _raises("X", load_data, path)
    path.write_text("x0,x1,y\n1,2,inf\n")
    _raises("y", load_data, path)


def test_integer_and_bool_inputs_become_float64():
    X, y = validate_data(np.arange(6).reshape(3, 2), np.array([True, False, True]))
    assert X.dtype == y.dtype == np.float64
    X, _ = validate_data([[1, 2], [3, 4]])
    assert X.dtype == np.float64


# ------------------------------------------------------------------ corruptions


@given(data_sets(), st.sampled_from(["X", "y"]), st.sampled_from([np.nan, np.inf, -np.inf]))
@settings(max_examples=60, deadline=None)
def test_non_finite_injection_names_the_array(data, target, bad):
    X, y = data
    arr = X if target == "X" else y
    rng = np.random.default_rng(arr.size)
    idx = rng.integers(0, arr.size, size=rng.integers(1, arr.size + 1))
    arr.flat[idx] = bad
    count = np.unique(idx).size
    err = _raises(target, validate_data, X, y)
    assert f"{count} non-finite" in str(err)
    first = np.argwhere(~np.isfinite(arr))[0]
    where = f"row {first[0]}, column {first[1]}" if target == "X" else f"index {first[0]}"
    assert where in str(err)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.npz"
        np.savez(path, X=X, y=y)
        _raises(target, load_data, path)


@given(data_sets(), st.integers(1, 3), st.booleans())
@settings(max_examples=40, deadline=None)
def test_label_length_mismatch(data, extra, longer):
    X, y = data
    y = np.concatenate([y, np.zeros(extra)]) if longer else y[: max(0, len(y) - extra)]
    if len(y) == X.shape[0]:
        return
    assert f"n = {X.shape[0]}" in str(_raises("y", validate_data, X, y))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.npz"
        np.savez(path, X=X, y=y)
        _raises("y", load_data, path)


@given(data_sets(), st.sampled_from(["features", "x", "data"]))
@settings(max_examples=20, deadline=None)
def test_missing_key_names_the_array(data, wrong_key):
    X, y = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.npz"
        np.savez(path, **{wrong_key: X, "y": y})
        assert wrong_key in str(_raises("X", load_data, path))
        np.savez(path, W=X)
        _raises("a", load_state, path)
        np.savez(path, a=X[:, 0])
        _raises("W", load_state, path)


@given(data_sets(elements=ANY_FLOAT), st.sampled_from([".npz", ".npy", ".csv"]))
@settings(max_examples=80, deadline=None)
def test_loaders_never_return_non_finite_values(data, suffix):
    X, y = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d{suffix}"
        if suffix == ".npz":
            np.savez(path, X=X, y=y)
        elif suffix == ".npy":
            np.save(path, X)
        else:
            np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.17g")
        try:
            X2, y2 = load_data(path)
        except ShallowflowInputError as err:
            assert err.param in ("X", "y")
            assert not (np.isfinite(X).all() and np.isfinite(y).all())
            return
    assert np.isfinite(X2).all() and (y2 is None or np.isfinite(y2).all())


def test_shapes_and_sizes():
    _raises("X", validate_data, np.ones(3))
    _raises("X", validate_data, np.ones((2, 2, 2)))
    _raises("X", validate_data, np.ones(()))
    assert "n = 0" in str(_raises("X", validate_data, np.ones((0, 3))))
    assert "d = 0" in str(_raises("X", validate_data, np.ones((3, 0))))
    _raises("y", validate_data, np.ones((3, 2)), np.ones((3, 1)))
    _raises("y", validate_data, np.ones((3, 2)), require_labels=True)
    _raises("X", validate_data, [[1.0, 2.0], [3.0]])
    _raises("X", validate_data, np.array([["a", "b"]]))
    _raises("X", validate_data, np.array([[1, None]], dtype=object))
    _raises("X", validate_data, np.ones((2, 2), dtype=complex))
    _raises("y", validate_data, np.ones((2, 2)), np.array(["1", "2"]))


def test_state_validation():
    W, a = np.ones((3, 2)), np.ones(3)
    validate_state(W, a, d=2)
    assert "d = 5" in str(_raises("W", validate_state, W, a, d=5))
    assert "p = 3" in str(_raises("a", validate_state, W, np.ones(4)))
    assert "p ≥ 1" in str(_raises("W", validate_state, np.ones((0, 2)), np.ones(0)))
    _raises("W", validate_state, np.ones(3), a)
    _raises("W", validate_state, np.ones((3, 0)), a)
    _raises("a", validate_state, W, np.ones((3, 1)))
    _raises("d", validate_state, W, a, d=0)
    W[1, 1] = np.nan
    assert "row 1, column 1" in str(_raises("W", validate_state, W, a))
    a[2] = np.inf
    _raises("a", validate_state, np.ones((3, 2)), a)


def test_path_errors(tmp_path):
    _raises("path", load_data, tmp_path / "missing.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    _raises("path", load_data, tmp_path / "d.txt")
    _raises("path", load_state, tmp_path / "missing.npz")
    _raises("path", load_state, tmp_path / "d.txt")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    _raises("path", load_data, tmp_path / "junk.npz")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    _raises("path", load_data, tmp_path / "junk.npy")
    _raises("path", save_data, tmp_path / "d.txt", np.ones((2, 2)))
    _raises("path", save_state, tmp_path / "s.npy", np.ones((2, 2)), np.ones(2))
    _raises("y", save_data, tmp_path / "d.npy", np.ones((2, 2)), np.ones(2))


def test_object_arrays_in_files_are_non_numeric(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1, "a"]], dtype=object))
    _raises("X", load_data, path)
    path = tmp_path / "obj.npy"
    np.save(path, np.array([[1, "a"]], dtype=object))
    _raises("X", load_data, path)
    path = tmp_path / "str.npz"
    np.savez(path, X=np.ones((2, 2)), y=np.array(["a", "b"]))
    _raises("y", load_data, path)


def test_atomic_writes_respect_the_umask(tmp_path):
    """Results are written through mkstemp (0600) and renamed: the final file must get
    the usual mode 0666 & ~umask, readable by the collaborators who share a sweep."""
    import os

    import pandas as pd

    from shallowflow.storage import write_json_atomic, write_parquet_atomic

    old = os.umask(0o022)
    try:
        write_parquet_atomic(pd.DataFrame({"x": [1.0]}), tmp_path / "t.parquet")
        write_json_atomic({"x": 1}, tmp_path / "t.json")
    finally:
        os.umask(old)
    for name in ("t.parquet", "t.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
