"""The batched engine: R independent runs of one configuration in compiled calls.

Each run gets its own key (split from ``cfg.seed``), draws its data and θ(0)
(:mod:`shallowflow.problem`), is solved by GD or the flow (:mod:`shallowflow.solvers`)
and measured at the recorded times (:mod:`shallowflow.observables`). Runs are batched
(``vmap`` on accelerators, ``lax.map`` inside one compiled call on CPU), shared out
over the local devices (GPUs, or CPU cores made devices by
:func:`shallowflow.devices.use_cpu_devices`)
and chunked to fit ``cfg.memory_gb``; the same code runs on CPU and GPU.
The engine returns plain NumPy arrays; tables and files are made elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow.config import SimConfig
from shallowflow.observables import assumption1, balance, coverage, measure
from shallowflow.problem import UserArrays, dtype_of, geometry_of, make_run
from shallowflow.solvers import flow, gd


@dataclass(frozen=True)
class SimResult:
    """Arrays of a simulated cell. ``records[name]`` has shape (R, K) at ``times``
    (K,), masked by ``valid`` (R, K); ``final[name]`` and ``init[name]`` have shape
    (R,). ``states`` holds the final (a, v) when ``cfg.keep_state``."""

    cfg: SimConfig
    times: np.ndarray
    valid: np.ndarray
    records: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
    states: dict[str, np.ndarray] | None = None

    @property
    def runs(self) -> int:
        return self.valid.shape[0]


def record_grid(cfg: SimConfig) -> np.ndarray:
    """Recorded times: ``cfg.record`` points on [0, horizon], linear or log-spaced;
    integer steps for GD (unique, so possibly fewer points)."""
    t_end, k = cfg.t_end, cfg.record
    if cfg.solver == "gd":
        steps = max(1, int(round(t_end / cfg.lr)))
        if cfg.grid == "log":
            g = np.unique(np.round(np.geomspace(1, steps, k - 1)).astype(np.int64))
            return np.concatenate([[0], g])
        return np.unique(np.round(np.linspace(0, steps, k)).astype(np.int64))
    if cfg.grid == "log":
        return np.concatenate([[0.0], np.geomspace(t_end * 1e-4, t_end, k - 1)])
    return np.linspace(0.0, t_end, k)


def _one_run(cfg: SimConfig, grid: jax.Array, key: jax.Array, user: UserArrays):
    geom = geometry_of(cfg)
    start = make_run(key, cfg, user)
    prob, s0 = start.prob, start.state
    slope = cfg.activation_slope
    if cfg.solver == "gd":
        traj = gd.solve(
            geom,
            prob,
            s0,
            grid,
            lr=cfg.lr,
            stop_loss=cfg.threshold,
            diverge_factor=cfg.diverge_factor,
            slope=slope,
            tail=cfg.tail,
        )
    else:
        traj = flow.solve(
            geom,
            prob,
            s0,
            grid,
            rtol=cfg.rtol,
            atol=cfg.atol,
            stop_loss=cfg.threshold,
            diverge_factor=cfg.diverge_factor,
            slope=slope,
            dtmin=cfg.step_floor,
            method=cfg.method,
            t_end=float(record_grid(cfg)[-1]),
        )
    b0 = balance(s0)
    scale0 = jnp.max(s0.a**2 + jnp.sum(s0.v**2, axis=1) + start.off2)
    meas = functools.partial(measure, geom, prob=prob, balance0=b0, scale0=scale0, slope=slope)
    if jax.default_backend() == "cpu":  # XLA:CPU's batched matvecs are ~3x slower
        records = jax.lax.map(meas, traj.states)
    else:
        records = jax.vmap(meas)(traj.states)
    end = meas(traj.final)
    loss0 = records["loss"][0]
    final = dict(end)
    final.update(
        t_final=traj.t_final,
        steps=traj.steps,
        status=traj.status,
        mu_tail=traj.tail_rate,
        mu_mean=jnp.log(loss0 / end["loss"]) / jnp.maximum(traj.t_final, 1e-30),
    )
    init = {
        "loss0": loss0,
        "mu0": records["mu"][0],
        "assumption1": assumption1(s0, start.off2),
        "coverage0": coverage(geom, s0, prob),
        "draws": start.draws,
    }
    out = {"records": records, "valid": traj.valid, "final": final, "init": init}
    if cfg.keep_state:
        out["state"] = {"a": traj.final.a, "v": traj.final.v}
    return out


def _compiled(cfg: SimConfig, shared: bool) -> Callable:
    """The compiled batch function; knobs that only act outside it (seed, number of
    runs, memory budget) are normalised so that cells differing in them share it.
    ``shared``: runs are shared out over the local devices."""
    norm = cfg.model_copy(update={"seed": 0, "runs": 1, "memory_gb": 1.0})
    return _compiled_for(norm, shared)


@functools.lru_cache(maxsize=64)
def _compiled_for(cfg: SimConfig, shared: bool) -> Callable:
    fn = functools.partial(_one_run, cfg)
    if jax.default_backend() == "cpu":
        # On CPU, runs go one after another inside one compiled call: unbatched GEMMs
        # beat XLA:CPU's batched dot, and a stopped run costs nothing (under vmap it
        # is carried, masked, to the end of the slowest run). See benchmarks/.
        def batch(grid, keys, user):
            return jax.lax.map(lambda k: fn(grid, k, user), keys)
    else:
        batch = jax.vmap(fn, in_axes=(None, 0, None))
    if not shared:
        return jax.jit(batch)
    # Several devices (CPU cores split by use_cpu_devices, or GPUs): each takes an
    # equal share of the runs; no communication between them (so no replication
    # typing is needed: check_vma off).
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("runs",))
    spec = jax.sharding.PartitionSpec
    return jax.jit(
        jax.shard_map(
            batch,
            mesh=mesh,
            in_specs=(spec(), spec("runs"), spec()),
            out_specs=spec("runs"),
            check_vma=False,
        )
    )


def devices_for(cfg: SimConfig, user: UserArrays) -> int:
    """How many local devices share the runs: all of them, unless copying the user's
    arrays to each would take more than a quarter of ``cfg.memory_gb``."""
    ndev = jax.local_device_count()
    item = 8 if cfg.x64 else 4
    user_bytes = sum(int(np.size(u)) * item for u in user if u is not None)
    if ndev > 1 and user_bytes * ndev > cfg.memory_gb * 2**30 / 4:
        return 1
    return ndev


def chunk_size(cfg: SimConfig, n_records: int) -> int:
    """Runs per compiled call so that the working arrays fit ``cfg.memory_gb``."""
    n, p = cfg.n, cfg.width
    m = n if cfg.resolved_geometry == "diagonal" else min(n, cfg.d)
    explicit = 0 if cfg.resolved_geometry == "implicit" else n * cfg.d + p * cfg.d
    per_run = explicit + n * m + p * m * (n_records + 4) + 8 * p * n
    per_run *= 8 if cfg.x64 else 4
    return int(max(1, min(cfg.runs, (cfg.memory_gb * 2**30) // max(per_run, 1))))


def simulate(
    cfg: SimConfig,
    user: UserArrays = UserArrays(),
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Simulate ``cfg.runs`` independent runs of ``cfg`` (SPEC §1–§3).

    ``user`` carries arrays loaded from files (data X, y; state W, a). ``progress``
    is called as ``progress(done, total)`` after each chunk.
    """
    grid_np = record_grid(cfg)
    with jax.enable_x64(cfg.x64):
        dtype = dtype_of(cfg)
        grid = jnp.asarray(grid_np, jnp.int32 if cfg.solver == "gd" else dtype)
        user = UserArrays(*(None if u is None else jnp.asarray(u, dtype) for u in user))
        keys = jax.random.split(jax.random.key(cfg.seed), cfg.runs)
        size = chunk_size(cfg, len(grid_np))
        ndev = devices_for(cfg, user)
        fn = _compiled(cfg, shared=ndev > 1)
        padded = -(-size // ndev) * ndev  # a multiple of the devices' count
        parts = []
        for lo in range(0, cfg.runs, size):
            chunk = keys[lo : lo + size]
            keep = chunk.shape[0]
            pad = padded - keep
            if pad:  # keep one compiled shape: pad with copies, drop afterwards
                chunk = jnp.concatenate([chunk, jnp.repeat(chunk[:1], pad, axis=0)])
            out = jax.device_get(fn(grid, chunk, user))
            parts.append(jax.tree_util.tree_map(lambda x, k=keep: np.asarray(x)[:k], out))
            if progress is not None:
                progress(min(lo + size, cfg.runs), cfg.runs)
    res = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
    times = grid_np.astype(np.float64) * (cfg.lr if cfg.solver == "gd" else 1.0)
    _check_finite(res["final"], res["final"]["status"])
    return SimResult(
        cfg, times, res["valid"], res["records"], res["final"], res["init"], res.get("state")
    )


def _check_finite(final: dict[str, np.ndarray], status: np.ndarray) -> None:
    """No NaN may pass silently: a non-finite final loss must be flagged diverged."""
    bad = ~np.isfinite(final["loss"]) & (status != 3)
    if bad.any():
        raise FloatingPointError(
            f"{int(bad.sum())} runs ended with a non-finite loss without being flagged "
            "diverged; this is a bug, please report it"
        )
