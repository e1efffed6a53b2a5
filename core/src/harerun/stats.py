"""Agreement statistics for comparing two runs over the same photos (``harerun report``, benchmarks)."""

from __future__ import annotations

import numpy as np


def icc31(ratings: np.ndarray) -> float | None:
    """ICC(3,1) of ``ratings``, an (n targets, k raters) array: two-way mixed effects, consistency,
    single rater (Shrout & Fleiss 1979; McGraw & Wong's ICC(C,1)).

    ``(MS_rows - MS_error) / (MS_rows + (k - 1) MS_error)`` from the two-way ANOVA without replication.
    A constant offset between raters does not lower it (consistency, not absolute agreement).
    None when it is undefined: fewer than 2 targets or raters, or no variance at all.
    """
    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 2:
        return None
    n, k = data.shape
    grand = data.mean()
    ss_rows = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((data - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_error = ss_rows / (n - 1), ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error
    return float((ms_rows - ms_error) / denominator) if denominator > 0 else None
