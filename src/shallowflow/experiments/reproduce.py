"""Reproduce the paper's figures: protocol → sweep → summary → verdict → figure → report.

``reproduce(figure, preset, out)`` runs each figure's protocol
(:mod:`shallowflow.experiments.figures`) through the generic runner and writes, for
every figure, under ``out/<figure>/``::

    runs.parquet     one row per run (the runner; Fig. 2 has none)
    points.parquet   one row per point of the figure (success fraction, bars, means…)
    summary.json     fits and verdicts
    <figure>.png/.pdf

and ``out/report.md``, a self-contained ``out/report.html`` and ``out/report.json``
(:mod:`shallowflow.report`) that put each figure beside the paper's claim and a verdict
with its numbers. Adaptive mode (``adaptive=True``, Figs. 3–5):
:mod:`shallowflow.experiments.adaptive`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.adaptive import ADAPTIVE_FIGURES, adaptive_lines, run_adaptive
from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.figures import FIGURES, figure, protocols
from shallowflow.experiments.protocol import Protocol
from shallowflow.plots import render
from shallowflow.report.writer import Report, Section, jsonable, write_report
from shallowflow.storage import write_json_atomic, write_parquet_atomic

__all__ = ["reproduce", "run_protocol", "write_figures_report"]

Summary = dict[str, Any]


def run_protocol(
    proto: Protocol,
    out: Path,
    *,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    adaptive: bool | None = None,
    overwrite: bool = False,
) -> Summary:
    """Simulate (or evaluate) one protocol, write its tables and figure; return its summary.

    ``adaptive`` (Figs. 3–5; ignored by the others): adaptive threshold search
    instead of the full n grid (:func:`run_adaptive`, run locally whatever
    ``executor``), its runs written to the same ``runs.parquet``; None: the protocol's
    default (the paper preset of Figs. 4 and 5 searches, the others run the grid).
    """
    fig = figure(proto.name)
    adaptive = proto.adaptive if adaptive is None else adaptive
    fig_dir = Path(out) / proto.name
    runs = None
    record = None
    cells = len(proto.cells)
    if proto.kind == "simulate" and adaptive and proto.name in ADAPTIVE_FIGURES:
        runs, record = run_adaptive(
            proto, fig_dir, resume=resume, progress=progress, overwrite=overwrite
        )
        cells = len(set(runs["cell_id"]))  # the cells the search evaluated
        write_parquet_atomic(runs, fig_dir / "runs.parquet")
    elif proto.kind == "simulate":
        runs = run_cells(
            proto.cells,
            fig_dir,
            resume=resume,
            executor=executor,
            progress=progress,
            ray_address=ray_address,
            overwrite=overwrite,
        )
    fig_dir.mkdir(parents=True, exist_ok=True)
    points, summary = fig.summarise(runs, proto)
    lines, ok = fig.verdict(points, summary, proto)
    summary |= {"verdicts": lines, "ok": ok}
    if record is not None:
        summary["adaptive"] = record
        summary["verdicts"] = summary["verdicts"] + adaptive_lines(proto, record)
    write_parquet_atomic(points, fig_dir / "points.parquet")
    images = render(lambda: fig.plot(points, summary), proto.title, fig_dir / proto.name)
    summary = summary | {
        "figure": proto.name,
        "preset": proto.preset,
        "title": proto.title,
        "claim": proto.claim,
        "notes": proto.notes,
        "cells": cells,
        "runs": proto.total_runs if record is None else record["runs_used"],
        "grid_runs": proto.total_runs,
        "images": [str(p.relative_to(out)) for p in images],
    }
    write_json_atomic(jsonable(summary), fig_dir / "summary.json")
    return summary


def _section(summary: Summary, out: Path) -> Section:
    """A figure's section of the report: its claim, verdict, lines, protocol, image."""
    ok = summary.get("ok")
    word = "reproduced" if ok else "not reproduced" if ok is not None else "n/a"
    extra = f"; {summary['seconds']:.0f} s" if "seconds" in summary else ""
    notes = [f"Protocol: {summary.get('notes', '')} ({summary.get('cells', 0)} cells{extra})"]
    if rec := summary.get("adaptive"):
        n = len(rec["groups"])
        notes.append(
            f"Adaptive threshold search ({n} threshold{'s' if n > 1 else ''}, target: "
            f"{rec.get('target', 'grid width')}): {rec['runs_used']} runs instead of "
            f"{rec['grid_runs']} on the full n grid (saving {rec['saving']:.0%})."
        )
    png = next((p for p in summary.get("images", []) if p.endswith(".png")), None)
    return Section(
        summary["title"],
        verdict=word,
        claim=summary["claim"],
        claim_label="Paper's claim.",
        lines=summary["verdicts"],
        notes=notes,
        image=None if png is None else out / png,
        anchor=summary["figure"],
    )


def reproduce(
    figure: str,
    preset: str = "quick",
    out: str | os.PathLike[str] = "reproduce",
    *,
    resume: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    solver: str = "gd",
    progress: bool = True,
    adaptive: bool | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Reproduce ``figure`` (fig2..fig6 or ``all``) under ``preset`` into ``out``.

    ``adaptive``: Figs. 3–5 search each threshold adaptively instead of running
    the full n grid, and report the runs used against the grid's (module doc);
    ``False`` runs the grid; ``None`` (default) does what each protocol says (the
    paper preset of Figs. 4 and 5 searches). Figs. 2 and 6 ignore it.

    Returns ``{"figures": {name: summary}, "report": {"md": path, "html": path,
    "json": path}, "seconds": {name: wall time}}``. With ``progress`` the runner shows
    its bar and each figure's verdict lines are printed.
    """
    if figure != "all" and figure not in FIGURES:
        allowed = (*FIGURES, "all")
        raise ShallowflowInputError("figure", f"unknown figure {figure!r}; choose one of {allowed}")
    protos = protocols(figure, preset, solver)  # checks preset and solver: before mkdir
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    summaries, seconds = {}, {}
    for proto in protos:
        start = time.perf_counter()
        summaries[proto.name] = run_protocol(
            proto,
            out_path,
            resume=resume,
            executor=executor,
            ray_address=ray_address,
            progress=progress,
            adaptive=adaptive,
            overwrite=overwrite,
        )
        seconds[proto.name] = time.perf_counter() - start
        summaries[proto.name]["seconds"] = seconds[proto.name]
        if progress:
            _print_verdicts(summaries[proto.name])
    paths = write_figures_report(list(summaries.values()), out_path)
    return {"figures": summaries, "report": paths, "seconds": seconds}


def write_figures_report(summaries: list[Summary], out: Path) -> dict[str, Path]:
    """``out/report.md``, ``.html`` and ``.json``: each figure beside the paper's claim."""
    preset = summaries[0]["preset"]
    report = Report(
        f"shallowflow — reproduction of the paper's figures ({preset} preset)",
        sections=[_section(s, out) for s in summaries],
        data={"preset": preset, "figures": {s["figure"]: s for s in summaries}},
    )
    return write_report(report, out, "report")


def _print_verdicts(summary: Summary) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold]{escape(summary['title'])}[/bold] ({summary['seconds']:.0f} s)")
    for line in summary["verdicts"]:
        console.print(f"  {escape(line)}")
