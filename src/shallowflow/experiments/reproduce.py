"""Reproduce the paper's figures: protocol → sweep → per-point summary → figure → report.

``reproduce(figure, preset, out)`` runs each protocol of
:mod:`shallowflow.experiments.protocols` through the generic runner and
writes, for every figure, under ``out/<figure>/``::

    runs.parquet     one row per run (the runner; Fig. 2 has none)
    points.parquet   one row per point of the figure (success fraction, bars, means…)
    summary.json     fits and verdicts
    <figure>.png/.pdf

and ``out/report.md`` + a self-contained ``out/report.html`` that put each
figure beside the paper's claim and a verdict with its numbers.

The summaries are pure functions of the runs table (SPEC §5):

- success fraction with 95% Hoeffding bars (``thresholds.success_bars``),
  mean of ``L(θ_T)/L(θ_0)`` counting successes as 0 (Fig. 3);
- threshold ``N`` per d (Fig. 4) or p (Fig. 5) by ``thresholds.fit_threshold``,
  with the linear fit ``N = a d + b`` (Fig. 4) and power / linear / log fits
  of N against p (Fig. 5);
- Fig. 6: each measure averaged over runs, then logged; the slope of
  log-measure vs log n by least squares, its standard error from a bootstrap
  over runs (runs resampled within each n);
- Fig. 2: the closed-form staircase against its limit, with the relative
  transition widths times log n.

Adaptive mode (``adaptive=True``, Figs. 3–5 only; Figs. 2 and 6 ignore it)
replaces each threshold's n grid (Fig. 3: the whole grid; Fig. 4: one per d;
Fig. 5: one per p) by the sequential design of
:func:`~shallowflow.experiments.thresholds.adaptive_threshold`: on the same
range ``[min n, max n]`` snapped to the grid's step (the gcd of its spacings),
batches of ``ADAPTIVE_RUNS_FRACTION`` × the protocol's runs per point, at
most the grid's runs for that group. It stops once its 95% interval is no
wider than the grid design's would be: :func:`grid_width`, the median
bootstrap width of the grid design's fit under a *planted* logistic curve (the
design's current fit), re-estimated after each batch. ``proto.params`` may
override ``adaptive_width`` (a fixed target, as a fraction of the range) and
``adaptive_runs`` (runs per batch). Every evaluated (n, runs) is one cell of
knobs (``tag = "adaptive"``, its own ``seed`` drawn by the design), simulated
locally and stored under ``out/<figure>/adaptive/<cell_id>.parquet``; with
``resume`` those files are reused, and since the design is deterministic a
rerun replays the same sequence. ``runs.parquet``/``points.parquet`` hold
every evaluation (repeated sizes pooled in the points), so the figures and
fits are the grid's functions of the runs table; ``summary["adaptive"]``
records each group's design fit, target width, evaluations, and runs used
against the grid's runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.cells import plan_cells, simulate_batch, simulate_cell
from shallowflow.experiments.protocols import EPS, FIGURES, Protocol, protocols
from shallowflow.experiments.runner import Cell, cell_seed, run_sweep
from shallowflow.experiments.thresholds import (
    AdaptiveResult,
    adaptive_threshold,
    fit_threshold,
    success_bars,
)
from shallowflow.storage import read_parquet, write_json_atomic, write_parquet_atomic
from shallowflow.theory import closed_form
from shallowflow.theory.width import width

__all__ = [
    "ADAPTIVE_FIGURES",
    "fig6_slopes",
    "grid_width",
    "growth_fits",
    "linear_fit",
    "reproduce",
    "run_adaptive",
    "run_protocol",
    "success_points",
    "summarise",
    "threshold_table",
]

Summary = dict[str, Any]

# --------------------------------------------------------------------------- fits


def linear_fit(x: Any, y: Any) -> dict[str, float]:
    """Least squares ``y = a x + b``: slope, intercept, their standard errors and R²."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.unique(x).size < 2:
        return {"a": math.nan, "b": math.nan, "se_a": math.nan, "se_b": math.nan, "r2": math.nan}
    (a, b), res, *_ = np.polyfit(x, y, 1, full=True)
    pred = a * x + b
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    dof = x.size - 2
    s2 = ss_res / dof if dof > 0 else math.nan
    sxx = float(np.sum((x - x.mean()) ** 2))
    se_a = math.sqrt(s2 / sxx) if dof > 0 else math.nan
    se_b = math.sqrt(s2 * (1 / x.size + x.mean() ** 2 / sxx)) if dof > 0 else math.nan
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"a": float(a), "b": float(b), "se_a": se_a, "se_b": se_b, "r2": r2}


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0


def growth_fits(p: Any, n: Any) -> dict[str, dict[str, float]]:
    """Three laws for ``N(p)`` (Fig. 5), each with R² measured on N itself.

    power ``N = c p^γ`` (least squares in log-log), linear ``N = a p + b``,
    log ``N = a log p + b``.
    """
    p, n = np.asarray(p, float), np.asarray(n, float)
    power = linear_fit(np.log(p), np.log(n))
    lin = linear_fit(p, n)
    log = linear_fit(np.log(p), n)
    out = {
        "power": {"gamma": power["a"], "se_gamma": power["se_a"], "c": math.exp(power["b"])},
        "linear": {"a": lin["a"], "b": lin["b"]},
        "log": {"a": log["a"], "b": log["b"]},
    }
    if p.size >= 2:
        out["power"]["r2"] = _r2(n, out["power"]["c"] * p ** out["power"]["gamma"])
        out["linear"]["r2"] = lin["r2"]
        out["log"]["r2"] = log["r2"]
    return out


# --------------------------------------------------------------------------- per-point tables


def success_points(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Success fraction per point with 95% Hoeffding bars, and the mean of
    ``L(θ_T)/L(θ_0)`` with successes counted as 0 (SPEC §5, Fig. 3)."""
    df = runs.assign(ratio=np.where(runs["success"], 0.0, runs["final_loss"] / runs["loss0"]))
    extra = {} if "p" in by else {"p": ("p", "first")}
    pts = (
        df.groupby(by, sort=True)
        .agg(
            **extra,
            runs=("success", "size"),
            successes=("success", "sum"),
            loss_ratio=("ratio", "mean"),
        )
        .reset_index()
    )
    pts["fraction"] = pts["successes"] / pts["runs"]
    lo, hi = success_bars(pts["successes"].to_numpy(), pts["runs"].to_numpy())
    pts["bar_low"], pts["bar_high"] = lo, hi
    return pts


def _fit(points: pd.DataFrame) -> dict[str, Any]:
    x, k, r = (points[c].to_numpy() for c in ("n", "successes", "runs"))
    fit = fit_threshold(x, k, r, n_boot=400)
    inside = bool(x.min() <= fit.threshold <= x.max())
    return {
        "N": fit.threshold,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "slope": fit.slope,
        "intercept": fit.intercept,
        "inside_grid": inside,
    }


def threshold_table(points: pd.DataFrame, group: str) -> pd.DataFrame:
    """Threshold ``N`` (success probability 1/2) per value of ``group`` (Figs. 4, 5)."""
    rows = []
    for value, pts in points.groupby(group, sort=True):
        row = {group: value} | _fit(pts)
        if group != "p":
            row["p"] = int(pts["p"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


FIG6_MEASURES = {
    "mu_tail": "μ(t_∞)",
    "mu_mean": "⟨μ⟩",
    "final_mu_low": "μ_low",
    "final_mu_upp": "μ_upp",
}


def fig6_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Per n: each Fig. 6 measure averaged over runs, then its log (SPEC §5)."""
    g = runs.groupby("n", sort=True)
    pts = g.agg(p=("p", "first"), runs=("success", "size"), successes=("success", "sum"))
    for col in FIG6_MEASURES:
        pts[col] = g[col].mean()
        pts[f"log_{col}"] = np.log(pts[col])
    return pts.reset_index()


def fig6_slopes(runs: pd.DataFrame, n_boot: int = 300, seed: int = 0) -> dict[str, dict]:
    """Slope of log(mean measure) vs log n per measure, with a bootstrap SE over runs."""
    rng = np.random.default_rng(seed)
    groups = [g for _, g in runs.groupby("n", sort=True)]
    log_n = np.log([g["n"].iloc[0] for g in groups])
    out = {}
    for col, label in FIG6_MEASURES.items():
        values = [g[col].to_numpy(float) for g in groups]
        fit = linear_fit(log_n, np.log([v.mean() for v in values]))
        boot = np.empty(n_boot)
        for b in range(n_boot):
            means = [v[rng.integers(0, v.size, v.size)].mean() for v in values]
            boot[b] = np.polyfit(log_n, np.log(means), 1)[0]
        se = float(np.std(boot[np.isfinite(boot)], ddof=1))
        out[col] = {
            "label": label,
            "slope": fit["a"],
            "se": se,
            "se_regression": fit["se_a"],
            "intercept": fit["b"],
            "r2": fit["r2"],
        }
    return out


# --------------------------------------------------------------------------- summaries


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _yes(cond: bool) -> str:
    return "yes" if cond else "no"


def _summarise_fig2(proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    m = np.asarray(proto.params["magnitudes"])
    u = np.linspace(0.0, proto.params["u_max"], proto.params["points"])
    limit = closed_form.staircase_limit(m, u)
    u_k = closed_form.limit_transition_times(m)
    frames, numbers, lines = [], {}, []
    for n in proto.params["ns"]:
        loss = closed_form.staircase(n, m, u)
        frames.append(pd.DataFrame({"n": n, "u": u, "loss": loss, "limit": limit}))
        widths = closed_form.transition_widths(n, m)
        times = closed_form.transition_times(n, m) / closed_form.staircase_time_scale(n)
        l1 = float(np.trapezoid(np.abs(loss - limit), u))
        numbers[f"{n:.0e}"] = {
            "l1_to_limit": l1,
            "widths": widths.tolist(),
            "widths_log_n": (widths * math.log(n)).tolist(),
            "transition_u": times.tolist(),
        }
    l1s = [v["l1_to_limit"] for v in numbers.values()]
    wl = [v["widths_log_n"][0] for v in numbers.values()]
    limit_wl = 2 * math.log((0.1**-0.5 - 1) / (0.9**-0.5 - 1))
    decreasing = bool(np.all(np.diff(l1s) < 0))
    lines.append(
        "∫|L_n − L_∞| du: "
        + ", ".join(f"n={k}: {_fmt(v['l1_to_limit'])}" for k, v in numbers.items())
        + f"; decreasing to 0: {_yes(decreasing)}"
    )
    last = list(numbers)[-1]
    lines.append(
        f"transitions at n={last}: u = {', '.join(_fmt(t) for t in numbers[last]['transition_u'])} "
        f"(limit u_k = √G/(4m_k) = {', '.join(_fmt(t) for t in u_k)}); larger labels first: "
        f"{_yes(bool(numbers[last]['transition_u'][1] < numbers[last]['transition_u'][0]))}"
    )
    lines.append(
        "relative width (10%→90%) × log n, group m=1: "
        + ", ".join(_fmt(w) for w in wl)
        + f" → {_fmt(limit_wl)}: width of order 1/log n: {_yes(abs(wl[-1] / limit_wl - 1) < 0.1)}"
    )
    summary = {"numbers": numbers, "verdicts": lines, "ok": decreasing}
    return pd.concat(frames, ignore_index=True), summary


def _summarise_fig3(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    pts = success_points(runs, ["n", "d"])
    fit = _fit(pts)
    first, last = pts.iloc[0], pts.iloc[-1]
    width = 2 * math.log(9) / abs(fit["slope"]) if fit["slope"] else math.inf
    sharp = first["fraction"] >= 0.75 and last["fraction"] <= 0.25
    lines = [
        f"success fraction {_fmt(first['fraction'], 2)} at n={int(first['n'])} → "
        f"{_fmt(last['fraction'], 2)} at n={int(last['n'])} (d={int(first['d'])}, "
        f"{int(first['runs'])} runs per n); fall from likely to unlikely: {_yes(sharp)}",
        f"threshold N = {_fmt(fit['N'], 4)} [{_fmt(fit['ci_low'], 4)}, {_fmt(fit['ci_high'], 4)}], "
        f"10%→90% width {_fmt(width)} = {_fmt(width / fit['N'], 2)}·N",
        f"mean L(θ_T)/L(θ_0) (0 for successes): {_fmt(first['loss_ratio'], 2)} → "
        f"{_fmt(last['loss_ratio'], 2)}",
    ]
    summary = {"threshold": fit, "fall_width": width, "verdicts": lines, "ok": bool(sharp)}
    return pts, summary


def _summarise_thresholds(
    runs: pd.DataFrame, proto: Protocol
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    group = proto.group
    pts = success_points(runs, [group, "n"])
    table = threshold_table(pts, group)
    lines = [
        f"N at {group} = "
        + ", ".join(f"{int(r[group])}: {_fmt(r['N'], 4)}" for _, r in table.iterrows())
    ]
    edge = table.loc[~table["inside_grid"], group].tolist()
    if edge:
        lines.append(f"threshold outside the n grid (extrapolated) at {group} = {edge}")
    return pts, table, lines


def _summarise_fig4(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    pts, table, lines = _summarise_thresholds(runs, proto)
    ok = table[np.isfinite(table["N"])]
    fit = linear_fit(ok["d"], ok["N"])
    linear = bool(fit["r2"] >= 0.95)
    lines.insert(
        0,
        f"N(d, {proto.params['p']}) = {_fmt(fit['a'])}·d {'+' if fit['b'] >= 0 else '−'} "
        f"{_fmt(abs(fit['b']))}, R² = {fit['r2']:.3f}, linear: {_yes(linear)}",
    )
    summary = {"thresholds": table.to_dict("records"), "fit": fit, "verdicts": lines, "ok": linear}
    return pts, summary


def _summarise_fig5(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    pts, table, lines = _summarise_thresholds(runs, proto)
    ok = table[np.isfinite(table["N"]) & (table["N"] > 0)]
    fits = growth_fits(ok["p"], ok["N"])
    gamma, se = fits["power"]["gamma"], fits["power"]["se_gamma"]
    sub = bool(gamma < 1)
    best = max(("power", "linear", "log"), key=lambda k: fits[k].get("r2", -math.inf))
    lines.insert(
        0,
        f"N(30, p) ≈ {_fmt(fits['power']['c'])}·p^{_fmt(gamma, 2)} (γ = {_fmt(gamma, 2)} ± "
        f"{_fmt(se, 1)}); R²: power {fits['power'].get('r2', math.nan):.3f}, linear "
        f"{fits['linear'].get('r2', math.nan):.3f}, log {fits['log'].get('r2', math.nan):.3f}; "
        f"best: {best}; sub-linear: {_yes(sub)}",
    )
    summary = {"thresholds": table.to_dict("records"), "fits": fits, "verdicts": lines, "ok": sub}
    return pts, summary


def _summarise_fig6(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    pts = fig6_points(runs)
    slopes = fig6_slopes(runs)
    ref = proto.params["slope"]
    lines = []
    from shallowflow.plots.figures import plus_minus

    for key, s in slopes.items():
        close = abs(s["slope"] - ref) <= 2 * s["se"]
        line = (
            f"slope of log {s['label']} vs log n = {plus_minus(s['slope'], s['se'])}, "
            f"paper: −1/2; within 2σ: {_yes(close)}"
        )
        if key in ("mu_tail", "mu_mean"):  # Prop. 1's range is about the rate, not the bounds
            proven = -1.0 - 2 * s["se"] <= s["slope"] <= -0.5 + 2 * s["se"]
            line += f"; inside the proven range [−1, −1/2] (Prop. 1): {_yes(proven)}"
        lines.append(line)
    conv = runs["success"].mean()
    lines.append(f"runs converged to L < 1e-6/(2n): {conv:.0%}")
    close_tail = abs(slopes["mu_tail"]["slope"] - ref) <= 2 * slopes["mu_tail"]["se"]
    summary = {"slopes": slopes, "verdicts": lines, "ok": bool(close_tail)}
    return pts, summary


SUMMARISERS: dict[str, Callable[[pd.DataFrame, Protocol], tuple[pd.DataFrame, Summary]]] = {
    "fig3": _summarise_fig3,
    "fig4": _summarise_fig4,
    "fig5": _summarise_fig5,
    "fig6": _summarise_fig6,
}


def summarise(runs: pd.DataFrame | None, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    """Per-point table and summary (fits, verdict lines) of one figure."""
    if proto.kind == "closed_form":
        return _summarise_fig2(proto)
    return SUMMARISERS[proto.name](runs, proto)


# --------------------------------------------------------------------------- adaptive design

ADAPTIVE_FIGURES = ("fig3", "fig4", "fig5")
ADAPTIVE_RUNS_FRACTION = 0.5  # runs per adaptive batch, as a fraction of the grid's runs per n
ADAPTIVE_N_INIT = 5  # sizes of the pilot (evenly spaced over the grid's range)
ADAPTIVE_N_BOOT = 400


def grid_width(
    threshold: float,
    slope: float,
    n: Any,
    runs: Any,
    reps: int = 16,
    n_boot: int = 200,
    seed: int = 0,
) -> float:
    """Planted estimate of the grid design's 95% interval width for ``N``.

    Draws ``reps`` data sets ``k_i ~ Bin(R_i, P(n_i))`` from the logistic curve
    ``P(n) = 1/(1 + exp(slope (n − threshold)))`` on the grid ``(n_i, R_i)``,
    fits each (:func:`fit_threshold`) and returns the median interval width
    (``inf`` when most intervals are unbounded, ``nan`` without a finite curve).
    """
    if not (np.isfinite(threshold) and np.isfinite(slope) and slope != 0):
        return math.nan
    n, runs = np.asarray(n, float), np.asarray(runs, np.int64)
    rng = np.random.default_rng(seed)
    prob = special.expit(slope * (threshold - n))
    widths = []
    for _ in range(reps):
        k = rng.binomial(runs, prob)
        fit = fit_threshold(n, k, runs, n_boot=n_boot, seed=int(rng.integers(2**32)))
        widths.append(fit.ci_width if np.isfinite(fit.ci_width) else math.inf)
    return float(np.median(widths))


def _groups(proto: Protocol) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The protocol's threshold groups: ``(value of proto.group, cells)``; Fig. 3 has one."""
    if proto.group is None:
        return [(None, list(proto.cells))]
    values = sorted({c[proto.group] for c in proto.cells})
    return [(v, [c for c in proto.cells if c[proto.group] == v]) for v in values]


def _cell_at(cells: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The group's knobs at size ``n``: those of the nearest grid cell, with ``p = p(n, 0.05)``
    where the group's width follows n (Fig. 3), else its fixed p (Figs. 4, 5)."""
    near = min(cells, key=lambda c: abs(c["n"] - n))
    knobs = dict(near) | {"n": int(n)}
    if len({c["p"] for c in cells}) > 1:
        if any(c["p"] != width(c["n"], EPS) for c in cells):
            raise ShallowflowInputError("adaptive", "the group's width p is neither fixed nor p(n)")
        knobs["p"] = width(int(n), EPS)
    return knobs


def _with_knobs(df: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """Leading ``cell_id`` and knob columns, as in the runner's runs table."""
    rest = df.drop(columns=[c for c in df.columns if c in cell or c == "cell_id"])
    head = {"cell_id": cell.cell_id} | {
        k: (str(list(v)) if isinstance(v, tuple) else v) for k, v in cell.items()
    }
    front = pd.DataFrame({k: [v] * len(df) for k, v in head.items()}, index=rest.index)
    return pd.concat([front, rest], axis=1).reset_index(drop=True)


def _design(
    simulate: Callable[[int, int, int], int],
    ns: np.ndarray,
    grid_runs: np.ndarray,
    batch: int,
    seed: int,
    fixed_width: float | None,
) -> tuple[AdaptiveResult, float, bool]:
    """The adaptive design of one group: ``(result, target width, target reached)``.

    With ``fixed_width`` the target is ``fixed_width × range``. Otherwise the
    design grows one batch at a time until its interval is no wider than the
    grid design's, estimated by :func:`grid_width` under the current fit, or the
    grid's runs are spent. ``adaptive_threshold`` is deterministic, so each longer
    design replays the previous one (free with a memoising ``simulate``).
    """
    n_min, n_max = int(ns.min()), int(ns.max())
    common = {
        "n_min": n_min,
        "n_max": n_max,
        "runs_per_point": batch,
        "seed": seed,
        "n_step": int(np.gcd.reduce(np.diff(ns).astype(np.int64))),
        "n_init": min(ADAPTIVE_N_INIT, ns.size),
        "n_boot": ADAPTIVE_N_BOOT,
    }
    budget = int(grid_runs.sum())
    if fixed_width is not None:
        target = fixed_width * (n_max - n_min)
        res = adaptive_threshold(simulate, target_width=target, max_runs=budget, **common)
        return res, target, res.reached_target
    allowed = common["n_init"] * batch
    while True:
        allowed = min(allowed, budget)
        res = adaptive_threshold(simulate, target_width=1e-9, max_runs=allowed, **common)
        fit = res.fit
        target = grid_width(fit.threshold, fit.slope, ns, grid_runs, seed=seed % 2**32)
        reached = bool(fit.ci_width <= target)
        if reached or res.total_runs >= budget or res.total_runs < allowed:
            return res, target, reached
        allowed += batch


def _adaptive_batch(proto: Protocol, cells: list[dict[str, Any]]) -> int:
    """Runs per adaptive evaluation of a group."""
    per_point = max(int(c["runs"]) for c in cells)
    return int(proto.params.get("adaptive_runs", 0)) or max(
        1, math.ceil(ADAPTIVE_RUNS_FRACTION * per_point)
    )


def _adaptive_buckets(proto: Protocol) -> dict[str, Any]:
    """The compiled bucket of each grid cell (by cell id) for evaluations of the
    adaptive batch's size: an evaluation at n runs in the bucket of the group's
    smallest grid cell with n_cell ≥ n (same knobs, sizes no larger: p(n) grows with
    n), so the whole design compiles what the grid would."""
    resized = [
        c | {"runs": _adaptive_batch(proto, cells)} for _, cells in _groups(proto) for c in cells
    ]
    plan = plan_cells(resized, max_batch=1)
    originals = [c for _, cells in _groups(proto) for c in cells]
    return {Cell(c).cell_id: b for c, b in zip(originals, plan, strict=True)}


def run_adaptive(
    proto: Protocol,
    fig_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Adaptive threshold search for each group of a threshold figure (module doc).
    Stored evaluations are reused with ``resume`` and recomputed only with
    ``overwrite``.

    Returns the runs table of every evaluation (runner columns plus
    ``adaptive_step``) and the ``summary["adaptive"]`` record.
    """
    if proto.name not in ADAPTIVE_FIGURES:
        raise ShallowflowInputError("adaptive", f"only {ADAPTIVE_FIGURES} have thresholds")
    cache = Path(fig_dir) / "adaptive"
    stored = list(cache.glob("*.parquet")) if cache.is_dir() else []
    if stored and not resume and not overwrite:
        raise ShallowflowInputError(
            "out_dir",
            f"{str(fig_dir)!r} holds {len(stored)} finished adaptive evaluations; pass "
            "--resume to reuse them or --overwrite to recompute them",
        )
    cache.mkdir(parents=True, exist_ok=True)
    fixed = proto.params.get("adaptive_width")
    frames: list[pd.DataFrame] = []
    groups, total_used, total_grid = [], 0, 0
    buckets = _adaptive_buckets(proto)
    for value, cells in _groups(proto):
        cells = sorted(cells, key=lambda c: c["n"])
        ns = np.array([c["n"] for c in cells], dtype=np.int64)
        grid_runs = np.array([c["runs"] for c in cells], dtype=np.int64)
        batch = _adaptive_batch(proto, cells)
        key = {"adaptive": proto.name} | ({proto.group: value} if proto.group else {})
        seed = cell_seed(int(cells[0].get("seed", 0)), key)
        memo: dict[tuple[int, int, int], pd.DataFrame] = {}

        def simulate(n: int, runs: int, rng_seed: int, cells=cells, memo=memo) -> int:
            if (n, runs, rng_seed) not in memo:
                extra = {"runs": runs, "seed": rng_seed, "tag": "adaptive"}
                cell = Cell(_cell_at(cells, n) | extra)
                path = cache / f"{cell.cell_id}.parquet"
                df = read_parquet(path) if resume and path.exists() else None
                if df is None or len(df) != runs:
                    bucket = next(buckets[Cell(c).cell_id] for c in cells if c["n"] >= n)
                    df = _with_knobs(simulate_cell(cell.to_dict(), bucket), cell)
                    write_parquet_atomic(df, path)
                memo[(n, runs, rng_seed)] = df
                if progress:
                    _echo(f"  {proto.name} adaptive: n = {n}, {int(df['success'].sum())}/{runs}")
            return int(memo[(n, runs, rng_seed)]["success"].sum())

        res, target, reached = _design(simulate, ns, grid_runs, batch, seed, fixed)
        # The pilot's calls are a prefix of the design's (same seeds), so the memo's keys
        # in insertion order are the design's evaluations, each once.
        for step, (key3, ev) in enumerate(zip(memo, res.evaluations, strict=True)):
            assert key3[:2] == ev[:2]
            frames.append(memo[key3].assign(adaptive_step=step))
        fit = res.fit
        group_grid = int(grid_runs.sum())
        total_used += res.total_runs
        total_grid += group_grid
        groups.append(
            ({proto.group: value} if proto.group else {})
            | {
                "N": fit.threshold,
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "ci_width": fit.ci_width,
                "slope": fit.slope,
                "target_width": target,
                "reached_target": reached,
                "runs_used": res.total_runs,
                "grid_runs": group_grid,
                "saving": 1.0 - res.total_runs / group_grid,
                "runs_per_batch": batch,
                "n_range": [int(ns.min()), int(ns.max())],
                "evaluations": [list(e) for e in res.evaluations],
            }
        )
    runs = pd.concat(frames, ignore_index=True)
    record = {
        "groups": groups,
        "runs_used": total_used,
        "grid_runs": total_grid,
        "saving": 1.0 - total_used / total_grid,
        "target": "fixed fraction of the range" if fixed is not None else "grid width (planted)",
    }
    return runs, record


def _adaptive_lines(proto: Protocol, record: dict[str, Any]) -> list[str]:
    lines = []
    for g in record["groups"]:
        where = f"{proto.group} = {g[proto.group]}: " if proto.group else ""
        reached = "reached" if g["reached_target"] else "not reached: run budget spent"
        lines.append(
            f"adaptive: {where}N = {_fmt(g['N'], 4)} [{_fmt(g['ci_low'], 4)}, "
            f"{_fmt(g['ci_high'], 4)}], width {_fmt(g['ci_width'])} (target "
            f"{_fmt(g['target_width'])} {reached}) with {g['runs_used']} runs vs "
            f"{g['grid_runs']} runs on the grid (saving {g['saving']:.0%})"
        )
    if len(record["groups"]) > 1:
        lines.append(
            f"adaptive total: {record['runs_used']} runs vs {record['grid_runs']} runs on the "
            f"grid (saving {record['saving']:.0%})"
        )
    return lines


def _echo(line: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(line)


# --------------------------------------------------------------------------- orchestration


def _jsonable(obj: Any) -> Any:
    """NaN/inf → None, NumPy scalars → Python, so that JSON stays strict."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run_protocol(
    proto: Protocol,
    out: Path,
    *,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    adaptive: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Simulate (or evaluate) one protocol, write its tables and figure; return its summary.

    ``adaptive`` (Figs. 3–5; ignored by the others): adaptive threshold search
    instead of the full n grid (:func:`run_adaptive`, run locally whatever
    ``executor``), its runs written to the same ``runs.parquet``.
    """
    from shallowflow.plots.figures import render

    fig_dir = Path(out) / proto.name
    runs = None
    record = None
    if proto.kind == "simulate" and adaptive and proto.name in ADAPTIVE_FIGURES:
        runs, record = run_adaptive(
            proto, fig_dir, resume=resume, progress=progress, overwrite=overwrite
        )
        write_parquet_atomic(runs, fig_dir / "runs.parquet")
    elif proto.kind == "simulate":
        runs = run_sweep(
            proto.cells,
            simulate_batch,
            fig_dir,
            resume=resume,
            executor=executor,
            plan=plan_cells,
            progress=progress,
            ray_address=ray_address,
            overwrite=overwrite,
        )
    fig_dir.mkdir(parents=True, exist_ok=True)
    points, summary = summarise(runs, proto)
    if record is not None:
        summary["adaptive"] = record
        summary["verdicts"] = summary["verdicts"] + _adaptive_lines(proto, record)
    write_parquet_atomic(points, fig_dir / "points.parquet")
    images = render(proto, points, summary, fig_dir / proto.name)
    summary = summary | {
        "figure": proto.name,
        "preset": proto.preset,
        "title": proto.title,
        "claim": proto.claim,
        "notes": proto.notes,
        "cells": len(proto.cells) if record is None else int(runs["cell_id"].nunique()),
        "runs": proto.total_runs if record is None else record["runs_used"],
        "grid_runs": proto.total_runs,
        "images": [str(p.relative_to(out)) for p in images],
    }
    write_json_atomic(_jsonable(summary), fig_dir / "summary.json")
    return summary


def reproduce(
    figure: str,
    preset: str = "quick",
    out: str | os.PathLike[str] = "reproduce",
    *,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    solver: str = "gd",
    progress: bool = True,
    adaptive: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Reproduce ``figure`` (fig2..fig6 or ``all``) under ``preset`` into ``out``.

    ``adaptive``: Figs. 3–5 search each threshold adaptively instead of running
    the full n grid, and report the runs used against the grid's (module doc);
    Figs. 2 and 6 ignore it.

    Returns ``{"figures": {name: summary}, "report": {"md": path, "html": path},
    "seconds": {name: wall time}}``. With ``progress`` the runner shows its bar
    and each figure's verdict lines are printed.
    """
    import time

    from shallowflow.plots.report import write_report

    if figure != "all" and figure not in FIGURES:
        raise ShallowflowInputError(
            "figure", f"unknown figure {figure!r}; choose one of {FIGURES + ('all',)}"
        )
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    summaries, seconds = {}, {}
    for proto in protocols(figure, preset, solver):
        start = time.perf_counter()
        summaries[proto.name] = run_protocol(
            proto,
            out_path,
            resume=resume,
            executor=executor,
            ray_address=ray_address,
            progress=progress,
            adaptive=adaptive,
            overwrite=overwrite,
        )
        seconds[proto.name] = time.perf_counter() - start
        summaries[proto.name]["seconds"] = seconds[proto.name]
        if progress:
            _print_verdicts(summaries[proto.name])
    md, html = write_report(list(summaries.values()), out_path, preset=preset)
    return {"figures": summaries, "report": {"md": md, "html": html}, "seconds": seconds}


def _print_verdicts(summary: Summary) -> None:
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold]{summary['title']}[/bold] ({summary['seconds']:.0f} s)")
    for line in summary["verdicts"]:
        console.print(f"  {line}")
