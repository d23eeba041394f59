"""The mean-field and the standard parametrisations give the same flow (SPEC §1)."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow import inits
from shallowflow.data import paper_labels, sphere
from shallowflow.geometry import Geometry
from shallowflow.model import Problem, State, vector_field
from shallowflow.plots import save_figure
from shallowflow.verify.checks.common import (
    FAIL,
    PASS,
    P,
    result,
)
from shallowflow.verify.ledger import Check, CheckResult


def _rk4(field, y0, dt: float, steps: int, every: int):
    """Classical RK4 with fixed step, saving every ``every`` steps."""

    def step(y, _):
        k1 = field(y)
        k2 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * dt * b, y, k1))
        k3 = field(jax.tree_util.tree_map(lambda a, b: a + 0.5 * dt * b, y, k2))
        k4 = field(jax.tree_util.tree_map(lambda a, b: a + dt * b, y, k3))
        return jax.tree_util.tree_map(
            lambda a, b1, b2, b3, b4: a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4
        ), None

    def block(y, _):
        y, _ = jax.lax.scan(step, y, None, length=every)
        return y, y

    return jax.lax.scan(block, y0, None, length=steps // every)[1]


def _draw(p: P) -> tuple[jax.Array, jax.Array, State]:
    """Sphere data, paper labels and a Gaussian θ(0) (float64 inside ``enable_x64``)."""
    key = jax.random.key(p.get("seed", 0))
    kx, ky, kw, ka = jax.random.split(key, 4)
    X = sphere(kx, p["n"], p["d"], jnp.float64)
    y = paper_labels(ky, p["n"], jnp.float64)
    W = inits.gaussian_w(kw, p["p"], p["d"], 1.0, jnp.float64)
    a = jax.random.normal(ka, (p["p"],), jnp.float64)
    return X, y, State(a, W)


def _flows(p: P, geom: Geometry, prob: Problem, th: State, c: float):
    """RK4 of the mean-field flow dθ/dt = F(θ) from θ(0) and of the plain flow
    dθ̃/dt = −∇L̃(θ̃), L̃ = (1/2n) Σ (y_i − Σ_j ã_j σ(⟨w̃_j, x_i⟩))², from θ(0)/c."""
    X, y = prob.z, prob.y

    def loss_std(th):
        h = jnp.maximum(th.v @ X.T, 0.0).T @ th.a
        return 0.5 * jnp.mean((y - h) ** 2)

    grad_std = jax.grad(loss_std)
    mf = jax.jit(
        lambda s: _rk4(lambda t: vector_field(geom, t, prob), s, p["dt"], p["steps"], p["every"])
    )
    std = jax.jit(
        lambda s: _rk4(
            lambda t: jax.tree_util.tree_map(jnp.negative, grad_std(t)),
            s,
            p["dt"],
            p["steps"],
            p["every"],
        )
    )
    traj_mf = jax.device_get(mf(th))
    traj_std = jax.device_get(std(State(th.a / c, th.v / c)))
    return traj_mf, traj_std


def _field_error(geom: Geometry, prob: Problem, th: State) -> float:
    """‖F(θ) + p∇L(θ)‖/‖F(θ)‖ with ∇L by autodiff of L = (1/2n) Σ (y_i − h_θ(x_i))² (SPEC §1)."""
    X, y, pw = prob.z, prob.y, th.a.shape[0]

    def loss_mf(s):
        h = jnp.maximum(s.v @ X.T, 0.0).T @ s.a / pw
        return 0.5 * jnp.mean((y - h) ** 2)

    g = jax.grad(loss_mf)(th)
    f = vector_field(geom, th, prob)
    return float(
        jnp.sqrt(sum(jnp.sum((fi + pw * gi) ** 2) for fi, gi in zip(f, g, strict=True)))
        / jnp.sqrt(sum(jnp.sum(fi**2) for fi in f))
    )


def _relative_gap(traj_mf, traj_std, c: float) -> np.ndarray:
    """‖θ(t)/c − θ̃(t)‖/‖θ̃(t)‖ at each saved time."""
    num = np.sqrt(
        sum(
            np.sum((np.asarray(m) / c - np.asarray(s)) ** 2, axis=tuple(range(1, np.ndim(m))))
            for m, s in zip(traj_mf, traj_std, strict=True)
        )
    )
    den = np.sqrt(
        sum(np.sum((np.asarray(s)) ** 2, axis=tuple(range(1, np.ndim(s)))) for s in traj_std)
    )
    return num / den


def scaling(p: P, fig_dir: Path | None = None) -> CheckResult:
    """SPEC §1: with θ̃(0) = θ(0)/√p, plain flow on L̃ gives θ̃(t) = θ(t)/√p."""
    n, d, pw = p["n"], p["d"], p["p"]
    geom = Geometry("dense")
    c = float(p.get("scale", math.sqrt(pw)))
    with jax.enable_x64(True):
        X, y, th = _draw(p)
        prob = Problem(X, y)
        traj_mf, traj_std = _flows(p, geom, prob, th, c)
        field_err = _field_error(geom, prob, th)
    rel = _relative_gap(traj_mf, traj_std, c)
    err = float(rel.max())
    times = p["dt"] * p["every"] * np.arange(1, rel.size + 1)
    ok = err <= p["tol"] and field_err <= p["tol"]
    numbers = {
        "n": n,
        "d": d,
        "p": pw,
        "scale": c,
        "dt": p["dt"],
        "T": float(times[-1]),
        "max_rel_err": err,
        "field_vs_autodiff_rel_err": field_err,
        "tol": p["tol"],
    }

    def draw(ax):
        ax[0].semilogy(times, np.maximum(rel, 1e-18), "o-")
        ax[0].axhline(p["tol"], color="k", ls="--")
        ax[0].set(xlabel="t", ylabel="‖θ/c − θ̃‖/‖θ̃‖", title=f"scaling, c = {c:.3g}")

    fig = save_figure(fig_dir, "scaling", draw)
    summ = f"max rel err {err:.2g} over t ≤ {times[-1]:g}; F vs −p∇L {field_err:.2g}"
    return result(
        "scaling",
        "mean-field flow dθ/dt = −p∇L and plain flow dθ̃/dt = −∇L̃ with θ̃(0) = θ(0)/√p satisfy "
        "θ̃(t) = θ(t)/√p (SPEC §1)",
        f"RK4 (float64, dt = {p['dt']:g}) of both flows: max_t ‖θ(t)/√p − θ̃(t)‖/‖θ̃(t)‖ ≤ "
        f"{p['tol']:g}, and F = −p∇L (autodiff) to {p['tol']:g}",
        PASS if ok else FAIL,
        numbers,
        fig,
        summ,
    )


CHECK = Check(
    "scaling",
    scaling,
    {
        "quick": dict(n=12, d=6, p=8, dt=1e-3, steps=4000, every=400, tol=1e-8),
        "paper": dict(n=40, d=20, p=32, dt=1e-3, steps=20000, every=1000, tol=1e-8),
    },
)
