"""The small Python API: configure, simulate, tabulate, save.

>>> from shallowflow import make_config, simulate, trajectory_table
>>> res = simulate(make_config(n=200, d=100, runs=4))      # doctest: +SKIP
>>> trajectory_table(res).groupby("t").loss.median()        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from shallowflow.config import DataSpec, SimConfig, make_config
from shallowflow.engine import simulate
from shallowflow.errors import ShallowflowInputError, require
from shallowflow.io import load_data, load_state
from shallowflow.results import SimResult, runs_table, summary, trajectory_table
from shallowflow.start import UserArrays
from shallowflow.storage import (
    atomic_open,
    directory_lock,
    keep_finished,
    write_json_atomic,
    write_parquet_atomic,
)


def load_user(knobs: dict) -> tuple[dict, UserArrays]:
    """Read ``data_file`` / ``state_file`` named in ``knobs``: n and d come from the
    data file, p from the state file; shapes are checked against each other."""
    knobs = dict(knobs)
    X = y = W = a = None
    if knobs.get("data_file"):
        X, y = load_data(knobs["data_file"])
        knobs["n"], knobs["d"] = X.shape
        zero = np.flatnonzero(~np.any(X != 0, axis=1))
        require(
            zero.size == 0,
            "data",
            f"{zero.size} row(s) of X are zero (first: row {zero[:1].tolist()}); no network "
            "can fit them (h(0) = 0), and check-data refuses them too",
        )
        if y is None and knobs.get("labels") == "file":
            raise ShallowflowInputError("labels", "'file' needs y in the data file")
        if y is not None and knobs.get("labels", "paper") == "paper":
            knobs["labels"] = "file"
        require(
            knobs.get("init") != "group" or _orthogonal(X),
            "init",
            "'group' needs pairwise orthogonal data",
        )
    if knobs.get("state_file"):
        W, a = _load_state(knobs)
    Xt, yt = _load_test(knobs) if knobs.get("test_data") else (None, None)
    return knobs, UserArrays(X, y, W, a, Xt, yt)


def _load_test(knobs: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """The held-out file's (X, y), with ``test_n`` set from its rows; without y only a
    teacher can label it (the same teacher as the training labels)."""
    Xt, yt = load_data(knobs["test_data"])
    rows, d = Xt.shape
    d_train = knobs.get("d", DataSpec.model_fields["d"].default)
    require(
        d == d_train,
        "test_data",
        f"X has {d} columns but the training data have d = {d_train}",
    )
    require(
        knobs.get("test_n") in (None, 0, rows),
        "test_n",
        f"--test-n {knobs.get('test_n')} differs from the --test-data file's {rows} rows "
        "(leave --test-n out)",
    )
    require(
        yt is not None or knobs.get("labels") == "teacher",
        "test_data",
        "the file has no y: give labels, or use --labels teacher (the teacher labels it)",
    )
    knobs["test_n"] = rows
    return Xt, yt


def _load_state(knobs: dict) -> tuple[np.ndarray, np.ndarray]:
    """The state file's (W, a), with p (and, for a multi-run file, the runs) set from it
    in ``knobs``; ``init`` becomes 'file' unless given (then the config refuses it)."""
    W, a = load_state(knobs["state_file"], knobs.get("state_run"))
    p, d = W.shape[-2:]
    require(
        d == knobs.get("d", d), "state", f"W has {d} columns but the data have d = {knobs.get('d')}"
    )
    require(
        knobs.get("p") in (None, p), "p", f"--p {knobs.get('p')} differs from the state's p = {p}"
    )
    knobs["p"] = p
    if W.ndim == 3:  # run r starts from the file's run r
        runs = W.shape[0]
        require(
            knobs.get("runs") in (None, runs),
            "runs",
            f"--runs {knobs.get('runs')} differs from the state file's {runs} runs (each run "
            "starts from its own state; --state-run K starts every run from run K)",
        )
        knobs["runs"] = runs
    knobs.setdefault("init", "file")
    return W, a


def _orthogonal(X: np.ndarray) -> bool:
    g = X @ X.T
    off = g - np.diag(np.diag(g))
    return bool(np.max(np.abs(off)) <= 1e-9 * np.max(np.diag(g)))


def run_simulation(
    out: Path | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    **knobs,
) -> dict:
    """Load any user files, simulate, and (if ``out``) write ``config.json``,
    ``runs.parquet`` (one row per run × recorded time, with each run's outcome),
    ``final.parquet`` (one row per run) and ``summary.json``. Returns the summary.

    ``out`` is checked before anything is computed and locked while the cell runs: a
    sweep's directory is refused, and finished results are replaced only with
    ``overwrite``."""
    knobs, user = load_user(knobs)
    cfg = make_config(**knobs)
    if out is None:
        return summary(simulate(cfg, user, progress))
    out = Path(out)
    if (out / "sweep.json").exists():
        raise ShallowflowInputError("out", f"{str(out)!r} holds a sweep; choose another directory")
    if not overwrite and any((out / f).exists() for f in ("runs.parquet", "config.json")):
        keep_finished(out, "finished results")
    out.mkdir(parents=True, exist_ok=True)
    with directory_lock(out):
        res = simulate(cfg, user, progress)
        save(res, out)
    return summary(res)


def save(res: SimResult, out: Path | str) -> None:
    """Write a result's files into ``out`` (atomically, file by file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(res.cfg.knobs(), out / "config.json")
    per_run = runs_table(res)
    traj = trajectory_table(res)
    run_cols = [
        "run",
        "outcome",
        "success",
        "interpolated",
        "steps",
        "t_final",
        "assumption1",
        "coverage0",
        "mu_tail",
        "mu_mean",
        "geometry",
    ]
    traj = traj.merge(per_run[run_cols], on="run", how="left")
    write_parquet_atomic(traj, out / "runs.parquet")
    write_parquet_atomic(per_run, out / "final.parquet")
    write_json_atomic(summary(res), out / "summary.json")
    if res.states is not None:
        with atomic_open(out / "state.npz") as f:  # numeric arrays: nothing to pickle
            np.savez(f, allow_pickle=False, **res.states)


__all__ = ["SimConfig", "load_user", "run_simulation", "save"]
