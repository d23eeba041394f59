"""The command line: files written, numbers consistent, bad input named."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from shallowflow.cli import app
from shallowflow.io import save_data, save_state

runner = CliRunner()
SMALL = ["--n", "40", "--d", "60", "--runs", "3", "--record", "5", "--seed", "3"]


def test_simulate_writes_consistent_files(tmp_path):
    res = runner.invoke(app, ["simulate", *SMALL, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "config.json").read_text())
    summ = json.loads((tmp_path / "summary.json").read_text())
    runs = pd.read_parquet(tmp_path / "runs.parquet")
    final = pd.read_parquet(tmp_path / "final.parquet")
    assert cfg["n"] == 40 and cfg["runs"] == 3
    assert len(final) == 3 and runs["run"].nunique() == 3
    assert runs.groupby("run")["final"].sum().eq(1).all()
    assert summ["success_fraction"] == final["success"].mean()
    # the success criterion of SPEC §5: converged iff final loss <= 1/(2n)
    assert (final["success"] == (final["final_loss"] <= 1 / 80)).all()
    assert "success fraction" in res.output


def test_simulate_user_files_replay_start(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 30)) / np.sqrt(30)
    y = np.sign(rng.standard_normal(12)) * rng.uniform(1, 2, 12)
    W = rng.uniform(-0.2, 0.2, (8, 30))
    a = np.sign(rng.standard_normal(8)) * (np.linalg.norm(W, axis=1) + 1)
    save_data(tmp_path / "d.npz", X, y)
    save_state(tmp_path / "s.npz", W, a)
    args = [
        "simulate",
        "--data",
        str(tmp_path / "d.npz"),
        "--state",
        str(tmp_path / "s.npz"),
        "--runs",
        "2",
        "--record",
        "3",
        "--x64",
    ]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    final = pd.read_parquet(tmp_path / "o" / "final.parquet")
    # same data and same start: both runs are the same network
    assert final["final_loss"].nunique() == 1
    h0 = a @ np.maximum(W @ X.T, 0) / 8
    assert np.isclose(final["loss0"].iloc[0], 0.5 * np.mean((y - h0) ** 2), rtol=1e-12)


def test_bad_input_names_parameter(tmp_path):
    for args, param in [
        (["--lr", "0"], "lr"),
        (["--p", "0"], "p"),
        (["--n", "0"], "n"),
        (["--data", "orthogonal", "--n", "50", "--d", "20"], "n"),
        (["--data", "nope"], "data"),
        (["--solver", "rk"], "solver"),
    ]:
        res = runner.invoke(app, ["simulate", *args, "--out", str(tmp_path)])
        assert res.exit_code == 2, (args, res.output)
        assert f"{param}:" in res.output, (args, res.output)


def test_check_data_json(tmp_path):
    X = np.diag(np.linspace(1, 2, 6))
    save_data(tmp_path / "o.npz", X, np.ones(6))
    res = runner.invoke(app, ["check-data", str(tmp_path / "o.npz"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["orthogonal"] and out["rank"] == 6 and out["n"] == 6 and out["kappa"] == 0
    assert {"n", "d", "rank", "orthogonal", "kappa", "n_kappa", "d_needed"} <= set(out)
    res = runner.invoke(app, ["check-data", str(tmp_path / "missing.npz")])
    assert res.exit_code == 2 and "path" in res.output
