"""What every solver returns, and the outcome codes."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import jax
import jax.numpy as jnp

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
