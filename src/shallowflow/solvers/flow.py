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
from shallowflow.solvers.base import SolveArgs, Solver

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

    def solve(self, args: SolveArgs) -> exact.Flow:
        """:func:`.exact.solve` for a piecewise-linear σ, else :func:`.smooth.solve`."""
        run = exact.solve if args.act.piecewise_linear else smooth.solve
        return run(
            args.geom,
            args.prob,
            args.state0,
            args.grid,
            rtol=self.rtol,
            atol=self.atol,
            stop_loss=args.stop_loss,
            diverge_factor=args.diverge_factor,
            act=args.act,
            tail=float(args.tail),
            max_steps=args.max_steps,
            size=args.size,
            levels=args.levels,
        )
