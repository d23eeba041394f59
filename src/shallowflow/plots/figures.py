"""The paper's figures from per-point tables (SPEC §5), drawn with matplotlib (Agg).

One function per figure, ``plot_figK(points, summary) -> Figure``, reading the
tables and fits of :mod:`shallowflow.experiments.reproduce`; :func:`render`
picks the protocol's plot and saves it as PNG and PDF. Error bars are the 95%
Hoeffding bars of SPEC §5; fitted laws are drawn with their equations in the
legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from shallowflow.report.format import plus_minus  # noqa: E402

__all__ = ["PLOTS", "plot_fig2", "plot_fig3", "plot_fig4", "plot_fig5", "plot_fig6", "render"]

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
    "errorbar.capsize": 2.5,
    "savefig.bbox": "tight",
    "savefig.dpi": 150,
}


def _yerr(points: pd.DataFrame) -> np.ndarray:
    """Asymmetric Hoeffding bars around the success fraction."""
    frac = points["fraction"].to_numpy()
    return np.vstack([frac - points["bar_low"].to_numpy(), points["bar_high"].to_numpy() - frac])


def _signed(x: float) -> str:
    """``+ 3.2`` or ``− 3.2`` for an equation in a legend."""
    return f"{'+' if x >= 0 else '−'} {abs(x):.3g}"


def _logistic(fit: dict[str, Any], n: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(fit["slope"] * (n - fit["N"])))


def plot_fig2(points: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Rescaled staircase loss L_n(u) for growing n against its limit L_∞ (Fig. 2)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    ns = points["n"].unique()
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(ns)))
    for n, color in zip(ns, colors, strict=True):
        pts = points[points["n"] == n]
        ax.plot(pts["u"], pts["loss"], color=color, label=f"$n = 10^{{{round(math.log10(n))}}}$")
    first = points[points["n"] == ns[0]]
    ax.plot(first["u"], first["limit"], "k--", lw=1.2, label=r"$L_\infty$")
    ax.set_xlabel(r"rescaled time $u = t / (\sqrt{n}\,\log n)$")
    ax.set_ylabel(r"$L_n(u) / L_n(0)$")
    ax.set_title("Staircase, label magnitudes 1 and 2")
    ax.legend(loc="upper right")
    return fig


def plot_fig3(points: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Success fraction with Hoeffding bars and mean L(θ_T)/L(θ_0) vs n (Fig. 3)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    n = points["n"].to_numpy(float)
    ax.errorbar(n, points["fraction"], yerr=_yerr(points), fmt="o", ms=4, label="success fraction")
    fit = summary["threshold"]
    if fit["N"] is not None and np.isfinite(fit["N"]):
        grid = np.linspace(n.min(), n.max(), 200)
        ax.plot(grid, _logistic(fit, grid), "C0-", alpha=0.6, label=f"logistic, N = {fit['N']:.0f}")
        ax.axvline(fit["N"], color="C0", ls=":", lw=1)
    ax.plot(
        n, points["loss_ratio"], "s--", color="C3", ms=3.5, label=r"mean $L(\theta_T)/L(\theta_0)$"
    )
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("n")
    ax.set_ylabel("probability / loss ratio")
    title = f"d = {int(points['d'].iloc[0])}, p = p(n, 0.05)"
    if rec := summary.get("adaptive"):
        title += f"; adaptive: {rec['runs_used']} of {rec['grid_runs']} grid runs"
    ax.set_title(title)
    ax.legend(loc="center right")
    return fig


def _threshold_panels(points: pd.DataFrame, summary: dict[str, Any], group: str):
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    table = pd.DataFrame(summary["thresholds"])
    values = sorted(points[group].unique())
    colors = plt.cm.viridis(np.linspace(0.05, 0.9, len(values)))
    for value, color in zip(values, colors, strict=True):
        pts = points[points[group] == value]
        left.errorbar(
            pts["n"],
            pts["fraction"],
            yerr=_yerr(pts),
            fmt="o-",
            ms=3,
            color=color,
            lw=0.8,
            label=f"{group} = {value}",
        )
    left.axhline(0.5, color="gray", ls=":", lw=1)
    left.set_xlabel("n")
    left.set_ylabel("success fraction")
    left.legend(ncol=2 if len(values) > 5 else 1)
    ok = table[table["N"].notna()]
    err = np.vstack(
        [
            (ok["N"] - ok["ci_low"]).clip(lower=0).fillna(0).replace(np.inf, 0),
            (ok["ci_high"] - ok["N"]).clip(lower=0).fillna(0).replace(np.inf, 0),
        ]
    )
    right.errorbar(ok[group], ok["N"], yerr=err, fmt="ko", ms=4, label="N (95% bootstrap)")
    right.set_xlabel(group)
    right.set_ylabel(r"threshold $N$")
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


def plot_fig4(points: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Success curves per d and threshold N(d, 30) with its linear fit (Fig. 4)."""
    fig, left, right, ok = _threshold_panels(points, summary, "d")
    fit = summary["fit"]
    d = np.linspace(ok["d"].min(), ok["d"].max(), 50)
    right.plot(
        d,
        fit["a"] * d + fit["b"],
        "C3-",
        label=f"N = {fit['a']:.3g} d {_signed(fit['b'])}  (R² = {fit['r2']:.3f})",
    )
    right.legend()
    left.set_title("success fraction, p = 30")
    right.set_title("threshold vs d")
    return fig


def plot_fig5(points: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Success curves per p and threshold N(30, p) with power/linear/log fits (Fig. 5)."""
    fig, left, right, ok = _threshold_panels(points, summary, "p")
    fits = summary["fits"]
    p = np.linspace(ok["p"].min(), ok["p"].max(), 100)
    pw, li, lg = fits["power"], fits["linear"], fits["log"]
    right.plot(
        p,
        pw["c"] * p ** pw["gamma"],
        "C3-",
        label=f"N = {pw['c']:.3g} p^{pw['gamma']:.2f}  (R² = {pw.get('r2', np.nan):.3f})",
    )
    right.plot(
        p,
        li["a"] * p + li["b"],
        "C0--",
        label=f"N = {li['a']:.3g} p {_signed(li['b'])}  (R² = {li.get('r2', np.nan):.3f})",
    )
    right.plot(
        p,
        lg["a"] * np.log(p) + lg["b"],
        "C2:",
        label=f"N = {lg['a']:.3g} log p {_signed(lg['b'])}  (R² = {lg.get('r2', np.nan):.3f})",
    )
    right.legend()
    left.set_title("success fraction, d = 30")
    right.set_title("threshold vs p")
    return fig


def plot_fig6(points: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    """Run-averaged μ(t_∞), ⟨μ⟩, μ_low, μ_upp vs n in log-log with fitted slopes (Fig. 6)."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    n = points["n"].to_numpy(float)
    grid = np.geomspace(n.min(), n.max(), 50)
    tex = {
        "mu_tail": r"$\mu(t_\infty)$",
        "mu_mean": r"$\langle\mu\rangle$",
        "final_mu_low": r"$\mu_{low}$",
        "final_mu_upp": r"$\mu_{upp}$",
    }
    for i, (col, s) in enumerate(summary["slopes"].items()):
        ax.plot(n, points[col], "o", color=f"C{i}", ms=4)
        fit = np.exp(s["intercept"]) * grid ** s["slope"]
        ax.plot(
            grid,
            fit,
            "-",
            color=f"C{i}",
            lw=1,
            label=f"{tex[col]}: slope {plus_minus(s['slope'], s['se'])}",
        )
    mid = points["mu_tail"].to_numpy()
    ref = mid[len(mid) // 2] * (grid / n[len(n) // 2]) ** -0.5
    ax.plot(grid, ref, "k:", lw=1, label=r"$\propto n^{-1/2}$ (Conjecture 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("rate (mean over runs)")
    ax.set_title("orthogonal data, p = p(n, 0.05)")
    ax.legend(fontsize=7)
    return fig


PLOTS: dict[str, Callable[[pd.DataFrame, dict[str, Any]], Figure]] = {
    "plot_fig2": plot_fig2,
    "plot_fig3": plot_fig3,
    "plot_fig4": plot_fig4,
    "plot_fig5": plot_fig5,
    "plot_fig6": plot_fig6,
}


def save(fig: Figure, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format and close it."""
    paths = []
    for fmt in formats:
        path = Path(stem).with_suffix(f".{fmt}")
        fig.savefig(path)
        paths.append(path)
    plt.close(fig)
    return paths


def render(proto: Any, points: pd.DataFrame, summary: dict[str, Any], stem: Path) -> list[Path]:
    """Draw the protocol's figure and save it as ``stem.png`` and ``stem.pdf``."""
    with plt.rc_context(STYLE):
        fig = PLOTS[proto.plot](points, summary)
        fig.suptitle(proto.title, fontsize=10)
        return save(fig, stem)


def plot_success(points: pd.DataFrame, x: str = "n", title: str = "") -> Figure:
    """Success fraction with Hoeffding bars vs ``x`` (user sweeps), one line per other knob."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        others = [c for c in points.columns if c.startswith("knob:")]
        groups = points.groupby(others, sort=True) if others else [("", points)]
        for i, (key, pts) in enumerate(groups):
            pts = pts.sort_values(x)
            label = ", ".join(
                f"{c[5:]}={v}" for c, v in zip(others, np.atleast_1d(key), strict=False)
            )
            ax.errorbar(
                pts[x],
                pts["fraction"],
                yerr=_yerr(pts),
                fmt="o-",
                ms=4,
                color=f"C{i % 10}",
                label=label or None,
            )
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(x)
        ax.set_ylabel("success fraction")
        if title:
            ax.set_title(title)
        if others:
            ax.legend()
    return fig
