"""Gaussian against group initialisation — which rate exponent does a small Gaussian
start reach on orthogonal data?

Proposition 2 shows that group initialisation (neuron j active exactly on its group G_j,
of its labels' sign, SPEC §4) reaches every rate between 1/n and 1/√n: with groups of
k_n ≍ n^β examples the asymptotic rate is ≍ n^{−(1 − β/2)}
(:func:`~shallowflow.theory.closed_form.rate_exponent_prediction`). Two reviewers found
the initialisation restrictive; the authors believe a Gaussian start of small enough
variance keeps the rate of order 1/n^α. This study measures α for both.

- **Design**: orthogonal data x_i = ρ_i e_i (d = n), GD with η = 1 in float64 to
  L = 10⁻¹⁰/(2n); Gaussian initialisation (a_j ~ N(0, σ²), w_j ~ N(0, σ²/d I),
  p = p(n, 0.05), every example covered at the start) with σ = 1, 0.1, 0.01, 0.001, and
  group initialisation with groups of n^β examples for β = 0, 1/2, 1: the width sets
  the group size (:func:`group_width`: p = max(2, round(n^{1−β})), the examples split
  round-robin within each label sign, :func:`shallowflow.inits.group_assignment`).
- **Measures**, per initialisation: the exponent in n of μ(t_∞) (the rate over the last
  100 units of time) and of the tangent kernel's μ_∞ = 2λ_min(K) at the end, each the
  slope of log(mean over runs) on log n with a 95% bootstrap interval over runs; the
  difference of a Gaussian exponent and each group exponent, with the interval of the
  difference of independent bootstrap replicates.
- **Verdict**: α = −(exponent of μ_∞) for the smallest σ, the nearest group value and the
  trend as σ → 0; the group values against the closed form.

Budget (the 2-core CPU, measured while shared with other jobs): ``quick`` 120 s with a
cold cache (78 s of CPU); ``paper`` estimated at 4–7 min from a sixth of its runs (14 s of
compilation, 34 s of CPU per sixth).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.config import horizon_steps
from shallowflow.experiments.protocol import EPS, study_cell
from shallowflow.experiments.studies import measures as mt
from shallowflow.experiments.studies.common import design_of, holds
from shallowflow.report.format import ci, fmt
from shallowflow.stats.fits import bootstrap_slopes, loglog_slope
from shallowflow.stats.resample import exponent_reps
from shallowflow.theory.closed_form import fixed_point_rate, rate_exponent_prediction
from shallowflow.theory.width import width

NAME = "groupinit"
TITLE = "Gaussian against group initialisation — the rate's exponent on orthogonal data"
QUESTION = (
    "Does a Gaussian initialisation of small variance reach the rate 1/n^α that group "
    "initialisation achieves (Proposition 2), and which α?"
)
ASKED_BY = (
    "two public reviews (the second, rated 4, question 3: a random initialisation of small "
    "variance instead of groups; the fourth, rated 4: can the group setting take a Gaussian "
    "initialisation), answered by the authors: a small enough variance should keep the PL "
    "curvature of order 1/n^α"
)
TABLE_TITLE = "Exponents"
STOP = 1e-10  # × 1/(2n): where the runs stop
MEASURES = {"mu_tail": "μ(t_∞)", "final_mu_inf_kernel": "μ_∞ (kernel)"}
KEY = "final_mu_inf_kernel"  # the verdict's measure: the asymptotic rate


@dataclass(frozen=True)
class Design:
    """One preset: the n grid, the runs per n, the Gaussian σ, the group exponents β,
    the horizon in units of T(n, p) and the bootstrap replicates."""

    ns: tuple[int, ...]
    runs: int
    sigmas: tuple[float, ...] = (1.0, 0.1, 0.01, 0.001)
    betas: tuple[float, ...] = (0.0, 0.5, 1.0)
    horizon: float = 40.0
    max_width: int = 256  # group cells wider are left out: n·p a step, n·p² the kernel
    boot: int = 400
    draws: int = 400  # Monte Carlo draws of the closed form per (n, β)


PRESETS = {
    "quick": Design(ns=(32, 64, 128, 256), runs=8),
    "paper": Design(ns=(32, 64, 128, 256, 512, 1024), runs=24, boot=1000),
}


def group_width(n: int, beta: float) -> int:
    """The width that makes groups of about n^β examples: p = max(2, round(n^{1−β}))
    (one neuron per label sign at least; group initialisation splits each sign's examples
    round-robin over its share of the neurons)."""
    return max(2, round(n ** (1.0 - beta)))


def arm_name(init: str, value: float) -> str:
    """The ``tag`` of an arm: ``gaussian σ=0.01`` or ``group β=0.5``."""
    return f"gaussian σ={value:g}" if init == "gaussian" else f"group β={value:g}"


def _cell(n: int, init: str, value: float, design: Design, seed: int) -> dict[str, Any]:
    p = width(n, EPS) if init == "gaussian" else group_width(n, value)
    # A Gaussian start of scale σ first waits about n log(1/σ) on its plateaus.
    wait = 4 * n * math.log(1 / value) if init == "gaussian" and value < 1 else 0.0
    cell = study_cell(NAME, "gd", seed, n=n, d=n, p=p, data="orthogonal", init=init)
    cell |= {
        "runs": design.runs,
        "x64": True,
        "kernel": True,
        "record": 4,
        "horizon": design.horizon * horizon_steps(n, p) + wait,
        "stop_loss": STOP / (2 * n),
        "tag": arm_name(init, value),
        "draws": f"n={n}",
    }
    if init == "gaussian":
        cell |= {"sigma": value, "require_coverage": True}
    return cell


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """Every (n, initialisation) cell; the arms at one n share their data draws."""
    design = design_of(PRESETS, design)
    arms = [("gaussian", s) for s in design.sigmas] + [("group", b) for b in design.betas]
    return [
        _cell(n, init, v, design, seed)
        for n in design.ns
        for init, v in arms
        if init == "gaussian" or group_width(n, v) <= design.max_width
    ]


# --------------------------------------------------------------------------- analysis


def closed_form_rates(n: int, beta: float, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` values of the closed form's μ_∞: the smallest over the groups of
    :func:`~shallowflow.theory.closed_form.fixed_point_rate` (SPEC §4, the group's rate
    at the fixed point it converges to, for its own norms), under the study's laws:
    labels ±U[1, 2], norms ρ_i ~ U[1, 2], p = :func:`group_width`, the round-robin groups
    of :func:`~shallowflow.inits.group_assignment`, u_i ~ U(0, 1/√n) and a_j = ±(‖u_{G_j}‖
    + Exp(1)), so δ = (a_j² − ‖u_{G_j}‖²)/p (b = a_j/√p)."""
    p, out = group_width(n, beta), np.empty(draws)
    for k in range(draws):
        y, rho = rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n), rng.uniform(1, 2, n)
        pos = y > 0
        lo, hi = (1 if pos.any() else 0), (p - 1 if (~pos).any() else p)
        p_pos = int(np.clip(np.round(p * pos.sum() / n), lo, hi))
        owner = np.where(
            pos,
            (np.cumsum(pos) - 1) % max(p_pos, 1),
            p_pos + (np.cumsum(~pos) - 1) % max(p - p_pos, 1),
        )
        u = rng.uniform(0, 1 / math.sqrt(n), n)
        size = np.bincount(owner, minlength=p)
        w = np.sqrt(np.bincount(owner, weights=u * u, minlength=p))
        delta = ((w + rng.exponential(size=p)) ** 2 - w**2) / p
        # one example per group: 2Δs²/n with Δ = √(δ² + 4(y/s)²), vectorised
        one = size[owner] == 1
        d1 = delta[owner[one]]
        rates = list(2 * rho[one] ** 2 * np.sqrt(d1**2 + 4 * (y[one] / rho[one]) ** 2) / n)
        for j in np.flatnonzero(size > 1):
            g = owner == j
            rates.append(fixed_point_rate(y[g], rho[g], float(delta[j]), n))
        out[k] = min(rates)
    return out


def closed_form_exponent(ns, beta: float, design: Design, rng: np.random.Generator) -> tuple:
    """The exponent of the closed form's mean μ_∞ over ``ns`` (:func:`closed_form_rates`)
    with its bootstrap interval over the Monte Carlo draws."""
    if len(ns) < 2:
        return math.nan, math.nan, math.nan
    draws = [closed_form_rates(n, beta, design.draws, rng) for n in ns]
    slope = loglog_slope(ns, [v.mean() for v in draws])
    return _interval(slope, bootstrap_slopes(ns, draws, design.boot, rng))


def _interval(value: float, reps: np.ndarray, runs: int = 0) -> tuple:
    lo, hi = np.percentile(reps, [2.5, 97.5]) if np.isfinite(reps).all() else (math.nan,) * 2
    return value, lo, hi, runs


def _arm_rows(sub: pd.DataFrame, arm: str, v: float, design: Design, rng) -> list[dict]:
    """An arm's exponent of each measure and its mean rates per n."""
    rows = []
    for col in MEASURES:
        slope, r, used = exponent_reps(sub, col, design.boot, rng)
        rows.append(mt.row("exponent", arm, col, v, _interval(slope, r, used)))
        rows += [
            mt.row("rate", arm, col, n, mt.mean(g[col], design.boot, rng))
            for n, g in sub.groupby("n")
        ]
    return rows


def difference(a: pd.DataFrame, b: pd.DataFrame, col: str, boot: int, rng) -> tuple:
    """The exponent of arm ``a`` minus that of ``b``, both fitted on the n they share, with
    the interval of the difference of their independent bootstrap replicates."""
    ns = sorted(set(a["n"]) & set(b["n"]))
    (ga, ra, _), (gb, rb, _) = (
        exponent_reps(x.loc[x["n"].isin(ns)], col, boot, rng) for x in (a, b)
    )
    return _interval(ga - gb, ra - rb)


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table (:mod:`.measures`): each arm's exponents (part ``exponent``, x = σ or β),
    each Gaussian's difference to each group on the n they share (part ``difference``),
    the closed form's exponents (part ``prediction``) and the mean rates per n (``rate``)."""
    design = design_of(PRESETS, design)
    rng = np.random.default_rng(0)
    arms = [("gaussian", s) for s in design.sigmas] + [("group", b) for b in design.betas]
    sub = {arm_name(i, v): runs.loc[runs["tag"] == arm_name(i, v)] for i, v in arms}
    rows = [
        r for i, v in arms for r in _arm_rows(sub[arm_name(i, v)], arm_name(i, v), v, design, rng)
    ]
    for b in design.betas:
        e = rate_exponent_prediction(b)
        rows.append(mt.row("prediction", arm_name("group", b), "limit", b, (e, e, e)))
        stat = closed_form_exponent(sorted(set(sub[arm_name("group", b)]["n"])), b, design, rng)
        rows.append(mt.row("prediction", arm_name("group", b), "these n", b, stat))
    for s in design.sigmas:
        gauss = sub[arm_name("gaussian", s)]
        for b in design.betas:
            for col in MEASURES:
                diff = difference(gauss, sub[arm_name("group", b)], col, design.boot, rng)
                rows.append(
                    mt.row("difference", arm_name("gaussian", s), f"{col} − β={b:g}", s, diff)
                )
    converged = mt.converged(runs)
    summary = {"design": asdict(design), "runs": int(len(runs)), "converged": converged}
    return pd.DataFrame(rows), summary


# --------------------------------------------------------------------------- verdict


def _alpha(r: dict) -> str:
    """α = −exponent, with its interval."""
    return f"{fmt(-r['value'], 3)} [{fmt(-r['ci_high'], 3)}, {fmt(-r['ci_low'], 3)}]"


def nearest(get, sigma: float, betas, col: str = KEY) -> tuple[float, dict]:
    """The group β whose exponent is nearest the Gaussian σ's, and their difference."""
    diffs = {
        b: get("difference", arm_name("gaussian", sigma), f"{col} − β={b:g}", sigma) for b in betas
    }
    best = min(
        diffs, key=lambda b: abs(diffs[b]["value"]) if np.isfinite(diffs[b]["value"]) else math.inf
    )
    return best, diffs[best]


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: α of the smallest σ against the group values) and
    the numbers they rest on."""
    d, get = summary["design"], functools.partial(mt.get, table)
    small = min(d["sigmas"])
    key = get("exponent", arm_name("gaussian", small), KEY, small)
    groups = {b: get("exponent", arm_name("group", b), KEY, b) for b in d["betas"]}
    best, diff = nearest(get, small, d["betas"])
    same = holds(diff, 0)
    proto = (
        f"orthogonal data, d = n = {min(d['ns'])}–{max(d['ns'])}, GD η = 1 to 10⁻¹⁰/(2n), "
        f"{d['runs']} runs per n"
    )
    lines = [
        f"A Gaussian start with σ = {small:g} (p = p(n, 0.05)) reaches μ_∞ ∝ n^−α with α = "
        f"{_alpha(key)}, against group initialisation's "
        + ", ".join(f"{_alpha(r)} (β = {b:g}{_upto(table, b, d)})" for b, r in groups.items())
        + f" ({proto}): nearest β = {best:g}, the exponents differ by {ci(diff)} on the n "
        "both share, "
        + (
            f"not told apart (the interval narrows as 1/√runs: more than {d['runs']} runs per n, "
            "or a wider n range, would resolve a smaller gap)"
            if same
            else "told apart: it is none of the group values"
        )
        + ".",
        "α (μ_∞) per σ: "
        + "; ".join(
            f"σ = {s:g}: {_alpha(get('exponent', arm_name('gaussian', s), KEY, s))}"
            for s in d["sigmas"]
        )
        + "; μ(t_∞): "
        + "; ".join(
            f"σ = {s:g}: {_alpha(get('exponent', arm_name('gaussian', s), 'mu_tail', s))}"
            for s in d["sigmas"]
        )
        + ".",
        _trend(get, d),
        "Group initialisation against the closed form (SPEC §4; α → 1 − β/2, Proposition 2): "
        + "; ".join(_group_line(get, b, r) for b, r in groups.items())
        + ".",
        "Converged to 10⁻¹⁰/(2n): "
        + ", ".join(f"{k} {v:.0%}" for k, v in summary["converged"].items())
        + ".",
    ]
    numbers = {"alpha_small": key, "nearest_beta": best, "difference": diff, "groups": groups}
    return lines, numbers


def _upto(table: pd.DataFrame, beta: float, d: dict[str, Any]) -> str:
    """ ", n ≤ N" when a group's arm stops below the largest n (``max_width``)."""
    rates = table.loc[(table["part"] == "rate") & (table["arm"] == arm_name("group", beta))]
    top = int(rates["x"].max()) if len(rates) else 0
    return f", n ≤ {top}" if top < max(d["ns"]) else ""


def _group_line(get, beta: float, key: dict) -> str:
    """One group's α of μ_∞ and μ(t_∞) against the closed form at the same n."""
    arm = arm_name("group", beta)
    tail, here = get("exponent", arm, "mu_tail", beta), get("prediction", arm, "these n", beta)
    meet = key["ci_low"] <= here["ci_high"] and here["ci_low"] <= key["ci_high"]
    return (
        f"β = {beta:g}: μ_∞ {_alpha(key)}, μ(t_∞) {_alpha(tail)}; the closed form "
        f"{_alpha(here)} at these n ({'the intervals meet' if meet else 'apart'}), "
        f"{fmt(-rate_exponent_prediction(beta), 3)} as n → ∞"
    )


def _trend(get, d: dict[str, Any]) -> str:
    """How α moves as σ goes from its largest to its smallest value."""
    sig = sorted(d["sigmas"], reverse=True)
    first, last = (get("exponent", arm_name("gaussian", s), KEY, s) for s in (sig[0], sig[-1]))
    apart = first["ci_high"] < last["ci_low"] or last["ci_high"] < first["ci_low"]
    nearest_each = ", ".join(f"σ = {s:g}: β = {nearest(get, s, d['betas'])[0]:g}" for s in sig)
    return (
        f"As σ goes {sig[0]:g} → {sig[-1]:g}, α goes {_alpha(first)} → {_alpha(last)}, "
        + ("a significant change" if apart else "no change beyond the intervals")
        + f"; the nearest group value per σ: {nearest_each}."
    )


table_lines = mt.lines


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a) μ_∞ against n per initialisation; (b) α of μ_∞ and μ(t_∞) against σ, with the
    group values as bands and the closed form dashed."""
    import matplotlib.pyplot as plt

    d = summary["design"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    rates = table.loc[(table["part"] == "rate") & (table["measure"] == KEY)]
    for i, (arm, g) in enumerate(rates.groupby("arm", sort=False)):
        style = "o-" if arm.startswith("gaussian") else "s--"
        a.errorbar(
            g["x"], g["value"], yerr=mt.errorbars(g), fmt=style, ms=4, color=f"C{i}", label=arm
        )
    a.set(
        xscale="log",
        yscale="log",
        xlabel="n",
        ylabel="μ_∞ (mean over runs)",
        title="asymptotic rate",
    )
    a.legend(fontsize=7)
    sig = np.array(sorted(d["sigmas"]))
    for j, (col, label) in enumerate(MEASURES.items()):
        rows = [mt.get(table, "exponent", arm_name("gaussian", s), col, s) for s in sig]
        alpha = np.array([-r["value"] for r in rows])
        err = np.abs(
            np.array(
                [[r["ci_high"] + a_, -r["ci_low"] - a_] for r, a_ in zip(rows, alpha, strict=True)]
            ).T
        )
        b.errorbar(sig * 1.15**j, alpha, yerr=err, fmt="o-", ms=4, label=f"Gaussian, {label}")
    for i, beta in enumerate(d["betas"]):
        r = mt.get(table, "exponent", arm_name("group", beta), KEY, beta)
        b.axhspan(
            -r["ci_high"],
            -r["ci_low"],
            color=f"C{i + 2}",
            alpha=0.25,
            label=f"group β = {beta:g} (μ_∞)",
        )
        b.axhline(-rate_exponent_prediction(beta), color=f"C{i + 2}", ls="--", lw=0.8)
    b.set(xscale="log", xlabel="σ", ylabel="α (rate ∝ n^−α)", title="exponent against σ")
    b.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # room for the title
    return fig
