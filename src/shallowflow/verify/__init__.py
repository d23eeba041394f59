"""``shallowflow verify``: a ledger of the paper's claims, each a check with a stated
numerical criterion and a verdict PASS / FAIL / INCONCLUSIVE (SPEC §1–§5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shallowflow.experiments.protocol import preset_name
from shallowflow.storage import directory_lock, keep_finished
from shallowflow.verify.checks import CHECKS, prefetch
from shallowflow.verify.ledger import (
    Check,
    CheckResult,
    Ledger,
    Verdict,
    run_checks,
    select,
)


def run_verify(
    preset: str = "quick",
    out: str | Path | None = None,
    only: str | Sequence[str] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Ledger:
    """Run the checks of :data:`CHECKS` (all, or those named in ``only``) with the
    ``preset``'s parameters; with ``out``, write verify.md / verify.html / verify.json
    and the figures there, holding the directory's lock, and keep a finished ledger in
    ``out`` unless ``overwrite``. ``Ledger.ok`` is True iff no check FAILed."""
    if out is None:
        return run_checks(CHECKS, preset, None, only, progress, prefetch)
    preset_name(preset)  # bad input writes nothing, not even a lock
    select(CHECKS, only)
    out = Path(out)
    if (out / "verify.md").exists() and not overwrite:
        keep_finished(out, "a finished ledger")
    out.mkdir(parents=True, exist_ok=True)
    with directory_lock(out):
        return run_checks(CHECKS, preset, out, only, progress, prefetch)


__all__ = ["CHECKS", "Check", "CheckResult", "Ledger", "Verdict", "run_verify"]
