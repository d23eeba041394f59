"""The batched engine: the runs of many cells in few compiled calls.

A cell is R independent runs of one :class:`~shallowflow.config.SimConfig`. Each run
gets its own key (``fold_in(key(seed), r)``) and is simulated by
:func:`shallowflow.trajectory.run_one` (start, solve, measure); this module only
plans, batches, pads, chunks and shares those runs out over the devices.

**Compile once per bucket.** What a compiled program bakes in is a cell's
:class:`~shallowflow.trajectory.Signature`: the laws, the geometry, the solver and its
method, the number of records, float64 or not. Everything else — the sizes n, d, p
and the value knobs (η, horizon, stop loss, W scale, σ, ρ, tolerances, the record
grid, the seed) — is a per-run traced array. Cells of one signature are grouped into
:class:`Bucket` s by :func:`plan`: a bucket pads every run to its largest (N, D, P).
Padding is exactly inert: padded examples are zero vectors with label 0 (residual 0),
padded neurons have a_j = 0 and w_j = 0 (a fixed point of the flow), padded input
coordinates are 0, and the mean-field 1/p and the loss's 1/n use each run's true sizes
(:class:`~shallowflow.model.Problem`); the random draws are padding-stable
(:mod:`shallowflow.data`). So a padded run computes the same numbers as the same run
alone, up to the order of floating-point sums.

**Bucket policy**: :mod:`shallowflow.planning` (:func:`plan` for every sweep; the
adaptive search plans by cost). The plan depends only on the list of cells, never on
which of them are still to run, so a resumed sweep pads, and computes, exactly as the
first attempt did.

**Execution.** A bucket's runs go in compiled calls of ``bucket.chunk`` runs (a call
with fewer is filled with dead runs of horizon 0), chunked to ``memory_gb``: on CPU one
run after another inside the call (``lax.map``: a stopped run costs nothing, a dead
one is skipped, so a call may hold any number of live runs without recompiling), on
accelerators side by side (``vmap``); shared out over the local devices (GPUs, or CPU
cores made devices by :func:`shallowflow.devices.use_cpu_devices`), the live runs dealt
round-robin. The engine returns plain NumPy arrays; tables and files are made
elsewhere.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow.config import SimConfig
from shallowflow.planning import Bucket, plan, user_id
from shallowflow.results import SimResult
from shallowflow.solvers.common import Outcome
from shallowflow.start import UserArrays
from shallowflow.trajectory import (
    RunValues,
    record_grid,
    run_one,
    run_values,
)

# Compiled programs kept alive in one process. Each holds hundreds of memory maps on
# CPU (XLA:CPU maps every kernel's code and data apart: ~600 for a GD program, ~1300
# for the flow's), and Linux allows 65530 per process (vm.max_map_count): keeping
# every program of a long session would crash LLVM ("Cannot allocate memory") after
# ~50 buckets. Buckets run one after another, so only a revisited bucket past this
# bound pays again, and then it is a persistent-cache hit, not a compile.
PROGRAMS_KEPT = 8
_programs: collections.OrderedDict[tuple[Bucket, bool], Callable] = collections.OrderedDict()


def _compiled(bucket: Bucket, shared: bool) -> Callable:
    """The compiled batch function of a bucket, kept among the :data:`PROGRAMS_KEPT`
    most recently used (dropping one frees its executables)."""
    key = (bucket, shared)
    fn = _programs.pop(key, None) or _program(bucket, shared)
    _programs[key] = fn
    while len(_programs) > max(PROGRAMS_KEPT, 1):
        _programs.popitem(last=False)
    return fn


def _program(bucket: Bucket, shared: bool) -> Callable:
    """The batch function of a bucket, jitted. ``shared``: runs are shared out over
    the local devices."""
    run = functools.partial(run_one, bucket.sig, bucket.shape, bucket.max_steps)
    on_cpu = jax.default_backend() == "cpu"

    def shallowflow_engine(values, live, user):
        if not on_cpu:
            return jax.vmap(run, in_axes=(0, None))(values, user)

        # On CPU, runs go one after another inside one compiled call: unbatched GEMMs
        # beat XLA:CPU's batched dot, and a stopped run costs nothing (under vmap it
        # is carried, masked, to the end of the slowest run). See benchmarks/. A dead
        # run (chunk filler) is skipped outright, so a call of the bucket's compiled
        # size may hold any number of live runs at no cost: the runner sizes its calls
        # by time without recompiling.
        def one(v, alive):
            shapes = jax.eval_shape(run, v, user)
            return jax.lax.cond(alive, run, lambda v, u: _zeros(shapes), v, user)

        return jax.lax.map(lambda a: one(*a), (values, live))

    # XLA:CPU's backend at optimisation level 1 compiles the engine ~10 % faster with
    # the same step time (benchmarks/README.md); GPUs keep their defaults.
    options = {"xla_backend_optimization_level": 1} if on_cpu else None
    if not shared:
        return jax.jit(shallowflow_engine, compiler_options=options)
    # Several devices (CPU cores split by use_cpu_devices, or GPUs): each takes an
    # equal share of the runs; no communication between them (so no replication
    # typing is needed: check_vma off).
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("runs",))
    spec = jax.sharding.PartitionSpec
    return jax.jit(
        jax.shard_map(
            shallowflow_engine,
            mesh=mesh,
            in_specs=(spec("runs"), spec("runs"), spec()),
            out_specs=spec("runs"),
            check_vma=False,
        ),
        compiler_options=options,
    )


# --------------------------------------------------------------------------- host side


def _zeros(shapes):
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _dead(values: RunValues, count: int) -> RunValues:
    """``count`` runs that stop at once (horizon 0): chunk filler."""

    def first(x):
        return np.repeat(x[:1], count, axis=0)

    dead = jax.tree_util.tree_map(first, values)
    return dead._replace(grid=np.zeros_like(dead.grid), times=np.zeros_like(dead.times))


def _cat(parts: Sequence) -> RunValues:
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)


def devices_for(bucket: Bucket, user: UserArrays, memory_gb: float) -> int:
    """How many local devices share the runs: all of them, unless copying the user's
    arrays to each would take more than a quarter of ``memory_gb``, or the runs measure
    the tangent kernel's rate by a dense eigensolve on CPU (LAPACK, which must not run on
    several CPU devices at once: :mod:`shallowflow.linalg`)."""
    ndev = jax.local_device_count()
    dense_kernel = bucket.sig.kernel and bucket.sig.draw.geometry != "diagonal"
    if dense_kernel and jax.default_backend() == "cpu":
        return 1
    item = 8 if bucket.sig.draw.x64 else 4
    user_bytes = sum(int(np.size(u)) * item for u in user if u is not None)
    if ndev > 1 and user_bytes * ndev > memory_gb * 2**30 / 4:
        return 1
    return ndev


def _deal(x: np.ndarray, ndev: int) -> np.ndarray:
    """Runs 0, 1, 2, … dealt round-robin to the ``ndev`` devices' equal shares of the
    leading axis, so that the live runs of a part-filled call are shared out evenly."""
    return x.reshape(x.shape[0] // ndev, ndev, *x.shape[1:]).swapaxes(0, 1).reshape(x.shape)


def _undeal(x: np.ndarray, ndev: int) -> np.ndarray:
    """The inverse of :func:`_deal`."""
    return x.reshape(ndev, x.shape[0] // ndev, *x.shape[1:]).swapaxes(0, 1).reshape(x.shape)


def _call(fn: Callable, part: RunValues, chunk: int, ndev: int, user: UserArrays) -> dict:
    """One compiled call of ``chunk`` runs: ``part``'s live runs, then dead filler (free
    on CPU); returns the live runs' outputs. Which device or slot a run takes does not
    change its numbers: every run is the same program on its own values."""
    keep = part.index.shape[0]
    if keep < chunk:
        part = _cat([part, _dead(part, chunk - keep)])
    live = np.arange(chunk) < keep
    deal = functools.partial(_deal, ndev=ndev)
    out = jax.device_get(fn(jax.tree_util.tree_map(deal, part), deal(live), user))
    return jax.tree_util.tree_map(lambda x: _undeal(np.asarray(x), ndev)[:keep], out)


def _device_user(user: UserArrays, dtype) -> UserArrays:
    """The user's arrays as the program's inputs (their cell has its own bucket, of
    exactly their shape)."""
    return UserArrays(*(None if u is None else jnp.asarray(u, dtype) for u in user))


def _run_bucket(
    bucket: Bucket,
    cfgs: Sequence[SimConfig],
    user: UserArrays,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> list[dict]:
    """Simulate the cells of one bucket; return their raw outputs, one dict per cell."""
    sig = bucket.sig
    with jax.enable_x64(sig.draw.x64):
        dtype = np.float64 if sig.draw.x64 else np.float32
        values = _cat([run_values(c, bucket.sig.records, dtype) for c in cfgs])
        count = values.index.shape[0]
        memory = min(c.run.memory_gb for c in cfgs)
        ndev = devices_for(bucket, user, memory)
        chunk = -(-bucket.chunk // ndev) * ndev
        fn = _compiled(bucket, shared=ndev > 1)
        user = _device_user(user, dtype)
        parts = []
        for lo in range(0, count, chunk):
            part = jax.tree_util.tree_map(lambda x, lo=lo: x[lo : lo + chunk], values)
            keep = part.index.shape[0]
            parts.append(_call(fn, part, chunk, ndev, user))
            if progress is not None:
                progress(done + lo + keep, total)
    res = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)
    outs, lo = [], 0
    for cfg in cfgs:
        one = jax.tree_util.tree_map(lambda x, lo=lo, r=cfg.run.runs: x[lo : lo + r], res)
        outs.append(one)
        lo += cfg.run.runs
    return outs


def _result(cfg: SimConfig, raw: dict) -> SimResult:
    """A cell's :class:`SimResult` from its raw outputs: records cut to its own grid,
    states to its own sizes."""
    grid = record_grid(cfg)
    k = grid.size

    def cut(x):
        return x[:, :k]

    records = {name: cut(v) for name, v in raw["records"].items()}
    states = None
    if "state" in raw:  # cut to the cell's own p, and d (W) or n (implicit V)
        size = {"W": cfg.data.d, "V": cfg.data.n}
        p = cfg.init.p
        states = {
            k: v[:, :p, : size.get(k)] if k in size else v[:, :p] for k, v in raw["state"].items()
        }
    times = cfg.solver.times(grid)
    _check_finite(raw["final"], raw["final"]["status"])
    return SimResult(cfg, times, cut(raw["valid"]), records, raw["final"], raw["init"], states)


def simulate_many(
    cfgs: Sequence[SimConfig],
    users: Sequence[UserArrays | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    buckets: Sequence[Bucket] | None = None,
) -> list[SimResult]:
    """Simulate every cell of ``cfgs``; cells of one bucket share compiled calls.

    ``users``: the arrays loaded from files for each cell (or None). ``buckets``: a
    plan made beforehand (:func:`plan`, e.g. over a whole sweep, so that the padding
    does not depend on which cells are still to run); default: :func:`plan` of
    ``cfgs``. ``progress(done, total)`` is called with runs after each compiled call.
    """
    cfgs = list(cfgs)
    users = list(users) if users is not None else [None] * len(cfgs)
    buckets = list(buckets) if buckets is not None else plan(cfgs, users)
    groups: dict[tuple[Bucket, int], list[int]] = {}
    for i, b in enumerate(buckets):
        groups.setdefault((b, user_id(users[i])), []).append(i)
    total, done = sum(c.run.runs for c in cfgs), 0
    results: list[SimResult | None] = [None] * len(cfgs)
    for (bucket, _), idx in groups.items():
        members = [cfgs[i] for i in idx]
        user = users[idx[0]] or UserArrays()
        raws = _run_bucket(bucket, members, user, progress, done, total)
        done += sum(c.run.runs for c in members)
        for i, raw in zip(idx, raws, strict=True):
            results[i] = _result(cfgs[i], raw)
    return results  # type: ignore[return-value]


def simulate(
    cfg: SimConfig,
    user: UserArrays = UserArrays(),
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Simulate ``cfg.run.runs`` independent runs of ``cfg`` (SPEC §1–§3).

    ``user`` carries arrays loaded from files (data X, y; state W, a). ``progress``
    is called as ``progress(done, total)`` after each compiled call.
    """
    return simulate_many([cfg], [user], progress)[0]


def _check_finite(final: dict[str, np.ndarray], status: np.ndarray) -> None:
    """No NaN may pass silently: a non-finite final loss must be flagged diverged."""
    bad = ~np.isfinite(final["loss"]) & (status != Outcome.DIVERGED)
    if bad.any():
        raise FloatingPointError(
            f"{int(bad.sum())} runs ended with a non-finite loss without being flagged "
            "diverged; this is a bug, please report it"
        )
