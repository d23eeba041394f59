"""``shallowflow study all``: every study, and one report of the open questions.

Each study runs into ``out/<name>/`` (its own runs, table, figure and report, resumable
as ``shallowflow study NAME`` is), then ``out/open_questions.{md,html,json}`` gathers
them: a table with one row per question (the question, who asked it: the paper or a
public review, the study's answer, and links to its section and its own report), and
one section per study with its verdict lines and figure.

The answer in a row is the study's first verdict line, which every study writes as
its headline: a number with its interval and the protocol it holds under.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shallowflow.experiments.protocol import preset_name
from shallowflow.report.writer import Link, Report, Section, write_report

__all__ = ["QUESTIONS_STEM", "run_all"]

QUESTIONS_STEM = "open_questions"


def run_all(
    preset: str = "quick",
    out: str | os.PathLike[str] = "out/study",
    **options: Any,
) -> dict[str, Any]:
    """Run every study of :data:`~shallowflow.experiments.studies.STUDIES` under
    ``preset`` into ``out/<name>/`` (``options`` as for
    :func:`~shallowflow.experiments.studies.run_study`), then write the open-questions
    report; return ``{name: summary}`` with the report's paths under ``"report"``."""
    from shallowflow.experiments.studies import STUDIES, run_study

    preset = preset_name(preset)
    out = Path(out)
    results = {name: run_study(name, preset, out / name, **options) for name in STUDIES}
    paths = write_questions(results, preset, out)
    return {"studies": results, "report": paths}


def write_questions(results: dict[str, dict[str, Any]], preset: str, out: Path):
    """The open-questions report of finished studies (``results``: name → the summary
    :func:`run_study` returned), written to ``out/open_questions.*``."""
    from shallowflow.experiments.studies import study

    rows, sections, data = [], [], []
    for name, res in results.items():
        module = study(name)
        headline = res["verdicts"][0] if res["verdicts"] else "no verdict"
        rows.append(
            [
                module.QUESTION,
                module.ASKED_BY,
                headline,
                Link("answer", f"#{name}"),
                Link("study", f"{name}/study.html#{name}", f"{name}/study.md"),
            ]
        )
        sections.append(
            Section(
                module.TITLE,
                claim=module.QUESTION,
                claim_label="Question.",
                lines=[f"Asked by {module.ASKED_BY}.", *res["verdicts"]],
                image=out / name / f"{name}.png",
                anchor=name,
            )
        )
        data.append(
            {
                "study": name,
                "question": module.QUESTION,
                "asked_by": module.ASKED_BY,
                "verdicts": res["verdicts"],
                "numbers": res.get("numbers", {}),
            }
        )
    report = Report(
        f"shallowflow — open questions ({preset} preset)",
        intro=[
            "The questions the paper and its public reviews leave open, each answered by "
            "one study (`shallowflow study NAME`); every number carries its 95% interval "
            "and the protocol it holds under."
        ],
        table=(["question", "asked by", "answer", "", "report"], rows),
        sections=sections,
        data={"preset": preset, "questions": data},
    )
    return write_report(report, out, QUESTIONS_STEM)
