"""Train/serve parity: the trainer's input for a photo is bit for bit what the plugin feeds the network.

The training loader (``training.load_split``, framing ``face_roi``) and the product path
(``Engine().run(path)`` -> ``MLClassifierDetector.analyze``) must give the same tensor for
the same photo. The network is replaced by a spy that records what it is fed, so no
model file and no TensorFlow are needed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from harerun.engine import Engine
from harerun.modelstore import ResolvedModel
from harerun.testing import make_context, synthetic_skin
from harerun_ml_classifier import runtime
from harerun_ml_classifier.algorithm import (
    CHANNELS,
    FRAMING,
    INPUT_SIZE,
    circles_to_roi,
    declaration_problems,
    model_input,
    network_data_format,
)
from harerun_ml_classifier.plugin import MLClassifierDetector, MLClassifierParams
from harerun_ml_classifier.training import face_stage_rois, load_split


class SpyNetwork:
    """Stands in for a loaded model: records every input and answers a fixed, valid output."""

    def __init__(self, *, declared: dict | None = None, size: int = INPUT_SIZE):
        self.fed: list[np.ndarray] = []
        self.model = runtime.LoadedModel(
            ResolvedModel("acne-grade", "spy", Path("spy.tflite"), "local", "0" * 64, 0, load_ms=0.1),
            "tflite",
            size,
            len(CHANNELS),
            self.run,
            declared=dict(declared or {}),
        )

    def run(self, x: np.ndarray):
        self.fed.append(np.array(x, copy=True))
        g = self.model.input_size // 8
        return np.array([0.4, 0.3, 0.2, 0.1]), np.full((g, g), 0.01)


@pytest.fixture
def spy(monkeypatch):
    net = SpyNetwork(declared={"framing": FRAMING, "channels": list(CHANNELS)})
    monkeypatch.setattr(runtime, "get_model", lambda *a, **k: net.model)
    return net


def _one_photo_folder(
    root: Path, image_bgr: np.ndarray, circles: list[list[float]], *, name: str = "photo.png", grade: int = 1
) -> Path:
    data = root / "data"
    (data / "images").mkdir(parents=True)
    assert cv2.imwrite(str(data / "images" / name), image_bgr)
    with open(data / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "grade", "split"])
        w.writeheader()
        w.writerow({"image": name, "grade": grade, "split": "train"})
    (data / "lesions.json").write_text(json.dumps({name: circles}))
    return data


def _served_input(spy: SpyNetwork, path: Path) -> np.ndarray:
    """What the plugin feeds the network for this photo through the product path (the default pipeline)."""
    result = Engine().run(str(path)).result
    ml = result.results["ml_classifier"]
    assert ml.status == "ok", ml.message
    assert ml.measurements["model_framing"] == FRAMING and ml.message is None
    assert len(spy.fed) == 2  # the face, then its mirror (flip_tta)
    assert np.array_equal(spy.fed[1], spy.fed[0][:, ::-1])
    return spy.fed[0]


def _assert_parity(tmp_path: Path, spy: SpyNetwork, data: Path, name: str) -> None:
    split = load_split(data, "train", size=INPUT_SIZE, cache_dir=tmp_path / "cache", log=lambda *_: None)
    assert split.names == [name] and split.skipped == []
    served = _served_input(spy, data / "images" / name)
    trained = split.images[0]
    assert trained.shape == served.shape == (INPUT_SIZE, INPUT_SIZE, len(CHANNELS))
    assert trained.dtype == served.dtype == np.float32
    assert np.array_equal(trained, served)

    # the second load comes from the cache and is still the same tensor
    again = load_split(data, "train", size=INPUT_SIZE, cache_dir=tmp_path / "cache", log=lambda *_: None)
    assert np.array_equal(again.images[0], served)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_training_input_equals_the_served_input_on_the_astronaut(tmp_path, spy, astronaut_bgr):
    eye = [205.0, 100.0, 3.0]  # photo pixels, near the astronaut's right eye
    data = _one_photo_folder(tmp_path, astronaut_bgr, [eye])
    _assert_parity(tmp_path, spy, data, "photo.png")


@pytest.mark.shared
def test_training_input_equals_the_served_input_on_an_acne_photo(tmp_path, spy, shared):
    src = shared / "data" / "acne"
    with open(src / "labels.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["split"] == "val" and int(r["grade"]) == 2)
    lesions = json.loads((src / "lesions.json").read_text())[row["image"]]
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / row["image"]).write_bytes((src / "images" / row["image"]).read_bytes())  # the same JPEG bytes
    with open(data / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "grade", "split"])
        w.writeheader()
        w.writerow({"image": row["image"], "grade": row["grade"], "split": "train"})
    (data / "lesions.json").write_text(json.dumps({row["image"]: lesions}))
    _assert_parity(tmp_path, spy, data, row["image"])


def test_lesion_circles_land_on_the_same_skin_in_the_roi(tmp_path, astronaut_bgr):
    photo = astronaut_bgr.copy()
    spots = [[195.0, 125.0, 2.0], [255.0, 120.0, 3.0], [226.0, 150.0, 2.0]]  # cheeks and chin (face box 173,68,106,106)
    for x, y, r in spots:
        cv2.circle(photo, (int(x), int(y)), int(r), (0, 255, 0), -1)
    data = _one_photo_folder(tmp_path, photo, spots)
    fr = face_stage_rois(data, "train", cache_dir=tmp_path / "cache", log=lambda *_: None)
    roi, m, circles = fr.rois[0], fr.roi_to_image[0], fr.circles[0]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # ROI px -> photo px
    for (x, y, r), (rx, ry, rr) in zip(spots, circles, strict=True):
        assert rr == pytest.approx(r / scale)
        assert np.allclose(m[:, :2] @ [rx, ry] + m[:, 2], [x, y], atol=1e-6)  # back to the photo exactly
        b, g, red = roi[int(round(ry)), int(round(rx))]
        assert g > 200 and b < 80 and red < 80  # the painted spot is under the mapped centre


def test_circles_to_roi_inverts_a_similarity():
    angle, s, t = np.deg2rad(20), 1.7, np.array([30.0, -12.0])
    roi_to_image = np.array(
        [[s * np.cos(angle), -s * np.sin(angle), t[0]], [s * np.sin(angle), s * np.cos(angle), t[1]]]
    )
    roi_pts = np.array([[10.0, 20.0, 2.0], [300.0, 100.0, 5.0]])
    photo = np.column_stack([roi_pts[:, :2] @ roi_to_image[:, :2].T + roi_to_image[:, 2], roi_pts[:, 2] * s])
    assert np.allclose(circles_to_roi(photo, roi_to_image), roi_pts)
    assert circles_to_roi(np.zeros((0, 3)), roi_to_image).shape == (0, 3)


def test_a_photo_without_a_face_is_left_out_and_counted(tmp_path, astronaut_bgr):
    data = _one_photo_folder(tmp_path, synthetic_skin(512), [[100.0, 100.0, 3.0]], name="skin.png")
    assert cv2.imwrite(str(data / "images" / "face.png"), astronaut_bgr)
    with open(data / "labels.csv", "a", newline="") as f:
        f.write("face.png,2,train\n")
    split = load_split(data, "train", size=INPUT_SIZE, cache_dir=tmp_path / "cache", log=lambda *_: None)
    assert split.names == ["face.png"] and split.skipped == ["skin.png"] and list(split.grades) == [2]
    again = face_stage_rois(data, "train", cache_dir=tmp_path / "cache", log=lambda *_: None)  # from the cache
    assert again.skipped == {"skin.png": "no face (NO_FACE)"} and again.names == ["face.png"]
    only_skin = _one_photo_folder(tmp_path / "b", synthetic_skin(512), [])
    with pytest.raises(ValueError, match="no usable face"):
        face_stage_rois(only_skin, "train", cache_dir=tmp_path / "cache", log=lambda *_: None)


def test_model_input_reads_only_the_roi():
    ctx = make_context(synthetic_skin(512))
    assert np.array_equal(model_input(ctx), model_input(type("Roi", (), {"image": ctx.image})()))


# -- the model's declaration ------------------------------------------------------------------


def test_declaration_problems():
    assert declaration_problems(None) == {} and declaration_problems({}) == {}
    assert declaration_problems({"framing": "face_roi", "channels": list(CHANNELS), "size": 128}, size=128) == {}
    assert declaration_problems({"channels": list(CHANNELS[:3])}) == {}  # an RGB-only model is fed the first three
    p = declaration_problems({"framing": "letterbox_photo", "channels": ["L", "a", "b"], "size": 256}, size=128)
    assert set(p) == {"framing", "channels", "size"} and "letterbox_photo" in p["framing"]
    nfd = network_data_format()["inputs"]["image"]
    assert nfd["framing"] == FRAMING and nfd["shape"] == [INPUT_SIZE, INPUT_SIZE, len(CHANNELS)]
    assert [nfd["channel_def"][str(i)] for i in range(len(CHANNELS))] == list(CHANNELS)


@pytest.mark.parametrize("check", ["warn", "refuse"])
def test_a_model_trained_on_another_framing_is_reported_or_refused(monkeypatch, check):
    net = SpyNetwork(declared={"framing": "letterbox_photo", "source": "manifest"})
    monkeypatch.setattr(runtime, "get_model", lambda *a, **k: net.model)
    r = MLClassifierDetector(MLClassifierParams(framing_check=check)).analyze(make_context(synthetic_skin(512)))
    assert "letterbox_photo" in r.message and FRAMING in r.message
    if check == "warn":
        assert r.status == "ok" and r.measurements["model_framing"] == "letterbox_photo" and len(net.fed) == 2
    else:
        assert r.status == "unavailable" and r.score is None and net.fed == []
        assert "framing_check: warn" in r.message


def test_a_model_declaring_other_channels_is_refused(monkeypatch):
    net = SpyNetwork(declared={"framing": FRAMING, "channels": ["L", "a", "b", "x", "y", "z", "w"]})
    monkeypatch.setattr(runtime, "get_model", lambda *a, **k: net.model)
    r = MLClassifierDetector(MLClassifierParams()).analyze(make_context(synthetic_skin(512)))
    assert r.status == "unavailable" and "channels" in r.message and net.fed == []


def test_an_undeclared_model_runs_and_says_so(monkeypatch):
    net = SpyNetwork(declared={})
    monkeypatch.setattr(runtime, "get_model", lambda *a, **k: net.model)
    r = MLClassifierDetector(MLClassifierParams()).analyze(make_context(synthetic_skin(512)))
    assert r.status == "ok" and r.measurements["model_framing"] == "undeclared" and r.message is None


def test_declaration_is_read_from_the_manifest_and_the_metadata_file(tmp_path):
    from harerun.modelstore import ModelStore

    models = tmp_path / "models"
    models.mkdir()
    f = models / "acne-grade-7.tflite"
    f.write_bytes(b"x")
    (models / "models.yaml").write_text(
        "models:\n- name: acne-grade\n  version: '7'\n  file: acne-grade-7.tflite\n  framing: letterbox_photo\n"
    )
    store = ModelStore(models, tmp_path / "cache", manifests=[models / "models.yaml"])
    resolved = ResolvedModel("acne-grade", "7", f, "local", "0" * 64, 1)
    assert runtime.declaration(resolved, store=store) == {"framing": "letterbox_photo", "source": "manifest"}
    meta = {"framing": "face_roi", "network_data_format": network_data_format()}
    (models / "acne-grade-7.metadata.json").write_text(json.dumps(meta))
    d = runtime.declaration(resolved, store=store)  # the manifest wins; the file adds what it lacks
    assert d["framing"] == "letterbox_photo" and d["channels"] == list(CHANNELS) and d["size"] == INPUT_SIZE
    assert runtime.declaration(resolved)["framing"] == "face_roi"  # an explicit path: the file only
