"""Detectors that need skin detail skip a face too small in its photo, and say what size they need.

Each gated detector declares ``max_magnification`` (ROI px per photo px): beyond it its score no
longer follows the full-size photo's (``python bench/repeatability.py --shrink``). A face whose ROI
is magnified just past the limit is skipped with the face size the detector needs; just inside
it, the detector answers.
"""

from __future__ import annotations

import re

import pytest

from harerun.host import PluginHost
from harerun.testing import make_context, synthetic_skin

GATED = ("acne", "ml_classifier", "dark_spots", "texture", "pores", "wrinkles")
UNGATED = ("redness", "pigmentation")  # their scores hold at x12 (bench/repeatability.py --shrink)


@pytest.fixture(scope="module")
def host():
    return PluginHost(autoload=True)


@pytest.mark.parametrize("name", GATED)
def test_a_face_past_the_limit_is_skipped_with_the_size_it_needs(host, name):
    cls = host.detectors[name].cls
    limit = cls.Params().max_magnification
    img = synthetic_skin(512)
    ctx = make_context(img, scale=1.0 / (1.1 * limit))
    past = cls().analyze(ctx)
    assert past.status == "skipped" and past.score is None
    assert past.measurements["magnification"] == pytest.approx(1.1 * limit, abs=0.01)
    face_px = ctx.face_box[2]  # the face must be 1.1 times larger to be magnified at most `limit` times
    assert f"{face_px} px across" in past.message
    needed = int(re.search(r"at least (\d+) px", past.message).group(1))
    assert abs(needed - face_px * 1.1) <= 1.5
    inside = cls().analyze(make_context(img, scale=1.0 / (0.9 * limit)))
    assert inside.status != "skipped", inside.message


@pytest.mark.parametrize("name", UNGATED)
def test_colour_detectors_answer_on_small_faces(host, name):
    result = host.detectors[name].cls().analyze(make_context(synthetic_skin(512), scale=1.0 / 12))
    assert result.status == "ok"
