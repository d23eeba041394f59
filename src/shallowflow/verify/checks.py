"""The paper's claims as checks (SPEC §1–§5): each states a numerical criterion.

Every check is ``check(params, fig_dir) -> CheckResult``; the parameters of a preset
live in :data:`CHECKS`. Parameters also carry the knobs a test uses to plant a
violation (a wrong formula, a wrong prediction, a tolerance that cannot hold), so
that every check is seen to FAIL when its claim is false.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import inits
from shallowflow.config import SimConfig, make_config
from shallowflow.data import paper_labels, sphere
from shallowflow.engine import simulate, simulate_many
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, vector_field
from shallowflow.observables import coverage
from shallowflow.plots import save_figure
from shallowflow.results import SimResult
from shallowflow.solvers.common import Outcome
from shallowflow.start import UserArrays, make_run
from shallowflow.stats.fits import bootstrap_slopes
from shallowflow.stats.fits import loglog_slope as _slope
from shallowflow.theory import closed_form as cf
from shallowflow.theory.datacheck import d_needed
from shallowflow.theory.width import width
from shallowflow.verify.ledger import Check, CheckResult, Verdict

P = Mapping[str, Any]
PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE


# ---------------------------------------------------------------------------
# Helpers


_RESULTS: dict[SimConfig, SimResult] = {}


def prefetch(cfgs: list[SimConfig]) -> None:
    """Simulate every configuration not yet simulated, together: cells of one
    compiled bucket share calls (:func:`shallowflow.engine.simulate_many`)."""
    todo = list(dict.fromkeys(c for c in cfgs if c not in _RESULTS))
    for cfg, res in zip(todo, simulate_many(todo), strict=True):
        _RESULTS[cfg] = res


def _sim(cfg: SimConfig) -> SimResult:
    """Simulate once per configuration: checks sharing a configuration share the runs."""
    if cfg not in _RESULTS:
        prefetch([cfg])
    return _RESULTS[cfg]


def _sim_user(cfg: SimConfig, user: UserArrays) -> SimResult:
    return simulate(cfg, user)


def _starts(cfg: SimConfig, res: SimResult):
    """θ(0) and data of every run of ``res``, redrawn from the engine's keys (one per
    run, split from ``cfg.run.seed``); checked against the engine's recorded L(0)."""
    with jax.enable_x64(cfg.run.x64):
        keys = jax.random.split(jax.random.key(cfg.run.seed), cfg.run.runs)
        starts = jax.device_get(jax.vmap(lambda k: make_run(k, cfg))(keys))
    y = np.asarray(starts.prob.y)
    a, v, z = (np.asarray(x) for x in (starts.state.a, starts.state.v, starts.prob.z))
    pre = v * z[:, None, :] if cfg.run.geometry == "diagonal" else v @ np.swapaxes(z, 1, 2)
    loss0 = 0.5 * np.mean((y - np.einsum("rj,rji->ri", a, np.maximum(pre, 0)) / a.shape[1]) ** 2, 1)
    if not np.allclose(loss0, res.init["loss0"], rtol=1e-4):
        raise RuntimeError("redrawn starts disagree with the engine (its key scheme changed?)")
    return starts


def _result(name: str, claim: str, criterion: str, verdict: Verdict, numbers: dict, fig, summ):
    return CheckResult(name, claim, criterion, verdict, numbers, fig, summ)


def _all(*verdicts: Verdict) -> Verdict:
    if FAIL in verdicts:
        return FAIL
    return INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


# ---------------------------------------------------------------------------
# Lemma 1: balance


def _lemma1_flow_cfg(p: P) -> SimConfig:
    return make_config(
        n=p["n"],
        d=p["n"],
        data="orthogonal",
        init="asymmetric",
        solver="flow",
        x64=True,
        rtol=p["rtol"],
        atol=p["atol"],
        dtmin=p["dtmin"],
        runs=p["runs"],
        keep_state=True,
        seed=p.get("seed", 0),
    )


def _gd_cfg(p: P, lr: float) -> SimConfig:
    return make_config(
        n=p["n"],
        d=p["n"],
        data="orthogonal",
        init="asymmetric",
        solver="gd",
        lr=lr,
        x64=True,
        runs=p["runs"],
        horizon=float(p["gd_horizon"]),
        stop_loss=0.0,
        seed=p.get("seed", 0),
    )


def lemma1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Lemma 1: a_j² − ‖w_j‖² is conserved by the flow; signs of a_j are fixed under
    Assumption 1; under GD the drift is a discretisation error, O(η) at fixed time."""
    cfg = _lemma1_flow_cfg(p)
    res = _sim(cfg)
    drift = float(np.max(np.where(res.valid, res.records["balance_drift_rel"], 0.0)))
    a0 = np.asarray(_starts(cfg, res).state.a)
    signs_kept = bool(np.all(np.sign(res.states["a"]) == np.sign(a0)))
    a1 = bool(np.all(res.init["assumption1"]))
    etas = [float(e) for e in p["etas"]]
    gd_drift = []
    for eta in etas:
        r = _sim(_gd_cfg(p, eta))
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
    return _result(
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


# ---------------------------------------------------------------------------
# Width / coverage


@functools.lru_cache(maxsize=8)
def _coverage_fn(n: int, ps: tuple[int, ...], d: int):
    """Compiled: covered counts (trials, len(ps)) of n examples by the first p of max(ps)
    neurons (the unused neurons get a_j = 0, which covers nothing)."""
    geom, top = Geometry("dense"), max(ps)

    def one(k, sign_prob):
        kx, ky, kw, ka = jax.random.split(k, 4)
        prob = Problem(sphere(kx, n, d), paper_labels(ky, n))
        W = inits.uniform_w(kw, top, d)
        a = jnp.where(jax.random.uniform(ka, (top,)) < sign_prob, 1.0, -1.0)
        masks = jnp.arange(top)[None, :] < jnp.asarray(ps)[:, None]
        return jax.vmap(lambda m: coverage(geom, State(a * m, W), prob))(masks)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _coverage_trials(key, n: int, ps: tuple[int, ...], d: int, trials: int, sign_prob: float):
    keys = jax.random.split(key, trials)
    return np.asarray(_coverage_fn(n, ps, d)(keys, jnp.float32(sign_prob)))


def width_check(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Coverage: P(example uncovered) = (3/4)^p, P(all covered) ≥ 1 − n(3/4)^p, and the
    code's width p(n, ε) = ⌊log(n/ε)/log(4/3)⌋ + 1 is the least p with n(3/4)^p < ε."""
    n, d, trials, z = p["n"], p["d"], p["trials"], p["z"]
    width_fn = p.get("width_fn", width)
    key = jax.random.key(p.get("seed", 0))
    counts = _coverage_trials(key, n, tuple(p["ps"]), d, trials, p.get("sign_prob", 0.5))
    rows, ok = [], True
    for k, pw in enumerate(p["ps"]):
        all_cov, unc = float(np.mean(counts[:, k] == n)), 1.0 - counts[:, k] / n
        bound = max(0.0, 1.0 - n * 0.75**pw)
        se = math.sqrt(max(all_cov * (1 - all_cov), 1.0 / trials) / trials)
        f_unc, se_unc = float(unc.mean()), float(unc.std() / math.sqrt(trials)) + 1e-12
        exact = 0.75**pw
        row_ok = all_cov >= bound - z * se and abs(f_unc - exact) <= z * se_unc + 0.5 / (n * trials)
        ok &= row_ok
        rows.append(
            {
                "p": pw,
                "P_all_covered": all_cov,
                "bound": bound,
                "se": se,
                "P_uncovered": f_unc,
                "(3/4)^p": exact,
                "ok": row_ok,
            }
        )
    grid = [(nn, e) for nn in (10, 100, 1000, 10**4, 10**6) for e in (0.01, 0.05, 0.1, 0.5)]
    bad = []
    for nn, e in grid:
        pw = width_fn(nn, e)
        formula = math.floor(math.log(nn / e) / math.log(4 / 3)) + 1
        least = nn * 0.75**pw < e and nn * 0.75 ** (pw - 1) >= e
        if pw != formula or not least:
            bad.append({"n": nn, "eps": e, "p": pw, "formula": formula})
    verdict = PASS if ok and not bad else FAIL
    numbers = {
        "n": n,
        "d": d,
        "trials": trials,
        "z": z,
        "rows": rows,
        "width_grid_size": len(grid),
        "width_mismatches": bad,
    }

    def draw(ax):
        ps = [r["p"] for r in rows]
        ax[0].errorbar(
            ps,
            [r["P_all_covered"] for r in rows],
            [z * r["se"] for r in rows],
            fmt="o",
            label="empirical P(all covered)",
        )
        ax[0].plot(ps, [r["bound"] for r in rows], "k--", label="1 − n(3/4)^p")
        ax[0].axvline(width(n, 0.05), color="C2", ls=":", label="p(n, 0.05)")
        ax[0].set(xlabel="p", ylabel="probability", title=f"coverage, n = {n}")
        ax[0].legend()

    fig = save_figure(fig_dir, "width", draw)
    summ = ", ".join(f"p={r['p']}: {r['P_all_covered']:.3f}≥{r['bound']:.3f}" for r in rows)
    summ += f"; p(n,ε) formula mismatches: {len(bad)}/{len(grid)}"
    return _result(
        "width",
        "each example is uncovered w.p. (3/4)^p, so all n are covered w.p. ≥ 1 − n(3/4)^p; "
        "p(n, ε) = ⌊log(n/ε)/log(4/3)⌋ + 1 suffices for ε (SPEC §2)",
        f"for p ∈ {list(p['ps'])}: P̂(all covered) ≥ 1 − n(3/4)^p − {z:g}·SE and "
        f"|P̂(uncovered) − (3/4)^p| ≤ {z:g}·SE ({trials} trials); width(n, ε) equals the "
        "formula and is the least p with n(3/4)^p < ε on a grid of (n, ε)",
        verdict,
        numbers,
        fig,
        summ,
    )


# ---------------------------------------------------------------------------
# Theorem 1


def _theorem1_cfgs(p: P) -> list[SimConfig]:
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
    for cfg in _theorem1_cfgs(p):
        n, d = cfg.data.n, cfg.data.d
        res = _sim(cfg)
        conv = res.final["status"] == Outcome.CONVERGED
        ok = res.valid & (res.records["min_fit"] > 0)
        run_min = np.where(ok, res.records["thm1_const"], np.inf).min(axis=1)
        fin = res.final["thm1_const"]
        run_min = np.minimum(run_min, np.where(res.final["min_fit"] > 0, fin, np.inf))
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
    slope = _slope(ns, mins) if np.all(mins > 0) and len(ns) > 1 else float("nan")
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
    return _result(
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


# ---------------------------------------------------------------------------
# Orthogonal-data bounds


def orthogonal_bounds(p: P, fig_dir: Path | None = None) -> CheckResult:
    """μ_low ≤ μ ≤ μ_upp at every recorded time on orthogonal data (GD and flow)."""
    lo_f, up_f, tol = p.get("low_factor", 1.0), p.get("upp_factor", 1.0), p["bound_tol"]
    out, ok, a1 = {}, True, True
    for label, cfg in (("flow", _lemma1_flow_cfg(p)), ("gd", _gd_cfg(p, 1.0))):
        res = _sim(cfg)
        # the bounds hold at every θ: they bound the state quantity p‖∇L‖²/L
        mu, lo, up = (res.records[k] for k in ("mu_state", "mu_low", "mu_upp"))
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
            ax[k].semilogy(t, lo_f * res.records["mu_low"][0][v], "--", label="μ_low")
            ax[k].semilogy(t, up_f * res.records["mu_upp"][0][v], "--", label="μ_upp")
            ax[k].set(xlabel="t", title=f"{lab}, run 0")
            ax[k].legend()

    fig = save_figure(fig_dir, "orthogonal_bounds", draw, ncols=2)
    summ = "; ".join(
        f"{k}: min μ/μ_low {v['min_mu_over_low']:.3g}, max μ/μ_upp {v['max_mu_over_upp']:.3g}"
        for k, v in out.items()
    )
    return _result(
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


# ---------------------------------------------------------------------------
# Proposition 2: rate exponents of group initialisations


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
        fitted, fitted_cf = _slope(ns, rates), _slope(ns, preds)
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
    return _result(
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


# ---------------------------------------------------------------------------
# Theorem 2: exact group flow, staircase


def _theorem2_cfgs(p: P) -> list[SimConfig]:
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
    (cfg,) = _theorem2_cfgs(p)
    res = _sim(cfg)
    starts = _starts(cfg, res)
    err = 0.0
    for r in range(cfg.run.runs):
        y, s = np.asarray(starts.prob.y[r]), np.asarray(starts.prob.z[r])
        v, a = np.asarray(starts.state.v[r]), np.asarray(starts.state.a[r])
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
    res = _sim_user(cfg, UserArrays(X, y, u, a))
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
    return _result(
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


# ---------------------------------------------------------------------------
# Conjecture 1: rate 1/√n on orthogonal data from a small random init


def _fig6_cfg(p: P, n: int, solver: str) -> SimConfig:
    extra = dict(x64=True, rtol=p["flow_rtol"], atol=p["flow_atol"]) if solver == "flow" else {}
    return make_config(
        n=n,
        d=p["d"],
        data="orthogonal",
        init=p.get("init", "asymmetric"),
        p=p.get("p"),
        w_scale=0.01,
        require_coverage=True,
        horizon_factor=10,
        stop_loss=1e-6 / (2 * n),
        runs=p["runs"],
        record=21,
        solver=solver,
        seed=p.get("seed", 0),
        **extra,
    )


def _boot_slope(ns: np.ndarray, samples: list[np.ndarray], reps: int, seed: int):
    """Slope of log(mean rate) vs log n and its 95% bootstrap CI over runs."""
    est = _slope(ns, np.array([s.mean() for s in samples]))
    boots = bootstrap_slopes(ns, samples, reps, np.random.default_rng(seed))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return est, float(lo), float(hi)


def conjecture1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Conjecture 1 (Fig. 6 protocol): μ(t_∞) ∝ n^{−1/2} on orthogonal data."""
    ns = np.array(p["ns"], float)
    tails, half = [], []
    for n in p["ns"]:
        res = _sim(_fig6_cfg(p, n, "gd"))
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
    slope5 = _slope(ns, np.array([h.mean() for h in half]))
    fns = np.array(p["flow_ns"], float)
    flow_tails = [_sim(_fig6_cfg(p, int(n), "flow")).final["mu_tail"] for n in p["flow_ns"]]
    flow_slope = _slope(fns, np.array([f.mean() for f in flow_tails])) if len(fns) > 1 else None
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
    return _result(
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


# ---------------------------------------------------------------------------
# Scaling: mean-field vs standard parametrisation


def _rk4(field, y0, dt: float, steps: int, every: int):
    """Classical RK4 with fixed step, saving every ``every`` steps."""

    def step(y, _):
        k1 = field(y)
        k2 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * dt * b, y, k1))
        k3 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * dt * b, y, k2))
        k4 = field(jax.tree_util.tree_map(lambda a, b: a + dt * b, y, k3))
        return jax.tree_util.tree_map(
            lambda a, b1, b2, b3, b4: a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4
        ), None

    def block(y, _):
        y, _ = jax.lax.scan(step, y, None, length=every)
        return y, y

    return jax.lax.scan(block, y0, None, length=steps // every)[1]


def scaling(p: P, fig_dir: Path | None = None) -> CheckResult:
    """SPEC §1: with θ̃(0) = θ(0)/√p, plain flow on L̃ gives θ̃(t) = θ(t)/√p."""
    n, d, pw = p["n"], p["d"], p["p"]
    geom = Geometry("dense")
    with jax.enable_x64(True):
        key = jax.random.key(p.get("seed", 0))
        kx, ky, kw, ka = jax.random.split(key, 4)
        X = sphere(kx, n, d, jnp.float64)
        y = paper_labels(ky, n, jnp.float64)
        W = inits.gaussian_w(kw, pw, d, 1.0, jnp.float64)
        a = jax.random.normal(ka, (pw,), jnp.float64)
        prob = Problem(X, y)
        c = float(p.get("scale", math.sqrt(pw)))

        def loss_std(th):
            h = jnp.maximum(th.v @ X.T, 0.0).T @ th.a
            return 0.5 * jnp.mean((y - h) ** 2)

        grad_std = jax.grad(loss_std)
        mf = jax.jit(
            lambda s: _rk4(
                lambda t: vector_field(geom, t, prob), s, p["dt"], p["steps"], p["every"]
            )
        )
        std = jax.jit(
            lambda s: _rk4(
                lambda t: jax.tree_util.tree_map(jnp.negative, grad_std(t)),
                s,
                p["dt"],
                p["steps"],
                p["every"],
            )
        )
        th = State(a, W)
        traj_mf = jax.device_get(mf(th))
        traj_std = jax.device_get(std(State(a / c, W / c)))

        def loss_mf(s):
            h = jnp.maximum(s.v @ X.T, 0.0).T @ s.a / pw
            return 0.5 * jnp.mean((y - h) ** 2)

        g = jax.grad(loss_mf)(th)
        f = vector_field(geom, th, prob)
        field_err = float(
            jnp.sqrt(sum(jnp.sum((fi + pw * gi) ** 2) for fi, gi in zip(f, g, strict=True)))
            / jnp.sqrt(sum(jnp.sum(fi**2) for fi in f))
        )
    num = np.sqrt(
        sum(
            np.sum((np.asarray(m) / c - np.asarray(s)) ** 2, axis=tuple(range(1, np.ndim(m))))
            for m, s in zip(traj_mf, traj_std, strict=True)
        )
    )
    den = np.sqrt(
        sum(np.sum((np.asarray(s)) ** 2, axis=tuple(range(1, np.ndim(s)))) for s in traj_std)
    )
    rel = num / den
    err = float(rel.max())
    times = p["dt"] * p["every"] * np.arange(1, rel.size + 1)
    ok = err <= p["tol"] and field_err <= p["tol"]
    numbers = {
        "n": n,
        "d": d,
        "p": pw,
        "scale": c,
        "dt": p["dt"],
        "T": float(times[-1]),
        "max_rel_err": err,
        "field_vs_autodiff_rel_err": field_err,
        "tol": p["tol"],
    }

    def draw(ax):
        ax[0].semilogy(times, np.maximum(rel, 1e-18), "o-")
        ax[0].axhline(p["tol"], color="k", ls="--")
        ax[0].set(xlabel="t", ylabel="‖θ/c − θ̃‖/‖θ̃‖", title=f"scaling, c = {c:.3g}")

    fig = save_figure(fig_dir, "scaling", draw)
    summ = f"max rel err {err:.2g} over t ≤ {times[-1]:g}; F vs −p∇L {field_err:.2g}"
    return _result(
        "scaling",
        "mean-field flow dθ/dt = −p∇L and plain flow dθ̃/dt = −∇L̃ with θ̃(0) = θ(0)/√p satisfy "
        "θ̃(t) = θ(t)/√p (SPEC §1)",
        f"RK4 (float64, dt = {p['dt']:g}) of both flows: max_t ‖θ(t)/√p − θ̃(t)‖/‖θ̃(t)‖ ≤ "
        f"{p['tol']:g}, and F = −p∇L (autodiff) to {p['tol']:g}",
        PASS if ok else FAIL,
        numbers,
        fig,
        summ,
    )


# ---------------------------------------------------------------------------
# Registry

_LEMMA1_Q = dict(
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
_LEMMA1_F = {**_LEMMA1_Q, "n": 200, "runs": 32}


def _lemma1_cfgs(p: P) -> list[SimConfig]:
    return [_lemma1_flow_cfg(p)] + [_gd_cfg(p, float(e)) for e in p["etas"]]


def _bounds_cfgs(p: P) -> list[SimConfig]:
    return [_lemma1_flow_cfg(p), _gd_cfg(p, 1.0)]


def _conjecture1_cfgs(p: P) -> list[SimConfig]:
    gd_cfgs = [_fig6_cfg(p, int(n), "gd") for n in p["ns"]]
    return gd_cfgs + [_fig6_cfg(p, int(n), "flow") for n in p["flow_ns"]]


CHECKS: tuple[Check, ...] = (
    Check("lemma1", lemma1, {"quick": _LEMMA1_Q, "full": _LEMMA1_F}, _lemma1_cfgs),
    Check(
        "width",
        width_check,
        {
            "quick": dict(n=50, d=10, ps=(10, 15, 20, 25, 30), trials=2000, z=4.0),
            "full": dict(n=200, d=20, ps=(15, 20, 25, 30, 35, 40), trials=20000, z=4.0),
        },
    ),
    Check(
        "theorem1",
        theorem1,
        {
            "quick": dict(
                ns=(50, 100, 200),
                d=10**9,
                eps=0.05,
                runs=16,
                record=100,
                alpha=0.05,
                min_slope=-0.2,
            ),
            "full": dict(
                ns=(100, 250, 500, 1000, 2000),
                d=10**9,
                eps=0.05,
                runs=64,
                record=200,
                alpha=0.05,
                min_slope=-0.2,
            ),
        },
        configs=_theorem1_cfgs,
    ),
    Check(
        "orthogonal_bounds",
        orthogonal_bounds,
        {
            "quick": {**_LEMMA1_Q, "bound_tol": 1e-9},
            "full": {**_LEMMA1_F, "bound_tol": 1e-9},
        },
        configs=_bounds_cfgs,
    ),
    Check(
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
            "full": dict(
                betas=(0.0, 0.25, 0.5, 0.75, 1.0),
                ns=(256, 1024, 4096, 16384),
                level=1e-40,
                t_max_over_n=1e3,
                t_points=6000,
                tol=0.1,
            ),
        },
    ),
    Check(
        "theorem2",
        theorem2,
        {
            "quick": dict(
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
            ),
            "full": dict(
                n_engine=64,
                runs=8,
                rtol=1e-12,
                atol=1e-14,
                record=100,
                horizon_factor=1.0,
                n_groups=8,
                group_size=16,
                norm=1.5,
                user_horizon=600.0,
                stop_loss=1e-10,
                tol=1e-5,
                magnitudes=(1.0, 2.0),
                stair_ns=(1e4, 1e8, 1e12, 1e18, 1e30),
                stair_tol=0.05,
                width_tol=0.25,
            ),
        },
        configs=_theorem2_cfgs,
    ),
    Check(
        "conjecture1",
        conjecture1,
        {
            "quick": dict(
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
            ),
            "full": dict(
                ns=(1000, 1200, 1400, 1600, 1800, 2000),
                d=2000,
                runs=128,
                flow_ns=(1000, 1400, 2000),
                flow_rtol=1e-7,
                flow_atol=1e-10,
                boot=1000,
                target=-0.5,
                band=0.15,
                max_ci_width=0.5,
            ),
        },
        configs=_conjecture1_cfgs,
    ),
    Check(
        "scaling",
        scaling,
        {
            "quick": dict(n=12, d=6, p=8, dt=1e-3, steps=4000, every=400, tol=1e-8),
            "full": dict(n=40, d=20, p=32, dt=1e-3, steps=20000, every=1000, tol=1e-8),
        },
    ),
)
