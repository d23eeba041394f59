"""Reports: each figure beside the paper's claim and a verdict with its numbers.

``write_report(summaries, out)`` writes ``out/report.md`` (images linked by
relative path) and a self-contained ``out/report.html`` (PNG images embedded
as base64). A summary is the dict returned by
:func:`shallowflow.experiments.reproduce.run_protocol`: ``title``, ``claim``,
``notes``, ``verdicts`` (lines), ``ok``, ``images`` (paths relative to ``out``),
and, for an adaptive threshold search, ``adaptive`` (runs used against the
grid's, shown as its own line under the protocol).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["markdown", "page", "write_report"]

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
section { display: flex; gap: 1.5em; align-items: flex-start; border-top: 1px solid #ddd;
          padding: 1em 0; }
section img { max-width: 560px; width: 55%; }
.claim { background: #f4f4f8; padding: .5em .8em; border-left: 3px solid #778; }
.ok { color: #176a2c; font-weight: bold; } .no { color: #a3271b; font-weight: bold; }
ul { padding-left: 1.2em; } li { margin: .25em 0; } .notes { color: #666; font-size: .9em; }
"""


def _verdict_word(ok: bool | None) -> str:
    return "reproduced" if ok else "not reproduced" if ok is not None else "n/a"


def _adaptive(summary: dict[str, Any]) -> str | None:
    """One line on the adaptive design: runs used against the full grid's, per group."""
    rec = summary.get("adaptive")
    if not rec:
        return None
    n = len(rec["groups"])
    return (
        f"Adaptive threshold search ({n} threshold{'s' if n > 1 else ''}, target: "
        f"{rec.get('target', 'grid width')}): {rec['runs_used']} runs instead of "
        f"{rec['grid_runs']} on the full n grid (saving {rec['saving']:.0%})."
    )


def _png(summary: dict[str, Any]) -> str | None:
    return next((p for p in summary.get("images", []) if p.endswith(".png")), None)


def markdown(summaries: Sequence[dict[str, Any]], preset: str = "") -> str:
    """The report as Markdown, one section per figure."""
    lines = [f"# shallowflow — reproduction of the paper's figures ({preset} preset)", ""]
    lines.append(f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}.")
    for s in summaries:
        lines += ["", f"## {s['title']}", ""]
        if png := _png(s):
            lines += [f"![{s['figure']}]({png})", ""]
        lines += [f"**Paper's claim.** {s['claim']}", ""]
        lines += [f"**Verdict: {_verdict_word(s.get('ok'))}.**", ""]
        lines += [f"- {v}" for v in s["verdicts"]]
        extra = f"; {s['seconds']:.0f} s" if "seconds" in s else ""
        lines += ["", f"*Protocol:* {s.get('notes', '')} ({s.get('cells', 0)} cells{extra})"]
        if adaptive := _adaptive(s):
            lines += ["", f"*{adaptive}*"]
    return "\n".join(lines) + "\n"


def _img_tag(out: Path, rel: str | None) -> str:
    if rel is None or not (out / rel).exists():
        return ""
    data = base64.b64encode((out / rel).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'


def page(summaries: Sequence[dict[str, Any]], out: Path, preset: str = "") -> str:
    """The report as one self-contained HTML page (images inlined)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>shallowflow report ({esc(preset)})</title><style>{CSS}</style></head><body>",
        f"<h1>shallowflow — reproduction of the paper's figures ({esc(preset)} preset)</h1>",
    ]
    for s in summaries:
        ok = s.get("ok")
        cls = "ok" if ok else "no"
        items = "".join(f"<li>{esc(v)}</li>" for v in s["verdicts"])
        adaptive = _adaptive(s)
        extra = f'<p class="notes">{esc(adaptive)}</p>' if adaptive else ""
        parts.append(
            f"<h2>{esc(s['title'])}</h2><section>{_img_tag(out, _png(s))}<div>"
            f'<p class="claim"><b>Paper\'s claim.</b> {esc(s["claim"])}</p>'
            f'<p>Verdict: <span class="{cls}">{_verdict_word(ok)}</span></p><ul>{items}</ul>'
            f'<p class="notes">Protocol: {esc(s.get("notes", ""))}</p>{extra}</div></section>'
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    summaries: Sequence[dict[str, Any]], out: str | Path, preset: str = ""
) -> tuple[Path, Path]:
    """Write ``out/report.md`` and the self-contained ``out/report.html``; return both paths."""
    out = Path(out)
    md_path, html_path = out / "report.md", out / "report.html"
    _write_text(md_path, markdown(summaries, preset))
    _write_text(html_path, page(summaries, out, preset))
    return md_path, html_path


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace``: readers never see half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
