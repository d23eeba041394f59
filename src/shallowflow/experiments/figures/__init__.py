"""The paper's figures, one module each (SPEC §5).

Every figure module holds, for its figure: ``NAME``, ``TITLE``, the paper's ``CLAIM``,
its ``PROTOCOLS`` per preset (data) and ``protocol(preset, solver, seed)`` that builds
the cells; ``summarise(runs, proto) -> (points, summary)``, the pure summary of its runs
table; ``verdict(points, summary, proto) -> (lines, ok)``, the claim checked against
the numbers; and ``plot(points, summary) -> Figure``. ``reproduce`` only runs them.
To add a figure, add a module with these names and list it in :data:`FIGURES`.
"""

from __future__ import annotations

from types import ModuleType

from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.figures import fig2, fig3, fig4, fig5, fig6
from shallowflow.experiments.protocol import Protocol, preset_name, solver_name

__all__ = ["FIGURES", "figure", "protocol", "protocols"]

FIGURES: dict[str, ModuleType] = {m.NAME: m for m in (fig2, fig3, fig4, fig5, fig6)}


def figure(name: str) -> ModuleType:
    """The module of figure ``name`` (fig2..fig6)."""
    if name not in FIGURES:
        raise ShallowflowInputError(
            "figure", f"unknown figure {name!r}; choose one of {tuple(FIGURES)}"
        )
    return FIGURES[name]


def protocol(name: str, preset: str = "quick", solver: str = "gd", seed: int = 0) -> Protocol:
    """The protocol of figure ``name`` under ``preset`` (quick | paper), SPEC §5.

    ``solver`` = "gd" (the paper's GD with η = 1), "flow" (the exact event-driven
    gradient flow on the same horizon) or "flow-floor" (the older floored flow, for
    comparison); ``seed`` is the sweep seed stored in every cell.
    """
    module = figure(name)
    return module.protocol(preset_name(preset), solver_name(solver), seed)


def protocols(name: str, preset: str = "quick", solver: str = "gd") -> list[Protocol]:
    """``[protocol(name, …)]``, or every figure's protocol for ``name = "all"``."""
    names = tuple(FIGURES) if name == "all" else (name,)
    return [protocol(n, preset, solver) for n in names]
