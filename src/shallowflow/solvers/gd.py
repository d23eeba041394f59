"""Gradient descent θ_{k+1} = θ_k + η F(θ_k), F = −p∇L (SPEC §1); step k is time kη.

One compiled ``lax.scan`` over the recorded steps, each a ``lax.while_loop`` of GD
steps; a run stops at the first step whose loss is ≤ ``stop_loss`` (converged), or
whose loss is non-finite or exceeds ``diverge_factor``·L(0) (diverged: the last
finite state is kept). Under ``vmap`` finished runs are frozen while others go on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, field_from_forward, forward
from shallowflow.solvers.common import CONVERGED, DIVERGED, HORIZON, RUNNING, Trajectory


def tail_rate(buf: jax.Array, k: jax.Array, tail: int) -> jax.Array:
    """Mean over the last ``tail`` steps of 2(L_k − L_{k+1})/(L_k + L_{k+1}),
    from a ring buffer holding L at steps k−tail..k (fewer if k < tail)."""
    size = tail + 1
    idx = (k - jnp.arange(tail, -1, -1)) % size  # steps k−tail … k, oldest first
    ls = buf[idx]
    rate = 2.0 * (ls[:-1] - ls[1:]) / (ls[:-1] + ls[1:])
    ok = (k - jnp.arange(tail, 0, -1)) >= 0
    return jnp.sum(jnp.where(ok, rate, 0.0)) / jnp.maximum(jnp.sum(ok), 1)


def solve(
    geom: Geometry,
    prob: Problem,
    state0: State,
    grid: jax.Array,
    *,
    lr: float,
    stop_loss: float,
    diverge_factor: float = 1e6,
    slope: float = 0.0,
    tail: int = 100,
) -> Trajectory:
    """Run GD from ``state0`` and record θ at the integer steps ``grid`` (sorted,
    last = horizon in steps)."""
    loss0 = forward(geom, state0, prob, slope).loss
    dtype = loss0.dtype

    def step(c):
        state, prev, k, status, buf = c
        fw = forward(geom, state, prob, slope)
        bad = ~jnp.isfinite(fw.loss) | (fw.loss > diverge_factor * loss0)
        done = fw.loss <= stop_loss
        status = jnp.where(bad, DIVERGED, jnp.where(done, CONVERGED, RUNNING)).astype(jnp.int32)
        field = field_from_forward(geom, state, prob, fw, slope)
        moved = jax.tree_util.tree_map(lambda x, f: x + lr * f, state, field)
        go = status == RUNNING
        new = jax.tree_util.tree_map(
            lambda m, s, q: jnp.where(go, m, jnp.where(bad, q, s)), moved, state, prev
        )
        buf = jnp.where(bad, buf, buf.at[k % (tail + 1)].set(fw.loss))
        k = k + go.astype(k.dtype) - (bad & (k > 0)).astype(k.dtype)
        return new, state, k, status, buf

    def upto(c, g):
        c = jax.lax.while_loop(lambda c: (c[2] < g) & (c[3] == RUNNING), step, c)
        return c, c[0]

    buf0 = jnp.full((tail + 1,), loss0, dtype)
    c0 = (state0, state0, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), buf0)
    c, states = jax.lax.scan(upto, c0, grid)
    state, _, k, status, buf = c
    # A run still running at the horizon is checked once more (its last loss).
    last = forward(geom, state, prob, slope).loss
    status = jnp.where(
        status == RUNNING,
        jnp.where(~jnp.isfinite(last), DIVERGED, jnp.where(last <= stop_loss, CONVERGED, HORIZON)),
        status,
    )
    buf = jnp.where(jnp.isfinite(last), buf.at[k % (tail + 1)].set(last), buf)
    t_final = k.astype(dtype) * lr
    times = grid.astype(dtype) * lr
    valid = grid <= k
    return Trajectory(times, states, valid, state, t_final, k, status, tail_rate(buf, k, tail))
