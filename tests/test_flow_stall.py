"""The exact flow never stalls silently (issue 22): on sphere data its landed states are
consistent Filippov states, its work is bounded per unit of progress, and its cost is
counted per event."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shallowflow.config import make_config
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State
from shallowflow.solvers import exact
from shallowflow.solvers.common import Outcome, StallReason
from shallowflow.start import make_run

# The cell of issue 22: at default tolerances the run of seed index 1 landed at
# t = 2.0305 in a state with two pairs of neuron 2 on the wrong side of their surfaces
# by 1e-10, and ping-ponged between them in steps of 4ε·t (2,900 rejected attempts in
# 3,000, no progress, on to the 5·10⁷ attempt cap: a hang).
_CELL = (
    "import json, sys, numpy as np\n"
    "from shallowflow import make_config, simulate\n"
    "rtol, atol = float(sys.argv[1]), float(sys.argv[2])\n"
    "cfg = make_config(data='sphere', n=30, d=8, p=6, runs=2, seed=3, x64=True,\n"
    "                  solver='flow', stop_loss=0.0, record=30, horizon=60.0,\n"
    "                  rtol=rtol, atol=atol)\n"
    "r = simulate(cfg)\n"
    "v = r.valid\n"
    "gap = 0.0\n"
    "for k in range(r.runs):\n"
    "    loss = r.records['loss'][k][v[k]]\n"
    "    drop = np.log(loss[0] / loss)\n"
    "    err = np.abs(drop - r.records['mu_integral'][k][v[k]]) / np.maximum(drop, 1.0)\n"
    "    gap = max(gap, float(err.max()))\n"
    "fin = np.log(r.init['loss0'] / r.final['loss'])\n"
    "end = np.abs(fin - r.final['mu_integral']) / np.maximum(fin, 1.0)\n"
    "keys = ('status', 't_final', 'steps', 'rejected', 'crossings', 'slides', 'evals',\n"
    "        'evals_per_event')\n"
    "out = {k: [float(x) for x in r.final[k]] for k in keys}\n"
    "out['gap'] = max(gap, float(end.max()))\n"
    "print(json.dumps(out))\n"
)


def _cell(rtol: float, atol: float) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    args = [sys.executable, "-c", _CELL, str(rtol), str(atol)]
    try:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the exact flow did not finish the issue-22 cell in 240 s (rtol {rtol})")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("rtol, atol", [(1e-5, 1e-7), (1e-7, 1e-9)], ids=["default", "tight"])
def test_sphere_cell_of_issue_22_reaches_its_horizon_with_bounded_work(rtol, atol):
    """The cell of issue 22 to horizon 60: it reaches the horizon (stop loss 0), the rate
    identity log(L(0)/L(t)) = ∫μ holds to the tolerance (the loss's error per step is
    held to rtol: 7.7e-6 measured at the default rtol = 1e-5, so 1e-6 needs
    rtol = 1e-7), and the attempts are bounded by the steps and the events."""
    out = _cell(rtol, atol)
    assert all(s in (Outcome.CONVERGED, Outcome.HORIZON) for s in out["status"]), out
    assert out["gap"] <= max(rtol, 1e-6), out
    steps, rejected = np.array(out["steps"]), np.array(out["rejected"])
    events = np.array(out["crossings"]) + np.array(out["slides"])
    # an event is landed on inside the step that found it, or costs that step rejected
    # and a few landing corrections; error-controlled rejections are a fraction of the steps
    assert np.all(rejected <= steps + 4 * events + 50), out
    # Dormand–Prince: 6 evaluations an attempt (first same as last), a few a landing
    assert np.all(np.array(out["evals"]) <= 6 * (steps + rejected) + 8 * events + 8), out
    # the cost per event: 14.5 and 13.8 at the default tolerances (the step that finds
    # the event, the field at it and at the new pattern, the steps between events);
    # 21.2 and 20.2 when each landing retook its step
    if rtol == 1e-5:
        assert np.all(np.array(out["evals_per_event"]) <= 16), out


# --------------------------------------------------------------------------- random cells

_N, _D, _P = 40, 10, 8  # one padded shape: one compilation per dtype


@functools.cache
def _solver():
    def run(z, y, a, v, n, p, rtol, atol):
        prob = Problem(z, y, n=n, p=p)
        size = p * (_D + 1)
        return exact.solve(
            Geometry("dense"),
            prob,
            State(a, v),
            jnp.linspace(0.0, 10.0, 3).astype(z.dtype),
            rtol=rtol,
            atol=atol,
            stop_loss=0.0,
            size=size,
        )

    return jax.jit(run)


def _padded_cell(n, d, p, seed, dtype):
    cfg = make_config(data="sphere", n=n, d=d, p=p, x64=dtype == jnp.float64, geometry="dense")
    start = make_run(jax.random.key(seed), cfg)
    z = jnp.zeros((_N, _D), dtype).at[:n, :d].set(start.prob.z.astype(dtype))
    y = jnp.zeros((_N,), dtype).at[:n].set(start.prob.y.astype(dtype))
    a = jnp.zeros((_P,), dtype).at[:p].set(start.state.a.astype(dtype))
    v = jnp.zeros((_P, _D), dtype).at[:p, :d].set(start.state.v.astype(dtype))
    return z, y, a, v


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    n=st.integers(4, _N),
    d=st.integers(2, _D),
    p=st.integers(2, _P),
    seed=st.integers(0, 2**16),
    x64=st.booleans(),
    tight=st.booleans(),
)
def test_random_small_sphere_cells_never_stall(n, d, p, seed, x64, tight):
    """Random small sphere cells (n ≤ 40, d ≤ 10, p ≤ 8; default and tight tolerances;
    float64 and float32) run to their horizon within the attempt bound, none stalled (no
    genuine Zeno point was met; a stalled run would name its reason here)."""
    dtype = jnp.float64 if x64 else jnp.float32
    rtol, atol = ((1e-9, 1e-11) if x64 else (1e-6, 1e-8)) if tight else (1e-5, 1e-7)
    with jax.enable_x64(x64):
        z, y, a, v = _padded_cell(n, d, p, seed, dtype)
        out = _solver()(z, y, a, v, jnp.int32(n), jnp.int32(p), rtol, atol)
        st_ = jax.tree_util.tree_map(np.asarray, out.stats)
        reason = StallReason(int(st_.stall_reason)).describe(
            int(st_.stall_sliding), float(out.t_final)
        )
    assert int(out.status) == Outcome.HORIZON, reason
    events = st_.crossings + st_.slides + st_.exits
    assert st_.rejected <= st_.steps + 4 * events + 50, st_
    assert st_.evals <= 6 * (st_.steps + st_.rejected) + 8 * events + 8, st_


def test_a_run_past_its_work_bound_stops_stalled_with_its_reason(monkeypatch):
    """The work bound is a bound: with no rejected attempt allowed, the planted sliding
    problem (tests/test_exact_flow.py), whose first event costs a rejected attempt,
    stops there as `stalled`, with the reason in words and the time it reached."""
    monkeypatch.setattr(exact, "MAX_REJECTS", 0)
    th = np.pi / 3
    x = np.array([[1.0, 0.0], [np.cos(th), np.sin(th)]])
    v0 = np.array([0.5 * np.array([np.sin(th), -np.cos(th)]), [-1.5, 1.2]])
    with jax.enable_x64(True):
        out = exact.solve(
            Geometry("dense"),
            Problem(jnp.asarray(x), jnp.asarray([2.0, -3.0])),
            State(jnp.asarray([1.0, -1.0]), jnp.asarray(v0)),
            jnp.asarray([0.0, 2.5]),
            rtol=1e-8,
            atol=1e-10,
            stop_loss=0.0,
        )
    assert int(out.status) == Outcome.STALLED
    assert int(out.stats.stall_reason) == StallReason.REJECTS
    assert 0.0 <= float(out.t_final) < 2.5
    words = StallReason(int(out.stats.stall_reason)).describe(1, float(out.t_final))
    assert words.startswith("attempts rejected again and again at t = ")
    assert StallReason.CHATTER.describe(3, 2.31) == "sliding set of 3 pairs chattering at t = 2.31"
