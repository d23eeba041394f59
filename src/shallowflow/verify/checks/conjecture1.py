"""Conjecture 1: the rate on orthogonal data is of order 1/√n (Fig. 6 protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shallowflow.config import SimConfig, make_config
from shallowflow.experiments.figures import fig6
from shallowflow.plots import save_figure
from shallowflow.stats.fits import bootstrap_slopes, loglog_slope
from shallowflow.verify.checks.common import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    P,
    result,
    sim,
)
from shallowflow.verify.ledger import Check, CheckResult


def fig6_config(p: P, n: int, solver: str) -> SimConfig:
    """A cell of Fig. 6's protocol (:func:`shallowflow.experiments.figures.fig6.cell`)
    at the check's d and runs, 21 records; the flow in float64 at the check's tolerances."""
    extra = dict(x64=True, rtol=p["flow_rtol"], atol=p["flow_atol"]) if solver == "flow" else {}
    knobs = fig6.cell(n, p["d"], p["runs"], solver, p.get("seed", 0), record=21, **extra)
    knobs |= {k: p[k] for k in ("init", "p") if p.get(k) is not None}
    knobs.pop("figure")
    return make_config(**knobs)


def _boot_slope(ns: np.ndarray, samples: list[np.ndarray], reps: int, seed: int):
    """Slope of log(mean rate) vs log n and its 95% bootstrap CI over runs."""
    est = loglog_slope(ns, np.array([s.mean() for s in samples]))
    boots = bootstrap_slopes(ns, samples, reps, np.random.default_rng(seed))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return est, float(lo), float(hi)


def conjecture1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Conjecture 1 (Fig. 6 protocol): μ(t_∞) ∝ n^{−1/2} on orthogonal data."""
    ns = np.array(p["ns"], float)
    tails, half = [], []
    for n in p["ns"]:
        res = sim(fig6_config(p, n, "gd"))
        tails.append(res.final["mu_tail"])
        # horizon 5T: μ at the record at t = 5T for runs still running, else μ(t_∞)
        k5 = int(np.argmin(np.abs(res.times - res.times[-1] / 2)))
        half.append(
            np.where(
                res.valid[:, k5] & (res.final["t_final"] > res.times[k5]),
                res.records["mu"][:, k5],
                res.final["mu_tail"],
            )
        )
    slope, lo, hi = _boot_slope(ns, tails, p["boot"], p.get("seed", 0))
    slope5 = loglog_slope(ns, np.array([h.mean() for h in half]))
    fns = np.array(p["flow_ns"], float)
    flow_tails = [sim(fig6_config(p, int(n), "flow")).final["mu_tail"] for n in p["flow_ns"]]
    flow_slope = (
        loglog_slope(fns, np.array([f.mean() for f in flow_tails])) if len(fns) > 1 else None
    )
    target, band = p["target"], p["band"]
    # Proposition 1 proves the rate lies between orders 1/n and 1/√n: a slope inside
    # that range but away from −1/2 leaves the conjecture open (INCONCLUSIVE); only a
    # slope outside the proven range contradicts the theory (FAIL).
    b_lo, b_hi = p.get("bounds", (-1.0, -0.5))
    if hi - lo > p["max_ci_width"]:
        verdict = INCONCLUSIVE
    elif lo <= target <= hi or abs(slope - target) <= band:
        verdict = PASS
    elif b_lo - band <= slope <= b_hi + band:
        verdict = INCONCLUSIVE
    else:
        verdict = FAIL
    numbers = {
        "ns": ns.astype(int).tolist(),
        "d": p["d"],
        "runs_per_n": p["runs"],
        "mean_mu_tail": [float(t.mean()) for t in tails],
        "slope": slope,
        "ci95": [lo, hi],
        "target": target,
        "band": band,
        "proven_range": [b_lo, b_hi],
        "slope_horizon_5T": slope5,
        "flow_ns": fns.astype(int).tolist(),
        "flow_mean_mu_tail": [float(f.mean()) for f in flow_tails],
        "flow_slope": flow_slope,
    }

    def draw(ax):
        m = np.array([t.mean() for t in tails])
        ax[0].loglog(ns, m, "o-", label=f"GD η=1: slope {slope:.2f} [{lo:.2f}, {hi:.2f}]")
        ax[0].loglog(ns, [h.mean() for h in half], "x:", label=f"GD at 5T: {slope5:.2f}")
        if flow_tails:
            lab = "flow" + (f": {flow_slope:.2f}" if flow_slope is not None else "")
            ax[0].loglog(fns, [f.mean() for f in flow_tails], "s-", label=lab)
        ax[0].loglog(ns, m[0] * (ns / ns[0]) ** -0.5, "k--", label="n^−1/2")
        ax[0].loglog(ns, m[0] * (ns / ns[0]) ** -1.0, "k:", label="n^−1")
        ax[0].set(xlabel="n", ylabel="μ(t_∞)", title="Conjecture 1 (Fig. 6 protocol)")
        ax[0].legend(fontsize=7)

    fig = save_figure(fig_dir, "conjecture1", draw)
    fs = "n/a" if flow_slope is None else f"{flow_slope:.3f}"
    summ = (
        f"slope {slope:.3f}, 95% CI [{lo:.3f}, {hi:.3f}] (n={ns.astype(int).tolist()}); "
        f"at 5T {slope5:.3f}; flow {fs}"
    )
    return result(
        "conjecture1",
        "orthogonal data, small random init (Fig. 6 protocol): the asymptotic rate μ(t_∞) is "
        "of order 1/√n (Conjecture 1)",
        f"GD η = 1, horizon 10T, stop at 10⁻⁶/(2n): bootstrap 95% CI of the log-log slope of "
        f"mean μ(t_∞) contains {target:g} or |slope − ({target:g})| ≤ {band:g} → PASS; CI wider "
        f"than {p['max_ci_width']:g}, or slope inside the proven range [{b_lo:g}, {b_hi:g}] "
        f"± {band:g} but away from {target:g} → INCONCLUSIVE; outside it → FAIL",
        verdict,
        numbers,
        fig,
        summ,
    )


QUICK = dict(
    ns=(100, 200, 400),
    d=400,
    runs=16,
    flow_ns=(100, 200),
    flow_rtol=1e-7,
    flow_atol=1e-10,
    boot=500,
    target=-0.5,
    band=0.15,
    max_ci_width=0.5,
)
PAPER = QUICK | dict(
    ns=(1000, 1200, 1400, 1600, 1800, 2000), d=2000, runs=128, flow_ns=(1000, 1400, 2000), boot=1000
)


def configs(p: P) -> list[SimConfig]:
    gd = [fig6_config(p, int(n), "gd") for n in p["ns"]]
    return gd + [fig6_config(p, int(n), "flow") for n in p["flow_ns"]]


CHECK = Check("conjecture1", conjecture1, {"quick": QUICK, "paper": PAPER}, configs=configs)
