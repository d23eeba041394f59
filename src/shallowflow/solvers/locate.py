"""Where the exact flow's events fall inside a step attempt (SPEC §3b): the pairs that
crossed their surface (on the cubic Hermite interpolant of u), the sliding pairs whose
λ left its band, and the stopping loss; then whether a landing attempt sits on its
events to tolerance, or is retaken by a Newton (secant) correction. :mod:`.exact` runs
the loop; these functions take its static :class:`Context` and return arrays."""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.model import State
from shallowflow.solvers.common import Levels
from shallowflow.solvers.dopri import Step, first_root, hermite
from shallowflow.solvers.filippov import (
    ACTIVE,
    SLIDING,
    Eval,
    FieldData,
    Pattern,
    gram,
    sliding_lambdas,
)

NEWTON = 6  # Newton corrections of a located event time, at most
EXIT_EVALS = 4  # evaluations to locate a sliding exit inside its step, at most
EVENTS = 32  # pairs whose crossing is located (and landed on) together, at most


class Stats(NamedTuple):
    """Per-run diagnostics of the event-driven solver."""

    steps: jax.Array  # accepted steps
    rejected: jax.Array  # rejected steps (error too large, or an event to land on)
    crossings: jax.Array  # pattern flips: a pair crossing its surface
    slides: jax.Array  # entries onto a sliding surface
    sliding_time: jax.Array  # time with at least one pair sliding
    max_sliding: jax.Array  # most pairs sliding at once
    max_violation: jax.Array  # largest |u_ji| on sliding pairs, before restoring
    overflow: jax.Array  # sliding pairs refused for want of a slot (made inactive)
    last_event: jax.Array  # time of the last pattern change
    exits: jax.Array  # exits from a sliding surface
    evals: jax.Array  # field evaluations (the cost; per event: evals/(crossings + slides))
    stall_reason: jax.Array  # a StallReason code (0 unless stalled)
    stall_sliding: jax.Array  # pairs sliding when the run stalled


class Carry(NamedTuple):
    """The loop state of the exact flow: one step attempt maps it to the next."""

    t: jax.Array
    h: jax.Array
    y: State
    q: jax.Array
    ev: Eval
    du: jax.Array  # u̇ at y
    lam: jax.Array  # λ of the sliding slots at y
    pat: Pattern
    target: jax.Array  # landing time of a located event (inf: none)
    tries: jax.Array  # landing corrections so far
    pend: jax.Array  # (p, n) pairs whose event is being landed
    pend_exit: jax.Array  # (p, K) slots whose λ leaves [0, 1] at the landing
    pend_stop: jax.Array
    rec: jax.Array  # index of the next record
    states: State  # records
    rates: jax.Array
    integral: jax.Array
    buf_t: jax.Array
    buf_l: jax.Array
    nbuf: jax.Array
    status: jax.Array
    iters: jax.Array
    streak: jax.Array  # attempts since the last accepted step
    mark_t: jax.Array  # time at the last unit of progress
    mark_iter: jax.Array  # attempt count there
    mark_events: jax.Array  # event count there
    stats: Stats
    lev: Levels | None  # the run at loss levels


class Context(NamedTuple):
    """What one exact-flow solve holds fixed: the data, the grid and the tolerances
    (Python numbers stay Python numbers: they choose what is traced)."""

    data: FieldData
    grid: jax.Array  # record times, sorted, last = horizon
    k_slots: int  # sliding slots per neuron (0: none, the diagonal geometry)
    diagonal: bool
    sticky: bool  # orthogonal data, ReLU: a pair at 0 stays there
    real: jax.Array  # (p, n) the run's real pairs (padding excluded)
    size: Any  # real entries of θ
    scale: tuple  # (atol, rtol, size) in the run's dtype
    eps: Any  # the dtype's machine epsilon
    s_end: float  # fraction of a step below which an event is at its end
    window: float  # fraction of a step within which events are together
    tol_lam: jax.Array  # λ's band for leaving and re-entering a sliding surface
    stop_loss: Any
    diverge_factor: Any
    tail: float
    loss0: jax.Array
    mu0: jax.Array
    levels: jax.Array | None
    p: Any
    n: Any


class Attempt(NamedTuple):
    """One Dormand–Prince attempt from the carry's state, with its step-size verdict."""

    t_rec: jax.Array  # the next record time
    landing: jax.Array  # the attempt aims at a located event
    h_free: jax.Array  # the step the controller asked for, cut at t_rec
    h: jax.Array
    st: Step
    ok: jax.Array  # error within tolerance
    factor: jax.Array  # the controller's next-step factor
    t1: jax.Array
    du1: jax.Array  # u̇ at the step's end
    tol_u: jax.Array  # landing tolerance on |u| there


class Found(NamedTuple):
    """The events inside (t, t1], as fractions s of the step (2: none)."""

    cand: jax.Array  # (p, n) pairs that crossed
    s_cross: jax.Array
    stick: jax.Array  # (p, n) sticky pairs to clamp at the step's end
    lam1: jax.Array  # λ of the sliding slots at t1
    exiting: jax.Array  # (p, K) slots whose λ left its band
    s_exit: jax.Array
    stop_hit: jax.Array
    s_stop: jax.Array
    l1: jax.Array  # log L at t1
    log_stop: jax.Array
    s_first: jax.Array
    s_end_h: jax.Array
    window_h: jax.Array
    new_event: jax.Array  # an event inside the step: retake it to land there


class Verdict(NamedTuple):
    """What becomes of an attempt: landed, retaken (back/ahead), or accepted."""

    back: jax.Array
    ahead: jax.Array
    accept: jax.Array
    dt_over: jax.Array
    dt_early: jax.Array
    stopped: jax.Array
    ends: jax.Array  # accepted and not retaken ahead: its end events are applied
    pend_now: jax.Array  # (p, n) pairs landed on now
    exit_now: jax.Array  # (p, K) slots leaving now


def gram_of(ctx: Context, pat: Pattern):
    """The sliding slots' Gram factors of ``pat`` for the field, None without slots."""
    return gram(ctx.data, pat.slots) if ctx.k_slots else None


def u_scale(ctx: Context, y: State) -> jax.Array:
    """‖v_j‖‖x_i‖: the size of u_ji."""
    return jnp.sqrt(jnp.sum(y.v * y.v, 1))[:, None] * jnp.sqrt(ctx.data.sq)[None, :]


def land_tol(ctx: Context, y: State, du, t) -> jax.Array:
    """|u| at a landing within this moves v_j by ≲ 0.1 tolerance; and no less than
    what one ulp of t moves u by (in float32 at t ≈ 250 an ulp is 1.5e-5, and Newton
    could not get closer: it retried to its cap at every landing)."""
    atol, rtol, eps = ctx.scale[0], ctx.scale[1], ctx.eps
    vn = jnp.sqrt(jnp.sum(y.v * y.v, 1))[:, None]
    tol = 0.1 * jnp.sqrt(ctx.data.sq)[None, :] * (atol + rtol * vn)
    return jnp.maximum(tol, 4 * eps * jnp.maximum(1.0, jnp.abs(t)) * jnp.abs(du))


def _hermite_candidates(ctx: Context, c: Carry, a: Attempt):
    """The moving pairs whose u left its side: at the step's end, or inside it on the
    cubic Hermite interpolant (a dip past the surface between two ends on its side).
    Returns the candidates, an estimate s of their crossing, and the root's margin."""
    u0, u1, du1, h = c.ev.u, a.st.ev1.u, a.du1, a.h
    thr = 256 * ctx.eps * u_scale(ctx, a.st.y1)
    # the root sought: u past its surface by a margin (a pair that starts on its
    # surface is not found there again), within half the landing tolerance (the
    # landing is then not past it: in float32 thr alone exceeds tol_u)
    margin = jnp.minimum(thr, 0.5 * a.tol_u)
    sign = jnp.where(c.pat.mode == ACTIVE, 1.0, -1.0)
    moving = ctx.real & (c.pat.mode != SLIDING) & ~c.pend
    a3 = 2 * u0 - 2 * u1 + h * c.du + h * du1  # Hermite u = a3 s³ + b2 s² + c1 s + u0
    b2 = -3 * u0 + 3 * u1 - 2 * h * c.du - h * du1
    c1 = h * c.du
    disc = b2 * b2 - 3 * a3 * c1
    safe_a = jnp.where(a3 == 0, 1.0, a3)
    s_ext = jnp.where(
        a3 == 0,
        -c1 / jnp.where(b2 == 0, 1.0, 2 * b2),
        (-b2 + jnp.sign(safe_a) * jnp.sqrt(jnp.maximum(disc, 0))) / (3 * safe_a),
    )
    inside = (s_ext > 0) & (s_ext < 1) & (disc >= 0)
    dip = inside & (sign * hermite(s_ext, u0, c.du, u1, du1, h) < -thr)
    cand = moving & ((sign * u1 < -thr) | dip)
    # the earliest candidates (estimated: secant on the ends, or the dip) get an
    # accurate root; at most EVENTS of them are landed on together
    secant = u0 / jnp.where(u0 == u1, 1.0, u0 - u1)
    guess = jnp.where(cand, jnp.where(dip, s_ext, jnp.clip(secant, 0.0, 1.0)), 3.0)
    return cand, guess, margin


def _roots(data: FieldData, c: Carry, a: Attempt, cand, guess, margin) -> jax.Array:
    """The first root s ∈ [0, 1] of the EVENTS earliest candidates (2 elsewhere), on
    the step's continuous extension of u (linear in θ: its last term is ⟨e_y, x_i⟩):
    the curve that :func:`.events.land_inside` lands on."""
    _, flat = jax.lax.top_k(-guess.ravel(), min(EVENTS, guess.size))
    jj, ii = jnp.unravel_index(flat, guess.shape)
    u0, u1, du1 = c.ev.u, a.st.ev1.u, a.du1
    e_u = data.geom.preact(a.st.e_y.v, data.z)
    r = first_root(
        u0[jj, ii],
        c.du[jj, ii],
        u1[jj, ii],
        du1[jj, ii],
        a.h,
        c.pat.mode[jj, ii] == ACTIVE,
        cand[jj, ii],
        margin[jj, ii],
        e_u[jj, ii],
    )
    return jnp.full(cand.shape, 2.0, u0.dtype).at[jj, ii].set(r)


def _no_roots(data: FieldData, c: Carry, a: Attempt, cand, guess, margin) -> jax.Array:
    return jnp.full(cand.shape, 2.0, c.ev.u.dtype)


def _overshoot(ctx: Context, c: Carry, a: Attempt, stick, guess) -> Attempt:
    """Orthogonal data, ReLU: a pair that reaches 0 stays there. It is run past its
    crossing with the frozen pattern and put back exactly on its surface at the step's
    end; what the overshoot δ = (1 − s)h does elsewhere is of order δ² (σ(u) ≈ u̇(t − τ)
    kept in h_i, r_i σ(u) in ȧ_j) and joins the step's error."""
    st, h, scale, n, p = a.st, a.h, ctx.scale, ctx.n, ctx.p
    delta = jnp.where(stick, (1.0 - jnp.clip(guess, 0.0, 1.0)) * h, 0.0)
    rate = jnp.maximum(jnp.abs(c.du), jnp.abs(a.du1))
    kick = rate * delta * delta / 2  # ∫ |u| over the overshoot
    e_h = jnp.abs(st.y1.a) @ kick / p  # error in h_i
    e_a = kick @ jnp.abs(st.ev1.r) / n
    e_v = jnp.abs(st.y1.a)[:, None] * (jnp.sqrt(ctx.data.sq) * e_h)[None, :] / n
    tol_a = scale[0] + scale[1] * jnp.abs(st.y1.a)
    tol_v = scale[0] + scale[1] * jnp.abs(st.y1.v)
    kink = jnp.sqrt((jnp.sum((e_a / tol_a) ** 2) + jnp.sum((e_v / tol_v) ** 2)) / ctx.size)
    e_loss = jnp.sum(jnp.abs(st.ev1.r) * e_h) / n
    kink = jnp.maximum(kink, e_loss / (scale[1] * st.ev1.loss + scale[0] ** 2))
    err = jnp.maximum(st.err, kink)
    ok = jnp.isfinite(err) & (err <= 1.0)
    factor = jnp.clip(0.9 * jnp.maximum(err, 1e-10) ** -0.2, 0.2, 5.0)
    factor = jnp.where(jnp.isfinite(err), factor, 0.2)
    # ∫μ: the overshooting pairs' dv terms (in ‖F‖² at first order) are not part of
    # the flow followed
    over_mu = jnp.sum(st.ev1.f.v**2 * delta) / (p * st.ev1.loss)
    return a._replace(st=st._replace(q1=st.q1 - over_mu), ok=ok, factor=factor)


def _slide_exits(ctx: Context, c: Carry, a: Attempt):
    """The sliding slots whose λ passed its band during the step, with s by a secant."""
    lam1 = sliding_lambdas(ctx.data, a.st.y1, c.pat, a.st.ev1) if ctx.k_slots else c.lam
    tol_lam = ctx.tol_lam
    exiting = ((lam1 < -tol_lam) | (lam1 > 1 + tol_lam)) & (c.pat.slots >= 0) & ~c.pend_exit
    bound = jnp.where(lam1 > 1, 1.0 + tol_lam, -tol_lam)
    gap = jnp.where(c.lam == lam1, 1.0, c.lam - lam1)
    s_exit = jnp.where(exiting, jnp.clip((c.lam - bound) / gap, 0.0, 1.0), 2.0)
    return lam1, exiting, s_exit


def locate(ctx: Context, c: Carry, a: Attempt) -> tuple[Found, Attempt]:
    """The events inside (t, t1] of an attempt: crossings, sliding exits, the stop; the
    attempt comes back with its error raised by a sticky overshoot."""
    cand, guess, margin = _hermite_candidates(ctx, c, a)
    stick = jnp.zeros_like(cand)
    if ctx.sticky:
        stick = cand
        cand = jnp.zeros_like(cand)
        a = _overshoot(ctx, c, a, stick, guess)
        s_cross = jnp.full(cand.shape, 2.0, c.ev.u.dtype)
    else:
        roots, none = partial(_roots, ctx.data), partial(_no_roots, ctx.data)
        s_cross = jax.lax.cond(jnp.any(cand), roots, none, c, a, cand, guess, margin)
    cand = cand & (s_cross <= 1.0)
    lam1, exiting, s_exit = _slide_exits(ctx, c, a)
    log_stop = jnp.log(jnp.maximum(ctx.stop_loss, 1e-300))
    l0, l1 = jnp.log(c.ev.loss), jnp.log(jnp.maximum(a.st.ev1.loss, 1e-300))
    stop_hit = (l1 <= log_stop) & ~c.pend_stop
    s_stop = jnp.where(
        stop_hit, jnp.clip((l0 - log_stop) / jnp.where(l0 == l1, 1.0, l0 - l1), 0.0, 1.0), 2.0
    )
    s_first = jnp.minimum(jnp.minimum(jnp.min(s_cross), jnp.min(s_exit, initial=2.0)), s_stop)
    # events closer than a few ulps of t cannot be told apart (float32 at t ≈ 250: ulp
    # 1.5e-5): they count as at the step's end, or as together
    ulps = 4 * ctx.eps * jnp.maximum(1.0, jnp.abs(a.t1)) / jnp.where(a.h > 0, a.h, 1.0)
    s_end_h, window_h = jnp.maximum(ctx.s_end, ulps), jnp.maximum(ctx.window, ulps)
    new_event = a.ok & (s_first < 1.0 - s_end_h)
    found = Found(
        cand,
        s_cross,
        stick,
        lam1,
        exiting,
        s_exit,
        stop_hit,
        s_stop,
        l1,
        log_stop,
        s_first,
        s_end_h,
        window_h,
        new_event,
    )
    return found, a


def land_check(ctx: Context, c: Carry, a: Attempt, f: Found) -> Verdict:
    """Is a landing attempt on its pending events to tolerance? A pair short of its
    surface is retaken ahead, one past it back (Newton on u; secant on λ and log L),
    up to NEWTON times; otherwise the attempt is accepted and its events applied."""
    u1, du1, log_stop, l1, scale = a.st.ev1.u, a.du1, f.log_stop, f.l1, ctx.scale
    sign = jnp.where(c.pat.mode == ACTIVE, 1.0, -1.0)
    early = c.pend & (sign * u1 > a.tol_u)  # not there yet
    over = c.pend & (sign * u1 < -a.tol_u)  # past it
    # exits: λ short of its band (early) or well past it (over); secant on λ
    upper = f.lam1 > 0.5
    aim = jnp.where(upper, 1.0 + ctx.tol_lam, -ctx.tol_lam)
    lam_dot = (f.lam1 - c.lam) / jnp.where(a.h > 0, a.h, 1.0)
    lam_step = (aim - f.lam1) / jnp.where(lam_dot == 0, 1.0, lam_dot)
    short = jnp.where(upper, f.lam1 < 1.0 - ctx.tol_lam / 2, f.lam1 > ctx.tol_lam / 2)
    past = jnp.where(upper, f.lam1 > 1.0 + 3 * ctx.tol_lam, f.lam1 < -3 * ctx.tol_lam)
    exit_early = c.pend_exit & short & (lam_dot != 0)
    exit_over = c.pend_exit & past & (lam_dot != 0)
    stop_short = c.pend_stop & (l1 > log_stop + scale[1])
    stop_over = c.pend_stop & (l1 < log_stop - scale[1])
    newton = -u1 / jnp.where(du1 == 0, 1.0, du1)
    dt_stop = (l1 - log_stop) / jnp.maximum(a.st.ev1.mu, 1e-300)
    dt_over = jnp.min(jnp.where(over & (newton < 0), newton, 0.0), initial=0.0)
    dt_over = jnp.minimum(dt_over, jnp.where(stop_over, dt_stop, 0.0))
    dt_over = jnp.minimum(
        dt_over, jnp.min(jnp.where(exit_over & (lam_step < 0), lam_step, 0.0), initial=0.0)
    )
    dt_early = jnp.min(jnp.where(early & (newton > 0), newton, jnp.inf), initial=jnp.inf)
    dt_early = jnp.minimum(dt_early, jnp.where(stop_short, dt_stop, jnp.inf))
    dt_early = jnp.minimum(
        dt_early,
        jnp.min(jnp.where(exit_early & (lam_step > 0), lam_step, jnp.inf), initial=jnp.inf),
    )
    fix = a.landing & a.ok & ~f.new_event & (c.tries < NEWTON)
    back = fix & (jnp.any(over) | stop_over | jnp.any(exit_over)) & (dt_over < 0)
    ahead = fix & ~back & jnp.isfinite(dt_early)
    accept = a.ok & ~f.new_event & ~back
    settle = accept & a.landing & ~ahead  # apply the landed events
    stop_end = accept & ~a.landing & f.stop_hit & (f.s_stop >= 1.0 - f.s_end_h)
    stopped = (settle & c.pend_stop) | stop_end
    # events at the end of an accepted step (within s_end_h) are landed there too
    ends = accept & ~ahead
    pend_now = (settle & c.pend) | (ends & f.cand & (f.s_cross <= 1.0))
    exit_now = (settle & c.pend_exit) | (ends & f.exiting & (f.s_exit <= 1.0))
    return Verdict(back, ahead, accept, dt_over, dt_early, stopped, ends, pend_now, exit_now)
