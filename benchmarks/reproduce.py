"""Benchmark of ``shallowflow reproduce``: compile time apart from run time, cold and warm.

Run ``python benchmarks/reproduce.py`` (the quick preset, every figure) or
``python benchmarks/reproduce.py --paper`` (the paper preset; meant for a GPU), and
``--figures fig3 fig6`` for a few. Each pass is a fresh process running
``reproduce`` figure by figure, so that it pays what a user pays: the *cold* pass with
an empty persistent compilation cache, the *warm* pass with the cache the cold pass
filled. Per figure it prints the XLA compilations (programs compiled; persistent-cache
hits apart), the compile seconds, the rest of the wall time ("run": simulation,
tables, figure), and the plan's padding waste (padded work over the cells' own
work, horizon-weighted; see shallowflow.planning). Per pass it prints the process's
whole wall time, imports included, and the ratio cold/warm.

For an adaptive figure (Figs. 4–5 at the paper preset) it prints where the time goes:
the evaluations and runs, the engine calls they took (the search's sequential rounds
times the buckets; every group's next evaluation shares a round), the seconds inside
the engine against the rest (statistics, tables, figure), and the share of runs and of
steps spent by failing runs, which run to their horizon, and the padding waste of the
evaluations as they ran (each run's steps at its bucket's padded n·m·p over those at its
own sizes: the buckets are planned by cost on the grid's cells, the evaluations gather
near N).

The waste of lanes under ``vmap`` (accelerators: every run of a compiled call is
carried to the end of the slowest one) is measured from the runs' step counts: the
network-steps a vmapped call executes over those the runs need (``steps_waste``).
On CPU, runs go one after another (``lax.map``) and a stopped run costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import shallowflow
from shallowflow.compilation import CompileCounter
from shallowflow.planning import padding_waste
from shallowflow.experiments.batch import plan_cells
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.experiments.figures import protocol
from shallowflow.experiments.reproduce import run_protocol
from pathlib import Path
imports = time.perf_counter() - t0
preset, out, figures = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
from shallowflow.experiments import adaptive as _adaptive
engine_calls = []
homes = {}  # adaptive evaluation's cell id -> (its knobs, its bucket's padded shape)
_batch = _adaptive.simulate_batch
def _timed(cells, bucket):
    homes.update({Cell(k).cell_id: (k, bucket.shape) for k in cells})
    t = time.perf_counter()
    try:
        return _batch(cells, bucket)
    finally:
        runs = sum(int(k["runs"]) for k in cells)
        engine_calls.append((len(cells), runs, time.perf_counter() - t))
_adaptive.simulate_batch = _timed
def _flops(runs):
    # benchmarks/engine.py's model: 4·p·m·n + 2·p·n per GD step of one network, m the
    # working dimension (shallowflow.geometry.working_dim), times the steps each run took
    from shallowflow.geometry import working_dim
    m = np.array([working_dim(g, n, d) for g, n, d in zip(runs["geometry"], runs["n"], runs["d"])])
    p, n = runs["p"].to_numpy(float), runs["n"].to_numpy(float)
    return float((runs["steps"].to_numpy(float) * (4 * p * m * n + 2 * p * n)).sum())
def _adaptive_waste(runs):
    # the steps each run took at its bucket's padded per-step work over those at its own
    from shallowflow.planning import own_shape, step_work
    def per_step(knobs, pad):
        cfg = cell_config(knobs)
        return step_work(cfg, pad), step_work(cfg, own_shape(cfg))
    work = {c: per_step(k, pad) for c, (k, pad) in homes.items()}
    padded, own = np.array([work[c] for c in runs["cell_id"]], float).T
    steps = runs["steps"].to_numpy(float)
    return float((steps * padded).sum() / (steps * own).sum())
rows, summaries = [], []
for fig in figures:
    proto = protocol(fig, preset)
    engine_calls.clear()
    start = time.perf_counter()
    with CompileCounter() as c:
        summaries.append(run_protocol(proto, out, progress=False))
    wall = time.perf_counter() - start
    row = {"figure": fig, "wall": wall, "compiles": c.compiles, "hits": c.hits,
           "compile_s": max(c.seconds, 0.0)}
    if proto.kind == "simulate":
        import pandas as pd
        row["flops"] = _flops(pd.read_parquet(out / fig / "runs.parquet"))
    if "adaptive" in summaries[-1]:
        import pandas as pd
        runs = pd.read_parquet(out / fig / "runs.parquet")
        steps = runs["steps"].to_numpy(float)
        failed = ~runs["success"].to_numpy(bool)
        rec = summaries[-1]["adaptive"]
        row["adaptive"] = {
            "groups": len(rec["groups"]),
            "evaluations": sum(len(g["evaluations"]) for g in rec["groups"]),
            "runs": int(rec["runs_used"]),
            "grid_runs": int(rec["grid_runs"]),
            "engine_calls": len(engine_calls),
            "engine_s": sum(t for _, _, t in engine_calls),
            "failed_runs": float(failed.mean()),
            "failed_steps": float(steps[failed].sum() / max(steps.sum(), 1.0)),
            "padding_waste": _adaptive_waste(runs),
        }
    elif proto.kind == "simulate":
        cfgs = [cell_config(k) for k in proto.cells]
        buckets = plan_cells(proto.cells)
        row["buckets"] = len(set(buckets))
        row["padding_waste"] = padding_waste(cfgs, buckets)
        import pandas as pd
        runs = pd.read_parquet(out / fig / "runs.parquet")
        steps = runs["steps"].to_numpy(float)
        # vmap: a compiled call of C runs executes C x (its slowest run's steps)
        ids = [Cell(k).cell_id for k in proto.cells]
        by_bucket = {}
        for cid, b in zip(ids, buckets):
            by_bucket.setdefault(b, []).append(cid)
        executed = 0.0
        for b, cids in by_bucket.items():
            s = runs.loc[runs["cell_id"].isin(cids), "steps"].to_numpy(float)
            for lo in range(0, s.size, b.chunk):
                part = s[lo:lo + b.chunk]
                executed += b.chunk * part.max()
        row["steps_waste"] = executed / max(steps.sum(), 1.0)
    rows.append(row)
from shallowflow.experiments.reproduce import write_figures_report
start = time.perf_counter()
write_figures_report(summaries, out)
print(json.dumps({"imports": imports, "report": time.perf_counter() - start, "rows": rows}))
"""


def _pass(preset: str, figures: list[str], cache: str, out: str) -> tuple[float, dict]:
    env = dict(os.environ, SHALLOWFLOW_CACHE_DIR=cache, MPLBACKEND="Agg")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, preset, out, ",".join(figures)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"reproduce failed:\n{done.stderr[-4000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def _print(label: str, wall: float, res: dict) -> None:
    print(
        f"\n{label}: {wall:.1f} s for the whole process (imports {res['imports']:.1f} s, "
        f"report {res['report']:.1f} s)"
    )
    head = (
        f"{'figure':8s} {'wall s':>7s} {'compiles':>8s} {'hits':>5s} {'compile s':>9s} "
        f"{'run s':>7s} {'buckets':>7s} {'pad waste':>9s} {'vmap steps waste':>16s}"
    )
    print(head)
    for r in res["rows"]:
        run = r["wall"] - r["compile_s"]
        print(
            f"{r['figure']:8s} {r['wall']:7.1f} {r['compiles']:8d} {r['hits']:5d} "
            f"{r['compile_s']:9.1f} {run:7.1f} {r.get('buckets', 0):7d} "
            f"{r.get('padding_waste', float('nan')):9.2f} "
            f"{r.get('steps_waste', float('nan')):16.2f}"
        )
    for r in res["rows"]:
        if "flops" in r:
            run = r["wall"] - r["compile_s"]
            print(
                f"  {r['figure']}: {r['flops'] / 1e12:.3g} TFLOP in the runs' own steps "
                f"(4·p·m·n + 2·p·n per step): {r['flops'] / run / 1e9:.3g} GFLOP/s over the "
                f"run time, {r['flops'] / r['wall'] / 1e9:.3g} GFLOP/s over the wall time"
            )
    for r in res["rows"]:
        if "adaptive" in r:
            a = r["adaptive"]
            rest = r["wall"] - a["engine_s"]
            print(
                f"  {r['figure']} adaptive: {a['groups']} groups, {a['evaluations']} evaluations "
                f"({a['runs']} runs, grid {a['grid_runs']}) in {a['engine_calls']} engine calls "
                f"(sequential rounds x buckets); {a['engine_s']:.1f} s in the engine (compiles "
                f"and the statistics run meanwhile included), {rest:.1f} s elsewhere (the "
                f"statistics left after a round's last call, tables, figure); failed runs "
                f"{a['failed_runs']:.0%} of the runs, {a['failed_steps']:.0%} of the steps; "
                f"padding waste {a['padding_waste']:.2f} (steps at the buckets' padded sizes "
                "over those at the runs' own)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", action="store_true", help="the paper preset (a GPU job)")
    ap.add_argument("--figures", nargs="+", default=["fig2", "fig3", "fig4", "fig5", "fig6"])
    ap.add_argument(
        "--cold-only", action="store_true", help="one pass with an empty cache (no warm pass)"
    )
    ap.add_argument("--out", help="keep the cold pass's outputs in this directory")
    args = ap.parse_args()
    preset = "paper" if args.paper else "quick"
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        cold_out = args.out or os.path.join(tmp, "cold")
        cold_wall, cold = _pass(preset, args.figures, cache, cold_out)
        _print(f"cold cache ({preset})", cold_wall, cold)
        if args.cold_only:
            return
        warm_wall, warm = _pass(preset, args.figures, cache, os.path.join(tmp, "warm"))
    _print(f"warm cache ({preset})", warm_wall, warm)
    print(f"\ncold/warm: {cold_wall / warm_wall:.2f}x")
    if preset == "quick":
        print(
            f"targets (2-core CPU): cold ≤ 30 s: {'MET' if cold_wall <= 30 else 'NOT MET'}; "
            f"warm ≤ 15 s: {'MET' if warm_wall <= 15 else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
