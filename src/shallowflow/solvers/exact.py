"""The exact gradient flow through the ReLU kinks: event-driven and Filippov (SPEC §3b).
For the piecewise-linear activations (ReLU, leaky ReLU, ``act``); C¹ ones have no kinks
and their flow is :mod:`.smooth`'s.

The field F = −p∇L is smooth inside an activation pattern and jumps across the
surfaces u_ji = ⟨w_j, x_i⟩ = 0. This solver integrates the flow piece by piece:

- **Smooth pieces.** Each step is a Dormand–Prince 5(4) step (:mod:`.dopri`) with the
  pattern *frozen* (:mod:`.filippov`): σ(u) = u·D_h and σ'(u) = D_g with D fixed for
  the step, so the integrand is a polynomial and the error estimate is valid. The step
  size follows the usual controller at ``rtol``/``atol`` (RMS over the run's real
  entries), with no floor.
- **Crossings.** After an accepted step, a pair whose u left its side (at the end of
  the step, or inside it on the cubic Hermite interpolant of u built from u and u̇ at
  both ends) has crossed; its root is found on the step's continuous extension. The
  state at the step's first event is read off that extension and the step ends there,
  for one evaluation of the field (a few for a sliding exit, whose λ needs the field:
  :func:`.events.land_inside`); for the stop, events of two kinds together, or a state
  there that is no landing, the step is retaken to the event, refined by Newton steps
  on the landed u, u̇ until |u| is at tolerance level. There every pair of neuron j
  at its surface (the landed ones and the sliding ones) is put exactly on it (v_j
  moved the least), and their modes are decided together
  (:func:`.events.land`, :func:`.filippov.resolve`) from the rates u̇⁺, u̇⁻ of u_ji with the
  pair taken active or inactive: same sign → it crosses (the pattern flips);
  u̇⁺ < 0 < u̇⁻ → it slides; u̇⁺ > 0 > u̇⁻ (repelling) → inactive, the σ'(0) = 0
  convention. Decided one at a time, a pair could land active with u̇ < 0 once its
  neighbours changed, be found again at once, and the solver loop (issue 22).
- **Sliding.** The only discontinuous part of F is dv_j's, affine in each D_ji. The
  D's that keep u_ji = 0 for every sliding pair of neuron j solve one small linear
  system per neuron; the resulting dv_j is dv_j projected off span{x_i : i ∈ S_j} (the
  minimal-norm element of the Clarke subdifferential), computed from the Gram matrix
  of the sliding examples (at most ``slots`` per neuron; a pair refused for want of a
  slot is made inactive and counted in ``overflow``). A pair leaves its surface when
  λ = (D − s)/(1 − s) (s the leaky slope) passes 1 (→ active) or 0 (→ inactive) by a
  band of 10·rtol, and re-enters only past the same band: an event located like a
  crossing (regula falsi on λ along the step's extension).
- **No silent stall.** At most ``MAX_REJECTS`` attempts in a row without an accepted
  step, at most ``MAX_IDLE`` attempts while t advances by less than rtol·max(1, t):
  past either, the run stops ``stalled`` with a :class:`~.common.StallReason`.
- **Orthogonal data** never slide: an inactive neuron gets no gradient along x_i
  (u̇⁻ = 0), so a pair driven to 0 stays there, exactly on the surface (sticky).
- **Stop.** L(t) = ``stop_loss`` is located the same way (secant on log L): a run
  stops at its stopping time, not at the end of a step. Steps land on the ``grid``.

Along the way the solver integrates q̇ = μ = ‖F‖²/(pL) with F the field actually
followed, so q(t) = ∫₀ᵗ μ dt and log(L(0)/L(t)) = q(t) checks the whole trajectory
(SPEC §2). It reports per run the crossings, the entries onto and exits from sliding,
the time spent with a pair sliding, the most pairs sliding at once, the largest
constraint violation |u_ji| on sliding pairs (measured at step ends, before they are
restored), and the field evaluations spent (the cost of the events).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.activations import Activation, Leaky, relu
from shallowflow.data import Real
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
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
from shallowflow.solvers.dopri import dopri
from shallowflow.solvers.events import Landed, land_inside, settle
from shallowflow.solvers.filippov import (
    ACTIVE,
    INACTIVE,
    SLIDING,
    Eval,
    FieldData,
    Pattern,
    dudt,
    field,
    gram,
)
from shallowflow.solvers.locate import (
    NEWTON,
    Attempt,
    Carry,
    Context,
    Found,
    Stats,
    Verdict,
    gram_of,
    land_check,
    land_tol,
    locate,
)

__all__ = ["NEWTON", "Flow", "Stats", "solve"]

# Work per unit of progress (issue 22): a run stalls (outcome `stalled`, with a reason)
# after MAX_REJECTS attempts in a row without an accepted step, or after MAX_IDLE
# attempts in which t advanced by less than rtol·max(1, t). A legitimate landing needs
# at most 1 + NEWTON attempts; a step at rtol is far longer than rtol·t.
MAX_REJECTS = 64
MAX_IDLE = 1000


class Flow(NamedTuple):
    """An exact-flow run, as the engine records it."""

    states: State  # θ at the recorded times (the final θ after the stop)
    valid: jax.Array
    final: State
    t_final: jax.Array
    status: jax.Array
    rates: jax.Array  # μ of the solution at the recorded times
    rate_final: jax.Array
    integral: jax.Array  # ∫₀ᵗ μ at the recorded times
    integral_final: jax.Array
    tail_rate: jax.Array  # log(L(t_∞ − tail)/L(t_∞))/tail (SPEC §5)
    stats: Stats
    levels: Levels | None = None


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    rtol,
    atol,
    stop_loss,
    diverge_factor: Real = 1e6,
    act: Activation = relu,
    tail=100.0,
    max_steps: int = 10_000_000,
    size=None,
    slots: int | None = None,
    levels: jax.Array | None = None,
) -> Flow:
    """Integrate the exact flow from ``state0``, recording θ at the times ``grid``
    (sorted, last = horizon). ``size``: the number of real entries of θ (padding),
    default all; ``slots``: sliding pairs per neuron at most (static; default
    min(m, 32); none for the diagonal geometry, whose orthogonal data never slide);
    ``levels`` (K,): also the run at the first step end where its loss is below each
    (:class:`~.common.Levels`). ``act``: a piecewise-linear activation, max(u, s·u)."""
    if not isinstance(act, Leaky):  # the kinks handled are those of max(u, s·u)
        raise ValueError(f"act: the event-driven flow is for relu and leaky, not {act.name}")
    sgeom, z = geom.for_solver(prob.z)
    n, p = prob.sizes(state0)
    dtype = state0.a.dtype
    rows = prob.z
    data = FieldData(sgeom, z, rows, prob.y, geom.sq_norms(prob.z), n, p, act.slope)
    width, count = prob.y.shape[0], state0.v.shape[0]
    k_slots = 0 if geom.diagonal else (min(rows.shape[1], 32) if slots is None else slots)
    if size is None:
        size = sum(x.size for x in jax.tree_util.tree_leaves(state0))
    scale = (jnp.asarray(atol, dtype), jnp.asarray(rtol, dtype), jnp.asarray(size, dtype))
    eps = jnp.finfo(dtype).eps
    pat0 = Pattern(
        jnp.where(data.geom.preact(state0.v, z) > 0, ACTIVE, INACTIVE).astype(jnp.int8),
        jnp.full((count, k_slots), -1, jnp.int32),
    )
    ev0 = field(data, state0, pat0, gram(data, pat0.slots) if k_slots else None)
    ctx = Context(
        data=data,
        grid=grid,
        k_slots=k_slots,
        diagonal=geom.diagonal,
        sticky=geom.diagonal and act.slope == 0.0,  # orthogonal data, ReLU
        real=(jnp.arange(count)[:, None] < p) & (jnp.arange(width)[None, :] < n),
        size=size,
        scale=scale,
        eps=eps,
        # fractions of a step below which an event counts as at its end, and events
        # count as together: 1e-12 and 1e-9 in float64; in float32 they would round
        # away (1 − 1e-12 is 1), so they are kept above 64 ε there
        s_end=max(1e-12, 64 * float(eps)),
        window=max(1e-9, 64 * float(eps)),
        # A sliding pair leaves when λ passes 1 + tol_lam (or −tol_lam), and the landing
        # (filippov.resolve) puts a pair back only when its λ would be below 1 − tol_lam:
        # one band for entry and exit, so an exit is never undone at once. An exit lands
        # with λ anywhere in [1 − tol_lam/2, 1 + 3 tol_lam]. Holding a pair on its
        # surface while λ runs through the band moves θ by O(tol_lam²) and the exit time
        # by O(tol_lam/λ̇): tol_lam = 10 rtol (at least 1000 ε, above λ's rounding).
        tol_lam=jnp.maximum(10 * scale[1], 1e3 * eps),
        stop_loss=stop_loss,
        diverge_factor=diverge_factor,
        tail=tail,
        loss0=ev0.loss,
        mu0=ev0.mu,
        levels=levels,
        p=p,
        n=n,
    )
    c0 = _start(ctx, state0, pat0, ev0)

    def going(c: Carry):
        return (c.status == Outcome.RUNNING) & (c.iters < max_steps)

    return _finish(ctx, jax.lax.while_loop(going, partial(_attempt, ctx), c0))


def _start(ctx: Context, state0: State, pat0: Pattern, ev0: Eval) -> Carry:
    """The loop's first state: records at t = 0, the first step size (Hairer–Nørsett–
    Wanner's rule), the status (a run may start converged, or at its horizon)."""
    grid, size, dtype = ctx.grid, ctx.size, state0.a.dtype
    count, width, k_slots = state0.v.shape[0], ctx.data.y.shape[0], ctx.k_slots
    t_end = grid[-1]
    k_rec = grid.shape[0]
    states = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (k_rec,) + x.shape), state0)
    h0 = first_step(state0, ev0.f, size, t_end)
    zero = jnp.zeros((), jnp.int32)
    fzero = jnp.zeros((), dtype)
    stats0 = Stats(zero, zero, zero, zero, fzero, zero, fzero, zero, fzero, zero, zero, zero, zero)
    status0 = jnp.where(
        ev0.loss <= ctx.stop_loss,
        Outcome.CONVERGED,
        jnp.where(t_end <= 0, Outcome.HORIZON, Outcome.RUNNING),
    ).astype(jnp.int32)
    levels = ctx.levels
    return Carry(
        t=jnp.zeros((), dtype),
        h=h0.astype(dtype),
        y=state0,
        q=jnp.zeros((), dtype),
        ev=ev0,
        du=dudt(ctx.data, ev0.f),
        lam=jnp.full((count, k_slots), 0.5, dtype),
        pat=pat0,
        target=jnp.asarray(jnp.inf, dtype),
        tries=zero,
        pend=jnp.zeros((count, width), bool),
        pend_exit=jnp.zeros((count, k_slots), bool),
        pend_stop=jnp.zeros((), bool),
        rec=jnp.sum(grid <= 0).astype(jnp.int32),
        states=states,
        rates=jnp.full((k_rec,), ev0.mu),
        integral=jnp.zeros((k_rec,), dtype),
        buf_t=jnp.zeros((TAIL_BUFFER,), dtype),
        buf_l=jnp.full((TAIL_BUFFER,), jnp.log(ev0.loss)),
        nbuf=jnp.ones((), jnp.int32),
        status=status0,
        iters=zero,
        streak=zero,
        mark_t=jnp.zeros((), dtype),
        mark_iter=zero,
        mark_events=zero,
        stats=stats0,
        lev=None if levels is None else level_buffers(levels.astype(dtype), state0),
    )


def _step(ctx: Context, c: Carry) -> Attempt:
    """One Dormand–Prince attempt: to the located event being landed on, else the
    controller's step cut at the next record time."""
    grid, k_rec = ctx.grid, ctx.grid.shape[0]
    t_rec = grid[jnp.minimum(c.rec, k_rec - 1)]
    landing = jnp.isfinite(c.target) & (c.target <= t_rec)
    h_free = jnp.minimum(c.h, t_rec - c.t)
    h = jnp.maximum(jnp.where(landing, c.target - c.t, h_free), 0.0)
    st = dopri(ctx.data, c.y, c.ev, c.q, h, c.pat, gram_of(ctx, c.pat), ctx.scale)
    ok = jnp.isfinite(st.err) & (st.err <= 1.0)
    factor = jnp.clip(0.9 * jnp.maximum(st.err, 1e-10) ** -0.2, 0.2, 5.0)
    factor = jnp.where(jnp.isfinite(st.err), factor, 0.2)
    t1 = c.t + h
    du1 = dudt(ctx.data, st.ev1.f)
    tol_u = land_tol(ctx, st.y1, du1, t1)
    return Attempt(t_rec, landing, h_free, h, st, ok, factor, t1, du1, tol_u)


def _attempt(ctx: Context, c: Carry) -> Carry:
    """One iteration of the loop: step, locate its events, land on them (inside the
    step on its continuous extension, or by retaking it), settle the landed state,
    record it, and aim the next attempt."""
    a = _step(ctx, c)
    f, a_full = locate(ctx, c, a)
    ins = land_inside(ctx, c, a_full, f)
    v = _pick(ins.use, ins.v, land_check(ctx, c, a_full, f))
    a = _pick(ins.use, ins.a, a_full)  # the attempt as taken: cut at a crossing
    lnd = settle(ctx, c, a, f, v)
    accept = v.accept & lnd.consistent  # else the run stalls here (_judge)
    diverged = accept & exploded(lnd.ev.loss, ctx.loss0, ctx.diverge_factor)
    take = accept & ~diverged
    nxt = c._replace(
        t=jnp.where(take, a.t1, c.t),
        y=_pick(take, lnd.y, c.y),
        ev=_pick(take, lnd.ev, c.ev),
        du=_pick(take, lnd.du, c.du),
        lam=_pick(take, lnd.lam, c.lam),
        q=_pick(take, a.st.q1, c.q),
        pat=_pick(take, lnd.pat, c.pat),
        iters=c.iters + 1,
    )
    nxt = _record(ctx, c, nxt, take, a)
    nxt = _aim(ctx, c, nxt, a_full, f, v, accept, ins.use)
    lnd = lnd._replace(evals=lnd.evals + ins.tried.astype(jnp.int32))
    return _judge(ctx, c, nxt, a, v, lnd, accept, diverged, take)


def _pick(take, new, old):
    return jax.tree_util.tree_map(lambda x, w: jnp.where(take, x, w), new, old)


def _record(ctx: Context, c: Carry, nxt: Carry, take, a: Attempt) -> Carry:
    """θ, μ and ∫μ at the record times reached (repeated grid times too), the step end
    in the tail-rate buffer, and the run at the loss levels crossed."""
    grid, k_rec, tn = ctx.grid, ctx.grid.shape[0], nxt.t
    at_rec = take & (a.t1 >= a.t_rec) & (c.rec < k_rec)
    hit = (grid == a.t_rec) & at_rec & (jnp.arange(k_rec) >= c.rec)
    states = jax.tree_util.tree_map(
        lambda buf, x: jnp.where(hit.reshape((-1,) + (1,) * x.ndim), x[None], buf),
        c.states,
        nxt.y,
    )
    buf_t, buf_l, nbuf = push_window(c.buf_t, c.buf_l, c.nbuf, tn, nxt.ev.loss, take)
    lev, levels = c.lev, ctx.levels
    if lev is not None and levels is not None:  # both or neither (_start)
        rate = window_rate(buf_t, buf_l, nbuf, tn, nxt.ev.loss, ctx.tail, ctx.mu0)
        lev = record_levels(lev, levels, nxt.ev.loss, tn, rate, nxt.y, take)
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


def _aim(
    ctx: Context, c: Carry, nxt: Carry, a: Attempt, f: Found, v: Verdict, accept, inside
) -> Carry:
    """What the next attempt aims at: a newly located event, a landing retaken back or
    ahead, or the controller's next step (a failed landing starts over). ``a`` is the
    whole attempt; ``inside``: it was cut at a crossing landed on inside it."""
    h, ok, landing = a.h, a.ok, a.landing
    floor_t = 4 * ctx.eps * jnp.maximum(1.0, jnp.abs(c.t))
    new_event = f.new_event & ~inside
    target = jnp.where(new_event, c.t + jnp.maximum(f.s_first * h, floor_t), jnp.inf)
    target = jnp.where(v.back, c.t + jnp.maximum(h + v.dt_over, floor_t), target)
    target = jnp.where(v.ahead, a.t1 + jnp.maximum(v.dt_early, floor_t), target)
    target = jnp.where(~ok & landing, jnp.inf, target)  # a failed landing starts over
    target = jnp.where(~ok & ~landing, c.target, target)  # a record step failed
    keep_pend = v.back | v.ahead | (~ok & ~landing)
    together = f.s_first + f.window_h
    pend = jnp.where(
        new_event, f.cand & (f.s_cross <= together), jnp.where(keep_pend, c.pend, False)
    )
    pend_exit = jnp.where(
        new_event, f.exiting & (f.s_exit <= together), jnp.where(keep_pend, c.pend_exit, False)
    )
    pend_stop = jnp.where(new_event, f.stop_hit & (f.s_stop <= together), keep_pend & c.pend_stop)
    # after a landing inside the step, the step's error says nothing of the new
    # pattern's field: the controller keeps its step, as after a retaken landing
    truncated = landing | (a.h_free < c.h) | inside
    h_next = jnp.where(~ok, h * a.factor, jnp.where(accept & ~truncated, h * a.factor, c.h))
    return nxt._replace(
        h=h_next,
        target=target,
        tries=jnp.where(v.back | v.ahead, c.tries + 1, 0).astype(jnp.int32),
        pend=pend,
        pend_exit=pend_exit,
        pend_stop=pend_stop,
    )


def _judge(
    ctx: Context, c: Carry, nxt: Carry, a: Attempt, v: Verdict, lnd: Landed, accept, diverged, take
) -> Carry:
    """The run's status after the attempt, with the work per unit of progress
    (issue 22): a stall past MAX_REJECTS or MAX_IDLE attempts, with its reason."""
    status = jnp.where(
        diverged,
        Outcome.DIVERGED,
        jnp.where(
            v.stopped,
            Outcome.CONVERGED,
            jnp.where(take & (nxt.rec >= ctx.grid.shape[0]), Outcome.HORIZON, c.status),
        ),
    )
    flips, slides, exits = (jnp.where(take, x, 0) for x in (lnd.flips, lnd.slides, lnd.exits))
    events = c.stats.crossings + c.stats.slides + c.stats.exits + flips + slides + exits
    tn = nxt.t
    streak = jnp.where(take, 0, c.streak + 1).astype(jnp.int32)
    moved = tn - c.mark_t > ctx.scale[1] * jnp.maximum(1.0, jnp.abs(tn))
    idle = c.iters + 1 - c.mark_iter
    n_slide = jnp.sum(nxt.pat.mode == SLIDING).astype(jnp.int32)
    h_next = a.h * a.factor
    reason = jnp.where(
        v.ends & ~lnd.consistent,
        StallReason.INCONSISTENT,
        jnp.where(
            ~a.ok & (h_next <= 16 * ctx.eps * jnp.maximum(1.0, c.t)),
            StallReason.STEP,
            jnp.where(streak > MAX_REJECTS, StallReason.REJECTS, StallReason.NONE),
        ),
    )
    busy = events > c.mark_events
    idle_reason = jnp.where(
        busy, jnp.where(n_slide > 0, StallReason.CHATTER, StallReason.ZENO), StallReason.STEP
    )
    reason = jnp.where(~moved & (idle > MAX_IDLE), idle_reason, reason)
    reason = jnp.where(status == Outcome.RUNNING, reason, StallReason.NONE).astype(jnp.int32)
    return nxt._replace(
        status=jnp.where(reason > 0, Outcome.STALLED, status).astype(jnp.int32),
        streak=streak,
        mark_t=jnp.where(moved, tn, c.mark_t),
        mark_iter=jnp.where(moved, c.iters + 1, c.mark_iter),
        mark_events=jnp.where(moved, events, c.mark_events),
        stats=_tally(c, a, lnd, accept, take, (flips, slides, exits), n_slide, reason),
    )


def _tally(c: Carry, a: Attempt, lnd: Landed, accept, take, counts, n_slide, reason) -> Stats:
    """The attempt's diagnostics added to the run's (:class:`Stats`)."""
    flips, slides, exits = counts
    sliding = c.pat.mode == SLIDING
    violation = jnp.max(jnp.where(sliding, jnp.abs(a.st.ev1.u), 0.0), initial=0.0)
    s = c.stats
    return Stats(
        s.steps + take.astype(jnp.int32),
        s.rejected + (~accept).astype(jnp.int32),
        s.crossings + flips,
        s.slides + slides,
        s.sliding_time + jnp.where(take & jnp.any(sliding), a.h, 0.0),
        jnp.maximum(s.max_sliding, n_slide),
        jnp.maximum(s.max_violation, jnp.where(take, violation, 0.0)),
        s.overflow + jnp.where(take, lnd.over, 0).astype(jnp.int32),
        jnp.where(take & (flips + slides + exits > 0), a.t1, s.last_event),
        s.exits + exits,
        s.evals + 6 + lnd.evals,
        jnp.maximum(s.stall_reason, reason),
        jnp.where(reason > 0, n_slide, s.stall_sliding),
    )


def _finish(ctx: Context, c: Carry) -> Flow:
    """The run as recorded: a run still going when its attempt cap ran out is stalled
    (CAP); records past the final time hold the final state."""
    capped = c.status == Outcome.RUNNING  # the attempt cap ran out
    status = jnp.where(capped, Outcome.STALLED, c.status).astype(jnp.int32)
    stats = c.stats._replace(
        stall_reason=jnp.where(capped, StallReason.CAP, c.stats.stall_reason).astype(jnp.int32),
        stall_sliding=jnp.where(
            capped, jnp.sum(c.pat.mode == SLIDING).astype(jnp.int32), c.stats.stall_sliding
        ),
    )
    valid = ctx.grid <= c.t
    states = jax.tree_util.tree_map(
        lambda buf, x: jnp.where(valid.reshape((-1,) + (1,) * x.ndim), buf, x[None]),
        c.states,
        c.y,
    )
    rates = jnp.where(valid, c.rates, c.ev.mu)
    integral = jnp.where(valid, c.integral, c.q)
    return Flow(
        states,
        valid,
        c.y,
        c.t,
        status,
        rates,
        c.ev.mu,
        integral,
        c.q,
        window_rate(c.buf_t, c.buf_l, c.nbuf, c.t, c.ev.loss, ctx.tail, ctx.mu0),
        stats,
        None if c.lev is None else finish_levels(c.lev),
    )
