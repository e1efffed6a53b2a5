"""The OpenAPI document generated clients are built from: operation ids, named bodies, enums taken
from the code, errors on every operation, array bounds, typed measurements, examples that validate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import cv2
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from harerun.api import Settings, create_app
from harerun.api.errors import BadRequest, error_response
from harerun.api.upload import image_media_types
from harerun.detector import Detector
from harerun.engine import Engine
from harerun.errors import ERROR_CODES
from harerun.host import PluginHost
from harerun.modelstore.local import Source
from harerun.results import FACE_WARNINGS, QUALITY_ISSUES, SEVERITY_BANDS

REPO = Path(__file__).resolve().parents[1]
ANALYZE = "/api/v6/skin/analyze-hare-run"
DETECT = "/api/v4/face/detect"
OPERATIONS = {
    ("post", ANALYZE): "analyzeSkin",
    ("post", DETECT): "detectFace",
    ("get", "/api/v5/skin/model-status"): "getModelStatus",
    ("get", "/api/pipelines"): "listPipelines",
    ("get", "/health"): "getHealth",
    ("get", "/ready"): "getReadiness",
    ("get", "/metrics"): "getMetrics",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(Settings(warm_up=False)).openapi()


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def _validator(spec: dict, schema: dict) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``spec``."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_short_operation_ids_and_named_bodies(spec):
    ops = {(m, p): op for p, item in spec["paths"].items() for m, op in item.items()}
    assert {k: op["operationId"] for k, op in ops.items()} == OPERATIONS
    titles = [s.get("title", name) for name, s in spec["components"]["schemas"].items()]
    assert len(titles) == len(set(titles)), "two components share a title"
    for path, json_body, upload in (
        (ANALYZE, "AnalyzeRequest", "AnalyzeUpload"),
        (DETECT, "DetectRequest", "DetectUpload"),
    ):
        body = ops[("post", path)]["requestBody"]
        assert body["required"] is True
        content = body["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{json_body}"}
        assert content["multipart/form-data"]["schema"] == {"$ref": f"#/components/schemas/{upload}"}
        # the raw body once, as image/*, naming every type the decoder reads
        assert [t for t in content if t.startswith("image/")] == ["image/*"]
        assert content["image/*"]["schema"]["format"] == "binary"
        for media_type in image_media_types():
            assert f"`{media_type}`" in body["description"]
    assert {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff"} <= set(image_media_types())
    assert "subject_id" in _schema(spec, "AnalyzeRequest")["properties"]
    assert "subject_id" not in _schema(spec, "DetectRequest")["properties"]
    assert _schema(spec, "AnalyzeUpload")["properties"]["image"]["format"] == "binary"
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # field errors are 400 ErrorResponse


def test_every_operation_documents_its_errors(spec):
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert {"404", "405", "503", "default"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status != "200":
                    assert response["content"]["application/json"]["schema"] == error_ref, (method, path, status)
            for status in ("429", "503"):
                if status in responses:
                    assert responses[status]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    photo_ops = spec["paths"][ANALYZE]["post"]["responses"], spec["paths"][DETECT]["post"]["responses"]
    for responses in photo_ops:
        assert {"400", "401", "403", "413", "415", "422", "429"} <= set(responses)
    assert spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]["schema"] == {"type": "string"}
    detail = _schema(spec, "ErrorDetail")["properties"]
    assert detail["code"] == {"$ref": "#/components/schemas/ErrorCode"}
    assert detail["details"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert set(_schema(spec, "FieldError")["required"]) == {"loc", "message"}


def _enum(spec: dict, name: str) -> list[str]:
    return _schema(spec, name)["enum"]


def test_enums_are_named_components_taken_from_the_code(spec):
    assert _enum(spec, "ErrorCode") == list(ERROR_CODES)
    assert _enum(spec, "QualityIssue") == list(QUALITY_ISSUES)
    assert _enum(spec, "FaceWarning") == list(FACE_WARNINGS)
    assert _enum(spec, "Severity") == [band for _, band in SEVERITY_BANDS] + ["severe"]
    assert _enum(spec, "DetectorStatus") == ["ok", "error", "skipped", "unavailable"]
    assert _enum(spec, "ModelSource") == list(get_args(Source))
    assert _enum(spec, "FaceBackend") == sorted({*PluginHost().face_backends, "auto", "skip"})
    assert {"haar", "yunet", "blazeface"} <= set(_enum(spec, "FaceBackend"))
    assert _enum(spec, "VariantAssignment") == ["subject_id", "photo"]
    for code in ERROR_CODES:  # the enum's description explains every code
        assert f"`{code}`" in _schema(spec, "ErrorCode")["description"]
    props = {name: _schema(spec, name)["properties"] for name in ("FaceInfo", "QualityReport", "DetectorResult")}
    assert props["FaceInfo"]["warnings"]["items"] == {"$ref": "#/components/schemas/FaceWarning"}
    assert props["FaceInfo"]["backend_used"] == {"$ref": "#/components/schemas/FaceBackend"}
    assert props["QualityReport"]["issues"]["items"] == {"$ref": "#/components/schemas/QualityIssue"}
    assert props["DetectorResult"]["status"]["$ref"] == "#/components/schemas/DetectorStatus"


def test_every_error_code_raised_in_the_code_is_listed():
    """``code = "X"`` and ``code="X"`` anywhere in the core and the plugins: each is in ERROR_CODES,
    so the published enum holds every code a client can get."""
    pattern = re.compile(r"""\bcode\s*=\s*["']([A-Z][A-Z0-9_]+)["']|["']code["']\s*:\s*["']([A-Z][A-Z0-9_]+)["']""")
    found: dict[str, str] = {}
    files = [*REPO.glob("core/src/harerun/**/*.py"), *REPO.glob("plugins/*/src/**/*.py")]
    for path in files:
        for m in pattern.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(m.group(1) or m.group(2), str(path.relative_to(REPO)))
    assert len(found) >= 20, found
    missing = {code: where for code, where in found.items() if code not in ERROR_CODES}
    assert not missing, f"add these to harerun.errors.ERROR_CODES: {missing}"


def test_a_code_outside_the_enum_is_answered_as_a_generic_one():
    import json

    r = error_response(418, "TEAPOT", "short and stout")
    assert json.loads(r.body) == {"error": {"code": "BAD_REQUEST", "message": "TEAPOT: short and stout"}}
    assert json.loads(error_response(507, "DISK_FULL", "x").body)["error"]["code"] == "INTERNAL_ERROR"
    assert json.loads(error_response(422, "NO_FACE", "x").body)["error"]["code"] == "NO_FACE"
    assert BadRequest("x").code in ERROR_CODES


def test_arrays_have_their_lengths(spec):
    face = _schema(spec, "FaceInfo")["properties"]
    assert (face["box"]["minItems"], face["box"]["maxItems"]) == (4, 4)
    point = face["landmarks"]["additionalProperties"]
    assert (point["minItems"], point["maxItems"]) == (2, 2)
    marker = _schema(spec, "Evidence")["properties"]["markers"]["items"]
    assert (marker["minItems"], marker["maxItems"]) == (3, 3)
    polygon_point = _schema(spec, "ZoneInfo")["properties"]["polygon"]["items"]
    assert (polygon_point["minItems"], polygon_point["maxItems"]) == (2, 2)
    detected = _schema(spec, "DetectedFace")["properties"]["box"]
    assert (detected["minItems"], detected["maxItems"]) == (4, 4)


def _examples(node: Any, schema: dict | None = None):
    """Every (schema, example) pair in the document: a schema's ``examples`` / ``example`` and a
    media type's ``example`` / ``examples``."""
    if isinstance(node, dict):
        if "examples" in node and isinstance(node["examples"], list) and ("type" in node or "properties" in node):
            for ex in node["examples"]:
                yield node, ex
        if "example" in node and ("type" in node or "properties" in node):
            yield node, node["example"]
        if "schema" in node and isinstance(node["schema"], dict):
            for key in ("example",):
                if key in node:
                    yield node["schema"], node[key]
            for ex in (node.get("examples") or {}).values() if isinstance(node.get("examples"), dict) else ():
                yield node["schema"], ex.get("value")
        for value in node.values():
            yield from _examples(value)
    elif isinstance(node, list):
        for value in node:
            yield from _examples(value)


def test_every_example_validates_against_its_schema(spec):
    pairs = list(_examples(spec))
    assert len(pairs) >= 5, pairs  # the request bodies', the responses' and the error's
    titled = {s.get("title") for s, _ in pairs}
    assert {"AnalyzeRequest", "DetectRequest", "AnalyzeResponse", "FaceDetectResponse", "ErrorResponse"} <= titled
    for schema, example in pairs:
        errors = [e.message for e in _validator(spec, schema).iter_errors(example)]
        assert not errors, (schema.get("title"), errors)


def test_a_broken_example_is_caught(spec):
    """The example check can fail: a detect example carrying `subject_id` (as the old one did) is refused."""
    schema = _schema(spec, "DetectRequest")
    assert list(_validator(spec, schema).iter_errors({"image": "AAAA", "subject_id": "user-42"}))


def test_detector_measurements_are_published_and_hold(spec, astronaut_bgr):
    """A plugin that declares ``Measurements`` gets a component; the detector's real output
    validates against both the pydantic model and the published schema."""
    host = PluginHost()
    declared = {name: reg.cls for name, reg in host.detectors.items() if getattr(reg.cls, "Measurements", None)}
    assert "dark_spots" in declared
    assert Detector.Measurements is None  # optional on the contract
    photo = astronaut_bgr.copy()
    for x, y in ((200, 120), (215, 140), (240, 110), (255, 150), (225, 100)):  # dark patches on the skin
        cv2.circle(photo, (x, y), 4, (60, 80, 110), -1, lineType=cv2.LINE_AA)
    engine = Engine()
    result = engine.run(photo, pipeline="default").result
    assert result.results["dark_spots"].measurements["count"] > 0
    checked = 0
    for step in engine.pipeline("default").steps:
        cls = declared.get(step.plugin)
        if cls is None or result.results[step.id].status != "ok":
            continue
        component = "".join(p.capitalize() for p in step.plugin.split("_")) + "Measurements"
        measurements = result.results[step.id].model_dump(mode="json")["measurements"]
        cls.Measurements.model_validate(measurements)
        errors = list(_validator(spec, _schema(spec, component)).iter_errors(measurements))
        assert not errors, errors
        checked += 1
    assert checked >= 1
    assert not _validator(spec, _schema(spec, "DarkSpotsMeasurements")).is_valid({"count": -1})


def test_pipelines_name_each_steps_components_and_params_hold(spec):
    with TestClient(create_app(Settings(warm_up=False))) as client:
        body = client.get("/api/pipelines").json()
    detectors = [d for p in body["pipelines"] for d in p["detectors"]]
    by_plugin = {d["plugin"]: d for d in detectors}
    assert by_plugin["dark_spots"]["measurements_schema"] == "DarkSpotsMeasurements"
    assert by_plugin["dark_spots"]["params_schema"] == "DarkSpotsParams"
    for d in detectors:
        assert d["params_schema"] in spec["components"]["schemas"], d
        assert d["measurements_schema"] is None or d["measurements_schema"] in spec["components"]["schemas"]
        errors = list(_validator(spec, _schema(spec, d["params_schema"])).iter_errors(d["params"]))
        assert not errors, (d["id"], errors)
    assert not _validator(spec, _schema(spec, "DarkSpotsParams")).is_valid({"min_delta_l": 1000})
