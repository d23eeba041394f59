"""The gradient flow with a floored step (``solver="flow-floor"``), integrated by diffrax.

Kept for comparison with the exact event-driven flow (:mod:`shallowflow.solvers.exact`,
``solver="flow"``), which is the default flow solver: this one does not meet its
tolerance on a sliding surface, and it reports μ = p‖∇L‖²/L at states that may sit a
rounding error off an activation boundary (SPEC §3b).

An adaptive explicit Runge–Kutta method (Tsit5 by default, 5th order with an
embedded 4th-order error estimate; Dopri5 and Dopri8 on request) with a PID step
controller at relative/absolute tolerances.

For a C¹ activation (``act``: relu_power, monomials, softplus, GELU) the field is
continuous and the floor never binds at a tolerance the controller can meet. The ReLU
flow is a discontinuous (Filippov) system: a neuron whose pre-activation
on an example is driven to 0 from both sides slides along ⟨w_j, x_i⟩ = 0, where no
explicit method can meet a tolerance. The step is therefore floored at ``dtmin``
(``force_dtmin``): away from sliding the tolerances hold; on a sliding surface the
error is that of a step ``dtmin``. Orthogonal data never slide (an inactive neuron
receives no gradient along that example): they only meet isolated kinks, where a
small floor (the engine uses 1e-6) lets the controller meet the tolerance.

The solve terminates at the first step where the loss is ≤ ``stop_loss`` (converged),
or non-finite / above
``diverge_factor``·L(0) (diverged). It shares :func:`shallowflow.model.vector_field`
with GD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import diffrax
import jax
import jax.numpy as jnp

from shallowflow.activations import Activation, relu
from shallowflow.data import Real
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, forward, vector_field
from shallowflow.observables import mu
from shallowflow.solvers.base import SolveArgs, Solver
from shallowflow.solvers.common import Outcome, Trajectory, exploded

METHODS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8}


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    rtol: Real,
    atol: Real,
    stop_loss: Real,
    diverge_factor: Real = 1e6,
    act: Activation = relu,
    dtmin: Real = 1e-2,
    method: str = "tsit5",
    max_steps: int = 2_010_000,
    size=None,
) -> Trajectory:
    """Integrate the flow from ``state0`` and record θ at the times ``grid`` (sorted,
    last = horizon). ``max_steps`` (static) caps the number of steps. ``size``: the
    number of real entries of θ when it is padded (the error norm is the RMS over
    them, so padding does not loosen the tolerance); default all."""
    geom, z = geom.for_solver(prob.z)
    prob = prob._replace(z=z)
    loss0 = forward(geom, state0, prob, act).loss
    dtype = loss0.dtype

    def field(t, y, args):
        return vector_field(geom, y, prob, act)

    def stop(t, y, args, **kwargs):
        loss = forward(geom, y, prob, act).loss
        return (loss <= stop_loss) | exploded(loss, loss0, diverge_factor)

    t1 = grid[-1]
    count = sum(x.size for x in jax.tree_util.tree_leaves(state0)) if size is None else size

    def rms(tree):  # padded entries of the error are exactly 0
        sq = sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree))
        return jnp.sqrt(sq / count)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        METHODS[method](),
        t0=jnp.zeros((), dtype),
        t1=t1,
        dt0=None,
        y0=state0,
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=grid), diffrax.SubSaveAt(t1=True)]),
        stepsize_controller=diffrax.PIDController(
            rtol=rtol, atol=atol, dtmin=dtmin, force_dtmin=True, norm=rms
        ),
        event=diffrax.Event(stop),
        max_steps=max_steps,
        throw=False,
    )
    assert sol.ts is not None and sol.ys is not None  # saveat asks for both
    ts, ys = sol.ts[0], sol.ys[0]
    final = jax.tree_util.tree_map(lambda x: x[0], sol.ys[1])
    t_final = sol.ts[1][0]
    valid = jnp.isfinite(ts) & (grid <= t_final)
    states = jax.tree_util.tree_map(
        lambda x, f: jnp.where(valid.reshape((-1,) + (1,) * f.ndim), x, f[None]), ys, final
    )
    last = forward(geom, final, prob, act).loss
    status = jnp.where(
        exploded(last, loss0, diverge_factor),
        Outcome.DIVERGED,
        jnp.where(last <= stop_loss, Outcome.CONVERGED, Outcome.HORIZON),
    )
    steps = sol.stats["num_accepted_steps"]
    # For the flow, μ(t_∞) is μ at the final state: −d/dt log L exactly (SPEC §2).
    rate = mu(geom, final, prob, act)
    return Trajectory(grid, states, valid, final, t_final, steps, status, rate)


# Cap on the floored flow's steps: horizon/floor, at most this, plus 10 000.
FLOW_MAX_STEPS = 2_000_000


@dataclass(frozen=True)
class FloorFlow(Solver):
    """The flow at tolerances ``rtol``, ``atol`` with its step floored at ``dtmin``
    (all three traced per run), integrated by the Runge–Kutta ``method`` (compiled in);
    the grid is in time. It does not measure the run at loss levels."""

    rtol: float
    atol: float
    dtmin: float
    method: Literal["tsit5", "dopri5", "dopri8"] = "tsit5"

    static: ClassVar[tuple[str, ...]] = ("method",)
    measures_levels: ClassVar[bool] = False

    def max_steps(self, horizon: float) -> int:
        """horizon/floor steps (at most :data:`FLOW_MAX_STEPS`), plus 10 000 rejected."""
        return min(int(horizon / self.dtmin), FLOW_MAX_STEPS) + 10_000

    def solve(self, args: SolveArgs) -> Trajectory:
        """:func:`solve` (no μ(t_∞) window, no levels: the tail rate is the state's μ)."""
        return solve(
            args.geom,
            args.prob,
            args.state0,
            args.grid,
            rtol=self.rtol,
            atol=self.atol,
            stop_loss=args.stop_loss,
            diverge_factor=args.diverge_factor,
            act=args.act,
            dtmin=self.dtmin,
            method=self.method,
            max_steps=args.max_steps,
            size=args.size,
        )
