"""The exact gradient flow of a C¹ activation (relu_power, monomials, softplus, GELU;
SPEC §6): its field F = −p∇L is continuous in θ, so an error-controlled Runge–Kutta
step integrates it to tolerance, with no events and no activation pattern.

- **Steps.** Each attempt is a Dormand–Prince 5(4) step (:func:`.dopri.dopri_step`) of
  the model's field (:func:`shallowflow.model.field_from_forward`), accepted when its
  error (RMS over the run's real entries at ``rtol``/``atol``, and the loss's own
  relative error) is at most 1; the next size follows the usual controller,
  0.9 err^(−1/5) within [0.2, 5], with no floor. Steps land on the record ``grid``.
- **Stop.** A step that ends below ``stop_loss`` by more than rtol in log L is
  retaken to the stopping time, estimated by a secant on log L and then by Newton steps
  (d/dt log L = −μ), at most ``NEWTON`` times: a run stops at its stopping time with
  log L within rtol below log(stop_loss), not at the end of a step.
- **No silent stall.** A run stops ``stalled`` when its step falls to rounding level
  (STEP), after ``MAX_REJECTS`` rejected attempts in a row (REJECTS), or when its
  attempts run out (CAP), with the :class:`~.common.StallReason`.

Along the way q̇ = μ = ‖F‖²/(pL) is integrated, so q(t) = ∫₀ᵗ μ dt and
log(L(0)/L(t)) = q(t) checks the trajectory (SPEC §2). The run comes back as the event
flow's :class:`~.exact.Flow`, with event counts of 0.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.activations import Activation
from shallowflow.data import Real
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, field_from_forward, forward
from shallowflow.observables import mu_from
from shallowflow.solvers.common import (
    TAIL_BUFFER,
    Levels,
    Outcome,
    StallReason,
    exploded,
    finish_levels,
    first_step,
    level_buffers,
    push_window,
    record_levels,
    window_rate,
)
from shallowflow.solvers.dopri import dopri_step
from shallowflow.solvers.exact import MAX_REJECTS, Flow
from shallowflow.solvers.locate import NEWTON, Stats

__all__ = ["Smooth", "solve"]


class Smooth(NamedTuple):
    """The field at a state with the loss and μ = ‖F‖²/(pL)."""

    f: State
    loss: jax.Array
    mu: jax.Array


class _Ctx(NamedTuple):
    """What one solve holds fixed."""

    fn: Callable[[State], Smooth]
    grid: jax.Array
    scale: tuple  # (atol, rtol, real entries of θ)
    eps: Any
    log_stop: jax.Array
    diverge_factor: Any
    tail: float
    loss0: jax.Array
    mu0: jax.Array
    levels: jax.Array | None
    p: Any


class _Carry(NamedTuple):
    t: jax.Array
    h: jax.Array
    y: State
    q: jax.Array
    ev: Smooth
    target: jax.Array  # the stopping time being landed on (inf: none)
    tries: jax.Array  # corrections of the stopping time so far
    rec: jax.Array  # index of the next record
    states: State
    rates: jax.Array
    integral: jax.Array
    buf_t: jax.Array
    buf_l: jax.Array
    nbuf: jax.Array
    status: jax.Array
    iters: jax.Array
    streak: jax.Array  # attempts since the last accepted step
    stats: Stats
    lev: Levels | None


def _evaluate(geom: Geometry, prob: Problem, act: Activation, p, y: State) -> Smooth:
    fw = forward(geom, y, prob, act)
    f = field_from_forward(geom, y, prob, fw, act)
    return Smooth(f, fw.loss, mu_from(fw, f, p))


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    act: Activation,
    rtol,
    atol,
    stop_loss,
    diverge_factor: Real = 1e6,
    tail=100.0,
    max_steps: int = 10_000_000,
    size=None,
    levels: jax.Array | None = None,
) -> Flow:
    """Integrate the flow of the C¹ activation ``act`` from ``state0``, recording θ at the
    times ``grid`` (sorted, last = horizon); arguments as :func:`.exact.solve`'s."""
    sgeom, z = geom.for_solver(prob.z)
    sprob = prob._replace(z=z)
    _, p = prob.sizes(state0)
    dtype = state0.a.dtype
    if size is None:
        size = sum(x.size for x in jax.tree_util.tree_leaves(state0))
    fn = partial(_evaluate, sgeom, sprob, act, p)
    ev0 = fn(state0)
    ctx = _Ctx(
        fn=fn,
        grid=grid,
        scale=(jnp.asarray(atol, dtype), jnp.asarray(rtol, dtype), jnp.asarray(size, dtype)),
        eps=jnp.finfo(dtype).eps,
        log_stop=jnp.log(jnp.maximum(jnp.asarray(stop_loss, dtype), 1e-300)),
        diverge_factor=diverge_factor,
        tail=float(tail),
        loss0=ev0.loss,
        mu0=ev0.mu,
        levels=levels,
        p=p,
    )
    c0 = _start(ctx, state0, ev0, stop_loss, size)

    def going(c: _Carry):
        return (c.status == Outcome.RUNNING) & (c.iters < max_steps)

    return _finish(ctx, jax.lax.while_loop(going, partial(_attempt, ctx), c0))


def _start(ctx: _Ctx, state0: State, ev0: Smooth, stop_loss, size) -> _Carry:
    """The loop's first state: records at t = 0, the first step, the status."""
    grid, dtype = ctx.grid, state0.a.dtype
    k_rec, t_end = grid.shape[0], grid[-1]
    zero, fzero = jnp.zeros((), jnp.int32), jnp.zeros((), dtype)
    status0 = jnp.where(
        ev0.loss <= stop_loss,
        Outcome.CONVERGED,
        jnp.where(t_end <= 0, Outcome.HORIZON, Outcome.RUNNING),
    ).astype(jnp.int32)
    return _Carry(
        t=fzero,
        h=first_step(state0, ev0.f, size, t_end).astype(dtype),
        y=state0,
        q=fzero,
        ev=ev0,
        target=jnp.asarray(jnp.inf, dtype),
        tries=zero,
        rec=jnp.sum(grid <= 0).astype(jnp.int32),
        states=jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (k_rec,) + x.shape), state0),
        rates=jnp.full((k_rec,), ev0.mu),
        integral=jnp.zeros((k_rec,), dtype),
        buf_t=jnp.zeros((TAIL_BUFFER,), dtype),
        buf_l=jnp.full((TAIL_BUFFER,), jnp.log(ev0.loss)),
        nbuf=jnp.ones((), jnp.int32),
        status=status0,
        iters=zero,
        streak=zero,
        stats=Stats(*(fzero if f in _FLOAT_STATS else zero for f in Stats._fields)),
        lev=None if ctx.levels is None else level_buffers(ctx.levels.astype(dtype), state0),
    )


_FLOAT_STATS = ("sliding_time", "max_violation", "last_event")


def _attempt(ctx: _Ctx, c: _Carry) -> _Carry:
    """One attempt: a step to the next record time, or to the stopping time being landed
    on; accepted, or retaken (error too large, or past the stop)."""
    grid, k_rec = ctx.grid, ctx.grid.shape[0]
    t_rec = grid[jnp.minimum(c.rec, k_rec - 1)]
    landing = jnp.isfinite(c.target) & (c.target <= t_rec)
    h_free = jnp.minimum(c.h, t_rec - c.t)
    h = jnp.maximum(jnp.where(landing, c.target - c.t, h_free), 0.0)
    st = dopri_step(ctx.fn, c.y, c.ev, c.q, h, ctx.scale, ctx.p)
    ok = jnp.isfinite(st.err) & (st.err <= 1.0)
    factor = jnp.where(
        jnp.isfinite(st.err), jnp.clip(0.9 * jnp.maximum(st.err, 1e-10) ** -0.2, 0.2, 5.0), 0.2
    )
    t1, ev1 = c.t + h, st.ev1
    target, tries, retake, stopped = _aim_stop(ctx, c, h, ok, landing, t1, ev1)
    accept = ok & ~retake
    diverged = accept & exploded(ev1.loss, ctx.loss0, ctx.diverge_factor)
    take = accept & ~diverged
    truncated = landing | (h_free < c.h)
    nxt = c._replace(
        t=jnp.where(take, t1, c.t),
        h=jnp.where(~ok | (accept & ~truncated), h * factor, c.h),
        y=jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), st.y1, c.y),
        q=jnp.where(take, st.q1, c.q),
        ev=jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), ev1, c.ev),
        target=target,
        tries=tries,
        iters=c.iters + 1,
        streak=jnp.where(take, 0, c.streak + 1).astype(jnp.int32),
    )
    nxt = _record(ctx, c, nxt, take, t_rec)
    status = jnp.where(
        diverged,
        Outcome.DIVERGED,
        jnp.where(
            take & stopped,
            Outcome.CONVERGED,
            jnp.where(take & (nxt.rec >= k_rec), Outcome.HORIZON, c.status),
        ),
    )
    reason = jnp.where(
        ~ok & (h * factor <= 16 * ctx.eps * jnp.maximum(1.0, c.t)),
        StallReason.STEP,
        jnp.where(nxt.streak > MAX_REJECTS, StallReason.REJECTS, StallReason.NONE),
    )
    reason = jnp.where(status == Outcome.RUNNING, reason, StallReason.NONE).astype(jnp.int32)
    s = c.stats
    stats = s._replace(
        steps=s.steps + take.astype(jnp.int32),
        rejected=s.rejected + (~accept).astype(jnp.int32),
        evals=s.evals + 6,
        stall_reason=jnp.maximum(s.stall_reason, reason),
    )
    status = jnp.where(reason > 0, Outcome.STALLED, status).astype(jnp.int32)
    return nxt._replace(status=status, stats=stats)


def _aim_stop(ctx: _Ctx, c: _Carry, h, ok, landing, t1, ev1: Smooth):
    """The stop L = stop_loss inside the attempt: (next target, tries, whether the
    attempt is retaken, whether it stops the run). A step past the stop by more than
    rtol in log L is retaken to a secant estimate (a landing: to a Newton one); a landing
    short of it is accepted and aims again (Newton from its end); after NEWTON
    corrections the run stops where it is, below."""
    rtol, log_stop = ctx.scale[1], ctx.log_stop
    l0, l1 = jnp.log(c.ev.loss), jnp.log(jnp.maximum(ev1.loss, 1e-300))
    below = ok & (l1 <= log_stop)
    more = c.tries < NEWTON
    retake = below & (l1 < log_stop - rtol) & more
    short = ok & landing & (l1 > log_stop) & more
    dt_newton = (l1 - log_stop) / jnp.maximum(ev1.mu, 1e-300)  # < 0 past, > 0 short
    secant = jnp.clip((l0 - log_stop) / jnp.where(l0 == l1, 1.0, l0 - l1), 0.0, 1.0) * h
    floor_t = 4 * ctx.eps * jnp.maximum(1.0, jnp.abs(c.t))
    back = c.t + jnp.maximum(jnp.where(landing, h + dt_newton, secant), floor_t)
    ahead = t1 + jnp.maximum(dt_newton, floor_t)
    # a landing done, given up or failed (error too large) starts over; a record step
    # keeps the stop it is heading for
    target = jnp.where(retake, back, jnp.where(short, ahead, jnp.where(landing, jnp.inf, c.target)))
    tries = jnp.where(retake | short, c.tries + 1, 0).astype(jnp.int32)
    return target, tries, retake, below & ~retake


def _record(ctx: _Ctx, c: _Carry, nxt: _Carry, take, t_rec) -> _Carry:
    """θ, μ and ∫μ at the record times reached, the step end in the tail window, and the
    run at the loss levels crossed (as :mod:`.exact` records them)."""
    grid, k_rec, tn = ctx.grid, ctx.grid.shape[0], nxt.t
    at_rec = take & (tn >= t_rec) & (c.rec < k_rec)
    hit = (grid == t_rec) & at_rec & (jnp.arange(k_rec) >= c.rec)
    states = jax.tree_util.tree_map(
        lambda buf, x: jnp.where(hit.reshape((-1,) + (1,) * x.ndim), x[None], buf),
        c.states,
        nxt.y,
    )
    buf_t, buf_l, nbuf = push_window(c.buf_t, c.buf_l, c.nbuf, tn, nxt.ev.loss, take)
    lev = c.lev
    if lev is not None and ctx.levels is not None:
        rate = window_rate(buf_t, buf_l, nbuf, tn, nxt.ev.loss, ctx.tail, ctx.mu0)
        lev = record_levels(lev, ctx.levels, nxt.ev.loss, tn, rate, nxt.y, take)
    return nxt._replace(
        rec=c.rec + jnp.sum(hit).astype(jnp.int32),
        states=states,
        rates=jnp.where(hit, nxt.ev.mu, c.rates),
        integral=jnp.where(hit, nxt.q, c.integral),
        buf_t=buf_t,
        buf_l=buf_l,
        nbuf=nbuf,
        lev=lev,
    )


def _finish(ctx: _Ctx, c: _Carry) -> Flow:
    """The run as recorded: a run still going when its attempts ran out is stalled (CAP);
    records past the final time hold the final state."""
    capped = c.status == Outcome.RUNNING
    status = jnp.where(capped, Outcome.STALLED, c.status).astype(jnp.int32)
    reason = jnp.where(capped, StallReason.CAP, c.stats.stall_reason).astype(jnp.int32)
    valid = ctx.grid <= c.t
    states = jax.tree_util.tree_map(
        lambda buf, x: jnp.where(valid.reshape((-1,) + (1,) * x.ndim), buf, x[None]),
        c.states,
        c.y,
    )
    return Flow(
        states,
        valid,
        c.y,
        c.t,
        status,
        jnp.where(valid, c.rates, c.ev.mu),
        c.ev.mu,
        jnp.where(valid, c.integral, c.q),
        c.q,
        window_rate(c.buf_t, c.buf_l, c.nbuf, c.t, c.ev.loss, ctx.tail, ctx.mu0),
        c.stats._replace(stall_reason=reason),
        None if c.lev is None else finish_levels(c.lev),
    )
