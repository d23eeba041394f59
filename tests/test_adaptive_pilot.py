"""The adaptive design's pilot is cut at the first size where no run succeeds.

A failing run lasts its whole horizon, so the pilot's sizes far above N were the dearest
runs of the design (two thirds of Fig. 5's paper FLOPs). These tests plant logistic
curves, with a cost model where a run costs n^1.5 per unit of time (the step's n·p·d
FLOPs times a horizon T(n, p) ∝ √n log n, the log dropped) and a success stops at 0.3
of its horizon, and compare the cut pilot with the whole one on the same seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from shallowflow.experiments import adaptive as ad
from shallowflow.stats import design

GUESS = 300.0  # Fig. 5's grid: GUESS·2^(k/4), k = −4..4, 20 runs per size
NS = np.array(sorted({5 * round(GUESS * 2 ** (k / 4) / 5) for k in range(-4, 5)}))
REPS = 60


def _planted(i: int, whole_pilot: bool, monkeypatch) -> tuple[float, object, float, float]:
    """Design ``i`` as ``run_adaptive`` runs it on Fig. 5's grid, N planted at
    0.7–1.15 × the guess with a 5% scale: ``(planted N, fit, target, cost / N^1.5)``."""
    if whole_pilot:
        monkeypatch.setattr(design, "_pilot_done", lambda evals: False)
    rng = np.random.default_rng(i)
    planted = GUESS * rng.uniform(0.7, 1.15)
    cost = [0.0]

    def simulate(n: int, runs: int, seed: int) -> int:
        hits = int(
            np.random.default_rng(seed).binomial(
                runs, special.expit((planted - n) / (0.05 * planted))
            )
        )
        cost[0] += (0.3 * hits + runs - hits) * n**1.5
        return hits

    res, target, _ = ad._design(simulate, NS, np.full(NS.size, 20), 10, 1000 + i, None)
    monkeypatch.undo()
    return planted, res, target, cost[0] / planted**1.5


def test_the_pilot_stops_after_the_first_size_without_success_and_keeps_its_seeds():
    asked: list[tuple[int, int]] = []

    def sharp(n: int, runs: int, seed: int) -> int:
        asked.append((n, seed))
        return runs if n < 1500 else 0

    design.adaptive_threshold(sharp, 1300, 2100, 10, 1e9, 50, seed=7, n_step=50)
    seeds = np.random.default_rng(7).integers(2**63, size=5)  # the whole pilot's seeds
    assert asked == [(1300, seeds[0]), (1500, seeds[1])]  # 1700, 1900 and 2100 skipped


def test_a_pilot_without_any_success_is_not_cut():
    """No success yet says nothing about the curve's direction: every size is taken."""
    asked: list[int] = []

    def none(n: int, runs: int, seed: int) -> int:
        asked.append(n)
        return 0

    design.adaptive_threshold(none, 1300, 2100, 10, 1e9, 50, seed=7, n_step=50)
    assert asked == [1300, 1500, 1700, 1900, 2100]


def test_the_cut_pilot_keeps_the_estimate_unbiased_and_costs_a_third(monkeypatch):
    """On the same planted curves and seeds, the cut pilot's threshold has no bias (mean
    error within 3 standard errors of 0), its interval meets the grid's target as often,
    it covers N as often (within 5 designs of 60), and the design costs at most half."""
    cut = [_planted(i, False, monkeypatch) for i in range(REPS)]
    whole = [_planted(i, True, monkeypatch) for i in range(REPS)]
    for runs in (cut, whole):
        err = np.array([res.fit.threshold - n for n, res, _, _ in runs])
        assert abs(err.mean()) <= 3 * err.std(ddof=1) / math.sqrt(REPS)
    covers = [
        sum(r.fit.ci_low <= n <= r.fit.ci_high for n, r, _, _ in runs) for runs in (cut, whole)
    ]
    assert covers[0] >= covers[1] - 5 and covers[0] >= 0.85 * REPS
    reached = [sum(r.fit.ci_width <= t for _, r, t, _ in runs) for runs in (cut, whole)]
    assert reached[0] >= reached[1] - 2
    cost = [sum(c for *_, c in runs) for runs in (cut, whole)]
    assert cost[0] <= 0.5 * cost[1], f"cost {cost[0]:.0f} against {cost[1]:.0f}"


@pytest.mark.parametrize("hits", [[3, 0], [0, 0, 0], [10, 10, 4]])
def test_pilot_done_only_after_a_success_then_none(hits):
    evals = [(100 * (i + 1), 10, k) for i, k in enumerate(hits)]
    assert design._pilot_done(evals) == (hits == [3, 0])
