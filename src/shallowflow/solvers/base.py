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
- its **solve** (:meth:`Solver.solve`), which every solver answers with one
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
from typing import Any, ClassVar, Self

import jax
import numpy as np

from shallowflow.activations import Activation
from shallowflow.data import Real, Size
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers.common import Trajectory
from shallowflow.solvers.exact import Flow


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
    def solve(
        self,
        geom: Geometry,
        prob: Problem,
        state0: State,
        grid: jax.Array,
        *,
        stop_loss: Real,
        diverge_factor: Real,
        act: Activation,
        tail: int,
        max_steps: int,
        size: Size,
        levels: jax.Array | None,
    ) -> Trajectory | Flow:
        """Solve one run from ``state0``, recording θ at ``grid`` (the solver's units):
        stop at ``stop_loss`` (converged) or above ``diverge_factor``·L(0) (diverged);
        μ(t_∞) over the last ``tail`` (:meth:`tail_window`); ``max_steps``: the step cap
        (:meth:`max_steps`); ``size``: the run's real entries of θ (padding);
        ``levels``: losses at which the run is measured again, or None."""
