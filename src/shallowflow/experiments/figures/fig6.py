"""Fig. 6 — the rates against n on orthogonal data (SPEC §5; Conjecture 1).

Orthogonal x_i = ρ_i e_i, p = p(n, 0.05), W scaled by 0.01 after drawing a, data and
initialisation redrawn until every example is covered, horizon 10·T(n, p), stop at
L < 10⁻⁶/(2n). Per n, each measure is averaged over runs, then logged: μ(t_∞) (the rate
over the last 100 steps), ⟨μ⟩ = log(L(0)/L(t_∞))/t_∞, and at the end the paper's bounds
μ_low = (2/n) min_i E_i and μ_upp = (16/n) max_i E_i (plotted under those names); beside
them, not plotted: the tangent kernel's asymptotic rate μ_∞ = 2 λ_min(K) at the end
(:mod:`shallowflow.kernel`) and the tight bounds (2/n) min_i ‖x_i‖²E_i, (4/n) max_i
‖x_i‖²E_i (SPEC §2). Slopes in log n come with a bootstrap over runs. The paper conjectures
−1/2 (Conjecture 1: the rate is of order 1/√n); Prop. 1 proves the rate's exponent lies
in [−1, −1/2]. :func:`cell` is the protocol's cell, which the ``conjecture1`` check of
``verify`` and the Conjecture-1 study reuse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.protocol import EPS, Protocol, paper_cell
from shallowflow.report.format import plus_minus, yes
from shallowflow.stats.fits import bootstrap_slopes, linear_fit
from shallowflow.theory.width import width

NAME = "fig6"
TITLE = "Fig. 6 — rates vs n on orthogonal data"
CLAIM = (
    "On orthogonal data the convergence rate μ(t_∞), the average rate ⟨μ⟩ and the bounds "
    "μ_low, μ_upp decay like n^(−1/2) (Conjecture 1: slope −1/2 in log-log)."
)
STOP = 1e-6  # Fig. 6 stops when L < STOP/(2n)
SLOPE = -0.5  # Conjecture 1
PROVEN = (-1.0, -0.5)  # Prop. 1: the rate's exponent lies in this range
PROTOCOLS = {
    "paper": {"d": 2000, "ns": range(1000, 2001, 100), "runs": 500},
    "quick": {"d": 1200, "ns": range(600, 1201, 150), "runs": 24},
}
MEASURES = {  # the paper's four (plotted), then ours
    "mu_tail": "μ(t_∞)",
    "mu_mean": "⟨μ⟩",
    "final_mu_low": "μ_low",
    "final_mu_upp": "μ_upp",
    "final_mu_inf_kernel": "μ_∞ (kernel)",
    "final_mu_low_tight": "μ_low (tight)",
    "final_mu_upp_tight": "μ_upp (tight)",
}
PAPER = ("mu_tail", "mu_mean", "final_mu_low", "final_mu_upp")
RATES = ("mu_tail", "mu_mean", "final_mu_inf_kernel")  # Prop. 1's range: rates, not bounds


def cell(
    n: int, d: int, runs: int, solver: str = "gd", seed: int = 0, preset: str = "quick", **knobs
) -> dict:
    """The knobs of one Fig. 6 cell (module doc) under ``preset`` (the paper's: the
    authors' stop rule, :func:`~shallowflow.experiments.protocol.paper_cell`); ``knobs``
    override them. The Conjecture-1 study's cells are ours: the inclusive rule."""
    fig6 = dict(
        n=n,
        d=d,
        p=width(n, EPS),
        runs=runs,
        data="orthogonal",
        w_scale=0.01,
        require_coverage=True,
        horizon_factor=10.0,
        stop_loss=STOP / (2 * n),
    )
    return paper_cell(NAME, solver, seed, preset=preset, **fig6) | knobs


def protocol(preset: str, solver: str = "gd", seed: int = 0) -> Protocol:
    """d fixed, n on a grid, the preset's runs per n."""
    d, ns, runs = (PROTOCOLS[preset][k] for k in ("d", "ns", "runs"))
    return Protocol(
        NAME,
        preset,
        [cell(n, d, runs, solver, seed, preset) for n in ns],
        TITLE,
        CLAIM,
        params={"d": d, "slope": SLOPE},
        notes=f"orthogonal x_i = ρ_i e_i, d = {d}, n = {ns.start}..{ns.stop - 1} step {ns.step}, "
        f"p = p(n, 0.05), W scaled by 0.01, coverage required, {runs} runs per n, "
        "horizon 10·T(n, p), stop at L < 1e-6/(2n).",
    )


def points(runs: pd.DataFrame) -> pd.DataFrame:
    """Per n: each measure averaged over runs, then its log (SPEC §5)."""
    g = runs.groupby("n", sort=True)
    pts = g.agg(p=("p", "first"), runs=("success", "size"), successes=("success", "sum"))
    for col in _present(runs):
        pts[col] = g[col].mean()
        pts[f"log_{col}"] = np.log(pts[col])
    return pts.reset_index()


def _present(runs: pd.DataFrame) -> list[str]:
    """The measures a runs table holds (the kernel's rate only where it was measured)."""
    return [col for col in MEASURES if col in runs]


def slopes(runs: pd.DataFrame, n_boot: int = 300, seed: int = 0) -> dict[str, dict]:
    """Slope of log(mean measure) vs log n per measure, with a bootstrap SE over runs."""
    rng = np.random.default_rng(seed)
    groups = [g for _, g in runs.groupby("n", sort=True)]
    ns = np.array([g["n"].iloc[0] for g in groups], float)
    out = {}
    for col in _present(runs):
        label = MEASURES[col]
        values = [g[col].to_numpy(float) for g in groups]
        fit = linear_fit(np.log(ns), np.log([v.mean() for v in values]))
        boot = bootstrap_slopes(ns, values, n_boot, rng)
        out[col] = {
            "label": label,
            "slope": fit["a"],
            "se": float(np.std(boot[np.isfinite(boot)], ddof=1)),
            "se_regression": fit["se_a"],
            "intercept": fit["b"],
            "r2": fit["r2"],
        }
    return out


def summarise(runs: pd.DataFrame, proto: Protocol) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Points per n and each measure's slope in log n."""
    return points(runs), {"slopes": slopes(runs)}


def verdict(
    points: pd.DataFrame, summary: dict[str, Any], proto: Protocol
) -> tuple[list[str], bool]:
    """Each slope against −1/2 (within 2σ) and, for the rates, against Prop. 1's proven
    range; reproduced when μ(t_∞)'s slope is within 2σ of −1/2."""
    ref, lo, hi = proto.params["slope"], *PROVEN
    lines = []
    for key, s in summary["slopes"].items():
        close = abs(s["slope"] - ref) <= 2 * s["se"]
        line = (
            f"slope of log {s['label']} vs log n = {plus_minus(s['slope'], s['se'])}, "
            f"paper: −1/2; within 2σ: {yes(close)}"
        )
        if key in RATES:
            proven = lo - 2 * s["se"] <= s["slope"] <= hi + 2 * s["se"]
            line += f"; inside the proven range [−1, −1/2] (Prop. 1): {yes(proven)}"
        lines.append(line)
    conv = points["successes"].sum() / points["runs"].sum()
    lines.append(f"runs converged to L < 1e-6/(2n): {conv:.0%}")
    tail = summary["slopes"]["mu_tail"]
    return lines, bool(abs(tail["slope"] - ref) <= 2 * tail["se"])


def plot(points: pd.DataFrame, summary: dict[str, Any]):
    """Run-averaged μ(t_∞), ⟨μ⟩, μ_low, μ_upp vs n in log-log with fitted slopes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    n = points["n"].to_numpy(float)
    grid = np.geomspace(n.min(), n.max(), 50)
    tex = {
        "mu_tail": r"$\mu(t_\infty)$",
        "mu_mean": r"$\langle\mu\rangle$",
        "final_mu_low": r"$\mu_{low}$",
        "final_mu_upp": r"$\mu_{upp}$",
    }
    for i, col in enumerate(PAPER):
        s = summary["slopes"][col]
        ax.plot(n, points[col], "o", color=f"C{i}", ms=4)
        fit = np.exp(s["intercept"]) * grid ** s["slope"]
        label = f"{tex[col]}: slope {plus_minus(s['slope'], s['se'])}"
        ax.plot(grid, fit, "-", color=f"C{i}", lw=1, label=label)
    mid = points["mu_tail"].to_numpy()
    ref = mid[len(mid) // 2] * (grid / n[len(n) // 2]) ** -0.5
    ax.plot(grid, ref, "k:", lw=1, label=r"$\propto n^{-1/2}$ (Conjecture 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("rate (mean over runs)")
    ax.set_title("orthogonal data, p = p(n, 0.05); bounds as the paper defines them")
    ax.legend(fontsize=7)
    return fig
