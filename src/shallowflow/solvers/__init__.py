"""The solvers of the flow dθ/dt = −p∇L (SPEC §1, §3b), one module each:

- :mod:`.gd`: gradient descent with step η (the paper's protocol, η = 1);
- :mod:`.exact`: the exact flow through the ReLU kinks, event-driven and Filippov
  (piecewise-linear activations);
- :mod:`.smooth`: the exact flow of a C¹ activation, an error-controlled Runge–Kutta
  loop with no events;
- :mod:`.floor`: the older diffrax flow with a step floor (kept for comparison);
- :mod:`.common`: what they return (:class:`~.common.Trajectory`) and how a run ends
  (:class:`~.common.Outcome`).

:func:`solve` picks one by name; every solver reads the same per-run values.
"""

from __future__ import annotations

from typing import Any, NamedTuple, get_args

import jax
import numpy as np

from shallowflow.activations import Activation
from shallowflow.config import SolverName
from shallowflow.data import Size
from shallowflow.errors import ShallowflowInputError
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers import exact, floor, gd, smooth
from shallowflow.solvers.common import Trajectory

SOLVERS = get_args(SolverName)  # one vocabulary: the configuration's


class SolveValues(NamedTuple):
    """A run's solver knobs (traced; each solver reads those it uses): host arrays,
    stacked over the runs of a call, that the program sees traced."""

    lr: np.ndarray | jax.Array
    stop_loss: np.ndarray | jax.Array
    diverge_factor: np.ndarray | jax.Array
    rtol: np.ndarray | jax.Array
    atol: np.ndarray | jax.Array
    dtmin: np.ndarray | jax.Array


def solve(
    name: str,
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    values: SolveValues,
    *,
    act: Activation,
    tail: int,
    method: str,
    max_steps: int,
    size: Size,
    levels: jax.Array | None = None,
    stop_rule: str = "inclusive",
) -> Trajectory | exact.Flow:
    """Solve one run with the solver ``name`` (gd | flow | flow-floor), recording θ at
    ``grid`` (GD: steps; flows: times). ``size``: the run's number of real entries of θ
    (the flows' error norm); ``max_steps``: the flows' step cap; ``levels``: losses at
    which the run is measured again (GD and the exact flow); ``stop_rule``: GD's
    (:func:`.gd.solve`; the config refuses another than 'inclusive' for the flows). The
    exact flow returns its
    :class:`~.exact.Flow` (a trajectory with its event statistics and rates): event-driven
    for a piecewise-linear ``act`` (:mod:`.exact`), a plain adaptive Runge–Kutta loop for
    a C¹ one (:mod:`.smooth`)."""
    if name not in SOLVERS:
        raise ShallowflowInputError("solver", f"unknown {name!r}; allowed: {SOLVERS}")
    if name == "gd":
        return gd.solve(
            geom,
            prob,
            state0,
            grid,
            lr=values.lr,
            stop_loss=values.stop_loss,
            diverge_factor=values.diverge_factor,
            act=act,
            tail=tail,
            levels=levels,
            rule=stop_rule,
        )
    flows: dict[str, Any] = dict(
        rtol=values.rtol,
        atol=values.atol,
        stop_loss=values.stop_loss,
        diverge_factor=values.diverge_factor,
        act=act,
        max_steps=max_steps,
        size=size,
    )
    if name == "flow" and act.piecewise_linear:  # kinks: events
        return exact.solve(geom, prob, state0, grid, tail=float(tail), levels=levels, **flows)
    if name == "flow":  # C¹: no events
        return smooth.solve(geom, prob, state0, grid, tail=float(tail), levels=levels, **flows)
    return floor.solve(geom, prob, state0, grid, dtmin=values.dtmin, method=method, **flows)


__all__ = ["SolveValues", "Trajectory", "solve"]
