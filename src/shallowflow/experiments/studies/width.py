"""Width — how does the threshold N(d, p) grow with d and p, and does width relax d ≳ n²?

Theorem 1 needs weakly interacting data, which sphere data are when d ≳ n², i.e. it
proves convergence for n ≲ √d; the paper's Fig. 4 reads N(d, p) ≈ C(p)·d at p = 30 and
its Fig. 5 a sub-linear C(p). This study measures the surface N(d, p) on the Fig. 4/5
protocol (:func:`~shallowflow.experiments.protocol.study_cell`: sphere data, the
paper's labels and asymmetric init, GD with η = 1, the horizon T(n, p) and the stop
L ≤ 1/(2n)) with the adaptive threshold search
(:func:`~shallowflow.experiments.adaptive.run_adaptive`), one threshold group per
(d, p) pair, all groups side by side. The cost of a run grows like n·d·p·T(n, p), so
the design is a cross: the whole d range at small p, the whole p range at small d.

Each group searches the grid N̂·2^e around the first guess N̂ = :func:`guess` (paper: e =
k/4, k = −4…4, a window of a factor 4; quick: k/3, k = −2…2), with at most that grid's
runs. The analysis (:func:`analyse`):

- per p, N = C(p)·d^β fitted to the thresholds weighted by their errors
  (:func:`~shallowflow.stats.fits.growth_laws`), β with a 95% interval widened by the
  misfit (:func:`~shallowflow.stats.fits.power_interval`), and the local exponents
  between consecutive d;
- whether β depends on p: equal exponents tested on the d values every d-arm shares
  (:func:`~shallowflow.stats.fits.common_exponent`);
- C(p): at fixed d (a p-arm), N(d, p) ∝ C(p), so its law in p is C's: power against
  log law by AIC;
- width and d ≳ n²: N(d, p_max)/N(d, p_min) at fixed d; the d needed for n points is
  (n/C(p))^{1/β}.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from shallowflow.experiments.adaptive import run_adaptive
from shallowflow.experiments.figures.success import success_points, threshold_fit
from shallowflow.experiments.protocol import Protocol, study_cell
from shallowflow.experiments.studies.common import design_of, holds
from shallowflow.plots import interval_bars, interval_yerr
from shallowflow.report.format import ci, fmt
from shallowflow.stats import fits
from shallowflow.stats.frames import where

NAME = "width"
TITLE = "Width — how N(d, p) grows with d and p"
QUESTION = (
    "How does the threshold N(d, p) grow with d and p: N ∝ d^β with the theory's β = 1/2 "
    "(n ≲ √d, i.e. d ≳ n²) or Fig. 4's β = 1, does β depend on p, and does a wider network "
    "relax d ≳ n²?"
)
ASKED_BY = (
    "two public reviews of the paper (NeurIPS 2025, OpenReview): the third, rated 5 (its "
    "question 2: the gap between the theory's √d and Fig. 4's N ≈ C(p)·d), and the fourth, "
    "rated 4 (can a wider network relax d ≳ n²?)"
)
TABLE_TITLE = "Thresholds"
THEORY_BETA = 0.5  # n ≲ √d  ⇔  d ≳ n²
FIGURE_BETA = 1.0  # Fig. 4: N ≈ C(p)·d


@dataclass(frozen=True)
class Design:
    """One preset: the (d, p) groups, the runs per point of each group's grid (the
    search spends batches of half that, at most the grid's runs) and the grid's
    exponents e (the window N̂·2^e)."""

    pairs: tuple[tuple[int, int], ...]
    runs: int
    exponents: tuple[float, ...] = tuple(k / 4 for k in range(-4, 5))


def _cross(d_arms: dict[int, tuple[int, ...]], p_arms: dict[int, tuple[int, ...]]):
    """The (d, p) pairs of a cross design: each p's d values, and each d's p values."""
    pairs = {(d, p) for p, ds in d_arms.items() for d in ds}
    pairs |= {(d, p) for d, ps in p_arms.items() for p in ps}
    return tuple(sorted(pairs))


PRESETS = {
    "quick": Design(
        pairs=_cross(
            {30: (10, 20, 40, 80, 160), 480: (10, 20)}, {10: (30, 120, 480), 20: (30, 120, 480)}
        ),
        runs=8,
        exponents=tuple(k / 3 for k in range(-2, 3)),
    ),
    "paper": Design(
        pairs=_cross(
            {30: (10, 20, 40, 80, 160), 120: (10, 20, 40), 480: (10, 20, 40)},
            {10: (30, 60, 120, 240, 480), 40: (30, 60, 120, 240, 480)},
        ),
        runs=20,
    ),
}


def guess(d: int, p: int) -> float:
    """N̂(d, p), the centre of a group's window: log N̂ = log 35 + 1.5 log(d/10) +
    (0.1 + 0.15 log(d/10)) log(p/30), fitted by eye to this engine's quick preset
    (N(10, 30) ≈ 35, N(40, 30) ≈ 260, N(160, 30) ≈ 2100, N(10, 480) ≈ 54, N(20, 480) ≈
    195) and probes (N(40, 480) ≈ 650). Fig. 4's N ≈ C(p)·d with Fig. 5's C(30) ≈ 5
    would miss N(160, 30) by a factor 2.7, outside a window of a factor 4."""
    ld, lp = math.log(d / 10), math.log(p / 30)
    return 35.0 * math.exp(1.5 * ld + (0.1 + 0.15 * ld) * lp)


def sizes(d: int, p: int, design: Design) -> list[int]:
    """The grid N̂·2^e, e in the design's exponents, on multiples of about N̂/40."""
    centre = guess(d, p)
    unit = max(1, round(centre / 40))
    return sorted({max(4, unit * round(centre * 2**e / unit)) for e in design.exponents})


def group_name(d: int, p: int) -> str:
    """The ``group`` tag of the (d, p) threshold group."""
    return f"d={d},p={p}"


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """The grid cells of every group (the search's window, grid and run budget)."""
    design = design_of(PRESETS, design)
    return [
        study_cell(NAME, "gd", seed, n=n, d=d, p=p, runs=design.runs, group=group_name(d, p))
        for d, p in design.pairs
        for n in sizes(d, p, design)
    ]


def protocol(design: Design | str, seed: int = 0) -> Protocol:
    """The adaptive search's protocol: one threshold group per (d, p) pair."""
    preset = design if isinstance(design, str) else "custom"
    return Protocol(NAME, preset, cells(design, seed), TITLE, QUESTION, group="group")


def simulate(
    design: Design | str,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Every group's adaptive search (run locally), its evaluations stored under
    ``out/adaptive/``: reused with ``resume``, refused without it or ``overwrite``."""
    runs, _ = run_adaptive(
        protocol(design), Path(out), resume=resume, overwrite=overwrite, progress=progress
    )
    return runs


# --------------------------------------------------------------------------- analysis


def thresholds(runs: pd.DataFrame) -> pd.DataFrame:
    """N(d, p) per group with its 95% profile interval and one-sigma error ``se``; an
    unbounded side of an interval (no significant fall on that side) is null, not ±inf."""
    pts = success_points(runs, ["d", "p", "n"])
    rows = []
    for key, g in pts.groupby(["d", "p"], sort=True):
        d, p = cast(tuple[int, int], key)
        rows.append(
            {"d": int(d), "p": int(p), "runs": int(g["runs"].to_numpy().sum()), "sizes": len(g)}
            | threshold_fit(g)
        )
    return pd.DataFrame(rows).replace([np.inf, -np.inf], np.nan)


def _beta(table: pd.DataFrame, p: int, ds: list[int] | None = None) -> dict[str, Any]:
    """β and C(p) of N = C(p)·d^β at width p (on the d values ``ds``), 95% interval."""
    sub = where(table, (table["p"] == p) & (table["d"].isin(ds) if ds is not None else True))
    fit = fits.power_exponent(sub["d"], sub["N"], sub["se"])
    d = sub["d"].to_numpy(int)
    return {"p": int(p), "d_min": int(d.min()), "d_max": int(d.max())} | fit


def _arms(table: pd.DataFrame, by: str, at: str, least: int) -> dict[int, list[int]]:
    """Values of ``at`` with at least ``least`` distinct values of ``by`` (the arms)."""
    counts = table.groupby(at)[by].nunique()
    keep = counts.index[counts.to_numpy() >= least]
    return {int(v): sorted(where(table, table[at] == v)[by]) for v in keep}


def analyse(table: pd.DataFrame) -> dict[str, Any]:
    """The fits of the module doc, from a thresholds table (d, p, N, se)."""
    ok = where(table, np.isfinite(table["N"]) & np.isfinite(table["se"]) & (table["se"] > 0))
    d_arms = _arms(ok, "d", "p", 2)
    betas = [_beta(ok, p) for p in d_arms]
    local = [
        _beta(ok, p, ds[i : i + 2])
        for p, ds in d_arms.items()
        if len(ds) >= 3
        for i in range(len(ds) - 1)
    ]
    common = sorted(set.intersection(*(set(ds) for ds in d_arms.values()))) if d_arms else []
    sub = where(ok, ok["p"].isin(list(d_arms)) & ok["d"].isin(common))
    shared = fits.common_exponent(sub["d"], sub["p"], sub["N"], sub["se"])
    same_range = [_beta(ok, p, common) for p in d_arms] if len(common) >= 2 else []
    cp, relax = [], []
    for d, ps in _arms(ok, "p", "d", 3).items():
        arm = where(ok, ok["d"] == d)
        cp.append({"d": d, "ps": ps} | fits.growth_laws(arm["p"], arm["N"], arm["se"]))
        relax.append(_ratio(arm))
    return {
        "betas": betas,
        "local": local,
        "common_ds": common,
        "same_range": same_range,
        "dependence": shared,
        "cp": cp,
        "relax": relax,
    }


def _ratio(arm: pd.DataFrame) -> dict[str, Any]:
    """N(d, p_max)/N(d, p_min) at fixed d with its 95% interval."""
    lo, hi = arm.loc[arm["p"].idxmin()], arm.loc[arm["p"].idxmax()]
    r = fits.ratio_interval(hi["N"], hi["se"], lo["N"], lo["se"])
    out = {"d": int(lo["d"]), "p_min": int(lo["p"]), "p_max": int(hi["p"])}
    return out | dict(zip(("ratio", "ci_low", "ci_high"), r, strict=True))


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The thresholds table and the summary the verdict reads."""
    design = design_of(PRESETS, design)
    table = thresholds(runs)
    table["guess"] = [guess(d, p) for d, p in zip(table["d"], table["p"], strict=True)]
    summary = {
        "design": {"pairs": [list(x) for x in design.pairs], "runs": design.runs},
        "runs": int(len(runs)),
        "evaluations": len(set(runs["cell_id"])) if "cell_id" in runs else 0,
    } | analyse(table)
    return table, summary


# --------------------------------------------------------------------------- verdict


def against(row: dict[str, Any], value: float) -> str:
    """Whether the interval of β holds ``value``."""
    if not np.isfinite(row["beta"]):
        return "undecided (no exponent)"
    if holds(row, value):
        return "consistent"
    return "excluded, N grows faster" if row["ci_low"] > value else "excluded, N grows slower"


def _law(cp: dict[str, Any]) -> str:
    """C(p)'s law at one p-arm: power against log by AIC (ΔAIC < 2: not told apart)."""
    power, log = cp["power"], cp["log"]
    delta = log["aic"] - power["aic"]
    lo, hi, _ = fits.power_interval(power)
    pw = f"a power p^{fmt(power['gamma'], 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}]"
    lg = f"a log law {fmt(log['a'])}·log p {'+' if log['b'] >= 0 else '−'} {fmt(abs(log['b']))}"
    if not np.isfinite(delta):
        return "undecided (too few thresholds)"
    if abs(delta) < 2:
        return f"{pw} or {lg}, not told apart (AIC of log − power = {fmt(delta, 2)})"
    best, other = (pw, "log") if delta > 0 else (lg, "power")
    return f"{best} (the {other} law is {fmt(abs(delta), 2)} AIC units worse)"


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: the headline) and the numbers it rests on."""
    betas = summary["betas"]
    if not betas:
        return [
            "No width has thresholds at two d values: rerun with more runs per point or a "
            "wider n window (Design.exponents)."
        ], {}
    key = max(betas, key=lambda b: (b["d_max"] / b["d_min"], -b["p"]))
    dep = summary["dependence"]
    cp = summary["cp"][0] if summary["cp"] else None
    head = (
        f"N ∝ d^β with β = {ci(key, key='beta')} (p = {key['p']}, "
        f"d = {key['d_min']}–{key['d_max']}, "
        f"Fig. 4/5 protocol, GD η = 1{_misfit(key, summary['local'])}), against the theory's 1/2: "
        f"{against(key, THEORY_BETA)}; against Fig. 4's 1: {against(key, FIGURE_BETA)}; "
        + _dependence(dep)
        + (f"; C(p) grows as {_law(cp)} at d = {cp['d']}" if cp else "")
        + "."
    )
    lines = [head]
    lines.append(
        "β per width: "
        + "; ".join(
            f"p = {b['p']} (d = {b['d_min']}–{b['d_max']}, {b['points']} thresholds): "
            f"{ci(b, key='beta')}, power-law fit p-value {fmt(b['fit_p'], 2)}"
            for b in betas
        )
        + "."
    )
    if summary["local"]:
        lines.append(
            "Local exponents (between consecutive d): "
            + "; ".join(
                f"p = {b['p']}, d = {b['d_min']}–{b['d_max']}: {ci(b, key='beta')}"
                for b in summary["local"]
            )
            + "."
        )
    if summary["same_range"]:
        lines.append(
            f"On the d values every width shares ({', '.join(map(str, summary['common_ds']))}): "
            + "; ".join(f"p = {b['p']}: {ci(b, key='beta')}" for b in summary["same_range"])
            + f"; one common β = {fmt(dep['beta'])} ± {fmt(1.96 * dep['se_beta'], 2)}, "
            f"equal exponents: Δχ² = {fmt(dep.get('delta_chi2', math.nan))} on {dep.get('df', 0)}"
            f" dof, p-value {fmt(dep['p_value'], 2)}."
        )
    for arm in summary["cp"]:
        lines.append(f"C(p) at d = {arm['d']} (p = {arm['ps'][0]}–{arm['ps'][-1]}): {_law(arm)}.")
    lines += [_relax_line(r, key) for r in summary["relax"]]
    lines += _caveats(table, key)
    lines.append(
        f"{len(table)} thresholds from {summary['runs']} runs in {summary['evaluations']} "
        "adaptive evaluations."
    )
    numbers = {"beta": key, "dependence": dep, "cp": summary["cp"], "relax": summary["relax"]}
    return lines, numbers


def _misfit(key: dict[str, Any], local: list[dict[str, Any]]) -> str:
    """The range of the local exponents when the power law misfits (5% level)."""
    betas = [b["beta"] for b in local if b["p"] == key["p"]]
    if not (key["fit_p"] < 0.05 and betas):
        return ""
    return f"; not a pure power: local exponents {fmt(min(betas), 3)} to {fmt(max(betas), 3)}"


def _dependence(dep: dict[str, Any]) -> str:
    """Whether β depends on p, by the test of equal exponents (5% level)."""
    if not np.isfinite(dep["p_value"]):
        return "β's dependence on p not tested (fewer than two widths with two shared d)"
    if dep["p_value"] < 0.05:
        return f"β depends on p (equal exponents rejected, p-value {fmt(dep['p_value'], 2)})"
    return f"no dependence of β on p detected (p-value {fmt(dep['p_value'], 2)})"


def _relax_line(r: dict[str, Any], key: dict[str, Any]) -> str:
    """Does width relax d ≳ n²: the factor on N, and on the d needed for n points."""
    grows = r["ci_low"] > 1
    per_d = r["ratio"] ** (1 / key["beta"]) if key["beta"] > 0 else math.nan
    return (
        f"Width and d ≳ n²: at d = {r['d']}, p = {r['p_min']} → {r['p_max']} multiplies N by "
        f"{ci(r, key='ratio')}"
        + (
            f", so width relaxes the dimension needed: d ≈ (n/C(p))^(1/β) ∝ n^"
            f"{fmt(1 / key['beta'], 2)} (theory: n²), divided by about {fmt(per_d, 2)}."
            if grows
            else ": no significant relaxation by width at these sizes."
        )
    )


def _caveats(table: pd.DataFrame, key: dict[str, Any]) -> list[str]:
    """What the data cannot decide, and what would."""
    out = []
    bounded = np.isfinite(table[["N", "ci_low", "ci_high"]].to_numpy(float)).all(axis=1)
    edge = where(table, ~table["inside_grid"].astype(bool) | ~bounded)
    if len(edge):
        places = ", ".join(f"(d, p) = ({r['d']}, {r['p']})" for r in edge.to_dict("records"))
        out.append(
            f"Thresholds at the edge of their window or unbounded at {places}: widen the "
            "window (Design.exponents) or add runs there before reading them."
        )
    if holds(key, THEORY_BETA) and holds(key, FIGURE_BETA):
        out.append(
            "β's interval holds both 1/2 and 1: more runs per point (the paper preset's 20 "
            "or more) and a d range of a factor 16 or more would decide."
        )
    return out


def table_lines(table: pd.DataFrame) -> list[str]:
    """Each threshold as a line: d, p, N with its interval, the runs, the first guess."""
    return [
        f"d = {r['d']}, p = {r['p']}: N = {ci(r, 4, 'N')} from {r['runs']} runs at "
        f"{r['sizes']} sizes (guess {fmt(r['guess'], 3)})"
        for r in table.to_dict("records")
    ]


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a) N against d per p, log-log, with the fitted power laws and the slopes 1/2 and
    1; (b) N against p per d; (c) β per p with its interval."""
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13.0, 3.8))
    ok = where(table, np.isfinite(table["N"]))
    betas = {x["p"]: x for x in summary["betas"]}
    for i, (p, g) in enumerate(ok.groupby("p")):
        err = interval_yerr(g, "N")
        a.errorbar(g["d"], g["N"], yerr=err, fmt="o", ms=4, color=f"C{i}", label=f"p = {p}")
        if p in betas and np.isfinite(betas[p]["beta"]):
            d = np.geomspace(g["d"].min(), g["d"].max(), 20)
            a.plot(d, betas[p]["C"] * d ** betas[p]["beta"], color=f"C{i}", lw=0.8)
    d = np.geomspace(ok["d"].min(), ok["d"].max(), 20)
    base = ok["N"].min()
    for slope, ls in ((THEORY_BETA, "--"), (FIGURE_BETA, ":")):
        a.plot(d, base * (d / d[0]) ** slope, "k", ls=ls, lw=0.8, label=f"d^{slope:g}")
    a.set(xscale="log", yscale="log", xlabel="d", ylabel="threshold N", title="N against d")
    a.legend(fontsize=7)
    for d0, g in ok.groupby("d"):
        if len(set(g["p"])) >= 2:
            err = interval_yerr(g, "N")
            b.errorbar(g["p"], g["N"], yerr=err, fmt="s-", ms=4, lw=0.8, label=f"d = {d0}")
    b.set(xscale="log", yscale="log", xlabel="p", ylabel="threshold N", title="N against p")
    if b.get_legend_handles_labels()[0]:
        b.legend(fontsize=7)
    common = ", ".join(map(str, summary["common_ds"]))
    for k, (rows, style, label) in enumerate(
        ((summary["betas"], "ko", "whole d range"), (summary["same_range"], "bs", f"d = {common}"))
    ):
        if rows:
            p = np.array([r["p"] for r in rows]) * 1.06**k  # side by side
            interval_bars(c, p, rows, "beta", fmt=style, ms=4, label=label)
    c.axhline(THEORY_BETA, color="k", ls="--", lw=0.8, label="theory 1/2")
    c.axhline(FIGURE_BETA, color="k", ls=":", lw=0.8, label="Fig. 4: 1")
    c.set(xscale="log", xlabel="p", ylabel="β (95%)", title="exponent of d per width")
    c.legend(fontsize=7)
    for ax, values in ((a, ok["d"]), (b, ok["p"]), (c, ok["p"])):
        ticks = sorted(set(values))
        ax.set_xticks(ticks, [str(t) for t in ticks], minor=False)
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))  # room for the title
    return fig
