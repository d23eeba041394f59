"""Studies: questions the paper leaves open, each answered by one module with its cells,
its analysis (a table of numbers), its verdict in words and its figure.

A study module holds ``NAME``, ``TITLE``, ``QUESTION``, ``ASKED_BY`` (the paper, or a
public review), ``PRESETS``,
``cells(preset, seed)``, ``summarise(runs, preset) -> (table, summary)``,
``verdict(table, summary) -> (lines, numbers)`` and ``plot(table, summary)``;
:func:`run_study` runs its cells with the resumable runner (with the module's own
``simulate_batch(cells, group) -> tables`` where it has one, to add per-run columns read
from the records; or, for an adaptive design,
the module's own ``simulate(preset, out, resume=..., overwrite=..., progress=...) ->
runs``, which keeps the same rules: stored evaluations are reused with ``resume`` and
refused without ``resume`` or ``overwrite``; it runs locally) and writes
``runs.parquet``, ``table.parquet``, ``summary.json``, the figure and a report
(``study.md``, ``study.html``, ``study.json``; the table's section is titled
``TABLE_TITLE`` and listed by ``table_lines(table)`` where the module has them). Its
first verdict line is its headline: the answer as a number with its interval and the
protocol it holds under.
:func:`~shallowflow.experiments.studies.questions.run_all` (``shallowflow study all``)
runs every study and writes the open-questions report.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.batch import run_cells, simulate_batch
from shallowflow.experiments.protocol import preset_name
from shallowflow.experiments.studies import (
    activations,
    conjecture1,
    constants,
    flow,
    groupinit,
    initialisation,
    kernels,
    smallinit,
    width,
)
from shallowflow.plots import render
from shallowflow.report.writer import Report, Section, jsonable, write_report
from shallowflow.storage import write_json_atomic, write_parquet_atomic

__all__ = ["ALL", "STUDIES", "run_study", "study"]

STUDIES: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        conjecture1,
        flow,
        width,
        initialisation,
        activations,
        smallinit,
        groupinit,
        kernels,
        constants,
    )
}
ALL = "all"  # ``shallowflow study all``: every study and the open-questions report


def study(name: str) -> ModuleType:
    """The module of study ``name``."""
    if name not in STUDIES:
        raise ShallowflowInputError(
            "study", f"unknown study {name!r}; choose one of {(*STUDIES, ALL)}"
        )
    return STUDIES[name]


def run_study(
    name: str,
    preset: str = "quick",
    out: str | os.PathLike[str] = "out/study",
    *,
    resume: bool = False,
    overwrite: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run study ``name`` under ``preset`` into ``out`` (module doc); return its summary
    with the verdict lines and the paths written."""
    module = study(name)
    preset = preset_name(preset)
    out = Path(out)
    if hasattr(module, "simulate"):  # an adaptive design runs its own searches, locally
        runs = module.simulate(preset, out, resume=resume, overwrite=overwrite, progress=progress)
        write_parquet_atomic(runs, out / "runs.parquet")
    else:
        runs = run_cells(
            module.cells(preset),
            out,
            getattr(module, "simulate_batch", simulate_batch),
            resume=resume,
            overwrite=overwrite,
            executor=executor,
            ray_address=ray_address,
            progress=progress,
        )
    table, summary = module.summarise(runs, preset)
    lines, numbers = module.verdict(table, summary)
    write_parquet_atomic(table, out / "table.parquet")
    images = render(lambda: module.plot(table, summary), module.TITLE, out / name)
    summary = summary | {"study": name, "preset": preset, "verdicts": lines, "numbers": numbers}
    write_json_atomic(jsonable(summary), out / "summary.json")
    report = Report(
        f"shallowflow study — {module.TITLE} ({preset} preset)",
        intro=[f"**Question.** {module.QUESTION}"],
        sections=[
            Section(
                "Answer",
                claim=module.QUESTION,
                claim_label="Question.",
                lines=lines,
                image=images[0],
                anchor=name,
            ),
            Section(
                getattr(module, "TABLE_TITLE", "Table"),
                lines=_table_lines(module, table),
                anchor="table",
            ),
        ],
        data=summary | {"table": table.to_dict("records")},
    )
    paths = write_report(report, out, "study")
    return summary | {"report": paths, "table": table}


def _table_lines(module: ModuleType, table) -> list[str]:
    """The study's table as lines: its own ``table_lines`` when it has one, else each
    row's fields in order."""
    if hasattr(module, "table_lines"):
        return module.table_lines(table)
    return [
        " · ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in row.items()
        )
        for row in table.to_dict("records")
    ]
