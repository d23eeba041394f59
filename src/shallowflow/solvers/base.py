"""What a solver is: a small frozen spec, in the manner of diffrax's solver objects.

A spec (:class:`Solver`) holds the solver's own knobs (GD's η and stop rule, the exact
flow's tolerances, the floored flow's floor and method) and owns everything that
depends on which solver runs:

- its **clock**: the record grid is in the solver's own units (:meth:`Solver.record_grid`:
  GD's integer steps, the flows' times), :meth:`Solver.times` turns a grid into times
  and :meth:`Solver.steps` a time into steps; nothing else converts between the two;
- its **split** into what a compiled program bakes in (:meth:`Solver.split`: the spec
  with its traced fields zeroed, hashed into the program's signature) and what each
  run carries traced (the values of its :attr:`Solver.traced` fields);
  :meth:`Solver.bind` joins them again inside the program;
- its **step cap** (:meth:`Solver.max_steps`, static) and its checks against the
  horizon (:meth:`Solver.check`);
- its **solve** (:meth:`Solver.solve`), which takes one :class:`SolveArgs` (the run:
  the same for every solver, defined once here) and answers with one
  :class:`~.common.Trajectory` (the exact flow with its :class:`~.exact.Flow`).

Every field of a spec is named as the configuration's knob it is read from
(:meth:`Solver.from_knobs`), so a new solver with the knobs of an old one needs no
change to the configuration; the name a cell gives (``solver="gd"``) is looked up
once, in :data:`shallowflow.solvers.SOLVERS`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, NamedTuple, Self

import jax
import numpy as np

from shallowflow.activations import Activation
from shallowflow.data import Real, Size
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers.common import Trajectory
from shallowflow.solvers.exact import Flow


class SolveArgs(NamedTuple):
    """What the engine gives every solver's :meth:`Solver.solve`: one run, everything
    but the solver's own options (those are the spec's fields). Defined once, so a new
    solver takes it whole and reads the fields it needs."""

    geom: Geometry
    """The data geometry (SPEC §3): dense, reduced, diagonal or implicit coordinates."""
    prob: Problem
    """The run's examples and labels in those coordinates (padded to static sizes)."""
    state0: State
    """θ(0) = (a, W) in those coordinates."""
    grid: jax.Array
    """The record grid in the solver's units (:meth:`Solver.record_grid`: GD's integer
    steps, a flow's times)."""
    stop_loss: Real
    """Stop, converged, at this loss (SPEC §5: 1/(2n) by default)."""
    diverge_factor: Real
    """Stop, diverged, once the loss exceeds diverge_factor·L(0)."""
    act: Activation
    """σ (SPEC §6): a compiled-in spec."""
    tail: int
    """μ(t_∞)'s window in the solver's units (:meth:`Solver.tail_window`, SPEC §5)."""
    max_steps: int
    """The static cap on the solver's steps (:meth:`Solver.max_steps`; 0: none)."""
    size: Size
    """The run's real entries of θ, p·(D + 1) unpadded: an RMS norm's count."""
    levels: jax.Array | None
    """Losses at which the run is measured again (``--levels``), or None."""


@dataclass(frozen=True)
class Solver(abc.ABC):
    """A solver of dθ/dt = −p∇L, or of its time discretisation (SPEC §1, §3b).

    Class attributes say what kind of solver it is: ``static`` names the fields baked
    into the compiled program (the others are traced per run, so cells that differ
    only in them share one program); ``discrete``: a map θ_{k+1} = Φ(θ_k) whose grid
    is in steps and whose μ is the realised rate between records (GD), else a flow
    recorded at times, reporting its own rates; ``measures_levels``: whether its
    :meth:`solve` measures the run at loss levels."""

    static: ClassVar[tuple[str, ...]] = ()
    discrete: ClassVar[bool] = False
    measures_levels: ClassVar[bool] = True

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        """The configuration knobs this solver reads: its fields' names."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, Any]) -> Self:
        """The spec of resolved knobs (a mapping with at least :meth:`knobs`)."""
        return cls(**{name: knobs[name] for name in cls.knobs()})

    # ------------------------------------------------------------------- the clock

    @property
    def unit(self) -> float:
        """The time one unit of the grid lasts: a step of η for a discrete solver, 1
        for a flow (its grid is time)."""
        return 1.0

    def steps(self, t: float) -> int:
        """Units of the grid in time ``t``, at least one (a flow's: ⌊t⌉)."""
        return max(1, int(round(t / self.unit)))

    def times(self, grid: np.ndarray) -> np.ndarray:
        """The times of a record grid."""
        return np.asarray(grid, np.float64) * self.unit

    def default_horizon(self, steps: float) -> float:
        """The horizon, in time, of ``steps`` paper steps T(n, p) (SPEC §5: the paper's
        GD steps are steps of η, so GD's horizon is T·η; a flow's is T)."""
        return steps * self.unit

    def record_grid(self, horizon: float, points: int, spacing: str) -> np.ndarray:
        """``points`` recorded times on [0, horizon], linear or log-spaced (log: 0, then
        from horizon·1e-4); a discrete solver's are integer steps, made unique (so
        possibly fewer points)."""
        if self.discrete:
            steps = self.steps(horizon)
            if spacing == "log":
                g = np.unique(np.round(np.geomspace(1, steps, points - 1)).astype(np.int64))
                return np.concatenate([[0], g])
            return np.unique(np.round(np.linspace(0, steps, points)).astype(np.int64))
        if spacing == "log":
            return np.concatenate([[0.0], np.geomspace(horizon * 1e-4, horizon, points - 1)])
        return np.linspace(0.0, horizon, points)

    def tail_window(self, tail: float) -> int:
        """μ(t_∞)'s window of ``tail`` units of time in the solver's units: GD steps
        (``tail``/η of them), or the time itself for a flow (SPEC §5)."""
        return self.steps(tail) if self.discrete else int(tail)

    def max_steps(self, horizon: float) -> int:
        """The static cap on the solver's steps over ``horizon`` (0: none needed)."""
        return 0

    def check(self, horizon: float, tail: float) -> None:
        """Refuse a horizon or μ(t_∞) window the solver cannot run (``ValueError``
        "knob: why"); none by default."""
        del horizon, tail  # a flow runs any finite horizon

    # ------------------------------------------------------------------- the split

    @classmethod
    def traced(cls) -> tuple[str, ...]:
        """The fields a run carries as traced values (all but :attr:`static`)."""
        return tuple(name for name in cls.knobs() if name not in cls.static)

    def split(self) -> tuple[Self, tuple[float, ...]]:
        """(what a compiled program bakes in, a run's traced values): the spec with its
        traced fields set to 0 (hashable, one per program), and those fields' values."""
        names = self.traced()
        return replace(self, **dict.fromkeys(names, 0.0)), tuple(
            float(getattr(self, n)) for n in names
        )

    def bind(self, values: tuple[Any, ...]) -> Self:
        """The compiled-in spec with a run's traced values put back (inside the
        program: the values are tracers)."""
        return replace(self, **dict(zip(self.traced(), values, strict=True)))

    # ------------------------------------------------------------------- the solve

    @abc.abstractmethod
    def solve(self, args: SolveArgs) -> Trajectory | Flow:
        """Solve one run (:class:`SolveArgs`: its problem, start, record grid, stops and
        measures) with this spec's own options."""
