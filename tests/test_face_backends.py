"""Face-detection backends and ``detect_faces``: registration, coordinates, retries, fallback."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pydantic
import pytest

from harerun.errors import PipelineError
from harerun.face import Face, ModelMissing, mediapipe
from harerun.face.backends import HaarBackend, YuNetBackend, forget_model_lookups, yunet_lookup, yunet_model_path
from harerun.face.config import FaceConfig
from harerun.face.eyes import find_tilted_eyes
from harerun.face.roi import apply_affine
from harerun.face.search import _rotated_copy, backend_instance, detect_faces
from harerun.host import PluginHost

#: The astronaut's face in skimage's astronaut photo (x, y, w, h), checked by eye.
ASTRONAUT_FACE = (175, 62, 95, 115)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


@pytest.fixture(scope="module")
def host():
    return PluginHost(autoload=False)


@pytest.fixture
def no_yunet(monkeypatch, tmp_path):
    monkeypatch.setenv("HARERUN_YUNET_MODEL", str(tmp_path / "missing.onnx"))
    assert yunet_model_path() is None


@pytest.fixture
def with_yunet(monkeypatch, shared):
    model = shared / "models" / "face_detection_yunet_2023mar.onnx"
    if not model.is_file():
        pytest.skip(f"{model} not found")
    monkeypatch.setenv("HARERUN_YUNET_MODEL", str(model))


def test_builtin_backends_are_registered(host):
    assert {"haar", "yunet"} <= set(host.face_backends)
    assert host.face_backends["haar"].cls is HaarBackend
    assert host.face_backends["haar"].package == "harerun"


def test_haar_finds_the_astronaut(astronaut_bgr):
    faces = HaarBackend().detect(astronaut_bgr)
    assert len(faces) == 1
    f = faces[0]
    assert iou(f.box, ASTRONAUT_FACE) > 0.5
    assert set(f.landmarks) == {"left_eye", "right_eye"}
    assert f.landmarks["left_eye"][0] < f.landmarks["right_eye"][0]
    assert 0.75 <= f.score <= 1.0
    assert f.backend == "haar"


def test_haar_params_are_validated():
    with pytest.raises(pydantic.ValidationError):
        HaarBackend.Params(scale_factor=1.0)
    with pytest.raises(pydantic.ValidationError):
        HaarBackend.Params(typo=1)


def test_bad_backend_params_name_the_config_key(host):
    with pytest.raises(PipelineError, match="face.backend_params.haar"):
        backend_instance(HaarBackend, {"min_neighbors": -1})


def test_unknown_backend_is_a_clear_error(host, astronaut_bgr):
    from harerun.errors import PluginError

    with pytest.raises(PluginError, match="did you mean 'haar'"):
        detect_faces(astronaut_bgr, face_cfg=FaceConfig(backend="haarr"), host=host)


def test_detection_on_downscaled_copy_maps_back(host, astronaut_bgr):
    big = cv2.resize(astronaut_bgr, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536 px, detected at 640
    faces, used, _ = detect_faces(big, face_cfg=FaceConfig(backend="haar"), host=host)
    assert used == "haar" and len(faces) == 1
    assert iou(faces[0].box, [3 * v for v in ASTRONAUT_FACE]) > 0.5


def test_close_up_retry_maps_back_to_the_photo(host, astronaut_bgr):
    # A close-up: the face fills the frame edge to edge, so the cascade's window never fits it.
    x, y, w, h = ASTRONAUT_FACE
    close_up = cv2.resize(astronaut_bgr[y + 20 : y + h - 10, x + 5 : x + w - 5], None, fx=4, fy=4)
    no_retry = FaceConfig(backend="haar", close_up_retry=False, rotation_retry=False)
    assert detect_faces(close_up, face_cfg=no_retry, host=host)[0] == []
    faces, _, _ = detect_faces(close_up, face_cfg=FaceConfig(backend="haar", rotation_retry=False), host=host)
    assert len(faces) == 1
    fx, fy, fw, fh = faces[0].box
    ch, cw = close_up.shape[:2]
    # Clipped to the photo and centred on it (the face is the whole photo).
    assert fx >= 0 and fy >= 0 and fx + fw <= cw and fy + fh <= ch
    assert abs(fx + fw / 2 - cw / 2) < 0.2 * cw and abs(fy + fh / 2 - ch / 2) < 0.25 * ch


def test_rotated_copy_maps_back_to_the_face(host, astronaut_bgr):
    m = cv2.getRotationMatrix2D((224, 115), -30, 1.0)
    tilted = cv2.warpAffine(astronaut_bgr, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    plain = FaceConfig(backend="haar", rotation_retry=False)
    assert detect_faces(tilted, face_cfg=plain, host=host)[0] == []  # Haar misses this 30 degree roll
    faces, _, _ = detect_faces(tilted, face_cfg=FaceConfig(backend="haar"), host=host)
    assert len(faces) >= 1
    f = faces[0]
    cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
    # The face centre of the original rotated by the same 30 degrees.
    true_c = m @ np.array([222.5, 119.5, 1.0])
    assert np.hypot(cx - true_c[0], cy - true_c[1]) < 20
    assert f.angle == 25.0


def test_eyes_of_a_rolled_head_are_found_on_turned_crops(host, astronaut_bgr):
    upright = detect_faces(astronaut_bgr, face_cfg=FaceConfig(backend="haar"), host=host)[0][0]
    eyes = np.array([upright.landmarks["left_eye"], upright.landmarks["right_eye"]])
    m = cv2.getRotationMatrix2D((224, 115), 30, 1.0)
    tilted = cv2.warpAffine(astronaut_bgr, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    # The upright box of the turned face, without eyes: what the cascade gives for a rolled head.
    (cx, cy), side = (
        apply_affine(m, [(upright.box[0] + upright.box[2] / 2, upright.box[1] + upright.box[3] / 2)])[0],
        upright.box[2],
    )
    bare = Face((cx - side / 2, cy - side / 2, side, side), 0.6, {}, "haar")
    found = find_tilted_eyes(tilted, bare)
    got = np.array([found.landmarks["left_eye"], found.landmarks["right_eye"]])
    assert np.hypot(*(got - apply_affine(m, eyes)).T).max() < 8
    assert find_tilted_eyes(np.full_like(tilted, 128), bare).landmarks == {}  # nothing there: unchanged


def test_an_upright_face_with_a_hidden_eye_stays_upright(host, astronaut_bgr, monkeypatch):
    # One eye painted over: no eye pair on turned crops either, so the turned copies are
    # searched - only around the face, frontal cascade only - and the upright face is kept.
    from harerun.face import search as face_search

    rx, ry = 247, 103  # the astronaut's image-right eye
    hidden = astronaut_bgr.copy()
    cv2.circle(hidden, (rx, ry), 12, tuple(int(v) for v in astronaut_bgr[ry + 25, rx]), -1)
    searched = []
    real = face_search._rotated_search
    monkeypatch.setattr(
        face_search, "_rotated_search", lambda b, img, *a, **k: searched.append(img.shape) or real(b, img, *a, **k)
    )
    faces, _, _ = detect_faces(hidden, face_cfg=FaceConfig(backend="haar"), host=host)
    assert len(faces) == 1 and iou(faces[0].box, ASTRONAUT_FACE) > 0.5 and faces[0].angle == 0.0
    assert set(faces[0].landmarks) == {"left_eye"}
    assert len(searched) == 1 and max(searched[0][:2]) < 0.7 * max(hidden.shape[:2])  # the surroundings only


def test_rotated_copy_keeps_the_corners():
    img = np.zeros((100, 200, 3), np.uint8)
    rotated, m = _rotated_copy(img, 25.0)
    corners = np.array([[0, 0, 1], [199, 0, 1], [199, 99, 1], [0, 99, 1]], float) @ m.T
    assert corners.min() >= -0.5
    assert (corners[:, 0] <= rotated.shape[1]).all() and (corners[:, 1] <= rotated.shape[0]).all()


def test_face_mapped():
    f = Face((10, 20, 30, 40), 0.9, {"nose": (25.0, 40.0)}, "x", 5.0)
    g = f.mapped(2.0, 1.0, -1.0)
    assert g.box == (21.0, 39.0, 60.0, 80.0) and g.landmarks["nose"] == (51.0, 79.0) and g.angle == 5.0


def test_yunet_model_missing_raises(no_yunet):
    with pytest.raises(ModelMissing, match="HARERUN_YUNET_MODEL"):
        YuNetBackend()


def test_yunet_requested_but_missing_falls_back_to_haar(host, astronaut_bgr, no_yunet):
    faces, used, warnings = detect_faces(astronaut_bgr, face_cfg=FaceConfig(backend="yunet"), host=host)
    assert used == "haar"
    assert len(faces) == 1
    assert warnings == ["FACE_BACKEND_FALLBACK"]


def test_auto_is_blazeface_on_a_fresh_install(host, astronaut_bgr, no_yunet):
    faces, used, warnings = detect_faces(astronaut_bgr, face_cfg=FaceConfig(), host=host)
    assert used == "blazeface" and warnings == [] and len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_FACE) > 0.5


def test_auto_without_any_model_is_haar_without_warning(host, astronaut_bgr, no_yunet, monkeypatch):
    monkeypatch.setattr(mediapipe, "available", lambda: False)
    faces, used, warnings = detect_faces(astronaut_bgr, face_cfg=FaceConfig(), host=host)
    assert used == "haar" and warnings == [] and len(faces) == 1


def test_model_store_lookup_checks_the_file(monkeypatch, tmp_path):
    monkeypatch.delenv("HARERUN_YUNET_MODEL", raising=False)
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache"))
    forget_model_lookups()
    assert yunet_model_path() is None
    (tmp_path / "face_detection_yunet_2023mar.onnx").write_bytes(b"not a model")
    forget_model_lookups()
    path, why = yunet_lookup()
    assert path is None and "checksum" in why
    forget_model_lookups()


@pytest.mark.shared
def test_model_store_finds_the_real_model(monkeypatch, tmp_path, shared):
    monkeypatch.delenv("HARERUN_YUNET_MODEL", raising=False)
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(shared / "models"))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache"))
    forget_model_lookups()
    assert yunet_model_path() == shared / "models" / "face_detection_yunet_2023mar.onnx"
    forget_model_lookups()


@pytest.mark.shared
def test_auto_uses_yunet_without_mediapipe(host, astronaut_bgr, with_yunet, monkeypatch):
    monkeypatch.setattr(mediapipe, "available", lambda: False)
    faces, used, warnings = detect_faces(astronaut_bgr, face_cfg=FaceConfig(), host=host)
    assert used == "yunet" and warnings == []
    f = faces[0]
    assert iou(f.box, ASTRONAUT_FACE) > 0.5
    assert set(f.landmarks) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert f.landmarks["left_eye"][0] < f.landmarks["right_eye"][0]
    assert f.landmarks["mouth_left"][0] < f.landmarks["mouth_right"][0]
    assert f.landmarks["left_eye"][1] < f.landmarks["nose"][1] < f.landmarks["mouth_left"][1]


def _recall(shared, backend) -> tuple[int, int, int]:
    sys_path = shared / "data/faces/dlib_examples"
    boxes = json.loads((sys_path / "boxes.json").read_text())
    tp = fa = total = 0
    for name, truth in boxes.items():
        img = cv2.imread(str(sys_path / name))
        h, w = img.shape[:2]
        s = min(1.0, 640 / max(h, w))
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
        found = [f.mapped(1 / s).box for f in backend.detect(small)]
        used = set()
        for t in truth:
            best = max(range(len(found)), key=lambda i: iou(found[i], t), default=None)
            if best is not None and best not in used and iou(found[best], t) >= 0.3:
                used.add(best)
        tp += len(used)
        fa += len(found) - len(used)
        total += len(truth)
    return tp, fa, total


@pytest.mark.shared
def test_haar_recall_on_dlib_examples(shared):
    tp, fa, total = _recall(shared, HaarBackend())
    assert total == 43
    assert tp >= 36 and fa <= 6, (tp, fa)


@pytest.mark.shared
def test_yunet_recall_on_dlib_examples(shared, with_yunet):
    tp, fa, total = _recall(shared, YuNetBackend())
    assert tp >= 42 and fa <= 2, (tp, fa)


def test_grey_and_bgra_photos_work(host, astronaut_bgr):
    grey = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)
    for img in (grey, bgra):
        faces, _, _ = detect_faces(img, face_cfg=FaceConfig(backend="haar"), host=host)
        assert len(faces) == 1 and iou(faces[0].box, ASTRONAUT_FACE) > 0.5


def test_coarse_first_look_agrees_with_the_full_search(host, astronaut_bgr):
    big = cv2.resize(astronaut_bgr, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    coarse, _, _ = detect_faces(big, face_cfg=FaceConfig(backend="haar"), host=host)
    full, _, _ = detect_faces(big, face_cfg=FaceConfig(backend="haar", coarse_side=0), host=host)
    assert len(coarse) == len(full) == 1
    assert iou(coarse[0].box, full[0].box) > 0.7


@pytest.mark.shared
def test_analysis_search_stops_early_but_keeps_every_face_it_needs(host, shared, with_yunet, monkeypatch):
    # With min_face_px the search may stop at the coarse copy: fewer pixels searched, and
    # every face of that size is still found (a listing searches at full detection size).
    calls = []
    real = YuNetBackend.detect
    monkeypatch.setattr(YuNetBackend, "detect", lambda self, img: calls.append(img.shape) or real(self, img))
    folder = shared / "data/faces/dlib_examples"
    boxes = json.loads((folder / "boxes.json").read_text())
    cfg = FaceConfig(backend="yunet")
    passes = {}
    big_total = big_found = big_listed = 0
    for mode, min_px in (("listing", None), ("analysis", 48)):
        calls.clear()
        for name, truth in boxes.items():
            faces, _, _ = detect_faces(cv2.imread(str(folder / name)), face_cfg=cfg, host=host, min_face_px=min_px)
            for t in (t for t in truth if min(t[2], t[3]) >= 48):
                hit = any(iou(f.box, t) >= 0.3 for f in faces)
                if mode == "analysis":
                    big_total, big_found = big_total + 1, big_found + hit
                else:
                    big_listed += hit
        passes[mode] = sum(h * w for h, w, *_ in calls)
    assert big_total >= 10 and big_found == big_listed == big_total
    assert passes["analysis"] < 0.5 * passes["listing"], passes  # pixels searched


def test_fallback_is_reported_even_without_a_face(host, no_yunet):
    from harerun.face.config import QualityConfig
    from harerun.face.stage import run_face_stage

    st = run_face_stage(
        np.full((200, 200, 3), 120, np.uint8),
        face_cfg=FaceConfig(backend="yunet"),
        quality_cfg=QualityConfig(),
        host=host,
    )
    assert st.face is None and st.quality.issues == ["NO_FACE"]
    assert st.quality.metrics["backend_used"] == "haar"
    assert st.quality.metrics["warnings"] == ["FACE_BACKEND_FALLBACK"]
