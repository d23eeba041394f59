"""One run, from its key to its records: start → solve → measure (SPEC §1–§3b).

What a compiled program bakes in is a cell's :class:`Signature` (laws, geometry,
solver, activation, records, precision); everything that may differ between the runs
of one call is a :class:`RunValues` row (key, sizes, value knobs, record grid).
:func:`run_one` is pure and jit/vmap-able: it draws the run's start
(:mod:`shallowflow.start`) into the padded ``shape``, solves it
(the cell's solver spec, :mod:`shallowflow.solvers`) and measures it at the recorded times
(:mod:`shallowflow.observables`), with the rate μ of the trajectory actually followed
(SPEC §2: the Filippov rate for the exact flow, the realised rate for GD) beside the
state's p‖∇L‖²/L (``mu_state``). The engine (:mod:`shallowflow.engine`) batches it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow.activations import Activation, parse_activation
from shallowflow.config import SimConfig
from shallowflow.geometry import Geometry, to_user, working_dim
from shallowflow.heldout import test_loss
from shallowflow.kernel import mu_inf_kernel
from shallowflow.model import forward
from shallowflow.observables import (
    a_sign_changes,
    assumption1,
    assumption1_margins,
    balance,
    coverage,
    fitted,
    measure,
    neuron_norms2,
    norms,
)
from shallowflow.solvers import SolveArgs, Solver
from shallowflow.solvers.common import Levels, Outcome, Trajectory
from shallowflow.solvers.exact import Flow
from shallowflow.start import (
    DrawSpec,
    DrawValues,
    Shape,
    UserArrays,
    draw_spec,
    draw_values,
    make_padded_run,
)


@dataclass(frozen=True)
class Signature:
    """What one compiled program bakes in: every knob but the sizes and the values."""

    draw: DrawSpec
    solver: Solver  # its compiled-in part (Solver.split)
    activation: Activation
    tail: int  # mu(t_inf)'s window in the solver's units (Solver.tail_window)
    records: int
    precision: str
    keep_state: bool
    kernel: bool = False  # measure mu_inf_kernel
    levels: int = 0  # loss levels measured on the way
    user: tuple[bool, ...] = (False,) * 4  # which user arrays (X, y, W, a) are given
    fitted: bool = False  # record the number of fitted examples (RecordSpec.fitted)


class StopValues(NamedTuple):
    """When every solver stops a run (traced): below ``stop_loss``, or above
    ``diverge_factor``·L(0)."""

    stop_loss: np.ndarray | jax.Array
    diverge_factor: np.ndarray | jax.Array


class RunValues(NamedTuple):
    """Everything a run needs that is not baked into its program (one row per run):
    host arrays, stacked over the runs of a call, that the program sees traced."""

    key: np.ndarray | jax.Array  # (2,) uint32: the cell's key data
    index: np.ndarray | jax.Array  # the run's index in its cell
    draw: DrawValues
    grid: np.ndarray | jax.Array  # (K,) recorded steps (GD) or times (flow)
    times: np.ndarray | jax.Array  # (K,) the recorded times (Solver.times of the grid)
    stop: StopValues
    solver: tuple[np.ndarray | jax.Array, ...]  # the solver's traced fields (Solver.split)
    levels: np.ndarray | jax.Array  # (L,) loss levels (RecordSpec.levels)


def signature(cfg: SimConfig, user: UserArrays | None = None) -> Signature:
    """The compiled signature of a cell (:class:`Signature`)."""
    given = tuple(u is not None for u in (user or UserArrays()))
    spec = cfg.solver.spec
    return Signature(
        draw_spec(cfg),
        spec.split()[0],
        parse_activation(cfg.init.activation),
        spec.tail_window(cfg.record.tail),
        int(cfg.record.record),
        cfg.run.precision,
        bool(cfg.record.keep_state),
        bool(cfg.record.kernel),
        len(cfg.record.levels),
        given,
        bool(cfg.record.fitted),
    )


def record_grid(cfg: SimConfig) -> np.ndarray:
    """Recorded times: ``cfg.record.record`` points on [0, horizon], linear or
    log-spaced, in the solver's units (:meth:`~shallowflow.solvers.Solver.record_grid`:
    integer steps for GD, unique, so possibly fewer points)."""
    return cfg.solver.spec.record_grid(cfg.solver.horizon, cfg.record.record, cfg.record.grid)


def _key_data(seed: int) -> np.ndarray:
    return np.asarray(jax.random.key_data(jax.random.key(seed)), np.uint32)


def run_values(cfg: SimConfig, records: int, dtype) -> RunValues:
    """The per-run values of a cell's ``cfg.run.runs`` runs, stacked (leading axis:
    runs), with the record grid padded to ``records`` points by repeating its end."""
    r = cfg.run.runs
    grid = record_grid(cfg)
    padded = np.concatenate([grid, np.repeat(grid[-1:], records - grid.size)])

    def full(x, dt=dtype):
        return np.full(r, x, dt)

    types = (np.int32, np.int32, np.int32, dtype, dtype, dtype, dtype, np.int32) + (dtype,) * 4
    draw = DrawValues(*(full(x, t) for x, t in zip(draw_values(cfg), types, strict=True)))
    spec = cfg.solver.spec
    return RunValues(
        key=np.tile(_key_data(cfg.run.seed), (r, 1)),
        index=np.arange(r, dtype=np.int32),
        draw=draw,
        grid=np.tile(padded.astype(np.int32 if spec.discrete else dtype), (r, 1)),
        times=np.tile(spec.times(padded).astype(dtype), (r, 1)),
        stop=StopValues(full(cfg.solver.stop_loss), full(cfg.solver.diverge_factor)),
        solver=tuple(full(x) for x in spec.split()[1]),
        levels=np.tile(np.asarray(cfg.record.levels, dtype), (r, 1)),
    )


def _gd_rates(loss: jax.Array, times: jax.Array) -> jax.Array:
    """The realised rate of GD over each record interval, log(L_{k−1}/L_k)/(t_k − t_{k−1})
    at record k (record 0 carries the first interval's)."""
    dt = jnp.diff(times)
    rate = jnp.log(loss[:-1] / loss[1:]) / jnp.where(dt > 0, dt, 1.0)
    rate = jnp.where(dt > 0, rate, 0.0)
    return jnp.concatenate([rate[:1], rate])


def _gd_final_rate(loss, times, valid, loss_end, t_end, fallback) -> jax.Array:
    """GD's realised rate over the last record interval, up to the stop."""
    before = valid & (times < t_end)
    last = jnp.maximum(jnp.sum(before) - 1, 0)
    dt = t_end - times[last]
    rate = jnp.log(loss[last] / loss_end) / jnp.where(dt > 0, dt, 1.0)
    return jnp.where(jnp.any(before) & (dt > 0), rate, fallback)


def _at_levels(geom, prob, lev: Levels, loss0, act, kernel: bool) -> dict[str, jax.Array]:
    """The end-of-run measures at each loss level (K,): time, loss, μ(t_∞), ⟨μ⟩ and the
    kernel's rate; a level not reached has NaN everywhere (null in the tables)."""
    reached = jnp.isfinite(lev.t)
    out = {
        "level_t": lev.t,
        "level_loss": lev.loss,
        "level_mu_tail": lev.tail,
        "level_mu_mean": jnp.log(loss0 / lev.loss) / jnp.maximum(lev.t, 1e-30),
    }
    if kernel:
        # lax.map, not vmap: a batched LAPACK eigensolver deadlocks when runs are shared
        # over several CPU devices (as the batched Cholesky did, solvers/filippov.py)
        rate = jax.lax.map(lambda s: mu_inf_kernel(geom, s, prob, act), lev.states)
        out["level_mu_kernel"] = rate
    return {k: jnp.where(reached, v, jnp.nan) for k, v in out.items()}


def _solve(
    sig: Signature, geom: Geometry, start, max_steps: int, v: RunValues
) -> Trajectory | Flow:
    """Solve the run with the cell's solver: its compiled-in spec bound to the run's
    traced values."""
    grid, levels = jnp.asarray(v.grid), jnp.asarray(v.levels)
    size = v.draw.p * (working_dim(sig.draw.geometry, v.draw.n, v.draw.d, jnp.minimum) + 1)
    args = SolveArgs(
        geom=geom,
        prob=start.prob,
        state0=start.state,
        grid=grid,
        stop_loss=v.stop.stop_loss,
        diverge_factor=v.stop.diverge_factor,
        act=sig.activation,
        tail=sig.tail,
        max_steps=max_steps,
        size=size,
        levels=levels if sig.levels else None,
    )
    return sig.solver.bind(v.solver).solve(args)


def _solution_rates(
    sig: Signature, traj: Trajectory | Flow, records: dict, final: dict, times: jax.Array
) -> dict[str, jax.Array]:
    """Replace the state's μ by the rate of the solution actually followed (SPEC §2):
    the exact flow's Filippov rate, or a discrete solver's realised rate
    log(L_k/L_{k+1})/η averaged; return the run's solver statistics (steps, and the
    exact flow's event counts)."""
    records["mu_state"] = records["mu"]
    final["mu_state"] = final["mu"]
    if isinstance(traj, Flow):
        records["mu"] = traj.rates
        records["mu_integral"] = traj.integral
        final["mu"] = traj.rate_final
        final["mu_integral"] = traj.integral_final
        return dict(traj.stats._asdict())
    if sig.solver.discrete:
        records["mu"] = _gd_rates(records["loss"], times)
        final["mu"] = _gd_final_rate(
            records["loss"], times, traj.valid, final["loss"], traj.t_final, final["mu"]
        )
    return {"steps": traj.steps}


def run_one(
    sig: Signature, shape: Shape, max_steps: int, v: RunValues, user: UserArrays
) -> dict[str, dict[str, jax.Array] | jax.Array]:
    """Simulate one run in arrays of the static ``shape``; return its ``records`` (at the
    recorded times), ``valid`` mask, ``final`` and ``init`` measures (and ``state``
    with ``sig.keep_state``)."""
    geom = Geometry(sig.draw.geometry, sig.precision)
    # The program's values are traced (asarray is then the identity); host ones work too.
    key = jax.random.fold_in(jax.random.wrap_key_data(jnp.asarray(v.key)), v.index)
    if user.W is not None and user.W.ndim == 3:  # one saved state per run
        a = None if user.a is None else user.a[v.index]
        user = user._replace(W=user.W[v.index], a=a)
    start = make_padded_run(key, sig.draw, shape, v.draw, user, keep=sig.keep_state)
    prob, s0 = start.prob, start.state
    act = sig.activation
    traj = _solve(sig, geom, start, max_steps, v)
    meas = _measures(geom, start, act, sig.fitted)
    if jax.default_backend() == "cpu":  # XLA:CPU's batched matvecs are ~3x slower
        records = jax.lax.map(meas, traj.states)
    else:
        records = jax.vmap(meas)(traj.states)
    final = dict(meas(traj.final))
    loss0 = records["loss"][0]
    stats = _solution_rates(sig, traj, records, final, jnp.asarray(v.times))
    final.update(
        t_final=traj.t_final,
        steps=stats.pop("steps"),
        status=traj.status,
        # a diverged run's window holds no rate of convergence: null, not a number
        mu_tail=jnp.where(traj.status == Outcome.DIVERGED, jnp.nan, traj.tail_rate),
        mu_mean=jnp.log(loss0 / final["loss"]) / jnp.maximum(traj.t_final, 1e-30),
        a_sign_changes=a_sign_changes(s0, traj.final),
    )
    final.update(stats)
    if "crossings" in stats and act.piecewise_linear:
        # the exact flow's cost per event: evaluations / (crossings + slide entries)
        events = jnp.maximum(stats["crossings"] + stats["slides"], 1)
        final["evals_per_event"] = stats["evals"] / events
    if sig.kernel:
        final["mu_inf_kernel"] = mu_inf_kernel(geom, traj.final, prob, act)
    if sig.levels:
        if traj.levels is None:  # the config allows levels with solvers that measure them
            raise ValueError(f"levels: {type(sig.solver).__name__} does not measure them")
        final.update(_at_levels(geom, prob, traj.levels, loss0, act, sig.kernel))
    init = {
        "loss0": loss0,
        "mu0": records["mu_state"][0],
        "assumption1": assumption1(s0, start.off2),
        **assumption1_margins(s0, start.off2, v.draw.p),
        "coverage0": coverage(geom, s0, prob, act=act),
        "draws": start.draws,
    }
    out = {"records": records, "valid": traj.valid, "final": final, "init": init}
    if sig.keep_state:
        out["state"] = final_state(sig.draw.geometry, traj.final, start)
    return out


def _measures(geom: Geometry, start, act: Activation, count_fitted: bool = False):
    """The per-record observables of a run's states: :func:`measure`'s, the norms
    (:func:`norms`), with held-out data ``test_loss`` and with ``count_fitted`` the
    examples fitted to half their label (:func:`fitted`)."""
    s0, prob = start.state, start.prob
    norms0 = neuron_norms2(s0, start.off2)
    meas = functools.partial(
        measure, geom, prob=prob, balance0=balance(s0, act), scale0=jnp.max(norms0), act=act
    )

    def one(state):
        out = meas(state) | norms(state, start.off2, norms0)
        if start.held is not None:
            out["test_loss"] = test_loss(state, start.held, prob.sizes(state)[1], act)
        if count_fitted:
            out["fitted"] = fitted(forward(geom, state, prob, act), prob)
        return out

    return one


def final_state(geometry: str, final, start) -> dict[str, jax.Array]:
    """The final state in the user's coordinates: ``a`` (p,) and ``W`` (p, d); for the
    implicit geometry, where no d-vector exists, ``a``, the in-span coordinates ``V``
    (p, n) in the data's own (never formed) basis and the off-span ‖w_j‖² ``off2`` (p,)."""
    if geometry == "implicit":
        return {"a": final.a, "V": final.v, "off2": start.off2}
    if geometry == "dense":
        return {"a": final.a, "W": final.v}
    return {"a": final.a, "W": to_user(final.v, start.lift.frame, start.lift.off)}
