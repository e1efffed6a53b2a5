"""harerun.stats.icc31 against a textbook example and a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from harerun.stats import icc31

#: Shrout & Fleiss (1979), "Intraclass correlations: uses in assessing rater reliability", Table 2:
#: 6 targets rated by 4 judges. Their Table 3 gives BMS = 11.24, EMS = 1.02 and ICC(3,1) = .71.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def test_shrout_fleiss_table():
    icc = icc31(SHROUT_FLEISS)
    assert round(icc, 2) == 0.71
    bms, ems, k = 11.24, 1.02, 4  # the published (rounded) mean squares
    assert icc == pytest.approx((bms - ems) / (bms + (k - 1) * ems), abs=5e-4)


def test_hand_computed_two_raters():
    # rows 2,3 / 4,4 / 6,8: grand mean 4.5; row means 2.5, 4, 7 -> SS_rows = 2 * (4 + 0.25 + 6.25) = 21,
    # MS_rows = 10.5; column means 4, 5 -> SS_cols = 3 * 0.5 = 1.5; SS_total = 23.5 -> SS_error = 1,
    # MS_error = 1 / 2. ICC(3,1) = (10.5 - 0.5) / (10.5 + 0.5) = 10 / 11.
    assert icc31(np.array([[2, 3], [4, 4], [6, 8]])) == pytest.approx(10 / 11, abs=1e-12)


def test_consistency_ignores_an_offset_but_not_disorder():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 100, 50)
    b = a + rng.normal(0, 5, 50)
    icc = icc31(np.column_stack([a, b]))
    assert icc31(np.column_stack([a, b + 20])) == pytest.approx(icc, abs=1e-12)
    assert 0.9 < icc < 1.0
    assert icc31(np.column_stack([a, rng.permutation(b)])) < 0.3
    assert icc31(np.column_stack([a, a])) == pytest.approx(1.0)
    assert icc31(np.array([[1, 3], [2, 2], [3, 1]])) == pytest.approx(-1.0)


def test_undefined_is_none():
    assert icc31(np.array([[1.0, 2.0]])) is None  # one target
    assert icc31(np.array([1.0, 2.0, 3.0])) is None  # not a targets x raters table
    assert icc31(np.full((5, 2), 7.0)) is None  # no variance
