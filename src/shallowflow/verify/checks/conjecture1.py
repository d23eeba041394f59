"""Conjecture 1: the rate on orthogonal data is of order 1/√n (Fig. 6 protocol), judged
on the Conjecture-1 study's quick preset (:mod:`shallowflow.experiments.studies.conjecture1`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shallowflow.config import SimConfig
from shallowflow.experiments.batch import cell_table
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.experiments.runner import with_knobs
from shallowflow.experiments.studies import conjecture1 as study
from shallowflow.experiments.studies.common import design_of, holds
from shallowflow.plots import save_figure
from shallowflow.report.format import ci, fmt
from shallowflow.verify.checks.common import FAIL, INCONCLUSIVE, PASS, P, prefetch, result, sim
from shallowflow.verify.ledger import Check, CheckResult


def configs(p: P) -> list[SimConfig]:
    """The study's cells (simulated together with the other checks' by the ledger)."""
    return [cell_config(c) for c in study.cells(p["design"])]


def _runs(p: P) -> pd.DataFrame:
    """The study's runs table, as the runner would write it, from the ledger's runs
    (simulated together, as the ledger does, when the check is called alone)."""
    cells = study.cells(p["design"])
    cfgs = [cell_config(knobs) for knobs in cells]
    prefetch(cfgs)
    tables = [
        with_knobs(cell_table(cfg, sim(cfg)), Cell(knobs))
        for knobs, cfg in zip(cells, cfgs, strict=True)
    ]
    return pd.concat(tables, ignore_index=True)


def conjecture1(p: P, fig_dir: Path | None = None) -> CheckResult:
    """Conjecture 1: the asymptotic rate μ_∞ ∝ n^{−1/2} under the Fig. 6 protocol, read
    from the tangent kernel's rate at 10⁻¹⁴/(2n) (the study's key exponent)."""
    table, summary = study.summarise(_runs(p), p["design"])
    lines, numbers = study.verdict(table, summary)
    key = numbers["key"]
    target = p["target"]
    b_lo, b_hi = p.get("bounds", (-1.0, -0.5))
    # Proposition 1 proves the rate lies between orders 1/n and 1/√n: an exponent whose
    # interval holds −1/2 supports the conjecture (PASS); one inside the proven range but
    # away from −1/2 leaves it open (INCONCLUSIVE, with the exponent the data support);
    # an interval wholly outside the proven range contradicts the theory (FAIL).
    if holds(key, target):
        verdict = PASS
    elif key["ci_high"] < b_lo or key["ci_low"] > b_hi:
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    design = design_of(study.PRESETS, p["design"])
    fig = save_figure(fig_dir, "conjecture1", lambda ax: _draw(ax, table, summary))
    summ = (
        f"μ_∞ ∝ n^{ci(key, key='slope')} under the "
        f"Fig. 6 protocol (GD η = 1, W × 0.01, d = {design.d}, n = {min(design.ns)}–"
        f"{max(design.ns)}): the data support {numbers['supported']}; μ(t_∞) at the paper's "
        f"stop {fmt(numbers['paper_stop']['slope'])}"
    )
    numbers = {
        "exponent_mu_inf": key["slope"],
        "ci95": [key["ci_low"], key["ci_high"]],
        "supported": numbers["supported"],
        "exponent_mu_tail_paper_stop": numbers["paper_stop"]["slope"],
        "exponent_mu_tail_deepest": numbers["deepest"]["slope"],
        "target": target,
        "proven_range": [b_lo, b_hi],
        "ns": list(design.ns),
        "d": design.d,
        "runs_per_n": design.runs,
        "answer": lines,
    }
    return result(
        "conjecture1",
        "orthogonal data, small random init (Fig. 6 protocol): the asymptotic rate is of "
        "order 1/√n (Conjecture 1)",
        f"the Conjecture-1 study's exponent of μ_∞ = 2λ_min(K) at L = 10⁻¹⁴/(2n) in n, 95% "
        f"bootstrap interval: holds {target:g} → PASS; inside the proven range "
        f"[{b_lo:g}, {b_hi:g}] but away from {target:g} → INCONCLUSIVE, stating the exponent "
        "the data support; wholly outside it → FAIL",
        verdict,
        numbers,
        fig,
        summ,
    )


def _draw(ax, table: pd.DataFrame, summary: dict) -> None:
    """μ(t_∞) at the paper's stop and μ_∞ at the end against n, with n^−1/2 and n^−1."""
    means = pd.DataFrame(summary["means"])
    n = means["n"].to_numpy(float)
    ax[0].loglog(n, means["mu_tail_paper"], "o-", ms=4, label="μ(t_∞) at 1e-6/(2n)")
    ax[0].loglog(n, means["mu_kernel"], "s-", ms=4, label="μ_∞ (kernel) at 1e-14/(2n)")
    mid = means["mu_kernel"].to_numpy()[len(n) // 2]
    for ref, ls in ((-0.5, "--"), (-1.0, ":")):
        ax[0].loglog(n, mid * (n / n[len(n) // 2]) ** ref, "k", ls=ls, lw=0.8, label=f"n^{ref:g}")
    ax[0].set(xlabel="n", ylabel="rate", title="Conjecture 1 (Fig. 6 protocol)")
    ax[0].legend(fontsize=7)


CHECK = Check(
    "conjecture1",
    conjecture1,
    {
        "quick": dict(design="quick", target=-0.5),
        "paper": dict(design="paper", target=-0.5),
    },
    configs=configs,
)
