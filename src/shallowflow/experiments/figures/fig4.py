"""Fig. 4 — the threshold N(d, p) against d at p = 30 (SPEC §5).

Per d, the success curve over n and its threshold N (success probability 1/2); the
paper reports N linear in d, checked here by a least-squares line and its R².
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.figures.success import (
    group_thresholds,
    threshold_lines,
    threshold_panels,
)
from shallowflow.experiments.protocol import Protocol, paper_cell
from shallowflow.report.format import fmt, yes
from shallowflow.stats.fits import linear_fit

NAME = "fig4"
TITLE = "Fig. 4 — threshold N(d, 30) vs d"
CLAIM = "The threshold N(d, p) (success probability 1/2) is linear in d at p = 30."
P = 30
PROTOCOLS = {
    "paper": {"ds": range(10, 101, 10), "runs": 20, "adaptive": True},
    "quick": {"ds": (20, 40, 60), "runs": 16, "adaptive": False},
}


def sizes(d: int, preset: str) -> list[int]:
    """Sizes at dimension d: paper ``n = d, 2d, …, ≤ 30d − 200``; quick a few multiples."""
    if preset == "paper":
        return [k * d for k in range(1, 31) if k * d <= 30 * d - 200]
    return [k * d for k in (3, 5, 8, 12, 18)]


def protocol(preset: str, solver: str = "gd", seed: int = 0) -> Protocol:
    """p = 30; per d, n on the preset's multiples of d."""
    ds, runs = PROTOCOLS[preset]["ds"], PROTOCOLS[preset]["runs"]
    cells = [
        paper_cell(NAME, solver, seed, preset=preset, n=n, d=d, p=P, runs=runs)
        for d in ds
        for n in sizes(d, preset)
    ]
    return Protocol(
        NAME,
        preset,
        cells,
        TITLE,
        CLAIM,
        x="n",
        group="d",
        params={"p": P, "ds": tuple(ds)},
        notes=f"p = {P}, d = {', '.join(map(str, ds))}; n = "
        + ("d, 2d, …, 30d − 200" if preset == "paper" else "3d, 5d, 8d, 12d, 18d")
        + f"; {runs} runs per point.",
        adaptive=PROTOCOLS[preset]["adaptive"],
    )


def summarise(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Points per (d, n), the threshold per d and the line N = a d + b."""
    pts, table = group_thresholds(runs, proto)
    ok = table[np.isfinite(table["N"])]
    return pts, {"thresholds": table.to_dict("records"), "fit": linear_fit(ok["d"], ok["N"])}


def verdict(
    points: pd.DataFrame, summary: dict[str, Any], proto: Protocol
) -> tuple[list[str], bool]:
    """Reproduced when the line explains the thresholds with R² ≥ 0.95."""
    fit = summary["fit"]
    linear = bool(fit["r2"] >= 0.95)
    head = (
        f"N(d, {proto.params['p']}) = {fmt(fit['a'])}·d {'+' if fit['b'] >= 0 else '−'} "
        f"{fmt(abs(fit['b']))}, R² = {fit['r2']:.3f}, linear: {yes(linear)}"
    )
    return [head, *threshold_lines(summary["thresholds"], proto.grouped_by)], linear


def plot(points: pd.DataFrame, summary: dict[str, Any]):
    """Success curves per d and threshold N(d, 30) with its linear fit."""
    from shallowflow.plots import signed

    fig, left, right, ok = threshold_panels(points, summary, "d")
    fit = summary["fit"]
    d = np.linspace(ok["d"].min(), ok["d"].max(), 50)
    right.plot(
        d,
        fit["a"] * d + fit["b"],
        "C3-",
        label=f"N = {fit['a']:.3g} d {signed(fit['b'])}  (R² = {fit['r2']:.3f})",
    )
    right.legend()
    left.set_title("success fraction, p = 30")
    right.set_title("threshold vs d")
    return fig
