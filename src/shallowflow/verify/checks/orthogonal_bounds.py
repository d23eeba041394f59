"""The orthogonal-data bounds μ_low ≤ μ ≤ μ_upp at every state (SPEC §2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shallowflow.config import SimConfig
from shallowflow.plots import save_figure
from shallowflow.verify.checks import lemma1
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
    sim,
)
from shallowflow.verify.checks.lemma1 import flow_config, gd_config
from shallowflow.verify.ledger import Check, CheckResult


def orthogonal_bounds(p: P, fig_dir: Path | None = None) -> CheckResult:
    """μ_low ≤ μ ≤ μ_upp at every recorded time on orthogonal data (GD and flow)."""
    lo_f, up_f, tol = p.get("low_factor", 1.0), p.get("upp_factor", 1.0), p["bound_tol"]
    out, ok, a1 = {}, True, True
    for label, cfg in (("flow", flow_config(p)), ("gd", gd_config(p, 1.0))):
        res = sim(cfg)
        # the bounds hold at every θ: they bound the state quantity p‖∇L‖²/L
        mu, lo, up = (res.records[k] for k in ("mu_state", "mu_low_tight", "mu_upp_tight"))
        lo, up = lo * lo_f, up * up_f
        v = res.valid
        low_ratio = float(np.min(np.where(v, mu / lo, np.inf)))
        upp_ratio = float(np.max(np.where(v, mu / up, 0.0)))
        ok &= low_ratio >= 1 - tol and upp_ratio <= 1 + tol
        a1 &= bool(np.all(res.init["assumption1"]))
        out[label] = {
            "records": int(v.sum()),
            "min_mu_over_low": low_ratio,
            "max_mu_over_upp": upp_ratio,
        }
        out[label + "_res"] = res
    flow, gd = out.pop("flow_res"), out.pop("gd_res")
    verdict = PASS if ok and a1 else FAIL
    numbers = {**out, "assumption1_all": a1, "low_factor": lo_f, "upp_factor": up_f}

    def draw(ax):
        for k, (lab, res) in enumerate((("flow", flow), ("GD η=1", gd))):
            v = res.valid[0]
            t = res.times[v]
            ax[k].semilogy(t, res.records["mu_state"][0][v], label="μ")
            ax[k].semilogy(t, lo_f * res.records["mu_low_tight"][0][v], "--", label="μ_low")
            ax[k].semilogy(t, up_f * res.records["mu_upp_tight"][0][v], "--", label="μ_upp")
            ax[k].set(xlabel="t", title=f"{lab}, run 0")
            ax[k].legend()

    fig = save_figure(fig_dir, "orthogonal_bounds", draw, ncols=2)
    summ = "; ".join(
        f"{k}: min μ/μ_low {v['min_mu_over_low']:.3g}, max μ/μ_upp {v['max_mu_over_upp']:.3g}"
        for k, v in out.items()
    )
    return result(
        "orthogonal_bounds",
        "orthogonal data, Assumption 1: (2/n) min_i ‖x_i‖²E_i ≤ μ ≤ (4/n) max_i ‖x_i‖²E_i "
        "at every θ (SPEC §2)",
        f"at every recorded time of every run (flow and GD η = 1): μ/μ_low ≥ 1 − {tol:g} and "
        f"μ/μ_upp ≤ 1 + {tol:g}",
        verdict,
        numbers,
        fig,
        summ,
    )


def configs(p: P) -> list[SimConfig]:
    """The configurations the check simulates (prefetched together)."""
    return [flow_config(p), gd_config(p, 1.0)]


CHECK = Check(
    "orthogonal_bounds",
    orthogonal_bounds,
    {
        "quick": {**lemma1.QUICK, "bound_tol": 1e-9},
        "paper": {**lemma1.PAPER, "bound_tol": 1e-9},
    },
    configs=configs,
)
