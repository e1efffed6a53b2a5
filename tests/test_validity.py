"""The short validity scorecard: 40 shared `val` close-ups through the product path.

Runs ``bench/validity.py --limit 40`` as a user would (the Engine, the default pipeline, nothing
hand-set) and holds each figure a little below what it printed on 2026-12-05 (night) with the
lesion network counting on the face outline x1.3 and acne-grade@3 (face 100 %, lesion P 0.535 /
R 0.372 / F1 0.439, Spearman 0.599, acne grade accuracy 0.575, ML grade accuracy 0.725, constant
baseline 0.475), so a change that breaks validity fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.shared
def test_short_scorecard_through_the_product_path(shared, tmp_path):
    out = tmp_path / "card.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "validity.py"), "--limit", "40", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HARERUN_SHARED": str(shared)},
    )
    assert run.returncode == 0, run.stderr
    card = json.loads(out.read_text())
    p, baseline = card["product"], card["constant_baseline"]["accuracy"]
    assert p["photos"] == 40 and p["face_pct"] >= 97.5
    assert p["precision"] >= 0.49 and p["recall"] >= 0.34 and p["f1"] >= 0.41
    assert p["spearman_count_grade"] >= 0.55
    assert p["acne_grade"]["accuracy"] >= max(0.5, baseline) and p["ml_grade"]["accuracy"] >= max(0.67, baseline)
    assert card["detector_only"]["f1"] >= 0.42  # the diagnostic beside it
