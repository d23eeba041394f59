"""The one report writer: a :class:`Report` of :class:`Section` s as Markdown, as one
self-contained HTML page (PNG figures inlined as base64) and as JSON.

``reproduce``, ``sweep``, ``verify`` and the studies each build a Report and call
:func:`write_report`, which writes ``<stem>.md``, ``<stem>.html`` and ``<stem>.json``
atomically (:mod:`shallowflow.storage`). JSON has one policy for what it cannot hold
(:func:`jsonable`): NaN and ±inf become null.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shallowflow.storage import write_json_atomic, write_text_atomic

__all__ = ["Link", "Report", "Section", "jsonable", "markdown", "page", "write_report"]

# The CSS class of a status word (verdicts of figures and checks).
STATUS = {
    "reproduced": "ok",
    "PASS": "ok",
    "not reproduced": "no",
    "FAIL": "no",
    "INCONCLUSIVE": "maybe",
}

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
section { display: flex; gap: 1.5em; align-items: flex-start; border-top: 1px solid #ddd;
          padding: 1em 0; }
section img { max-width: 560px; width: 55%; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; font-size: .9em; }
.claim { background: #f4f4f8; padding: .5em .8em; border-left: 3px solid #778; }
.ok { color: #176a2c; font-weight: bold; } .no { color: #a3271b; font-weight: bold; }
.maybe { color: #8a6d00; font-weight: bold; }
ul { padding-left: 1.2em; } li { margin: .25em 0; } .notes { color: #666; font-size: .9em; }
"""


@dataclass(frozen=True)
class Link:
    """A table cell that links elsewhere: ``href`` relative to the report's directory
    (Markdown links to ``md_href`` when given, e.g. a ``.md`` page beside an ``.html``)."""

    text: str
    href: str
    md_href: str | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Section:
    """One figure, check or study part: its claim and criterion, a verdict word, the
    lines that carry the numbers, small print, and a figure (a PNG path)."""

    title: str
    verdict: str | None = None
    claim: str | None = None
    claim_label: str = "Claim."
    criterion: str | None = None
    lines: Sequence[str] = ()
    notes: Sequence[str] = ()
    image: Path | None = None
    anchor: str | None = None


@dataclass(frozen=True)
class Report:
    """A report: a title, a few lines under it, an optional table of rows (one per
    section, say), the sections, and the data behind it all (its JSON)."""

    title: str
    intro: Sequence[str] = ()
    table: tuple[Sequence[str], Sequence[Sequence[str | Link]]] | None = None
    sections: Sequence[Section] = ()
    data: Any = field(default_factory=dict)
    dated: bool = True


def jsonable(obj: Any) -> Any:
    """``obj`` as strict JSON values: NaN/±inf → None, NumPy scalars and arrays →
    Python, tuples → lists, paths → strings, dict keys → strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _relative(path: Path | None, out: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).relative_to(out).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _md_cell(cell: str | Link) -> str:
    if isinstance(cell, Link):
        return f"[{_md_cell(cell.text)}]({cell.md_href or cell.href})"
    return str(cell).replace("|", "\\|").replace("\n", " ")


def markdown(report: Report, out: Path) -> str:
    """The report as Markdown; figures linked by their path relative to ``out``."""
    lines = [f"# {report.title}", ""]
    if report.dated:
        lines += [f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}.", ""]
    lines += [*report.intro]
    if report.table is not None:
        head, rows = report.table
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    for s in report.sections:
        lines += ["", f"## {s.title}", ""]
        if (img := _relative(s.image, out)) is not None:
            lines += [f"![{s.anchor or s.title}]({img})", ""]
        if s.claim:
            lines += [f"**{s.claim_label}** {s.claim}", ""]
        if s.criterion:
            lines += [f"*Criterion:* {s.criterion}", ""]
        if s.verdict:
            lines += [f"**Verdict: {s.verdict}.**", ""]
        lines += [f"- {line}" for line in s.lines]
        lines += [item for note in s.notes for item in ("", f"*{note}*")]
    return "\n".join(lines) + "\n"


def _img_tag(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def _cell_html(cell: str | Link) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href)}">{html.escape(cell.text, quote=False)}</a>'
    if cell in STATUS:
        return _verdict_html(cell)
    return html.escape(str(cell), quote=False)


def _verdict_html(word: str) -> str:
    return f'<span class="{STATUS.get(word, "")}">{html.escape(word)}</span>'


def page(report: Report) -> str:
    """The report as one self-contained HTML page (figures inlined)."""

    def e(text: str) -> str:  # text nodes: quotes need no escaping
        return html.escape(text, quote=False)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        *(f"<p>{e(line)}</p>" for line in report.intro if line),
    ]
    if report.table is not None:
        head, rows = report.table
        cells = "".join(
            "<tr>" + "".join(f"<td>{_cell_html(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        parts.append(
            "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr>{cells}</table>"
        )
    for s in report.sections:
        body = []
        if s.claim:
            body.append(f'<p class="claim"><b>{e(s.claim_label)}</b> {e(s.claim)}</p>')
        if s.criterion:
            body.append(f"<p><i>Criterion:</i> {e(s.criterion)}</p>")
        if s.verdict:
            body.append(f"<p>Verdict: {_verdict_html(s.verdict)}</p>")
        if s.lines:
            body.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in s.lines) + "</ul>")
        body += [f'<p class="notes">{e(note)}</p>' for note in s.notes]
        anchor = f' id="{html.escape(s.anchor)}"' if s.anchor else ""
        parts.append(
            f"<h2{anchor}>{e(s.title)}</h2><section>{_img_tag(s.image)}"
            f"<div>{''.join(body)}</div></section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(report: Report, out: str | Path, stem: str) -> dict[str, Path]:
    """Write ``out/<stem>.md``, ``out/<stem>.html`` and ``out/<stem>.json`` (the
    report's data), each atomically; return their paths."""
    out = Path(out)
    paths = {kind: out / f"{stem}.{kind}" for kind in ("md", "html", "json")}
    write_text_atomic(markdown(report, out), paths["md"])
    write_text_atomic(page(report), paths["html"])
    write_json_atomic(jsonable(report.data), paths["json"])
    return paths
