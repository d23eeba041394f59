"""Cells: the points of a sweep, and the engine as their batch simulator.

A :class:`Cell` is an immutable mapping of JSON knobs with a content-hashed id, so a
stored sweep recognises its finished cells whatever their order; :func:`cell_seed`
derives each cell's seed from the sweep seed and that id.

``simulate_batch(list[dict], group=None) -> list[DataFrame]`` is module-level, so
Ray pickles it by reference. Each cell is a dict of
:class:`~shallowflow.config.SimConfig` knobs plus bookkeeping tags (``figure``,
``tag``); its ``seed`` knob is the *sweep* seed, and the engine runs with
``cell_seed(seed, cell)``, so results depend only on the cell's knobs, never
on batching, order or executor. :func:`plan_cells` is the runner's plan: the engine's
buckets (:func:`shallowflow.engine.plan`) over all the cells of a sweep, so that the
cells of a bucket run in one compiled call, padded the same way whatever is left to
run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.config import SimConfig, make_config
from shallowflow.engine import Bucket, plan, simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.results import runs_table
from shallowflow.trajectory import signature

__all__ = [
    "ID_COLUMN",
    "TAGS",
    "Cell",
    "cell_config",
    "cell_seed",
    "plan_cells",
    "simulate_batch",
    "simulate_cell",
]

TAGS = ("figure", "tag")  # knobs that label a cell but are not SimConfig fields
ID_COLUMN = "cell_id"
_ID_LENGTH = 16


def _normalise(value: Any, where: str) -> Any:
    """Knob value → canonical JSON-compatible value (sequences become tuples)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ShallowflowInputError(where, f"must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_normalise(v, where) for v in value)
    raise ShallowflowInputError(
        where,
        f"knob values must be JSON scalars (str, int, float, bool, None) or lists of them; "
        f"got {type(value).__name__} {value!r}",
    )


class Cell(Mapping[str, Any]):
    """One point of a sweep: an immutable mapping of JSON-serialisable knobs.

    ``cell_id`` is the first 16 hex digits of the SHA-1 of the canonical JSON
    (sorted keys, no spaces), so equal knobs give equal ids whatever their key
    order. Note that ``1`` and ``1.0`` are different knobs. Sequences are
    stored as tuples; the name ``cell_id`` is reserved.
    """

    __slots__ = ("_knobs", "_json", "_id")

    def __init__(self, knobs: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **kw: Any):
        items = dict(knobs, **kw)
        normalised: dict[str, Any] = {}
        for key, value in items.items():
            if not isinstance(key, str):
                raise ShallowflowInputError("cells", f"knob names must be strings, got {key!r}")
            if key == ID_COLUMN:
                raise ShallowflowInputError("cells", f"the knob name {ID_COLUMN!r} is reserved")
            normalised[key] = _normalise(value, f"cells[{key!r}]")
        self._knobs = dict(sorted(normalised.items()))
        self._json = json.dumps(self._knobs, sort_keys=True, separators=(",", ":"))
        self._id = hashlib.sha1(self._json.encode("utf-8")).hexdigest()[:_ID_LENGTH]

    @property
    def cell_id(self) -> str:
        """Stable short id: ``sha1(canonical_json(knobs))[:16]``."""
        return self._id

    @property
    def canonical_json(self) -> str:
        return self._json

    def to_dict(self) -> dict[str, Any]:
        """A fresh plain ``dict`` of the knobs (what the batch simulator receives)."""
        return dict(self._knobs)

    def __getitem__(self, key: str) -> Any:
        return self._knobs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._knobs)

    def __len__(self) -> int:
        return len(self._knobs)

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Cell):
            return self._json == other._json
        if isinstance(other, Mapping):
            try:
                return self._json == Cell(other)._json
            except ShallowflowInputError:
                return False
        return NotImplemented

    def __repr__(self) -> str:
        return f"Cell({self._knobs!r})"


def cell_seed(sweep_seed: int, cell: Cell | Mapping[str, Any] | str) -> int:
    """Per-cell seed in ``[0, 2**32)``: the first 4 bytes of ``sha256(f"{sweep_seed}:{cell_id}")``.

    Depends only on the sweep seed and the cell's knobs, never on the order
    or the process in which cells run.
    """
    if isinstance(sweep_seed, bool) or not isinstance(sweep_seed, int | np.integer):
        raise ShallowflowInputError("sweep_seed", f"must be an integer, got {sweep_seed!r}")
    if isinstance(cell, str):
        cell_id = cell
    else:
        cell_id = (cell if isinstance(cell, Cell) else Cell(cell)).cell_id
    digest = hashlib.sha256(f"{int(sweep_seed)}:{cell_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def cell_config(knobs: Mapping[str, Any]) -> SimConfig:
    """The :class:`SimConfig` of a cell: its knobs without tags, seed = ``cell_seed``."""
    cell = Cell(knobs)
    conf = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cell.items() if k not in TAGS}
    conf["seed"] = cell_seed(int(conf.get("seed", 0)), cell)
    return make_config(**conf)


def plan_cells(cells: Sequence[Mapping[str, Any]], max_batch: int | None = None) -> list[Bucket]:
    """The engine bucket of every cell (the runner's plan)."""
    return plan([cell_config(c) for c in cells], max_cells=max_batch)


def _table(cfg: SimConfig, res) -> pd.DataFrame:
    df = runs_table(res)
    df["cell_seed"] = cfg.run.seed
    return df


def simulate_batch(cells: list[dict[str, Any]], group: Bucket | None = None) -> list[pd.DataFrame]:
    """One table of runs per cell (``results.runs_table`` plus its engine seed), in
    order; the cells of one ``group`` (a bucket of :func:`plan_cells`) share compiled
    calls."""
    cfgs = [cell_config(c) for c in cells]
    buckets = None
    if group is not None:
        for cfg in cfgs:
            fits = all(
                x <= y
                for x, y in zip((cfg.data.n, cfg.data.d, cfg.init.p), group.shape, strict=True)
            )
            if signature(cfg) != group.sig or not fits:
                raise ShallowflowInputError("group", f"a cell does not fit its bucket: {cfg!r}")
        buckets = [group] * len(cfgs)
    return [_table(c, r) for c, r in zip(cfgs, simulate_many(cfgs, buckets=buckets), strict=True)]


def simulate_cell(knobs: Mapping[str, Any], group: Bucket | None = None) -> pd.DataFrame:
    """One row per run of the cell (``results.runs_table``), plus its engine seed."""
    return simulate_batch([dict(knobs)], group)[0]
