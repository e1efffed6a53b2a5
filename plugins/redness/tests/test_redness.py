"""Redness detector: synthetic erythema of known a* and area, params, real photo, discovery."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pydantic
import pytest

from harerun.testing import SKIN_BGR, canonical_zones, make_context, synthetic_skin
from harerun_redness import algorithm
from harerun_redness.plugin import RednessDetector


def shifted_a(bgr, delta_a: float) -> tuple[int, int, int]:
    """``bgr`` with CIELAB a* raised by ``delta_a`` (L*, b* kept)."""
    lab = cv2.cvtColor(np.array([[bgr]], np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    lab[..., 1] += delta_a
    out = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255.0, 0, 255).round().astype(np.uint8)
    return tuple(int(c) for c in out[0, 0])


def skin_with_disk(delta_a: float, radius: int = 30, center=(150, 325), seed: int = 0) -> np.ndarray:
    img = synthetic_skin(512, noise=0.0, seed=seed)
    if delta_a:
        cv2.circle(img, center, radius, shifted_a(SKIN_BGR, delta_a), -1)
    rng = np.random.default_rng(seed)
    noisy = img.astype(np.float32) + rng.normal(0, 2.0, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def union_area() -> int:
    u = np.zeros((512, 512), np.uint8)
    for z in canonical_zones(512).values():
        u |= z
    return int(np.count_nonzero(u))


def test_erythema_index_matches_formula():
    px = np.array([[[100, 120, 200]]], np.uint8)  # B, G, R
    lin = lambda c: ((c / 255 + 0.055) / 1.055) ** 2.4  # noqa: E731
    expected = 100 * (np.log10(lin(200)) - np.log10(lin(120)))
    assert algorithm.erythema_index(px, smooth=1)[0, 0] == pytest.approx(expected, rel=1e-4)
    grey = np.full((1, 1, 3), 128, np.uint8)
    assert algorithm.erythema_index(grey, smooth=1)[0, 0] == pytest.approx(0.0, abs=1e-4)


def test_clean_skin_scores_near_zero():
    res = RednessDetector().analyze(make_context(skin_with_disk(0)))
    assert res.status == "ok"
    assert res.score < 3
    assert res.measurements["red_area_pct"] < 0.5
    assert max(res.zones.values()) < 3


def test_red_disk_raises_its_zone_only_and_area_matches():
    radius = 30
    res = RednessDetector().analyze(make_context(skin_with_disk(20, radius)))
    zones = res.zones
    assert zones["left_cheek"] > 25
    assert all(v < 3 for k, v in zones.items() if k != "left_cheek"), zones
    m = res.measurements
    assert m["left_cheek_ei_mean"] > m["right_cheek_ei_mean"] + 5
    expected_pct = 100 * np.pi * radius**2 / union_area()
    assert m["red_area_pct"] == pytest.approx(expected_pct, rel=0.10)
    # the marker sits on the disk, in original-photo coordinates
    ctx = make_context(skin_with_disk(20, radius), offset=(100, 50), scale=2.0)
    res2 = RednessDetector().analyze(ctx)
    x, y, r = res2.evidence.markers[0]
    assert abs(x - (150 * 2 + 100)) < 4 and abs(y - (325 * 2 + 50)) < 4
    assert r == pytest.approx(radius * 2, rel=0.1)
    heat = res2.evidence.mask
    assert heat.dtype == np.uint8 and heat.shape == (512, 512)
    assert heat[325, 150] > 200 and heat[325, 360] < 50


def test_score_rises_with_redness_and_area():
    scores_a = [RednessDetector().analyze(make_context(skin_with_disk(da))).score for da in (0, 8, 14, 20, 30)]
    assert scores_a == sorted(scores_a) and scores_a[-1] > scores_a[0] + 5, scores_a
    scores_r = [RednessDetector().analyze(make_context(skin_with_disk(20, r))).score for r in (5, 15, 25, 35)]
    assert scores_r == sorted(scores_r) and scores_r[-1] > scores_r[0] + 5, scores_r


def test_params_are_validated():
    with pytest.raises(pydantic.ValidationError):
        RednessDetector.Params(red_delta_ei=0)
    with pytest.raises(pydantic.ValidationError):
        RednessDetector.Params(no_such_option=1)


def test_empty_skin_is_skipped():
    img = synthetic_skin(128)
    ctx = make_context(img, skin_mask=np.zeros((128, 128), np.uint8))
    assert RednessDetector().analyze(ctx).status == "skipped"


@pytest.mark.shared
def test_real_acne_photo_in_range(shared):
    rows = list(csv.DictReader(open(shared / "data/acne/labels.csv")))
    row = next(r for r in rows if r["grade"] == "2")
    img = cv2.resize(cv2.imread(str(shared / "data/acne/images" / row["image"])), (512, 512))
    res = RednessDetector().analyze(make_context(img))
    assert res.status == "ok" and 0 <= res.score <= 100
    assert set(res.zones) == set(canonical_zones(512))
    assert 0 <= res.measurements["red_area_pct"] <= 100
    assert res.measurements["red_region_count"] > 0


def test_discovered_through_entry_point():
    from harerun.host import PluginHost

    reg = PluginHost(autoload=True).detectors["redness"]
    assert reg.cls is RednessDetector
    assert reg.package == "harerun-redness"


def test_zone_skin_thinner_than_the_grid_is_measured_not_an_error():
    """A zone whose skin is one pixel row between the sub-sampling grid's points: redness
    measures the cells it touches (it divided by zero before)."""
    img = synthetic_skin(256)
    skin = np.zeros((256, 256), np.uint8)
    skin[100, 40:200] = 255  # row 100: between the 2-px grid's sample rows (odd ones)
    ctx = make_context(img, skin_mask=skin, zones={"forehead": skin.copy()})
    res = RednessDetector().analyze(ctx)
    assert res.status == "ok" and res.score is not None and res.measurements["ei_mean"] > 0
