"""Benchmark of calls sized by time: one figure's sweep in one call against split calls.

Run ``python benchmarks/pacing.py --figure fig3 --preset paper`` (the acceptance
measure: ~3 × 160 s on a 2-core CPU; run it on a quiet machine), or
``python benchmarks/pacing.py --figure fig3 --preset quick --seconds 1`` (a smoke
version, under a minute, that forces several calls).

In one process (one session: the compiled program is shared, so neither side pays a
compilation in the timed passes): a warm-up pass compiles, then the sweep runs with
``call_seconds=None`` (each bucket in one call) and with ``call_seconds=S`` (calls of
about S seconds, as ``reproduce`` does on CPU), alternately, ``--repeats`` times each
(order one, split, split, one, …, so that a drift of the machine's load cancels).
It prints each pass's wall time and calls, the ratio split/one (median over the
repeats), and whether the two tables are equal bit for bit. Target on CPU: the split
costs at most 5 % more (ratio ≤ 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import shallowflow  # noqa: F401  (sets up one CPU device per core)
from shallowflow.compilation import CompileCounter
from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.figures import protocol


def _pass(cells, out: Path, seconds: float | None) -> tuple[float, int, pd.DataFrame, int]:
    calls: list[int] = []
    with CompileCounter() as counter:
        start = time.perf_counter()
        runs = run_cells(cells, out, call_seconds=seconds, progress=lambda p: calls.append(1))
        wall = time.perf_counter() - start
    return wall, len(calls) - 1, runs, counter.compiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figure", default="fig3")
    ap.add_argument("--preset", default="paper", choices=["quick", "paper"])
    ap.add_argument("--seconds", type=float, default=60.0, help="the split's call budget")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes of each kind")
    args = ap.parse_args()
    proto = protocol(args.figure, args.preset)
    cells = proto.cells
    print(f"{args.figure} ({args.preset}): {len(cells)} cells, {proto.total_runs} runs")
    walls: dict[str, list[float]] = {"one": [], "split": []}
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        wall, calls, _, compiles = _pass(cells, Path(tmp) / "warmup", None)
        print(f"warm-up (one call per bucket): {wall:.1f} s, {compiles} compilations")
        pairs = [("one", "split"), ("split", "one")]
        order = [kind for r in range(args.repeats) for kind in pairs[r % 2]]
        for i, kind in enumerate(order):
            seconds = None if kind == "one" else args.seconds
            wall, calls, runs, compiles = _pass(cells, Path(tmp) / f"{kind}{i}", seconds)
            walls[kind].append(wall)
            tables[kind] = runs
            print(f"{kind:5s}: {wall:7.1f} s in {calls} calls ({compiles} compilations)")
    ratio = statistics.median(walls["split"]) / statistics.median(walls["one"])
    equal = tables["one"].equals(tables["split"])
    print(f"split/one: {ratio:.3f} (target ≤ 1.05: {'MET' if ratio <= 1.05 else 'NOT MET'})")
    print(f"tables equal bit for bit: {equal}")


if __name__ == "__main__":
    main()
