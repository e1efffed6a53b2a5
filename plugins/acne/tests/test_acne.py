"""The acne detector on synthetic lesions of known position and on real ACNE04 photos.

The synthetic-lesion tests pin ``method="dog"``: they check the DoG detector's exact geometry. The
lesion network has its own tests in ``test_lesion_net.py``.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pydantic
import pytest

from harerun.face.skin import classify_skin_pixels
from harerun.testing import make_context, synthetic_skin
from harerun_acne import algorithm
from harerun_acne.plugin import AcneDetector

#: The DoG detector (the default is the lesion network).
DOG = AcneDetector.Params(method="dog")

# Lesion centres on a 7x7 grid inside the face, far enough apart not to merge.
GRID = [(int(x), int(y)) for y in np.linspace(110, 420, 7) for x in np.linspace(110, 400, 7)]


def skin_with_lesions(centres, *, radius=3, strength=25, seed=0):
    """Synthetic skin with red, slightly darker disks (papules) at ``centres``."""
    img = synthetic_skin(seed=seed)
    for x, y in centres:
        cv2.circle(img, (x, y), radius, (150 - strength, 170 - 1.2 * strength, 215), -1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def test_finds_every_synthetic_lesion_and_nothing_else():
    centres = GRID[::2]
    # zones={}: no zone layout, the whole skin mask is analysed
    res = AcneDetector(DOG).analyze(make_context(skin_with_lesions(centres), zones={}))
    markers = np.array(res.evidence.markers)
    assert res.measurements["count"] == len(centres) == len(markers)
    d = np.linalg.norm(markers[:, None, :2] - np.array(centres)[None], axis=2)
    assert d.min(axis=0).max() <= 2.0  # every lesion found within 2 px
    assert d.min(axis=1).max() <= 2.0  # every marker sits on a lesion
    assert np.all((markers[:, 2] >= 1.5) & (markers[:, 2] <= 6))


def test_clean_skin_scores_zero():
    res = AcneDetector(DOG).analyze(make_context(synthetic_skin(seed=3)))
    assert res.measurements["count"] == 0
    assert res.score == 0 and res.severity == "none" and res.measurements["grade"] == 0


def test_score_and_grade_rise_with_lesion_count():
    scores, grades = [], []
    for n in (0, 4, 12, 30, 49):
        res = AcneDetector(DOG).analyze(make_context(skin_with_lesions(GRID[:n], seed=n)))
        scores.append(res.score)
        grades.append(res.measurements["grade"])
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert grades[0] == 0 and grades[-1] >= 1 and grades == sorted(grades)


def test_inflamed_split_follows_redness():
    pale = AcneDetector(DOG).analyze(make_context(skin_with_lesions(GRID[:10], strength=10)))
    red = AcneDetector(DOG).analyze(make_context(skin_with_lesions(GRID[:10], strength=40)))
    assert red.measurements["count_inflamed"] > pale.measurements["count_inflamed"]
    assert red.measurements["count_inflamed"] + red.measurements["count_noninflamed"] == red.measurements["count"]


def test_markers_are_in_original_photo_coordinates():
    centres = GRID[:5]
    res = AcneDetector(DOG).analyze(make_context(skin_with_lesions(centres), zones={}, offset=(100, 50), scale=2.0))
    markers = np.array(res.evidence.markers)
    expected = np.array(centres) * 2.0 + [100, 50]
    d = np.linalg.norm(markers[:, None, :2] - expected[None], axis=2)
    assert d.min(axis=0).max() <= 4.0
    assert markers[:, 2].min() >= 3.0  # radii scaled too


def test_zone_scores_follow_where_the_lesions_are():
    # Lesions only on the forehead zone of the canonical layout (x 130..382, y 60..160).
    centres = [(x, y) for x in range(150, 370, 20) for y in (80, 110, 140)]
    res = AcneDetector(DOG).analyze(make_context(skin_with_lesions(centres)))
    assert res.zones["forehead"] > 50
    assert res.zones["chin"] == 0 and res.zones["left_cheek"] == 0
    assert res.measurements["zone_count"]["forehead"] == len(centres)


def test_only_lesions_inside_the_zones_are_reported():
    inside = [(250, 110), (150, 320), (250, 450)]  # forehead, left cheek, chin
    outside = [(40, 40), (470, 200), (256, 185)]  # corner, right edge, between brows
    res = AcneDetector(DOG).analyze(make_context(skin_with_lesions(inside + outside)))
    markers = np.array(res.evidence.markers)
    assert res.measurements["count"] == 3
    assert np.linalg.norm(markers[:, None, :2] - np.array(inside)[None], axis=2).min(axis=0).max() <= 2
    everywhere = AcneDetector(AcneDetector.Params(method="dog", restrict_to_zones=False)).analyze(
        make_context(skin_with_lesions(inside + outside))
    )
    assert everywhere.measurements["count"] == 6


@pytest.mark.parametrize("size", [505, 640])
def test_other_roi_sizes(size):
    # Pixel params are scaled with the ROI size; odd sizes must not break the half-res maps.
    img = cv2.resize(skin_with_lesions(GRID[::3]), (size, size), interpolation=cv2.INTER_LINEAR)
    res = AcneDetector(DOG).analyze(make_context(img, zones={}))
    assert res.measurements["count"] == len(GRID[::3])


def pinned_scene():
    """Synthetic skin on an elliptical skin mask: papules (25 on the grid, 21 of them on the skin),
    faint spots between them and a short red line; returns CIELAB, the mask and the papules on skin."""
    img = synthetic_skin(seed=5)
    papules = GRID[::2]
    for x, y in papules:
        cv2.circle(img, (x, y), 3, (125, 140, 215), -1)
    for x, y in GRID[1::4]:
        cv2.circle(img, (x, y), 2, (142, 160, 215), -1)
    cv2.line(img, (150, 250), (200, 262), (120, 135, 205), 2)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    mask = np.zeros((512, 512), np.uint8)
    cv2.ellipse(mask, (256, 270), (190, 220), 0, 0, 360, 255, -1)
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    return lab, mask, [(x, y) for x, y in papules if mask[y, x]]


# What lesion_candidates gave on pinned_scene() before it was split into steps (issue #13): the
# candidates in row-major order, and the mean and standard deviation of each feature over them.
# fmt: off
PINNED_CANDIDATES = [
    (158, 110), (206, 110), (303, 110), (351, 110), (158, 161), (206, 161), (255, 161), (351, 161), (400, 161),
    (110, 213), (206, 213), (255, 213), (303, 213), (400, 213), (154, 251), (170, 255), (175, 256), (180, 257),
    (196, 261), (110, 265), (158, 265), (255, 265), (303, 265), (351, 265), (110, 316), (158, 316), (206, 316),
    (303, 316), (351, 316), (400, 316), (158, 368), (206, 368), (255, 368), (351, 368), (400, 368), (206, 420),
    (255, 420), (303, 420),
]
# fmt: on
PINNED_FEATURE_STATS = {
    "response": (8.172826, 3.852567),
    "delta_l": (-4.141994, 1.999786),
    "delta_a": (6.899538, 3.287471),
    "delta_b": (1.696765, 0.98334),
    "response_coarse": (3.462604, 1.87052),
    "response_fine": (9.53618, 3.89374),
    "surround_l": (-0.995709, 1.026982),
    "surround_a": (1.593504, 0.884142),
    "surround_b": (0.367785, 0.283469),
    "texture_a": (2.882779, 1.346987),
    "texture_l": (1.777967, 0.938249),
    "border_px": (29.277279, 2.256377),
    "log_area_px": (2.977175, 0.316734),
    "elongation": (1.413231, 0.864745),
    "neighbours": (0.105263, 0.383164),
    "response_z": (11.926253, 5.621885),
    "delta_a_z": (2.098099, 0.999696),
    "delta_l_z": (-2.070183, 0.9995),
    "log_rank": (2.709689, 0.858004),
    "edge_l": (0.031918, 0.025574),
    "edge_a": (0.041323, 0.027511),
    "hue_shift_deg": (-7.504046, 2.597271),
    "delta_chroma": (6.201415, 3.16483),
    "response_local_z": (2.522876, 0.306767),
    "delta_a_near": (3.966421, 1.686543),
    "delta_l_near": (-2.377032, 1.057608),
}


def test_dog_candidates_are_pinned_on_a_synthetic_scene():
    lab, mask, papules = pinned_scene()
    xy, features = algorithm.lesion_candidates(lab, mask)
    assert [tuple(p) for p in xy.astype(int).tolist()] == PINNED_CANDIDATES
    assert set(papules) <= set(PINNED_CANDIDATES)  # a candidate on every papule's centre
    assert tuple(PINNED_FEATURE_STATS) == algorithm.FEATURES
    mean, std = np.array(list(PINNED_FEATURE_STATS.values())).T
    np.testing.assert_allclose(features.mean(axis=0), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features.std(axis=0), std, rtol=1e-5, atol=1e-6)
    # The candidate filter keeps exactly the papules (not the faint spots, not the line).
    lesions = algorithm.detect_lesions(lab, mask)
    assert sorted(map(tuple, lesions[:, :2].astype(int).tolist())) == sorted(papules)


@pytest.mark.parametrize("shape", [(64, 96), (37, 50), (40, 41)])
def test_half_resolution_is_opencvs_area_resize(shape):
    # Bit for bit on CIELAB of 8-bit colours (any colours, so the values cover the whole grid),
    # on crop views too.
    bgr = np.random.default_rng(1).integers(0, 256, (shape[0] + 8, shape[1] + 8, 3), dtype=np.uint8)
    lab = cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    for image in (lab[: shape[0], : shape[1]], lab[4 : 4 + shape[0], 2 : 2 + shape[1]]):
        expected = cv2.resize(image, (shape[1] // 2, shape[0] // 2), interpolation=cv2.INTER_AREA)
        assert algorithm.half_resolution(image).tobytes() == expected.tobytes()


def test_hayashi_bands():
    assert [algorithm.hayashi_grade(n) for n in (0, 5, 6, 20, 21, 50, 51, 200)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert algorithm.acne_score(0) == 0 and algorithm.acne_score(300) == 100


def test_half_faces_param_changes_grade_not_count():
    ctx = make_context(skin_with_lesions(GRID[:24]))
    frontal = AcneDetector(DOG).analyze(ctx)
    profile = AcneDetector(AcneDetector.Params(method="dog", half_faces_in_roi=1)).analyze(ctx)
    assert frontal.measurements["count"] == profile.measurements["count"]
    assert profile.measurements["grade"] > frontal.measurements["grade"]


@pytest.mark.parametrize(
    "bad",
    [
        {"min_probability": 1.5},
        {"center_sigma_px": 0},
        {"half_faces_in_roi": 3},
        {"nope": 1},
        {"method": "cnn"},
        {"model": "Acne Lesions"},
        {"net_threshold": 2},
    ],
)
def test_bad_params_are_rejected(bad):
    with pytest.raises(pydantic.ValidationError):
        AcneDetector.Params(**bad)


@pytest.mark.shared
@pytest.mark.parametrize("method", ["dog", "net"])
def test_real_photos_find_annotated_lesions(shared, method):
    data = shared / "data" / "acne"
    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if r["split"] == "val" and r["grade"] in "23"][:5]
    lesions = json.loads((data / "lesions.json").read_text())
    for r in rows:
        img = cv2.imread(str(data / "images" / r["image"]))
        ctx = make_context(img, skin_mask=classify_skin_pixels(img), px_per_mm=None)
        res = AcneDetector(AcneDetector.Params(method=method, half_faces_in_roi=1)).analyze(ctx)
        assert res.measurements["method"] == method
        assert 0 <= res.score <= 100 and res.measurements["grade"] in (0, 1, 2, 3)
        markers = np.array(res.evidence.markers).reshape(-1, 3)
        ann = np.array(lesions[r["image"]])
        assert len(markers) > 0
        # Markers stay on the photo, and a fair share of them sit on annotated lesions.
        assert markers[:, :2].min() >= 0 and markers[:, :2].max() < 512
        near = np.linalg.norm(markers[:, None, :2] - ann[None, :, :2], axis=2).min(axis=1) <= 10
        assert near.mean() >= 0.3, (r["image"], near.mean())


def test_registered_through_entry_point():
    from harerun.host import PluginHost

    reg = PluginHost(autoload=True).detectors["acne"]
    assert reg.cls is AcneDetector
    assert reg.package.replace("_", "-").lower() == "harerun-acne"


def test_a_face_too_small_in_its_photo_is_skipped_with_the_size_it_needs():
    """A 512-px ROI drawn from a 128-px face (magnified 4x): lesions of 1-3 mm are not in the photo."""
    img = synthetic_skin(512)
    small = AcneDetector().analyze(make_context(img, scale=0.25))
    assert small.status == "skipped" and small.score is None
    assert small.measurements["magnification"] == 4.0
    assert "128 px across" in small.message and "at least 146 px" in small.message
    assert AcneDetector().analyze(make_context(img, scale=0.3)).status == "ok"  # x3.3: within the limit
    assert AcneDetector(AcneDetector.Params(max_magnification=5)).analyze(make_context(img, scale=0.25)).status == "ok"
