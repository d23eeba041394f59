"""A protocol: one figure's sweep under one preset, as data (SPEC §5).

A :class:`Protocol` lists the cells to simulate (dicts of
:class:`~shallowflow.config.SimConfig` knobs plus the tag ``figure``); nothing here runs
anything. Each figure's module (:mod:`shallowflow.experiments.figures`) builds its
protocols; :func:`paper_cell` holds the knobs that SPEC §5 gives every figure.

Presets, one vocabulary for ``reproduce``, ``verify`` and the studies:

- ``"quick"``: the same protocols on reduced grids (fewer sizes and runs, smaller d)
  so that everything finishes in minutes on a 2-core CPU;
- ``"paper"``: SPEC §5 to the letter (for ``verify`` and the studies: the sizes the
  paper uses, or the largest of their kind), meant for a GPU. ``"full"`` is accepted
  as another name for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shallowflow.errors import ShallowflowInputError
from shallowflow.solvers import SOLVERS

__all__ = ["EPS", "PRESETS", "Protocol", "paper_cell", "preset_name", "solver_name", "study_cell"]

PRESETS = ("quick", "paper")
PRESET_ALIASES = {"full": "paper"}
EPS = 0.05  # failure probability of the width p(n, ε) (SPEC §2, §5)


def preset_name(preset: str) -> str:
    """The preset, checked (``full`` is another name for ``paper``)."""
    name = PRESET_ALIASES.get(preset, preset)
    if name not in PRESETS:
        allowed = PRESETS + tuple(PRESET_ALIASES)
        raise ShallowflowInputError("preset", f"unknown preset {preset!r}; choose one of {allowed}")
    return name


def solver_name(solver: str) -> str:
    """The solver, checked against the configuration's solvers."""
    if solver not in SOLVERS:
        raise ShallowflowInputError("solver", f"must be one of {tuple(SOLVERS)}, got {solver!r}")
    return solver


@dataclass(frozen=True)
class Protocol:
    """One figure's protocol under one preset (SPEC §5).

    ``cells``: dicts of SimConfig knobs plus ``figure`` (for Fig. 2: the closed form's
    parameters). ``x``: the knob on the horizontal axis; ``group``: the knob whose values
    each get their own threshold (Figs. 4, 5). ``params``: figure-specific constants
    (Fig. 2: magnitudes; Fig. 6: the reference slope). ``adaptive``: ``reproduce``
    locates the thresholds with the adaptive search unless told to run the grid.
    """

    name: str
    preset: str
    cells: list[dict[str, Any]]
    title: str
    claim: str
    kind: Literal["simulate", "closed_form"] = "simulate"
    x: str = "n"
    group: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    adaptive: bool = False  # reproduce searches its thresholds adaptively by default

    @property
    def grouped_by(self) -> str:
        """The knob whose values each get their own threshold (Figs. 4, 5)."""
        if self.group is None:
            raise ValueError(f"protocol {self.name!r} has no group")
        return self.group

    @property
    def shapes(self) -> int:
        """Number of distinct (n, d, p, data) shapes."""
        return len({(c.get("n"), c.get("d"), c.get("p"), c.get("data")) for c in self.cells})

    @property
    def total_runs(self) -> int:
        """Runs of every cell together."""
        return sum(int(c.get("runs", 0)) for c in self.cells)


def paper_cell(figure: str, solver: str, seed: int, *, preset: str, **knobs: Any) -> dict[str, Any]:
    """Common knobs of SPEC §5: sphere data, paper labels, asymmetric init, GD with η = 1;
    under the ``paper`` preset GD judges success by the authors' stop rule (the loss
    tested at steps 0..T−1, stop on L < stop loss: :mod:`shallowflow.solvers.gd`). The
    quick preset keeps the default inclusive rule (its cells, and their ids, unchanged)."""
    base = {
        "figure": figure,
        "data": "sphere",
        "labels": "paper",
        "init": "asymmetric",
        "solver": solver,
        "lr": 1.0,
        "seed": seed,
    }
    if preset == "paper" and solver == "gd":
        base["stop_rule"] = "authors"
    return base | knobs


def study_cell(figure: str, solver: str, seed: int, **knobs: Any) -> dict[str, Any]:
    """SPEC §5's common knobs (:func:`paper_cell`) under the inclusive stop rule, whatever
    the preset: a study compares its variants (GD steps, the exact flow) like for like."""
    return paper_cell(figure, solver, seed, preset="quick", **knobs)
