"""What the studies share (experiments/studies/common.py, and the interval panels of
plots.py): a preset's design, a value with its interval in words, rows picked by their
keys, and error bars read from a table's intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shallowflow.experiments.studies import STUDIES
from shallowflow.experiments.studies.common import design_of, first, holds, select
from shallowflow.plots import interval_yerr
from shallowflow.report.format import ci

TABLE = pd.DataFrame(
    {
        "part": ["a", "a", "b", "b"],
        "level": [1e-6, 1e-14, 1e-6, math.nan],
        "n": [10, 20, 10, 20],
        "value": [1.0, 2.0, 3.0, 4.0],
        "ci_low": [0.5, 1.5, math.nan, 3.5],
        "ci_high": [1.5, 2.5, 3.5, math.inf],
    }
)


def test_every_study_resolves_its_presets_and_passes_a_design_through():
    for module in STUDIES.values():
        for name, design in module.PRESETS.items():
            assert design_of(module.PRESETS, name) is design
            assert design_of(module.PRESETS, design) is design
    with pytest.raises(KeyError, match="huge"):
        design_of(STUDIES["width"].PRESETS, "huge")


def test_select_compares_floats_to_rounding_nan_to_nan_and_the_rest_exactly():
    # 1e-14 read back from a file may differ in its last bits: still the same level
    assert list(select(TABLE, level=1e-14 * (1 + 1e-12))["value"]) == [2.0]
    assert list(select(TABLE, level=math.nan)["value"]) == [4.0]
    assert list(select(TABLE, part="b", n=10)["value"]) == [3.0]
    assert list(select(TABLE, part="a")["value"]) == [1.0, 2.0]
    assert select(TABLE, part="c").empty
    assert list(select(TABLE)["value"]) == [1.0, 2.0, 3.0, 4.0]  # no key: every row


def test_first_gives_the_first_selected_row_or_none():
    row = first(TABLE, part="b")
    assert row is not None and row["value"] == 3.0 and row["n"] == 10
    assert first(TABLE, part="b", n=30) is None


def test_ci_reads_a_value_with_its_interval_scaled_and_shifted():
    row = {"value": 1.2345, "beta": 0.51234, "ci_low": 1.1, "ci_high": 1.36}
    assert ci(row) == "1.23 [1.1, 1.36]"
    assert ci(row, 2) == "1.2 [1.1, 1.4]"
    row = {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}
    # a ratio read as a change in percent: 100·(x − 1)
    assert ci(row, 3, scale=100, shift=1.0, unit="%") == "-10% [-15%, -5%]"
    assert ci({"beta": 0.5, "ci_low": -math.inf, "ci_high": math.nan}, key="beta") == (
        "0.5 [−∞, nan]"
    )


def test_holds_is_the_closed_interval():
    row = {"ci_low": -1.0, "ci_high": -0.5}
    assert holds(row, -0.5) and holds(row, -1.0) and not holds(row, -0.4)
    assert not holds({"ci_low": math.nan, "ci_high": 1.0}, 0.0)  # an unknown end holds nothing


def test_interval_yerr_draws_no_bar_for_a_missing_infinite_or_wrong_side_end():
    rows = pd.DataFrame(
        {"N": [5.0, 5.0, 5.0, 5.0], "ci_low": [4.0, math.nan, 6.0, -math.inf],
         "ci_high": [7.0, math.inf, 8.0, 5.5]}
    )  # fmt: skip
    np.testing.assert_array_equal(
        interval_yerr(rows, "N"), [[1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 3.0, 0.5]]
    )


def test_interval_bars_draw_an_estimate_outside_its_interval_without_a_wrong_bar():
    """A bootstrap percentile interval need not hold its point estimate: the bar on the
    wrong side is left out (matplotlib refuses a negative error), the other is drawn."""
    from matplotlib.figure import Figure

    from shallowflow.plots import interval_bars

    ax = Figure().add_subplot()
    rows = [{"slope": -0.4, "ci_low": -0.35, "ci_high": -0.2}, {"slope": -0.5, "ci_low": -0.6,
            "ci_high": -0.45}]  # fmt: skip
    interval_bars(ax, [1.0, 2.0], rows, "slope", fmt="o")
    (segments,) = ax.containers[0].lines[2]  # the vertical bars, one segment per point
    ends = [sorted(seg[:, 1]) for seg in segments.get_segments()]
    np.testing.assert_allclose(ends, [[-0.4, -0.2], [-0.6, -0.45]], rtol=1e-12)
