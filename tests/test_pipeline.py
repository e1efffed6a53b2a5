"""Pipeline files: every shipped file loads; every kind of mistake is reported, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from harerun.detector import Detector, DetectorParams
from harerun.errors import PipelineError, UnknownPipeline
from harerun.host import PluginHost
from harerun.pipeline import json_schema, load_pipeline_file, parse_pipeline, pipeline_path
from harerun.results import DetectorResult

from .test_host import plugin_module

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


class Acne(Detector):
    name = "acne"
    version = "1.0"

    class Params(DetectorParams):
        threshold: float = Field(0.5, ge=0, le=1, description="")
        mode: str = Field("fast", description="")

    def analyze(self, ctx):
        return DetectorResult(score=0)


@pytest.fixture(scope="module")
def host():
    return PluginHost(autoload=False, plugins=[plugin_module("harerun-acne-test", Acne)])


def good(**over):
    data = {"schema_version": 1, "name": "b", "detectors": [{"id": "acne", "plugin": "acne"}]}
    data.update(over)
    return data


def problems(data, host) -> list[str]:
    with pytest.raises(PipelineError) as info:
        parse_pipeline(data, host, origin="b.yaml")
    return info.value.problems


SHIPPED = sorted(p for p in PIPELINES.glob("*.yaml") if p.name != "experiments.yaml")  # see test_experiments


def test_pipelines_are_shipped():
    assert {"default", "fast"} <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_pipeline_loads(path):
    pipe = load_pipeline_file(path, PluginHost())
    assert pipe.name == path.stem and pipe.steps


def test_default_pipeline_runs_every_builtin_detector():
    pipe = load_pipeline_file(PIPELINES / "default.yaml", PluginHost())
    assert {"acne", "redness", "dark_spots", "texture", "pores", "wrinkles", "pigmentation"} <= {
        s.plugin for s in pipe.steps
    }


def test_valid_pipeline_builds_detectors_with_params(host):
    pipe = parse_pipeline(good(detectors=[{"plugin": "acne", "params": {"threshold": 0.2}}]), host)
    assert pipe.steps[0].id == "acne" and pipe.steps[0].detector.params.threshold == 0.2


def test_param_out_of_bounds(host):
    data = good(
        detectors=[
            {"id": "a", "plugin": "acne"},
            {"id": "b", "plugin": "acne"},
            {"id": "c", "plugin": "acne", "params": {"threshold": 3}},
        ]
    )
    assert problems(data, host) == ["b.yaml: detectors[2].params.threshold: must be ≤ 1 (got 3)"]


def test_unknown_detector_did_you_mean(host):
    assert problems(good(detectors=[{"plugin": "acme"}]), host) == [
        "b.yaml: detectors[0].plugin: detector 'acme' is not registered; did you mean 'acne'? "
        "(plugin may not be installed; `harerun plugins list` shows what is)"
    ]


def test_unknown_param_and_unknown_top_level_key(host):
    out = problems(good(detectors=[{"plugin": "acne", "params": {"treshold": 1}}], colour="red"), host)
    assert "b.yaml: colour: unknown key" in out[0] and "allowed: " in out[0]
    assert out[1].startswith("b.yaml: detectors[0].params.treshold: unknown key; did you mean 'threshold'?")


def test_all_problems_reported_together(host):
    data = {
        "schema_version": 2,
        "name": "b",
        "face": {"backend": "yunett", "padding": 5},
        "detectors": [{"plugin": "acme"}, {"plugin": "acne", "params": {"threshold": -1}}, {"plugin": "acne"}],
    }
    out = problems(data, host)
    joined = "\n".join(out)
    assert "b.yaml: schema_version: must be 1 (got 2)" in joined
    assert "b.yaml: face.padding: must be ≤ 1 (got 5)" in joined
    assert "b.yaml: detectors: value error, step id 'acne' is used twice" in joined
    assert "detector 'acme' is not registered" in joined
    assert "b.yaml: detectors[1].params.threshold: must be ≥ 0 (got -1)" in joined
    assert "face.backend: face backend 'yunett' is not registered; did you mean 'yunet'?" in joined
    assert len(out) == 6


def test_missing_required_and_wrong_shape(host):
    assert problems({"schema_version": 1, "detectors": []}, host) == [
        "b.yaml: name: is required",
        "b.yaml: detectors: list should have at least 1 item after validation, not 0 (got [])",
    ]
    with pytest.raises(PipelineError, match="must be a YAML mapping"):
        parse_pipeline(["acne"], host, origin="b.yaml")


def test_yaml_is_safe_loaded(tmp_path, host):
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(PipelineError, match="evil.yaml: not valid YAML"):
        load_pipeline_file(evil, host)


def test_pipeline_lookup_by_name_suggests(tmp_path):
    (tmp_path / "default.yaml").write_text(yaml.safe_dump(good()))
    assert pipeline_path("default", tmp_path) == tmp_path / "default.yaml"
    with pytest.raises(UnknownPipeline, match="did you mean 'default'"):
        pipeline_path("defualt", tmp_path)


def test_json_schema_includes_detector_params(host):
    schema = json_schema(host)
    json.dumps(schema)
    step = schema["$defs"]["DetectorStep"]
    assert step["properties"]["plugin"]["enum"] == ["acne"]
    params = step["allOf"][0]["then"]["properties"]["params"]
    assert params["properties"]["threshold"]["maximum"] == 1 and params["additionalProperties"] is False


def test_face_backend_params_are_checked_when_the_pipeline_loads(tmp_path):
    """A misspelt backend parameter and an unknown backend key are problems of the file, reported
    by `harerun pipelines validate` with location and fix (they used to pass and fail at analysis)."""
    import subprocess
    import sys

    bad = tmp_path / "bp.yaml"
    bad.write_text(
        "schema_version: 1\nname: bp\nface:\n  backend: haar\n  backend_params:\n"
        "    haar: {min_neighbours: 5}\n    haarr: {}\ndetectors:\n  - id: acne\n    plugin: acne\n"
    )
    cli = [sys.executable, "-c", "import sys; from harerun.cli import main; sys.exit(main())"]
    r = subprocess.run([*cli, "pipelines", "validate", str(bad)], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "bp.yaml: face.backend_params.haar.min_neighbours: unknown key; did you mean 'min_neighbors'?" in out
    assert "bp.yaml: face.backend_params.haarr: face backend 'haarr' is not registered; did you mean 'haar'?" in out
    assert "Traceback" not in out


def test_model_manifest_problems_are_listed(tmp_path):
    from harerun.errors import ConfigError
    from harerun.modelstore import load_manifest

    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - {name: ok, version: 1, file: a.onnx, sizee_bytes: 3}\n  - {name: x, file: f}\n")
    with pytest.raises(ConfigError) as info:
        load_manifest(bad)
    assert info.value.problems == [f"{bad}: models[1].version: is required"]
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - {name: ok, version: 1, file: a.onnx, license: MIT}\n")
    (entry,) = load_manifest(good)
    assert (entry.version, entry.extra) == ("1", {"license": "MIT"})
