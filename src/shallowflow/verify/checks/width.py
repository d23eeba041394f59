"""The width: coverage of the examples by random neurons, and p(n, ε) (SPEC §2)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import inits
from shallowflow.data import paper_labels, sphere
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.observables import coverage
from shallowflow.plots import save_figure
from shallowflow.theory.width import width
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
)
from shallowflow.verify.ledger import Check, CheckResult


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
    return result(
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


CHECK = Check(
    "width",
    width_check,
    {
        "quick": dict(n=50, d=10, ps=(10, 15, 20, 25, 30), trials=2000, z=4.0),
        "paper": dict(n=200, d=20, ps=(15, 20, 25, 30, 35, 40), trials=20000, z=4.0),
    },
)
