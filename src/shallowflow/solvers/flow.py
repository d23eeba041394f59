"""The exact gradient flow as a solver spec (``solver="flow"``, SPEC §3b).

:class:`ExactFlow` dispatches on the activation, a property of the model, not of the
cell's solver name: a piecewise-linear σ (ReLU, leaky) has kinks, crossed and slid
along by the event-driven Filippov solver (:mod:`.exact`); a C¹ σ has a continuous
field, which an error-controlled Runge–Kutta loop with no events integrates exactly to
tolerance (:mod:`.smooth`).
"""

from __future__ import annotations

from dataclasses import dataclass

from shallowflow.solvers import exact, smooth
from shallowflow.solvers.base import Solver

# Cap on the exact flow's step attempts (then the run is "stalled").
EXACT_MAX_STEPS = 50_000_000


@dataclass(frozen=True)
class ExactFlow(Solver):
    """The exact flow at relative/absolute tolerances ``rtol``, ``atol`` (both traced
    per run); the grid is in time."""

    rtol: float
    atol: float

    def max_steps(self, horizon: float) -> int:
        """A fixed cap on step attempts: the flow's steps do not scale with a floor."""
        return EXACT_MAX_STEPS

    def solve(
        self,
        geom,
        prob,
        state0,
        grid,
        *,
        stop_loss,
        diverge_factor,
        act,
        tail,
        max_steps,
        size,
        levels,
    ) -> exact.Flow:
        """:func:`.exact.solve` for a piecewise-linear ``act``, else :func:`.smooth.solve`."""
        run = exact.solve if act.piecewise_linear else smooth.solve
        return run(
            geom,
            prob,
            state0,
            grid,
            rtol=self.rtol,
            atol=self.atol,
            stop_loss=stop_loss,
            diverge_factor=diverge_factor,
            act=act,
            tail=float(tail),
            max_steps=max_steps,
            size=size,
            levels=levels,
        )
