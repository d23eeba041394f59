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

Adaptive mode (``adaptive=True``, Figs. 3–5): :mod:`shallowflow.experiments.adaptive`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.adaptive import ADAPTIVE_FIGURES, adaptive_lines, run_adaptive
from shallowflow.experiments.cells import plan_cells, simulate_batch
from shallowflow.experiments.protocols import FIGURES, Protocol, protocols
from shallowflow.experiments.runner import run_sweep
from shallowflow.report.format import fmt, plus_minus, yes
from shallowflow.stats.fits import bootstrap_slopes, growth_fits, linear_fit
from shallowflow.stats.thresholds import (
    fit_threshold,
    success_bars,
)
from shallowflow.storage import write_json_atomic, write_parquet_atomic
from shallowflow.theory import closed_form

__all__ = [
    "ADAPTIVE_FIGURES",
    "fig6_slopes",
    "growth_fits",
    "linear_fit",
    "reproduce",
    "run_protocol",
    "success_points",
    "summarise",
    "threshold_table",
]

Summary = dict[str, Any]

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
    ns = np.array([g["n"].iloc[0] for g in groups], float)
    out = {}
    for col, label in FIG6_MEASURES.items():
        values = [g[col].to_numpy(float) for g in groups]
        fit = linear_fit(np.log(ns), np.log([v.mean() for v in values]))
        boot = bootstrap_slopes(ns, values, n_boot, rng)
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
        + ", ".join(f"n={k}: {fmt(v['l1_to_limit'])}" for k, v in numbers.items())
        + f"; decreasing to 0: {yes(decreasing)}"
    )
    last = list(numbers)[-1]
    lines.append(
        f"transitions at n={last}: u = {', '.join(fmt(t) for t in numbers[last]['transition_u'])} "
        f"(limit u_k = √G/(4m_k) = {', '.join(fmt(t) for t in u_k)}); larger labels first: "
        f"{yes(bool(numbers[last]['transition_u'][1] < numbers[last]['transition_u'][0]))}"
    )
    lines.append(
        "relative width (10%→90%) × log n, group m=1: "
        + ", ".join(fmt(w) for w in wl)
        + f" → {fmt(limit_wl)}: width of order 1/log n: {yes(abs(wl[-1] / limit_wl - 1) < 0.1)}"
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
        f"success fraction {fmt(first['fraction'], 2)} at n={int(first['n'])} → "
        f"{fmt(last['fraction'], 2)} at n={int(last['n'])} (d={int(first['d'])}, "
        f"{int(first['runs'])} runs per n); fall from likely to unlikely: {yes(sharp)}",
        f"threshold N = {fmt(fit['N'], 4)} [{fmt(fit['ci_low'], 4)}, {fmt(fit['ci_high'], 4)}], "
        f"10%→90% width {fmt(width)} = {fmt(width / fit['N'], 2)}·N",
        f"mean L(θ_T)/L(θ_0) (0 for successes): {fmt(first['loss_ratio'], 2)} → "
        f"{fmt(last['loss_ratio'], 2)}",
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
        + ", ".join(f"{int(r[group])}: {fmt(r['N'], 4)}" for _, r in table.iterrows())
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
        f"N(d, {proto.params['p']}) = {fmt(fit['a'])}·d {'+' if fit['b'] >= 0 else '−'} "
        f"{fmt(abs(fit['b']))}, R² = {fit['r2']:.3f}, linear: {yes(linear)}",
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
        f"N(30, p) ≈ {fmt(fits['power']['c'])}·p^{fmt(gamma, 2)} (γ = {fmt(gamma, 2)} ± "
        f"{fmt(se, 1)}); R²: power {fits['power'].get('r2', math.nan):.3f}, linear "
        f"{fits['linear'].get('r2', math.nan):.3f}, log {fits['log'].get('r2', math.nan):.3f}; "
        f"best: {best}; sub-linear: {yes(sub)}",
    )
    summary = {"thresholds": table.to_dict("records"), "fits": fits, "verdicts": lines, "ok": sub}
    return pts, summary


def _summarise_fig6(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, Summary]:
    pts = fig6_points(runs)
    slopes = fig6_slopes(runs)
    ref = proto.params["slope"]
    lines = []
    for key, s in slopes.items():
        close = abs(s["slope"] - ref) <= 2 * s["se"]
        line = (
            f"slope of log {s['label']} vs log n = {plus_minus(s['slope'], s['se'])}, "
            f"paper: −1/2; within 2σ: {yes(close)}"
        )
        if key in ("mu_tail", "mu_mean"):  # Prop. 1's range is about the rate, not the bounds
            proven = -1.0 - 2 * s["se"] <= s["slope"] <= -0.5 + 2 * s["se"]
            line += f"; inside the proven range [−1, −1/2] (Prop. 1): {yes(proven)}"
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
        summary["verdicts"] = summary["verdicts"] + adaptive_lines(proto, record)
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
