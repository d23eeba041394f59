"""Figs. 4-5's panels read well at paper scale: the success curves run in increasing n
with repeated evaluations pooled (the adaptive search evaluates out of order), many
group values get a colour bar instead of a legend, and the collapse panel puts every
curve's crossing of 1/2 at n/N = 1."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shallowflow.experiments.figures.success import (
    LEGEND_MAX,
    pooled,
    success_points,
    threshold_panels,
)


def _points(groups: int, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Success points as the adaptive search leaves them: sizes out of order, some
    repeated, for ``groups`` values of p with thresholds 100 + 10 p."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(1, groups + 1):
        big_n = 100.0 + 10 * p
        for n in rng.permutation([60, 200, 120, 60, 160, 120, 80]):
            k = int(round(8 / (1 + np.exp(0.05 * (n - big_n)))))
            rows.append({"p": p, "n": int(n), "runs": 8, "successes": k})
    runs_like = pd.DataFrame(rows)
    thresholds = [
        {"p": p, "N": 100.0 + 10 * p, "ci_low": 95.0 + 10 * p, "ci_high": 105.0 + 10 * p}
        for p in range(1, groups + 1)
    ]
    return runs_like, {"thresholds": thresholds}


def test_pooled_sorts_by_n_and_adds_repeated_evaluations():
    pts, _ = _points(1)
    out = pooled(pts)
    assert out["n"].tolist() == sorted(set(pts["n"]))
    at60 = pts[pts["n"] == 60]
    assert int(out.loc[out["n"] == 60, "runs"].iloc[0]) == int(at60["runs"].sum()) == 16
    assert int(out.loc[out["n"] == 60, "successes"].iloc[0]) == int(at60["successes"].sum())
    assert (out["bar_low"] <= out["fraction"]).all() and (out["fraction"] <= out["bar_high"]).all()


def test_success_points_pool_runs_at_the_same_n():
    runs = pd.DataFrame(
        {
            "p": 30,
            "n": [50, 20, 50, 20, 50],
            "success": [True, True, False, True, True],
            "final_loss": 0.1,
            "loss0": 1.0,
        }
    )
    pts = success_points(runs, ["p", "n"])
    assert pts["n"].tolist() == [20, 50]
    assert pts["runs"].tolist() == [2, 3] and pts["successes"].tolist() == [2, 2]


def _curves(ax):
    return [line for line in ax.lines if len(line.get_xdata()) > 2]


def test_panels_draw_sorted_pooled_curves_and_a_colour_bar_for_many_values():
    import matplotlib

    matplotlib.use("Agg")
    pts, summary = _points(LEGEND_MAX + 3)
    fig, left, _, _ = threshold_panels(pts, summary, "p")
    curves = _curves(left)
    assert len(curves) == LEGEND_MAX + 3
    for line in curves:
        x = np.asarray(line.get_xdata(), dtype=float)
        assert np.all(np.diff(x) > 0), x  # increasing n, one point per n
    assert left.get_legend() is None  # a colour bar instead
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    collapse = fig.axes[2]
    for line in _curves(collapse):
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        cross = x[np.argmax(y < 0.5)]  # first point below 1/2 lies just past n/N = 1
        assert 1.0 <= cross <= 1.6, cross


def test_panels_keep_a_legend_for_few_values():
    import matplotlib

    matplotlib.use("Agg")
    pts, summary = _points(3)
    _, left, _, _ = threshold_panels(pts, summary, "p")
    assert left.get_legend() is not None
