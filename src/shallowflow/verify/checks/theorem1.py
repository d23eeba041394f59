"""Theorem 1: weakly interacting data converge at width p(n, ε), with μ ≥ (C/n) min_i h_i/y_i."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shallowflow.config import SimConfig, make_config
from shallowflow.plots import save_figure
from shallowflow.results import least_thm1_const
from shallowflow.solvers.common import Outcome
from shallowflow.stats.fits import loglog_slope
from shallowflow.theory.datacheck import d_needed
from shallowflow.verify.checks.common import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    P,
    prefetch,
    result,
    sim,
)
from shallowflow.verify.ledger import Check, CheckResult


def configs(p: P) -> list[SimConfig]:
    """The configurations the check simulates (prefetched together): one per n, with d ≥ n²."""
    out = []
    for n in p["ns"]:
        d = int(max(p["d"], n * n)) if p.get("d_at_least_n2", True) else int(p["d"])
        out.append(
            make_config(
                n=n,
                d=d,
                geometry="implicit",
                data="sphere",
                w_law="gaussian",
                init="asymmetric",
                solver="gd",
                lr=1.0,
                eps=p["eps"],
                p=p.get("p"),
                runs=p["runs"],
                record=p["record"],
                seed=p.get("seed", 0),
            )
        )
    return out


def theorem1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Theorem 1 in its regime (implicit-d sphere data, d ≥ n²): convergence w.p. ≥ 1 − ε
    at width p(n, ε), and the empirical constant n μ / min_i(h_i/y_i) bounded below in n."""
    eps, runs = p["eps"], p["runs"]
    rows, success, total = [], 0, 0
    cfgs = configs(p)
    prefetch(cfgs)  # together, as the ledger does, when the check is called alone
    for cfg in cfgs:
        n, d = cfg.data.n, cfg.data.d
        res = sim(cfg)
        conv = res.final["status"] == Outcome.CONVERGED
        fin = res.final["thm1_const"]
        run_min = least_thm1_const(res)
        finite = run_min[np.isfinite(run_min)]
        success += int(conv.sum())
        total += runs
        rows.append(
            {
                "n": n,
                "d": d,
                "p": cfg.init.p,
                "d_needed": d_needed(n),
                "success": float(conv.mean()),
                "min_const": float(finite.min()) if finite.size else float("nan"),
                "median_min_const": float(np.median(finite)) if finite.size else float("nan"),
                "median_final_const": float(np.median(fin[conv])) if conv.any() else float("nan"),
                "assumption1": float(np.mean(res.init["assumption1"])),
            }
        )
    frac = success / total
    margin = math.sqrt(math.log(1 / p["alpha"]) / (2 * total))
    ns = np.array([r["n"] for r in rows], float)
    mins = np.array([r["min_const"] for r in rows])
    slope = loglog_slope(ns, mins) if np.all(mins > 0) and len(ns) > 1 else float("nan")
    conv_ok = frac >= 1 - eps - margin
    const_ok = bool(np.all(mins > 0)) and slope > p["min_slope"]
    in_regime = all(r["d"] >= r["d_needed"] for r in rows)
    verdict = PASS if conv_ok and const_ok else FAIL
    if verdict == PASS and not in_regime:
        verdict = INCONCLUSIVE
    numbers = {
        "eps": eps,
        "runs_per_n": runs,
        "success_fraction": frac,
        "hoeffding_margin": margin,
        "const_slope": slope,
        "in_regime": in_regime,
        "rows": rows,
    }

    def draw(ax):
        ax[0].loglog(ns, mins, "o-", label="min over runs & t")
        ax[0].loglog(ns, [r["median_min_const"] for r in rows], "s-", label="median of run min")
        ax[0].set(xlabel="n", ylabel="n μ / min_i(h_i/y_i)", title="Theorem 1 constant")
        ax[0].legend()
        ax[1].plot(ns, [r["success"] for r in rows], "o-")
        ax[1].axhline(1 - eps, color="k", ls="--")
        ax[1].set(xlabel="n", ylabel="success fraction", ylim=(-0.05, 1.05))

    fig = save_figure(fig_dir, "theorem1", draw, ncols=2)
    summ = (
        f"success {frac:.3f} (≥ {1 - eps - margin:.3f}); min const "
        f"{', '.join(f'{m:.3g}' for m in mins)} at n={list(p['ns'])}, slope {slope:.3f}"
    )
    return result(
        "theorem1",
        "weakly interacting data (d ≥ n², implicit-d sphere data), width p(n, ε), GD η = 1: "
        "the loss → 0 w.p. ≥ 1 − ε and n μ(t) ≥ C min_i(h_i/y_i) with C independent of n",
        f"pooled success fraction ≥ 1 − ε − √(log(1/{p['alpha']:g})/(2R)); the minimum of "
        f"n μ / min_i(h_i/y_i) over runs and time (where min_fit > 0) is > 0 and its "
        f"log-log slope in n is > {p['min_slope']:g}",
        verdict,
        numbers,
        fig,
        summ,
    )


CHECK = Check(
    "theorem1",
    theorem1,
    {
        "quick": dict(
            ns=(50, 100, 200), d=10**9, eps=0.05, runs=16, record=100, alpha=0.05, min_slope=-0.2
        ),
        "paper": dict(
            ns=(100, 250, 500, 1000, 2000),
            d=10**9,
            eps=0.05,
            runs=64,
            record=200,
            alpha=0.05,
            min_slope=-0.2,
        ),
    },
    configs=configs,
)
