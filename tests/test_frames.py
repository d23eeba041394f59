"""stats.frames.where: the typed row filter the studies use."""

import numpy as np
import pandas as pd
import pytest

from shallowflow.stats.frames import where


def test_where_keeps_the_rows_of_the_mask_in_order():
    t = pd.DataFrame({"n": [3, 1, 2, 5], "x": [0.5, 1.5, 2.5, 3.5]}, index=[10, 11, 12, 13])
    got = where(t, t["n"] > 1)
    assert isinstance(got, pd.DataFrame)
    assert list(got.index) == [10, 12, 13]
    pd.testing.assert_frame_equal(got, t[t["n"] > 1])
    assert len(where(t, np.zeros(4, bool))) == 0


def test_where_refuses_a_mask_of_the_wrong_length():
    t = pd.DataFrame({"n": [1, 2]})
    with pytest.raises(ValueError, match="mask: expected 2 booleans"):
        where(t, [True, False, True])
