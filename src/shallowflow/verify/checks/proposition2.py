"""Proposition 2: groups of size n^β give a rate of order n^(−(1−β/2)) (SPEC §4)."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import inits
from shallowflow.data import paper_labels
from shallowflow.plots import save_figure
from shallowflow.stats.fits import loglog_slope
from shallowflow.theory import closed_form as cf
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
)
from shallowflow.verify.ledger import Check, CheckResult


def _group_rate(n: int, beta: float, seed: int, level: float, t_grid: np.ndarray):
    """Exact late rate −d/dt log L (closed form) of a group initialisation with
    p = n^{1−β} groups (size ≍ n^β), unit norms; and the closed-form asymptotic rate."""
    p = max(2, int(round(n ** (1.0 - beta))))
    with jax.enable_x64(True):
        key = jax.random.key(seed)
        y = paper_labels(jax.random.fold_in(key, 1), n, jnp.float64)
        a, u, owner = inits.group_state(jax.random.fold_in(key, 2), y, p, n, jnp.float64)
    y, a, u, owner = (np.asarray(x) for x in (y, a, u, owner))
    groups = [np.flatnonzero(owner == j) for j in range(p)]
    u0 = u[owner, np.arange(n)]
    norms = np.ones(n)
    loss = cf.group_loss_curve(y, norms, groups, a, u0, t_grid)
    target = level * loss[0]
    k = int(np.argmax(loss <= target))
    if loss[k] > target or k == 0:
        raise RuntimeError(f"loss did not reach {level:g}·L(0) on the time grid (n={n})")
    rate = -math.log(loss[k] / loss[k - 1]) / (t_grid[k] - t_grid[k - 1])
    pred = min(
        cf.asymptotic_rate(
            float(np.linalg.norm(y[g])),
            1.0,
            n,
            (a[j] ** 2 - float(u0[g] @ u0[g])) / p,
            aligned=g.size == 1,
        )
        for j, g in enumerate(groups)
        if g.size
    )
    return rate, pred, p


def proposition2(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Proposition 2: groups of size ≍ n^β give a rate ≍ n^{−(1−β/2)}."""
    predict = p.get("predict", cf.rate_exponent_prediction)
    ns = np.array(p["ns"], float)
    rows, ok = [], True
    curves = {}
    for beta in p["betas"]:
        t_grid = np.geomspace(1e-3, p["t_max_over_n"] * ns.max(), p["t_points"])
        t_grid = np.concatenate([[0.0], t_grid])
        got = [_group_rate(int(n), beta, p.get("seed", 0), p["level"], t_grid) for n in ns]
        rates, preds = np.array([g[0] for g in got]), np.array([g[1] for g in got])
        fitted, fitted_cf = loglog_slope(ns, rates), loglog_slope(ns, preds)
        expected = float(predict(beta))
        row_ok = abs(fitted - expected) <= p["tol"] and abs(fitted_cf - expected) <= p["tol"]
        ok &= row_ok
        curves[beta] = rates
        rows.append(
            {
                "beta": beta,
                "p": [g[2] for g in got],
                "rates": rates.tolist(),
                "closed_form_rates": preds.tolist(),
                "fitted": fitted,
                "fitted_closed_form": fitted_cf,
                "predicted": expected,
                "ok": row_ok,
            }
        )
    numbers = {"ns": ns.astype(int).tolist(), "tol": p["tol"], "level": p["level"], "rows": rows}

    def draw(ax):
        for r in rows:
            ax[0].loglog(ns, r["rates"], "o-", label=f"β={r['beta']:g}: {r['fitted']:.3f}")
            ax[0].loglog(ns, r["rates"][0] * (ns / ns[0]) ** r["predicted"], "k:", lw=0.8)
        ax[0].set(xlabel="n", ylabel="late rate −d log L/dt", title="Proposition 2 (exact flow)")
        ax[0].legend()

    fig = save_figure(fig_dir, "proposition2", draw)
    summ = "; ".join(f"β={r['beta']:g}: {r['fitted']:.3f} vs {r['predicted']:.3f}" for r in rows)
    return result(
        "proposition2",
        "orthogonal data, group initialisation with groups of size ≍ n^β: the asymptotic rate "
        "is ≍ n^{−(1−β/2)}, from 1/n (β = 0) to 1/√n (β = 1) (SPEC §4)",
        f"log-log slope of the exact flow's rate at L = {p['level']:g}·L(0) (closed form, unit "
        f"norms, p = n^(1−β) groups) and of the closed-form asymptotic rate, over n = "
        f"{ns.astype(int).tolist()}, within ±{p['tol']:g} of rate_exponent_prediction(β)",
        PASS if ok else FAIL,
        numbers,
        fig,
        summ,
    )


CHECK = Check(
    "proposition2",
    proposition2,
    {
        "quick": dict(
            betas=(0.0, 0.5, 1.0),
            ns=(64, 256, 1024),
            level=1e-40,
            t_max_over_n=1e3,
            t_points=3000,
            tol=0.1,
        ),
        "paper": dict(
            betas=(0.0, 0.25, 0.5, 0.75, 1.0),
            ns=(256, 1024, 4096, 16384),
            level=1e-40,
            t_max_over_n=1e3,
            t_points=6000,
            tol=0.1,
        ),
    },
)
