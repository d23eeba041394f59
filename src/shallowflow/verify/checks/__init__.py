"""The paper's claims as checks (SPEC §1–§5), one module each: its function
``check(params, fig_dir) -> CheckResult`` with a stated numerical criterion, its
parameters per preset and the simulations it asks for (``CHECK``). Parameters also
carry the knobs a test uses to plant a violation (a wrong formula, a wrong prediction,
a tolerance that cannot hold), so that every check is seen to FAIL when its claim is
false. To add a check, add a module with a ``CHECK`` and list it in :data:`CHECKS`.
"""

from __future__ import annotations

from shallowflow.verify.checks import (
    conjecture1,
    lemma1,
    orthogonal_bounds,
    proposition2,
    scaling,
    theorem1,
    theorem2,
    width,
)
from shallowflow.verify.checks.common import prefetch
from shallowflow.verify.ledger import Check

CHECKS: tuple[Check, ...] = tuple(
    m.CHECK
    for m in (
        lemma1,
        width,
        theorem1,
        orthogonal_bounds,
        proposition2,
        theorem2,
        conjecture1,
        scaling,
    )
)

__all__ = ["CHECKS", "prefetch"]
