"""Compile once per bucket: padded runs are the lone runs, the plan is deterministic,
and the compile count is a tested property (shallowflow.engine, issue: compile once)."""

from __future__ import annotations

import collections
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from shallowflow.config import make_config
from shallowflow.data import paper_labels, rows, sphere
from shallowflow.engine import simulate, simulate_many
from shallowflow.experiments.batch import plan_cells, simulate_batch
from shallowflow.experiments.runner import run_sweep
from shallowflow.inits import uniform_w
from shallowflow.planning import padding_waste, plan

# One small cell per geometry and law; each is also run padded beside larger cells.
CASES = {
    "dense": dict(data="sphere", n=30, d=8, p=6),
    "reduced": dict(data="gaussian", n=12, d=20, p=5, geometry="reduced"),
    "reduced_d_lt_n": dict(data="sphere", n=20, d=9, p=5, geometry="reduced"),
    "diagonal_coverage": dict(
        data="orthogonal", n=12, d=20, p=5, w_scale=0.1, require_coverage=True
    ),
    "implicit": dict(data="sphere", n=12, d=40, p=5, w_law="gaussian"),
    "correlated": dict(data="correlated", rho=0.2, n=10, d=15, p=5),
    "group": dict(data="orthogonal", init="group", n=12, d=20, p=4, geometry="dense"),
    "teacher_balanced": dict(
        data="sphere", labels="teacher", init="balanced", n=14, d=10, p=5, geometry="dense"
    ),
    "gaussian_init": dict(
        data="sphere", init="gaussian", sigma=0.7, n=14, d=10, p=5, geometry="dense"
    ),
}
FLOW = dict(rtol=1e-11, atol=1e-13, stop_loss=0.0)


def _larger(cfg, **extra):
    """Cells of the same signature with larger n, d and p (so cfg is padded)."""
    grow = 16 if cfg.data.data in ("orthogonal", "correlated") else 9
    knobs = cfg.knobs() | dict(n=cfg.data.n + 7, d=cfg.data.d + grow, p=cfg.init.p + 3, seed=1)
    return [make_config(**(knobs | extra)), make_config(**(knobs | dict(n=cfg.data.n + 2, seed=2)))]


# Quantities that are themselves rounding-level errors, measured on a scale of order 1
# (balance drift: a change of a_j² − ‖w_j‖²): compared on that scale.
ERROR_SCALE = {"balance_drift": 1.0, "balance_drift_rel": 1.0, "max_violation": 1.0}


def _assert_same(alone, padded, tol, skip=()):
    np.testing.assert_array_equal(alone.valid, padded.valid)
    np.testing.assert_array_equal(alone.final["status"], padded.final["status"])
    for group in ("records", "final", "init"):
        want, got = getattr(alone, group), getattr(padded, group)
        assert set(want) == set(got)
        for name in set(want) - set(skip):
            w, g = np.asarray(want[name], float), np.asarray(got[name], float)
            finite = np.isfinite(w)
            np.testing.assert_array_equal(finite, np.isfinite(g), err_msg=f"{group}.{name}")
            scale = max(float(np.max(np.abs(w[finite]), initial=0.0)), ERROR_SCALE.get(name, 0))
            np.testing.assert_allclose(
                g[finite], w[finite], rtol=tol, atol=tol * scale, err_msg=f"{group}.{name}"
            )
    assert set(alone.states) == set(padded.states)
    for name in alone.states:
        scale = float(np.max(np.abs(alone.states[name])))
        np.testing.assert_allclose(padded.states[name], alone.states[name], atol=tol * scale)


def _check_padded(knobs, tol, skip=()):
    cfg = make_config(**knobs)
    others = _larger(cfg)
    buckets = plan([cfg, *others])
    assert buckets[0] == buckets[1] == buckets[2]  # one compiled program for the three
    assert buckets[0].shape != (cfg.data.n, cfg.data.d, cfg.init.p)  # and cfg is padded in it
    padded = simulate_many([cfg, *others])[0]
    alone = simulate(cfg)
    _assert_same(alone, padded, tol, skip)
    return alone, padded


@pytest.mark.parametrize("case", sorted(CASES))
def test_padded_gd_run_equals_the_lone_run_float64(case):
    knobs = dict(runs=3, seed=5, x64=True, record=8, horizon=40.0, keep_state=True)
    _check_padded(knobs | CASES[case], 1e-10)


@pytest.mark.parametrize("case", ["diagonal_coverage", "dense", "implicit"])
def test_padded_flow_run_equals_the_lone_run_float64(case):
    knobs = dict(runs=2, seed=5, x64=True, record=6, horizon=8.0, keep_state=True, solver="flow")
    # The exact flow (sliding on the sphere cases): the solution agrees to 1e-10; the
    # solver's own counts of steps, and whether an event at a surface where u̇⁻ ≈ 0 is
    # counted a crossing or an entry onto a sliding surface, are statistics of its path
    # to it (rounding can tip a step, a settle, or that call: measured, 1 of 94 events
    # changed kind on a dense case, and a brief slide of 118 events became a crossing
    # on the implicit one). Such calls are rare: the crossings agree to a few. Entries
    # onto sliding surfaces agree less well where a slide is marginal (u̇⁻ ≈ 0 along
    # it), which rounding can cut into leave-and-re-enter: measured on the implicit
    # case, 82 entries alone and 100 padded, with crossings equal (20, 21) and the
    # states equal to 1e-10.
    # (evals, exits, evals_per_event: the same statistics of the path)
    skip = ("steps", "rejected", "slides", "crossings", "last_event", "exits", "evals")
    skip += ("evals_per_event",)
    alone, padded = _check_padded(knobs | FLOW | CASES[case], 1e-10, skip=skip)
    cross = [r.final["crossings"] for r in (alone, padded)]
    assert np.all(np.abs(cross[0] - cross[1]) <= 2 + 0.02 * cross[0])
    slides = [r.final["slides"] for r in (alone, padded)]
    assert np.all(np.abs(slides[0] - slides[1]) <= 2 + 0.25 * slides[0])


@pytest.mark.parametrize("case", ["dense", "diagonal_coverage"])
def test_padded_gd_run_equals_the_lone_run_float32(case):
    knobs = dict(runs=3, seed=5, record=8, horizon=20.0, keep_state=True)
    _check_padded(knobs | CASES[case], 1e-5)


def test_draws_are_padding_stable():
    """The leading block of a padded draw is the unpadded draw, bit for bit."""
    key = jax.random.key(7)
    small, big = sphere(key, 5, 3), sphere(key, 5, 3, shape=(9, 8))
    np.testing.assert_array_equal(big[:5, :3], small)
    assert not np.any(big[5:]) and not np.any(big[:, 3:])
    w, wb = uniform_w(key, 4, 3), uniform_w(key, 4, 3, shape=(6, 7))
    np.testing.assert_array_equal(wb[:4, :3], w)
    np.testing.assert_array_equal(paper_labels(key, 5, length=9)[:5], paper_labels(key, 5))
    r = rows(key, jax.random.normal, (3, 4))
    np.testing.assert_array_equal(rows(key, jax.random.normal, (5, 9))[:3, :4], r)


# --------------------------------------------------------------------------- the plan


def test_plan_pads_a_narrow_figure_into_one_bucket_and_splits_a_wide_one():
    narrow = [make_config(n=n, d=40, runs=4) for n in (130, 180, 230, 280)]
    assert len(set(plan(narrow))) == 1
    wide = [make_config(n=2000, d=10, p=30, runs=4), make_config(n=200, d=100, p=30, runs=4)]
    buckets = plan(wide)
    assert len(set(buckets)) > 1
    assert padding_waste(wide, buckets) <= 2.0
    for cfg, b in zip(wide, buckets, strict=True):  # every cell fits its bucket
        assert cfg.data.n <= b.shape.n and cfg.data.d <= b.shape.d and cfg.init.p <= b.shape.p
    # different signatures never share a program
    mixed = plan([make_config(n=20, d=10), make_config(n=20, d=10, solver="flow")])
    assert mixed[0] != mixed[1]


def test_plan_is_deterministic_and_independent_of_what_is_left_to_run():
    cells = [dict(n=n, d=10, p=p, runs=2, seed=0) for n, p in ((20, 5), (26, 6), (33, 4))]
    assert plan_cells(cells) == plan_cells(cells)
    assert plan_cells(cells)[1:] == plan_cells(cells)[1:]


# --------------------------------------------------------------------------- sweeps

SWEEP = [
    dict(n=n, d=10, p=p, runs=3, record=6, seed=0, tag="six")
    for n, p in ((20, 5), (24, 6), (28, 4), (32, 7), (36, 5), (40, 6))
]


def _sweep(out, **kw):
    return run_sweep(SWEEP, simulate_batch, out, plan=plan_cells, progress=False, **kw)


def test_same_table_batched_together_or_one_cell_per_call(tmp_path):
    together = _sweep(tmp_path / "together")
    one_by_one = _sweep(tmp_path / "one", max_batch=1)
    pdt.assert_frame_equal(together, one_by_one)
    assert not together.duplicated(["cell_id", "run"]).any()


_CHILD = r"""
import json, sys
import shallowflow
from shallowflow.compilation import CompileCounter
from shallowflow.experiments.batch import plan_cells, simulate_batch
from shallowflow.experiments.runner import run_sweep
cells = json.loads(sys.argv[1])
with CompileCounter() as c:
    run_sweep(cells, simulate_batch, sys.argv[2], plan=plan_cells, progress=False,
              max_batch=int(sys.argv[3]) or None)
print(json.dumps({"compiles": c.compiles, "hits": c.hits, "by_name": c.by_name,
                  "buckets": len(set(plan_cells(cells)))}))
"""


def _child(cells, out, cache, max_batch=0, wait=True):
    env = dict(os.environ, SHALLOWFLOW_CACHE_DIR=str(cache))
    args = [sys.executable, "-c", _CHILD, json.dumps(cells), str(out), str(max_batch)]
    if not wait:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_compiles_once_per_bucket_then_nothing_from_the_persistent_cache(tmp_path):
    """A sweep of 6 cells with different n and p compiles the engine at most once per
    bucket; the same sweep in a fresh process with the persistent cache compiles
    nothing at all, and gives the same table (so does a process without any cache)."""
    cache = tmp_path / "cache"
    cold = _child(SWEEP, tmp_path / "cold", cache)
    assert cold["buckets"] < len(SWEEP)
    assert 1 <= cold["by_name"]["shallowflow_engine"] <= cold["buckets"]
    warm = _child(SWEEP, tmp_path / "warm", cache)
    assert warm["compiles"] == 0 and warm["hits"] >= cold["buckets"]
    _child(SWEEP, tmp_path / "nocache", "off")
    table = pd.read_parquet(tmp_path / "cold" / "runs.parquet")
    pdt.assert_frame_equal(pd.read_parquet(tmp_path / "warm" / "runs.parquet"), table)
    pdt.assert_frame_equal(pd.read_parquet(tmp_path / "nocache" / "runs.parquet"), table)
    pdt.assert_frame_equal(_sweep(tmp_path / "here"), table)  # and this process's


def test_sweep_killed_mid_batch_resumes_to_the_same_table(tmp_path):
    """Killed while a batch is in flight, the sweep loses that batch only; resumed, it
    gives the uninterrupted table, without duplicate rows."""
    cells = [c | {"record": 40, "horizon": 30000.0, "stop_loss": 0.0} for c in SWEEP]
    out = tmp_path / "killed"
    proc = _child(cells, out, tmp_path / "cache", max_batch=2, wait=False)
    deadline = time.time() + 120
    files = out / "cells"
    while time.time() < deadline and len(list(files.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    written = len(list(files.glob("*.parquet")))
    assert 2 <= written < len(cells), "the kill did not land mid-sweep"
    resumed = run_sweep(
        cells, simulate_batch, out, plan=plan_cells, max_batch=2, resume=True, progress=False
    )
    whole = run_sweep(cells, simulate_batch, tmp_path / "whole", plan=plan_cells, progress=False)
    pdt.assert_frame_equal(resumed, whole)
    assert not resumed.duplicated(["cell_id", "run"]).any()
    assert not any(Path(out).glob("**/.*.tmp"))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_a_long_process_keeps_a_bounded_number_of_compiled_programs(monkeypatch):
    """Each compiled engine program holds hundreds of memory maps (XLA:CPU maps every
    kernel's code and data apart); a process that kept all of them would reach the
    kernel's map limit (vm.max_map_count, 65530) after ~50 buckets and die in LLVM
    ("Cannot allocate memory"). The engine keeps its PROGRAMS_KEPT most recent ones:
    past that, memory maps stop growing with the number of buckets."""
    import shallowflow.engine as engine

    monkeypatch.setattr(engine, "PROGRAMS_KEPT", 2, raising=False)
    monkeypatch.setattr(engine, "_programs", collections.OrderedDict(), raising=False)
    gc.collect()  # the programs earlier tests left are gone: maps now grow from here

    def maps() -> int:
        return len(Path("/proc/self/maps").read_text().splitlines())

    counts = []
    for k in range(6):  # six buckets: d far apart, so no two share one
        simulate(make_config(n=6, d=10 + 50 * k, p=3, runs=1, record=2, solver="gd"))
        gc.collect()
        counts.append(maps())
    # growth from the 3rd bucket on is what one program's maps would add, at most
    assert counts[-1] - counts[2] < 0.5 * (counts[1] - counts[0]), counts


def test_a_partial_call_deals_its_live_runs_over_every_device():
    """A call with fewer live runs than its chunk (the last of a bucket, an adaptive
    round) spreads them over the devices' slices instead of piling them on the first
    device, and every run comes back to its place."""
    from shallowflow.engine import _deal, _undeal

    chunk, ndev, keep = 12, 2, 5
    live = np.arange(chunk) < keep
    dealt = _deal(live, ndev).reshape(ndev, chunk // ndev)  # device k's slice: row k
    assert list(dealt.sum(axis=1)) == [3, 2]
    runs = np.arange(chunk * 3).reshape(chunk, 3)
    np.testing.assert_array_equal(_undeal(_deal(runs, ndev), ndev), runs)
