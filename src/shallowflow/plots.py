"""Drawing at the edge (matplotlib, Agg): one style, saving, and the helpers that
several figures share. Each paper figure draws itself in its own module
(:mod:`shallowflow.experiments.figures`); this module holds what they have in common,
the plot of a user sweep and the small figures of the ``verify`` checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

from shallowflow.storage import atomic_open  # noqa: E402

__all__ = [
    "STYLE",
    "design_ticks",
    "interval_bars",
    "interval_yerr",
    "logistic",
    "plot_success",
    "rate_references",
    "render",
    "save",
    "save_figure",
    "signed",
    "yerr",
]

STYLE: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
    "errorbar.capsize": 2.5,
    "savefig.bbox": "tight",
    "savefig.dpi": 150,
}


def yerr(points: pd.DataFrame) -> np.ndarray:
    """Asymmetric Hoeffding bars around the success fraction."""
    frac = points["fraction"].to_numpy()
    return np.vstack([frac - points["bar_low"].to_numpy(), points["bar_high"].to_numpy() - frac])


def interval_bars(ax, x, rows, key: str = "value", **style) -> None:
    """Draw each row's ``key`` at ``x`` with its 95% interval [ci_low, ci_high] as
    asymmetric error bars (``style``: matplotlib's errorbar options), by
    :func:`interval_yerr`: a missing or infinite end draws no bar, nor does one on the
    wrong side of the value (a bootstrap percentile interval need not hold its point
    estimate)."""
    table = pd.DataFrame(list(rows), columns=[key, "ci_low", "ci_high"])
    ax.errorbar(x, table[key].to_numpy(), yerr=interval_yerr(table, key), **style)


def rate_references(ax) -> None:
    """The exponents a rate's slope in n is read against, as horizontal lines: −1/2
    (Conjecture 1, dashed) and −1 (the other end of Proposition 1's range, dotted)."""
    for ref, ls in ((-0.5, "--"), (-1.0, ":")):
        ax.axhline(ref, color="k", ls=ls, lw=0.8)


def interval_yerr(rows: pd.DataFrame, key: str = "value") -> np.ndarray:
    """The (2, k) ``yerr`` of a table's rows around ``key`` from their [ci_low, ci_high];
    an end that is missing, infinite or on the wrong side of the value draws no bar."""
    ends = [rows[key] - rows["ci_low"], rows["ci_high"] - rows[key]]
    return np.vstack([e.clip(lower=0).replace(np.inf, 0).fillna(0) for e in ends])


def design_ticks(ax, values) -> None:
    """Ticks at a design's values on a log x axis over a short range (no minor labels)."""
    ax.set_xticks(values, [f"{v:.3g}" for v in values])
    ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)


def signed(x: float) -> str:
    """``+ 3.2`` or ``− 3.2`` for an equation in a legend."""
    return f"{'+' if x >= 0 else '−'} {abs(x):.3g}"


def logistic(fit: dict[str, Any], n: np.ndarray) -> np.ndarray:
    """The fitted success curve 1/(1 + exp(slope (n − N)))."""
    return 1.0 / (1.0 + np.exp(fit["slope"] * (n - fit["N"])))


def save(fig: Figure, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format and close it."""
    paths = []
    for fmt in formats:
        path = Path(stem).with_suffix(f".{fmt}")
        with atomic_open(path) as f:
            fig.savefig(f, format=fmt)
        paths.append(path)
    plt.close(fig)
    return paths


def render(draw: Callable[[], Figure], title: str, stem: Path) -> list[Path]:
    """Draw a figure in the house style, title it and save it as PNG and PDF."""
    with plt.rc_context(STYLE):
        fig = draw()
        fig.suptitle(title, fontsize=10)
        return save(fig, stem)


def save_figure(
    fig_dir: Path | None, name: str, draw: Callable[[list], None], ncols: int = 1
) -> Path | None:
    """Draw with ``draw(axes)`` on a matplotlib figure (Agg, no pyplot) and save it as
    ``<fig_dir>/<name>.png``; nothing is drawn without ``fig_dir``."""
    if fig_dir is None:
        return None
    fig = Figure(figsize=(5.0 * ncols, 3.6), dpi=90)
    axes = [fig.add_subplot(1, ncols, k + 1) for k in range(ncols)]
    draw(axes)
    fig.tight_layout()
    path = Path(fig_dir) / f"{name}.png"
    with atomic_open(path) as f:
        fig.savefig(f, format="png")
    return path


def plot_success(points: pd.DataFrame, x: str = "n", title: str = "") -> Figure:
    """Success fraction with Hoeffding bars vs ``x`` (user sweeps), one line per other knob."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        others = [c for c in points.columns if c.startswith("knob:")]
        groups = points.groupby(others, sort=True) if others else [("", points)]
        for i, (key, pts) in enumerate(groups):
            pts = pts.sort_values(x)
            label = ", ".join(
                # a group's key: a tuple of the knobs' values (pandas types it Hashable)
                f"{c[5:]}={v}"
                for c, v in zip(others, np.atleast_1d(key), strict=False)  # pyright: ignore[reportCallIssue, reportArgumentType]
            )
            ax.errorbar(
                pts[x],
                pts["fraction"],
                yerr=yerr(pts),
                fmt="o-",
                ms=4,
                color=f"C{i % 10}",
                label=label or None,
            )
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(x)
        ax.set_ylabel("success fraction")
        if title:
            ax.set_title(title)
        if others:
            ax.legend()
    return fig
