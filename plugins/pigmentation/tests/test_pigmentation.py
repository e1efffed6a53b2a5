"""Pigmentation detector: ITA° from the formula, bands, unevenness ladders, real photo, discovery."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pydantic
import pytest

from harerun.testing import acne_photo, canonical_zones, make_context, synthetic_skin
from harerun_pigmentation import algorithm
from harerun_pigmentation.plugin import PigmentationDetector


def cie_lab(bgr) -> tuple[float, float, float]:
    """Textbook sRGB (D65) -> CIELAB, independent of OpenCV."""
    c = np.array(bgr[::-1], float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    x, y, z = m @ lin / np.array([0.95047, 1.0, 1.08883])

    def f(t):
        return np.cbrt(t) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


@pytest.mark.parametrize(
    "bgr, band",
    [
        ((200, 215, 240), "very_light"),
        ((150, 170, 215), "light"),
        ((120, 150, 200), "intermediate"),
        ((90, 130, 180), "tan"),
        ((50, 80, 120), "brown"),
        ((20, 30, 50), "dark"),
    ],
)
def test_uniform_colour_gives_formula_ita_and_band(bgr, band):
    img = np.full((512, 512, 3), bgr, np.uint8)
    res = PigmentationDetector().analyze(make_context(img))
    l_star, _, b_star = cie_lab(bgr)
    expected = math.degrees(math.atan((l_star - 50) / b_star))
    assert res.measurements["ita_deg"] == pytest.approx(expected, abs=0.5)
    assert res.measurements["forehead_ita_deg"] == pytest.approx(expected, abs=0.5)
    assert res.measurements["ita_band"] == band
    assert res.measurements["ita_spread_deg"] < 0.01
    assert res.score < 1 and res.severity == "none"


def test_band_edges_and_atan2():
    assert algorithm.ita_band(55.1) == "very_light" and algorithm.ita_band(55.0) == "light"
    assert algorithm.ita_band(41.0) == "intermediate" and algorithm.ita_band(28.0) == "tan"
    assert algorithm.ita_band(10.0) == "brown" and algorithm.ita_band(-30.0) == "dark"
    assert algorithm.ita_degrees(70.0, 0.0) == pytest.approx(90.0)  # b* = 0 is finite
    assert algorithm.ita_degrees(60.0, 10.0) == pytest.approx(45.0)


def test_melanin_index_darker_is_higher():
    light = algorithm.melanin_index(np.full((1, 1, 3), (150, 170, 215), np.uint8))[0, 0]
    dark = algorithm.melanin_index(np.full((1, 1, 3), (50, 80, 120), np.uint8))[0, 0]
    assert dark > light > 0


def darker_zone(delta_l: float, zone: str = "forehead") -> np.ndarray:
    img = synthetic_skin(512, seed=1)
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    lab[..., 0] -= delta_l * (canonical_zones(512)[zone] > 0)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR) * 255, 0, 255).round().astype(np.uint8)


def test_even_skin_scores_low():
    res = PigmentationDetector().analyze(make_context(synthetic_skin(512)))
    assert res.score < 10
    assert max(res.zones.values()) < 10


def test_one_darker_zone_raises_unevenness_monotonically():
    results = [PigmentationDetector().analyze(make_context(darker_zone(d))) for d in (0, 5, 10, 20, 30)]
    scores = [r.score for r in results]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 20, scores
    zones = results[-1].zones
    assert max(zones, key=zones.get) == "forehead"
    assert results[-1].measurements["forehead_l_star"] < results[-1].measurements["chin_l_star"] - 25


def test_blotches_raise_unevenness():
    scores, mottle = [], []
    for n in (0, 40, 80, 160):
        img = synthetic_skin(512, seed=2)
        rng = np.random.default_rng(5)
        for _ in range(n):
            x, y = rng.integers(100, 412, 2)
            cv2.circle(img, (int(x), int(y)), 9, (110, 130, 170), -1)
        res = PigmentationDetector().analyze(make_context(img))
        scores.append(res.score)
        mottle.append(res.measurements["mottle_l"])
    assert mottle == sorted(mottle) and mottle[-1] > mottle[0] + 1, mottle
    assert all(b >= a - 0.05 for a, b in zip(scores, scores[1:], strict=False)) and scores[-1] > scores[0] + 15, scores


def test_params_are_validated():
    with pytest.raises(pydantic.ValidationError):
        PigmentationDetector.Params(mottle_full_l=0)
    with pytest.raises(pydantic.ValidationError):
        PigmentationDetector.Params(colour="x")


@pytest.mark.shared
def test_real_acne_photo_in_range(shared):
    img = acne_photo(shared, 0)
    res = PigmentationDetector().analyze(make_context(img))
    assert res.status == "ok" and 0 <= res.score <= 100
    assert set(res.zones) == set(canonical_zones(512))
    assert -90 <= res.measurements["ita_deg"] <= 90
    assert res.evidence.mask.shape == (512, 512)


def test_discovered_through_entry_point():
    from harerun.host import PluginHost

    reg = PluginHost(autoload=True).detectors["pigmentation"]
    assert reg.cls is PigmentationDetector
    assert reg.package == "harerun-pigmentation"


def lit_face(size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic skin lit from one side, with spots, inside an oval silhouette on a dark
    background (the cheek zones cross it) and brows the skin mask leaves out: (image, skin mask)."""
    img = synthetic_skin(size, seed=4).astype(np.float32)
    img *= np.linspace(1.08, 0.85, size, dtype=np.float32)[None, :, None]
    skin = np.zeros((size, size), np.uint8)
    cv2.ellipse(skin, (251, 270), (137, 251), 0, 0, 360, 255, -1)
    img[skin == 0] = (40, 50, 60)
    for x, y in np.random.default_rng(3).integers(130, 380, (30, 2)):
        cv2.circle(img, (int(x), int(y)), 5, (120, 140, 185), -1)
    for cx in (171, 341):
        cv2.ellipse(img, (cx, 190), (47, 7), 0, 0, 360, (35, 45, 70), -1)
        cv2.ellipse(skin, (cx, 190), (47, 7), 0, 0, 360, 0, -1)
    return np.clip(img, 0, 255).astype(np.uint8), skin


def test_tone_cells_follow_a_mirrored_mask():
    # A zone whose edges fall inside grid cells: one sample pixel a cell picks other cells on
    # the mirror image; the area share picks the mirrored ones.
    zone = np.zeros((512, 512), np.uint8)
    cv2.ellipse(zone, (201, 263), (83, 41), 17, 0, 360, 255, -1)

    def cells(mask):
        return algorithm.tone_cells(
            cv2.resize(mask, (128, 128), interpolation=cv2.INTER_AREA), np.full((128, 128), 255, np.uint8)
        )

    assert np.array_equal(cells(zone[:, ::-1].copy()), cells(zone)[:, ::-1])


def test_score_survives_mirror_and_grid_shift():
    img, skin = lit_face()
    zones = canonical_zones(512)

    def score(change):
        ctx = make_context(change(img), skin_mask=change(skin), zones={k: change(v) for k, v in zones.items()})
        return PigmentationDetector().analyze(ctx).score

    base = score(lambda a: a)
    changed = [score(lambda a: np.ascontiguousarray(a[:, ::-1]))]
    changed += [score(lambda a, d=d: np.roll(a, (d, d), axis=(0, 1))) for d in (1, 2, 3)]
    assert max(abs(s - base) for s in changed) < 0.5, (base, changed)


def test_a_zone_of_brow_does_not_swing_the_score():
    # On 3/4 and profile views the forehead left below the hairline can be a strip over a brow
    # the skin mask let through, present on the photo and gone on its mirror (or back).
    img, skin = lit_face()
    cv2.ellipse(skin, (171, 190), (47, 7), 0, 0, 360, 255, -1)
    strip = np.zeros_like(skin)
    cv2.rectangle(strip, (118, 180), (226, 200), 255, -1)
    zones = {k: v for k, v in canonical_zones(512).items() if k != "forehead"}
    without = PigmentationDetector().analyze(make_context(img, skin_mask=skin, zones=zones))
    with_strip = PigmentationDetector().analyze(make_context(img, skin_mask=skin, zones={**zones, "forehead": strip}))
    assert abs(with_strip.score - without.score) < 1.0, (without.score, with_strip.score)
