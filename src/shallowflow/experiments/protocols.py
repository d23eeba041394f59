"""The paper's experimental protocols as data (SPEC §5).

A :class:`Protocol` is one figure under one preset: the list of cells to
simulate (each a dict of :class:`~shallowflow.config.SimConfig` knobs plus
``figure``), the runs-table columns its summary reads, the name of its plot
function, and the paper's claim it checks. ``protocol(figure, preset)`` builds
it; nothing here runs anything.

Presets:

- ``"paper"``: SPEC §5 to the letter.
- ``"quick"``: the same protocols on reduced grids (fewer sizes and runs,
  smaller d for Figs. 3 and 6) so that all five figures finish in minutes on a
  2-core CPU. Each distinct (n, d, p) shape costs one JAX compilation, so the
  quick grids keep the number of shapes small (≤ 15 per figure):
  Fig. 3: d = 40, n = 130..430 step 50, 24 runs; Fig. 4: d = 20, 40, 60,
  n = 3d, 5d, 8d, 12d, 18d, 16 runs; Fig. 5: p = 30, 60, 120, 5 sizes each,
  16 runs; Fig. 6: d = 1200, n = 600..1200 step 150, 24 runs (smaller n,
  e.g. 200..500 at d = 600, gives visibly steeper, pre-asymptotic slopes).

Fig. 5's sizes are not given by the paper ("n on a grid around the
threshold"). We centre a geometric grid on the guess
``N̂(p) = 150 (p/30)^{1/2}`` at d = 30 (sub-linear, as the paper reports;
anchored on N(30, 30) ≈ 150, N(30, 60) ≈ 230, N(30, 120) ≈ 320 measured with
this engine, 12 runs per point) and span ``N̂·2^e``: e = −1, −3/4, …, 1 in the
paper preset (9 points, a factor 4), e = −2/3..2/3 in thirds in the quick one
(5 points). The
threshold fit (:func:`~shallowflow.stats.thresholds.fit_threshold`)
interpolates inside that window; a threshold at its edge is flagged.

Fig. 2 has no simulation: its "cells" are the sizes n of the closed-form
staircase (``kind = "closed_form"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from shallowflow.config import SolverName
from shallowflow.errors import ShallowflowInputError
from shallowflow.theory.width import width

__all__ = ["FIGURES", "PRESETS", "Protocol", "fig5_sizes", "protocol", "protocols"]

FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6")
PRESETS = ("quick", "paper")
SOLVERS = get_args(SolverName)
Preset = Literal["quick", "paper"]

EPS = 0.05  # failure probability of the width p(n, ε) (SPEC §2, §5)
FIG6_STOP = 1e-6  # Fig. 6 stops when L < 1e-6/(2n)

CLAIMS = {
    "fig2": (
        "With two groups of label magnitudes 1 and 2, the loss in rescaled time converges "
        "to a staircase as n → ∞: the larger group is learnt first, each transition has a "
        "relative width of order 1/log n."
    ),
    "fig3": (
        "At d = 100 the probability of convergence falls sharply from likely to unlikely "
        "as n grows."
    ),
    "fig4": "The threshold N(d, p) (success probability 1/2) is linear in d at p = 30.",
    "fig5": (
        "The threshold N(d, p) grows sub-linearly with p at d = 30, "
        "hard to tell from logarithmic growth."
    ),
    "fig6": (
        "On orthogonal data the convergence rate μ(t_∞), the average rate ⟨μ⟩ and the bounds "
        "μ_low, μ_upp decay like n^(−1/2) (Conjecture 1: slope −1/2 in log-log)."
    ),
}

TITLES = {
    "fig2": "Fig. 2 — staircase of the group-initialisation closed form",
    "fig3": "Fig. 3 — convergence probability vs n",
    "fig4": "Fig. 4 — threshold N(d, 30) vs d",
    "fig5": "Fig. 5 — threshold N(30, p) vs p",
    "fig6": "Fig. 6 — rates vs n on orthogonal data",
}

MEASURES = {
    "fig2": ("loss",),
    "fig3": ("success", "final_loss", "loss0"),
    "fig4": ("success",),
    "fig5": ("success",),
    "fig6": ("mu_tail", "mu_mean", "final_mu_low", "final_mu_upp", "success"),
}


@dataclass(frozen=True)
class Protocol:
    """One figure's protocol under one preset (SPEC §5).

    ``cells``: dicts of SimConfig knobs plus ``figure`` (for Fig. 2: the closed
    form's parameters). ``x``: the knob on the horizontal axis; ``group``: the
    knob whose values each get their own threshold (Figs. 4, 5). ``params``:
    figure-specific constants (Fig. 2: magnitudes; Fig. 6: the reference slope).
    """

    name: str
    preset: str
    cells: list[dict[str, Any]]
    measures: tuple[str, ...]
    plot: str
    claim: str
    title: str = ""
    kind: Literal["simulate", "closed_form"] = "simulate"
    x: str = "n"
    group: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def shapes(self) -> int:
        """Number of distinct (n, d, p, data) shapes, i.e. JAX compilations."""
        return len({(c.get("n"), c.get("d"), c.get("p"), c.get("data")) for c in self.cells})

    @property
    def total_runs(self) -> int:
        return sum(int(c.get("runs", 0)) for c in self.cells)


def _cell(figure: str, solver: str, seed: int, **knobs: Any) -> dict[str, Any]:
    """Common knobs of SPEC §5: sphere data, paper labels, asymmetric init, GD with η = 1."""
    base = {
        "figure": figure,
        "data": "sphere",
        "labels": "paper",
        "init": "asymmetric",
        "solver": solver,
        "lr": 1.0,
        "seed": seed,
    }
    return base | knobs


def _fig2(preset: str) -> Protocol:
    ns = (1e2, 1e4, 1e8, 1e18)
    cells = [{"figure": "fig2", "n": n, "magnitudes": (1.0, 2.0)} for n in ns]
    return Protocol(
        "fig2",
        preset,
        cells,
        MEASURES["fig2"],
        "plot_fig2",
        CLAIMS["fig2"],
        TITLES["fig2"],
        kind="closed_form",
        params={"magnitudes": (1.0, 2.0), "ns": ns, "u_max": 0.6, "points": 2001},
        notes="Closed form of SPEC §4 (theory.closed_form.staircase); identical in both presets.",
    )


def _fig3(preset: str, solver: str, seed: int) -> Protocol:
    if preset == "paper":
        d, ns, runs = 100, range(1300, 2101, 50), 80
    else:
        d, ns, runs = 40, range(130, 431, 50), 24
    cells = [_cell("fig3", solver, seed, n=n, d=d, p=width(n, EPS), runs=runs) for n in ns]
    return Protocol(
        "fig3",
        preset,
        cells,
        MEASURES["fig3"],
        "plot_fig3",
        CLAIMS["fig3"],
        TITLES["fig3"],
        params={"d": d},
        notes=f"d = {d}, n = {ns.start}..{ns.stop - 1} step {ns.step}, p = p(n, 0.05), "
        f"{runs} runs per n.",
    )


def fig4_sizes(d: int, preset: str) -> list[int]:
    """Fig. 4 sizes at dimension d: paper ``n = d, 2d, …, ≤ 30d − 200``; quick a few multiples."""
    if preset == "paper":
        return [k * d for k in range(1, 31) if k * d <= 30 * d - 200]
    return [k * d for k in (3, 5, 8, 12, 18)]


def _fig4(preset: str, solver: str, seed: int) -> Protocol:
    p = 30
    ds, runs = (range(10, 101, 10), 20) if preset == "paper" else ((20, 40, 60), 16)
    cells = [
        _cell("fig4", solver, seed, n=n, d=d, p=p, runs=runs)
        for d in ds
        for n in fig4_sizes(d, preset)
    ]
    return Protocol(
        "fig4",
        preset,
        cells,
        MEASURES["fig4"],
        "plot_fig4",
        CLAIMS["fig4"],
        TITLES["fig4"],
        x="n",
        group="d",
        params={"p": p, "ds": tuple(ds)},
        notes=f"p = {p}, d = {', '.join(map(str, ds))}; n = "
        + ("d, 2d, …, 30d − 200" if preset == "paper" else "3d, 5d, 8d, 12d, 18d")
        + f"; {runs} runs per point.",
    )


FIG5_D = 30
FIG5_N_REF = 150.0  # measured N(30, 30) ≈ 150 with this engine: the guess's anchor
FIG5_P_REF = 30


def fig5_guess(p: int) -> float:
    """Guess ``N̂(p) = N̂(30) (p/30)^{1/2}`` at d = 30 that centres Fig. 5's grid (module doc)."""
    return FIG5_N_REF * math.sqrt(p / FIG5_P_REF)


def fig5_sizes(p: int, preset: str) -> list[int]:
    """Fig. 5 sizes ``N̂(p)·2^e`` rounded to 5: paper e = k/4, k = −4..4 (factor 1/2..2,
    9 points); quick e = k/3, k = −2..2 (factor 0.63..1.59, 5 points)."""
    es = [k / 4 for k in range(-4, 5)] if preset == "paper" else [k / 3 for k in range(-2, 3)]
    guess = fig5_guess(p)
    return sorted({max(5, 5 * round(guess * 2**e / 5)) for e in es})


def _fig5(preset: str, solver: str, seed: int) -> Protocol:
    d = FIG5_D
    ps, runs = (range(50, 401, 10), 20) if preset == "paper" else ((30, 60, 120), 16)
    cells = [
        _cell("fig5", solver, seed, n=n, d=d, p=p, runs=runs)
        for p in ps
        for n in fig5_sizes(p, preset)
    ]
    return Protocol(
        "fig5",
        preset,
        cells,
        MEASURES["fig5"],
        "plot_fig5",
        CLAIMS["fig5"],
        TITLES["fig5"],
        x="n",
        group="p",
        params={"d": d, "ps": tuple(ps)},
        notes=f"d = {d}, p = {', '.join(map(str, ps))}; n = N̂(p)·2^e around the guess "
        f"N̂(p) = {FIG5_N_REF:g}·(p/30)^(1/2) (paper: 2^(k/4), k = −4..4; quick: 2^(k/3), "
        f"k = −2..2); {runs} runs per point.",
    )


def _fig6(preset: str, solver: str, seed: int) -> Protocol:
    if preset == "paper":
        d, ns, runs = 2000, range(1000, 2001, 100), 500
    else:
        d, ns, runs = 1200, range(600, 1201, 150), 24
    cells = [
        _cell(
            "fig6",
            solver,
            seed,
            n=n,
            d=d,
            p=width(n, EPS),
            runs=runs,
            data="orthogonal",
            w_scale=0.01,
            require_coverage=True,
            horizon_factor=10.0,
            stop_loss=FIG6_STOP / (2 * n),
        )
        for n in ns
    ]
    return Protocol(
        "fig6",
        preset,
        cells,
        MEASURES["fig6"],
        "plot_fig6",
        CLAIMS["fig6"],
        TITLES["fig6"],
        params={"d": d, "slope": -0.5},
        notes=f"orthogonal x_i = ρ_i e_i, d = {d}, n = {ns.start}..{ns.stop - 1} step {ns.step}, "
        f"p = p(n, 0.05), W scaled by 0.01, coverage required, {runs} runs per n, "
        "horizon 10·T(n, p), stop at L < 1e-6/(2n).",
    )


def protocol(figure: str, preset: str = "quick", solver: str = "gd", seed: int = 0) -> Protocol:
    """The protocol of ``figure`` (fig2..fig6) under ``preset`` (quick | paper), SPEC §5.

    ``solver`` = "gd" (the paper's GD with η = 1), "flow" (the exact event-driven
    gradient flow on the same horizon) or "flow-floor" (the older floored flow, for
    comparison); ``seed`` is the sweep seed stored in every cell.
    """
    if figure not in FIGURES:
        raise ShallowflowInputError("figure", f"unknown figure {figure!r}; choose one of {FIGURES}")
    if preset not in PRESETS:
        raise ShallowflowInputError("preset", f"unknown preset {preset!r}; choose one of {PRESETS}")
    if solver not in SOLVERS:
        raise ShallowflowInputError("solver", f"must be one of {SOLVERS}, got {solver!r}")
    if figure == "fig2":
        return _fig2(preset)
    build = {"fig3": _fig3, "fig4": _fig4, "fig5": _fig5, "fig6": _fig6}[figure]
    return build(preset, solver, seed)


def protocols(figure: str, preset: str = "quick", solver: str = "gd") -> list[Protocol]:
    """``[protocol(figure, …)]``, or every figure's protocol for ``figure = "all"``."""
    names = FIGURES if figure == "all" else (figure,)
    return [protocol(name, preset, solver) for name in names]
