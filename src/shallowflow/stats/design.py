"""The sequential design of ``reproduce --adaptive``: where to spend the next runs to
locate the threshold N (SPEC §5, Figs. 3–5 without a full grid)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shallowflow.errors import require
from shallowflow.stats.thresholds import ThresholdFit, fit_threshold

__all__ = ["AdaptiveResult", "adaptive_threshold"]

Simulate = Callable[[int, int, int], int]


@dataclass(frozen=True)
class AdaptiveResult:
    """Outcome of :func:`adaptive_threshold`.

    ``evaluations`` lists ``(n, runs, successes)`` in the order simulated;
    ``reached_target`` says whether the interval width met the target before
    the run budget ran out.
    """

    fit: ThresholdFit
    evaluations: tuple[tuple[int, int, int], ...]
    total_runs: int
    reached_target: bool


def adaptive_threshold(
    simulate: Simulate,
    n_min: int,
    n_max: int,
    runs_per_point: int,
    target_width: float,
    max_runs: int,
    seed: int = 0,
    n_step: int = 1,
    n_init: int = 5,
    n_boot: int = 400,
    level: float = 0.95,
) -> AdaptiveResult:
    """Sequential design for the threshold ``N`` (SPEC §5, Figs. 4–5 without a full grid).

    Starts with a pilot on ``n_init`` evenly spaced sizes in ``[n_min, n_max]``, taken
    in ascending order and cut after the first size with no success once a smaller
    size had one (:func:`_pilot_done`). Then it repeatedly fits (:func:`fit_threshold`)
    and spends ``runs_per_point`` more runs at the next size of the cycle
    ``N̂, ci_low, ci_high`` (rounded to the grid ``n_min + j·n_step``, clipped to the
    range): bisection on the crossing, with the interval ends keeping the slope
    identified. Stops once ``ci_high − ci_low ≤ target_width`` or after ``max_runs``
    runs in all (the last batch is cut to fit the budget).

    ``simulate(n, runs, rng_seed)`` returns the number of successes among
    ``runs`` runs at size ``n``; its seeds come from ``default_rng(seed)``, the pilot's
    all drawn first (a size the pilot skips leaves the other seeds as they were).
    """
    require(n_step >= 1, "n_step", "must be >= 1")
    require(n_max - n_min >= n_step, "n_max", "must exceed n_min by at least n_step")
    require(runs_per_point >= 1, "runs_per_point", "must be >= 1")
    require(target_width > 0, "target_width", "must be > 0")
    require(n_init >= 2, "n_init", "must be >= 2")
    require(max_runs >= n_init * runs_per_point, "max_runs", "must cover the initial design")
    rng = np.random.default_rng(seed)
    grid = np.arange(n_min, n_max + 1, n_step)
    evals: list[tuple[int, int, int]] = []

    def record(size: int, runs: int, hits) -> None:
        h = np.asarray(hits, dtype=float)
        ok = h.ndim == 0 and float(h).is_integer() and 0 <= float(h) <= runs
        require(ok, "simulate", f"returned {hits!r} successes of {runs} runs")
        evals.append((int(size), runs, int(hits)))

    def run(size: int, runs: int) -> None:
        record(size, runs, simulate(int(size), runs, int(rng.integers(2**63))))

    sizes = np.unique(_snap(np.linspace(n_min, n_max, n_init), grid))
    pilot = [(int(size), runs_per_point, int(rng.integers(2**63))) for size in sizes]
    for size, runs, rng_seed in pilot:
        record(size, runs, simulate(size, runs, rng_seed))
        if _pilot_done(evals):
            break
    step = 0
    while True:
        fit = _fit_evals(evals, n_boot, int(rng.integers(2**63)), level)
        used = sum(e[1] for e in evals)
        done = bool(fit.ci_width <= target_width)
        if done or used >= max_runs:
            return AdaptiveResult(fit, tuple(evals), used, done)
        target = (fit.threshold, fit.ci_low, fit.ci_high)[step % 3]
        if not np.isfinite(target):
            target = fit.threshold if np.isfinite(fit.threshold) else 0.5 * (n_min + n_max)
        run(_snap(np.array([target]), grid)[0], min(runs_per_point, max_runs - used))
        step += 1


def _pilot_done(evals: list[tuple[int, int, int]]) -> bool:
    """Whether the pilot can stop: its last size had no success and a smaller one had some.

    The success probability falls with n (Figs. 3–5), so every larger pilot size would
    fail too; yet those are the dearest runs of the design, since a failing run lasts its
    whole horizon T(n, p) and costs about n^1.5 (Fig. 5's paper preset spent two thirds of
    its FLOPs at n ≥ 1.5 N, all failures). Their all-fail counts barely move the
    threshold's fit, and the design's stopping rule (interval no wider than the target)
    buys what they would have told with runs near N instead.
    """
    *earlier, (_, _, hits) = evals
    return hits == 0 and any(k > 0 for _, _, k in earlier)


def _snap(values: NDArray, grid: NDArray) -> NDArray[np.int64]:
    """Nearest points of the evenly spaced ``grid`` (at least two points)."""
    idx = np.rint((values - grid[0]) / (grid[1] - grid[0])).astype(np.int64)
    return grid[np.clip(idx, 0, grid.size - 1)]


def _fit_evals(
    evals: list[tuple[int, int, int]], n_boot: int, seed: int, level: float
) -> ThresholdFit:
    n, r, k = (np.array(col) for col in zip(*evals, strict=True))
    return fit_threshold(n, k, r, n_boot=n_boot, seed=seed, level=level)
