"""Gradient descent θ_{k+1} = θ_k + η F(θ_k), F = −p∇L (SPEC §1); step k is time kη.

One compiled ``lax.scan`` over the recorded steps, each a ``lax.while_loop`` of GD
steps; a run stops when its loss meets the stop rule (converged), or at the first
step whose loss is non-finite or exceeds ``diverge_factor``·L(0) (diverged). Under
``vmap`` finished runs are frozen while others go on.

Stop rules, for a horizon of T steps (θ_0 … θ_T, L_k = L(θ_k)):

- ``inclusive`` (ours, the default): L_k is tested at k = 0, 1, …, T; the run converges
  at the first k ≤ T with L_k ≤ ``stop_loss``.
- ``authors`` (the loop of the paper's code; the ``paper`` preset): L_k is tested at
  k = 0, …, T − 1 only; the run converges at the first k < T with L_k < ``stop_loss``
  (their ``break`` on ``<``), or at k = T − 1 if L_{T−1} = ``stop_loss`` exactly (their
  success test ``≤`` after the loop; they take one more step there, an event of
  probability zero). L_T is never tested: a run that first reaches the stop loss at
  step T ends at the horizon, unconverged.

A diverged run keeps its last finite state θ_{k−1}. The step loop carries nothing
but θ (no copy of the previous state: that copy cost up to 1.8x on the diagonal
geometry); θ_{k−1} is instead replayed, once, from the state saved at the start of
the record interval (or the one before), with the same step function.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp

from shallowflow.activations import Activation, relu
from shallowflow.data import Real
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, field_from_forward, forward
from shallowflow.solvers.base import SolveArgs, Solver
from shallowflow.solvers.common import (
    Outcome,
    Trajectory,
    exploded,
    finish_levels,
    level_buffers,
    record_levels,
)


def tail_rate(buf: jax.Array, k: jax.Array, tail: int) -> jax.Array:
    """Mean over the last ``tail`` steps of 2(L_k − L_{k+1})/(L_k + L_{k+1}), a rate per
    step, from a ring buffer holding L at steps k−tail..k (fewer if k < tail)."""
    size = tail + 1
    idx = (k - jnp.arange(tail, -1, -1)) % size  # steps k−tail … k, oldest first
    ls = buf[idx]
    rate = 2.0 * (ls[:-1] - ls[1:]) / (ls[:-1] + ls[1:])
    ok = (k - jnp.arange(tail, 0, -1)) >= 0
    return jnp.sum(jnp.where(ok, rate, 0.0)) / jnp.maximum(jnp.sum(ok), 1)


def _move(geom: Geometry, prob: Problem, act: Activation, state: State, fw, eta) -> State:
    """θ + η F(θ), with F from the forward pass ``fw`` at θ."""
    field = field_from_forward(geom, state, prob, fw, act)
    return jax.tree_util.tree_map(lambda x, f: x + eta * f, state, field)


def _roll_back(geom, prob, act, lr, state, k, anchors) -> tuple[State, jax.Array]:
    """θ_{k−1} for a run whose state at step k is bad (θ_0 stays if k = 0), replayed
    from the later of the two ``anchors`` (state, step) that precedes it."""
    del state  # bad: never stepped from
    (s_old, k_old), (s_new, k_new) = anchors
    target = jnp.maximum(k - 1, 0)
    use_new = target >= k_new
    base = jax.tree_util.tree_map(lambda a, b: jnp.where(use_new, a, b), s_new, s_old)
    steps = target - jnp.where(use_new, k_new, k_old)
    replayed = jax.lax.fori_loop(
        0, steps, lambda _, s: _move(geom, prob, act, s, forward(geom, s, prob, act), lr), base
    )
    return replayed, target


def _outcome(bad: jax.Array, done: jax.Array, otherwise: Outcome) -> jax.Array:
    """Diverged where ``bad``, else converged where ``done``, else ``otherwise``."""
    return jnp.where(bad, Outcome.DIVERGED, jnp.where(done, Outcome.CONVERGED, otherwise))


def _at_horizon(end, loss0, status, stop_loss, diverge_factor, authors: bool):
    """A run still running at the horizon is checked once more, on its last loss
    ``end`` (under the authors' rule only for divergence): (status, running, bad)."""
    bad = exploded(end, loss0, diverge_factor)
    running = status == Outcome.RUNNING
    reached = (end <= stop_loss) & (not authors)
    return jnp.where(running, _outcome(bad, reached, Outcome.HORIZON), status), running, bad


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    lr: Real,
    stop_loss: Real,
    diverge_factor: Real = 1e6,
    act: Activation = relu,
    tail: int = 100,
    levels: jax.Array | None = None,
    rule: str = "inclusive",
) -> Trajectory:
    """Run GD from ``state0`` and record θ at the integer steps ``grid`` (sorted,
    last = horizon in steps); with ``levels`` (K,), also the run the first time its
    loss falls below each (:class:`~.common.Levels`). μ(t_∞) is the mean per-step rate
    of the last ``tail`` steps over η: a rate per unit of time (SPEC §5; at η = 1 the
    paper's mean over its last 100 steps, with ``tail`` = 100). ``rule``: the stop rule
    (module doc), ``inclusive`` or ``authors``."""
    if rule not in ("inclusive", "authors"):
        raise ValueError(f"stop_rule: unknown {rule!r}; allowed: ('inclusive', 'authors')")
    authors = rule == "authors"
    last = grid[-1] - 1  # T − 1: the authors' last tested step
    geom, z = geom.for_solver(prob.z)
    prob = prob._replace(z=z)
    loss0 = forward(geom, state0, prob, act).loss
    dtype = loss0.dtype

    move = functools.partial(_move, geom, prob, act)
    roll_back = functools.partial(_roll_back, geom, prob, act, lr)

    def at_levels(lev, loss, k, buf, state, ok):
        if lev is None or levels is None:  # both None, or neither
            return None
        rate = tail_rate(buf, k, tail) / lr
        return record_levels(lev, levels, loss, k.astype(dtype) * lr, rate, state, ok)

    def step(c):
        state, k, status, buf, lev = c
        fw = forward(geom, state, prob, act)
        bad = exploded(fw.loss, loss0, diverge_factor)
        done = (fw.loss < stop_loss) | ((k == last) & (fw.loss <= stop_loss))
        done = done if authors else fw.loss <= stop_loss
        status = _outcome(bad, done, Outcome.RUNNING).astype(jnp.int32)
        go = status == Outcome.RUNNING
        # A stopped run does not move (η·0 = 0 exactly; a diverged one is replayed).
        new = move(state, fw, jnp.where(go, lr, 0.0).astype(dtype))
        buf = jnp.where(bad, buf, buf.at[k % (tail + 1)].set(fw.loss))
        lev = at_levels(lev, fw.loss, k, buf, state, ~bad)
        return new, k + go.astype(k.dtype), status, buf, lev

    def upto(c, g):
        state, k, status, buf, lev, anchors = c
        anchors = (anchors[1], (state, k))
        was_running = status == Outcome.RUNNING
        state, k, status, buf, lev = jax.lax.while_loop(
            lambda c: (c[1] < g) & (c[2] == Outcome.RUNNING), step, (state, k, status, buf, lev)
        )
        state, k = jax.lax.cond(
            was_running & (status == Outcome.DIVERGED),
            lambda: roll_back(state, k, anchors),
            lambda: (state, k),
        )
        return (state, k, status, buf, lev, anchors), state

    c, states = jax.lax.scan(upto, _carry0(state0, loss0, tail, levels), grid)
    state, k, status, buf, lev, anchors = c
    end = forward(geom, state, prob, act).loss
    status, running, bad = _at_horizon(end, loss0, status, stop_loss, diverge_factor, authors)
    state, k = jax.lax.cond(running & bad, lambda: roll_back(state, k, anchors), lambda: (state, k))
    buf = jnp.where(running & ~bad, buf.at[k % (tail + 1)].set(end), buf)
    lev = at_levels(lev, end, k, buf, state, running & ~bad)
    lev = None if lev is None else finish_levels(lev)
    rate = tail_rate(buf, k, tail) / lr
    times, t_final = grid.astype(dtype) * lr, k.astype(dtype) * lr
    return Trajectory(times, states, grid <= k, state, t_final, k, status, rate, lev)


def _carry0(state0: State, loss0: jax.Array, tail: int, levels: jax.Array | None):
    """The scan's first carry: θ(0) at step 0, running, the rate buffer full of L(0), the
    level buffers, and θ(0) as both roll-back anchors."""
    dtype = loss0.dtype
    buf0 = jnp.full((tail + 1,), loss0, dtype)
    k0 = jnp.zeros((), jnp.int32)
    lev0 = None if levels is None else level_buffers(levels.astype(dtype), state0)
    return (state0, k0, jnp.zeros((), jnp.int32), buf0, lev0, ((state0, k0), (state0, k0)))


# Largest GD horizon in steps: step counters and record grids are int32 on device.
MAX_STEPS = 2**30


@dataclass(frozen=True)
class GD(Solver):
    """Gradient descent with step ``lr`` = η (traced per run) under ``stop_rule``
    (compiled in; module doc): grid in steps, step k at time kη."""

    lr: float
    stop_rule: Literal["inclusive", "authors"] = "inclusive"

    static: ClassVar[tuple[str, ...]] = ("stop_rule",)
    discrete: ClassVar[bool] = True

    @property
    def unit(self) -> float:
        """One step lasts η."""
        return self.lr

    def check(self, horizon: float, tail: float) -> None:
        """The horizon and μ(t_∞)'s window must fit the int32 step counter."""
        if horizon / self.lr > MAX_STEPS:
            raise ValueError(
                f"horizon: {horizon / self.lr:.3g} GD steps; at most 2^30 = {MAX_STEPS} "
                "(the step counter is 32-bit)"
            )
        if tail / self.lr > MAX_STEPS:
            raise ValueError(
                f"lr: μ(t_∞)'s window of {tail} units of time is {tail / self.lr:.3g} GD "
                f"steps at lr = {self.lr:g}; at most 2^30 = {MAX_STEPS} (the step counter "
                "is 32-bit)"
            )

    def solve(self, args: SolveArgs) -> Trajectory:
        """:func:`solve` (GD needs no step cap and no size)."""
        return solve(
            args.geom,
            args.prob,
            args.state0,
            args.grid,
            lr=self.lr,
            stop_loss=args.stop_loss,
            diverge_factor=args.diverge_factor,
            act=args.act,
            tail=args.tail,
            levels=args.levels,
            rule=self.stop_rule,
        )
