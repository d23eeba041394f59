"""Fig. 5 — the threshold N(d, p) against p at d = 30 (SPEC §5).

Per p, the success curve over n and its threshold N; the paper reports sub-linear
growth, hard to tell from logarithmic, checked here against power, linear and log laws
fitted to the thresholds with their errors and ranked by AIC.

The paper does not give the sizes ("n on a grid around the threshold"). The grid is
centred on the guess ``N̂(p) = 150 (p/30)^{1/2}`` at d = 30 (sub-linear, as the paper
reports; anchored on N(30, 30) ≈ 150, N(30, 60) ≈ 230, N(30, 120) ≈ 320 measured with
this engine, 12 runs per point) and spans ``N̂·2^e``: e = −1, −3/4, …, 1 in the paper
preset (9 points, a factor 4), e = −2/3..2/3 in thirds in the quick one (5 points). The
threshold fit interpolates inside that window; a threshold at its edge is flagged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.figures.success import (
    group_thresholds,
    threshold_lines,
    threshold_panels,
)
from shallowflow.experiments.protocol import Protocol, paper_cell
from shallowflow.report.format import fmt, plus_minus, yes
from shallowflow.stats.fits import GROWTH_LAWS, growth_laws

NAME = "fig5"
TITLE = "Fig. 5 — threshold N(30, p) vs p"
CLAIM = (
    "The threshold N(d, p) grows sub-linearly with p at d = 30, "
    "hard to tell from logarithmic growth."
)
D = 30
N_REF = 150.0  # measured N(30, 30) ≈ 150 with this engine: the guess's anchor
P_REF = 30
PROTOCOLS = {
    "paper": {
        "ps": range(50, 401, 10),
        "runs": 20,
        "exponents": [k / 4 for k in range(-4, 5)],
        "adaptive": True,
    },
    "quick": {
        "ps": (30, 60, 120),
        "runs": 16,
        "exponents": [k / 3 for k in range(-2, 3)],
        "adaptive": False,
    },
}


def guess(p: int) -> float:
    """Guess ``N̂(p) = N̂(30) (p/30)^{1/2}`` at d = 30 that centres the grid (module doc)."""
    return N_REF * math.sqrt(p / P_REF)


def sizes(p: int, preset: str) -> list[int]:
    """Sizes ``N̂(p)·2^e`` rounded to 5: paper e = k/4, k = −4..4 (factor 1/2..2,
    9 points); quick e = k/3, k = −2..2 (factor 0.63..1.59, 5 points)."""
    centre = guess(p)
    return sorted({max(5, 5 * round(centre * 2**e / 5)) for e in PROTOCOLS[preset]["exponents"]})


def protocol(preset: str, solver: str = "gd", seed: int = 0) -> Protocol:
    """d = 30; per p, n on the geometric grid around the guess."""
    ps, runs = PROTOCOLS[preset]["ps"], PROTOCOLS[preset]["runs"]
    cells = [
        paper_cell(NAME, solver, seed, preset=preset, n=n, d=D, p=p, runs=runs)
        for p in ps
        for n in sizes(p, preset)
    ]
    return Protocol(
        NAME,
        preset,
        cells,
        TITLE,
        CLAIM,
        x="n",
        group="p",
        params={"d": D, "ps": tuple(ps)},
        notes=f"d = {D}, p = {', '.join(map(str, ps))}; n = N̂(p)·2^e around the guess "
        f"N̂(p) = {N_REF:g}·(p/30)^(1/2) (paper: 2^(k/4), k = −4..4; quick: 2^(k/3), "
        f"k = −2..2); {runs} runs per point.",
        adaptive=PROTOCOLS[preset]["adaptive"],
    )


def summarise(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Points per (p, n), the threshold per p and the growth laws N(p), fitted to the
    thresholds with their errors and compared by AIC (``stats.fits.growth_laws``)."""
    pts, table = group_thresholds(runs, proto)
    fits = growth_laws(table["p"], table["N"], table["se"])
    return pts, {"thresholds": table.to_dict("records"), "fits": fits}


def verdict(
    points: pd.DataFrame, summary: dict[str, Any], proto: Protocol
) -> tuple[list[str], bool]:
    """Reproduced when the power law's exponent γ is below 1 by more than 2σ. The laws
    are ranked by AIC: ΔAIC < 2 cannot be told apart (Burnham & Anderson)."""
    fits = summary["fits"]
    gamma, se = fits["power"]["gamma"], fits["power"]["se_gamma"]
    sub = bool(gamma + 2 * se < 1)
    delta = ", ".join(
        f"{law} {fmt(fits[law].get('delta_aic', math.nan), 2)}" for law in GROWTH_LAWS
    )
    close = [
        law for law in GROWTH_LAWS if law != fits["best"] and fits[law].get("delta_aic", 9) < 2
    ]
    head = (
        f"N(30, p) ≈ {fmt(fits['power']['c'])}·p^{fmt(gamma, 2)} (γ = {plus_minus(gamma, se)}, "
        f"{fits['n']} thresholds weighted by their errors); ΔAIC: {delta}; best: {fits['best']}"
        + (f", not told apart from {' and '.join(close)} (ΔAIC < 2)" if close else "")
        + f"; sub-linear (γ + 2σ < 1): {yes(sub)}"
    )
    return [head, *threshold_lines(summary["thresholds"], proto.grouped_by)], sub


def plot(points: pd.DataFrame, summary: dict[str, Any]):
    """Success curves per p and threshold N(30, p) with power/linear/log fits."""
    from shallowflow.plots import signed

    fig, left, right, ok = threshold_panels(points, summary, "p")
    fits = summary["fits"]
    p = np.linspace(ok["p"].min(), ok["p"].max(), 100)
    pw, li, lg = fits["power"], fits["linear"], fits["log"]

    def aic(law) -> str:
        return f"ΔAIC = {fits[law].get('delta_aic', np.nan):.1f}"

    right.plot(
        p,
        pw["c"] * p ** pw["gamma"],
        "C3-",
        label=f"N = {pw['c']:.3g} p^{pw['gamma']:.2f}  ({aic('power')})",
    )
    right.plot(
        p,
        li["a"] * p + li["b"],
        "C0--",
        label=f"N = {li['a']:.3g} p {signed(li['b'])}  ({aic('linear')})",
    )
    right.plot(
        p,
        lg["a"] * np.log(p) + lg["b"],
        "C2:",
        label=f"N = {lg['a']:.3g} log p {signed(lg['b'])}  ({aic('log')})",
    )
    right.legend()
    left.set_title("success fraction, d = 30")
    right.set_title("threshold vs p")
    return fig
