"""Fig. 3 — the probability of convergence against n at d = 100 (SPEC §5).

Per n: the success fraction with 95% Hoeffding bars and the mean of L(θ_T)/L(θ_0)
(successes counted as 0); the threshold N where the fitted success curve crosses 1/2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.figures.success import success_points, threshold_fit
from shallowflow.experiments.protocol import EPS, Protocol, paper_cell
from shallowflow.report.format import ci, fmt, yes
from shallowflow.theory.width import width

NAME = "fig3"
TITLE = "Fig. 3 — convergence probability vs n"
CLAIM = (
    "At d = 100 the probability of convergence falls sharply from likely to unlikely as n grows."
)
PROTOCOLS = {
    "paper": {"d": 100, "ns": range(1300, 2101, 50), "runs": 80},
    "quick": {"d": 40, "ns": range(130, 431, 50), "runs": 24},
}


def protocol(preset: str, solver: str = "gd", seed: int = 0) -> Protocol:
    """d fixed, n on a grid, p = p(n, 0.05), the preset's runs per n."""
    d, ns, runs = (PROTOCOLS[preset][k] for k in ("d", "ns", "runs"))
    cells = [
        paper_cell(NAME, solver, seed, preset=preset, n=n, d=d, p=width(n, EPS), runs=runs)
        for n in ns
    ]
    return Protocol(
        NAME,
        preset,
        cells,
        TITLE,
        CLAIM,
        params={"d": d},
        notes=f"d = {d}, n = {ns.start}..{ns.stop - 1} step {ns.step}, p = p(n, 0.05), "
        f"{runs} runs per n.",
    )


def summarise(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Points per n, the threshold fit, and the 10%→90% width of the fall."""
    pts = success_points(runs, ["n", "d"])
    fit = threshold_fit(pts)
    fall = 2 * math.log(9) / abs(fit["slope"]) if fit["slope"] else math.inf
    return pts, {"threshold": fit, "fall_width": fall}


def verdict(
    points: pd.DataFrame, summary: dict[str, Any], proto: Protocol
) -> tuple[list[str], bool]:
    """Reproduced when the success fraction falls from ≥ 0.75 to ≤ 0.25 over the grid."""
    fit, fall = summary["threshold"], summary["fall_width"]
    first, last = points.iloc[0], points.iloc[-1]
    sharp = bool(first["fraction"] >= 0.75 and last["fraction"] <= 0.25)
    lines = [
        f"success fraction {fmt(first['fraction'], 2)} at n={int(first['n'])} → "
        f"{fmt(last['fraction'], 2)} at n={int(last['n'])} (d={int(first['d'])}, "
        f"{int(first['runs'])} runs per n); fall from likely to unlikely: {yes(sharp)}",
        _threshold_line(points, fit, fall),
        f"mean L(θ_T)/L(θ_0) (0 for successes): {fmt(first['loss_ratio'], 2)} → "
        f"{fmt(last['loss_ratio'], 2)}",
    ]
    return lines, sharp


def _threshold_line(points: pd.DataFrame, fit: dict[str, Any], fall: float) -> str:
    """N with its interval and the fall's width; when the fitted curve crosses 1/2 off
    the grid, that crossing is an extrapolation, not a threshold, and the line says so."""
    if not fit["inside_grid"]:
        ns, frac = points["n"].to_numpy(float), points["fraction"].to_numpy(float)
        return (
            f"the fitted success curve does not cross 1/2 on the grid n = {int(ns.min())}–"
            f"{int(ns.max())} (success fraction {fmt(frac.min(), 2)}–{fmt(frac.max(), 2)}): "
            "N is not measured here; widen the n range to reach the fall"
        )
    return (
        f"threshold N = {ci(fit, 4, 'N')}, 10%→90% width {fmt(fall)} = {fmt(fall / fit['N'], 2)}·N"
    )


def plot(points: pd.DataFrame, summary: dict[str, Any]):
    """Success fraction with Hoeffding bars and mean L(θ_T)/L(θ_0) vs n."""
    import matplotlib.pyplot as plt

    from shallowflow.plots import logistic, yerr

    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    n = points["n"].to_numpy(float)
    ax.errorbar(n, points["fraction"], yerr=yerr(points), fmt="o", ms=4, label="success fraction")
    fit = summary["threshold"]
    if fit["N"] is not None and np.isfinite(fit["N"]) and fit["inside_grid"]:
        grid = np.linspace(n.min(), n.max(), 200)
        ax.plot(grid, logistic(fit, grid), "C0-", alpha=0.6, label=f"logistic, N = {fit['N']:.0f}")
        ax.axvline(fit["N"], color="C0", ls=":", lw=1)
    ax.plot(
        n, points["loss_ratio"], "s--", color="C3", ms=3.5, label=r"mean $L(\theta_T)/L(\theta_0)$"
    )
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("n")
    ax.set_ylabel("probability / loss ratio")
    title = f"d = {int(points['d'].iloc[0])}, p = p(n, 0.05)"
    if rec := summary.get("adaptive"):
        title += f"; adaptive: {rec['runs_used']} of {rec['grid_runs']} grid runs"
    ax.set_title(title)
    ax.legend(loc="center right")
    return fig
