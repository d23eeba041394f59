"""Success fractions and thresholds per point, shared by Figs. 3–5 (SPEC §5).

A run at size n succeeds when L(θ_T) ≤ 1/(2n); per point, the success fraction gets
95% Hoeffding bars, and the threshold N (success probability 1/2) comes from the
logistic fit of :func:`shallowflow.stats.thresholds.fit_threshold`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.protocol import Protocol
from shallowflow.report.format import fmt
from shallowflow.stats.thresholds import fit_threshold, success_bars

__all__ = [
    "group_thresholds",
    "pooled",
    "success_points",
    "threshold_fit",
    "threshold_lines",
    "threshold_panels",
    "threshold_table",
]


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


def threshold_fit(points: pd.DataFrame) -> dict[str, Any]:
    """The threshold N of one success curve with its 95% profile-likelihood interval and
    its one-sigma error ``se``."""
    x, k, r = (points[c].to_numpy() for c in ("n", "successes", "runs"))
    fit = fit_threshold(x, k, r, n_boot=400)
    inside = bool(x.min() <= fit.threshold <= x.max())
    return {
        "N": fit.threshold,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "slope": fit.slope,
        "intercept": fit.intercept,
        "se": fit.se,
        "inside_grid": inside,
    }


def threshold_table(points: pd.DataFrame, group: str) -> pd.DataFrame:
    """Threshold ``N`` (success probability 1/2) per value of ``group`` (Figs. 4, 5)."""
    rows = []
    for value, pts in points.groupby(group, sort=True):
        row = {group: value} | threshold_fit(pts)
        if group != "p":
            row["p"] = int(pts["p"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def group_thresholds(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Points per (``proto.group``, n) and the threshold table per value of the group."""
    pts = success_points(runs, [proto.grouped_by, "n"])
    return pts, threshold_table(pts, proto.grouped_by)


def threshold_lines(thresholds: list[dict[str, Any]], group: str) -> list[str]:
    """The thresholds per value of ``group`` as verdict lines, flagging extrapolations."""
    table = pd.DataFrame(thresholds)
    lines = [
        f"N at {group} = "
        + ", ".join(
            f"{int(v)}: {fmt(n, 4)}"
            for v, n in zip(table[group].to_numpy(), table["N"].to_numpy(), strict=True)
        )
    ]
    edge = table.loc[~table["inside_grid"].astype(bool), group].tolist()
    if edge:
        lines.append(f"threshold outside the n grid (extrapolated) at {group} = {edge}")
    return lines


# More values of a group than this get a colour bar instead of a legend (Fig. 5's 36 p).
LEGEND_MAX = 6


def threshold_panels(points: pd.DataFrame, summary: dict[str, Any], group: str):
    """Left: success curves per value of ``group`` (sorted by n, repeated n pooled; a
    colour bar for many values); middle: their thresholds with their 95% intervals;
    right: the collapse, success against n/N, which shows whether the transitions share
    a shape. Returns (figure, left axes, threshold axes, the finite thresholds)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    fig, (left, right, collapse) = plt.subplots(1, 3, figsize=(13.0, 3.4))
    table = pd.DataFrame(summary["thresholds"])
    values = sorted(points[group].unique())
    cmap = plt.get_cmap("viridis")
    norm = Normalize(min(values), max(values)) if len(values) > 1 else None

    def color(value):
        return cmap(0.05 + 0.85 * norm(value)) if norm is not None else cmap(0.05)

    thresholds = dict(zip(table[group], table["N"], strict=True))
    bars = len(values) <= LEGEND_MAX  # dozens of overlapping bars hide the curves
    for value in values:
        pts = pooled(pd.DataFrame(points[points[group] == value]))
        _success_curve(left, pts, pts["n"], color(value), f"{group} = {value}", bars)
        big_n = thresholds.get(value, np.nan)
        if np.isfinite(big_n) and big_n > 0:
            _success_curve(collapse, pts, pts["n"] / big_n, color(value), None, bars)
    for ax, xlabel in ((left, "n"), (collapse, r"$n / N$")):
        ax.axhline(0.5, color="gray", ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("success fraction")
    collapse.axvline(1.0, color="gray", ls=":", lw=1)
    collapse.set_title("collapse: success against n / N")
    if len(values) > LEGEND_MAX and norm is not None:
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=collapse)
        bar.set_label(group)
    else:
        left.legend(ncol=2 if len(values) > 3 else 1)
    ok = _threshold_errorbars(right, table, group)
    if rec := summary.get("adaptive"):
        right.text(
            0.02,
            0.98,
            f"adaptive: {rec['runs_used']} of {rec['grid_runs']} grid runs",
            transform=right.transAxes,
            va="top",
            fontsize=7,
        )
    return fig, left, right, ok


def pooled(points: pd.DataFrame) -> pd.DataFrame:
    """One point per n, in increasing n: repeated evaluations at the same n (the
    adaptive search's) pooled by adding their runs and successes, with their bars."""
    ns, at = np.unique(points["n"].to_numpy(), return_inverse=True)
    runs = np.bincount(at, weights=points["runs"].to_numpy()).astype(np.int64)
    successes = np.bincount(at, weights=points["successes"].to_numpy()).astype(np.int64)
    pts = pd.DataFrame({"n": ns, "runs": runs, "successes": successes})
    pts["fraction"] = pts["successes"] / pts["runs"]
    lo, hi = success_bars(pts["successes"].to_numpy(), pts["runs"].to_numpy())
    return pts.assign(bar_low=lo, bar_high=hi)


def _success_curve(ax, pts: pd.DataFrame, x, color, label, bars: bool) -> None:
    from shallowflow.plots import yerr

    err = yerr(pts) if bars else None
    ax.errorbar(x, pts["fraction"], yerr=err, fmt="o-", ms=3, color=color, lw=0.8, label=label)


def _threshold_errorbars(ax, table: pd.DataFrame, group: str) -> pd.DataFrame:
    """The thresholds against ``group`` with their 95% intervals; the finite ones."""
    from shallowflow.plots import interval_yerr

    ok = pd.DataFrame(table[table["N"].notna()])
    err = interval_yerr(ok, "N")
    ax.errorbar(ok[group], ok["N"], yerr=err, fmt="ko", ms=4, label="N (95% interval)")
    ax.set_xlabel(group)
    ax.set_ylabel(r"threshold $N$")
    return ok
