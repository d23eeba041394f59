"""The adaptive threshold search of ``reproduce --adaptive`` (Figs. 3–5).

Adaptive mode (``adaptive=True``, Figs. 3–5 only; Figs. 2 and 6 ignore it)
replaces each threshold's n grid (Fig. 3: the whole grid; Fig. 4: one per d;
Fig. 5: one per p; the ``width`` study: one per (d, p) pair, its ``group`` tag) by the
sequential design of
:func:`~shallowflow.stats.design.adaptive_threshold`: on the same
range ``[min n, max n]`` snapped to the grid's step (the gcd of its spacings),
batches of ``ADAPTIVE_RUNS_FRACTION`` × the protocol's runs per point, at
most the grid's runs for that group. It stops once its 95% interval is no
wider than the grid design's would be: :func:`grid_width`, the median
width of the grid design's interval under a *planted* logistic curve (the
design's current fit), re-estimated after each batch. ``proto.params`` may
override ``adaptive_width`` (a fixed target, as a fraction of the range) and
``adaptive_runs`` (runs per batch). Every evaluated (n, runs) is one cell of
knobs (``tag = "adaptive"``, its own ``seed`` drawn by the design), simulated
locally and stored under ``out/<figure>/adaptive/<cell_id>.parquet``; with
``resume`` those files are reused, and since the design is deterministic a
rerun replays the same sequence. ``runs.parquet``/``points.parquet`` hold
every evaluation (repeated sizes pooled in the points), so the figures and
fits are the grid's functions of the runs table; ``summary["adaptive"]``
records each group's design fit, target width, evaluations, and runs used
against the grid's runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.batch import simulate_batch
from shallowflow.experiments.cells import Cell, cell_config, cell_seed
from shallowflow.experiments.figures import FIGURES
from shallowflow.experiments.lockstep import Request, lockstep
from shallowflow.experiments.protocol import EPS, Protocol
from shallowflow.experiments.runner import with_knobs
from shallowflow.planning import Bucket, home, plan_by_cost
from shallowflow.report.format import ci, fmt
from shallowflow.stats.design import AdaptiveResult, adaptive_threshold
from shallowflow.stats.thresholds import fit_threshold
from shallowflow.storage import keep_finished, read_parquet, write_parquet_atomic
from shallowflow.theory.width import width

__all__ = ["ADAPTIVE_FIGURES", "adaptive_lines", "grid_width", "run_adaptive"]

ADAPTIVE_FIGURES = ("fig3", "fig4", "fig5")
ADAPTIVE_RUNS_FRACTION = 0.5  # runs per adaptive batch, as a fraction of the grid's runs per n
ADAPTIVE_N_INIT = 5  # sizes of the pilot (evenly spaced over the grid's range)
ADAPTIVE_N_BOOT = 400


def grid_width(
    threshold: float,
    slope: float,
    n: Any,
    runs: Any,
    reps: int = 16,
    n_boot: int = 200,
    seed: int = 0,
    at_least: float | None = None,
) -> float:
    """Planted estimate of the grid design's 95% interval width for ``N``.

    Draws ``reps`` data sets ``k_i ~ Bin(R_i, P(n_i))`` from the logistic curve
    ``P(n) = 1/(1 + exp(slope (n − threshold)))`` on the grid ``(n_i, R_i)``,
    fits each (:func:`fit_threshold`) and returns the median interval width
    (``inf`` when most intervals are unbounded, ``nan`` without a finite curve).

    ``at_least``: the caller asks only whether the median reaches it. The fits stop
    once more than half of the widths are below it, since the median is then below
    too, and ``-inf`` is returned; the fits made are those of the full estimate, so
    the answer is the same.
    """
    if not (np.isfinite(threshold) and np.isfinite(slope) and slope != 0):
        return math.nan
    n, runs = np.asarray(n, float), np.asarray(runs, np.int64)
    rng = np.random.default_rng(seed)
    prob = special.expit(slope * (threshold - n))
    widths = []
    for _ in range(reps):
        k = rng.binomial(runs, prob)
        fit = fit_threshold(n, k, runs, n_boot=n_boot, seed=int(rng.integers(2**32)))
        widths.append(fit.ci_width if np.isfinite(fit.ci_width) else math.inf)
        if at_least is not None and sum(w < at_least for w in widths) > reps // 2:
            return -math.inf
    return float(np.median(widths))


def _groups(proto: Protocol) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The protocol's threshold groups: ``(value of proto.group, cells)``; Fig. 3 has one."""
    if proto.group is None:
        return [(None, list(proto.cells))]
    values = sorted({c[proto.group] for c in proto.cells})
    return [(v, [c for c in proto.cells if c[proto.group] == v]) for v in values]


def _cell_at(cells: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The group's knobs at size ``n``: those of the nearest grid cell, with ``p = p(n, 0.05)``
    where the group's width follows n (Fig. 3), else its fixed p (Figs. 4, 5)."""
    near = min(cells, key=lambda c: abs(c["n"] - n))
    knobs = dict(near) | {"n": int(n)}
    if len({c["p"] for c in cells}) > 1:
        if any(c["p"] != width(c["n"], EPS) for c in cells):
            raise ShallowflowInputError("adaptive", "the group's width p is neither fixed nor p(n)")
        knobs["p"] = width(int(n), EPS)
    return knobs


def _design(
    simulate: Callable[[int, int, int], int],
    ns: np.ndarray,
    grid_runs: np.ndarray,
    batch: int,
    seed: int,
    fixed_width: float | None,
) -> tuple[AdaptiveResult, float, bool]:
    """The adaptive design of one group: ``(result, target width, target reached)``.

    With ``fixed_width`` the target is ``fixed_width × range``. Otherwise the
    design grows one batch at a time until its interval is no wider than the
    grid design's, estimated by :func:`grid_width` under the current fit, or the
    grid's runs are spent. ``adaptive_threshold`` is deterministic, so each longer
    design replays the previous one (free with a memoising ``simulate``).
    """
    n_min, n_max = int(ns.min()), int(ns.max())
    common = {
        "n_min": n_min,
        "n_max": n_max,
        "runs_per_point": batch,
        "seed": seed,
        "n_step": int(np.gcd.reduce(np.diff(ns).astype(np.int64))),
        "n_init": min(ADAPTIVE_N_INIT, ns.size),
        "n_boot": ADAPTIVE_N_BOOT,
    }
    budget = int(grid_runs.sum())
    if fixed_width is not None:
        target = fixed_width * (n_max - n_min)
        res = adaptive_threshold(simulate, target_width=target, max_runs=budget, **common)
        return res, target, res.reached_target
    allowed = common["n_init"] * batch
    while True:
        allowed = min(allowed, budget)
        res = adaptive_threshold(simulate, target_width=1e-9, max_runs=allowed, **common)
        fit = res.fit
        last = res.total_runs >= budget or res.total_runs < allowed
        # Before the last batch only "reached or not" is asked: grid_width may stop early.
        at_least = None if last or not np.isfinite(fit.ci_width) else float(fit.ci_width)
        target = grid_width(
            fit.threshold, fit.slope, ns, grid_runs, seed=seed % 2**32, at_least=at_least
        )
        reached = bool(fit.ci_width <= target)
        if reached or last:
            return res, target, reached
        allowed += batch


def _adaptive_batch(proto: Protocol, cells: list[dict[str, Any]]) -> int:
    """Runs per adaptive evaluation of a group."""
    per_point = max(int(c["runs"]) for c in cells)
    return int(proto.params.get("adaptive_runs", 0)) or max(
        1, math.ceil(ADAPTIVE_RUNS_FRACTION * per_point)
    )


def _adaptive_buckets(proto: Protocol) -> list[Bucket]:
    """The compiled buckets the evaluations may run in, planned by cost
    (:func:`~shallowflow.planning.plan_by_cost`) over the grid's cells at the adaptive
    batch's size. The evaluations may land on any cell but gather near N, at the small
    end of the grid's range, where the sweep's 2× rule
    (:func:`~shallowflow.planning.plan`) sized its buckets by their largest cells. On
    Fig. 5's paper preset the evaluations used 9 of the cost plan's 15 buckets, padded
    to 1.40× their own work, against 13 buckets and 1.67× under the 2× rule, and Fig. 5
    ran in 189 s instead of 231 s. A bucket's calls hold as many runs as its grid cells
    at the batch's size (a round holds one evaluation per group)."""
    resized = [
        cell_config(c | {"runs": _adaptive_batch(proto, cells)})
        for _, cells in _groups(proto)
        for c in cells
    ]
    return list(dict.fromkeys(plan_by_cost(resized)))


def _home(cell: Cell, buckets: list[Bucket]) -> Bucket:
    """The bucket an evaluation runs in: the least planned one that holds it
    (:func:`~shallowflow.planning.home`).

    The group's own grid cell just above n always qualifies (same knobs, sizes no
    smaller: p(n) grows with n), but its bucket's sizes are set by the largest cells
    planned with it, while the evaluations gather near N (on Fig. 5's paper preset,
    under the 2× rule, 2.85× their own work in their own cell's bucket, 1.67× in the
    least one that holds them). The choice depends only on the evaluation and the plan,
    so a resumed search pads, and computes, as the first did."""
    return home(cell_config(cell.to_dict()), buckets)


class _Group:
    """One threshold group's design state: its grid, batch, seed and the memo of its
    evaluations ``(n, runs, rng_seed) -> runs table`` in the order they were made."""

    def __init__(self, proto: Protocol, value: Any, cells: list[dict[str, Any]]) -> None:
        self.proto, self.value, self.cells = proto, value, cells
        self.ns = np.array([c["n"] for c in cells], dtype=np.int64)
        self.grid_runs = np.array([c["runs"] for c in cells], dtype=np.int64)
        self.batch = _adaptive_batch(proto, cells)
        self.label = {proto.group: value} if proto.group else {}
        self.seed = cell_seed(int(cells[0].get("seed", 0)), {"adaptive": proto.name} | self.label)
        self.memo: dict[tuple[int, int, int], pd.DataFrame] = {}

    def cell(self, n: int, runs: int, rng_seed: int) -> Cell:
        return Cell(_cell_at(self.cells, n) | {"runs": runs, "seed": rng_seed, "tag": "adaptive"})

    def successes(self, keys, cache: Path, resume: bool, request: Request) -> list[int]:
        """Successes of each evaluation ``(n, runs, rng_seed)``: from the memo, from a
        stored file with ``resume``, the others requested together (one round)."""
        found: dict[tuple[int, int, int], pd.DataFrame | None] = {}
        for key in keys:
            if key in self.memo:
                continue
            path = cache / f"{self.cell(*key).cell_id}.parquet"
            df = read_parquet(path) if resume and path.exists() else None
            found[key] = df if df is not None and len(df) == key[1] else None
        missing = [key for key, df in found.items() if df is None]
        if missing:
            found |= dict(zip(missing, request(missing), strict=True))
        for key, df in found.items():  # in the order asked: the memo lists the evaluations
            assert df is not None
            self.memo[key] = df
        return [int(self.memo[key]["success"].to_numpy().sum()) for key in keys]

    def record(self, res: AdaptiveResult, target: float, reached: bool) -> dict[str, Any]:
        fit, grid = res.fit, int(self.grid_runs.sum())
        return self.label | {
            "N": fit.threshold,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
            "ci_width": fit.ci_width,
            "slope": fit.slope,
            "target_width": target,
            "reached_target": reached,
            "runs_used": res.total_runs,
            "grid_runs": grid,
            "saving": 1.0 - res.total_runs / grid,
            "runs_per_batch": self.batch,
            "n_range": [int(self.ns.min()), int(self.ns.max())],
            "evaluations": [list(e) for e in res.evaluations],
        }


def _evaluate(
    round_: list[tuple[_Group, list[tuple[int, int, int]]]],
    buckets: list[Bucket],
    cache: Path,
    progress: bool,
) -> Iterator[tuple[int, list[pd.DataFrame]]]:
    """One round: every requested evaluation, the cells of each bucket simulated in one
    batch, each stored as it is made. Yields ``(position in the round, tables)`` for each
    request as soon as all its evaluations are done, so that its design's statistics run
    while the next bucket does."""
    cells, homes, owner = [], [], []
    for j, (group, keys) in enumerate(round_):
        for key in keys:
            cells.append(group.cell(*key))
            homes.append(_home(cells[-1], buckets))
            owner.append(j)
    tables: list[pd.DataFrame | None] = [None] * len(cells)
    for bucket in dict.fromkeys(homes):
        idx = [i for i, h in enumerate(homes) if h == bucket]
        dfs = simulate_batch([cells[i].to_dict() for i in idx], bucket)
        for i, df in zip(idx, dfs, strict=True):
            table = tables[i] = with_knobs(df, cells[i])
            write_parquet_atomic(table, cache / f"{cells[i].cell_id}.parquet")
        for j in dict.fromkeys(owner[i] for i in idx):
            mine = [t for t, o in zip(tables, owner, strict=True) if o == j and t is not None]
            if len(mine) == len(round_[j][1]):
                if progress:
                    group, keys = round_[j]
                    _echo_round(group, keys, mine)
                yield j, mine


def _echo_round(group: _Group, keys: list[tuple[int, int, int]], tables) -> None:
    for key, df in zip(keys, tables, strict=True):
        where = f"{group.proto.group} = {group.value}, " if group.proto.group else ""
        hits = int(df["success"].sum())
        _echo(f"  {group.proto.name} adaptive: {where}n = {key[0]}, {hits}/{key[1]}")


def run_adaptive(
    proto: Protocol,
    fig_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Adaptive threshold search for each group of a threshold figure (module doc).
    Stored evaluations are reused with ``resume`` and recomputed only with
    ``overwrite``.

    Returns the runs table of every evaluation (runner columns plus
    ``adaptive_step``) and the ``summary["adaptive"]`` record.
    """
    if proto.kind != "simulate" or (proto.name in FIGURES and proto.name not in ADAPTIVE_FIGURES):
        # a study's threshold protocol (experiments/studies/width.py) is searched too
        raise ShallowflowInputError(
            "adaptive", f"of the figures only {ADAPTIVE_FIGURES} have thresholds"
        )
    cache = Path(fig_dir) / "adaptive"
    stored = list(cache.glob("*.parquet")) if cache.is_dir() else []
    if stored and not resume and not overwrite:
        what = f"{len(stored)} finished adaptive evaluations"
        keep_finished(fig_dir, what, param="out_dir", resumable=True)
    cache.mkdir(parents=True, exist_ok=True)
    fixed = proto.params.get("adaptive_width")
    buckets = _adaptive_buckets(proto)
    groups = [
        _Group(proto, value, sorted(cells, key=lambda c: c["n"])) for value, cells in _groups(proto)
    ]

    def design(group: _Group) -> Callable[[Request], tuple[AdaptiveResult, float, bool]]:
        def run(request: Request):
            def simulate(n: int, runs: int, rng_seed: int) -> int:
                return group.successes([(n, runs, rng_seed)], cache, resume, request)[0]

            return _design(simulate, group.ns, group.grid_runs, group.batch, group.seed, fixed)

        return run

    def evaluate(round_: list[tuple[int, list[tuple[int, int, int]]]]):
        return _evaluate([(groups[i], keys) for i, keys in round_], buckets, cache, progress)

    outcomes = lockstep([design(g) for g in groups], evaluate)
    frames: list[pd.DataFrame] = []
    records, total_used, total_grid = [], 0, 0
    for group, (res, target, reached) in zip(groups, outcomes, strict=True):
        # Each longer design of _design replays the shorter one (same seeds), so the memo's keys
        # in insertion order are the design's evaluations, each once.
        for step, (key3, ev) in enumerate(zip(group.memo, res.evaluations, strict=True)):
            assert key3[:2] == ev[:2]
            frames.append(group.memo[key3].assign(adaptive_step=step))
        total_used += res.total_runs
        total_grid += int(group.grid_runs.sum())
        records.append(group.record(res, target, reached))
    runs = pd.concat(frames, ignore_index=True)
    record = {
        "groups": records,
        "runs_used": total_used,
        "grid_runs": total_grid,
        "saving": 1.0 - total_used / total_grid,
        "target": "fixed fraction of the range" if fixed is not None else "grid width (planted)",
    }
    return runs, record


def adaptive_lines(proto: Protocol, record: dict[str, Any]) -> list[str]:
    """The adaptive search's record as verdict lines: each group's N, interval, width against
    its target, and the runs used against the grid's."""
    lines = []
    for g in record["groups"]:
        where = f"{proto.group} = {g[proto.group]}: " if proto.group else ""
        reached = "reached" if g["reached_target"] else "not reached: run budget spent"
        lines.append(
            f"adaptive: {where}N = {ci(g, 4, 'N')}, width {fmt(g['ci_width'])} (target "
            f"{fmt(g['target_width'])} {reached}) with {g['runs_used']} runs vs "
            f"{g['grid_runs']} runs on the grid (saving {g['saving']:.0%})"
        )
    if len(record["groups"]) > 1:
        lines.append(
            f"adaptive total: {record['runs_used']} runs vs {record['grid_runs']} runs on the "
            f"grid (saving {record['saving']:.0%})"
        )
    return lines


def _echo(line: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(line, markup=False)
