"""One run, from its key to its records: start → solve → measure (SPEC §1–§3b).

What a compiled program bakes in is a cell's :class:`Signature` (laws, geometry,
solver, activation, records, precision); everything that may differ between the runs
of one call is a :class:`RunValues` row (key, sizes, value knobs, record grid).
:func:`run_one` is pure and jit/vmap-able: it draws the run's start
(:mod:`shallowflow.start`) into the padded ``shape``, solves it
(:func:`shallowflow.solvers.solve`) and measures it at the recorded times
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

from shallowflow.config import SimConfig
from shallowflow.geometry import Geometry, to_user, working_dim
from shallowflow.heldout import test_loss
from shallowflow.kernel import mu_inf_kernel
from shallowflow.model import forward
from shallowflow.observables import (
    assumption1,
    assumption1_margins,
    balance,
    coverage,
    fitted,
    measure,
    neuron_norms2,
    norms,
)
from shallowflow.solvers import SolveValues, solve
from shallowflow.solvers.common import Levels, Outcome
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
    solver: str
    activation_slope: float
    method: str
    tail: int  # mu(t_inf)'s window: GD steps, or units of time for the flows
    records: int
    precision: str
    keep_state: bool
    kernel: bool = False  # measure mu_inf_kernel
    levels: int = 0  # loss levels measured on the way
    user: tuple[bool, ...] = (False,) * 4  # which user arrays (X, y, W, a) are given
    stop_rule: str = "inclusive"  # GD's (SolverSpec.stop_rule)
    fitted: bool = False  # record the number of fitted examples (RecordSpec.fitted)


class RunValues(NamedTuple):
    """Everything a run needs that is not baked into its program (one row per run):
    host arrays, stacked over the runs of a call, that the program sees traced."""

    key: np.ndarray | jax.Array  # (2,) uint32: the cell's key data
    index: np.ndarray | jax.Array  # the run's index in its cell
    draw: DrawValues
    grid: np.ndarray | jax.Array  # (K,) recorded steps (GD) or times (flow)
    times: np.ndarray | jax.Array  # (K,) the recorded times (SolverSpec.times of the grid)
    solve: SolveValues
    levels: np.ndarray | jax.Array  # (L,) loss levels (RecordSpec.levels)


def signature(cfg: SimConfig, user: UserArrays | None = None) -> Signature:
    """The compiled signature of a cell (:class:`Signature`)."""
    given = tuple(u is not None for u in (user or UserArrays()))
    return Signature(
        draw_spec(cfg),
        cfg.solver.name,
        float(cfg.init.activation_slope),
        cfg.solver.method,
        cfg.solver.steps(cfg.record.tail) if cfg.solver.gd else int(cfg.record.tail),
        int(cfg.record.points),
        cfg.run.precision,
        bool(cfg.record.keep_state),
        bool(cfg.record.kernel),
        len(cfg.record.levels),
        given,
        cfg.solver.stop_rule,
        bool(cfg.record.fitted),
    )


def record_grid(cfg: SimConfig) -> np.ndarray:
    """Recorded times: ``cfg.record.points`` points on [0, horizon], linear or
    log-spaced; integer steps for GD (unique, so possibly fewer points)."""
    solver, k = cfg.solver, cfg.record.points
    if solver.gd:
        steps = solver.steps(solver.horizon)
        if cfg.record.grid == "log":
            g = np.unique(np.round(np.geomspace(1, steps, k - 1)).astype(np.int64))
            return np.concatenate([[0], g])
        return np.unique(np.round(np.linspace(0, steps, k)).astype(np.int64))
    if cfg.record.grid == "log":
        return np.concatenate([[0.0], np.geomspace(solver.horizon * 1e-4, solver.horizon, k - 1)])
    return np.linspace(0.0, solver.horizon, k)


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

    types = (np.int32, np.int32, np.int32, dtype, dtype, dtype, dtype, np.int32)
    draw = DrawValues(*(full(x, t) for x, t in zip(draw_values(cfg), types, strict=True)))
    s = cfg.solver
    knobs = (s.lr, s.stop_loss, s.diverge_factor, s.rtol, s.atol, s.step_floor)
    return RunValues(
        key=np.tile(_key_data(cfg.run.seed), (r, 1)),
        index=np.arange(r, dtype=np.int32),
        draw=draw,
        grid=np.tile(padded.astype(np.int32 if s.gd else dtype), (r, 1)),
        times=np.tile(s.times(padded).astype(dtype), (r, 1)),
        solve=SolveValues(*(full(x) for x in knobs)),
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


def _at_levels(geom, prob, lev: Levels, loss0, slope, kernel: bool) -> dict[str, jax.Array]:
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
        rate = jax.lax.map(lambda s: mu_inf_kernel(geom, s, prob, slope), lev.states)
        out["level_mu_kernel"] = rate
    return {k: jnp.where(reached, v, jnp.nan) for k, v in out.items()}


def run_one(
    sig: Signature, shape: Shape, max_steps: int, v: RunValues, user: UserArrays
) -> dict[str, dict[str, jax.Array] | jax.Array]:
    """Simulate one run in arrays of the static ``shape``; return its ``records`` (at the
    recorded times), ``valid`` mask, ``final`` and ``init`` measures (and ``state``
    with ``sig.keep_state``)."""
    geom = Geometry(sig.draw.geometry, sig.precision)
    # The program's values are traced (asarray is then the identity); host ones work too.
    grid, times, levels = jnp.asarray(v.grid), jnp.asarray(v.times), jnp.asarray(v.levels)
    key = jax.random.fold_in(jax.random.wrap_key_data(jnp.asarray(v.key)), v.index)
    if user.W is not None and user.W.ndim == 3:  # one saved state per run
        a = None if user.a is None else user.a[v.index]
        user = user._replace(W=user.W[v.index], a=a)
    start = make_padded_run(key, sig.draw, shape, v.draw, user, keep=sig.keep_state)
    prob, s0 = start.prob, start.state
    slope = sig.activation_slope
    size = v.draw.p * (working_dim(sig.draw.geometry, v.draw.n, v.draw.d, jnp.minimum) + 1)
    traj = solve(
        sig.solver,
        geom,
        prob,
        s0,
        grid,
        v.solve,
        slope=slope,
        tail=sig.tail,
        method=sig.method,
        max_steps=max_steps,
        size=size,
        levels=levels if sig.levels else None,
        stop_rule=sig.stop_rule,
    )
    meas = _measures(geom, start, slope, sig.fitted)
    if jax.default_backend() == "cpu":  # XLA:CPU's batched matvecs are ~3x slower
        records = jax.lax.map(meas, traj.states)
    else:
        records = jax.vmap(meas)(traj.states)
    end = meas(traj.final)
    loss0 = records["loss"][0]
    records["mu_state"] = records["mu"]
    final = dict(end)
    final["mu_state"] = end["mu"]
    stats: dict[str, jax.Array] = {}
    if isinstance(traj, Flow):  # the rate of the Filippov solution actually followed
        records["mu"] = traj.rates
        records["mu_integral"] = traj.integral
        final["mu"] = traj.rate_final
        final["mu_integral"] = traj.integral_final
        stats = dict(traj.stats._asdict())
        steps = stats.pop("steps")
    else:
        steps = traj.steps
    if sig.solver == "gd":  # the realised rate, log(L_k/L_{k+1})/η averaged
        records["mu"] = _gd_rates(records["loss"], times)
        final["mu"] = _gd_final_rate(
            records["loss"], times, traj.valid, end["loss"], traj.t_final, end["mu"]
        )
    final.update(
        t_final=traj.t_final,
        steps=steps,
        status=traj.status,
        # a diverged run's window holds no rate of convergence: null, not a number
        mu_tail=jnp.where(traj.status == Outcome.DIVERGED, jnp.nan, traj.tail_rate),
        mu_mean=jnp.log(loss0 / end["loss"]) / jnp.maximum(traj.t_final, 1e-30),
    )
    final.update(stats)
    if stats:  # the exact flow's cost per event: evaluations / (crossings + slide entries)
        events = jnp.maximum(stats["crossings"] + stats["slides"], 1)
        final["evals_per_event"] = stats["evals"] / events
    if sig.kernel:
        final["mu_inf_kernel"] = mu_inf_kernel(geom, traj.final, prob, slope)
    if sig.levels:
        if traj.levels is None:  # the config allows levels with gd and flow only
            raise ValueError(f"levels: the {sig.solver} solver does not measure them")
        final.update(_at_levels(geom, prob, traj.levels, loss0, slope, sig.kernel))
    init = {
        "loss0": loss0,
        "mu0": records["mu_state"][0],
        "assumption1": assumption1(s0, start.off2),
        **assumption1_margins(s0, start.off2, v.draw.p),
        "coverage0": coverage(geom, s0, prob),
        "draws": start.draws,
    }
    out = {"records": records, "valid": traj.valid, "final": final, "init": init}
    if sig.keep_state:
        out["state"] = final_state(sig.draw.geometry, traj.final, start)
    return out


def _measures(geom: Geometry, start, slope: float, count_fitted: bool = False):
    """The per-record observables of a run's states: :func:`measure`'s, the norms
    (:func:`norms`), with held-out data ``test_loss`` and with ``count_fitted`` the
    examples fitted to half their label (:func:`fitted`)."""
    s0, prob = start.state, start.prob
    norms0 = neuron_norms2(s0, start.off2)
    meas = functools.partial(
        measure, geom, prob=prob, balance0=balance(s0), scale0=jnp.max(norms0), slope=slope
    )

    def one(state):
        out = meas(state) | norms(state, start.off2, norms0)
        if start.held is not None:
            out["test_loss"] = test_loss(state, start.held, prob.sizes(state)[1], slope)
        if count_fitted:
            out["fitted"] = fitted(forward(geom, state, prob, slope), prob)
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
