"""The exact gradient flow through the ReLU kinks: event-driven and Filippov (SPEC §3b).

The field F = −p∇L is smooth inside an activation pattern and jumps across the
surfaces u_ji = ⟨w_j, x_i⟩ = 0. This solver integrates the flow piece by piece:

- **Smooth pieces.** Each step is a Dormand–Prince 5(4) step (:mod:`.dopri`) with the
  pattern *frozen* (:mod:`.filippov`): σ(u) = u·D_h and σ'(u) = D_g with D fixed for
  the step, so the integrand is a polynomial and the error estimate is valid. The step
  size follows the usual controller at ``rtol``/``atol`` (RMS over the run's real
  entries), with no floor.
- **Crossings.** After an accepted step, a pair whose u left its side (at the end of
  the step, or inside it on the cubic Hermite interpolant of u built from u and u̇ at
  both ends) has crossed. The step is rejected and retaken to land on the earliest
  root, refined by Newton steps on the landed u, u̇ until |u| is at tolerance level.
  There every pair of neuron j at its surface (the landed ones and the sliding ones) is
  put exactly on it (v_j moved the least), and their modes are decided together
  (:func:`land`, :func:`.filippov.resolve`) from the rates u̇⁺, u̇⁻ of u_ji with the
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
  crossing (a secant on λ).
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

from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers.common import (
    Levels,
    Outcome,
    StallReason,
    exploded,
    finish_levels,
    level_buffers,
    record_levels,
)
from shallowflow.solvers.dopri import dopri, first_root, hermite
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

TAIL_BUFFER = 512  # step ends kept for the end-of-run rate window
NEWTON = 6  # Newton corrections of a located event time, at most
EVENTS = 32  # pairs whose crossing is located (and landed on) together, at most
# Work per unit of progress (issue 22): a run stalls (outcome `stalled`, with a reason)
# after MAX_REJECTS attempts in a row without an accepted step, or after MAX_IDLE
# attempts in which t advanced by less than rtol·max(1, t). A legitimate landing needs
# at most 1 + NEWTON attempts; a step at rtol is far longer than rtol·t.
MAX_REJECTS = 64
MAX_IDLE = 1000


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


class _Carry(NamedTuple):
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


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    rtol,
    atol,
    stop_loss,
    diverge_factor=1e6,
    slope: float = 0.0,
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
    (:class:`~.common.Levels`)."""
    sgeom, z = geom.for_solver(prob.z)
    n, p = prob.sizes(state0)
    dtype = state0.a.dtype
    rows = prob.z
    data = FieldData(sgeom, z, rows, prob.y, geom.sq_norms(prob.z), n, p, slope)
    width, count = prob.y.shape[0], state0.v.shape[0]
    k_slots = 0 if geom.diagonal else (min(rows.shape[1], 32) if slots is None else slots)
    sticky = geom.diagonal and float(slope) == 0.0  # orthogonal data, ReLU
    real = (jnp.arange(count)[:, None] < p) & (jnp.arange(width)[None, :] < n)
    if size is None:
        size = sum(x.size for x in jax.tree_util.tree_leaves(state0))
    scale = (jnp.asarray(atol, dtype), jnp.asarray(rtol, dtype), jnp.asarray(size, dtype))
    eps = jnp.finfo(dtype).eps
    # fractions of a step below which an event counts as at its end, and events count
    # as together: 1e-12 and 1e-9 in float64; in float32 they would round away (1 − 1e-12
    # is 1), so they are kept above 64 ε there
    s_end = max(1e-12, 64 * float(eps))
    window = max(1e-9, 64 * float(eps))
    # A sliding pair leaves when λ passes 1 + tol_lam (or −tol_lam), and the landing
    # (filippov.resolve) puts a pair back only when its λ would be below 1 − tol_lam:
    # one band for entry and exit, so an exit is never undone at once. An exit lands
    # with λ anywhere in [1 − tol_lam/2, 1 + 3 tol_lam]. Holding a pair on its surface
    # while λ runs through the band moves θ by O(tol_lam²) and the exit time by
    # O(tol_lam/λ̇): tol_lam = 10 rtol (at least 1000 ε, above λ's rounding).
    tol_lam = jnp.maximum(10 * scale[1], 1e3 * eps)

    def gram_of(pat):
        return gram(data, pat.slots) if k_slots else None

    pat0 = Pattern(
        jnp.where(data.geom.preact(state0.v, z) > 0, ACTIVE, INACTIVE).astype(jnp.int8),
        jnp.full((count, k_slots), -1, jnp.int32),
    )
    ev0 = field(data, state0, pat0, gram_of(pat0))
    loss0 = ev0.loss
    t_end = grid[-1]

    def u_scale(y):  # ‖v_j‖‖x_i‖: the size of u_ji
        return jnp.sqrt(jnp.sum(y.v * y.v, 1))[:, None] * jnp.sqrt(data.sq)[None, :]

    def land_tol(y, du, t):
        """|u| at a landing within this moves v_j by ≲ 0.1 tolerance; and no less than
        what one ulp of t moves u by (in float32 at t ≈ 250 an ulp is 1.5e-5, and Newton
        could not get closer: it retried to its cap at every landing)."""
        vn = jnp.sqrt(jnp.sum(y.v * y.v, 1))[:, None]
        tol = 0.1 * jnp.sqrt(data.sq)[None, :] * (scale[0] + scale[1] * vn)
        return jnp.maximum(tol, 4 * eps * jnp.maximum(1.0, jnp.abs(t)) * jnp.abs(du))

    # --- the start: records, the first step size (Hairer–Nørsett–Wanner's rule) ---
    k_rec = grid.shape[0]
    states = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (k_rec,) + x.shape), state0)
    rates = jnp.full((k_rec,), ev0.mu)
    integral = jnp.zeros((k_rec,), dtype)
    rec0 = jnp.sum(grid <= 0).astype(jnp.int32)
    d0 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(state0)) / size)
    d1 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(ev0.f)) / size)
    h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.maximum(d1, 1e-300), 1e-6)
    h0 = jnp.minimum(h0, jnp.maximum(t_end, 1e-30))
    zero = jnp.zeros((), jnp.int32)
    fzero = jnp.zeros((), dtype)
    stats0 = Stats(zero, zero, zero, zero, fzero, zero, fzero, zero, fzero, zero, zero, zero, zero)
    status0 = jnp.where(
        loss0 <= stop_loss,
        Outcome.CONVERGED,
        jnp.where(t_end <= 0, Outcome.HORIZON, Outcome.RUNNING),
    ).astype(jnp.int32)
    carry0 = _Carry(
        t=jnp.zeros((), dtype),
        h=h0.astype(dtype),
        y=state0,
        q=jnp.zeros((), dtype),
        ev=ev0,
        du=dudt(data, ev0.f),
        lam=jnp.full((count, k_slots), 0.5, dtype),
        pat=pat0,
        target=jnp.asarray(jnp.inf, dtype),
        tries=zero,
        pend=jnp.zeros((count, width), bool),
        pend_exit=jnp.zeros((count, k_slots), bool),
        pend_stop=jnp.zeros((), bool),
        rec=rec0,
        states=states,
        rates=rates,
        integral=integral,
        buf_t=jnp.zeros((TAIL_BUFFER,), dtype),
        buf_l=jnp.full((TAIL_BUFFER,), jnp.log(loss0)),
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

    def apply_events(c: _Carry, y1: State, ev1: Eval, du1, pend, pend_exit):
        args = (c.pat, pend, pend_exit, tol_lam, land_tol(y1, du1, c.t))
        return land(data, k_slots, geom.diagonal, y1, ev1, du1, *args)

    # --- one iteration: a step attempt ------------------------------------------
    def body(c: _Carry) -> _Carry:
        t_rec = grid[jnp.minimum(c.rec, k_rec - 1)]
        landing = jnp.isfinite(c.target) & (c.target <= t_rec)
        h_free = jnp.minimum(c.h, t_rec - c.t)
        h = jnp.maximum(jnp.where(landing, c.target - c.t, h_free), 0.0)
        st = dopri(data, c.y, c.ev, c.q, h, c.pat, gram_of(c.pat), scale)
        ok = jnp.isfinite(st.err) & (st.err <= 1.0)
        factor = jnp.clip(0.9 * jnp.maximum(st.err, 1e-10) ** -0.2, 0.2, 5.0)
        factor = jnp.where(jnp.isfinite(st.err), factor, 0.2)
        t1 = c.t + h
        u0, u1, du1 = c.ev.u, st.ev1.u, dudt(data, st.ev1.f)
        # -- new events inside (t, t1]: crossings, sliding exits, the stop --
        thr = 256 * eps * u_scale(st.y1)
        tol_u = land_tol(st.y1, du1, t1)
        # the root sought: u past its surface by a margin (a pair that starts on its
        # surface is not found there again), within half the landing tolerance (the
        # landing is then not past it: in float32 thr alone exceeds tol_u)
        margin = jnp.minimum(thr, 0.5 * tol_u)
        sign = jnp.where(c.pat.mode == ACTIVE, 1.0, -1.0)
        moving = real & (c.pat.mode != SLIDING) & ~c.pend
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
        _, flat = jax.lax.top_k(-guess.ravel(), min(EVENTS, guess.size))
        jj, ii = jnp.unravel_index(flat, guess.shape)

        def roots():
            r = first_root(
                u0[jj, ii],
                c.du[jj, ii],
                u1[jj, ii],
                du1[jj, ii],
                h,
                c.pat.mode[jj, ii] == ACTIVE,
                cand[jj, ii],
                margin[jj, ii],
            )
            return jnp.full(cand.shape, 2.0, dtype).at[jj, ii].set(r)

        stick = jnp.zeros_like(cand)
        if sticky:
            # Orthogonal data, ReLU: a pair that reaches 0 stays there. It is run past its
            # crossing with the frozen pattern and put back exactly on its surface at the
            # step's end; what the overshoot δ = (1 − s)h does elsewhere is of order δ²
            # (σ(u) ≈ u̇(t − τ) kept in h_i, r_i σ(u) in ȧ_j) and joins the step's error.
            stick = cand
            cand = jnp.zeros_like(cand)
            delta = jnp.where(stick, (1.0 - jnp.clip(guess, 0.0, 1.0)) * h, 0.0)
            rate = jnp.maximum(jnp.abs(c.du), jnp.abs(du1))
            kick = rate * delta * delta / 2  # ∫ |u| over the overshoot
            e_h = jnp.abs(st.y1.a) @ kick / p  # error in h_i
            e_a = kick @ jnp.abs(st.ev1.r) / n
            e_v = jnp.abs(st.y1.a)[:, None] * (jnp.sqrt(data.sq) * e_h)[None, :] / n
            tol_a = scale[0] + scale[1] * jnp.abs(st.y1.a)
            tol_v = scale[0] + scale[1] * jnp.abs(st.y1.v)
            kink = jnp.sqrt((jnp.sum((e_a / tol_a) ** 2) + jnp.sum((e_v / tol_v) ** 2)) / size)
            e_loss = jnp.sum(jnp.abs(st.ev1.r) * e_h) / n
            kink = jnp.maximum(kink, e_loss / (scale[1] * st.ev1.loss + scale[0] ** 2))
            err = jnp.maximum(st.err, kink)
            ok = jnp.isfinite(err) & (err <= 1.0)
            factor = jnp.clip(0.9 * jnp.maximum(err, 1e-10) ** -0.2, 0.2, 5.0)
            factor = jnp.where(jnp.isfinite(err), factor, 0.2)
            s_cross = jnp.full(cand.shape, 2.0, dtype)
            # ∫μ: the overshooting pairs' dv terms (in ‖F‖² at first order) are not
            # part of the flow followed
            over_mu = jnp.sum(st.ev1.f.v**2 * delta) / (p * st.ev1.loss)
            st = st._replace(q1=st.q1 - over_mu)
        else:
            s_cross = jax.lax.cond(jnp.any(cand), roots, lambda: jnp.full(cand.shape, 2.0, dtype))
        cand = cand & (s_cross <= 1.0)
        lam1 = sliding_lambdas(data, st.y1, c.pat, st.ev1) if k_slots else c.lam
        exiting = ((lam1 < -tol_lam) | (lam1 > 1 + tol_lam)) & (c.pat.slots >= 0) & ~c.pend_exit
        bound = jnp.where(lam1 > 1, 1.0 + tol_lam, -tol_lam)
        gap = jnp.where(c.lam == lam1, 1.0, c.lam - lam1)
        s_exit = jnp.where(exiting, jnp.clip((c.lam - bound) / gap, 0.0, 1.0), 2.0)
        log_stop = jnp.log(jnp.maximum(stop_loss, 1e-300))
        l0, l1 = jnp.log(c.ev.loss), jnp.log(jnp.maximum(st.ev1.loss, 1e-300))
        stop_hit = (l1 <= log_stop) & ~c.pend_stop
        s_stop = jnp.where(
            stop_hit, jnp.clip((l0 - log_stop) / jnp.where(l0 == l1, 1.0, l0 - l1), 0.0, 1.0), 2.0
        )
        s_first = jnp.minimum(jnp.minimum(jnp.min(s_cross), jnp.min(s_exit, initial=2.0)), s_stop)
        # events closer than a few ulps of t cannot be told apart (float32 at t ≈ 250: ulp
        # 1.5e-5): they count as at the step's end, or as together
        ulps = 4 * eps * jnp.maximum(1.0, jnp.abs(t1)) / jnp.where(h > 0, h, 1.0)
        s_end_h, window_h = jnp.maximum(s_end, ulps), jnp.maximum(window, ulps)
        new_event = ok & (s_first < 1.0 - s_end_h)
        # -- a landing: are the pending pairs on their surfaces (to tolerance)? --
        early = c.pend & (sign * u1 > tol_u)  # not there yet
        over = c.pend & (sign * u1 < -tol_u)  # past it
        # exits: λ short of its band (early) or well past it (over); secant on λ
        upper = lam1 > 0.5
        aim = jnp.where(upper, 1.0 + tol_lam, -tol_lam)
        lam_dot = (lam1 - c.lam) / jnp.where(h > 0, h, 1.0)
        lam_step = (aim - lam1) / jnp.where(lam_dot == 0, 1.0, lam_dot)
        short = jnp.where(upper, lam1 < 1.0 - tol_lam / 2, lam1 > tol_lam / 2)
        past = jnp.where(upper, lam1 > 1.0 + 3 * tol_lam, lam1 < -3 * tol_lam)
        exit_early = c.pend_exit & short & (lam_dot != 0)
        exit_over = c.pend_exit & past & (lam_dot != 0)
        stop_short = c.pend_stop & (l1 > log_stop + scale[1])
        stop_over = c.pend_stop & (l1 < log_stop - scale[1])
        newton = -u1 / jnp.where(du1 == 0, 1.0, du1)
        dt_stop = (l1 - log_stop) / jnp.maximum(st.ev1.mu, 1e-300)
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
        fix = landing & ok & ~new_event & (c.tries < NEWTON)
        back = fix & (jnp.any(over) | stop_over | jnp.any(exit_over)) & (dt_over < 0)
        ahead = fix & ~back & jnp.isfinite(dt_early)
        accept = ok & ~new_event & ~back
        settle = accept & landing & ~ahead  # apply the landed events
        stop_end = accept & ~landing & stop_hit & (s_stop >= 1.0 - s_end_h)
        stopped = (settle & c.pend_stop) | stop_end
        # events at the end of an accepted step (within s_end_h) are landed there too
        ends = accept & ~ahead
        pend_now = (settle & c.pend) | (ends & cand & (s_cross <= 1.0))
        exit_now = (settle & c.pend_exit) | (ends & exiting & (s_exit <= 1.0))

        def on_landing():
            return apply_events(c, st.y1, st.ev1, du1, pend_now, exit_now)

        def no_events():
            zero_i = jnp.zeros((), jnp.int32)
            same = Landed(
                st.y1,
                st.ev1,
                du1,
                lam1,
                c.pat,
                zero_i,
                zero_i,
                zero_i,
                zero_i,
                zero_i,
                jnp.ones((), bool),
            )
            if not sticky:
                return same

            def clamp():
                y_c = State(st.y1.a, jnp.where(stick, 0.0, st.y1.v))
                pat_c = Pattern(
                    jnp.where(stick, INACTIVE, c.pat.mode).astype(jnp.int8), c.pat.slots
                )
                ev_c = field(data, y_c, pat_c, None)
                flips = jnp.sum(stick).astype(jnp.int32)
                return same._replace(
                    y=y_c,
                    ev=ev_c,
                    du=dudt(data, ev_c.f),
                    pat=pat_c,
                    flips=flips,
                    evals=jnp.ones((), jnp.int32),
                )

            return jax.lax.cond(jnp.any(stick), clamp, lambda: same)

        lnd = jax.lax.cond(jnp.any(pend_now) | jnp.any(exit_now), on_landing, no_events)
        y2, ev2, du2, lam2, pat2 = lnd.y, lnd.ev, lnd.du, lnd.lam, lnd.pat
        accept = accept & lnd.consistent  # else the run stalls here (below)
        diverged = accept & exploded(ev2.loss, loss0, diverge_factor)
        take = accept & ~diverged

        def pick(a, b):
            return jax.tree_util.tree_map(lambda x, w: jnp.where(take, x, w), a, b)

        tn = jnp.where(take, t1, c.t)
        y_next, ev_next = pick(y2, c.y), pick(ev2, c.ev)
        du_next, lam_next, q_next = pick(du2, c.du), pick(lam2, c.lam), pick(st.q1, c.q)
        pat_next = pick(pat2, c.pat)
        # -- records at this time (repeated grid times too) --
        at_rec = take & (t1 >= t_rec) & (c.rec < k_rec)
        hit = (grid == t_rec) & at_rec & (jnp.arange(k_rec) >= c.rec)
        states = jax.tree_util.tree_map(
            lambda buf, x: jnp.where(hit.reshape((-1,) + (1,) * x.ndim), x[None], buf),
            c.states,
            y_next,
        )
        rates = jnp.where(hit, ev_next.mu, c.rates)
        integral = jnp.where(hit, q_next, c.integral)
        rec = c.rec + jnp.sum(hit).astype(jnp.int32)
        slot = c.nbuf % TAIL_BUFFER
        buf_t = jnp.where(take, c.buf_t.at[slot].set(tn), c.buf_t)
        buf_l = jnp.where(take, c.buf_l.at[slot].set(jnp.log(ev_next.loss)), c.buf_l)
        nbuf = c.nbuf + take.astype(jnp.int32)
        lev = c.lev
        if lev is not None:
            rate = _tail_rate(buf_t, buf_l, nbuf, tn, ev_next.loss, tail, ev0.mu)
            lev = record_levels(lev, levels, ev_next.loss, tn, rate, y_next, take)
        # -- what the next attempt aims at --
        floor_t = 4 * eps * jnp.maximum(1.0, jnp.abs(c.t))
        target = jnp.where(new_event, c.t + jnp.maximum(s_first * h, floor_t), jnp.inf)
        target = jnp.where(back, c.t + jnp.maximum(h + dt_over, floor_t), target)
        target = jnp.where(ahead, t1 + jnp.maximum(dt_early, floor_t), target)
        target = jnp.where(~ok & landing, jnp.inf, target)  # a failed landing starts over
        target = jnp.where(~ok & ~landing, c.target, target)  # a record step failed
        keep_pend = back | ahead | (~ok & ~landing)
        pend = jnp.where(
            new_event,
            cand & (s_cross <= s_first + window_h),
            jnp.where(keep_pend, c.pend, False),
        )
        pend_exit = jnp.where(
            new_event,
            exiting & (s_exit <= s_first + window_h),
            jnp.where(keep_pend, c.pend_exit, False),
        )
        pend_stop = jnp.where(
            new_event, stop_hit & (s_stop <= s_first + window_h), keep_pend & c.pend_stop
        )
        tries = jnp.where(back | ahead, c.tries + 1, 0).astype(jnp.int32)
        truncated = landing | (h_free < c.h)
        h_next = jnp.where(~ok, h * factor, jnp.where(accept & ~truncated, h * factor, c.h))
        status = jnp.where(
            diverged,
            Outcome.DIVERGED,
            jnp.where(
                stopped,
                Outcome.CONVERGED,
                jnp.where(take & (rec >= k_rec), Outcome.HORIZON, c.status),
            ),
        )
        sliding = c.pat.mode == SLIDING
        violation = jnp.max(jnp.where(sliding, jnp.abs(u1), 0.0), initial=0.0)
        any_slide = jnp.any(sliding)
        flips, slides, exits = (jnp.where(take, x, 0) for x in (lnd.flips, lnd.slides, lnd.exits))
        events = c.stats.crossings + c.stats.slides + c.stats.exits + flips + slides + exits
        # -- the work per unit of progress (issue 22) --
        streak = jnp.where(take, 0, c.streak + 1).astype(jnp.int32)
        moved = tn - c.mark_t > scale[1] * jnp.maximum(1.0, jnp.abs(tn))
        idle = c.iters + 1 - c.mark_iter
        n_slide = jnp.sum(pat_next.mode == SLIDING).astype(jnp.int32)
        reason = jnp.where(
            ends & ~lnd.consistent,
            StallReason.INCONSISTENT,
            jnp.where(
                ~ok & (h * factor <= 16 * eps * jnp.maximum(1.0, c.t)),
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
        status = jnp.where(reason > 0, Outcome.STALLED, status).astype(jnp.int32)
        stats = Stats(
            c.stats.steps + take.astype(jnp.int32),
            c.stats.rejected + (~accept).astype(jnp.int32),
            c.stats.crossings + flips,
            c.stats.slides + slides,
            c.stats.sliding_time + jnp.where(take & any_slide, h, 0.0),
            jnp.maximum(c.stats.max_sliding, n_slide),
            jnp.maximum(c.stats.max_violation, jnp.where(take, violation, 0.0)),
            c.stats.overflow + jnp.where(take, lnd.over, 0).astype(jnp.int32),
            jnp.where(take & (flips + slides + exits > 0), t1, c.stats.last_event),
            c.stats.exits + exits,
            c.stats.evals + 6 + lnd.evals,
            jnp.maximum(c.stats.stall_reason, reason),
            jnp.where(reason > 0, n_slide, c.stats.stall_sliding),
        )
        return _Carry(
            tn,
            h_next,
            y_next,
            q_next,
            ev_next,
            du_next,
            lam_next,
            pat_next,
            target,
            tries,
            pend,
            pend_exit,
            pend_stop,
            rec,
            states,
            rates,
            integral,
            buf_t,
            buf_l,
            nbuf,
            status,
            c.iters + 1,
            streak,
            jnp.where(moved, tn, c.mark_t),
            jnp.where(moved, c.iters + 1, c.mark_iter),
            jnp.where(moved, events, c.mark_events),
            stats,
            lev,
        )

    def going(c: _Carry):
        return (c.status == Outcome.RUNNING) & (c.iters < max_steps)

    c = jax.lax.while_loop(going, body, carry0)
    capped = c.status == Outcome.RUNNING  # the attempt cap ran out
    status = jnp.where(capped, Outcome.STALLED, c.status).astype(jnp.int32)
    stats = c.stats._replace(
        stall_reason=jnp.where(capped, StallReason.CAP, c.stats.stall_reason).astype(jnp.int32),
        stall_sliding=jnp.where(
            capped, jnp.sum(c.pat.mode == SLIDING).astype(jnp.int32), c.stats.stall_sliding
        ),
    )
    valid = grid <= c.t
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
        _tail_rate(c.buf_t, c.buf_l, c.nbuf, c.t, c.ev.loss, tail, ev0.mu),
        stats,
        None if c.lev is None else finish_levels(c.lev),
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


def _tail_rate(buf_t, buf_l, nbuf, t_end, loss, tail, mu0) -> jax.Array:
    """log(L(t_∞ − w)/L(t_∞))/w, w = min(tail, t_∞), log L interpolated linearly
    between the step ends in the buffer (the window shrinks to what it holds)."""
    count = jnp.minimum(nbuf, TAIL_BUFFER)
    start = jnp.where(nbuf > TAIL_BUFFER, nbuf % TAIL_BUFFER, 0)
    order = (start + jnp.arange(TAIL_BUFFER)) % TAIL_BUFFER
    ts, ls = buf_t[order], buf_l[order]
    ok = jnp.arange(TAIL_BUFFER) < count
    ts = jnp.where(ok, ts, ts[jnp.maximum(count - 1, 0)] + jnp.arange(TAIL_BUFFER))
    target = jnp.maximum(t_end - tail, ts[0])
    l_at = jnp.interp(target, ts, jnp.where(ok, ls, ls[jnp.maximum(count - 1, 0)]))
    width = t_end - target
    return jnp.where(width > 0, (l_at - jnp.log(loss)) / jnp.where(width > 0, width, 1.0), mu0)
