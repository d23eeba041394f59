"""The ledger of the paper's claims: checks, verdicts, and the reports they make.

A :class:`Check` is a named claim with a function ``fn(params, fig_dir)`` returning a
:class:`CheckResult` and one parameter set per preset. :func:`run_checks` runs a
selection and gathers a :class:`Ledger`, which writes ``verify.md``, a
self-contained ``verify.html`` and ``verify.json`` with the one report writer
(:mod:`shallowflow.report`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.protocol import preset_name
from shallowflow.report.format import value
from shallowflow.report.writer import Report, Section, write_report


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
        """The check's parameters under ``preset`` (a fresh dict)."""
        return dict(self.presets[preset])


@dataclass(frozen=True)
class Ledger:
    """Results of one ``verify`` run. ``ok`` is True iff no check FAILed."""

    preset: str
    results: tuple[CheckResult, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True iff no check FAILed."""
        return all(r.verdict != Verdict.FAIL for r in self.results)

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        """Number of checks per verdict."""
        return {v.value: sum(r.verdict == v for r in self.results) for v in Verdict}

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``verify.md``, ``verify.html`` and ``verify.json`` into ``out``."""
        Path(out).mkdir(parents=True, exist_ok=True)
        return write_report(ledger_report(self), out, "verify")


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
    preset = preset_name(preset)
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


def ledger_data(ledger: Ledger) -> dict[str, Any]:
    """The ledger as data (``verify.json``)."""
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
                "numbers": r.numbers,
            }
            for r in ledger.results
        ],
    }


def ledger_report(ledger: Ledger) -> Report:
    """The ledger as a :class:`~shallowflow.report.Report`: a table of verdicts, then
    each check's claim, criterion, numbers and figure."""
    c = ledger.counts()
    intro = (
        f"**{'OK' if ledger.ok else 'FAILED'}** — {c['PASS']} PASS, {c['FAIL']} FAIL, "
        f"{c['INCONCLUSIVE']} INCONCLUSIVE in {ledger.seconds:.1f} s"
    )
    rows = [
        (f"`{r.name}`", r.claim, r.criterion, r.summary, r.verdict.value) for r in ledger.results
    ]
    sections = [
        Section(
            f"{r.name} — {r.verdict.value} ({r.seconds:.1f} s)",
            verdict=r.verdict.value,
            claim=r.claim,
            criterion=r.criterion,
            lines=[f"`{k}`: {value(v)}" for k, v in r.numbers.items()],
            image=r.figure,
            anchor=r.name,
        )
        for r in ledger.results
    ]
    return Report(
        f"shallowflow verify — preset `{ledger.preset}`",
        intro=[intro],
        table=(("check", "claim", "criterion", "result", "verdict"), rows),
        sections=sections,
        data=ledger_data(ledger),
        dated=False,
    )
