"""Cells: the points of a sweep.

A :class:`Cell` is an immutable mapping of JSON knobs with a content-hashed id, so a
stored sweep recognises its finished cells whatever their order; :func:`cell_seed`
derives each cell's seed from the sweep seed and that id; :func:`cell_config` makes a
cell's configuration (its knobs without the tags, its own seed). The engine simulates
cells through :mod:`shallowflow.experiments.batch`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from shallowflow.config import SimConfig, make_config
from shallowflow.errors import ShallowflowInputError

__all__ = ["ID_COLUMN", "TAGS", "Cell", "cell_config", "cell_seed"]

# Knobs that label a cell but are not SimConfig fields. ``draws`` names a draw group:
# the cells of one group share their seed, hence their data and θ(0) (paired designs).
# ``group`` names a threshold group of an adaptive search (a study's (d, p) pair).
TAGS = ("figure", "tag", "draws", "group")
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
        """The knobs as canonical JSON (sorted keys): what the cell id hashes."""
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
    """The :class:`SimConfig` of a cell: its knobs without tags, seed = ``cell_seed`` of
    the cell, or of its ``draws`` group when it names one (then the cells of the group
    start from the same draws). Resolved once per cell and process: the sweep's plan,
    its work estimate and its batches ask again for the same cells."""
    return _resolved(Cell(knobs))


@functools.lru_cache(maxsize=65_536)
def _resolved(cell: Cell) -> SimConfig:
    """:func:`cell_config` of a cell, validated (:func:`make_config`) on first use; a
    cell that fails validation raises every time (exceptions are not cached)."""
    conf: dict[str, Any] = {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in cell.items() if k not in TAGS
    }
    # any integer seeds a cell (the adaptive design draws 64-bit ones); a user's sweep
    # seed is range-checked where it enters, in the sweep file (sweepfile.sweep_cells)
    source = f"draws:{cell['draws']}" if "draws" in cell else cell
    conf["seed"] = cell_seed(int(conf.get("seed", 0)), source)
    return make_config(**conf)
