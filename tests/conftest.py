"""Shared, session-cached engine runs (each distinct configuration costs a JAX compile)."""

from __future__ import annotations

import pytest

from shallowflow.config import make_config
from shallowflow.engine import simulate

# Orthogonal data, true flow in float64 at tight tolerances. The step floor dtmin is
# lowered from its default 1e-2: on orthogonal data an active pre-activation of a
# wrong-sign neuron reaches 0 in finite time (a kink of the field), where the floored
# step cannot meet the tolerance (at dtmin=1e-2 the balance drift reaches 3e-6).
FLOW64 = dict(
    data="orthogonal",
    n=50,
    d=100,
    solver="flow",
    x64=True,
    rtol=1e-10,
    atol=1e-12,
    dtmin=1e-4,
    runs=2,
    record=10,
    keep_state=True,
)

# The paper's Fig. 6 protocol on a small grid: GD with η = 1, W scaled by 0.01 after
# drawing a, redrawn until covered, stop at L < 1e-6/(2n), horizon 10·T(n, p); float64.
ORTH_GD = dict(
    data="orthogonal",
    n=20,
    d=30,
    w_scale=0.01,
    require_coverage=True,
    stop_loss=1e-6 / 40,
    horizon_factor=10.0,
    runs=4,
    record=12,
    seed=3,
    x64=True,
)


@pytest.fixture(scope="session")
def flow64():
    return simulate(make_config(**FLOW64))


@pytest.fixture(scope="session")
def orth_gd():
    return simulate(make_config(**ORTH_GD))
