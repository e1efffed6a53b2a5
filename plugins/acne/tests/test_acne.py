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


@pytest.mark.parametrize("shape", [(64, 96), (37, 50), (40, 41)])
def test_half_size_planes_are_opencvs_area_resize(shape):
    # Bit for bit: the fast path (even sizes, also on a crop view) and the fallback.
    rng = np.random.default_rng(1)
    big = (rng.normal(0, 40, (shape[0] + 8, shape[1] + 8, 3)) * rng.uniform(0, 100, (1, 1, 3))).astype(np.float32)
    big[:4, :4] = -0.0  # a block of negative zeros: OpenCV gives +0.0
    for image in (big[: shape[0], : shape[1]], big[4 : 4 + shape[0], 2 : 2 + shape[1]].copy()):
        ref = cv2.split(cv2.resize(image, (shape[1] // 2, shape[0] // 2), interpolation=cv2.INTER_AREA))
        got = algorithm.half_size_planes(image)
        assert [c.tobytes() for c in got] == [c.tobytes() for c in ref]
    xs, ys = rng.integers(0, shape[1] // 2, 20), rng.integers(0, shape[0] // 2, 20)
    stacked = algorithm.gaussian_at(cv2.merge(ref), xs, ys, 1.2)
    assert algorithm.gaussian_at(got, xs, ys, 1.2).tobytes() == stacked.tobytes()


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


def test_skin_mask_drops_letterbox_bars():
    img = np.zeros((512, 512, 3), np.uint8)
    img[:, 40:472] = synthetic_skin()[:, 40:472]
    mask = algorithm.skin_mask_ycrcb(img)
    assert mask[:, :35].max() == 0 and mask[:, 477:].max() == 0
    assert (mask[:, 60:452] > 0).mean() > 0.95


@pytest.mark.shared
@pytest.mark.parametrize("method", ["dog", "net"])
def test_real_photos_find_annotated_lesions(shared, method):
    data = shared / "data" / "acne"
    rows = [r for r in csv.DictReader(open(data / "labels.csv")) if r["split"] == "val" and r["grade"] in "23"][:5]
    lesions = json.loads((data / "lesions.json").read_text())
    for r in rows:
        img = cv2.imread(str(data / "images" / r["image"]))
        ctx = make_context(img, skin_mask=algorithm.skin_mask_ycrcb(img), px_per_mm=None)
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
