"""What every solver returns, and the outcome codes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from shallowflow.model import State

RUNNING, CONVERGED, HORIZON, DIVERGED, STALLED = 0, 1, 2, 3, 4
OUTCOMES = {
    CONVERGED: "converged",
    HORIZON: "horizon",
    DIVERGED: "diverged",
    RUNNING: "horizon",
    STALLED: "stalled",  # the exact flow's step size or step budget ran out
}


class Trajectory(NamedTuple):
    """A solved run: states at the recorded times, and how it ended.

    ``states`` stacks θ at ``times`` (K,); entries after the stop repeat the final
    state and are masked by ``valid``. ``t_final`` is when the run stopped, ``steps``
    the number of solver steps, ``status`` an outcome code, ``tail_rate`` the
    end-of-run rate μ(t_∞) (SPEC §5, Fig. 6).
    """

    times: jax.Array
    states: State
    valid: jax.Array
    final: State
    t_final: jax.Array
    steps: jax.Array
    status: jax.Array
    tail_rate: jax.Array


def exploded(loss: jax.Array, loss0: jax.Array, factor: float) -> jax.Array:
    """The divergence test of every solver: L non-finite or above ``factor``·L(0)."""
    return ~jnp.isfinite(loss) | (loss > factor * loss0)
