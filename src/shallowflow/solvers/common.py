"""What every solver returns, and the outcome codes."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.data import Real
from shallowflow.model import State


class Outcome(IntEnum):
    """How a run ended (its ``status``): below the stop loss, at the horizon, diverged
    (non-finite loss or above a factor of L(0)), or stalled (the exact flow's step size
    or step budget ran out). ``RUNNING`` is the solvers' state while a run goes on."""

    RUNNING = 0
    CONVERGED = 1
    HORIZON = 2
    DIVERGED = 3
    STALLED = 4

    @property
    def label(self) -> str:
        """The word in the tables (a run still running at the end reached the horizon)."""
        return "horizon" if self is Outcome.RUNNING else self.name.lower()


class StallReason(IntEnum):
    """Why the exact flow stopped a run as ``stalled`` (its ``stall_reason``): its work
    per unit of progress passed a bound (:mod:`.exact`), or its attempts ran out."""

    NONE = 0
    CHATTER = 1  # sliding pairs entering and leaving with no progress in t
    ZENO = 2  # crossings accumulating with no progress in t
    STEP = 3  # the step size fell to rounding level with no event
    REJECTS = 4  # too many rejected attempts in a row
    INCONSISTENT = 5  # no consistent Filippov modes for the pairs at their surfaces
    CAP = 6  # the attempt cap (max_steps) ran out

    def describe(self, sliding: int, t: float) -> str:
        """The reason in words, e.g. 'sliding set of 3 pairs chattering at t = 2.31'."""
        words = {
            StallReason.NONE: "",
            StallReason.CHATTER: f"sliding set of {sliding} pairs chattering at t = {t:.6g}",
            StallReason.ZENO: f"crossings accumulating (Zeno) at t = {t:.6g}",
            StallReason.STEP: f"step size at rounding level at t = {t:.6g}",
            StallReason.REJECTS: f"attempts rejected again and again at t = {t:.6g}",
            StallReason.INCONSISTENT: (
                f"no consistent Filippov modes for {sliding} sliding pairs at t = {t:.6g}"
            ),
            StallReason.CAP: f"attempt cap reached at t = {t:.6g}",
        }
        return words[self]


class Levels(NamedTuple):
    """A run measured again at loss levels, the first time its loss falls below each:
    the time, the loss there, the end-of-run rate μ(t_∞) of the window ending there
    (SPEC §5), and θ there. Levels not reached have time inf."""

    t: jax.Array  # (K,)
    loss: jax.Array  # (K,)
    tail: jax.Array  # (K,)
    states: State  # (K, ...)


def level_buffers(levels: jax.Array, state: State) -> Levels:
    """Empty level records for ``levels`` (K,), with K + 1 state slots: the last is a
    scratch slot that :func:`record_levels` writes when no level is crossed (one write
    per step whatever happens, so that no branch is needed under ``vmap``)."""
    inf = jnp.full(levels.shape, jnp.inf, levels.dtype)
    slots = jax.tree_util.tree_map(
        lambda x: jnp.zeros((levels.shape[0] + 1,) + x.shape, x.dtype), state
    )
    return Levels(inf, inf, jnp.zeros_like(inf), slots)


def record_levels(
    rec: Levels, levels: jax.Array, loss: jax.Array, t, tail_rate, state: State, ok
) -> Levels:
    """Mark the first not-yet-crossed level that ``loss`` (at time ``t``, state
    ``state``) is at or below, when ``ok``; another level crossed at the same time is
    marked at the next call."""
    new = ok & (loss <= levels) & ~jnp.isfinite(rec.t)
    first = jnp.argmax(new)
    hit = jnp.any(new)
    slot = jnp.where(hit, first, levels.shape[0])
    states = jax.tree_util.tree_map(
        lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, slot, 0), rec.states, state
    )
    mark = hit & (jnp.arange(levels.shape[0]) == first)
    return Levels(
        jnp.where(mark, t, rec.t),
        jnp.where(mark, loss, rec.loss),
        jnp.where(mark, tail_rate, rec.tail),
        states,
    )


def finish_levels(rec: Levels) -> Levels:
    """The records without the scratch slot."""
    return rec._replace(states=jax.tree_util.tree_map(lambda x: x[:-1], rec.states))


class Trajectory(NamedTuple):
    """A solved run: states at the recorded times, and how it ended.

    ``states`` stacks θ at ``times`` (K,); entries after the stop repeat the final
    state and are masked by ``valid``. ``t_final`` is when the run stopped, ``steps``
    the number of solver steps, ``status`` an outcome code, ``tail_rate`` the
    end-of-run rate μ(t_∞) (SPEC §5, Fig. 6), ``levels`` the run at loss levels.
    """

    times: jax.Array
    states: State
    valid: jax.Array
    final: State
    t_final: jax.Array
    steps: jax.Array
    status: jax.Array
    tail_rate: jax.Array
    levels: Levels | None = None


def exploded(loss: jax.Array, loss0: jax.Array, factor: Real) -> jax.Array:
    """The divergence test of every solver: L non-finite or above ``factor``·L(0)."""
    return ~jnp.isfinite(loss) | (loss > factor * loss0)


TAIL_BUFFER = 512  # step ends kept for the flows' end-of-run rate window


def push_window(buf_t, buf_l, nbuf, t, loss, take):
    """The ring buffer of step ends (t, log L) with the step end at ``t`` added when
    ``take``: the flows' record of the loss for :func:`window_rate`."""
    slot = nbuf % TAIL_BUFFER
    buf_t = jnp.where(take, buf_t.at[slot].set(t), buf_t)
    buf_l = jnp.where(take, buf_l.at[slot].set(jnp.log(loss)), buf_l)
    return buf_t, buf_l, nbuf + take.astype(jnp.int32)


def window_rate(buf_t, buf_l, nbuf, t_end, loss, tail, mu0) -> jax.Array:
    """log(L(t_∞ − w)/L(t_∞))/w, w = min(tail, t_∞), log L interpolated linearly
    between the step ends in the buffer (the window shrinks to what it holds): the
    flows' μ(t_∞) (SPEC §5)."""
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


def first_step(state0: State, f0: State, size, t_end) -> jax.Array:
    """The flows' first step size (Hairer, Nørsett and Wanner's rule, at most the
    horizon): 0.01 ‖θ(0)‖/‖F(θ(0))‖ in RMS over the ``size`` real entries."""
    d0 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(state0)) / size)
    d1 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(f0)) / size)
    h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.maximum(d1, 1e-300), 1e-6)
    return jnp.minimum(h0, jnp.maximum(t_end, 1e-30))
