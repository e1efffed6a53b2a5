"""The learned lesion detector: input parity with training, heatmap decoding, model loading, fallback."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from harerun.modelstore import ModelStore, ModelUnavailable
from harerun.testing import make_context, synthetic_skin
from harerun_acne import lesion_net, training
from harerun_acne.plugin import AcneDetector

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_models():
    lesion_net.clear_cache()
    yield
    lesion_net.clear_cache()


class SpyModel:
    """Stands in for the TFLite network: records what it is fed, returns a fixed heatmap."""

    def __init__(self, size=512, stride=2):
        self.input_size, self.stride, self.threshold = size, stride, 0.5
        self.fed: list[np.ndarray] = []

    def run(self, x):
        self.fed.append(x.copy())
        g = self.input_size // self.stride
        heat = np.zeros((g, g), np.float32)
        heat[100, 120] = 0.9  # one lesion at ROI (241, 201)
        return heat, np.full((g, g), 3.0, np.float32)


def _one_photo_folder(tmp: Path, bgr: np.ndarray, circles) -> Path:
    (tmp / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp / "images" / "a.png"), bgr)
    with open(tmp / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "grade", "group", "split"])
        w.writeheader()
        w.writerow({"image": "a.png", "grade": 1, "group": "g", "split": "train"})
    (tmp / "lesions.json").write_text(json.dumps({"a.png": circles}))
    return tmp


def test_training_input_is_the_served_input_on_the_astronaut(tmp_path, monkeypatch):
    from skimage import data as skdata

    from harerun.engine import Engine

    bgr = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    folder = _one_photo_folder(tmp_path / "data", bgr, [[205.0, 100.0, 3.0]])
    monkeypatch.setenv("HARERUN_CACHE_DIR", str(tmp_path / "cache" / "models"))
    cache = training.load_split(folder, "train", log=lambda *a: None)
    assert cache.names == ["a.png"] and not cache.skipped
    assert list((tmp_path / "cache" / "train").glob("acne-lesions-train-1-*.npz"))  # cached, keyed
    trained_on = training.training_input(cache.rois[0])

    spy = SpyModel()
    monkeypatch.setattr(lesion_net, "load_lesion_model", lambda spec, **kw: spy)
    run = Engine().run(str(folder / "images" / "a.png"))
    assert run.result.results["acne"].measurements["method"] == "net"
    assert len(spy.fed) == 1
    served = spy.fed[0]
    assert served.shape == (512, 512, lesion_net.INPUT_CHANNELS) and served.dtype == np.float32
    np.testing.assert_array_equal(served, trained_on)
    # The annotated circle lands on the same ROI pixel the engine maps back to the photo.
    x, y, _ = cache.circles_roi[0][0]
    back = run.ctx.to_image_points(np.array([[x, y]]))[0]
    assert np.hypot(back[0] - 205.0, back[1] - 100.0) < 0.01


def test_training_target_decodes_back_to_the_circles():
    circles = np.array([[40.0, 60.0, 3.0], [41.0, 200.0, 5.5], [200.0, 33.0, 2.0], [120.0, 121.0, 4.0]])
    heat, radius, mask = training.heatmap_target(circles, 256)
    assert heat.shape == (128, 128) and mask.sum() == len(circles) and heat.max() == 1.0
    lab = cv2.cvtColor(np.full((256, 256, 3), 0.6, np.float32), cv2.COLOR_BGR2LAB)
    rows = lesion_net.lesions_from_heatmap(heat, radius, lab, threshold=0.99)
    assert len(rows) == len(circles)
    d = np.linalg.norm(rows[:, None, :2] - circles[None, :, :2], axis=2)
    assert d.min(axis=0).max() <= 1.0  # within one ROI pixel (the heatmap is at half resolution)
    order = d.argmin(axis=0)
    np.testing.assert_allclose(rows[order, 2], circles[:, 2])


def test_heatmap_peaks_are_local_maxima_above_the_threshold():
    heat = np.zeros((64, 64), np.float32)
    for (y, x), v in {(10, 10): 0.9, (10, 12): 0.5, (40, 50): 0.35, (50, 20): 0.2}.items():
        heat[y, x] = v
    ys, xs = lesion_net.heatmap_peaks(heat, threshold=0.3)
    assert list(zip(ys.tolist(), xs.tolist(), strict=True)) == [(10, 10), (10, 12), (40, 50)]  # strongest first
    ys, _ = lesion_net.heatmap_peaks(heat, threshold=0.3, min_separation=2)
    assert len(ys) == 2  # the weaker neighbour is suppressed by the wider window


def test_peak_contrast_follows_redness_and_darkness():
    img = synthetic_skin(seed=1)
    cv2.circle(img, (100, 100), 3, (110, 120, 215), -1)  # red and darker
    cv2.circle(img, (300, 300), 3, (215, 230, 250), -1)  # pale and lighter
    unit = img.astype(np.float32) / 255
    lab = cv2.cvtColor(unit, cv2.COLOR_BGR2LAB)
    (da_red, dl_red), (da_pale, dl_pale) = lesion_net.peak_contrast(lab, np.array([100, 300]), np.array([100, 300]))
    assert da_red > 5 and dl_red < -5
    assert da_pale < da_red and dl_pale > 0


def test_input_is_rgb_and_scaled_astar():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
    x = lesion_net.lesion_input(img, lab)
    assert x.shape == (4, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, :3], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(x[0, 0, 3], lab[0, 0, 1] / lesion_net.A_SCALE)


def test_augmented_crop_keeps_the_circles_on_their_pixels():
    roi = np.full((512, 512, 3), 128, np.uint8)
    circles = np.array([[100.0, 300.0, 2.0], [400.0, 50.0, 2.0], [256.0, 256.0, 2.0]])
    for x, y, _ in circles:
        roi[int(y), int(x)] = (0, 0, 255)
    rng = np.random.default_rng(0)
    for _ in range(30):
        img, cc = training.augment_crop(roi, circles, rng, 256)
        inside = cc[(cc[:, 0] >= 0) & (cc[:, 0] < 256) & (cc[:, 1] >= 0) & (cc[:, 1] < 256)]
        for x, y, _ in inside:
            b, g, r = img[int(round(y)), int(round(x))].astype(int)
            assert r > b + 60, (x, y)


def test_holdout_keeps_groups_on_one_side():
    groups = [f"g{i // 3}" for i in range(60)]
    cache = training.SplitCache(
        names=[str(i) for i in range(60)],
        groups=groups,
        grades=np.zeros(60),
        rois=np.zeros((60, 1, 1, 3), np.uint8),
        roi_to_image=np.zeros((60, 2, 3)),
        face_skin=np.zeros((60, 1, 1), np.uint8),
        circles_roi=[],
        circles_photo=[],
    )
    fit, held = training.holdout_split(cache, 10, seed=0)
    assert 10 <= len(held) <= 12 and len(fit) + len(held) == 60
    assert not {groups[i] for i in fit} & {groups[i] for i in held}
    assert np.array_equal(held, training.holdout_split(cache, 10, seed=0)[1])  # seeded


def test_unavailable_model_falls_back_to_dog():
    ctx = make_context(synthetic_skin(seed=2))
    res = AcneDetector(AcneDetector.Params(model="acne-lesions@999")).analyze(ctx)
    assert res.status == "ok"
    assert res.measurements["method"] == "dog"
    assert "acne-lesions@999 unavailable" in res.measurements["method_note"]
    dog = AcneDetector(AcneDetector.Params(method="dog")).analyze(ctx)
    assert res.measurements["count"] == dog.measurements["count"]


def test_committed_model_loads_with_its_threshold_and_shapes():
    model = lesion_net.load_lesion_model("acne-lesions@1")
    assert model.input_size == lesion_net.INPUT_SIZE and model.stride == lesion_net.OUTPUT_STRIDE
    assert model.threshold is not None and 0 < model.threshold < 1
    assert model.resolved.size_bytes <= 10 * 2**20
    heat, radius = model.run(np.zeros((512, 512, 4), np.float32))
    assert heat.shape == radius.shape == (256, 256)
    assert 0 <= heat.min() and heat.max() <= 1


def test_model_declaring_another_input_is_refused(tmp_path):
    entry = next(
        e
        for e in yaml.safe_load((REPO / "models" / "models.yaml").read_text())["models"]
        if e["name"] == "acne-lesions" and str(e["version"]) == "1"
    )
    shutil.copy(REPO / "models" / entry["file"], tmp_path / entry["file"])
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": [dict(entry, input_format="rgb only")]}))
    store = ModelStore(tmp_path, tmp_path / "cache", manifests=[tmp_path / "models.yaml"])
    with pytest.raises(ModelUnavailable, match="input_format"):
        lesion_net.load_lesion_model("acne-lesions@1", store=store)


def test_network_on_synthetic_papules_and_clean_skin():
    clean = AcneDetector().analyze(make_context(synthetic_skin(seed=3), zones={}))
    assert clean.measurements["method"] == "net"
    assert clean.measurements["count"] <= 2
    centres = [(int(x), int(y)) for y in np.linspace(120, 400, 5) for x in np.linspace(120, 400, 5)]
    img = synthetic_skin(seed=0)
    for x, y in centres:
        cv2.circle(img, (x, y), 3, (120, 130, 215), -1)
    res = AcneDetector().analyze(make_context(cv2.GaussianBlur(img, (3, 3), 0), zones={}))
    markers = np.array(res.evidence.markers).reshape(-1, 3)
    found = np.linalg.norm(markers[:, None, :2] - np.array(centres)[None], axis=2).min(axis=0) <= 3
    assert found.mean() >= 0.8, found.mean()
    assert res.measurements["count_inflamed"] >= 0.8 * len(centres)


def test_cli_says_what_data_folder_it_needs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HARERUN_DISABLE_PLUGIN_AUTOLOAD"}  # the command is ours
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harerun.cli",
            "train",
            "acne-lesions",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.keras"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "labels.csv" in out.stderr
