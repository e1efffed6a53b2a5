"""The ``ml_classifier`` detector: acne severity grade 0-3 from a small Keras CNN.

The model is found by the model store (``acne-grade@3`` by default: models
directory, cache, then S3) and loaded once per process on first use. When the
model cannot be had (not found, S3 down, bad checksum, unreadable file) the
result is ``status: "unavailable"`` with the reason, and the rest of the
pipeline runs normally.

The network sees ``algorithm.model_input(ctx)``: the engine's aligned face ROI, the
same function and framing training uses (``training.load_split``). A model declares
the framing and channels it was trained on (manifest entry or ``<stem>.metadata.json``);
other channels are refused, another framing is reported in the result's message
(or refused with ``framing_check: refuse``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from harerun import hookimpl
from harerun.detector import Detector, DetectorParams, FaceContext, max_magnification_param
from harerun.modelstore import ModelUnavailable
from harerun.results import DetectorResult, Evidence
from harerun_ml_classifier.algorithm import (
    CHANNELS,
    FRAMING,
    N_GRADES,
    declaration_problems,
    density_mask,
    density_measurements,
    grade_measurements,
    model_input,
    predict,
)


class MLClassifierParams(DetectorParams):
    max_magnification: float = max_magnification_param(
        3.5,
        "the grade was trained on "
        "close-ups magnified at most about 2 times; on val photos shrunk to x2.7 it still scored 0.67, at x3.8 0.55 "
        "(always answering grade 1: 0.48)",
    )
    model: str = Field(
        "acne-grade@3",
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._-]*)?$",
        description="model spec 'name' or 'name@version' resolved by the model store "
        "(HARERUN_MODEL_DIR, HARERUN_CACHE_DIR, HARERUN_S3_BUCKET)",
    )
    model_path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="explicit model file (.keras, .h5 or .tflite); when set, the model store is not asked",
    )
    runtime: Literal["auto", "keras", "tflite"] = Field(
        "auto", description="'auto' runs .tflite files with TFLite and .keras/.h5 files with Keras"
    )
    flip_tta: bool = Field(
        True,
        description="also run the mirrored face and average: the grade of a mirrored photo is the same (val "
        "accuracy, acne-grade@3: 0.700 vs 0.714 without, macro-F1 0.598 both; acne-grade@2: 0.707 vs 0.650; one more "
        "network call, ~1 ms with TFLite)",
    )
    framing_check: Literal["warn", "refuse"] = Field(
        "warn",
        description="when the model declares it was trained on another framing than the face ROI this plugin "
        "feeds (e.g. acne-grade@1: the whole letterboxed photo): 'warn' runs it and says so in the result's message, "
        "'refuse' answers status 'unavailable'",
    )


class MLClassifierDetector(Detector, name="ml_classifier", version="0.1.0", params=MLClassifierParams):
    """Acne severity grade (ACNE04 scale 0-3) with class probabilities and a lesion-count estimate."""

    def analyze(self, ctx: FaceContext) -> DetectorResult:
        from harerun_ml_classifier.runtime import get_model  # imports the model store only, not TensorFlow

        p = self.params
        if small := ctx.too_small_for("an acne grade", max_magnification=p.max_magnification):
            return small
        try:
            model = get_model(p.model, path=p.model_path, runtime=p.runtime)
        except ModelUnavailable as exc:
            return DetectorResult(
                status="unavailable", message=exc.reason, measurements={"model": p.model, "error_code": exc.code}
            )
        problems = declaration_problems(model.declared, size=model.input_size)
        x = model_input(ctx, size=model.input_size)
        if refused := self._refusal(model, problems, channels=x.shape[-1]):
            return refused
        probs, density = predict(model, x[..., : model.channels], flip_tta=p.flip_tta)
        measurements = grade_measurements(probs) | model_measurements(model)
        mask = None
        if density is not None:
            measurements |= density_measurements(ctx, density)
            mask = density_mask(ctx, density)
        message = None
        if "framing" in problems:
            message = (
                f"{problems['framing']}: its grades are less accurate here; use a model trained on "
                f"'{FRAMING}' (acne-grade@2 or later)"
            )
        return DetectorResult(
            score=100.0 * float(np.dot(probs, np.arange(N_GRADES))) / (N_GRADES - 1),
            measurements=measurements,
            evidence=Evidence(mask=mask),
            message=message,
        )

    def _refusal(self, model, problems: dict[str, str], *, channels: int) -> DetectorResult | None:
        """``unavailable`` when the model cannot be served here (its declaration or its channels), else None."""
        p = self.params
        refuse = {k: v for k, v in problems.items() if k != "framing" or p.framing_check == "refuse"}
        if refuse:
            how = (
                " Use a model trained on the face ROI (e.g. `harerun train acne-grade`, which frames photos with the "
                "engine's face stage), or set `framing_check: warn`."
                if "framing" in refuse
                else ""
            )
            return DetectorResult(
                status="unavailable",
                measurements={"model": p.model, "error_code": "MODEL_MISMATCH"},
                message=f"model {model.resolved.spec} ({model.resolved.path.name}) cannot be served "
                f"here: {'; '.join(refuse.values())}.{how}",
            )
        if model.channels not in (channels, 3):
            return DetectorResult(
                status="unavailable",
                measurements={"model": p.model},
                message=f"model {model.resolved.path} expects {model.channels} input channels; this "
                f"plugin feeds {channels} ({', '.join(CHANNELS)}) or 3 (RGB 0..1)",
            )
        return None


def model_measurements(model) -> dict:
    """Which model answered, from where, and how it runs."""
    r = model.resolved
    return {
        "model": r.spec,
        "model_source": r.source,
        "model_sha256": r.sha256,
        "model_load_ms": r.load_ms,
        "runtime": model.runtime,
        "model_framing": model.declared.get("framing", "undeclared"),
    }


@hookimpl
def register_detectors(register):
    register(MLClassifierDetector)


@hookimpl
def register_commands(register) -> None:
    from harerun_ml_classifier import commands

    register(
        "train acne-grade",
        commands.run,
        add_arguments=commands.add_arguments,
        help=commands.HELP,
        description=commands.DESCRIPTION,
    )
