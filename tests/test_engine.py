"""The engine end to end on a real photo, with throw-away detectors of known behaviour."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams
from harerun.engine import Engine
from harerun.errors import ImageError, NoUsableFace, UnknownPipeline
from harerun.experiments import photo_key
from harerun.host import PluginHost
from harerun.overlay import draw_overlay
from harerun.results import DetectorResult, Evidence

from .test_host import plugin_module


class CentreMarker(Detector):
    """Marks the ROI centre and reports the mean skin-mask coverage."""

    name = "centre"
    version = "2.0"

    class Params(DetectorParams):
        score: float = Field(40.0, ge=0, le=100, description="score to report")

    def analyze(self, ctx):
        h, w = ctx.image.shape[:2]
        coverage = float((ctx.skin_mask > 0).mean())
        return DetectorResult(
            score=self.params.score,
            zones={z: self.params.score for z in ctx.zones},
            measurements={"skin_coverage": np.float32(coverage), "roi_px": np.int64(w)},
            evidence=Evidence(markers=ctx.to_image_markers([[w / 2, h / 2, 10]]), mask=ctx.skin_mask),
        )


class Broken(Detector):
    name = "broken"
    version = "0.1"

    def analyze(self, ctx):
        raise ValueError("detector exploded")


class Calls:
    def __init__(self):
        self.pipelines = []

    @hookimpl
    def after_pipeline_run(self, pipeline, result):
        self.pipelines.append((pipeline, result.results["centre"].score))


def write_pipelines(tmp_path, *, reject=False):
    pipe = {
        "schema_version": 1,
        "name": "t",
        "face": {"backend": "haar"},
        "quality": {"reject": reject},
        "detectors": [
            {"id": "centre", "plugin": "centre"},
            {"id": "broken", "plugin": "broken"},
            {"id": "off", "plugin": "centre", "enabled": False},
            {"id": "low", "plugin": "centre", "params": {"score": 5}},
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(pipe))
    (tmp_path / "u.yaml").write_text(yaml.safe_dump({**pipe, "name": "u", "detectors": pipe["detectors"][:1]}))
    exps = {
        "schema_version": 1,
        "experiments": {
            "ab": {
                "variants": [{"name": "A", "pipeline": "t", "weight": 1}, {"name": "B", "pipeline": "u", "weight": 1}]
            }
        },
    }
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(exps))
    return tmp_path


@pytest.fixture
def engine(tmp_path):
    calls = Calls()
    host = PluginHost(autoload=False, plugins=[plugin_module("pkg_test", CentreMarker, Broken), calls])
    eng = Engine(host=host, pipelines_dir=write_pipelines(tmp_path))
    eng.calls = calls
    return eng


def test_result_is_complete_and_json_native(engine, astronaut_bgr):
    run = engine.run(astronaut_bgr, pipeline="t")
    res = run.result
    doc = json.loads(res.model_dump_json())
    assert doc["pipeline"] == "t" and doc["variant"] is None
    assert doc["image"] == {"width": 512, "height": 512, "format": "array"}
    x, y, w, h = doc["face"]["box"]
    assert 150 < x < 230 and 40 < y < 120 and 60 < w < 160  # the astronaut's face
    assert doc["results"]["centre"]["status"] == "ok" and doc["results"]["centre"]["severity"] == "moderate"
    assert isinstance(doc["results"]["centre"]["measurements"]["skin_coverage"], float)
    assert doc["results"]["broken"] == {
        "status": "error",
        "score": None,
        "severity": None,
        "zones": {},
        "measurements": {},
        "evidence": {"markers": []},
        "message": "ValueError: detector exploded",
    }
    assert doc["results"]["off"]["status"] == "skipped"
    assert doc["results"]["low"]["score"] == 5 and doc["results"]["low"]["severity"] == "none"
    assert {"decode", "total", "detector.centre", "detector.low"} <= set(doc["timings_ms"])
    assert doc["versions"]["centre"] == "2.0" and doc["versions"]["engine"]
    assert engine.calls.pipelines == [("t", 40.0)]


def test_markers_are_in_original_photo_coordinates(engine, astronaut_bgr):
    # Pad the photo: the face and the ROI-centre marker must move by exactly the padding.
    plain = engine.run(astronaut_bgr, pipeline="t").result
    padded_img = np.pad(astronaut_bgr, ((100, 0), (60, 0), (0, 0)), mode="edge")
    padded = engine.run(padded_img, pipeline="t").result
    mx, my, _ = plain.results["centre"].evidence.markers[0]
    px, py, _ = padded.results["centre"].evidence.markers[0]
    assert abs((px - mx) - 60) <= 3 and abs((py - my) - 100) <= 3
    fx, fy, fw, fh = plain.face.box
    assert fx <= mx <= fx + fw and fy <= my <= fy + fh


def test_overlay_draws_on_the_photo(engine, astronaut_bgr):
    run = engine.run(astronaut_bgr, pipeline="t")
    out = draw_overlay(run)
    assert out.shape == astronaut_bgr.shape
    x, y, w, h = run.result.face.box
    assert not np.array_equal(out[y : y + h, x : x + w], astronaut_bgr[y : y + h, x : x + w])
    assert np.array_equal(out[-40:, -40:], astronaut_bgr[-40:, -40:])  # far corner untouched


def test_no_face_is_reported(engine):
    blank = np.full((400, 400, 3), 128, np.uint8)
    with pytest.raises(NoUsableFace) as info:
        engine.run(blank, pipeline="t")
    assert info.value.code == "NO_FACE" and "NO_FACE" in info.value.issues and info.value.exit_code == 3


def test_quality_gate_rejects_only_when_asked(tmp_path, astronaut_bgr):
    host = PluginHost(autoload=False, plugins=[plugin_module("pkg_test", CentreMarker, Broken)])
    dark = (astronaut_bgr * 0.08).astype(np.uint8)
    (tmp_path / "warn").mkdir()
    (tmp_path / "strict").mkdir()
    warn = Engine(host=host, pipelines_dir=write_pipelines(tmp_path / "warn", reject=False))
    assert "TOO_DARK" in warn.run(dark, pipeline="t").result.quality.issues
    strict = Engine(host=host, pipelines_dir=write_pipelines(tmp_path / "strict", reject=True))
    with pytest.raises(NoUsableFace) as info:
        strict.run(dark, pipeline="t")
    assert info.value.code == "QUALITY_REJECTED" and "TOO_DARK" in info.value.issues


def test_ab_variant_is_sticky_and_reported(engine, astronaut_bgr):
    seen = {}
    for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
        res = engine.run(astronaut_bgr, pipeline="ab", subject_id=key).result
        again = engine.run(astronaut_bgr, pipeline="ab", subject_id=key).result
        assert res.variant == again.variant and res.pipeline == again.pipeline
        assert res.pipeline == {"ab:A": "t", "ab:B": "u"}[res.variant]
        seen[key] = res.variant
    assert set(seen.values()) == {"ab:A", "ab:B"}


def test_ab_without_subject_is_assigned_by_the_photo(engine, astronaut_bgr, tmp_path):
    """No subject id: the photo's SHA-256 is the key (as in the HTTP API), not always the control."""
    exp = engine.experiments.experiments["ab"]
    variants = []
    for i in range(8):
        photo = astronaut_bgr.copy()
        photo[0, 0, 0] = i  # another photo, another key
        got = engine.run(photo, pipeline="ab").result.variant
        assert got == f"ab:{exp.assign('ab', photo_key(photo.tobytes())).name}"
        variants.append(got)
    assert set(variants) == {"ab:A", "ab:B"}
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), astronaut_bgr)
    by_path = engine.run(path, pipeline="ab").result.variant
    assert by_path == engine.run(path.read_bytes(), pipeline="ab").result.variant
    assert by_path == f"ab:{exp.assign('ab', photo_key(path.read_bytes())).name}"


def test_bad_inputs_raise_typed_errors(engine):
    with pytest.raises(UnknownPipeline, match="did you mean 't'"):
        engine.run(b"x", pipeline="tt")
    with pytest.raises(ImageError):
        engine.run(b"not an image", pipeline="t")
