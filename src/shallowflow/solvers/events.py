"""The events of the exact flow at a landed state (SPEC §3b): the pending pairs' modes
decided together (crossing, sliding, inactive), the pairs of a neuron put exactly on
their surfaces, and a neuron at v_j = 0 retired (:func:`land`); a crossing landed on
inside the step that found it (:func:`land_inside`); and the state an attempt settles
in, landed or as integrated (:func:`settle`). :mod:`.locate` finds the events,
:mod:`.exact` runs the loop."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.model import State
from shallowflow.solvers.dopri import dense, hermite
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
    onto_surfaces,
    resolve,
    sliding_lambdas,
    spd_solve,
)
from shallowflow.solvers.locate import (
    EVENTS,
    EXIT_EVALS,
    Attempt,
    Carry,
    Context,
    Found,
    Verdict,
    gram_of,
    land_tol,
    u_scale,
)


class Landed(NamedTuple):
    """A landed state with its events applied (:func:`land`)."""

    y: State
    ev: Eval
    du: jax.Array
    lam: jax.Array
    pat: Pattern
    flips: jax.Array  # pending pairs that crossed
    slides: jax.Array  # pairs that entered sliding
    exits: jax.Array  # pairs that left sliding
    over: jax.Array  # sliding pairs refused for want of a slot
    evals: jax.Array  # field evaluations spent
    consistent: jax.Array  # the modes found are a Filippov state (resolve converged)


def first_guess(data: FieldData, y1: State, ev1: Eval, du1, pat: Pattern, pend) -> jax.Array:
    """Each pending pair's mode from its own one-sided rates u̇⁺, u̇⁻ at the surface, the
    other pairs as they are (SPEC §3b): same sign → that side; u̇⁺ < 0 < u̇⁻ → sliding;
    repelling → inactive."""
    s = data.slope
    qform = jnp.broadcast_to(data.sq[None, :], pend.shape)
    if pat.slots.shape[1]:  # ⟨P⊥x_i, x_i⟩, P⊥ off neuron j's sliding examples
        zs, chol = gram(data, pat.slots)
        jj, ii = jnp.nonzero(pend, size=min(EVENTS, pend.size), fill_value=0)
        zx = jnp.einsum("ckm,cm->ck", zs[jj], data.rows[ii])
        q = data.sq[ii] - jnp.sum(zx * spd_solve(chol[jj], zx), axis=1)
        qform = qform.at[jj, ii].set(jnp.where(pend[jj, ii], q, qform[jj, ii]))
    d_cur = jnp.where(pat.mode == ACTIVE, 1.0, s)
    jump = (y1.a[:, None] / data.n) * ev1.r[None, :] * qform
    dn = du1 - (d_cur - s) * jump  # u̇⁻
    dp = dn + (1.0 - s) * jump  # u̇⁺
    slide = (dp < 0) & (dn > 0)
    return jnp.where((dn > 0) & (dp > 0), ACTIVE, jnp.where(slide, SLIDING, INACTIVE))


def _land_unsliding(data: FieldData, y1: State, pat: Pattern, pend, guess) -> Landed:
    """:func:`land` without sliding slots (the diagonal geometry: orthogonal data never
    slide): a pending pair takes its guessed side, a would-be sliding one inactive, and
    is put exactly on its surface."""
    new_mode = jnp.where(guess == SLIDING, INACTIVE, guess).astype(jnp.int8)
    pat1 = Pattern(jnp.where(pend, new_mode, pat.mode).astype(jnp.int8), pat.slots)
    y2 = State(y1.a, jnp.where(pend, 0.0, y1.v))
    ev2 = field(data, y2, pat1, None)
    flips = jnp.sum(pend & (new_mode != pat.mode))
    zero = jnp.zeros((), jnp.int32)
    du2 = dudt(data, ev2.f)
    lam = jnp.zeros(pat.slots.shape, y1.a.dtype)
    return Landed(
        y2,
        ev2,
        du2,
        lam,
        pat1,
        flips.astype(jnp.int32),
        zero,
        zero,
        zero,
        jnp.ones((), jnp.int32),
        jnp.ones((), bool),
    )


def land(data, k_slots, diagonal, y1, ev1, du1, pat, pend, pend_exit, tol, tol_u) -> Landed:
    """Apply the located events at the landed state y1: the pending pairs (``pend``,
    (p, n)) and the sliding slots whose λ left [0, 1] (``pend_exit``). All pairs of a
    neuron at their surfaces (its sliding ones and its landed ones) are put exactly on
    them together, then their modes are decided together (:func:`.filippov.resolve`):
    deciding one pair against the others' old modes left pairs active with u̇ < 0 and
    a rounding off their surface, found again at once (issue 22).

    A neuron with every example at its surface (|u_ji| ≤ ``tol_u`` for all i) has
    reached v_j = 0 in the span of the data: it is put there, all its pairs inactive
    (σ'(0) = 0: it receives no gradient and stays); so is a neuron whose surfaces'
    normals are dependent (more of them than the data's rank: for data in general
    position v_j = 0 is the only point on all of them)."""
    guess = first_guess(data, y1, ev1, du1, pat, pend).astype(jnp.int8)
    if not k_slots:  # the diagonal geometry: orthogonal data never slide
        return _land_unsliding(data, y1, pat, pend, guess)
    # the pairs at their surfaces, as slots: the sliding ones, then the landed ones
    lam1 = sliding_lambdas(data, y1, pat, ev1)
    leave = jnp.where(lam1 > 0.5, ACTIVE, INACTIVE)
    bmode = jnp.where(pend_exit, leave, SLIDING).astype(jnp.int8)
    # the r-th landed pair of a neuron takes its r-th free slot
    free = pat.slots < 0
    rank = jnp.cumsum(pend, axis=1) - 1
    free_rank = jnp.where(free, jnp.cumsum(free, axis=1) - 1, -1)
    hot = pend[..., None] & (rank[..., None] == free_rank[:, None, :])
    fits = jnp.any(hot, axis=2)
    taken = jnp.any(hot, axis=1)
    on = jnp.where(taken, jnp.argmax(hot, axis=1), pat.slots).astype(jnp.int32)
    bmode = jnp.where(taken, jnp.take_along_axis(guess, jnp.maximum(on, 0), axis=1), bmode)
    # a neuron at v_j = 0 (in the span): every example at its surface, or more surfaces
    # than the data's rank (their normals dependent: for data in general position the
    # only point on all of them is v_j = 0; Cholesky pivots ~0 tell it)
    real = jnp.arange(data.y.shape[0]) < data.n
    dead = jnp.all((jnp.abs(ev1.u) <= tol_u) | ~real[None, :], axis=1)
    pivots = jnp.diagonal(gram(data, on)[1], axis1=1, axis2=2) ** 2
    sq = data.sq[jnp.maximum(on, 0)]
    tiny = ~(pivots >= 1e3 * jnp.finfo(y1.v.dtype).eps * sq)  # NaN pivots too
    dead = dead | jnp.any((on >= 0) & tiny, axis=1)
    over = pend & ~fits & ~dead[:, None]  # no slot left: put on the surface alone, inactive
    base = jnp.where(over | dead[:, None], INACTIVE, pat.mode).astype(jnp.int8)
    on = jnp.where(dead[:, None], -1, on)
    corr = jnp.where(over, ev1.u / jnp.where(data.sq > 0, data.sq, 1.0)[None, :], 0.0)
    v = jnp.where(dead[:, None], 0.0, y1.v - data.geom.pullback(corr, data.z))
    y_on = onto_surfaces(data, State(y1.a, v), on)
    res = resolve(data, y_on, base, on, bmode, tol, 4 * k_slots + 4)
    was, now = pat.mode == SLIDING, res.pat.mode == SLIDING
    flips = jnp.sum((pend | dead[:, None]) & ~now & (res.pat.mode != pat.mode))
    crossed, entered, left = (
        jnp.asarray(x, jnp.int32) for x in (flips, jnp.sum(now & ~was), jnp.sum(was & ~now))
    )
    return Landed(
        y_on,
        res.ev,
        dudt(data, res.ev.f),
        res.lam,
        res.pat,
        crossed,
        entered,
        left,
        jnp.sum(over).astype(jnp.int32),
        res.evals,
        res.consistent,
    )


def settle(ctx: Context, c: Carry, a: Attempt, f: Found, v: Verdict) -> Landed:
    """The state the attempt ends in: its landed events applied (:func:`.events.land`),
    or as integrated (sticky pairs that reached 0 clamped back onto their surface)."""
    fire = jnp.any(v.pend_now) | jnp.any(v.exit_now)
    ops = (c.pat, c.t, a, f.lam1, f.stick, v.pend_now, v.exit_now)
    return jax.lax.cond(fire, partial(_apply_events, ctx), partial(_unchanged, ctx), *ops)


def _apply_events(ctx: Context, pat, t, a: Attempt, lam1, stick, pend_now, exit_now) -> Landed:
    args = (pat, pend_now, exit_now, ctx.tol_lam, land_tol(ctx, a.st.y1, a.du1, t))
    return land(ctx.data, ctx.k_slots, ctx.diagonal, a.st.y1, a.st.ev1, a.du1, *args)


def _unchanged(ctx: Context, pat, t, a: Attempt, lam1, stick, pend_now, exit_now) -> Landed:
    zero = jnp.zeros((), jnp.int32)
    one = jnp.ones((), bool)
    same = Landed(a.st.y1, a.st.ev1, a.du1, lam1, pat, zero, zero, zero, zero, zero, one)
    if not ctx.sticky:
        return same
    return jax.lax.cond(jnp.any(stick), partial(_clamp, ctx), _as_is, same, stick)


def _as_is(same: Landed, stick) -> Landed:
    return same


def _clamp(ctx: Context, same: Landed, stick) -> Landed:
    """Sticky pairs that reached 0 in the step are put back on their surface, inactive."""
    y_c = State(same.y.a, jnp.where(stick, 0.0, same.y.v))
    pat_c = Pattern(jnp.where(stick, INACTIVE, same.pat.mode).astype(jnp.int8), same.pat.slots)
    ev_c = field(ctx.data, y_c, pat_c, None)
    return same._replace(
        y=y_c,
        ev=ev_c,
        du=dudt(ctx.data, ev_c.f),
        pat=pat_c,
        flips=jnp.sum(stick).astype(jnp.int32),
        evals=jnp.ones((), jnp.int32),
    )


class Inside(NamedTuple):
    """An event landed on inside the step that found it (:func:`land_inside`)."""

    use: jax.Array  # the landing holds: the attempt ends at the event
    tried: jax.Array  # evaluations of the field spent
    a: Attempt  # the attempt cut at the event: h, t1, θ, q and the field there
    v: Verdict  # accepted, its crossing pairs or its exiting slot landed on


def land_inside(ctx: Context, c: Carry, a: Attempt, f: Found) -> Inside:
    """Land on the step's first event inside the step. The pattern was frozen and valid
    up to the event, so the step's continuous extension (:func:`.dopri.dense`, 4th
    order, the order of the error estimate that accepted the step) gives θ and q = ∫μ
    there at no cost but the field: one evaluation at a crossing's root (found on the
    extension of u, linear in θ), a few at a sliding exit (λ needs the field: Illinois
    regula falsi on λ along the extension, at most EXIT_EVALS evaluations). The events
    are then applied by :func:`land`, as after a retaken step. The landing holds when
    the state there is one a retaken step would land in (:func:`_landed`); else, and
    for the stop and events of two kinds together, the step is retaken to the event as
    before (:func:`.locate.land_check`)."""
    s_first, together = f.s_first, f.s_first + f.window_h
    s_cross, s_exit = jnp.min(f.s_cross), jnp.min(f.s_exit, initial=2.0)
    leaving = f.exiting & (f.s_exit <= together)
    plain = f.new_event & (f.s_stop > together)
    crossing = plain & (s_cross <= s_first) & (s_exit > together)
    exiting = plain & (s_exit <= s_first) & (s_cross > together) & (jnp.sum(leaving) == 1)
    branch = jnp.where(crossing, 1, jnp.where(exiting, 2, 0))
    pend = f.cand & (f.s_cross <= together) & crossing
    gone = leaving & exiting
    cuts = [partial(fn, ctx) for fn in (_uncut, _cut_crossing, _cut_exit)]
    cut, ok, evals = jax.lax.switch(branch, cuts, c, a, f, pend, gone)
    v = Verdict(
        back=jnp.zeros((), bool),
        ahead=jnp.zeros((), bool),
        accept=jnp.ones((), bool),
        dt_over=jnp.zeros((), a.h.dtype),
        dt_early=jnp.full((), jnp.inf, a.h.dtype),
        stopped=jnp.zeros((), bool),
        ends=jnp.ones((), bool),
        pend_now=pend,
        exit_now=gone,
    )
    return Inside((branch > 0) & ok, evals, cut, v)


def _field_at(ctx: Context, c: Carry, a: Attempt, s) -> tuple[State, Eval]:
    """θ at t + s·h on the step's continuous extension, and the field there (pattern
    as in the step)."""
    y = dense(s, c.y, c.ev.f, a.st, a.st.ev1.f, a.h)
    return y, field(ctx.data, y, c.pat, gram_of(ctx, c.pat))


def _landed(ctx: Context, c: Carry, a: Attempt, s, y, ev, pend, gone):
    """The attempt cut at s (θ = y, the field ev there), and whether that state is a
    landing: the pending pairs within the landing tolerance of their surfaces, no other
    pair past its surface, no sliding pair but the exiting ones (``gone``) with λ past
    its band, the loss above the stop."""
    data, h = ctx.data, a.h
    q = hermite(s, c.q, c.ev.mu, a.st.q1, a.st.ev1.mu, h, a.st.e_q)
    du, t = dudt(data, ev.f), c.t + s * h
    tol_u = land_tol(ctx, y, du, t)
    sign = jnp.where(c.pat.mode == ACTIVE, 1.0, -1.0)
    moving = ctx.real & (c.pat.mode != SLIDING) & ~pend
    past = moving & (sign * ev.u < -256 * ctx.eps * u_scale(ctx, y))
    on = ~jnp.any(pend & (jnp.abs(ev.u) > tol_u))
    lam = sliding_lambdas(data, y, c.pat, ev) if ctx.k_slots else c.lam
    band = (lam >= -ctx.tol_lam) & (lam <= 1 + ctx.tol_lam)
    held = ~jnp.any((c.pat.slots >= 0) & ~band & ~gone)
    ok = on & ~jnp.any(past) & held & (ev.loss > ctx.stop_loss) & jnp.isfinite(q)
    st = a.st._replace(y1=y, ev1=ev, q1=q)
    return a._replace(h=s * h, t1=t, st=st, du1=du, tol_u=tol_u), ok


def _cut_crossing(ctx: Context, c: Carry, a: Attempt, f: Found, pend, gone):
    """A crossing: its root s* is the step's first event; one evaluation there."""
    y, ev = _field_at(ctx, c, a, f.s_first)
    cut, ok = _landed(ctx, c, a, f.s_first, y, ev, pend, gone)
    return cut, ok, jnp.ones((), jnp.int32)


def _cut_exit(ctx: Context, c: Carry, a: Attempt, f: Found, pend, gone):
    """A sliding exit: the slot's λ reaches 1 + tol_lam (or −tol_lam) along the
    extension; Illinois regula falsi on g = ±(λ − aim) from the bracket [0, 1] (g < 0
    at the step's start, inside the band; > 0 at its end), each guess one evaluation,
    until λ lies where a retaken landing accepts it (:func:`.locate.land_check`: within
    [1 − tol_lam/2, 1 + 3 tol_lam], or the mirror at 0)."""
    tol = ctx.tol_lam
    lam0, lam1 = (jnp.sum(jnp.where(gone, x, 0.0)) for x in (c.lam, f.lam1))
    upper = lam1 > 0.5
    aim, sign = jnp.where(upper, 1.0 + tol, -tol), jnp.where(upper, 1.0, -1.0)

    def g_at(s):
        y, ev = _field_at(ctx, c, a, s)
        lam = sliding_lambdas(ctx.data, y, c.pat, ev)
        return y, ev, sign * (jnp.sum(jnp.where(gone, lam, 0.0)) - aim)

    def going(st):
        return (st[-1] < EXIT_EVALS) & ~st[-2]

    def illinois(st):
        lo, g_lo, hi, g_hi, last, s, _, _, _, it = st
        y, ev, g = g_at(s)
        hit = (g >= -1.5 * tol) & (g <= 2 * tol)
        left = g < 0  # the root lies above s
        # Illinois: a side kept twice in a row has its g halved (superlinear, bracketed)
        g_hi = jnp.where(left & (last == 1), 0.5 * g_hi, g_hi)
        g_lo = jnp.where(~left & (last == -1), 0.5 * g_lo, g_lo)
        lo, g_lo = jnp.where(left, s, lo), jnp.where(left, g, g_lo)
        hi, g_hi = jnp.where(left, hi, s), jnp.where(left, g_hi, g)
        nxt = lo - g_lo * (hi - lo) / jnp.where(g_hi == g_lo, 1.0, g_hi - g_lo)
        side = jnp.where(left, -1, 1).astype(jnp.int32)
        return lo, g_lo, hi, g_hi, side, jnp.where(hit, s, nxt), y, ev, hit, it + 1

    dtype = a.h.dtype
    g0, g1 = (sign * (lam0 - aim)).astype(dtype), (sign * (lam1 - aim)).astype(dtype)
    zero, one, none = jnp.zeros((), dtype), jnp.ones((), dtype), jnp.zeros((), jnp.int32)
    # no slot leaving: nothing to locate (under vmap every branch runs, for every run)
    idle = ~jnp.any(gone)
    start = (zero, g0, one, g1, none, f.s_first, a.st.y1, a.st.ev1, idle, none)
    _, _, _, _, _, s, y, ev, hit, it = jax.lax.while_loop(going, illinois, start)
    cut, ok = _landed(ctx, c, a, s, y, ev, pend, gone)
    return cut, ok & hit & (g0 < 0) & (jnp.min(f.s_cross) > s + f.window_h), it


def _uncut(ctx: Context, c: Carry, a: Attempt, f: Found, pend, gone):
    return a, jnp.zeros((), bool), jnp.zeros((), jnp.int32)
