"""Lemma 1: the balance a_j² − ‖w_j‖² is conserved by the flow (SPEC §2)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from shallowflow.config import SimConfig, make_config
from shallowflow.plots import save_figure
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
    sim,
    starts,
)
from shallowflow.verify.ledger import Check, CheckResult


def _cell(p: P) -> dict[str, Any]:
    """The knobs the flow and GD share: orthogonal data (d = n), the asymmetric
    initialisation, float64, the same runs and seed (so the same draws)."""
    n, seed = p["n"], p.get("seed", 0)
    return dict(n=n, d=n, data="orthogonal", init="asymmetric", x64=True, runs=p["runs"], seed=seed)


def flow_config(p: P) -> SimConfig:
    """The exact flow on orthogonal data in float64: its balance must not drift."""
    tolerances = {"rtol": p["rtol"], "atol": p["atol"], "dtmin": p["dtmin"]}
    return make_config(**_cell(p), solver="flow", **tolerances, keep_state=True)


def gd_config(p: P, lr: float) -> SimConfig:
    """GD with step ``lr`` on the flow's cell: its balance drifts by O(η²) per step."""
    horizon = float(p["gd_horizon"])
    return make_config(**_cell(p), solver="gd", lr=lr, horizon=horizon, stop_loss=0.0)


def lemma1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Lemma 1: a_j² − ‖w_j‖² is conserved by the flow; signs of a_j are fixed under
    Assumption 1; under GD the drift is a discretisation error, O(η) at fixed time."""
    cfg = flow_config(p)
    res = sim(cfg)
    drift = float(np.max(np.where(res.valid, res.records["balance_drift_rel"], 0.0)))
    a0 = np.asarray(starts(cfg, res).state.a)
    assert res.states is not None  # flow_config keeps the final state
    signs_kept = bool(np.all(np.sign(res.states["a"]) == np.sign(a0)))
    a1 = bool(np.all(res.init["assumption1"]))
    etas = [float(e) for e in p["etas"]]
    gd_drift = []
    for eta in etas:
        r = sim(gd_config(p, eta))
        gd_drift.append(float(np.max(np.where(r.valid, r.records["balance_drift_rel"], 0.0))))
    orders = [
        math.log(d0 / d1) / math.log(e0 / e1)
        for d0, d1, e0, e1 in zip(gd_drift, gd_drift[1:], etas, etas[1:], strict=False)
    ]
    decreasing = all(d1 < d0 for d0, d1 in zip(gd_drift, gd_drift[1:], strict=False))
    order_ok = decreasing and min(orders) >= p["min_order"]
    flow_ok = drift < p["drift_tol"]
    verdict = PASS if (flow_ok and signs_kept and a1 and order_ok) else FAIL
    numbers = {
        "n": cfg.data.n,
        "p": cfg.init.p,
        "runs": cfg.run.runs,
        "flow_rtol": cfg.solver.rtol,
        "flow_drift_rel_max": drift,
        "drift_tol": p["drift_tol"],
        "assumption1_all": a1,
        "signs_kept": signs_kept,
        "etas": etas,
        "gd_drift_rel_max": gd_drift,
        "gd_drift_orders": orders,
        "gd_horizon": float(p["gd_horizon"]),
    }

    def draw(ax):
        ax[0].loglog(etas, gd_drift, "o-", label="GD drift")
        ax[0].loglog(etas, [gd_drift[0] * e / etas[0] for e in etas], "k--", label="∝ η")
        ax[0].axhline(max(drift, 1e-17), color="C1", label="flow drift")
        ax[0].set(xlabel="η", ylabel="max rel. balance drift", title="Lemma 1")
        ax[0].legend()

    fig = save_figure(fig_dir, "lemma1", draw)
    summ = (
        f"flow drift {drift:.2g} (<{p['drift_tol']:g}); signs kept {signs_kept}; "
        f"GD drift {', '.join(f'{d:.2g}' for d in gd_drift)} at η={etas}, order "
        f"{min(orders):.2f}"
    )
    return result(
        "lemma1",
        "a_j² − ‖w_j‖² is constant along the flow; signs of a_j fixed under Assumption 1; "
        "GD drift is O(η) at a fixed time (SPEC §2)",
        f"orthogonal data, flow x64 rtol={cfg.solver.rtol:g}: max rel. drift < {p['drift_tol']:g}; "
        f"sign(a_j(T)) = sign(a_j(0)); GD drift decreasing along η = {etas} with order "
        f"≥ {p['min_order']:g}",
        verdict,
        numbers,
        fig,
        summ,
    )


QUICK = dict(
    n=24,
    runs=4,
    rtol=1e-10,
    atol=1e-12,
    dtmin=1e-5,
    drift_tol=1e-6,
    etas=(1.0, 0.5, 0.25),
    gd_horizon=40.0,
    min_order=0.7,
)
PAPER = {**QUICK, "n": 200, "runs": 32}


def configs(p: P) -> list[SimConfig]:
    """The configurations the check simulates (prefetched together)."""
    return [flow_config(p)] + [gd_config(p, float(e)) for e in p["etas"]]


CHECK = Check("lemma1", lemma1, {"quick": QUICK, "paper": PAPER}, configs)
