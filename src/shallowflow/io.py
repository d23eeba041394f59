"""Loading and saving users' arrays: data ``(X, y)`` and states ``(W, a)`` (SPEC §1).

Formats:

- data, ``.npz``: array ``X`` of shape (n, d), optional array ``y`` of shape (n,);
- data, ``.npy``: ``X`` only, 2-D;
- data, ``.csv``: comma-separated numbers, one example per row, with or without a
  header line. The first line is a header when some field of it is not a number.
  Convention: a header column named exactly ``y`` holds the labels and every other
  column belongs to ``X``; without a ``y`` column (or without a header) all columns
  are ``X`` and ``y`` is None;
- state, ``.npz``: array ``W`` of shape (p, d) and array ``a`` of shape (p,); or, as
  ``simulate --keep-state`` writes it, ``W`` (runs, p, d) and ``a`` (runs, p).

Every loader validates what it read and returns float64 arrays with finite entries;
bad input raises :class:`ShallowflowInputError` naming the parameter (``path``,
``X``, ``y``, ``W``, ``a``, ``d``) and what is allowed.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np

from shallowflow.errors import ShallowflowInputError
from shallowflow.storage import atomic_open

PathLike = str | os.PathLike
DATA_SUFFIXES = (".npz", ".npy", ".csv")


# --------------------------------------------------------------------------- validation


def _as_real(arr: object, param: str) -> np.ndarray:
    """Convert to a float64 array, or raise if the content is not real numbers."""
    try:
        a = np.asarray(arr)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ShallowflowInputError(param, f"cannot be read as an array ({exc})") from None
    if a.dtype.kind in "biuf":
        return a.astype(np.float64, copy=True)
    if a.dtype.kind == "O":
        try:
            return a.astype(np.float64)
        except (TypeError, ValueError):
            pass
    raise ShallowflowInputError(
        param, f"non-numeric content (dtype {a.dtype}); real numbers are required"
    )


def _vector(v: object, param: str, size: tuple[str, int], matrix: str) -> np.ndarray:
    """``v`` as a finite float64 1-D array with one entry per row of ``matrix``
    (``size``: the rows' symbol and number, n of X or p of W)."""
    symbol, rows = size
    v = _as_real(v, param)
    if v.ndim != 1:
        raise ShallowflowInputError(
            param,
            f"must be 1-D of shape ({symbol},) = ({rows},); got ndim {v.ndim} (shape {v.shape})",
        )
    if v.shape[0] != rows:
        raise ShallowflowInputError(
            param, f"has length {v.shape[0]}; must equal {symbol} = {rows} (rows of {matrix})"
        )
    _require_finite(v, param)
    return v


def _require_finite(a: np.ndarray, param: str) -> None:
    bad = ~np.isfinite(a)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"index {first[0]}" if a.ndim == 1 else f"row {first[0]}, column {first[1]}"
        raise ShallowflowInputError(
            param,
            f"{count} non-finite entr{'y' if count == 1 else 'ies'} (NaN or inf); "
            f"first at {where} (value {a[first]}); all entries must be finite",
        )


def validate_data(
    X: object, y: object = None, *, require_labels: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check a data set and return float64 copies ``(X, y)``.

    ``X`` must be 2-D of shape (n, d) with n ≥ 1, d ≥ 1 and finite entries; ``y``,
    when given (or when ``require_labels``), must be 1-D of length n and finite.
    """
    X = _as_real(X, "X")
    if X.ndim != 2:
        raise ShallowflowInputError(
            "X", f"must be 2-D of shape (n, d); got ndim {X.ndim} (shape {X.shape})"
        )
    n, d = X.shape
    if n == 0:
        raise ShallowflowInputError("X", "has n = 0 examples (rows); need n ≥ 1")
    if d == 0:
        raise ShallowflowInputError("X", "has d = 0 features (columns); need d ≥ 1")
    _require_finite(X, "X")
    if y is None:
        if require_labels:
            raise ShallowflowInputError("y", f"labels are required: an array of shape ({n},)")
        return X, None
    return X, _vector(y, "y", ("n", n), "X")


def validate_state(W: object, a: object, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check a network state and return float64 copies ``(W, a)``.

    ``W`` must be 2-D of shape (p, d) with p ≥ 1 neurons and d ≥ 1 (equal to ``d``
    when given); ``a`` must be 1-D of length p; all entries finite.
    """
    if d is not None and (isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1):
        raise ShallowflowInputError("d", f"must be an integer ≥ 1; got {d!r}")
    W = _as_real(W, "W")
    if W.ndim != 2:
        raise ShallowflowInputError(
            "W", f"must be 2-D of shape (p, d); got ndim {W.ndim} (shape {W.shape})"
        )
    p, dw = W.shape
    if p < 1:
        raise ShallowflowInputError("W", "has p = 0 neurons (rows); need p ≥ 1")
    if dw < 1:
        raise ShallowflowInputError("W", "has d = 0 columns; need d ≥ 1")
    if d is not None and dw != d:
        raise ShallowflowInputError("W", f"has {dw} columns; must equal the data dimension d = {d}")
    _require_finite(W, "W")
    return W, _vector(a, "a", ("p", p), "W")


# --------------------------------------------------------------------------- loading


def _existing(path: PathLike, allowed: tuple[str, ...]) -> Path:
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise ShallowflowInputError("path", f"{str(p)!r} is a directory; give a file {allowed}")
    if suffix not in allowed:
        raise ShallowflowInputError(
            "path", f"unknown extension {p.suffix or '(none)'!r} of {str(p)!r}; allowed: {allowed}"
        )
    if not p.is_file():
        raise ShallowflowInputError("path", f"no such file: {str(p)!r}")
    return p


def _read_npz(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not zipfile.is_zipfile(path):
        raise ShallowflowInputError("path", f"{str(path)!r} is not an .npz (zip) archive")
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ShallowflowInputError("path", f"cannot read {str(path)!r} as .npz ({exc})") from None
    with z:
        keys = list(z.files)
        for k in required:
            if k not in keys:
                raise ShallowflowInputError(
                    k, f"missing array {k!r} in {str(path)!r} (arrays present: {keys})"
                )
        out = {}
        for k in (*required, *optional):
            if k not in keys:
                continue
            try:
                out[k] = z[k]
            except ValueError:  # object arrays need pickle, which is refused
                msg = f"non-numeric content (object array) in {str(path)!r}"
                raise ShallowflowInputError(k, msg) from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                msg = f"cannot read array {k!r} of {str(path)!r} ({exc})"
                raise ShallowflowInputError("path", msg) from None
        return out


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise ShallowflowInputError("path", f"{str(path)!r} is not an .npy file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            msg = f"non-numeric content (object array) in {str(path)!r}"
            raise ShallowflowInputError("X", msg) from None
        raise ShallowflowInputError("path", f"cannot read {str(path)!r} as .npy ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ShallowflowInputError("path", f"cannot read {str(path)!r} as .npy ({exc})") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ShallowflowInputError("path", f"cannot read {str(path)!r} as .csv ({exc})") from None
    header = None
    if rows and not all(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows.pop(0)]
    width = len(header) if header is not None else (len(rows[0]) if rows else 0)
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        line = i + 1 + (header is not None)
        if len(row) != width:
            raise ShallowflowInputError(
                "X", f"line {line} of {str(path)!r} has {len(row)} fields; expected {width}"
            )
        for j, field in enumerate(row):
            try:
                values[i, j] = float(field)
            except ValueError:
                raise ShallowflowInputError(
                    "X",
                    f"non-numeric content {field!r} at line {line}, column {j + 1} of "
                    f"{str(path)!r}; all fields except the header must be numbers",
                ) from None
    if header is None or "y" not in header:
        return values, None
    if header.count("y") > 1:
        raise ShallowflowInputError("y", f"header of {str(path)!r} names column 'y' more than once")
    iy = header.index("y")
    return np.delete(values, iy, axis=1), values[:, iy]


def load_data(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Load ``(X, y)`` from ``.npz``, ``.npy`` or ``.csv`` (see the module docstring).

    Returns validated float64 arrays: ``X`` of shape (n, d), ``y`` of shape (n,) or None.
    """
    p = _existing(path, DATA_SUFFIXES)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(p, ("X",), ("y",))
        X, y = arrays["X"], arrays.get("y")
    elif suffix == ".npy":
        X, y = _read_npy(p), None
    else:
        X, y = _read_csv(p)
    return validate_data(X, y)


def load_state(path: PathLike, run: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a state from an ``.npz``: one run's ``W`` (p, d) and ``a`` (p,), or the runs
    of ``simulate --keep-state``, ``W`` (R, p, d) and ``a`` (R, p).

    ``run`` picks run K of a multi-run file (0 ≤ K < R; a single-run file counts as
    R = 1) and returns it as one run's state. Otherwise a multi-run file is returned
    whole (one start per run), except that R = 1 gives its one state. An implicit-d file
    (``V``, ``off2``: no W) is refused: its basis of the data's span was never formed."""
    p = _existing(path, (".npz",))
    arrays = _read_npz(p, ("a",), ("W", "V"))
    if "W" not in arrays and "V" in arrays:
        raise ShallowflowInputError(
            "state",
            f"{str(p)!r} is an implicit-d state (a, V, off2: coordinates in a basis of the "
            "data's span that is never formed), which cannot start a run; --state needs W",
        )
    arrays = _read_npz(p, ("W", "a"))
    W, a = arrays["W"], arrays["a"]
    if np.ndim(W) != 3:
        if run not in (None, 0):
            raise ShallowflowInputError(
                "state_run", f"must be 0 for a single-run state file (W p×d); got {run}"
            )
        return validate_state(W, a)
    runs = W.shape[0]
    if runs < 1:
        raise ShallowflowInputError("W", "holds 0 runs (shape (0, p, d)); need at least one")
    if np.ndim(a) != 2 or np.shape(a)[0] != runs:
        raise ShallowflowInputError(
            "a", f"must be of shape (runs, p) with runs = {runs} like W; got {np.shape(a)}"
        )
    if run is not None and not 0 <= run < runs:
        raise ShallowflowInputError(
            "state_run", f"must be in 0..{runs - 1} (the file holds {runs} runs); got {run}"
        )
    if run is not None or runs == 1:
        return validate_state(W[run or 0], a[run or 0])
    states = [validate_state(w, b) for w, b in zip(W, a, strict=True)]
    return np.stack([w for w, _ in states]), np.stack([b for _, b in states])


# --------------------------------------------------------------------------- saving


def save_data(path: PathLike, X: object, y: object = None) -> None:
    """Write ``(X, y)`` to ``.npz``, ``.npy`` (X only) or ``.csv`` (header ``x0..``, ``y``).

    Values are written exactly: binary formats keep float64 bits, CSV uses 17
    significant digits (which round-trips float64).
    """
    X, y = validate_data(X, y)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise ShallowflowInputError(
            "path", f"unknown extension {p.suffix or '(none)'!r}; allowed: {DATA_SUFFIXES}"
        )
    if suffix == ".npz":
        arrays = {"X": X} if y is None else {"X": X, "y": y}
        with atomic_open(p) as f:  # numeric arrays: nothing to pickle
            np.savez(f, allow_pickle=False, **arrays)
    elif suffix == ".npy":
        if y is not None:
            msg = "a .npy file holds X only; use .npz or .csv to save labels"
            raise ShallowflowInputError("y", msg)
        with atomic_open(p) as f:
            np.save(f, X)
    else:
        names = [f"x{j}" for j in range(X.shape[1])]
        table = X if y is None else np.column_stack([X, y])
        names += [] if y is None else ["y"]
        with atomic_open(p) as f:
            np.savetxt(f, table, delimiter=",", header=",".join(names), comments="", fmt="%.17g")


def save_state(path: PathLike, W: object, a: object) -> None:
    """Write a state ``(W, a)`` to ``.npz`` (float64, exact)."""
    W, a = validate_state(W, a)
    p = Path(path)
    if p.suffix.lower() != ".npz":
        msg = f"a state is saved as .npz; got extension {p.suffix or '(none)'!r}"
        raise ShallowflowInputError("path", msg)
    with atomic_open(p) as f:
        np.savez(f, W=W, a=a)
