"""Small initialisation — plateaus of length log(1/ε), incremental fitting, and the norm
of the interpolator the dynamics finds.

From θ(0) = ε θ₀ (the paper's initialisation with both layers × ε after drawing,
``w_scale = a_scale = ε``, SPEC §5, §6) the residuals stay ≈ y until a neuron grows to
order 1. On orthogonal data each neuron j grows as e^{λ_j t}, λ_j = ‖(y_i ρ_i)_{i∈A_j}‖/n
over the examples it sees with its own sign (SPEC §4's group rate, derived in
:func:`shallowflow.theory.smallinit.escape_rates`), so the loss first falls at
log(1/ε)/max_j λ_j + O(1). Parts (orthogonal data x_i = ρ_i e_i, d = n, p = p(n, 0.05),
every example covered at the start, float64; records on a log grid):

- **plateau**: at one n, ε = 10⁻¹ … 10⁻⁶ on the same draws (θ₀ and the data shared by
  every ε and solver: a paired design), GD with η = 0.1 and the exact flow. The first
  plateau t₁ is the first time L ≤ 0.9 L(0) (log-linear between records); each run's
  least-squares slope of t₁ on log(1/ε), their mean with a 95% bootstrap interval over
  runs, against the prediction E[1/max_j λ_j] (GD: E[η/log(1 + η max_j λ_j)], its
  per-step growth) by Monte Carlo under the same laws
  (:func:`~shallowflow.theory.smallinit.escape_draws`);
- **fits**: the time at which the k-th example is fitted (|r_i| < |y_i|/2, the record
  ``fitted``), for the first, the median and the last example, in units of log(1/ε),
  and their slopes in log(1/ε): an incremental fit keeps last/first > 1 as ε → 0;
- **grown neurons**: the staircase of ``grown_neurons`` (norm ≥ 10× its start): how many
  have grown by t₁ and by the end;
- **sphere**: the plateau on sphere data (d = ``sphere_d``), where the active sets move;
- **norm**: at ε = ``norm_eps``, n over a grid: the final ‖θ‖² over p (the norm in the
  usual scaling θ/√p, SPEC §1), its ratio to the least ‖θ‖² of a width-p interpolator of
  the labels it fits (:func:`~shallowflow.theory.smallinit.min_norm2` of D_i = h(x_i)/ρ_i
  read from the final state, interpolating runs only), exponents in n with bootstrap
  intervals.

Budget (the 2-core CPU, measured while shared with other jobs): ``quick`` 63 s with a cold
cache (31 s of CPU); ``paper`` estimated at 2–3 min from a sixth of its runs (25 s of
compilation, 6.5 s of CPU per sixth).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.batch import cell_table, simulate_results
from shallowflow.experiments.protocol import EPS, study_cell
from shallowflow.experiments.studies import measures as mt
from shallowflow.experiments.studies.common import design_of
from shallowflow.report.format import ci, fmt
from shallowflow.stats.curves import first_below, paired_slopes, staircase
from shallowflow.stats.resample import exponent
from shallowflow.theory.smallinit import escape_draws, min_norm2
from shallowflow.theory.width import width

NAME = "smallinit"
TITLE = "Small initialisation — plateaus, incremental fitting and the interpolator's norm"
QUESTION = (
    "From a small initialisation (both layers × ε), do the plateaus last of order "
    "log(1/ε), in what order are the examples fitted, and how far is the learned ‖θ‖² "
    "from the least norm of an interpolator?"
)
ASKED_BY = (
    "a public review (the fourth, rated 4: plateaus, answered by the authors: neurons of "
    "norm ε give plateaus of length log(1/ε)) and Town, Boursier et al. (arXiv 2605.27097: "
    "saddle to saddle on orthogonal data, ‖θ‖² of order √n within a constant of the least)"
)
TABLE_TITLE = "Measures"
DROP = 0.9  # the first plateau ends when the loss has fallen by 10%
STOP = 1e-9  # × 1/(2n): where the runs stop
ARMS = {"gd": "GD η = 0.1", "flow": "exact flow", "sphere": "GD η = 0.1, sphere data"}
MEASURES = ("norm2_p", "least_p", "ratio")  # the norm part: ‖θ‖²/p, least ‖θ‖²/p, ratio
ORDER = ("first", "median", "last")  # which fit times: the k-th example fitted
NAN = math.nan


@dataclass(frozen=True)
class Design:
    """One preset: n, the ε grid and runs of the plateau part, the exact flow's runs (on
    the first runs' draws), the sphere contrast's d and runs, the norm part's n grid, runs
    and ε, GD's step, the records per run and the bootstrap replicates."""

    n: int
    epsilons: tuple[float, ...]
    runs: int
    flow_runs: int
    sphere_d: int
    sphere_runs: int
    norm_ns: tuple[int, ...]
    norm_runs: int
    norm_eps: float = 1e-4
    lr: float = 0.1
    records: int = 400
    boot: int = 400
    draws: int = 4000  # Monte Carlo draws of the prediction


QUICK = Design(
    n=16,
    epsilons=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
    runs=16,
    flow_runs=4,
    sphere_d=100,
    sphere_runs=8,
    norm_ns=(8, 16, 32, 64, 128),
    norm_runs=8,
)
PRESETS = {
    "quick": QUICK,
    "paper": replace(
        replace(QUICK, n=32, runs=48, flow_runs=12, sphere_d=200, sphere_runs=24, norm_runs=24),
        norm_ns=(8, 16, 32, 64, 128, 256, 512),
        boot=1000,
    ),
}


def horizon(n: int, eps: float) -> float:
    """A horizon past the last plateau: n·(2 log(1/ε) + 10) units of time (the slowest
    neuron a run needs, λ ≥ 1/n, escapes by n log(1/ε), then converges)."""
    return n * (2 * math.log(1 / eps) + 10)


def _cell(arm: str, n: int, eps: float, runs: int, design: Design, seed: int) -> dict[str, Any]:
    sphere = arm == "sphere"
    cell = study_cell(NAME, "flow" if arm == "flow" else "gd", seed, n=n, p=width(n, EPS))
    cell |= {
        "data": "sphere" if sphere else "orthogonal",
        "d": design.sphere_d if sphere else n,
        "runs": runs,
        "w_scale": eps,
        "a_scale": eps,
        "require_coverage": True,
        "x64": True,
        "horizon": horizon(n, eps),
        "stop_loss": STOP / (2 * n),
        "record": design.records,
        "grid": "log",
        "fitted": True,
        "keep_state": not sphere,
    }
    if arm == "flow":
        cell |= {"rtol": 1e-8, "atol": 1e-12}
    else:
        cell["lr"] = design.lr
    return cell


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """The plateau part (GD and the flow on shared draws, the sphere contrast) at every ε,
    and the norm part at every n (``draws`` tags: the cells that share their draws)."""
    design = design_of(PRESETS, design)
    out = []
    for eps in design.epsilons:
        for arm, runs in (("gd", design.runs), ("flow", design.flow_runs)):
            out.append(_cell(arm, design.n, eps, runs, design, seed) | {"tag": arm, "draws": "eps"})
        sphere = _cell("sphere", design.n, eps, design.sphere_runs, design, seed)
        out.append(sphere | {"tag": "sphere", "draws": "sphere"})
    for n in design.norm_ns:
        cell = _cell("gd", n, design.norm_eps, design.norm_runs, design, seed)
        out.append(cell | {"tag": "norm", "draws": f"norm n={n}"})
    return out


# --------------------------------------------------------------------------- records


def _least_norm(states: dict[str, np.ndarray], r: int, n: int, p: int) -> float:
    """min_norm2 of the labels the final state fits, D_i = h(x_i)/ρ_i = (1/p) Σ_j a_j
    (ω_ji)₊ on x_i = ρ_i e_i (exact when the run interpolates)."""
    fit = states["a"][r] @ np.maximum(states["W"][r][:, :n], 0.0) / p
    return min_norm2(fit, np.ones(n), p) if np.any(fit != 0) else math.nan


def _read(res, r: int, n: int, p: int) -> dict[str, Any]:
    """Run r's columns, read from its records and its final state (:func:`simulate_batch`)."""
    k = np.flatnonzero(res.valid[r])
    t, rec = res.times[k], {name: v[r, k] for name, v in res.records.items()}
    return {
        "plateau_time": first_below(t, rec["loss"], DROP * rec["loss"][0]),
        "fit_times": staircase(t, rec["fitted"], n),
        "grown_times": staircase(t, rec["grown_neurons"], p),
        "min_norm2": _least_norm(res.states, r, n, p) if res.states else math.nan,
    }


def simulate_batch(cells: list[dict[str, Any]], group=None) -> list[pd.DataFrame]:
    """Each cell's runs table with the columns read from its records: ``plateau_time``
    (t₁), ``fit_times`` and ``grown_times`` (the staircases of ``fitted`` and
    ``grown_neurons``) and, from the kept final state on orthogonal data, ``min_norm2``."""
    out = []
    for cfg, res in simulate_results(cells, group):
        read = pd.DataFrame([_read(res, r, cfg.data.n, cfg.init.p) for r in range(res.runs)])
        out.append(pd.concat([cell_table(cfg, res), read], axis=1))
    return out


# --------------------------------------------------------------------------- analysis


def _slopes(sub: pd.DataFrame, column: str) -> np.ndarray:
    """Each run's slope of ``column`` on log(1/ε) (the runs share their draws across ε)."""
    return paired_slopes(sub["log_eps"], sub[column], sub["run"])


def _order(fits, k: str) -> float:
    """The first, median or last fit time of a run (NaN when an example is never fitted)."""
    f = np.asarray(fits, float)
    return float(f[{"first": 0, "median": (f.size - 1) // 2, "last": -1}[k]])


def _plateau_rows(runs: pd.DataFrame, design: Design, rng) -> list[dict[str, Any]]:
    """Per arm: the mean per-run slope of t₁ on log(1/ε), and t₁/log(1/ε) per ε; the
    predicted slope (flow, and GD, whose step grows by 1 + ηλ) with its Monte Carlo
    interval; the fastest neuron's set: its size and share of L(0)."""
    rows = []
    for arm in (a for a in ARMS if a in set(runs["tag"])):
        sub = runs.loc[runs["tag"] == arm]
        rows.append(mt.row("plateau", arm, "slope", NAN, mt.mean(_slopes(sub, "t1"), *rng)))
        for eps, g in sub.groupby("w_scale"):
            rows.append(
                mt.row("plateau", arm, "t1/log", eps, mt.mean(g["t1"] / g["log_eps"], *rng))
            )
    pred = escape_draws(design.n, width(design.n, EPS), design.draws, rng[1])
    gd_rate = np.log1p(design.lr * pred["rate"]) / design.lr
    for arm, v in (("flow", 1 / pred["rate"]), ("gd", 1 / gd_rate)):
        half = 1.96 * np.std(v) / math.sqrt(v.size)
        rows.append(
            mt.row("prediction", arm, "slope", NAN, (v.mean(), v.mean() - half, v.mean() + half))
        )
    for m in ("size", "share"):
        rows.append(mt.row("prediction", "gd", f"first {m}", NAN, (pred[m].mean(),) * 3))
    return rows


def _fit_rows(gd: pd.DataFrame, rng) -> list[dict[str, Any]]:
    """The first, median and last fit times over log(1/ε) per ε and their slopes in
    log(1/ε); last/first; the grown neurons by t₁ and at the end."""
    rows = []
    for k in ORDER:
        gd[k] = [_order(f, k) for f in gd["fit_times"]]
        rows.append(mt.row("fits", "gd", f"{k} slope", NAN, mt.mean(_slopes(gd, k), *rng)))
    for eps, g in gd.groupby("w_scale"):
        rows += [mt.row("fits", "gd", k, eps, mt.mean(g[k] / g["log_eps"], *rng)) for k in ORDER]
        rows.append(mt.row("fits", "gd", "last/first", eps, mt.mean(g["last"] / g["first"], *rng)))
        grown = [
            np.sum(np.asarray(gt) <= t) for gt, t in zip(g["grown_times"], g["t1"], strict=True)
        ]
        rows.append(mt.row("grown", "gd", "by t1", eps, mt.mean(grown, *rng)))
        rows.append(mt.row("grown", "gd", "end", eps, mt.mean(g["final_grown_neurons"], *rng)))
    return rows


def _norm_rows(norm: pd.DataFrame, design: Design, rng) -> list[dict[str, Any]]:
    """Per n: ‖θ‖²/p, the least ‖θ‖²/p and their ratio (interpolating runs); each one's
    exponent in n over the whole grid and over its last three n (``late``)."""
    norm = norm.assign(
        norm2_p=norm["final_theta_norm2"] / norm["p"], least_p=norm["min_norm2"] / norm["p"]
    )
    norm["ratio"] = np.where(norm["success"], norm["final_theta_norm2"] / norm["min_norm2"], NAN)
    rows = [
        mt.row("norm", "gd", m, n, mt.mean(g[m], *rng))
        for n, g in norm.groupby("n")
        for m in MEASURES
    ]
    late = sorted(design.norm_ns)[-3:]
    for m in MEASURES:
        for name, ns in ((m, None), (f"{m} late", (late[0], late[-1]))):
            e = exponent(norm, m, design.boot, ns=ns)
            stat = (e["slope"], e["ci_low"], e["ci_high"], e["runs"])
            rows.append(mt.row("exponent", "gd", name, NAN, stat))
    return rows


def _curves(gd: pd.DataFrame) -> dict[str, Any]:
    """The fraction of examples fitted against t/log(1/ε), mean over runs, per ε."""
    fits = {
        float(g["w_scale"].iloc[0]): np.stack([np.asarray(f, float) for f in g["fit_times"]])
        / g["log_eps"].iloc[0]
        for _, g in gd.groupby("w_scale")
    }
    small = fits[min(fits)]  # the smallest ε sets the range: larger ones blur toward it
    top = 1.5 * float(np.nanmax(small)) if np.isfinite(small).any() else 10.0
    u = np.linspace(0.0, top, 241)
    out = {"u": u.tolist()}
    for eps, f in fits.items():
        out[f"{eps:g}"] = (np.nan_to_num(f, nan=np.inf)[:, :, None] <= u).mean(axis=(0, 1)).tolist()
    return out


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table of measures (:mod:`.measures`) and the summary the verdict and the figure
    read."""
    design = design_of(PRESETS, design)
    rng = (design.boot, np.random.default_rng(0))
    runs = runs.assign(log_eps=np.log(1 / runs["w_scale"]), t1=runs["plateau_time"])
    gd = runs.loc[runs["tag"] == "gd"].copy()
    rows = _plateau_rows(runs.loc[runs["tag"] != "norm"], design, rng) + _fit_rows(gd, rng)
    rows += _norm_rows(runs.loc[runs["tag"] == "norm"], design, rng)
    summary = {"design": asdict(design), "runs": int(len(runs)), "curves": _curves(gd)}
    return pd.DataFrame(rows), summary | {"converged": mt.converged(runs)}


# --------------------------------------------------------------------------- verdict


def _against(r: dict, pred: dict) -> str:
    """The measured slope over the predicted one, and whether the interval holds 1."""
    lo, hi = r["ci_low"] / pred["value"], r["ci_high"] / pred["value"]
    text = f"{fmt(r['value'] / pred['value'], 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"
    return text + (" (consistent)" if lo <= 1 <= hi else f" ({'above' if lo > 1 else 'below'} it)")


def _growth(late: dict) -> str:
    """Whether the ratio to the least norm grows, from its exponent on the largest n."""
    if late["ci_low"] > 0:
        return "still growing on the largest n (exponent there " + ci(late) + "): extend n"
    return "bounded: no growth on the largest n (exponent there " + ci(late) + ")"


def _headline(get, d: dict[str, Any]) -> str:
    """The plateau's slope against the prediction; the norm's exponent and its ratio."""
    gd, flow = get("plateau", "gd", "slope"), get("plateau", "flow", "slope")
    pgd, pflow = get("prediction", "gd", "slope"), get("prediction", "flow", "slope")
    n_max, eps = max(d["norm_ns"]), d["epsilons"]
    ratio, norm = get("norm", "gd", "ratio", n_max), get("exponent", "gd", "norm2_p late")
    late_ns = sorted(d["norm_ns"])[-3:]
    proto = (
        f"orthogonal data, n = {d['n']}, p = {width(d['n'], EPS)}, ε = {min(eps):g}–"
        f"{max(eps):g}, {d['runs']} runs on shared draws"
    )
    return (
        f"The first plateau lasts B·log(1/ε) + c with B = {ci(gd)} under GD η = {d['lr']:g} "
        f"against SPEC §4's E[1/max_j λ_j] = {fmt(pgd['value'], 3)} for its step, a ratio of "
        f"{_against(gd, pgd)}, and {ci(flow)} under the exact flow ({d['flow_runs']} runs; "
        f"predicted {fmt(pflow['value'], 3)}: {_against(flow, pflow)}) ({proto}). The final "
        f"‖θ‖²/p grows as n^{ci(norm)} on n = {late_ns[0]}–{n_max} (the least: n^1/2), "
        f"{ci(ratio)} × the least at n = {n_max}: "
        + _growth(get("exponent", "gd", "ratio late"))
        + "."
    )


def _fits_line(get, d: dict[str, Any]) -> str:
    """The order of the fits at the smallest ε, in units of log(1/ε)."""
    eps = min(d["epsilons"])
    order = {k: get("fits", "gd", k, eps) for k in (*ORDER, "last/first")}
    spread = order["last/first"]
    size, share = (get("prediction", "gd", f"first {m}")["value"] for m in ("size", "share"))
    return (
        f"Fits (|r_i| < |y_i|/2) at ε = {eps:g}, in units of log(1/ε): the first example at "
        f"{ci(order['first'])}, the median at {ci(order['median'])}, the last at "
        f"{ci(order['last'])} (slopes in log(1/ε): "
        + ", ".join(ci(get("fits", "gd", f"{k} slope")) for k in ORDER)
        + f"); last/first = {ci(spread)}: "
        + (
            "one saddle after another"
            if spread["ci_low"] > 1.05
            else "no spread resolved (a smaller ε or more runs would)"
        )
        + f"; the fastest neuron's set holds {fmt(size, 3)} examples on average, "
        f"{fmt(100 * share, 3)}% of L(0)."
    )


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: :func:`_headline`) and the numbers they rest on."""
    d, get = summary["design"], functools.partial(mt.get, table)
    eps = (max(d["epsilons"]), min(d["epsilons"]))
    grown = [(e, get("grown", "gd", "by t1", e), get("grown", "gd", "end", e)) for e in eps]
    lines = [
        _headline(get, d),
        "t₁/log(1/ε) per ε (GD): "
        + "; ".join(f"ε = {e:g}: {ci(get('plateau', 'gd', 't1/log', e))}" for e in d["epsilons"])
        + f"; sphere data (d = {d['sphere_d']}, {d['sphere_runs']} runs, where the active sets "
        f"move and the prediction does not apply): B = {ci(get('plateau', 'sphere', 'slope'))}.",
        _fits_line(get, d),
        f"grown_neurons (norm ≥ 10× its start) of p = {width(d['n'], EPS)}: "
        + "; ".join(f"ε = {e:g}: {ci(a)} by t₁, {ci(b)} at the end" for e, a, b in grown)
        + ".",
        f"‖θ‖²/least per n (ε = {d['norm_eps']:g}, {d['norm_runs']} runs, interpolating runs): "
        + "; ".join(f"n = {n}: {ci(get('norm', 'gd', 'ratio', n))}" for n in d["norm_ns"])
        + f"; over n = {min(d['norm_ns'])}–{max(d['norm_ns'])} ‖θ‖²/p grows as "
        f"n^{ci(get('exponent', 'gd', 'norm2_p'))} and the least as "
        f"n^{ci(get('exponent', 'gd', 'least_p'))} (theory: 1/2).",
        "Converged to 10⁻⁹/(2n): "
        + ", ".join(f"{k} {v:.0%}" for k, v in summary["converged"].items())
        + ".",
    ]
    numbers = {
        f"{part} {arm}": get(part, arm, "slope")
        for part, arm in (("plateau", "gd"), ("plateau", "flow"), ("plateau", "sphere"))
    } | {f"prediction {arm}": get("prediction", arm, "slope") for arm in ("gd", "flow")}
    keys = (("norm2_p", "exponent"), ("ratio late", "exponent"))
    return lines, numbers | {m: get(part, "gd", m) for m, part in keys}


table_lines = mt.lines


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """(a) t₁/log(1/ε) against ε per arm, the predictions as lines; (b) the fraction fitted
    against t/log(1/ε) per ε; (c) ‖θ‖²/p and the least against n, with √n; (d) their ratio."""
    import matplotlib.pyplot as plt

    fig, ((a, b), (c, e)) = plt.subplots(2, 2, figsize=(10.0, 7.0))
    for i, (arm, label) in enumerate(ARMS.items()):
        rows = table.loc[
            (table["part"] == "plateau") & (table["arm"] == arm) & np.isfinite(table["x"])
        ]
        a.errorbar(
            rows["x"] * 1.1**i, rows["value"], yerr=mt.errorbars(rows), fmt="o-", ms=4, label=label
        )
    for arm, ls in (("gd", "--"), ("flow", ":")):
        pred = mt.get(table, "prediction", arm, "slope")["value"]
        a.axhline(pred, color="k", ls=ls, lw=0.8, label=f"E[1/max λ] ({arm})")
    a.set(xscale="log", xlabel="ε", ylabel="t₁ / log(1/ε)", title="first plateau")
    curves = summary["curves"]
    for key in (k for k in curves if k != "u"):
        b.plot(curves["u"], curves[key], lw=1, label=f"ε = {key}")
    b.set(xlabel="t / log(1/ε)", ylabel="fraction of examples fitted", title="fits (GD)")
    norm = table[table["part"] == "norm"]
    for m, style, label in (("norm2_p", "o-", "‖θ‖²/p"), ("least_p", "s--", "least ‖θ‖²/p")):
        rows = norm.loc[norm["measure"] == m]
        c.loglog(rows["x"], rows["value"], style, ms=4, label=label)
    x, y = np.asarray(rows["x"], float), np.asarray(rows["value"], float)
    c.loglog(x, y[0] * np.sqrt(x / x[0]), "k:", lw=0.8, label="√n")
    c.set(xlabel="n", title="norm of the interpolator")
    rows = norm.loc[norm["measure"] == "ratio"]
    e.errorbar(rows["x"], rows["value"], yerr=mt.errorbars(rows), fmt="o-", ms=4)
    e.axhline(1.0, color="k", lw=0.8)
    e.set(xscale="log", xlabel="n", ylabel="‖θ‖² / least", title="ratio to the least norm")
    for ax in (a, b, c):
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the title
    return fig
