"""End to end: reproduce Fig. 2, a user sweep file, and the summary helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.figures import fig6
from shallowflow.experiments.figures.success import success_points
from shallowflow.experiments.reproduce import reproduce
from shallowflow.experiments.sweepfile import load_sweep, run_sweep_file, sweep_cells
from shallowflow.stats.fits import linear_fit
from shallowflow.storage import read_json, read_parquet


def test_reproduce_fig2(tmp_path):
    result = reproduce("fig2", "quick", tmp_path, progress=False)
    for ext in ("png", "pdf"):
        assert (tmp_path / "fig2" / f"fig2.{ext}").stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for text in (md, html):
        assert "Paper's claim" in text and "decreasing to 0: yes" in text
        assert "larger labels first: yes" in text
    assert "data:image/png;base64," in html
    summary = read_json(tmp_path / "fig2" / "summary.json")
    assert summary["ok"] is True and result["figures"]["fig2"]["ok"]
    points = read_parquet(tmp_path / "fig2" / "points.parquet")
    assert set(points["n"]) == {1e2, 1e4, 1e8, 1e18}


def test_reproduce_rejects_unknown_figure(tmp_path):
    with pytest.raises(ShallowflowInputError, match="figure"):
        reproduce("fig9", "quick", tmp_path, progress=False)


def test_sweep_file_end_to_end(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('name = "t"\nruns = 2\nseed = 3\n[base]\nd = 30\np = 8\n[grid]\nn = [16, 20]\n')
    points = run_sweep_file(path, tmp_path / "out", progress=False)
    runs = read_parquet(tmp_path / "out" / "runs.parquet")
    assert len(runs) == 4 and set(runs["n"]) == {16, 20} and (runs["p"] == 8).all()
    assert list(points["n"]) == [16, 20] and (points["runs"] == 2).all()
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 1000
    assert (tmp_path / "out" / "points.parquet").exists()


def test_sweep_file_yaml_and_errors(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("runs: 3\nbase: {d: 10}\ngrid: {n: [5, 6], lr: [0.5, 1.0]}\n")
    cells = sweep_cells(load_sweep(path))
    assert len(cells) == 4 and cells[1] == {
        "d": 10,
        "n": 5,
        "lr": 1.0,
        "runs": 3,
        "seed": 0,
        "tag": "sweep",
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("[base]\nwidth = 3\n")
    with pytest.raises(ShallowflowInputError, match="width: Extra inputs are not permitted"):
        sweep_cells(load_sweep(bad))
    with pytest.raises(ShallowflowInputError, match="unknown top-level"):
        (tmp_path / "x.toml").write_text("foo = 1\n")
        load_sweep(tmp_path / "x.toml")


def test_fits_recover_known_laws():
    x = np.array([10.0, 20.0, 30.0, 40.0])
    fit = linear_fit(x, 17 * x - 50)
    assert fit["a"] == pytest.approx(17) and fit["b"] == pytest.approx(-50)
    assert fit["r2"] == pytest.approx(1.0)


def test_success_points_and_slopes():
    rng = np.random.default_rng(0)
    rows = []
    for n in (100, 200, 400, 800):
        mu = n**-0.5 * np.exp(0.05 * rng.standard_normal(50))
        rows.append(
            pd.DataFrame(
                {
                    "n": n,
                    "p": 30,
                    "success": np.arange(50) < 25,
                    "final_loss": 0.5,
                    "loss0": 1.0,
                    "mu_tail": mu,
                    "mu_mean": mu,
                    "final_mu_low": mu / 2,
                    "final_mu_upp": 3 * mu,
                }
            )
        )
    runs = pd.concat(rows, ignore_index=True)
    pts = success_points(runs, ["n"])
    assert (pts["fraction"] == 0.5).all() and (pts["loss_ratio"] == 0.25).all()
    assert (pts["bar_low"] < 0.5).all() and (pts["bar_high"] > 0.5).all()
    slopes = fig6.slopes(runs, n_boot=50)
    for s in slopes.values():
        assert s["slope"] == pytest.approx(-0.5, abs=0.03) and 0 < s["se"] < 0.05


def test_fig6_verdicts_print_the_uncertainty_and_apply_prop1_to_rates_only():
    from shallowflow.experiments.figures import protocol
    from shallowflow.report.format import plus_minus

    assert plus_minus(-0.4812, 0.0042) == "-0.4812 ± 0.0042"  # was "-0.48 ± 0.00"
    assert plus_minus(-0.79, 0.08) == "-0.790 ± 0.080"
    rng = np.random.default_rng(0)
    rows = []
    for n in (600, 900, 1200):
        mu = 0.3 * n**-0.8 * np.exp(rng.normal(0, 0.01, 8))
        rows.append(
            pd.DataFrame(
                {"n": n, "p": 30, "success": True, "mu_tail": mu, "mu_mean": mu,
                 "final_mu_low": mu / 2, "final_mu_upp": 0.3 * n**-0.48 + 0 * mu}
            )
        )  # fmt: skip
    proto = protocol("fig6", "quick")
    pts, summ = fig6.summarise(pd.concat(rows, ignore_index=True), proto)
    verdicts, _ = fig6.verdict(pts, summ, proto)
    lines = {line.split(" vs ")[0]: line for line in verdicts if "slope" in line}
    assert "proven range" in lines["slope of log μ(t_∞)"]
    assert "proven range" in lines["slope of log ⟨μ⟩"]
    # Prop. 1 bounds the rate, not μ_upp (which read "inside the proven range: no" at −0.48)
    assert "proven range" not in lines["slope of log μ_upp"]
    assert "proven range" not in lines["slope of log μ_low"]
    assert "± 0.00 " not in " ".join(verdicts) + " "


def test_an_unbounded_interval_end_reads_infinite_not_missing():
    from shallowflow.report.format import fmt

    assert (fmt(float("inf")), fmt(-float("inf")), fmt(float("nan")), fmt(None)) == (
        "∞",
        "−∞",
        "nan",
        "nan",
    )
    assert fmt(12.3456, 3) == "12.3"
