"""Kernels — is the trained network better than a kernel or a linear model here?

One reviewer asked how the networks compare with kernel methods and linear models in
this high-dimensional, few-sample regime; another what the mean-field scaling changes
against the NTK regime. This study trains the paper's network and fits three closed-form
baselines (:mod:`shallowflow.theory.baselines`) on the *same* splits, and compares their
test losses ``(1/(2N)) Σ_k (y_k − f(x_k))²`` on N ≥ 1000 held-out points of the same law
and labelling (SPEC §6):

- **network**: sphere data at fixed d, the paper's labels law replaced by the labelling
  below, the asymmetric initialisation, p = p(n, 0.05), GD with η = 1 to the paper's
  stop (L < 1/(2n) tested at steps 0..T−1, horizon T(n, p); SPEC §5); its test loss is
  the run's ``final_test_loss`` (at the stop, so its training loss is about 1/(2n), not 0);
- **linear**: the minimum-norm linear predictor X⁺y (an interpolator for n ≤ d, least
  squares for n > d);
- **ntk**: ridgeless regression with the tangent kernel of both layers at θ(0), the
  network's output at θ(0) kept (the lazy limit of the same flow);
- **rf**: random features, the first layer frozen at θ(0) and the minimum-norm second
  layer (an interpolator where p(n, 0.05) ≥ n, least squares where p < n, most n here);
- **null**: f = 0, the reference for "no signal" (½·mean y²).

Labellings: a teacher network y = (1/√k) Σ_l a*_l σ(⟨w*_l, x⟩) of width k = 1, 2, 4
(``labels="teacher"``), and the paper's random labels ±U[1, 2] as a no-signal control,
on which no predictor can beat the null one. The n grid spans the Fig. 3 fall at this d
(n/d = 0.5 … 6, quick; 0.5 … 10, paper). The labellings at one n share their data and
θ(0) (``draws``), so every comparison is paired run by run.

Each run's data, test set and θ(0) are drawn again from its cell's seed and run index
exactly as the engine drew them (:func:`splits`; checked against the run's recorded
L(θ(0))), and the baselines are computed there in float64 (:func:`with_baselines`).
Per (labelling, n/d): every predictor's mean test loss and the ratios network / best
baseline and best predictor / null, each with a 95% paired bootstrap interval (the runs
resampled jointly, ``boot`` replicates from an explicit seed); the networks' success
fraction with its Wilson interval, and their diverged runs (kept in the means).

Cost, measured on the 2-core CPU while loaded (load 5–7): quick (20 cells, 320 runs, 8
compiled programs) 2 min 30 s with a cold compilation cache, 67 s warm. Paper (28 cells,
896 runs at d = 40, n up to 400): one cell of 32 runs at n = 400 takes 12 s with its
compilation, its redrawn splits 1–3 s and its baselines 0.35 s per run, so about 3 min of
networks and 3 min of baselines: estimated 5–8 min.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.experiments.protocol import paper_cell
from shallowflow.experiments.studies import measures as mt
from shallowflow.experiments.studies.common import design_of, first, holds, select
from shallowflow.geometry import to_dense
from shallowflow.plots import design_ticks
from shallowflow.report.format import ci, fmt
from shallowflow.start import make_run
from shallowflow.stats.resample import bootstrap_means, percentile_interval, wilson
from shallowflow.theory import baselines
from shallowflow.theory.baselines import Split

NAME = "kernels"
TITLE = "Kernels — the trained network against linear, NTK and random-feature predictors"
QUESTION = (
    "In this regime, is the trained network better than a kernel method or a linear model: "
    "how do its test losses compare with the minimum-norm linear predictor, the NTK "
    "(lazy) ridgeless regression and random features on the same data?"
)
ASKED_BY = (
    "two public reviews of the paper (NeurIPS 2025, OpenReview): the third, rated 5 (its "
    "question 5: how do the networks compare with kernel methods and linear models?), and "
    "the fourth, rated 4 (what does the mean-field scaling change against the NTK regime?)"
)
TABLE_TITLE = "Test losses"
BASELINES = ("linear", "ntk", "rf")
NAMES = {
    "network": "the trained network",
    "linear": "the min-norm linear predictor",
    "ntk": "NTK ridgeless regression",
    "rf": "random features",
    "null": "predicting 0",
}
RANDOM = "random"  # the paper's labels: the no-signal control


@dataclass(frozen=True)
class Design:
    """One preset: the dimension d, the ratios n/d, the runs per cell, the held-out
    points, the teachers' widths and the bootstrap replicates."""

    d: int
    ratios: tuple[float, ...]
    runs: int
    test_n: int = 1000
    teachers: tuple[int, ...] = (1, 2, 4)
    boot: int = 400


PRESETS = {
    "quick": Design(d=20, ratios=(0.5, 1.0, 2.0, 4.0, 6.0), runs=16),
    "paper": Design(d=40, ratios=(0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0), runs=32),
}


def labellings(design: Design) -> dict[str, dict[str, Any]]:
    """tag → the label knobs: ``teacher k`` per width, and ``random`` (the paper's)."""
    out = {f"teacher {k}": {"labels": "teacher", "teacher_width": k} for k in design.teachers}
    return out | {RANDOM: {"labels": "paper"}}


def sizes(design: Design) -> list[int]:
    """The n grid: round(ratio·d), at least 2."""
    return sorted({max(2, round(r * design.d)) for r in design.ratios})


def cells(design: Design | str, seed: int = 0) -> list[dict[str, Any]]:
    """Every labelling at every n, float64, with ``test_n`` held-out points; the
    labellings at one n share their data and θ(0) (``draws``)."""
    design = design_of(PRESETS, design)
    return [
        paper_cell(NAME, "gd", seed, preset="paper", n=n, d=design.d, runs=design.runs)
        | {"test_n": design.test_n, "x64": True, "tag": tag, "draws": f"n={n}"}
        | knobs
        for n in sizes(design)
        for tag, knobs in labellings(design).items()
    ]


# --------------------------------------------------------------------------- simulation


def splits(cell: Mapping[str, Any], runs: Iterable[int]) -> tuple[list[Split], np.ndarray]:
    """The training and test sets and θ(0) of the cell's ``runs``, drawn again from the
    engine's keys (run r: ``fold_in(key(cell seed), r)``), and each run's L(θ(0)) on them."""
    cfg = cell_config(cell)
    index = np.asarray(list(runs), np.int32)
    with jax.enable_x64(cfg.run.x64):
        base = jax.random.key(cfg.run.seed)
        st = jax.device_get(jax.vmap(lambda r: make_run(jax.random.fold_in(base, r), cfg))(index))
    if st.held is None:
        raise ValueError("test_n: the kernels study needs held-out points (test_n > 0)")
    out, loss0 = [], []
    for i in range(index.size):
        z = np.asarray(to_dense(cfg.run.geometry, st.prob.z[i], cfg.data.n), np.float64)
        zt, ct, yt = (np.asarray(x[i], np.float64) for x in (st.held.z, st.held.c, st.held.y))
        a, v = np.asarray(st.state.a[i], np.float64), np.asarray(st.state.v[i], np.float64)
        split = Split(z, np.asarray(st.prob.y[i], np.float64), zt, ct, yt, a, v)
        loss0.append(baselines.half_mse(split.y, a @ baselines.relu(v @ z.T) / a.size))
        out.append(split)
    return out, np.asarray(loss0)


def with_baselines(runs: pd.DataFrame, cells_: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The runs table with every baseline's ``train_loss_<name>`` and ``test_loss_<name>``
    (:func:`shallowflow.theory.baselines.losses`) on each run's own splits."""
    by_id = {Cell(c).cell_id: c for c in cells_}
    parts = []
    for cell_id, group in runs.groupby("cell_id", sort=False):
        found, loss0 = splits(by_id[str(cell_id)], group["run"])
        if not np.allclose(loss0, group["loss0"], rtol=1e-9, atol=0):
            raise RuntimeError(
                f"cell {cell_id}: the redrawn starts disagree with the engine's L(θ(0)) "
                "(its key scheme changed?)"
            )
        rows = pd.DataFrame([baselines.losses(s) for s in found], index=group.index)
        parts.append(pd.concat([group, rows], axis=1))
    return pd.concat(parts).sort_index()


def simulate(
    design: Design | str,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """The networks through the resumable runner (stored under ``out/network/``: reused
    with ``resume``, refused without it or ``overwrite``), then the baselines per run."""
    grid = cells(design)
    runs = run_cells(
        grid, Path(out) / "network", resume=resume, overwrite=overwrite, progress=progress
    )
    return with_baselines(runs, grid)


# --------------------------------------------------------------------------- analysis

PREDICTORS = ("network", *BASELINES, "null")


def _losses(group: pd.DataFrame, kind: str = "test") -> dict[str, np.ndarray]:
    """Each predictor's per-run losses (``kind``: test or train), runs in order."""
    net = "final_test_loss" if kind == "test" else "final_loss"
    cols = {"network": net} | {b: f"{kind}_loss_{b}" for b in (*BASELINES, "null")}
    return {name: group[col].to_numpy(float) for name, col in cols.items()}


def _rows(tag: str, n: int, d: int, group: pd.DataFrame, boot: int) -> list[dict[str, Any]]:
    """The table's rows of one (labelling, n): test and train losses per predictor, the
    network's success fraction and diverged runs, and the ratios network / best baseline
    and best predictor / null, every interval from one paired bootstrap over runs."""
    key = {"tag": tag, "n": n, "d": d, "n_over_d": n / d, "runs": int(len(group))}
    rows = []
    test = _losses(group)
    for measure, values in (("test_loss", test), ("train_loss", _losses(group, "train"))):
        reps = bootstrap_means(values, boot)
        for name in PREDICTORS:
            est = percentile_interval(values[name].mean(), reps[name])
            rows.append(key | {"predictor": name, "measure": measure} | est)
    ok = group["success"].to_numpy(bool)
    rows.append(key | {"predictor": "network", "measure": "success"} | wilson(ok))
    diverged = float(np.sum(group["outcome"].to_numpy() == "diverged"))
    rows.append(
        key | {"predictor": "network", "measure": "diverged"}
        | {"value": diverged, "ci_low": diverged, "ci_high": diverged}
    )  # fmt: skip
    reps = bootstrap_means(test, boot)
    best = min(BASELINES, key=lambda b: float(test[b].mean()))
    top = min(PREDICTORS[:-1], key=lambda b: float(test[b].mean()))
    for num, den in (("network", best), (top, "null")):
        est = percentile_interval(test[num].mean() / test[den].mean(), reps[num] / reps[den])
        rows.append(key | {"predictor": f"{num}/{den}", "measure": "ratio"} | est)
    return rows


def summarise(runs: pd.DataFrame, design: Design | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table (labels, n, predictor, measure, value, interval) and the summary."""
    design = design_of(PRESETS, design)
    rows = []
    for tag, n in sorted(set(zip(runs["tag"], runs["n"], strict=True))):
        group = runs.loc[(runs["tag"] == tag) & (runs["n"] == n)].sort_values(by="run")
        rows += _rows(str(tag), int(n), design.d, group, design.boot)
    table = pd.DataFrame(rows)
    summary = {"design": design.__dict__ | {"ns": sizes(design)}, "runs": int(len(runs))}
    return table, summary


# --------------------------------------------------------------------------- verdict


def _ns(table: pd.DataFrame, tag: str) -> list[int]:
    """The sizes n of labelling ``tag``, in order."""
    return sorted(int(n) for n in table.loc[table["tag"] == tag, "n"].unique())


def _ratio(table: pd.DataFrame, tag: str, n: int, den: str | None = None) -> dict[str, Any]:
    """The ratio row network / best baseline (``den`` None) or best predictor / null."""
    sel = select(table, tag=tag, n=n, measure="ratio")
    names = [str(x) for x in sel["predictor"]]
    want = [x.startswith("network/") if den is None else x.endswith("/" + den) for x in names]
    return dict(sel.iloc[want.index(True)])


def _named(tag: str) -> str:
    return "random labels" if tag == RANDOM else tag.replace("teacher ", "teacher of width ")


def compare(ratio: dict[str, Any]) -> str:
    """The ratio network / best baseline in words: better, worse or not told apart."""
    r, lo, hi = ratio["value"], ratio["ci_low"], ratio["ci_high"]
    if hi < 1:
        return f"the trained network is {fmt(1 / r)}× [{fmt(1 / hi)}, {fmt(1 / lo)}] better"
    if lo > 1:
        return f"the trained network is {fmt(r)}× [{fmt(lo)}, {fmt(hi)}] worse"
    return f"the two are not told apart (ratio {ci(ratio)})"


def _headline_n(table: pd.DataFrame, tag: str) -> int:
    """The largest n at which most networks reach the paper's stop (else the smallest
    n): the regime the paper trains its network in."""
    ns = _ns(table, tag)
    success = [first(table, tag=tag, n=n, measure="success") for n in ns]
    ok = [n for n, s in zip(ns, success, strict=True) if s is not None and s["value"] >= 0.5]
    return max(ok) if ok else ns[0]


def _comparison(table: pd.DataFrame, tag: str, n: int) -> tuple[str, dict[str, Any]]:
    """The network's test loss against the best baseline's at (labelling, n), in words."""
    ratio = _ratio(table, tag, n)
    best = ratio["predictor"].split("/")[1]
    net = first(table, tag=tag, n=n, measure="test_loss", predictor="network") or {}
    base = first(table, tag=tag, n=n, measure="test_loss", predictor=best) or {}
    text = f"network test loss = {ci(net)} against {NAMES[best]} {ci(base)}: {compare(ratio)}"
    return text, {"network": net, "baseline": best, "base": base, "ratio": ratio}


def _per_n(table: pd.DataFrame, tag: str, d: int) -> tuple[str, dict[int, str]]:
    """One labelling's line: the best predictor at each n/d and the ratio network/best
    baseline, with the networks' success fraction (and diverged runs, if any)."""
    parts, best = [], {}
    for n in _ns(table, tag):
        rows = select(table, tag=tag, n=n)
        losses = rows.loc[(rows["measure"] == "test_loss") & (rows["predictor"] != "null")]
        top = dict(losses.iloc[int(np.argmin(losses["value"].to_numpy(float)))])
        best[n] = str(top["predictor"])
        ratio = _ratio(table, tag, n)
        ok = first(table, tag=tag, n=n, measure="success") or {"value": math.nan}
        lost = (first(table, tag=tag, n=n, measure="diverged") or {"value": 0.0})["value"]
        parts.append(
            f"n/d = {fmt(n / d)}: best {best[n]} ({fmt(top['value'])}), "
            f"{ratio['predictor']} = {ci(ratio)}, converged {fmt(ok['value'], 2)}"
            + (f", {int(lost)} diverged" if lost else "")
        )
    return f"{_named(tag).capitalize()}: " + "; ".join(parts) + ".", best


def verdict(table: pd.DataFrame, summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The answer in lines (the first: the network against the best baseline for the
    first teacher, at the largest n/d where most networks converge) and its numbers."""
    design = summary["design"]
    tags = [t for t in dict.fromkeys(table["tag"]) if t != RANDOM]
    if not tags:
        return ["No teacher labelling in the table: add design.teachers to compare."], {}
    proto = (
        f"sphere data, d = {design['d']}, p = p(n, 0.05), GD η = 1 to the paper's stop, "
        f"{design['runs']} runs, {design['test_n']} test points"
    )
    n = _headline_n(table, tags[0])
    text, head = _comparison(table, tags[0], n)
    lines = [f"{_named(tags[0]).capitalize()}, n/d = {fmt(n / design['d'])} ({proto}): {text}."]
    numbers: dict[str, Any] = {"headline": {"tag": tags[0], "n": n} | head, "best": {}}
    for tag in tags:
        line, numbers["best"][tag] = _per_n(table, tag, design["d"])
        lines.append(line)
    if RANDOM in set(table["tag"]):
        line, numbers["signal"] = _control(table, design)
        lines.append(line)
    return lines + _caveats(table, tags[0], design), numbers


def _control(table: pd.DataFrame, design: dict[str, Any]) -> tuple[str, dict[int, bool]]:
    """Random labels: does any predictor beat predicting 0 (none can)?"""
    ns = _ns(table, RANDOM)
    rows = [_ratio(table, RANDOM, n, "null") for n in ns]
    signal = {n: bool(r["ci_high"] < 1) for n, r in zip(ns, rows, strict=True)}
    shown = "; ".join(
        f"n/d = {fmt(n / design['d'])}: {r['predictor']} = {ci(r)}"
        for n, r in zip(ns, rows, strict=True)
    )
    if any(signal.values()):
        found = ", ".join(str(n) for n, s in signal.items() if s)
        text = f"a predictor beats predicting 0 at n = {found}: the control fails ({shown})."
    else:
        text = f"no predictor beats predicting 0, as none can ({shown})."
    return f"Random labels (the paper's ±U[1, 2], no signal): {text}", signal


def _caveats(table: pd.DataFrame, tag: str, design: dict[str, Any]) -> list[str]:
    """Where the network and the best baseline are not told apart, the runs that would."""
    out = []
    for n in _ns(table, tag):
        ratio = _ratio(table, tag, n)
        if holds(ratio, 1):
            log_r = math.log(ratio["value"])
            gap = max(abs(log_r), math.log(1.05))  # resolve at least a ratio of 1.05
            half = math.log(ratio["ci_high"] / ratio["ci_low"]) / 2
            runs = math.ceil(design["runs"] * (half / gap) ** 2)
            out.append(
                f"At n/d = {fmt(n / design['d'])} ({_named(tag)}) the network and the best "
                f"baseline are not told apart: about {runs} runs would resolve a ratio of "
                f"{fmt(math.exp(math.copysign(gap, log_r)))} (the interval narrows as 1/√runs)."
            )
    return out


def table_lines(table: pd.DataFrame) -> list[str]:
    """One line per (labelling, n): every predictor's test loss with its interval."""
    out = []
    for tag, n in dict.fromkeys(zip(table["tag"], table["n"], strict=True)):
        tl = select(table, tag=tag, n=n, measure="test_loss")
        text = "; ".join(f"{r['predictor']} {ci(r)}" for r in tl.to_dict(orient="records"))
        out.append(f"{tag}, n = {n} (n/d = {fmt(float(tl['n_over_d'].iloc[0]))}): {text}")
    return out


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, summary: dict[str, Any]):
    """Per labelling: each predictor's test loss against n/d (95% intervals), log scale,
    the network's success fraction on a second axis."""
    import matplotlib.pyplot as plt

    tags = list(dict.fromkeys(table["tag"]))
    fig, axes = plt.subplots(1, len(tags), figsize=(3.4 * len(tags), 3.6), squeeze=False)
    styles = {"network": "ko-", "linear": "C0s--", "ntk": "C1^--", "rf": "C2v--", "null": "C7:"}
    for ax, tag in zip(axes[0], tags, strict=True):
        rows = table.loc[(table["tag"] == tag) & (table["measure"] == "test_loss")]
        for name, style in styles.items():
            g = rows.loc[rows["predictor"] == name].sort_values(by="n_over_d")
            ax.errorbar(g["n_over_d"], g["value"], yerr=mt.errorbars(g), fmt=style, ms=4, lw=0.9,
                        label=name)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="n/d", title=_named(tag))
        design_ticks(ax, sorted(set(rows["n_over_d"])))
        ok = table.loc[(table["tag"] == tag) & (table["measure"] == "success")]
        twin = ax.twinx()
        twin.plot(ok["n_over_d"], ok["value"], color="C3", lw=0.8, alpha=0.6)
        twin.set_ylim(-0.05, 1.05)
        twin.tick_params(labelsize=7, colors="C3")
        twin.set_ylabel("networks converged", color="C3", fontsize=7)
    axes[0][0].set_ylabel("test loss (95%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig
