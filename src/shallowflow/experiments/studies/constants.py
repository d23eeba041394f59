"""Constants — what sets Theorem 1's rate, and why does a smaller data set converge faster?

Theorem 1: on weakly interacting data, under Assumption 1 and at width p(n, ε), with
probability ≥ 1 − ε the loss goes to 0 with μ(t) ≥ (C/n) min_i h_θ(x_i)/y_i, where the
authors' answer to a reviewer gives C = (C_x⁻/C_x⁺)·C_x⁻·C_y⁻ with [C_x⁻, C_x⁺] the range
of the ‖x_i‖ and [C_y⁻, C_y⁺] that of the |y_i| (SPEC §2). This study runs Theorem 1's
regime (sphere data at d = 10⁹ in the implicit geometry, so that every n is far inside
d ≳ n²; the paper's labels and asymmetric initialisation with a Gaussian first layer;
p = p(n, 0.05); GD with η = 1 to L ≤ 1/(2n)), with the two ranges as knobs
(``x_norms``: ρ_i ~ U[lo, hi]; ``label_range``: |y_i| ~ U[lo, hi]). Per run it measures

- the **empirical constant** ``C_emp = min_t n μ(t)/min_i(h_i/y_i)`` over the recorded
  times where every example is fitted on its side (min_fit > 0): the largest C for which
  the run satisfies Theorem 1's inequality (:func:`~shallowflow.results.least_thm1_const`);
- the **mean rate** ⟨μ⟩ = log(L(0)/L(T))/T to the stop.

Arms (each moves one range parameter, the others at the paper's [1, 2]), run on the same
draws at each n (``draws``: the ranges rescale one uniform draw, so the arms are paired):

- ``n``: the paper's ranges over the n grid: exponents of C_emp and ⟨μ⟩ in n;
- ``x_scale``: ``x_norms = [s, 2s]``, so C_x⁻ = s at a fixed ratio (C's exponent: 1);
- ``x_spread``: ``x_norms = [1, r]``, so C_x⁻/C_x⁺ = 1/r at C_x⁻ = 1 (C's exponent: 1);
- ``y_scale``: ``label_range = [m, 2m]``, C_y⁻ = m (C's exponent: 1);
- ``y_spread``: ``label_range = [1, r]``, C_y⁺ = r, which C leaves out (exponent 0).

Each exponent is the power law C_emp = K·x^β fitted to the cells' means ± standard errors
(:func:`~shallowflow.stats.fits.power_exponent`, 95% interval widened by the misfit);
with arms at several n, one common exponent and the test that it does not depend on n
(:func:`~shallowflow.stats.fits.common_exponent`).

Cost, measured on the 2-core CPU while loaded: quick (16 cells, 256 runs, 2 compiled
programs) 26 s with a cold compilation cache. Paper (22 cells of 48 runs, n up to 1024):
8 runs at n = 1024 take 21 s with compilation (n²p work per step, about 250 steps), so
about 1.5 min at n = 1024, 40 s at n = 512 and 1 min for the rest: estimated 3–5 min.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.batch import cell_table, simulate_results
from shallowflow.experiments.protocol import study_cell
from shallowflow.experiments.studies.common import design_of, holds
from shallowflow.planning import Bucket
from shallowflow.plots import design_ticks, interval_bars
from shallowflow.report.format import ci, fmt
from shallowflow.results import least_thm1_const
from shallowflow.stats import fits
from shallowflow.stats.resample import mean_se

NAME = "constants"
TITLE = "Constants — what sets Theorem 1's rate"
QUESTION = (
    "In Theorem 1's regime, how does the empirical constant n·μ/min_i(h_i/y_i) depend on "
    "the ranges of ‖x_i‖ and |y_i| (against the authors' C = (C_x⁻/C_x⁺)·C_x⁻·C_y⁻) and on "
    "n, and why does a smaller data set converge faster?"
)
ASKED_BY = (
    "the first public review of the paper (NeurIPS 2025, OpenReview), rated 4: its question 1 "
    "(the rates slow down as n grows and depend on the data's norm: what is the role of C?), "
    "asked again in the discussion (why would a smaller data set give a better rate?)"
)
TABLE_TITLE = "Cells"
D = 10**9  # Theorem 1's regime: d ≳ n² for every n of the design (implicit geometry)
BASE = (1.0, 2.0)  # the paper's ranges of ‖x_i‖ and |y_i| (SPEC §5)


@dataclass(frozen=True)
class Arm:
    """One range parameter: its name in C, the theorem's exponent, the arm's value at the
    paper's ranges, the ranges (x_norms, label_range) at a value v, and the parameter's
    value in a row of the table (its columns x_lo, x_hi, y_lo, y_hi)."""

    symbol: str
    theory: float
    base: float
    ranges: Callable[[float], tuple[tuple[float, float], tuple[float, float]]]
    param: Callable[[dict[str, Any]], float]


ARMS = {
    "x_scale": Arm("C_x⁻", 1.0, 1.0, lambda s: ((s, 2 * s), BASE), lambda r: r["x_lo"]),
    "x_spread": Arm(
        "C_x⁻/C_x⁺", 1.0, 2.0, lambda v: ((1.0, v), BASE), lambda r: r["x_lo"] / r["x_hi"]
    ),
    "y_scale": Arm("C_y⁻", 1.0, 1.0, lambda m: (BASE, (m, 2 * m)), lambda r: r["y_lo"]),
    "y_spread": Arm("C_y⁺", 0.0, 2.0, lambda v: (BASE, (1.0, v)), lambda r: r["y_hi"]),
}


@dataclass(frozen=True)
class Design:
    """One preset: the n grid at the paper's ranges, the n at which the ranges vary,
    the runs per cell and each arm's values (the base value is the n grid's cell)."""

    ns: tuple[int, ...]
    arm_ns: tuple[int, ...]
    runs: int
    values: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("x_scale", (0.5, 1.0, 1.5)),
        ("x_spread", (1.0, 2.0, 4.0)),
        ("y_scale", (0.5, 1.0, 2.0)),
        ("y_spread", (1.0, 2.0, 4.0)),
    )


PRESETS = {
    "quick": Design(ns=(32, 64, 128, 256), arm_ns=(64, 256), runs=16),
    "paper": Design(ns=(32, 64, 128, 256, 512, 1024), arm_ns=(64, 256), runs=48),
}


def _cell(n: int, runs: int, seed: int, tag: str, x=BASE, y=BASE) -> dict[str, Any]:
    cell = study_cell(NAME, "gd", seed, n=n, d=D, runs=runs, geometry="implicit")
    cell |= {"w_law": "gaussian", "tag": tag, "draws": f"n={n}"}
    if tuple(x) != BASE:
        cell["x_norms"] = list(x)
    if tuple(y) != BASE:
        cell["label_range"] = list(y)
    return cell


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """The n grid at the paper's ranges (tag ``n``) and each arm's other values at its
    n; every cell at one n shares its draws."""
    design = design_of(PRESETS, design)
    missing = set(design.arm_ns) - set(design.ns)
    if missing:
        raise ValueError(f"arm_ns: {sorted(missing)} must be on the n grid {design.ns}")
    out = [_cell(n, design.runs, seed, "n") for n in design.ns]
    for name, values in design.values:
        for v in values:
            if v != ARMS[name].base:
                x, y = ARMS[name].ranges(v)
                out += [_cell(n, design.runs, seed, name, x, y) for n in design.arm_ns]
    return out


def simulate_batch(cells_: list[dict[str, Any]], group: Bucket | None = None) -> list[pd.DataFrame]:
    """The engine's table of runs per cell (:func:`~shallowflow.experiments.batch.
    cell_table`) with each run's empirical constant ``min_thm1_const`` over its
    recorded times (module-level: the runner may ship it to workers)."""
    out = []
    for cfg, res in simulate_results(cells_, group):
        table = cell_table(cfg, res)
        table["min_thm1_const"] = least_thm1_const(res)
        out.append(table)
    return out


# --------------------------------------------------------------------------- analysis


def _ranges(runs: pd.DataFrame, knob: str) -> list[tuple[float, float]]:
    """Each run's range ``knob`` (x_norms or label_range): the runner writes a sequence
    knob as a JSON list, and leaves it null in the cells that do not set it."""
    if knob not in runs:
        return [BASE] * len(runs)

    def pair(text: str) -> tuple[float, float]:
        lo, hi = json.loads(text)
        return float(lo), float(hi)

    return [pair(text) if isinstance(text, str) else BASE for text in runs[knob]]


def table_of(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: arm, n, the ranges, C_emp and ⟨μ⟩ (mean ± se over the runs
    where defined), the runs where C_emp is undefined, and the success fraction."""
    rows = []
    ranges = zip(_ranges(runs, "x_norms"), _ranges(runs, "label_range"), strict=True)
    keys = [(t, n, x, y) for t, n, (x, y) in zip(runs["tag"], runs["n"], ranges, strict=True)]
    for tag, n, x, y in sorted(set(keys)):
        g = runs.loc[[k == (tag, n, x, y) for k in keys]]
        const, se = mean_se(g["min_thm1_const"].to_numpy(float))
        mu, mu_se = mean_se(g["mu_mean"].to_numpy(float))
        rows.append(
            {"tag": str(tag), "n": int(n), "x_lo": x[0], "x_hi": x[1], "y_lo": y[0], "y_hi": y[1]}
            | {"runs": int(len(g)), "min_thm1_const": const, "min_thm1_const_se": se}
            | {"mu_mean": mu, "mu_mean_se": mu_se}
            | {"undefined": int(np.isnan(g["min_thm1_const"].to_numpy(float)).sum())}
            | {"fraction": float(g["success"].to_numpy(bool).mean())}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _arm_rows(table: pd.DataFrame, name: str, n: int) -> pd.DataFrame:
    """The cells of arm ``name`` at n with the base cell, and the parameter's value."""
    rows = table.loc[table["tag"].isin(["n", name]) & (table["n"] == n)]
    param = [ARMS[name].param(r) for r in rows.to_dict(orient="records")]
    return rows.assign(param=param).sort_values(by="param")


def _power(rows: pd.DataFrame, x: str, y: str) -> dict[str, Any]:
    """The power law y = K x^β fitted to the cells' means ± standard errors."""
    return fits.power_exponent(rows[x], rows[y], rows[f"{y}_se"])


def analyse(table: pd.DataFrame, design: Design) -> dict[str, Any]:
    """The exponents of the module doc: in n (C_emp and ⟨μ⟩), and per arm (at each of
    its n, and common to them with the test of equal exponents)."""
    base = table.loc[table["tag"] == "n"].sort_values(by="n")
    out: dict[str, Any] = {
        "n_const": _power(base, "n", "min_thm1_const"),
        "n_mu": _power(base, "n", "mu_mean"),
        "arms": {},
    }
    for name, _ in design.values:
        per_n = {n: _arm_rows(table, name, n) for n in design.arm_ns}
        entry: dict[str, Any] = {
            "symbol": ARMS[name].symbol,
            "theory": ARMS[name].theory,
            "at": {int(n): _power(r, "param", "min_thm1_const") for n, r in per_n.items()},
            "mu": {int(n): _power(r, "param", "mu_mean") for n, r in per_n.items()},
        }
        rows = pd.concat(per_n.values())
        if len(per_n) > 1:
            entry["common"] = fits.common_exponent(
                rows["param"], rows["n"], rows["min_thm1_const"], rows["min_thm1_const_se"]
            )
        out["arms"][name] = entry
    return out


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of cells and the summary the verdict reads."""
    design = design_of(PRESETS, design)
    table = table_of(runs)
    summary = {
        "design": {"ns": list(design.ns), "arm_ns": list(design.arm_ns), "runs": design.runs},
        "runs": int(len(runs)),
    } | analyse(table, design)
    return table, summary


# --------------------------------------------------------------------------- verdict


_ci = partial(ci, digits=2, key="beta")  # an exponent with its interval, to 2 digits


def _exponent(entry: dict[str, Any]) -> dict[str, Any]:
    """An arm's exponent: the common one over its n (its 95% interval from the standard
    error, widened by overdispersion), or its one n's fit."""
    common = entry.get("common")
    if common is not None and np.isfinite(common.get("beta", math.nan)):
        half = 1.96 * common["se_beta"]
        beta = common["beta"]
        return {"beta": beta, "ci_low": beta - half, "ci_high": beta + half}
    return next(iter(entry["at"].values()))


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: the exponents of C_emp against C's, and the
    rate's exponent in n) and the numbers they rest on."""
    design = summary["design"]
    arms = summary["arms"]
    proto = (
        f"Theorem 1's regime: sphere data at d = 10⁹, p = p(n, 0.05), GD η = 1 to "
        f"L ≤ 1/(2n), {design['runs']} runs per cell"
    )
    betas = {name: _exponent(entry) for name, entry in arms.items()}
    agree = {name: holds(b, arms[name]["theory"]) for name, b in betas.items()}
    shown = ", ".join(
        f"{arms[k]['symbol']}: {_ci(b)} (C: {fmt(arms[k]['theory'])})" for k, b in betas.items()
    )
    n_const, n_mu = summary["n_const"], summary["n_mu"]
    verdicts = [k for k, ok in agree.items() if not ok]
    lines = [
        f"Exponents of the empirical constant n·μ/min_i(h_i/y_i) ({proto}, n = "
        f"{min(design['ns'])}–{max(design['ns'])}): {shown}; in n: {_ci(n_const)}, "
        f"and the mean rate ⟨μ⟩ ∝ n^{_ci(n_mu)}: "
        + (
            "the constant scales as C does in every range."
            if not verdicts
            else "the constant does not scale as C in "
            + ", ".join(arms[k]["symbol"] for k in verdicts)
            + "."
        )
    ]
    lines.append(_why_n(n_const, n_mu))
    for name, entry in arms.items():
        lines.append(_arm_line(name, entry, betas[name], agree[name]))
    lines += _caveats(table, summary, betas)
    numbers = {"n_const": n_const, "n_mu": n_mu, "exponents": betas, "agree": agree}
    return lines, numbers


def _why_n(n_const: dict[str, Any], n_mu: dict[str, Any]) -> str:
    """Why a smaller data set converges faster: μ ≥ (C/n)·min(h/y) with C_emp ∝ n^β."""
    rate = n_mu["beta"]
    return (
        f"Why fewer examples converge faster: Theorem 1 bounds μ by (C/n)·min_i(h_i/y_i), and "
        f"the measured constant grows only as n^{_ci(n_const)}, so the rate falls as "
        f"⟨μ⟩ ∝ n^{_ci(n_mu)}"
        + (
            ": it falls more slowly than 1/n (the orthogonal case's tight rate)."
            if -1 < rate < 0
            else "."
        )
    )


def _arm_line(name: str, entry: dict[str, Any], beta: dict[str, Any], agree: bool) -> str:
    """One arm: its exponent per n and in common, against the theorem's."""
    at = "; ".join(f"at n = {n}: {_ci(f)}" for n, f in entry["at"].items())
    mu = "; ".join(f"n = {n}: {_ci(f)}" for n, f in entry["mu"].items())
    common, extra = entry.get("common"), ""
    if common is not None and np.isfinite(common.get("p_value", math.nan)):
        word = "rejected" if common["p_value"] < 0.05 else "not rejected"
        extra = f"; common: {_ci(beta)} (equal over n {word}, p-value {fmt(common['p_value'], 2)})"
    symbol = f"({entry['symbol']})" if "/" in entry["symbol"] else entry["symbol"]
    return (
        f"{name}: C_emp ∝ {symbol}^β with β {at}{extra}; "
        f"{_against(entry, beta, agree)}; ⟨μ⟩'s exponent: {mu}."
    )


def _against(entry: dict[str, Any], beta: dict[str, Any], agree: bool) -> str:
    """The measured exponent against C's, read as a lower bound: which way C errs."""
    theory, symbol = entry["theory"], entry["symbol"]
    if agree:
        return f"consistent with C's exponent {fmt(theory)}"
    slower = beta["ci_high"] < theory
    return (
        f"{'below' if slower else 'above'} C's exponent {fmt(theory)}: the measured constant "
        f"grows {'more slowly' if slower else 'faster'} with {symbol} than C does, so C is "
        f"loose for {'small' if slower else 'large'} {symbol}, and for "
        f"{'large' if slower else 'small'} {symbol} the theorem's prefactor must absorb it"
    )


def _caveats(table: pd.DataFrame, summary: dict[str, Any], betas: dict[str, Any]) -> list[str]:
    """Undefined constants, failed runs, and intervals too wide to decide."""
    out = []
    undefined = int(np.sum(table["undefined"].to_numpy()))
    if undefined:
        out.append(
            f"{undefined} runs never had every example on its side (min_fit ≤ 0 at every "
            "recorded time), so C_emp is undefined there; they are left out of the means."
        )
    failed = [r for r in table.to_dict(orient="records") if r["fraction"] < 1]
    if failed:
        where = ", ".join(f"{r['tag']} n = {r['n']}" for r in failed)
        out.append(f"Not every run reached L ≤ 1/(2n) in {where} (success < 1).")
    for name, b in betas.items():
        width = b["ci_high"] - b["ci_low"]
        if width > 1:
            more = math.ceil(summary["design"]["runs"] * (width / 0.5) ** 2)
            out.append(
                f"{name}: the interval of the exponent is {fmt(width, 2)} wide; about {more} "
                "runs per cell would narrow it to 0.5 (it narrows as 1/√runs)."
            )
    return out


def table_lines(table: pd.DataFrame) -> list[str]:
    """One line per cell: arm, n, ranges, C_emp and ⟨μ⟩ with their standard errors."""
    return [
        f"{r['tag']}, n = {r['n']}, ‖x‖ ∈ [{fmt(r['x_lo'])}, {fmt(r['x_hi'])}], |y| ∈ "
        f"[{fmt(r['y_lo'])}, {fmt(r['y_hi'])}]: C_emp = {fmt(r['min_thm1_const'])} ± "
        f"{fmt(r['min_thm1_const_se'], 2)}, ⟨μ⟩ = {fmt(r['mu_mean'])} ± "
        f"{fmt(r['mu_mean_se'], 2)}, success {fmt(r['fraction'], 2)} ({r['runs']} runs)"
        for r in table.to_dict("records")
    ]


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a) C_emp and ⟨μ⟩ against n with their power laws; (b) C_emp against each range
    parameter (relative to the paper's ranges) at the arms' first n, with C's slopes;
    (c) every exponent with its interval against C's."""
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13.0, 3.8))
    base = table.loc[table["tag"] == "n"].sort_values(by="n")
    for col, se, style, label, fit in (
        ("min_thm1_const", "min_thm1_const_se", "ko-", "C_emp", summary["n_const"]),
        ("mu_mean", "mu_mean_se", "C0s-", "⟨μ⟩", summary["n_mu"]),
    ):
        a.errorbar(base["n"], base[col], yerr=1.96 * base[se].fillna(0), fmt=style, ms=4,
                   lw=0.8, label=f"{label} ∝ n^{fmt(fit['beta'], 2)}")  # fmt: skip
    a.set(xscale="log", yscale="log", xlabel="n", title="against n (paper's ranges)")
    design_ticks(a, list(base["n"]))
    a.legend(fontsize=7)
    n0 = summary["design"]["arm_ns"][0]
    for i, name in enumerate(summary["arms"]):
        rows = _arm_rows(table, name, n0)
        base = rows.loc[rows["tag"] == "n", "min_thm1_const"].to_numpy(float)
        ref = base[0] if base.size else 1.0
        b.plot(rows["param"], rows["min_thm1_const"] / ref, "o-", color=f"C{i}", ms=4, label=name)
    b.axhline(1, color="k", lw=0.5)
    b.set(xscale="log", yscale="log", xlabel="range parameter", ylabel="C_emp / paper's")
    b.set_title(f"against the ranges (n = {n0})")
    params = sorted({float(v) for k in summary["arms"] for v in _arm_rows(table, k, n0)["param"]})
    design_ticks(b, params)
    b.legend(fontsize=7)
    names = list(summary["arms"])
    for i, name in enumerate(names):
        interval_bars(c, [i], [_exponent(summary["arms"][name])], "beta", fmt="ko", ms=4)
        c.plot([i - 0.3, i + 0.3], [summary["arms"][name]["theory"]] * 2, "r-", lw=1.5)
    c.set_xticks(range(len(names)), [summary["arms"][k]["symbol"] for k in names])
    c.set(ylabel="exponent of C_emp (95%)", title="measured (black) against C (red)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig
