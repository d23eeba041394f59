"""The engine's plan: which cells share a compiled program (a :class:`Bucket`) and
how their runs are padded and chunked.

A bucket pads every run to its largest (N, D, P); the engine (:mod:`shallowflow.engine`)
explains why padding is inert. Two policies, both deterministic in the list of cells
and never dependent on which cells are still to run, so that a resumed sweep pads, and
computes, exactly as the first attempt did:

- :func:`plan` (every sweep): cells are taken largest first (per-step work n·m·p, m the
  working dimension) and each joins the bucket of its signature whose padding waste
  stays smallest and at most ``max_waste`` (2×): the work of the bucket's runs at its
  padded size, weighted by their horizons, over their work at their own sizes. A cell
  that fits no bucket opens one. A figure whose cells span less than a factor 2 in work
  is therefore one bucket, one compilation; wider ones (Fig. 4: d from 10 to 100) get a
  few.
- :func:`plan_by_cost` (the adaptive threshold search, whose evaluations gather near
  the threshold while its grid spans a factor 4 or more in n): buckets merged while the
  merge lowers a modelled time, one compilation per bucket plus every run's steps at
  the padded size, each step also paying a fixed overhead. Fewer, better placed
  buckets than the 2× rule on the same cells (Fig. 5's paper preset: the site's
  Benchmarks page).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import jax
import numpy as np

from shallowflow.config import SimConfig
from shallowflow.geometry import run_bytes, working_dim
from shallowflow.start import Shape, UserArrays
from shallowflow.trajectory import Signature, signature

__all__ = [
    "MAX_WASTE",
    "Bucket",
    "cell_work",
    "home",
    "own_shape",
    "padding_waste",
    "plan",
    "plan_by_cost",
    "step_work",
    "user_id",
]

MAX_WASTE = 2.0  # a bucket's padded work over its cells' own work, at most


@dataclass(frozen=True)
class Bucket:
    """One compiled program: a signature, the padded sizes and the runs per call."""

    sig: Signature
    shape: Shape
    chunk: int = 1
    max_steps: int = 0  # the flow's step cap (static)

    @property
    def m(self) -> int:
        """The padded working dimension."""
        return working_dim(self.sig.draw.geometry, self.shape.n, self.shape.d)


def user_id(user: UserArrays | None) -> int:
    """Cells with user arrays never share a call: an id for them, 0 for the others."""
    return id(user) if user is not None and any(u is not None for u in user) else 0


def step_work(cfg: SimConfig, shape: Shape) -> float:
    """Per-step work of one run at ``shape``: n·m·p (n·p for the diagonal geometry)."""
    geometry = cfg.run.geometry
    m = 1 if geometry == "diagonal" else working_dim(geometry, shape.n, shape.d)
    return float(shape.n) * m * shape.p


def own_shape(cfg: SimConfig) -> Shape:
    """A cell's own sizes (n, d, p, held-out n), unpadded."""
    return Shape(cfg.data.n, cfg.data.d, cfg.init.p, cfg.data.test_n)


def _run_steps(cfg: SimConfig) -> float:
    """The planner's weight of a cell: its runs × horizon (the steps it may take)."""
    return cfg.run.runs * max(cfg.solver.horizon, 1e-9)


def _cover(shapes: Sequence[Shape]) -> Shape:
    return Shape(*(max(s[i] for s in shapes) for i in range(4)))


def cell_work(cfg: SimConfig, shape: Shape | None = None) -> float:
    """The planner's expected work of a cell: its runs × horizon × per-step work at
    ``shape`` (its bucket's padded shape; default its own)."""
    shape = own_shape(cfg) if shape is None else shape
    return _run_steps(cfg) * step_work(cfg, shape)


def _waste(cfgs: Sequence[SimConfig], shape: Shape) -> float:
    """Padded work over own work, each run weighted by its horizon."""
    padded = sum(cell_work(c, shape) for c in cfgs)
    return padded / max(sum(cell_work(c) for c in cfgs), 1e-300)


def padding_waste(cfgs: Sequence[SimConfig], buckets: Sequence[Bucket]) -> float:
    """The plan's padded work over the cells' own work (horizon-weighted)."""
    padded = sum(cell_work(c, b.shape) for c, b in zip(cfgs, buckets, strict=True))
    return padded / max(sum(cell_work(c) for c in cfgs), 1e-300)


def _max_steps(cfgs: Sequence[SimConfig]) -> int:
    """The static step cap of a bucket's solver: the largest of its cells' caps."""
    return max(c.solver.spec.max_steps(c.solver.horizon) for c in cfgs)


def plan(
    cfgs: Sequence[SimConfig],
    users: Sequence[UserArrays | None] | None = None,
    *,
    max_cells: int | None = None,
    max_waste: float = MAX_WASTE,
) -> list[Bucket]:
    """Assign every cell a :class:`Bucket` (module doc: the bucket policy).

    Deterministic in the list of cells. ``max_cells``: the cells of one call at most
    (the runner's batches), which bounds a bucket's ``chunk`` (its runs per call)."""
    users = list(users) if users is not None else [None] * len(cfgs)
    sigs = [signature(c, u) for c, u in zip(cfgs, users, strict=True)]
    order = sorted(range(len(cfgs)), key=lambda i: -step_work(cfgs[i], own_shape(cfgs[i])))
    members: list[list[int]] = []
    for i in order:
        best, best_waste = None, math.inf
        for b, idx in enumerate(members):
            if sigs[idx[0]] != sigs[i] or user_id(users[i]) or user_id(users[idx[0]]):
                continue
            group = [cfgs[j] for j in idx] + [cfgs[i]]
            shape = _cover([own_shape(c) for c in group])
            waste = _waste(group, shape)
            if waste <= max_waste and waste < best_waste:
                best, best_waste = b, waste
        if best is None:
            members.append([i])
        else:
            members[best].append(i)
    out: list[Bucket | None] = [None] * len(cfgs)
    for idx in members:
        bucket = _bucket(sigs[idx[0]], [cfgs[j] for j in idx], max_cells)
        for j in idx:
            out[j] = bucket
    return out  # type: ignore[return-value]


def _bucket(sig: Signature, members: Sequence[SimConfig], max_cells: int | None) -> Bucket:
    """The bucket of ``members``: their covering shape and step cap, and as many runs per
    call as its ``max_cells`` largest cells hold (all its cells without a bound), within
    memory (:func:`_chunk`)."""
    bucket = Bucket(sig, _cover([own_shape(c) for c in members]), 1, _max_steps(members))
    runs = sorted((c.run.runs for c in members), reverse=True)
    per_call = sum(runs[:max_cells]) if max_cells else sum(runs)
    memory = min(c.run.memory_gb for c in members)
    return replace(bucket, chunk=_chunk(bucket, per_call, memory))


def home(cfg: SimConfig, buckets: Sequence[Bucket]) -> Bucket:
    """The bucket of ``buckets`` a cell runs in: of those that can hold it (its
    signature, sizes no smaller than its own, a step cap no smaller than its own), the
    one of least per-step work (:func:`step_work`), the first among equals."""
    own, cap = own_shape(cfg), cfg.solver.spec.max_steps(cfg.solver.horizon)
    sig = signature(cfg)

    def holds(b: Bucket) -> bool:
        return all(o <= s for o, s in zip(own, b.shape, strict=True))

    fits = [b for b in buckets if b.sig == sig and b.max_steps >= cap and holds(b)]
    return min(fits, key=lambda b: step_work(cfg, b.shape))


def _run_bytes(bucket: Bucket) -> int:
    """Working memory of one run at the bucket's padded shape (an estimate)."""
    n, d, p, _ = bucket.shape
    draw = bucket.sig.draw
    return run_bytes(draw.geometry, n, d, p, bucket.sig.records, draw.x64)


def _chunk(bucket: Bucket, runs: int, memory_gb: float) -> int:
    """Runs per compiled call: all of them if they fit ``memory_gb``, rounded up to a
    multiple of the local devices' count."""
    ndev = jax.local_device_count()
    fit = max(1, int(memory_gb * 2**30 // max(_run_bytes(bucket), 1)))
    size = min(runs, fit)
    return -(-size // ndev) * ndev


# The cost planner's model of a run on CPU, in units of the per-step work n·m·p (one
# multiply-add of the forward GEMM), measured on the 2-core CPU with Fig. 5's cells
# (d = 30, two runs at a time): a GD step costs ≈ 0.85 ns per n·p plus ≈ 20 µs whatever
# the sizes (the loop and its small kernels), a compilation ≈ 2 s, that is ≈ 1.5e11
# units. The search evaluates about half of the steps the grid's cells stand for, so a
# compilation counts twice that against them. Only the ratios matter; on Figs. 4–5 any
# compilation cost from 1.5e11 to 6e11 gives the same modelled time within 1%.
STEP_OVERHEAD = 7e5  # ≈ 20 µs of steps
COMPILE_COST = 3e11  # ≈ 2 s of steps, over the grid's cells


def _cost(cfg: SimConfig, shape: Shape, weight: float) -> float:
    """Modelled time of a bucket of ``shape`` whose runs' horizons add up to ``weight``."""
    return COMPILE_COST + weight * (step_work(cfg, shape) + STEP_OVERHEAD)


def _merges(cfgs: Sequence[SimConfig]) -> list[list[int]]:
    """Cells of one signature grouped by agglomeration: start from one group per cell,
    merge the pair whose merge lowers the modelled time most (the first pair in order
    among equals), until no merge lowers it."""
    shapes = [own_shape(c) for c in cfgs]
    weights = [_run_steps(c) for c in cfgs]
    groups = [[i] for i in range(len(cfgs))]
    cost = [_cost(cfgs[i], shapes[i], weights[i]) for i in range(len(cfgs))]
    gain = np.full((len(cfgs), len(cfgs)), np.inf)

    def merged(a: int, b: int) -> float:
        shape = _cover([shapes[a], shapes[b]])
        return _cost(cfgs[a], shape, weights[a] + weights[b]) - cost[a] - cost[b]

    for a in range(len(cfgs)):
        for b in range(a + 1, len(cfgs)):
            gain[a, b] = merged(a, b)
    while gain.size:
        a, b = (int(i) for i in np.unravel_index(int(np.argmin(gain)), gain.shape))
        if not gain[a, b] < 0:
            break
        groups[a] += groups[b]
        groups[b] = []
        shapes[a], weights[a] = _cover([shapes[a], shapes[b]]), weights[a] + weights[b]
        cost[a] = _cost(cfgs[a], shapes[a], weights[a])
        gain[b, :] = gain[:, b] = np.inf
        for c in (c for c in range(len(cfgs)) if groups[c] and c != a):
            gain[min(a, c), max(a, c)] = merged(min(a, c), max(a, c))
    return [g for g in groups if g]


def plan_by_cost(cfgs: Sequence[SimConfig]) -> list[Bucket]:
    """Assign every cell a :class:`Bucket`, grouping the cells of each signature to
    lower a modelled time (module doc): each bucket costs :data:`COMPILE_COST`, each of
    its runs its horizon × (padded n·m·p + :data:`STEP_OVERHEAD`). Unlike
    :func:`plan`, no padding bound: a bucket whose small cells pad much but run little
    beats a compilation. Deterministic in the list of cells; no user arrays (those cells
    go to :func:`plan`)."""
    cfgs = list(cfgs)
    sigs = [signature(c) for c in cfgs]
    out: list[Bucket | None] = [None] * len(cfgs)
    for sig in dict.fromkeys(sigs):
        idx = [i for i, s in enumerate(sigs) if s == sig]
        for group in _merges([cfgs[i] for i in idx]):
            bucket = _bucket(sig, [cfgs[idx[j]] for j in group], None)
            for j in group:
                out[idx[j]] = bucket
    return out  # type: ignore[return-value]
