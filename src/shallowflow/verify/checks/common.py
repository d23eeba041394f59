"""What the checks share: one simulation per configuration (prefetched together),
the engine's starts redrawn, and the verdict helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from shallowflow.config import SimConfig
from shallowflow.engine import simulate, simulate_many
from shallowflow.results import SimResult
from shallowflow.start import UserArrays, make_run
from shallowflow.verify.ledger import CheckResult, Verdict

P = Mapping[str, Any]
PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE

_RESULTS: dict[SimConfig, SimResult] = {}


def prefetch(cfgs: list[SimConfig]) -> None:
    """Simulate every configuration not yet simulated, together: cells of one
    compiled bucket share calls (:func:`shallowflow.engine.simulate_many`)."""
    todo = list(dict.fromkeys(c for c in cfgs if c not in _RESULTS))
    for cfg, res in zip(todo, simulate_many(todo), strict=True):
        _RESULTS[cfg] = res


def sim(cfg: SimConfig) -> SimResult:
    """Simulate once per configuration: checks sharing a configuration share the runs."""
    if cfg not in _RESULTS:
        prefetch([cfg])
    return _RESULTS[cfg]


def sim_user(cfg: SimConfig, user: UserArrays) -> SimResult:
    """Simulate ``cfg`` with the user's arrays (the checks' one entry to the engine)."""
    return simulate(cfg, user)


def starts(cfg: SimConfig, res: SimResult):
    """θ(0) and data of every run of ``res``, redrawn from the engine's keys (one per
    run, split from ``cfg.run.seed``); checked against the engine's recorded L(0)."""
    with jax.enable_x64(cfg.run.x64):
        keys = jax.random.split(jax.random.key(cfg.run.seed), cfg.run.runs)
        starts = jax.device_get(jax.vmap(lambda k: make_run(k, cfg))(keys))
    y = np.asarray(starts.prob.y)
    a, v, z = (np.asarray(x) for x in (starts.state.a, starts.state.v, starts.prob.z))
    pre = v * z[:, None, :] if cfg.run.geometry == "diagonal" else v @ np.swapaxes(z, 1, 2)
    loss0 = 0.5 * np.mean((y - np.einsum("rj,rji->ri", a, np.maximum(pre, 0)) / a.shape[1]) ** 2, 1)
    if not np.allclose(loss0, res.init["loss0"], rtol=1e-4):
        raise RuntimeError("redrawn starts disagree with the engine (its key scheme changed?)")
    return starts


def result(name: str, claim: str, criterion: str, verdict: Verdict, numbers: dict, fig, summ):
    """A :class:`CheckResult` from its parts, in the ledger's order."""
    return CheckResult(name, claim, criterion, verdict, numbers, fig, summ)


def worst(*verdicts: Verdict) -> Verdict:
    """FAIL if any fails, else INCONCLUSIVE if any is, else PASS."""
    if FAIL in verdicts:
        return FAIL
    return INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
