"""Conjecture 1 — what is the exponent of the asymptotic rate in n on orthogonal data?

The paper's Fig. 6 is its only evidence for Conjecture 1 (the rate is of order 1/√n);
its protocol measures a slope near −0.8. This study runs the Fig. 6 protocol
(:func:`shallowflow.experiments.figures.fig6.cell`: orthogonal data, p = p(n, 0.05),
W × 0.01, coverage required) in float64 to a loss of 10⁻¹⁴/(2n), and takes the
end-of-run measures again the first time the loss falls below 10⁻⁶/(2n) (the paper's
stop), 10⁻⁸/(2n), 10⁻¹⁰/(2n) and 10⁻¹²/(2n) (``levels``: the same runs, no rerun):

- **μ(t_∞)**, the rate over the last 100 units of time, and **⟨μ⟩** = log(L(0)/L)/t;
- **μ_∞ (kernel)** = 2 λ_min(K) of the tangent kernel at that state
  (:mod:`shallowflow.kernel`), the rate at which the loss decays from there on if the
  activation pattern no longer changes.

Each measure's exponent is the least-squares slope of log(mean over runs) against
log n, with a 95% percentile bootstrap interval over runs. The parts:

- **stop level**: the exponents of the three measures at each level (GD η = 1);
- **solver**: GD η = 1, GD η = 1/4 and the exact flow (``solver="flow"``);
- **initialisation scale**: W × 0.01, 0.1 and 1, and the balanced initialisation;
- **range of n**: the exponents on windows of the n grid (local slopes);
- **mechanism**: how the slowest examples' energy E_min and the kernel's smallest
  eigenvalue λ_min scale with n at the end (μ_low = (2/n) E_min).

The verdict names the exponent the data support, under which protocol, and whether
the paper's stop level or range of n explain its −0.8.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.config import horizon_steps
from shallowflow.experiments.figures import fig6
from shallowflow.experiments.protocol import EPS
from shallowflow.experiments.studies.common import design_of, holds, select
from shallowflow.plots import interval_bars, rate_references
from shallowflow.report.format import ci, fmt
from shallowflow.stats.frames import where
from shallowflow.stats.resample import exponent
from shallowflow.theory.width import width

NAME = "conjecture1"
TITLE = "Conjecture 1 — the exponent of the asymptotic rate on orthogonal data"
QUESTION = (
    "Under the Fig. 6 protocol, what is the exponent of the asymptotic rate in n, and "
    "why does the paper's protocol measure about −0.8?"
)
ASKED_BY = "the paper (Conjecture 1 and its Fig. 6)"
TABLE_TITLE = "Exponents"
LEVELS = (1e-6, 1e-8, 1e-10, 1e-12)  # × 1/(2n): the paper's stop, then deeper
STOP = 1e-14  # × 1/(2n): where the runs stop
MEASURES = {"mu_tail": "μ(t_∞)", "mu_mean": "⟨μ⟩", "mu_kernel": "μ_∞ (kernel)"}
BASE = "gd"  # the Fig. 6 protocol itself
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gd": ("GD η = 1, W × 0.01 (Fig. 6)", {}),
    "gd_eta_0.25": ("GD η = 1/4", {"lr": 0.25}),
    "flow": ("exact flow", {"solver": "flow", "rtol": 1e-9, "atol": 1e-12}),
    "w_0.1": ("W × 0.1", {"w_scale": 0.1}),
    "w_1": ("W × 1", {"w_scale": 1.0}),
    "balanced": ("balanced init", {"init": "balanced", "w_scale": 1.0}),
}
PARTS = {"solver": ("gd", "gd_eta_0.25", "flow"), "init": ("gd", "w_0.1", "w_1", "balanced")}


@dataclass(frozen=True)
class Design:
    """One preset: the dimension, the n grid of the Fig. 6 protocol and its runs, the
    smaller grid of the other variants (which draw the same data and first layer as the
    protocol's runs at each n: a paired comparison), the horizon in units of T(n, p),
    the n windows of the range part, the variants and the bootstrap replicates."""

    d: int
    ns: tuple[int, ...]
    runs: int
    side_ns: tuple[int, ...]
    side_runs: int
    horizon: float
    windows: tuple[tuple[int, int], ...]
    variants: tuple[str, ...] = tuple(VARIANTS)
    boot: int = 1000


PRESETS = {
    "quick": Design(
        d=2000,
        ns=(250, 354, 500, 707, 1000, 1414, 2000),
        runs=12,
        side_ns=(250, 500, 1000, 2000),
        side_runs=6,
        horizon=40.0,
        windows=((250, 707), (500, 1414), (707, 2000), (1000, 2000)),
    ),
    "paper": Design(
        d=8000,
        ns=(250, 500, 1000, 1414, 2000, 2828, 4000, 5657, 8000),
        runs=64,
        side_ns=(500, 1000, 2000, 4000, 8000),
        side_runs=32,
        horizon=40.0,
        windows=((250, 1000), (1000, 2000), (1000, 4000), (2000, 8000)),
    ),
}


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """Every cell of the study: each variant at its n, float64, the loss levels, the
    kernel's rate, a horizon of ``horizon``·T(n, p) units of time; the variants at one n
    share their draws (``draws`` tag)."""
    design = design_of(PRESETS, design)
    out = []
    for tag in design.variants:
        knobs = VARIANTS[tag][1]
        ns, runs = (design.ns, design.runs) if tag == BASE else (design.side_ns, design.side_runs)
        for n in ns:
            p = width(n, EPS)
            cell = fig6.cell(n, design.d, runs, seed=seed) | knobs
            cell.pop("horizon_factor")
            out.append(
                cell
                | {
                    "figure": NAME,
                    "tag": tag,
                    "draws": f"n={n}",
                    "x64": True,
                    "record": 4,
                    "kernel": True,
                    "horizon": design.horizon * horizon_steps(n, p),
                    "stop_loss": STOP / (2 * n),
                    "levels": [level / (2 * n) for level in LEVELS],
                }
            )
    return out


# --------------------------------------------------------------------------- analysis


def _column(measure: str, level: int | None) -> str:
    """The runs-table column of a measure at level index ``level`` (None: the stop)."""
    if level is None:
        return {"mu_tail": "mu_tail", "mu_mean": "mu_mean", "mu_kernel": "final_mu_inf_kernel"}[
            measure
        ]
    return f"final_level_{measure}_{level}"


def _levels() -> list[tuple[int | None, float]]:
    return [*enumerate(LEVELS), (None, STOP)]


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of exponents (part, variant, stop level, measure, n range, slope and
    its interval) and the summary the verdict reads."""
    design = design_of(PRESETS, design)
    rows = []

    def add(part, tag, level, measure, column, ns=None):
        sub = runs.loc[runs["tag"] == tag]
        row = exponent(sub, column, design.boot, ns=ns)
        rows.append({"part": part, "variant": tag, "level": level, "measure": measure} | row)

    for k, level in _levels():  # stop level, the Fig. 6 protocol
        for m in MEASURES:
            add("stop level", BASE, level, m, _column(m, k))
    for part, tags in PARTS.items():  # solver, initialisation, at the paper's stop and deepest
        for tag in (t for t in tags if t in design.variants):
            for k, level in ((0, LEVELS[0]), (None, STOP)):
                for m in MEASURES:
                    add(part, tag, level, m, _column(m, k))
    for window in design.windows:  # range of n
        for k, level in ((0, LEVELS[0]), (None, STOP)):
            for m in ("mu_tail", "mu_kernel"):
                add("range of n", BASE, level, m, _column(m, k), ns=window)
    base = runs[runs["tag"] == BASE].assign(lambda_min=lambda d: d["final_mu_inf_kernel"] / 2)
    for m, column in (("E_min", "final_energy_min"), ("lambda_min", "lambda_min")):
        row = exponent(base, column, design.boot)
        rows.append({"part": "mechanism", "variant": BASE, "level": STOP, "measure": m} | row)
    table = pd.DataFrame(rows)
    means = (
        base.groupby("n", sort=True)
        .agg(
            mu_tail_paper=(_column("mu_tail", 0), "mean"),
            mu_tail=("mu_tail", "mean"),
            mu_kernel=("final_mu_inf_kernel", "mean"),
            E_min=("final_energy_min", "mean"),
            lambda_min=("lambda_min", "mean"),
            converged=("success", "mean"),
        )
        .reset_index()
    )
    summary = {
        "design": design.__dict__,
        "converged": float(np.mean(runs["success"].to_numpy())),
        "runs": int(len(runs)),
        "means": means.to_dict("records"),
    }
    return table, summary


def _get(table: pd.DataFrame, **keys) -> dict[str, Any]:
    """The row of ``keys`` (:func:`.common.select`); without a ``part``, outside the range
    of n, whose windows repeat the keys of the other parts."""
    whole = table if "part" in keys else where(table, table["part"] != "range of n")
    return select(whole, **keys).iloc[0].to_dict()


_ci = partial(ci, key="slope")  # an exponent with its interval: the table's slopes


def supported(row: dict[str, Any]) -> str:
    """Which exponent a slope's interval supports: −1/2, −1, or neither (then which side)."""
    if not np.isfinite(row["slope"]):
        return "none (too few points)"
    if holds(row, -0.5):
        return "−1/2"
    if holds(row, -1.0):
        return "−1"
    if row["ci_high"] < -1.0:
        return "steeper than −1 (outside the proven range)"
    if row["ci_low"] > -0.5:
        return "shallower than −1/2 (outside the proven range)"
    return f"neither −1/2 nor −1: about {fmt(row['slope'], 2)}, inside the proven range"


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer, in lines, and the numbers it rests on (``key``: the exponent of the
    asymptotic rate, μ_∞ of the tangent kernel at 10⁻¹⁴/(2n), under the Fig. 6 protocol)."""
    design = summary["design"]
    key = _get(table, part="stop level", level=STOP, measure="mu_kernel")
    paper = _get(table, part="stop level", level=LEVELS[0], measure="mu_tail")
    deep = _get(table, part="stop level", level=STOP, measure="mu_tail")
    mean_deep = _get(table, part="stop level", level=STOP, measure="mu_mean")
    proto = (
        f"the Fig. 6 protocol (orthogonal data, d = {design['d']}, p = p(n, 0.05), W × 0.01, "
        f"GD η = 1) with n = {min(design['ns'])}–{max(design['ns'])}"
    )
    lines = [
        f"Under {proto}, the asymptotic rate μ_∞ (the tangent kernel's 2λ_min at L = "
        f"10⁻¹⁴/(2n)) scales as n^{_ci(key)}: the data support {supported(key)}.",
        f"Stop level: μ(t_∞)'s exponent is {_ci(paper)} at the paper's 10⁻⁶/(2n) and "
        f"{_ci(deep)} at 10⁻¹⁴/(2n) (⟨μ⟩: {_ci(mean_deep)}); at every level it is within "
        f"{fmt(_gap(table), 2)} of μ_∞'s exponent",
    ]
    for part, tags in PARTS.items():
        parts = []
        for tag in (t for t in tags if t in design["variants"]):
            row = _get(table, part=part, variant=tag, level=STOP, measure="mu_kernel")
            parts.append(f"{VARIANTS[tag][0]} {_ci(row)}")
        lines.append(f"{part.capitalize()}: μ_∞'s exponent " + "; ".join(parts) + ".")
    local = select(table, part="range of n", measure="mu_kernel", level=STOP).to_dict("records")
    lines.append(
        "Range of n, μ_∞'s local exponent: "
        + "; ".join(f"n = {r['n_min']}–{r['n_max']}: {_ci(r)}" for r in local)
        + "."
    )
    e_min = _get(table, part="mechanism", measure="E_min")
    lam = _get(table, part="mechanism", measure="lambda_min")
    lines.append(
        f"Mechanism: at the end E_min ∝ n^{_ci(e_min)}, so the paper's μ_low = (2/n)E_min ∝ "
        f"n^{fmt(e_min['slope'] - 1)}; the kernel's λ_min ∝ n^{_ci(lam)}."
    )
    lines.append(_why(local, paper, key))
    lines.append(
        f"Runs converged to 10⁻¹⁴/(2n) within {design['horizon']:g}·T(n, p): "
        f"{summary['converged']:.0%} of {summary['runs']}."
    )
    return lines, {"key": key, "paper_stop": paper, "deepest": deep, "supported": supported(key)}


def _gap(table: pd.DataFrame) -> float:
    """The largest difference, over the levels, between the exponents of μ(t_∞) and μ_∞."""
    diffs = [
        _get(table, part="stop level", level=level, measure="mu_tail")["slope"]
        - _get(table, part="stop level", level=level, measure="mu_kernel")["slope"]
        for _, level in _levels()
    ]
    return float(np.max(np.abs(diffs)))


def _why(local: list[dict], paper: dict, key: dict) -> str:
    """Why a Fig. 6-like measurement reads about −0.8, as far as these data show: the
    stop level's effect, the exponent of the asymptotic rate itself, and its trend in n."""
    shift = paper["slope"] - key["slope"]
    text = (
        f"Why about −0.8: not the stop level (it moves the exponent by {fmt(shift, 2)}), "
        if abs(shift) < 0.05
        else f"The stop level moves the exponent by {fmt(shift, 2)}; "
    )
    text += f"the asymptotic rate itself scales as n^{fmt(key['slope'], 2)} over these n"
    if len(local) >= 2:
        first, last = local[0], local[-1]
        apart = first["ci_high"] < last["ci_low"] or last["ci_high"] < first["ci_low"]
        text += (
            f"; its local exponent goes from {_ci(first)} on n = {first['n_min']}–"
            f"{first['n_max']} to {_ci(last)} on n = {last['n_min']}–{last['n_max']}, "
            + ("a significant trend" if apart else "a trend within the intervals")
            + (" toward −1/2" if last["slope"] > first["slope"] else " away from −1/2")
        )
    return text + "."


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a) exponents against the stop level; (b) exponents by solver and initialisation;
    (c) the rates against n; (d) E_min and λ_min against n."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10.0, 7.0))
    (a, b), (c, d) = axes
    levels = [level for _, level in _levels()]
    for i, (m, label) in enumerate(MEASURES.items()):
        rows = [_get(table, part="stop level", level=lv, measure=m) for lv in levels]
        x = np.array(levels) * (1 + 0.15 * i)
        interval_bars(a, x, rows, "slope", fmt="o-", ms=4, label=label)
    rate_references(a)
    a.set_xscale("log")
    a.set(xlabel="stop level (× 1/(2n))", ylabel="exponent in n", title="stop level")
    a.legend(fontsize=7)
    variants = summary["design"]["variants"]
    tags = [t for t in dict.fromkeys(t for part in PARTS.values() for t in part) if t in variants]
    for i, level in enumerate((LEVELS[0], STOP)):
        rows = [_get(table, variant=t, level=level, measure="mu_kernel") for t in tags]
        x = np.arange(len(tags)) + (i - 0.5) * 0.25
        interval_bars(b, x, rows, "slope", fmt="s", ms=4, label=f"μ_∞ at {level:.0e}/(2n)")
    rate_references(b)
    short = {"gd": "Fig. 6 (GD η=1)"}
    b.set_xticks(range(len(tags)), [short.get(t, VARIANTS[t][0]) for t in tags])
    b.tick_params(axis="x", labelrotation=25, labelsize=7)
    for label in b.get_xticklabels():
        label.set_horizontalalignment("right")
    b.set(ylabel="exponent in n", title="solver and initialisation")
    b.legend(fontsize=7)
    means = pd.DataFrame(summary["means"])
    n = means["n"].to_numpy(float)
    for col, label in (
        ("mu_tail_paper", "μ(t_∞) at 1e-6/(2n)"),
        ("mu_tail", "μ(t_∞) at 1e-14/(2n)"),
        ("mu_kernel", "μ_∞ (kernel)"),
    ):
        c.loglog(n, means[col], "o-", ms=4, label=label)
    mid = means["mu_kernel"].to_numpy()[len(n) // 2]
    for ref, ls in ((-0.5, "--"), (-1.0, ":")):
        c.loglog(n, mid * (n / n[len(n) // 2]) ** ref, "k", ls=ls, lw=0.8, label=f"n^{ref:g}")
    c.set(xlabel="n", ylabel="rate (mean over runs)", title="rates, Fig. 6 protocol")
    c.legend(fontsize=7)
    d.loglog(n, means["E_min"], "o-", ms=4, label="E_min")
    d.loglog(n, means["lambda_min"], "s-", ms=4, label="λ_min(K)")
    d.set(xlabel="n", title="mechanism (at the end)")
    d.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the title
    return fig


def table_lines(table: pd.DataFrame) -> list[str]:
    """Each exponent of the table as a line: part, variant, level, measure, n, slope."""
    out = []
    for row in table.to_dict("records"):
        out.append(
            f"{row['part']} · {row['variant']} · {row['level']:.0e}/(2n) · {row['measure']} · "
            f"n = {row['n_min']}–{row['n_max']} ({row['points']} sizes, {row['runs']} runs): "
            f"{row['slope']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        )
    return out
