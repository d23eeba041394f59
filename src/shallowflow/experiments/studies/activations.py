"""Activations — what changes with σ: the width needed to converge, and the rate.

The authors answered a reviewer that the width p ≈ log n comes from the ReLU ("non-zero
leaky ReLU requires only a constant number of neurons") and that monomials work too.
For each σ of :data:`LABELS` (SPEC §6) this study measures:

- **width needed**: p_0.9(n), the smallest p with success ≥ 0.9, n = 2^k, on orthogonal
  data x_i = ρ_i e_i in d = 4n: the weakly interacting limit (κ = 0) of sphere data at
  d = 4n, with the same laws of ρ, y and θ(0) (the paper's labels and init), and O(np) a
  step against the sphere's O(n²p) (16 runs at n = 512, p = 16: 0.15 s against 35 s).
  GD with η = 1, the stop 1/(2n) and, at each n, one horizon for every p: 10·T(n, p(n,
  0.05)) (Fig. 6's), so that success in p measures width, not a horizon growing with p;
  success by the paper's T(n, p(n, 0.05)) is read from the same runs (they stop when
  they converge). p_0.9 is where a logistic curve in log p crosses 0.9, with its profile
  interval (:func:`~shallowflow.stats.thresholds.fit_level`), or censored at the grid;
- **growth law** of p_0.9 in n: constant, a·log n + b or c·n^γ by AIC; the log law's
  slope a (neurons per e-fold of n) compares the σ;
- **mechanism**: a ReLU run converges iff every example is covered at θ(0)
  (:func:`~shallowflow.theory.width.coverage_probability`); failures are told apart;
- **rate**: the Fig. 6 exponent of μ(t_∞) in n (:func:`~shallowflow.stats.resample.exponent`).

u³ runs GD at η = 1/4 (the same horizon in time): at η = 1 it diverges at large p (u³'s
curvature grows with |u|); its rate part starts from W × 1 (from W × 0.01 it stays at the
saddle u = 0). Coverage is required in the rate part for σ with an inactive side. Cost,
cold cache, on the 2-core CPU shared with other jobs: quick 117 s (load 3–5); paper about
8–12 min from measured parts (CPU: GELU and leaky 0.1 59 s; ReLU 66 s and u³ 293 s at 32
runs, not 24).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import pandas as pd

from shallowflow.activations import parse_activation
from shallowflow.experiments.batch import call_seconds, cells_work, plan_cells, simulate_batch
from shallowflow.experiments.figures import fig6
from shallowflow.experiments.protocol import EPS, study_cell
from shallowflow.experiments.runner import run_sweep
from shallowflow.experiments.studies.common import design_of, select
from shallowflow.plots import interval_yerr, rate_references
from shallowflow.report.format import ci, fmt
from shallowflow.stats.fits import WIDTH_LAWS, law_table
from shallowflow.stats.frames import where
from shallowflow.stats.resample import exponent
from shallowflow.stats.thresholds import clopper_pearson, fit_level
from shallowflow.theory.width import coverage_width, horizon_steps, width

NAME = "activations"
TITLE = "Activations — the width needed and the rate, per σ"
QUESTION = (
    "What changes with the activation: does the width needed for convergence on weakly "
    "interacting data grow like log n for ReLU and stay constant for leaky ReLU, as the "
    "authors answered, and how do other activations and the rate's exponent behave?"
)
ASKED_BY = (
    "a public review of the paper (NeurIPS 2025, OpenReview; the fourth, rated 4: can the "
    "PL-curvature framework be applied to other activations?) and the authors' reply "
    "(monomials work; non-zero leaky ReLU needs only a constant number of neurons)"
)
TABLE_TITLE = "Width needed, its growth laws, and the rate exponents"
Q = 0.9  # the success probability a width must reach
D_FACTOR = 4  # d = 4n: the regime where width, not d, limits convergence
LABELS = {"relu": "ReLU", "leaky:0.1": "leaky 0.1", "leaky:0.01": "leaky 0.01"}
LABELS |= {"relu_power:2": "ReLU²", "monomial:3": "u³", "softplus:5": "softplus β=5"}
LABELS |= {"gelu": "GELU"}
STEP = {"monomial:3": 0.25}  # GD at η = 1 diverges (module doc)
RATE_W = {"monomial:3": 1.0}  # from W × 0.01 u³ stays at its saddle (module doc)
CLAIM = ("leaky:0.1", "relu")  # the authors' claim: constant against log n
SIGNED = ("leaky:0.1", "leaky:0.01", "softplus:5", "gelu")  # fit both label signs only slowly
LAW_TEXT = {"constant": "constant, p_0.9 = {}", "log": "a log law, {} neurons per e-fold of n"}
LAW_TEXT["power"] = "a power law, n^{}"
WASTE = 4.0  # a bucket's padded work over its cells' own, at most (simulate)


@dataclass(frozen=True)
class Design:
    """One preset: the n and the grid of p of the width part, its runs per (σ, n, p) and
    its horizon H (× T(n, p(n, 0.05)), at every p); the rate part's d, n and runs; the
    activations and the bootstrap replicates of the rate exponents."""

    ns: tuple[int, ...]
    ps: tuple[int, ...]
    runs: int
    rate_d: int
    rate_ns: tuple[int, ...]
    rate_runs: int
    horizon: float = 10.0
    activations: tuple[str, ...] = tuple(LABELS)
    boot: int = 1000


# fmt: off
PRESETS = {  # cost: measured cold on the loaded 2-core CPU (docs/results/findings.md)
    "quick": Design(ns=(32, 128, 512), ps=(1, 2, 4, 8, 16, 32, 64), runs=16,
                    rate_d=600, rate_ns=(150, 300, 600), rate_runs=6),
    "paper": Design(ns=(32, 64, 128, 256, 512, 1024), ps=(1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64),
                    runs=24, rate_d=1200, rate_ns=(150, 300, 600, 1200), rate_runs=16),
}
# fmt: on


def base_steps(n: int) -> int:
    """T(n, p(n, 0.05)): the paper's horizon at its own width, the unit of the horizon."""
    return horizon_steps(n, width(n, EPS))


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """The width part's (σ, n, p) cells (every σ on the same draws at each (n, p)) and
    the rate part's (σ, n) cells of the Fig. 6 protocol."""
    design = design_of(PRESETS, design)
    out = []
    for act in design.activations:
        for n in design.ns:
            horizon = float(design.horizon * base_steps(n))
            for p in design.ps:
                cell = study_cell(NAME, "gd", seed, n=n, d=D_FACTOR * n, p=p, data="orthogonal")
                cell |= {"runs": design.runs, "horizon": horizon, "record": 2, "kernel": False}
                cell |= {"activation": act, "tag": f"width {act}", "draws": f"n={n},p={p}"}
                out.append(cell | ({"lr": STEP[act]} if act in STEP else {}))
        for n in design.rate_ns:
            cell = fig6.cell(n, design.rate_d, design.rate_runs, seed=seed, figure=NAME, x64=True)
            cell.pop("horizon_factor")  # the horizon in time, whatever η (u³'s is 1/4)
            cell |= {"horizon": float(10 * base_steps(n)), "record": 4, "kernel": False}
            cell |= {"activation": act, "tag": f"rate {act}", "draws": f"rate n={n}"}
            cell["require_coverage"] = parse_activation(act).activity
            out.append(
                cell | {k: v[act] for k, v in (("lr", STEP), ("w_scale", RATE_W)) if act in v}
            )
    return out


def simulate(design: Design | str, out: str | os.PathLike[str], **options: Any) -> pd.DataFrame:
    """Every cell, run locally by the sweep runner under ``out`` (``options``: resume,
    overwrite, progress), in buckets that may pad a cell's work up to :data:`WASTE`
    times: the diagonal geometry's steps are cheap and each bucket's compilation is not,
    so fewer, wider buckets finish sooner (3 programs per σ in ``quick`` instead of 7)."""
    plan = partial(plan_cells, max_waste=WASTE)
    sizing = {"work": cells_work, "call_seconds": call_seconds()}
    return run_sweep(cells(design), simulate_batch, out, plan=plan, **sizing, **options)


# --------------------------------------------------------------------------- analysis


def success_table(runs: pd.DataFrame, horizons: tuple[float, ...]) -> pd.DataFrame:
    """Runs and successes per (σ, horizon H, n, p): success by H·T(n, p(n, 0.05)) is
    convergence with t_final ≤ H·T (the runs stop when they converge)."""
    frames = []
    unit = runs["n"].map(base_steps).to_numpy(float)
    for h in horizons:
        ok = runs["success"].to_numpy(bool) & (runs["t_final"].to_numpy(float) <= h * unit + 1e-9)
        frames.append(runs[["activation", "n", "p"]].assign(horizon_T=h, success=ok))
    pts = pd.concat(frames).groupby(["activation", "horizon_T", "n", "p"], sort=True)
    return pts["success"].agg(runs="size", successes="sum").reset_index()


def p_needed(pts: pd.DataFrame) -> dict[str, Any]:
    """p_0.9 of one (σ, horizon, n) from its success counts against p: the crossing of
    0.9 of the logistic curve in log₂ p with its 95% profile interval, and its status
    (located, or censored below the smallest p or above the largest)."""
    x = np.log2(pts["p"].to_numpy(float))
    k, r = pts["successes"].to_numpy(), pts["runs"].to_numpy()
    fit = fit_level(x, k, r, Q)
    at = fit.threshold  # a flat curve: every p succeeds (or none does)
    if not np.isfinite(at):
        at = -math.inf if k.sum() >= Q * r.sum() else math.inf
    status = "below" if at < x.min() else "above" if at > x.max() else "located"
    # a censored value's interval is open on its censored side: no end there
    ends = [2.0**e if np.isfinite(e) else math.nan for e in (fit.ci_low, fit.ci_high)]
    ends = [math.nan if s == status else e for e, s in zip(ends, ("below", "above"), strict=True)]
    value = 2.0 ** float(np.clip(at, x.min(), x.max()))  # censored: the grid's end
    se = value * math.log(2.0) * fit.se if status == "located" else math.nan
    return {"value": value, "ci_low": ends[0], "ci_high": ends[1], "se": se, "status": status}


def failures(runs: pd.DataFrame) -> dict[str, float]:
    """The failed runs of the width part: diverged, slow (at the last rate μ(t_∞) they
    reach 1/(2n) within one more horizon) or stuck; the ReLU-type check: the share of
    runs whose success equals coverage of every example at θ(0)."""
    ok, n = runs["success"].to_numpy(bool), runs["n"].to_numpy(float)
    over, outcome = runs["final_loss"].to_numpy(float) * 2 * n, runs["outcome"].to_numpy(str)
    with np.errstate(invalid="ignore", divide="ignore"):  # a diverged run has no rate
        more = np.log(np.maximum(over, 1.0)) / runs["mu_tail"].to_numpy(float)
    slow = ~ok & (outcome == "horizon") & (more <= runs["horizon"].to_numpy(float))
    cov = runs["coverage0"].to_numpy(float) if "coverage0" in runs else np.full(len(runs), np.nan)
    same = (cov == n) == ok
    return {
        "failed": int((~ok).sum()),
        "diverged": int((~ok & (outcome == "diverged")).sum()),
        "slow": int(slow.sum()),
        "coverage_agrees": float(np.mean(same)) if np.isfinite(cov).all() else math.nan,
    }


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table (p_0.9 per σ, horizon and n; the growth laws; the rate exponents) and
    the summary the verdict reads."""
    design = design_of(PRESETS, design)
    wide = where(runs, runs["tag"].str.startswith("width "))
    pts = success_table(wide, (design.horizon, 1.0))
    rows = []
    for key, g in pts.groupby(["activation", "horizon_T", "n"], sort=False):
        act, h, n = cast(tuple[str, float, int], key)
        row = {"part": "p_0.9", "activation": act, "horizon_T": h, "n": n}
        rows.append(row | {"runs": int(g["runs"].to_numpy().sum())} | p_needed(g))
    need = pd.DataFrame(rows)
    for key, g in need.groupby(["activation", "horizon_T"], sort=False):
        act, h = cast(tuple[str, float], key)
        se = g["se"].to_numpy(float)
        ok = where(g, (g["status"] == "located").to_numpy() & np.isfinite(se) & (se > 0))
        if len(set(ok["n"])) >= 3:  # the growth laws by AIC, each with its key parameter
            laws = law_table(ok["n"], ok["value"], ok["se"], WIDTH_LAWS)
            rows += [{"part": "law", "activation": act, "horizon_T": h} | r for r in laws]
    rate = where(runs, runs["tag"].str.startswith("rate "))
    for act, g in rate.groupby("activation", sort=False):
        e = exponent(g, "mu_tail", design.boot)
        rows.append({"part": "rate", "activation": act, "value": e.pop("slope")} | e)
    summary = {
        "design": asdict(design),
        "runs": int(len(runs)),
        "points": pts.to_dict("records"),
        "coverage": {int(n): coverage_width(int(n), Q) for n in design.ns},
        "failures": {a: failures(g) for a, g in wide.groupby("activation", sort=False)},
    }
    return pd.DataFrame(rows), summary


# --------------------------------------------------------------------------- verdict


def growth(table: pd.DataFrame, summary: dict[str, Any], act: str, h: float) -> dict[str, Any]:
    """How p_0.9 of σ grows with n at horizon h: ``kind`` (minimal: the smallest p is
    within p_0.9's interval at every n; law: a law by AIC; few: under 3 located values),
    ``slope`` (the log law's a and its interval; 0 for minimal, None for few), ``text``."""
    need = select(table, part="p_0.9", activation=act, horizon_T=h)
    fitted = select(table, part="law", activation=act, horizon_T=h).to_dict("records")
    laws = {r["law"]: r for r in fitted}
    ns = need["n"].to_numpy(int)
    span = f"n = {ns.min()}–{ns.max()}"
    p0, below = min(summary["design"]["ps"]), need["status"].to_numpy(str) == "below"
    if np.all(below | (need["ci_low"].to_numpy(float) <= p0)):  # p0 fits at every n
        pts = pd.DataFrame(summary["points"])
        sel = np.isclose(pts["horizon_T"].to_numpy(float), h) & (pts["p"] == p0).to_numpy()
        at = where(pts, sel & (pts["activation"] == act).to_numpy())
        k, r = (int(at[c].to_numpy().sum()) for c in ("successes", "runs"))
        lo, hi = clopper_pearson(k, r)
        text = (
            f"p_0.9 = {p0} within its interval at every {span}, constant ({p0} neuron(s) "
            f"converged in {k} of {r} runs, "
            f"{fmt(100 * k / r, 3)}% [{fmt(100 * lo, 3)}%, {fmt(100 * hi, 3)}%])"
        )
        return {"kind": "minimal", "slope": (0.0, 0.0, 0.0), "text": text}
    cut = where(need, need["status"] != "located").to_dict("records")
    note = "".join(f"; {r['status']} the grid at n = {int(r['n'])}" for r in cut)
    if not laws:
        ok = where(need, need["status"] == "located").to_dict("records")
        vals = ", ".join(f"{ci(r)} at n = {int(r['n'])}" for r in ok) or "none"
        return {"kind": "few", "slope": None, "text": f"located at under 3 n: {vals}{note}"}
    best = next(r for r in laws.values() if r["best"])
    what = LAW_TEXT[best["law"]].format(ci(best))
    rest = "; ".join(f"{k} ΔAIC {fmt(r['delta_aic'], 2)}" for k, r in laws.items() if not r["best"])
    log = laws["log"]
    text = f"{what} over {span} (AIC; {rest}; log-law slope {ci(log)}{note})"
    slope = (log["value"], log["ci_low"], log["ci_high"])
    return {"kind": "law", "slope": slope, "text": text, "log_delta": log["delta_aic"]}


def claim(table: pd.DataFrame, summary: dict[str, Any], h: float) -> tuple[str, dict[str, Any]]:
    """The authors' claim at horizon h: leaky 0.1's p_0.9 constant in n where ReLU's grows
    like log n. Returns the sentence and its numbers: ``verdict`` (holds, fails,
    undecided; untested when the design lacks leaky 0.1 or ReLU) and ``difference``,
    ReLU's log-law slope minus leaky's with its interval (the half-widths added in
    quadrature: independent fits)."""
    missing = [LABELS[a] for a in CLAIM if a not in summary["design"]["activations"]]
    if missing:
        num = {"verdict": "untested", "difference": None}
        return f"not tested: the design lacks {' and '.join(missing)}", num
    leaky, relu = (growth(table, summary, a, h) for a in CLAIM)
    num: dict[str, Any] = {"leaky": leaky, "relu": relu, "difference": None}
    if leaky["slope"] is None or relu["slope"] is None:
        num["verdict"] = "undecided"
        return "undecided: a p_0.9 was located at under 3 n (widen the p grid)", num
    (a1, lo1, hi1), (a0, lo0, hi0) = relu["slope"], leaky["slope"]
    half = math.hypot((hi1 - lo1) / 2, (hi0 - lo0) / 2)
    num["difference"] = diff = (a1 - a0, a1 - a0 - half, a1 - a0 + half)
    if (leaky["kind"] == "minimal" or lo0 <= 0 <= hi0) and lo1 > 0 and diff[1] > 0:
        num["verdict"] = "holds"
        power = relu.get("log_delta", 0.0) >= 2  # ReLU's growth is not the log law's
        return "the claim holds" + (", but ReLU's grows as a power of n" if power else ""), num
    if lo0 > 0 or hi1 < 0 or diff[2] < 0 or (lo1 > 0 and diff[1] <= 0 <= diff[2]):
        num["verdict"] = "fails"
        why = "leaky 0.1's p_0.9 grows" if lo0 > 0 else "ReLU's does not grow faster"
        return f"the claim fails ({why})", num
    num["verdict"] = "undecided"
    wide = "undecided: the slopes' intervals are too wide (six n and a √2 grid of p decide)"
    return wide, num


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: the authors' claim at the long horizon, the second
    at the paper's T; then each σ, the mechanisms and the rates) and its numbers."""
    design = summary["design"]
    horizons, (ns, ps) = (design["horizon"], 1.0), (design["ns"], design["ps"])
    numbers, lines = {}, []
    for h in horizons:
        said, num = claim(table, summary, h)
        numbers[f"claim@{h:g}"] = num
        d = num["difference"]
        gap = "" if d is None else f"; ReLU − leaky 0.1: {fmt(d[0])} [{fmt(d[1])}, {fmt(d[2])}]"
        pair = (
            f"leaky 0.1: {num['leaky']['text']}; ReLU: {num['relu']['text']}{gap}: {said}"
            if num["verdict"] != "untested"
            else f"the authors' claim (leaky 0.1 against ReLU) is {said}"
        )
        lines.append(
            "p_0.9(n), the width at which 90% of runs converge, on orthogonal data in d = 4n "
            f"(the paper's labels and init, GD η = 1, stop 1/(2n), horizon {fmt(h)}·T(n, "
            f"p(n, 0.05)) at every p; n = {min(ns)}–{max(ns)}, {design['runs']} runs per "
            f"(σ, n, p) on p = {min(ps)}–{max(ps)}): {pair}."
        )
    for act in design["activations"]:
        parts = [f"by {fmt(h)}·T: {growth(table, summary, act, h)['text']}" for h in horizons]
        step = f" (GD η = {STEP[act]:g}: η = 1 diverges)" if act in STEP else ""
        lines.append(f"{LABELS[act]}{step}: " + "; ".join(parts) + "." + _failed(summary, act))
    return lines + _mechanism(summary) + _rate_line(table, design), numbers


def _failed(summary: dict[str, Any], act: str) -> str:
    f = summary["failures"][act]
    stuck, slow = f["failed"] - f["slow"] - f["diverged"], f["slow"]
    return (
        f" Failed runs by the long horizon: {f['failed']} ({slow} slow: at their last rate they "
        f"reach 1/(2n) within one more horizon; {stuck} stuck; {f['diverged']} diverged)."
    )


def _mechanism(summary: dict[str, Any]) -> list[str]:
    """ReLU's success against coverage at θ(0) and the exact coverage width; at the
    paper's T the two-sided σ's success against P(both signs of a) = 1 − 2^{1−p}: an
    example whose label's sign no a_j has is fitted only slowly (leaky: at rate ∝ α²)."""
    out = []
    agree = {a: f["coverage_agrees"] for a, f in summary["failures"].items()}
    agree = {a: v for a, v in agree.items() if a in ("relu", "relu_power:2") and np.isfinite(v)}
    if agree:
        widths = ", ".join(f"{w} (n = {n})" for n, w in summary["coverage"].items())
        out.append(
            "Mechanism, ReLU: a run converges iff every example is covered at θ(0) in "
            + ", ".join(f"{fmt(100 * v, 4)}% ({LABELS[a]})" for a, v in agree.items())
            + " of runs (an uncovered example never moves on orthogonal data); the width with "
            f"P(covered) ≥ 0.9, exactly: {widths}, asymptotically log n/log(4/3) + const, "
            "3.48 neurons per e-fold."
        )
    pts = pd.DataFrame(summary["points"])
    sel = pts["activation"].isin(SIGNED).to_numpy() & np.isclose(pts["horizon_T"].to_numpy(), 1)
    two = where(pts, sel & pts["p"].between(2, 8).to_numpy())
    vs = []
    for p in sorted(set(two["p"].to_numpy(int))):
        at = where(two, two["p"] == p)
        act, k, r = (at[c].to_numpy() for c in ("activation", "successes", "runs"))
        f = [k[act == a].sum() / r[act == a].sum() for a in set(act)]
        vs.append(
            f"p = {p}: {fmt(1 - 2.0 ** (1 - p), 3)} against {fmt(min(f), 2)}–{fmt(max(f), 2)}"
        )
    if vs:
        out.append(
            f"Mechanism, {', '.join(LABELS[a] for a in SIGNED)} by T: success against "
            f"P(both signs of a present) = 1 − 2^(1−p), pooled over n: {'; '.join(vs)} (an "
            "example whose label's sign no a_j has is fitted late: leaky at a rate ∝ α²)."
        )
    return out


def _rate_line(table: pd.DataFrame, design: dict[str, Any]) -> list[str]:
    rates = where(table, table["part"] == "rate").to_dict("records")
    if not rates:
        return []
    return [
        f"Rate: the exponent of μ(t_∞) in n (Fig. 6 protocol, d = {design['rate_d']}, n = "
        f"{min(design['rate_ns'])}–{max(design['rate_ns'])}, {design['rate_runs']} runs per n, "
        "W × 0.01 (u³: W × 1, η = 1/4), horizon 10·T, stop 10⁻⁶/(2n), 95% bootstrap): "
        + "; ".join(f"{LABELS[r['activation']]} {ci(r)}" for r in rates)
        + "; Conjecture 1 (ReLU): −1/2, Prop. 1's range [−1, −1/2]."
    ]


def table_lines(table: pd.DataFrame) -> list[str]:
    """Each row: part, σ, horizon, n (and status) or law, value with its interval."""
    out = []
    for r in table.to_dict("records"):
        h = f" · {fmt(r['horizon_T'])}·T" if r["part"] != "rate" else ""
        if r["part"] == "law":
            where = r.get("law")
        elif r["part"] == "p_0.9":
            where = f"n = {r['n']:g} ({r['status']})"
        else:  # a rate: its n range (a design without a rate part has no such column)
            where = f"n = {r['n_min']:g}–{r['n_max']:g}"
        out.append(f"{r['part']} · {LABELS[r['activation']]}{h} · {where}: {ci(r)}")
    return out


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a, b) p_0.9 against n per σ at the long horizon and at the paper's T (log axes;
    open triangles: censored at the grid's ends), with ReLU's exact coverage width; (c)
    the rate exponents with their 95% intervals."""
    import matplotlib.pyplot as plt

    design = summary["design"]
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.0))
    for ax, h in zip(axes[:2], (design["horizon"], 1.0), strict=True):
        for i, act in enumerate(design["activations"]):
            rows = select(table, part="p_0.9", activation=act, horizon_T=h)
            x = rows["n"] * (1.0 + 0.03 * (i - 3))  # side by side
            ok = (rows["status"] == "located").to_numpy()
            style = {"color": f"C{i}", "ms": 5}
            err = interval_yerr(where(rows, ok))
            ax.errorbar(x[ok], rows["value"][ok], yerr=err, fmt="o-", lw=0.8, label=LABELS[act],
                        **style)  # fmt: skip
            for status, marker in (("below", "v"), ("above", "^")):  # censored: open marks
                cut = (rows["status"] == status).to_numpy()
                ax.plot(x[cut], rows["value"][cut], marker, mfc="none", **style)
        cov = summary["coverage"]
        ax.plot([int(n) for n in cov], list(cov.values()), "k--", lw=0.8, label="coverage (ReLU)")
        ax.set(xscale="log", yscale="log", xlabel="n", ylabel="p_0.9 (95%)")
        ax.set_title(f"width for 90% success by {fmt(h)}·T")
        ax.set_xticks(design["ns"], [str(n) for n in design["ns"]])
        ax.set_yticks([2**k for k in range(7)], [str(2**k) for k in range(7)])
        ax.minorticks_off()
    axes[0].legend(fontsize=7)
    rates, c = where(table, table["part"] == "rate"), axes[2]
    c.errorbar(range(len(rates)), rates["value"], yerr=interval_yerr(rates), fmt="ks", ms=4)
    c.set_xticks(range(len(rates)), [LABELS[a] for a in rates["activation"]], rotation=30)
    rate_references(c)
    c.set(ylabel="exponent of μ(t_∞) in n (95%)", title="rate, Fig. 6 protocol")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
