"""The solvers of the flow dθ/dt = −p∇L (SPEC §1, §3b), one module each, each a small
frozen spec (:class:`~.base.Solver`, in the manner of diffrax's solver objects):

- :class:`~.gd.GD` (:mod:`.gd`): gradient descent with step η (the paper's protocol,
  η = 1);
- :class:`~.flow.ExactFlow` (:mod:`.flow`): the exact flow, event-driven and Filippov
  through the kinks of a piecewise-linear activation (:mod:`.exact`), an
  error-controlled Runge–Kutta loop with no events for a C¹ one (:mod:`.smooth`);
- :class:`~.floor.FloorFlow` (:mod:`.floor`): the older diffrax flow with a step floor
  (kept for comparison);
- :mod:`.common`: what they return (:class:`~.common.Trajectory`) and how a run ends
  (:class:`~.common.Outcome`).

:data:`SOLVERS` maps the configuration's name of a solver (``solver="gd"``) to its
spec's class: the one place a solver is chosen by name. A new solver is one module
with one :class:`~.base.Solver` subclass, whose ``solve`` takes the run as one
:class:`~.base.SolveArgs`, made known by :func:`register`.
"""

from __future__ import annotations

from shallowflow.errors import ShallowflowInputError
from shallowflow.solvers.base import SolveArgs, Solver
from shallowflow.solvers.common import Trajectory
from shallowflow.solvers.floor import FloorFlow
from shallowflow.solvers.flow import ExactFlow
from shallowflow.solvers.gd import GD

SOLVERS: dict[str, type[Solver]] = {"gd": GD, "flow": ExactFlow, "flow-floor": FloorFlow}


def register(name: str, cls: type[Solver]) -> None:
    """Make the solver ``cls`` known to the configuration as ``solver=name``."""
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise TypeError(f"register: {cls!r} is not a Solver subclass")
    SOLVERS[name] = cls


def solver_class(name: str) -> type[Solver]:
    """The spec class of the solver named ``name``."""
    if name not in SOLVERS:
        raise ShallowflowInputError("solver", f"unknown {name!r}; allowed: {tuple(SOLVERS)}")
    return SOLVERS[name]


__all__ = [
    "GD",
    "SOLVERS",
    "ExactFlow",
    "FloorFlow",
    "SolveArgs",
    "Solver",
    "Trajectory",
    "register",
    "solver_class",
]
