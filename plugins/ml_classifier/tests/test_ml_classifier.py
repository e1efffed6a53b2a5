"""ml_classifier: input maps, density targets, augmentation, metrics, the plugin, training smoke run."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from harerun.testing import SKIN_BGR, make_context, synthetic_skin
from harerun_ml_classifier.algorithm import (
    CHANNELS,
    augment,
    class_weights,
    classification_metrics,
    density_target,
    lesion_feature_maps,
    soft_labels,
    zone_cell_fractions,
    zone_counts,
)
from harerun_ml_classifier.plugin import MLClassifierDetector, MLClassifierParams

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "models" / "acne-grade-3.tflite"  # the default model (acne-grade@3)
LESIONS = [(100, 120), (300, 200), (420, 400), (200, 380)]


def _skin_with_lesions(points=LESIONS, *, radius=4, seed=0) -> np.ndarray:
    img = synthetic_skin(512, seed=seed)
    for x, y in points:
        cv2.circle(img, (x, y), radius, (90, 90, 200), -1, lineType=cv2.LINE_AA)  # red papule (BGR)
    return img


def _tf():
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed")


@pytest.fixture
def isolated_store(tmp_path, monkeypatch):
    """A model store with nothing in it (no S3), so only explicit paths and the test's models count."""
    from harerun_ml_classifier import runtime

    monkeypatch.setenv("HARERUN_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HARERUN_S3_BUCKET", raising=False)
    runtime.clear_cache()
    yield tmp_path
    runtime.clear_cache()


# -- algorithm ------------------------------------------------------------------------


def test_feature_maps_light_up_exactly_at_red_lesions():
    x = lesion_feature_maps(_skin_with_lesions())
    assert x.shape == (128, 128, len(CHANNELS)) and x.dtype == np.float32
    red = x[..., CHANNELS.index("redness_blob")]
    peaks = np.argwhere(red > 0.5 * red.max())
    for px, py in LESIONS:  # every lesion lights the cell it is in (512 -> 128: /4)
        assert red[py // 4, px // 4] > 0.5 * red.max()
    assert all(min(np.hypot(c - px / 4, r - py / 4) for px, py in LESIONS) <= 2.5 for r, c in peaks)
    clean = lesion_feature_maps(synthetic_skin(512))
    assert clean[..., 3:].max() < 0.3 * red.max()  # camera-like noise stays well below a lesion
    assert np.allclose(x[..., :3].mean((0, 1)), np.array(SKIN_BGR[::-1]) / 255, atol=0.02)  # RGB first, 0..1


def test_feature_maps_ignore_black_bars():
    img = _skin_with_lesions()
    img[:, :40] = 0
    x = lesion_feature_maps(img)
    assert x[:, :10, 3:].max() == 0


def _direct_feature_maps(image_bgr, *, size=128, feature_size=256):
    """The training-time definition of the input, written directly (the form the model was trained on)."""
    h, w = image_bgr.shape[:2]
    big = (
        image_bgr
        if (h, w) == (feature_size, feature_size)
        else cv2.resize(
            image_bgr,
            (feature_size, feature_size),
            interpolation=cv2.INTER_AREA if h > feature_size else cv2.INTER_LINEAR,
        )
    )
    lab = cv2.cvtColor(np.ascontiguousarray(big, dtype=np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
    L = lab[..., 0] * (100.0 / 255.0)
    a = lab[..., 1] - 128.0
    valid = cv2.erode((L > 8).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    a_bg = cv2.GaussianBlur(a, (0, 0), 3)
    l_bg = cv2.GaussianBlur(L, (0, 0), 3)
    maps = cv2.merge(
        [
            np.clip((a - a_bg) * (1 / 12.0), 0, 1) * valid,
            np.clip((cv2.GaussianBlur(a, (0, 0), 0.75) - cv2.GaussianBlur(a, (0, 0), 2)) * (1 / 6.0), 0, 1) * valid,
            np.clip((l_bg - L) * (1 / 15.0), 0, 1) * valid,
            np.clip((L - l_bg) * (1 / 15.0), 0, 1) * valid,
        ]
    )
    k = feature_size // size
    pooled = cv2.dilate(maps, np.ones((k, k), np.uint8), anchor=(0, 0))[::k, ::k] if k > 1 else maps
    rgb = cv2.cvtColor(cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.concatenate([rgb.astype(np.float32) * (1 / 255.0), pooled], axis=-1)


@pytest.mark.parametrize(
    "shape,size,feature_size",
    [
        ((512, 512), 128, 256),
        ((256, 256), 128, 256),
        ((300, 420), 128, 256),
        ((100, 140), 128, 256),
        ((512, 512), 64, 256),
        ((512, 512), 256, 256),
    ],
)
def test_feature_maps_are_bit_identical_to_the_direct_form(shape, size, feature_size):
    rng = np.random.default_rng(sum(shape) + size)
    img = cv2.resize(_skin_with_lesions(), shape[::-1], interpolation=cv2.INTER_AREA)
    img[:, : shape[1] // 10] = 0  # letterbox bar
    img[-20:] = rng.integers(0, 40, (20, shape[1], 3), dtype=np.uint8)  # dark noise around the L* > 8 limit
    img[: shape[0] // 4, -shape[1] // 4 :] = rng.integers(0, 256, (shape[0] // 4, shape[1] // 4, 3), dtype=np.uint8)
    new = lesion_feature_maps(img, size=size, feature_size=feature_size)
    old = _direct_feature_maps(img, size=size, feature_size=feature_size)
    assert new.shape == old.shape and new.dtype == old.dtype
    assert np.array_equal(new.view(np.uint32), old.view(np.uint32))  # same bits, signed zeros included


@pytest.mark.parametrize("roi,grid", [(512, 16), (512, 8), (384, 16), (400, 16), (96, 5)])
def test_zone_cell_fractions_equal_the_area_resize(roi, grid):
    rng = np.random.default_rng(roi + grid)
    masks = [np.zeros((roi, roi), np.uint8), np.full((roi, roi), 255, np.uint8)]
    for _ in range(6):
        m = np.zeros((roi, roi), np.uint8)
        cv2.circle(m, tuple(int(v) for v in rng.integers(0, roi, 2)), int(rng.integers(1, roi // 2)), 255, -1)
        m[rng.random((roi, roi)) > 0.997] = 7  # any non-zero value is inside
        masks.append(m)
    for m in masks:
        expected = cv2.resize((m > 0).astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)
        assert np.array_equal(zone_cell_fractions(m, (grid, grid)), expected)
        x, y, w, h = cv2.boundingRect(m)
        for bounds in ((x, y, w, h), (max(x - 3, 0), max(y - 5, 0), w + 9, h + 7), (0, 0, roi, roi)):
            assert np.array_equal(zone_cell_fractions(m, (grid, grid), bounds=bounds), expected)


def test_density_target_sums_to_the_count_at_the_right_place():
    circles = np.array([[10, 10, 2], [100, 60, 3], [100, 60, 3], [600, 10, 2]], float)  # last one outside
    d = density_target(circles, image_size=128, grid=16, sigma=1.0)
    assert d.shape == (16, 16) and d.sum() == pytest.approx(3.0, rel=1e-5)
    assert np.unravel_index(d.argmax(), d.shape) == (60 // 8, 100 // 8)
    assert density_target(np.zeros((0, 3)), image_size=128, grid=16).sum() == 0


def test_augment_moves_circles_with_the_image():
    rng = np.random.default_rng(3)
    img = np.zeros((128, 128, 7), np.float32)
    img[..., :3] = 0.5
    spot = np.zeros((128, 128), np.float32)
    cv2.circle(spot, (40, 70), 3, 1.0, -1)
    img[..., 3] = spot
    for _ in range(5):
        out, c = augment(img, np.array([[40, 70, 3]], float), rng)
        assert out.shape == img.shape and c.shape == (1, 3)
        ys, xs = np.nonzero(out[..., 3] > 0.5)
        assert abs(xs.mean() - c[0, 0]) < 1.5 and abs(ys.mean() - c[0, 1]) < 1.5
        assert c[0, 2] >= 3.0  # zoom only enlarges


def test_soft_labels_and_class_weights():
    p = soft_labels(np.array([0, 2, 3]))
    assert np.allclose(p.sum(1), 1) and list(p.argmax(1)) == [0, 2, 3]
    assert p[1, 1] == pytest.approx(p[1, 3]) and p[1, 1] < p[1, 2]
    w = class_weights(np.array([0] * 8 + [1] * 2))
    assert w[1] > w[0] and np.mean(w[[0] * 8 + [1] * 2]) == pytest.approx(1.0)


def test_classification_metrics_known_example():
    m = classification_metrics(np.array([0, 0, 1, 1, 2, 3]), np.array([0, 1, 1, 1, 2, 2]))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"][0] == [1, 1, 0, 0] and m["confusion_matrix"][3] == [0, 0, 1, 0]
    # F1: grade0 2/3, grade1 0.8, grade2 2/3, grade3 0 -> macro over present classes
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3 + 0) / 4)


def test_zone_counts_preserve_the_total():
    d = np.zeros((16, 16), np.float32)
    d[2, 2] = 3.0
    zones = {"top_left": np.zeros((512, 512), np.uint8), "rest": np.full((512, 512), 255, np.uint8)}
    zones["top_left"][:128, :128] = 255
    zones["rest"][:128, :128] = 0
    z = zone_counts(d, zones)
    assert z["top_left"] + z["rest"] == pytest.approx(3.0, rel=1e-4) and z["top_left"] > 2.5


# -- plugin -------------------------------------------------------------------------------


def test_params_validation():
    assert MLClassifierParams().model == "acne-grade@3"
    for bad in ({"model": "Acne Grade"}, {"model": ""}, {"runtime": "onnx"}, {"threshold": 1}):
        with pytest.raises(ValidationError):
            MLClassifierParams(**bad)


def test_missing_model_is_unavailable_with_reason(isolated_store):
    det = MLClassifierDetector(MLClassifierParams(model="ghost-grade@9"))
    r = det.analyze(make_context(synthetic_skin(512)))
    assert r.status == "unavailable" and r.score is None and r.severity is None
    assert "ghost-grade@9" in r.measurements["model"] and "HARERUN_S3_BUCKET" in r.message
    r = MLClassifierDetector(MLClassifierParams(model_path=str(isolated_store / "nope.keras"))).analyze(
        make_context(synthetic_skin(512))
    )
    assert r.status == "unavailable" and "does not exist" in r.message


def test_unreadable_model_file_is_unavailable(isolated_store):
    _tf()
    bad = isolated_store / "broken.keras"
    bad.write_bytes(b"not a zip")
    r = MLClassifierDetector(MLClassifierParams(model_path=str(bad))).analyze(make_context(synthetic_skin(512)))
    assert r.status == "unavailable" and "cannot load" in r.message


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_plugin_runs_keras_and_legacy_h5_files(isolated_store, suffix):
    _tf()
    from harerun_ml_classifier.network import build_model

    path = isolated_store / f"tiny{suffix}"
    build_model(input_size=64, width=4).save(path)
    det = MLClassifierDetector(MLClassifierParams(model_path=str(path)))
    ctx = make_context(_skin_with_lesions(), offset=(30, 40), scale=2.0)
    r = det.analyze(ctx)
    assert r.status == "ok", r.message
    m = r.measurements
    probs = [m[f"p_grade_{k}"] for k in range(4)]
    # probabilities are reported to 4 decimals, so a near-tie may round to equal values
    assert abs(sum(probs) - 1) < 1e-3 and probs[m["grade"]] >= max(probs) - 1e-4 and 0 <= r.score <= 100
    assert r.score == pytest.approx(100 * m["grade_expected"] / 3, abs=0.05)
    assert m["runtime"] == "keras" and m["model_source"] == "local" and m["model_load_ms"] > 0
    assert set(m["zone_lesion_count_est"]) == set(ctx.zones)
    assert r.evidence.mask.shape == (512, 512) and r.evidence.mask.dtype == np.uint8
    json.dumps(r.model_dump(mode="json"))
    again = det.analyze(ctx)  # the model is loaded once (same load time) and gives the same answer
    assert again.measurements["model_load_ms"] == m["model_load_ms"]
    for k in range(4):  # multi-threaded CPU reductions may differ in the last bits
        assert again.measurements[f"p_grade_{k}"] == pytest.approx(m[f"p_grade_{k}"], abs=1e-3)


@pytest.mark.parametrize("version,framing", [("2", "face_roi"), ("1", "letterbox_photo")])
def test_committed_model_keras_and_tflite_agree(isolated_store, monkeypatch, version, framing):
    _tf()
    if not (MODEL.parent / f"acne-grade-{version}.tflite").is_file():
        pytest.skip(f"acne-grade-{version}.tflite not committed yet")
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(MODEL.parent))
    ctx = make_context(_skin_with_lesions())
    rt = MLClassifierDetector(MLClassifierParams(model=f"acne-grade@{version}")).analyze(ctx)  # the TFLite file
    rk = MLClassifierDetector(MLClassifierParams(model=f"acne-grade-keras@{version}")).analyze(ctx)
    assert (
        rk.status == rt.status == "ok"
        and rk.measurements["runtime"] == "keras"
        and rt.measurements["runtime"] == "tflite"
    )
    assert rt.measurements["model"] == f"acne-grade@{version}" and rt.measurements["model_source"] == "local"
    # version 1 stays loadable; its declared framing (the whole photo) is reported, not hidden
    assert rt.measurements["model_framing"] == rk.measurements["model_framing"] == framing
    assert (rt.message is None) == (framing == "face_roi") and (rk.message is None) == (framing == "face_roi")
    for k in range(4):
        assert rk.measurements[f"p_grade_{k}"] == pytest.approx(rt.measurements[f"p_grade_{k}"], abs=2e-3)


def test_flip_tta_makes_the_answer_mirror_invariant(isolated_store, monkeypatch):
    _tf()
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} not committed yet")
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(MODEL.parent))
    img = _skin_with_lesions([(100, 120), (130, 300), (160, 200), (90, 410)])  # all on the left
    det = MLClassifierDetector(MLClassifierParams())
    a, b = det.analyze(make_context(img)), det.analyze(make_context(np.ascontiguousarray(img[:, ::-1])))
    for k in range(4):
        assert a.measurements[f"p_grade_{k}"] == pytest.approx(b.measurements[f"p_grade_{k}"], abs=0.02)
    assert a.measurements["lesion_count_est"] == pytest.approx(b.measurements["lesion_count_est"], rel=0.05, abs=0.3)
    left, right = a.measurements["zone_lesion_count_est"], b.measurements["zone_lesion_count_est"]
    assert left["left_cheek"] == pytest.approx(right["right_cheek"], rel=0.1, abs=0.3)


@pytest.mark.shared
def test_real_acne_photos_rank_by_grade(shared, isolated_store, monkeypatch):
    """On val photos through the product path (Engine, default pipeline: the face ROI, as trained), the
    committed model's expected grade is higher for grade 2-3 than for grade 0."""
    from harerun.engine import Engine

    _tf()
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} not committed yet")
    monkeypatch.setenv("HARERUN_MODEL_DIR", str(MODEL.parent))
    data = shared / "data" / "acne"
    with open(data / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    engine = Engine()
    by_grade: dict[int, list[float]] = {0: [], 2: []}
    for g in by_grade:
        for r in [r for r in rows if int(r["grade"]) in ((g,) if g == 0 else (2, 3))][:12]:
            res = engine.run(str(data / "images" / r["image"])).result.results["ml_classifier"]
            assert res.status == "ok" and 0 <= res.score <= 100 and res.measurements["lesion_count_est"] >= 0
            assert res.measurements["model"] == "acne-grade@3" and res.measurements["model_framing"] == "face_roi"
            by_grade[g].append(res.measurements["grade_expected"])
    assert np.mean(by_grade[2]) > np.mean(by_grade[0])


def test_importing_the_plugin_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, harerun_ml_classifier.plugin, harerun_ml_classifier.runtime; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'ai_edge_litert') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_discovery():
    from harerun.host import PluginHost

    reg = PluginHost(autoload=True).detectors["ml_classifier"]
    assert reg.cls is MLClassifierDetector and reg.package == "harerun-ml-classifier"


def test_train_command_is_this_plugins_and_says_what_data_folder_it_needs(tmp_path, capsys, monkeypatch):
    from harerun import cli
    from harerun.host import PluginHost

    assert PluginHost(autoload=True).commands()["train acne-grade"].package == "harerun-ml-classifier"
    monkeypatch.delenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert cli.main(["train", "acne-grade", "--data", str(tmp_path), "--out", str(tmp_path / "m.keras")]) == 2
    assert "labels.csv" in capsys.readouterr().err


# -- training ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["face_roi", "letterbox_photo"])
def test_training_smoke_writes_model_checksum_and_card(tmp_path, capsys, astronaut_bgr, framing, monkeypatch):
    _tf()
    from harerun import cli

    monkeypatch.delenv("HARERUN_DISABLE_PLUGIN_AUTOLOAD", raising=False)  # `train acne-grade` is this plugin's

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    lesions, rows = {}, []
    for i in range(8):
        grade = i % 4
        name = f"img{i}.jpg"
        if (
            framing == "face_roi"
        ):  # the face stage must find a face: the astronaut, spots on her face (box 173,68,106,106)
            pts = [(185 + 13 * k % 80, 95 + 17 * k % 90) for k in range(grade * 6)]
            img = astronaut_bgr.copy()
            for x, y in pts:
                cv2.circle(img, (x, y), 2, (90, 90, 200), -1, lineType=cv2.LINE_AA)
        else:
            pts = [(60 + 37 * k % 400, 80 + 53 * k % 380) for k in range(grade * 6)]
            img = _skin_with_lesions(pts, seed=i)
        cv2.imwrite(str(data / "images" / name), img)
        lesions[name] = [[x, y, 4.0] for x, y in pts]
        rows.append({"image": name, "grade": grade, "split": "train" if i < 6 else "val"})
    with open(data / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "grade", "split"])
        w.writeheader()
        w.writerows(rows)
    (data / "lesions.json").write_text(json.dumps(lesions))
    out = tmp_path / "out" / "smoke.keras"
    code = cli.main(
        [
            "train",
            "acne-grade",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--no-tflite",
            "--framing",
            framing,
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1" in printed and "val_acc" in printed and f"framing {framing}" in printed
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (out.parent / "smoke.keras.sha256").read_text().split()[0] == digest
    card = (out.parent / "smoke.md").read_text()
    assert "Confusion matrix" in card and digest in card and "Licence" in card and f'"framing": "{framing}"' in card
    metrics = json.loads((out.parent / "smoke.metrics.json").read_text())
    assert metrics["val"]["n"] == 2 and len(metrics["val"]["confusion_matrix"]) == 4
    assert metrics["train_counts"] == [2, 2, 1, 1] and metrics["framing"] == framing
    assert not (out.parent / "smoke.tflite").exists()
    meta = json.loads((out.parent / "smoke.metadata.json").read_text())
    assert meta["framing"] == framing and meta["channels"] == list(CHANNELS)
    assert meta["network_data_format"]["inputs"]["image"]["shape"] == [128, 128, len(CHANNELS)]
    assert meta["files"]["smoke.keras"]["sha256"] == digest
    assert bool(list((tmp_path / "cache").glob("*.npz"))) == (framing == "face_roi")
    # the plugin reads the declaration next to an explicit model file
    from harerun_ml_classifier import runtime

    runtime.clear_cache()
    r = MLClassifierDetector(MLClassifierParams(model_path=str(out), flip_tta=False)).analyze(
        make_context(_skin_with_lesions())
    )
    runtime.clear_cache()
    assert r.status == "ok" and r.measurements["model_framing"] == framing
    assert (r.message is None) == (framing == "face_roi")


def test_a_face_too_small_in_its_photo_gets_no_grade():
    """Magnified 4x (a 128-px face): skipped, saying how large the face must be; x3.3 is graded."""
    img = synthetic_skin(512)
    small = MLClassifierDetector().analyze(make_context(img, scale=0.25))
    assert small.status == "skipped" and "at least 146 px" in small.message
    assert MLClassifierDetector().analyze(make_context(img, scale=0.3)).status != "skipped"
