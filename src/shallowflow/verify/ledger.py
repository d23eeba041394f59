"""The ledger of the paper's claims: checks, verdicts, and the reports they make.

A :class:`Check` is a named claim with a function ``fn(params, fig_dir)`` returning a
:class:`CheckResult` and one parameter set per preset. :func:`run_checks` runs a
selection and gathers a :class:`Ledger`, which writes ``verify.md``, a
self-contained ``verify.html`` (figures embedded as base64) and ``verify.json``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shallowflow.errors import ShallowflowInputError

PRESETS = ("quick", "full")


class Verdict(StrEnum):
    """Outcome of a check: the criterion holds, fails, or the numbers cannot decide."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class CheckResult:
    """One claim, its numerical criterion, the verdict and the numbers behind it.

    ``summary`` is the one-line headline shown in the table; ``numbers`` holds every
    measured quantity (JSON-serialisable); ``figure`` is a PNG path or None.
    """

    name: str
    claim: str
    criterion: str
    verdict: Verdict
    numbers: dict[str, Any]
    figure: Path | None = None
    summary: str = ""
    seconds: float = 0.0


CheckFn = Callable[[Mapping[str, Any], Path | None], CheckResult]


@dataclass(frozen=True)
class Check:
    """A registered claim: its function and its parameters for each preset.

    ``configs(params)`` lists the simulations the check will ask for, so that the
    ledger can run those of every selected check together (``prefetch``) before the
    checks read them."""

    name: str
    fn: CheckFn
    presets: Mapping[str, Mapping[str, Any]]
    configs: Callable[[Mapping[str, Any]], list[Any]] | None = None

    def params(self, preset: str) -> dict[str, Any]:
        return dict(self.presets[preset])


@dataclass(frozen=True)
class Ledger:
    """Results of one ``verify`` run. ``ok`` is True iff no check FAILed."""

    preset: str
    results: tuple[CheckResult, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.verdict != Verdict.FAIL for r in self.results)

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {v.value: sum(r.verdict == v for r in self.results) for v in Verdict}

    def to_markdown(self, out: Path | None = None) -> str:
        return markdown(self, out)

    def to_html(self) -> str:
        return render_html(self)

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``verify.md``, ``verify.html`` and ``verify.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / "verify.md", "html": out / "verify.html", "json": out / "verify.json"}
        paths["md"].write_text(markdown(self, out), encoding="utf-8")
        paths["html"].write_text(render_html(self), encoding="utf-8")
        paths["json"].write_text(json.dumps(to_jsonable(self), indent=2), encoding="utf-8")
        return paths


# ---------------------------------------------------------------------------
# Running


def select(checks: Sequence[Check], only: str | Sequence[str] | None) -> list[Check]:
    """The checks named in ``only`` (a name, a comma-separated list, or a sequence)."""
    if only is None:
        return list(checks)
    names = [s.strip() for s in only.split(",")] if isinstance(only, str) else list(only)
    known = {c.name for c in checks}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ShallowflowInputError(
            "only", f"unknown check {unknown or names!r}; allowed: {sorted(known)}"
        )
    return [c for c in checks if c.name in names]


def run_checks(
    checks: Sequence[Check],
    preset: str = "quick",
    out: str | Path | None = None,
    only: str | Sequence[str] | None = None,
    progress: bool = True,
    prefetch: Callable[[list[Any]], None] | None = None,
) -> Ledger:
    """Run the selected checks with the preset's parameters and gather a :class:`Ledger`.

    A check that raises is recorded as FAIL with the error in its numbers. With
    ``out``, figures go to ``out/figures`` and the reports to ``out``. ``prefetch``
    receives the configurations of every selected check first (one batched
    simulation; a failure there is left for the checks to meet and report).
    """
    if preset not in PRESETS:
        raise ShallowflowInputError("preset", f"must be one of {PRESETS}; got {preset!r}")
    chosen = select(checks, only)
    fig_dir = None
    if out is not None:
        fig_dir = Path(out) / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if prefetch is not None:
        wanted = [c for ch in chosen if ch.configs for c in ch.configs(ch.params(preset))]
        if progress:
            print(f"[verify] simulating {len(wanted)} cells …", file=sys.stderr, flush=True)
        try:
            prefetch(wanted)
        except Exception:  # noqa: S110 - each check reruns what it needs and reports
            pass
    results = []
    for check in chosen:
        t0 = time.perf_counter()
        if progress:
            print(f"[verify] {check.name} …", file=sys.stderr, flush=True)
        try:
            res = check.fn(check.params(preset), fig_dir)
        except Exception as exc:  # a crash is a failed claim, not a lost ledger
            res = CheckResult(
                check.name,
                "(check crashed)",
                "runs to completion",
                Verdict.FAIL,
                {"error": f"{type(exc).__name__}: {exc}"},
                None,
                f"error: {exc}",
            )
        res = CheckResult(**{**res.__dict__, "seconds": time.perf_counter() - t0})
        results.append(res)
        if progress:
            print(
                f"[verify] {check.name}: {res.verdict.value} ({res.seconds:.1f} s) {res.summary}",
                file=sys.stderr,
                flush=True,
            )
    ledger = Ledger(preset, tuple(results), time.perf_counter() - start)
    if out is not None:
        ledger.write(out)
    return ledger


# ---------------------------------------------------------------------------
# Reports


def _fmt(x: Any) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.4g}"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in x.items()) + "}"
    return str(x)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _jsonable(x.item())
    return x


def to_jsonable(ledger: Ledger) -> dict[str, Any]:
    return {
        "preset": ledger.preset,
        "ok": ledger.ok,
        "seconds": ledger.seconds,
        "counts": ledger.counts(),
        "checks": [
            {
                "name": r.name,
                "claim": r.claim,
                "criterion": r.criterion,
                "verdict": r.verdict.value,
                "summary": r.summary,
                "seconds": r.seconds,
                "figure": None if r.figure is None else str(r.figure),
                "numbers": _jsonable(r.numbers),
            }
            for r in ledger.results
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(ledger: Ledger, out: Path | None = None) -> str:
    """The ledger as Markdown: a table of verdicts, then each check's numbers."""
    c = ledger.counts()
    lines = [
        f"# shallowflow verify — preset `{ledger.preset}`",
        "",
        f"**{'OK' if ledger.ok else 'FAILED'}** — {c['PASS']} PASS, {c['FAIL']} FAIL, "
        f"{c['INCONCLUSIVE']} INCONCLUSIVE in {ledger.seconds:.1f} s",
        "",
        "| check | claim | criterion | result | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in ledger.results:
        lines.append(
            f"| `{r.name}` | {_cell(r.claim)} | {_cell(r.criterion)} | {_cell(r.summary)} "
            f"| **{r.verdict.value}** |"
        )
    for r in ledger.results:
        lines += ["", f"## {r.name} — {r.verdict.value} ({r.seconds:.1f} s)", "", r.claim, ""]
        lines += [f"*Criterion:* {r.criterion}", ""]
        lines += [f"- `{k}`: {_fmt(v)}" for k, v in r.numbers.items()]
        if r.figure is not None:
            rel = r.figure
            if out is not None:
                try:
                    rel = r.figure.relative_to(out)
                except ValueError:
                    pass
            lines += ["", f"![{r.name}]({rel.as_posix()})"]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;font-size:0.9em}.PASS{background:#d9f2d9}.FAIL{background:#f8d0d0}
.INCONCLUSIVE{background:#fdf1c7}img{max-width:100%}code{font-size:0.9em}
"""


def _img(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(ledger: Ledger) -> str:
    """The ledger as one self-contained HTML page (figures embedded as base64 PNG)."""
    e = html.escape
    c = ledger.counts()
    rows = "".join(
        f'<tr><td><a href="#{e(r.name)}"><code>{e(r.name)}</code></a></td><td>{e(r.claim)}</td>'
        f"<td>{e(r.criterion)}</td><td>{e(r.summary)}</td>"
        f'<td class="{r.verdict.value}"><b>{r.verdict.value}</b></td></tr>'
        for r in ledger.results
    )
    sections = []
    for r in ledger.results:
        items = "".join(f"<li><code>{e(k)}</code>: {e(_fmt(v))}</li>" for k, v in r.numbers.items())
        sections.append(
            f'<h2 id="{e(r.name)}">{e(r.name)} — <span class="{r.verdict.value}">'
            f"{r.verdict.value}</span> ({r.seconds:.1f} s)</h2><p>{e(r.claim)}</p>"
            f"<p><i>Criterion:</i> {e(r.criterion)}</p><ul>{items}</ul>{_img(r.figure)}"
        )
    status = "OK" if ledger.ok else "FAILED"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>shallowflow verify</title>"
        f"<style>{_CSS}</style></head><body><h1>shallowflow verify — preset "
        f"<code>{e(ledger.preset)}</code></h1><p><b>{status}</b> — {c['PASS']} PASS, "
        f"{c['FAIL']} FAIL, {c['INCONCLUSIVE']} INCONCLUSIVE in {ledger.seconds:.1f} s</p>"
        f"<table><tr><th>check</th><th>claim</th><th>criterion</th><th>result</th>"
        f"<th>verdict</th></tr>{rows}</table>{''.join(sections)}</body></html>\n"
    )


def save_figure(
    fig_dir: Path | None, name: str, draw: Callable[[list], None], ncols: int = 1
) -> Path | None:
    """Draw with ``draw(axes)`` on a matplotlib figure (Agg, no pyplot) and save it as
    ``<fig_dir>/<name>.png``; nothing is drawn without ``fig_dir``."""
    if fig_dir is None:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * ncols, 3.6), dpi=90)
    axes = [fig.add_subplot(1, ncols, k + 1) for k in range(ncols)]
    draw(axes)
    fig.tight_layout()
    path = Path(fig_dir) / f"{name}.png"
    fig.savefig(path)
    return path
