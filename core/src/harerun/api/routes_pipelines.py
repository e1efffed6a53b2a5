"""GET /api/pipelines: the pipelines and A/B experiments a client may ask for."""

from __future__ import annotations

from fastapi import APIRouter

from harerun.api.deps import ServiceDep
from harerun.api.errors import KEYED_ERRORS
from harerun.api.openapi import model_component
from harerun.api.schemas import PipelinesResponse
from harerun.api.service import pipeline_models

router = APIRouter(tags=["pipelines"])


@router.get(
    "/api/pipelines",
    operation_id="listPipelines",
    response_model=PipelinesResponse,
    responses=KEYED_ERRORS,
    summary="Pipelines, their detectors and experiments",
)
async def pipelines(service: ServiceDep) -> PipelinesResponse:
    host = service.engine.host
    out = []
    for name, pipe in service.pipelines.items():
        detectors = []
        for step in pipe.steps:
            reg = host.detectors.get(step.plugin)
            params = getattr(step.detector, "params", None)
            detectors.append(
                {
                    "id": step.id,
                    "plugin": step.plugin,
                    "version": getattr(step.detector, "version", "?"),
                    "package": reg.package if reg else None,
                    "enabled": step.enabled,
                    "params": params.model_dump(mode="json") if params is not None else {},
                    "params_schema": model_component(step.detector, "Params"),
                    "measurements_schema": model_component(step.detector, "Measurements"),
                }
            )
        out.append(
            {
                "name": name,
                "description": pipe.spec.description,
                "face_backend": pipe.spec.face.backend,
                "quality_reject": pipe.spec.quality.reject,
                "detectors": detectors,
                "models": pipeline_models(pipe),
            }
        )
    experiments = [
        {
            "name": n,
            "description": e.description,
            "variants": [{"name": v.name, "pipeline": v.pipeline, "weight": v.weight} for v in e.variants],
        }
        for n, e in service.engine.experiments.experiments.items()
    ]
    return PipelinesResponse.model_validate(
        {
            "default": service.settings.default_pipeline,
            "pipelines": out,
            "experiments": experiments,
            "unavailable": {k: v.splitlines()[0] for k, v in service.pipeline_errors.items()},
        }
    )
