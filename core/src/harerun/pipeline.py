"""YAML pipelines: which detectors run, in what order, with what parameters.

Loading validates in two passes -- the structure (pydantic), then each
detector's ``params`` against that detector's own ``Params`` -- and reports
every problem at once, each as ``file: location: what is wrong (got X)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harerun.errors import PipelineError, UnknownPipeline
from harerun.face.config import FaceConfig, QualityConfig
from harerun.host import PluginHost, did_you_mean
from harerun.problems import location, problems_from
from harerun.yamlfile import YamlFileError, clip, load_yaml

SCHEMA_VERSION = 1


class DetectorStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="key of this step's result; unique in the pipeline")
    plugin: str = Field(description="registered detector name (`harerun plugins list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="the detector's own parameters")
    enabled: bool = Field(True, description="false: the step is reported as 'skipped'")

    @model_validator(mode="before")
    @classmethod
    def _default_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and isinstance(data.get("plugin"), str):
            data = {**data, "id": data["plugin"]}
        return data


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlay: bool = Field(False, description="draw an overlay image when the caller does not say")
    evidence: bool = Field(True, description="include evidence markers in results")
    dense_landmarks: bool = Field(False, description="include the 468 Face Mesh points in face.dense_landmarks")


class PipelineSpec(BaseModel):
    """Schema v1 of a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = Field(description="always 1 for this schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    face: FaceConfig = Field(default_factory=FaceConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    detectors: list[DetectorStep] = Field(min_length=1)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("detectors")
    @classmethod
    def _unique_ids(cls, steps: list[DetectorStep]) -> list[DetectorStep]:
        seen: set[str] = set()
        for step in steps:
            if step.id in seen:
                raise ValueError(f"step id '{step.id}' is used twice; give each step its own id")
            seen.add(step.id)
        return steps


@dataclass
class Step:
    id: str
    plugin: str
    enabled: bool
    detector: Any  # an instance of the registered detector class


@dataclass
class Pipeline:
    spec: PipelineSpec
    steps: list[Step]
    origin: str

    @property
    def name(self) -> str:
        return self.spec.name


# -- loading ----------------------------------------------------------------------


def parse_pipeline(data: Any, host: PluginHost, *, origin: str = "<pipeline>") -> Pipeline:
    """Validate a pipeline mapping and build its detector instances."""
    if not isinstance(data, dict):
        raise PipelineError(f"{origin}: a pipeline must be a YAML mapping, not {type(data).__name__}")
    problems: list[str] = []
    spec = None
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems += problems_from(exc, origin, PipelineSpec)

    # Second pass: each step's params against its detector's own Params.
    raw_steps = data.get("detectors") if isinstance(data.get("detectors"), list) else []
    params_by_index: dict[int, Any] = {}
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, dict) or not isinstance(raw.get("plugin"), str):
            continue
        name = raw["plugin"]
        if name not in host.detectors:
            problems.append(f"{origin}: detectors[{i}].plugin: {host.unknown_detector_message(clip(name, 60))}")
            continue
        params_cls = host.detectors[name].cls.Params
        raw_params = raw.get("params") or {}
        if not isinstance(raw_params, dict):
            continue  # the structure pass already reported it
        try:
            params_by_index[i] = params_cls.model_validate(raw_params)
        except ValidationError as exc:
            problems += problems_from(exc, origin, params_cls, ("detectors", i, "params"))

    problems += _backend_problems(data, host, origin)
    if problems or spec is None:
        raise PipelineError(f"{origin}: {len(problems)} problem(s) in the pipeline", problems=problems)

    steps = [
        Step(id=s.id, plugin=s.plugin, enabled=s.enabled, detector=host.detectors[s.plugin].cls(params_by_index[i]))
        for i, s in enumerate(spec.detectors)
    ]
    return Pipeline(spec=spec, steps=steps, origin=origin)


def _backend_problems(data: dict, host: PluginHost, origin: str) -> list[str]:
    """``face.backend`` is registered, and each ``face.backend_params`` entry names a registered
    backend and fits its ``Params`` (checked here, not first when a photo is analysed)."""
    face = data.get("face")
    if not isinstance(face, dict):
        return []
    problems = []
    backend = face.get("backend")
    if isinstance(backend, str) and backend != "auto" and backend not in host.face_backends:
        backend = clip(backend, 60)
        hint = did_you_mean(backend, [*host.face_backends, "auto"])
        problems.append(
            f"{origin}: face.backend: face backend '{backend}' is not registered{hint} (plugin may not be installed)"
        )
    params = face.get("backend_params")
    for name, values in params.items() if isinstance(params, dict) else []:
        where = ("face", "backend_params", name)
        if name not in host.face_backends:
            hint = did_you_mean(clip(str(name), 60), list(host.face_backends))
            problems.append(
                f"{origin}: {location(where)}: face backend '{clip(str(name), 60)}' is not registered{hint} "
                f"(registered: {', '.join(sorted(host.face_backends))})"
            )
            continue
        backend_params = host.face_backends[name].cls.Params
        try:
            backend_params.model_validate(values if isinstance(values, dict) else {})
        except ValidationError as exc:
            problems += problems_from(exc, origin, backend_params, where)
    return problems


def load_pipeline_file(path: str | Path, host: PluginHost) -> Pipeline:
    path = Path(path)
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        raise UnknownPipeline(f"pipeline file {path} does not exist") from None
    except YamlFileError as exc:
        raise PipelineError(str(exc)) from None
    return parse_pipeline(data, host, origin=path.name)


def default_pipelines_dir() -> Path:
    """$HARERUN_PIPELINES_DIR, else ./pipelines, else the repository's pipelines/ folder."""
    env = os.environ.get("HARERUN_PIPELINES_DIR")
    if env:
        return Path(env)
    if Path("pipelines").is_dir():
        return Path("pipelines")
    return Path(__file__).resolve().parents[3] / "pipelines"


def looks_like_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name


def available_pipelines(pipelines_dir: Path) -> list[str]:
    if not pipelines_dir.is_dir():
        return []
    return sorted(p.stem for p in pipelines_dir.glob("*.yaml") if p.stem != "experiments")


def pipeline_path(name: str, pipelines_dir: Path) -> Path:
    """Path of a pipeline given by name or by file; raises UnknownPipeline with the choices."""
    if looks_like_file(name):
        return Path(name)
    path = pipelines_dir / f"{name}.yaml"
    if name == "experiments" or not path.is_file():
        names = available_pipelines(pipelines_dir)
        raise UnknownPipeline(
            f"pipeline '{name}' not found in {pipelines_dir}{did_you_mean(name, names)} "
            f"(available: {', '.join(names) or 'none'}; or pass a .yaml file)"
        )
    return path


def json_schema(host: PluginHost) -> dict[str, Any]:
    """JSON Schema of a pipeline file, with each registered detector's params schema."""
    schema = PipelineSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Hare Run pipeline"
    step = schema["$defs"]["DetectorStep"]
    step["properties"]["plugin"]["enum"] = sorted(host.detectors)
    step["allOf"] = [
        {
            "if": {"properties": {"plugin": {"const": name}}},
            "then": {"properties": {"params": reg.cls.Params.model_json_schema()}},
        }
        for name, reg in sorted(host.detectors.items())
    ]
    return schema
