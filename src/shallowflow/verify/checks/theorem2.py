"""Theorem 2: the group flow is its closed form; the staircase and its widths (SPEC §4)."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import inits
from shallowflow.config import SimConfig, make_config
from shallowflow.data import paper_labels
from shallowflow.plots import save_figure
from shallowflow.start import UserArrays
from shallowflow.theory import closed_form as cf
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
    sim,
    sim_user,
    starts,
)
from shallowflow.verify.ledger import Check, CheckResult


def configs(p: P) -> list[SimConfig]:
    """The configurations the check simulates (prefetched together)."""
    n = p["n_engine"]
    cfg = make_config(
        n=n,
        d=n,
        p=n,
        data="orthogonal",
        init="group",
        solver="flow",
        x64=True,
        rtol=p["rtol"],
        atol=p["atol"],
        runs=p["runs"],
        record=p["record"],
        horizon_factor=p["horizon_factor"],
        stop_loss=p["stop_loss"],
        seed=p.get("seed", 0),
    )
    return [cfg]


def _group_engine_vs_closed_form(p: P, closed):
    """Engine (orthogonal data, group init, one example per neuron, flow x64) against the
    closed form; worst relative error of L over recorded times and runs."""
    n = p["n_engine"]
    (cfg,) = configs(p)
    res = sim(cfg)
    st = starts(cfg, res)
    err = 0.0
    for r in range(cfg.run.runs):
        y, s = np.asarray(st.prob.y[r]), np.asarray(st.prob.z[r])
        v, a = np.asarray(st.state.v[r]), np.asarray(st.state.a[r])
        owner = np.argmax(v > 0, axis=0)
        groups = [np.flatnonzero(owner == j) for j in range(cfg.init.p)]
        t = res.times[res.valid[r]]
        ref = closed(y, s, groups, a, v[owner, np.arange(n)], t)
        err = max(err, float(np.max(np.abs(res.records["loss"][r][res.valid[r]] / ref - 1))))
    return err, res


def _group_user_vs_closed_form(p: P, closed):
    """Engine on explicit orthogonal data with equal norms and groups of k > 1 examples
    (data and θ(0) passed as arrays, inits.group_state's law) against the closed form."""
    n, k = p["n_groups"] * p["group_size"], p["group_size"]
    pw = p["n_groups"]
    with jax.enable_x64(True):
        key = jax.random.key(p.get("seed", 0) + 7)
        y = paper_labels(jax.random.fold_in(key, 1), n, jnp.float64)
        a, u, owner = inits.group_state(jax.random.fold_in(key, 2), y, pw, n, jnp.float64)
    y, a, u, owner = (np.asarray(x) for x in (y, a, u, owner))
    s = p["norm"]
    X = s * np.eye(n)
    cfg = make_config(
        n=n,
        d=n,
        p=pw,
        data="file",
        data_file="<verify>",
        labels="file",
        init="file",
        state_file="<verify>",
        geometry="dense",
        solver="flow",
        x64=True,
        rtol=p["rtol"],
        atol=p["atol"],
        runs=1,
        record=p["record"],
        horizon=p["user_horizon"],
        stop_loss=p["stop_loss"],
    )
    res = sim_user(cfg, UserArrays(X, y, u, a))
    groups = [np.flatnonzero(owner == j) for j in range(pw)]
    t = res.times[res.valid[0]]
    ref = closed(y, np.full(n, s), groups, a, u[owner, np.arange(n)], t)
    err = float(np.max(np.abs(res.records["loss"][0][res.valid[0]] / ref - 1)))
    return err, k, res, ref


def theorem2(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Theorem 2: the simulated flow equals the closed form; the staircase limit and the
    1/log n transition width."""
    closed = p.get("closed_form", cf.group_loss_curve)
    err_a, res_a = _group_engine_vs_closed_form(p, closed)
    err_b, k, res_b, ref_b = _group_user_vs_closed_form(p, closed)
    sim_ok = max(err_a, err_b) <= p["tol"]

    mags = np.asarray(p["magnitudes"], float)
    u_k = cf.limit_transition_times(mags)
    u = np.linspace(0, 2 * u_k.max(), 2001)
    limit = cf.staircase_limit(mags, u)
    dists = [float(np.mean(np.abs(cf.staircase(nn, mags, u) - limit))) for nn in p["stair_ns"]]
    stair_ok = all(b < a for a, b in zip(dists, dists[1:], strict=False))
    stair_ok &= dists[-1] <= p["stair_tol"]
    lo, hi = 0.1, 0.9
    wl = [
        float(np.max(cf.transition_widths(nn, mags, lo=lo, hi=hi)) * math.log(nn))
        for nn in p["stair_ns"]
    ]
    w_lim = 2 * math.log((lo**-0.5 - 1) / (hi**-0.5 - 1))
    width_ok = abs(wl[-1] / w_lim - 1) <= p["width_tol"] and abs(wl[-2] / wl[-1] - 1) <= 0.5
    verdict = PASS if sim_ok and stair_ok and width_ok else FAIL
    numbers = {
        "engine_rel_err_k1": err_a,
        "engine_rel_err_k": err_b,
        "group_size_k": k,
        "tol": p["tol"],
        "staircase_ns": [float(x) for x in p["stair_ns"]],
        "staircase_mean_abs_dist": dists,
        "width_times_log_n": wl,
        "width_limit": w_lim,
    }

    def draw(ax):
        t = res_b.times[res_b.valid[0]]
        ax[0].semilogy(t, res_b.records["loss"][0][res_b.valid[0]], "o", ms=3, label="engine")
        ax[0].semilogy(t, ref_b, "k-", label="closed form")
        ax[0].set(xlabel="t", ylabel="L", title=f"group flow, k = {k}")
        ax[0].legend()
        for nn in p["stair_ns"]:
            ax[1].plot(u, cf.staircase(nn, mags, u), label=f"n = {nn:.0e}")
        ax[1].plot(u, limit, "k--", label="L_∞")
        ax[1].set(xlabel="u = t/(√n log n)", ylabel="L_n(u)", title="staircase")
        ax[1].legend()

    fig = save_figure(fig_dir, "theorem2", draw, ncols=2)
    summ = (
        f"engine vs closed form rel err {err_a:.2g} (k=1), {err_b:.2g} (k={k}); staircase "
        f"dist {dists[-1]:.3g} at n={p['stair_ns'][-1]:.0e}; width·log n {wl[-1]:.3g} → "
        f"{w_lim:.3g}"
    )
    return result(
        "theorem2",
        "orthogonal data, group initialisation: the flow is the closed form of SPEC §4; the "
        "rescaled loss tends to a staircase with transitions of relative width ∝ 1/log n",
        f"max |L_engine/L_closed − 1| ≤ {p['tol']:g} (flow x64); mean |L_n − L_∞| decreasing "
        f"in n and ≤ {p['stair_tol']:g} at the largest n; width·log n within "
        f"{p['width_tol']:g} of its limit",
        verdict,
        numbers,
        fig,
        summ,
    )


QUICK = dict(
    n_engine=16,
    runs=2,
    rtol=1e-12,
    atol=1e-14,
    record=40,
    horizon_factor=1.0,
    n_groups=4,
    group_size=5,
    norm=1.5,
    user_horizon=60.0,
    stop_loss=1e-10,
    tol=1e-5,
    magnitudes=(1.0, 2.0),
    stair_ns=(1e4, 1e8, 1e12, 1e18),
    stair_tol=0.05,
    width_tol=0.25,
)
PAPER = QUICK | dict(
    n_engine=64,
    runs=8,
    record=100,
    n_groups=8,
    group_size=16,
    user_horizon=600.0,
    stair_ns=(1e4, 1e8, 1e12, 1e18, 1e30),
)
CHECK = Check("theorem2", theorem2, {"quick": QUICK, "paper": PAPER}, configs=configs)
